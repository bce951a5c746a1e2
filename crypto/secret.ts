// Secrets never print. Private keys, pre-shared keys, chaining keys, DH results, transport keys and the
// cookie secret are marked where they are made, and util.inspect, JSON.stringify and String then show
// `<redacted>` instead of their bytes (as boringtun's Debug implementations do), so a log line or an error
// report that happens to reach one cannot leak it. The bytes themselves are untouched; code that must hand
// a key out (UAPI `get`) copies it into a plain Uint8Array first.

export const REDACTED = '<redacted>';

// The symbol Node's util.inspect looks up; Symbol.for keeps the engine free of Node imports.
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

const printsRedacted: PropertyDescriptorMap = {
  [INSPECT]: { value: () => REDACTED },
  toJSON: { value: () => REDACTED },
  toString: { value: () => REDACTED },
};

/** Makes every instance of a class that holds key material print as `<redacted>`. */
export function redactInstances(prototype: object): void {
  Object.defineProperties(prototype, printsRedacted);
}

// Uint8Array's prototype with the three printers above. It has no `constructor` of its own, so a marked
// array is still a Uint8Array to instanceof and equality checks, and its copies (slice, Uint8Array.from)
// are plain arrays.
const SECRET_BYTES: object = Object.create(Uint8Array.prototype, printsRedacted);

/** Marks `bytes` as secret in place (the contents stay as they are) and returns it. */
export function secret(bytes: Uint8Array): Uint8Array {
  return Object.setPrototypeOf(bytes, SECRET_BYTES) as Uint8Array;
}
