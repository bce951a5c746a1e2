// V8 compiles typed-array code on the promise that no ArrayBuffer was ever detached in the thread, and the
// first detach throws away every function compiled so. A thread that will detach one anyway (a transfer to
// another thread; Node's fetch, which detaches the buffers of the bodies it reads) detaches a throwaway one
// before its warm-up, so that the warm code is compiled without that promise and survives the first real
// detach. A thread that never detaches one keeps the narrower assumptions.

/** Gives up this thread's no-detach promise now, by detaching a throwaway buffer. */
export function detachOneBuffer(): void {
  const buffer = new ArrayBuffer(1);
  structuredClone(buffer, { transfer: [buffer] });
}
