import { IndexTable } from '../../crypto/indextable.js';

// Serves the given 32-bit values, little-endian, one per call.
function scripted(values: number[]): (length: number) => Uint8Array {
  let next = 0;
  return (length) => {
    const value = values[next++ % values.length]!;
    const out = new Uint8Array(length);
    new DataView(out.buffer).setUint32(0, value, true);
    return out;
  };
}

describe('index table', () => {
  test('indices are the random bytes read as u32 little-endian, full range', () => {
    const table = new IndexTable<string>(scripted([0xffffffff, 0, 0x01020304]));
    expect([table.allocate('a'), table.allocate('b'), table.allocate('c')]).toEqual([
      0xffffffff, 0, 0x01020304,
    ]);
    expect([table.get(0xffffffff), table.get(0), table.get(0x01020304)]).toEqual(['a', 'b', 'c']);
    expect(table.size).toBe(3);
  });

  test('a used index is drawn again until an unused one comes', () => {
    const table = new IndexTable<string>(scripted([7, 7, 7, 9]));
    expect(table.allocate('first')).toBe(7);
    expect(table.allocate('second')).toBe(9);
    expect(table.get(7)).toBe('first');
  });

  test('delete frees the index for reuse and reports whether it was present', () => {
    const table = new IndexTable<string>(scripted([5]));
    const index = table.allocate('handshake');
    expect(table.delete(index)).toBe(true);
    expect(table.delete(index)).toBe(false);
    expect(table.get(index)).toBeUndefined();
    expect(table.allocate('again')).toBe(5);
  });

  test('repoint keeps the number and changes the entry (handshake → keypair, §6)', () => {
    const table = new IndexTable<{ kind: string }>(scripted([42]));
    const index = table.allocate({ kind: 'handshake' });
    expect(table.repoint(index, { kind: 'keypair' })).toBe(true);
    expect(table.get(index)).toEqual({ kind: 'keypair' });
    expect(table.size).toBe(1);
    expect(table.repoint(43, { kind: 'keypair' })).toBe(false);
    expect(table.get(43)).toBeUndefined();
  });

  test('an index looked up again right after delete, repoint or a new allocate reads the table as it is now', () => {
    const table = new IndexTable<string>(scripted([5, 6]));
    const five = table.allocate('handshake');
    expect(table.get(five)).toBe('handshake');
    expect(table.get(five)).toBe('handshake'); // the same index twice in a row
    table.repoint(five, 'keypair');
    expect(table.get(five)).toBe('keypair');
    expect(table.get(6)).toBeUndefined(); // not yet allocated
    const six = table.allocate('other');
    expect(table.get(six)).toBe('other');
    expect(table.get(five)).toBe('keypair');
    table.delete(five);
    expect(table.get(five)).toBeUndefined();
    expect(table.get(six)).toBe('other');
  });

  test('a random source that only repeats used values is a programmer error, not a hang', () => {
    const table = new IndexTable<string>(scripted([1]));
    table.allocate('a');
    expect(() => table.allocate('b')).toThrow(/randomBytes/);
  });

  test('with a real random source, many allocations are all distinct and retrievable', async () => {
    const { randomBytes } = await import('node:crypto');
    const table = new IndexTable<number>((n) => randomBytes(n));
    const indices = Array.from({ length: 5000 }, (_, i) => table.allocate(i));
    expect(new Set(indices).size).toBe(5000);
    expect(indices.every((index, i) => table.get(index) === i && index >>> 0 === index)).toBe(true);
  });
});
