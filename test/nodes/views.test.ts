import { ReusedViews } from '../../nodes/views.js';

// ReusedViews hands out the view it made before for a key whenever the place and length match: by the same
// array and start (the fast path), or by the same buffer and offset through another array.
describe('ReusedViews', () => {
  const slab = new Uint8Array(64);
  slab.forEach((_, i) => (slab[i] = i));

  test('1. the same array, start and length: the same view, with the bytes of that place', () => {
    const views = new ReusedViews();
    const first = views.view(0, slab, 8, 4);
    expect(Array.from(first)).toEqual([8, 9, 10, 11]);
    expect(views.view(0, slab, 8, 4)).toBe(first);
  });

  test('2. another array over the same place of the same buffer: the same view', () => {
    const views = new ReusedViews();
    const first = views.view(0, slab, 8, 4);
    const other = new Uint8Array(slab.buffer, 4, 16); // byte 4 of the slab is byte 0 here
    expect(views.view(0, other, 4, 4)).toBe(first);
    expect(views.view(0, other, 4, 4)).toBe(first); // and then through the fast path
  });

  test('3. another start, length, buffer or key: a new view of the new place', () => {
    const views = new ReusedViews();
    const first = views.view(0, slab, 8, 4);
    const table: Array<[key: number, bytes: Uint8Array, start: number, length: number, expected: number[]]> =
      [
        [0, slab, 12, 4, [12, 13, 14, 15]],
        [0, slab, 12, 2, [12, 13]],
        [0, Uint8Array.from(slab), 12, 2, [12, 13]],
        [1, slab, 8, 4, [8, 9, 10, 11]],
      ];
    const seen = new Set<Uint8Array>([first]);
    for (const [key, bytes, start, length, expected] of table) {
      const view = views.view(key, bytes, start, length);
      expect(seen.has(view)).toBe(false);
      seen.add(view);
      expect(Array.from(view)).toEqual(expected);
      expect(view.buffer).toBe(bytes.buffer);
    }
  });

  test("4. made for a key count (a ring's record slots): every key up to it, the last one included", () => {
    const keys = 262_144;
    const views = new ReusedViews(keys);
    for (const key of [keys - 1, 0, 131_072]) {
      const first = views.view(key, slab, 16, 8);
      expect(Array.from(first)).toEqual([16, 17, 18, 19, 20, 21, 22, 23]);
      expect(views.view(key, slab, 16, 8)).toBe(first);
    }
  });
});
