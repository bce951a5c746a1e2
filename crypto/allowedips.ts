// Allowed IPs: a longest-prefix-match table from IP prefixes to peers, used both ways — to pick the peer an
// outgoing packet goes to (destination address) and to check that a decrypted packet's source address
// belongs to the peer that sent it. A path-compressed binary trie per address family, as wireguard-go's
// allowedips.go and the kernel's allowedips.c: every node holds a masked prefix; a node without a peer
// exists only to join two subtrees, so it always has both children.

import { type IpPrefix, formatPrefix, maskPrefix } from './ipaddr.js';

interface TrieNode<T> {
  // The prefix's address bytes as a one-byte string (one char per byte): an exit node has four nodes per
  // peer, and a string of 4 or 16 bytes costs a quarter of the heap of an array of numbers, a tenth of a
  // typed array with its ArrayBuffer. Bits past `cidr` are never read: a join node shares the string of
  // the prefix it was made for, so only a node with a peer holds its own (masked).
  bits: string;
  readonly cidr: number;
  peer: T | undefined;
  // The subtrees whose next bit is 0 and 1 (two fields: a tuple would be one more object per node).
  left: TrieNode<T> | undefined;
  right: TrieNode<T> | undefined;
  parent: TrieNode<T> | undefined; // undefined for the root
  nextOfPeer: TrieNode<T> | undefined; // the peer's next prefix: a list costs less than a Set per peer
}

type Root = 'v4' | 'v6';

/** Address bytes as the trie's key string. */
const keyOf = (address: Uint8Array): string =>
  String.fromCharCode.apply(null, address as unknown as number[]);

function newNode<T>(prefix: IpPrefix, peer: T): TrieNode<T> {
  const { address, cidr } = maskPrefix(prefix);
  const node = joinNode<T>(keyOf(address), cidr);
  node.peer = peer;
  return node;
}

// A peerless node at the first `cidr` bits of `bits`, sharing the string (nothing reads past cidr).
function joinNode<T>(bits: string, cidr: number): TrieNode<T> {
  return {
    bits,
    cidr,
    peer: undefined,
    left: undefined,
    right: undefined,
    parent: undefined,
    nextOfPeer: undefined,
  };
}

// The bit after the node's prefix chooses its child. Reads address bytes from an offset so the engine can
// pass a packet and the header field's position; chooseByKey does the same for another node's key.
function choose(node: TrieNode<unknown>, bytes: Uint8Array, offset: number): 0 | 1 {
  return ((bytes[offset + (node.cidr >> 3)]! >> (7 - (node.cidr & 7))) & 1) as 0 | 1;
}

function chooseByKey(node: TrieNode<unknown>, key: string): 0 | 1 {
  return ((key.charCodeAt(node.cidr >> 3) >> (7 - (node.cidr & 7))) & 1) as 0 | 1;
}

function child<T>(node: TrieNode<T>, bit: 0 | 1): TrieNode<T> | undefined {
  return bit === 0 ? node.left : node.right;
}

// Number of leading bits two prefixes share, up to limit.
function commonBits(a: string, b: string, limit: number): number {
  let common = 0;
  for (let i = 0; common < limit; i++) {
    const diff = a.charCodeAt(i) ^ b.charCodeAt(i);
    if (diff !== 0) return Math.min(limit, common + Math.clz32(diff) - 24);
    common += 8;
  }
  return Math.min(common, limit);
}

// The lookup's inner loop: whole bytes, then the prefix's bits of the partial byte.
function matches(node: TrieNode<unknown>, bytes: Uint8Array, offset: number): boolean {
  const bits = node.bits;
  const fullBytes = node.cidr >> 3;
  for (let i = 0; i < fullBytes; i++) if (bits.charCodeAt(i) !== bytes[offset + i]) return false;
  const partialMask = (0xff << (8 - (node.cidr & 7))) & 0xff;
  return partialMask === 0 || ((bits.charCodeAt(fullBytes) ^ bytes[offset + fullBytes]!) & partialMask) === 0;
}

// Whether a node's prefix contains the first `cidr` ≥ node.cidr bits of key.
const containsKey = (node: TrieNode<unknown>, key: string) =>
  commonBits(node.bits, key, node.cidr) === node.cidr;

// Peers are compared by identity (Map keys); undefined marks a node without a peer, hence NonNullable.
export class AllowedIps<T extends NonNullable<unknown>> {
  private rootV4: TrieNode<T> | undefined;
  private rootV6: TrieNode<T> | undefined;
  /** Each peer's first prefix; the rest follow through nextOfPeer. */
  private readonly byPeer = new Map<T, TrieNode<T>>();
  // The last IPv4 lookup and its answer: a flow's packets all carry one address, and comparing it is cheaper
  // than the walk. Every change to the table forgets it.
  private lastV4Known = false;
  private lastV4Address = 0;
  private lastV4Peer: T | undefined;

  private forgetLastLookup(): void {
    this.lastV4Known = false;
    this.lastV4Peer = undefined; // a removed peer is not kept alive
  }

  /** Routes a prefix to a peer; a prefix that belonged to another peer moves to this one. */
  insert(prefix: IpPrefix, peer: T): void {
    checkPrefix(prefix);
    this.forgetLastLookup();
    const root: Root = prefix.address.length === 4 ? 'v4' : 'v6';
    const node = newNode<T>(prefix, peer);
    const { parent, exact } = this.placement(root, node.bits, node.cidr);
    if (exact) {
      this.detachFromPeer(exact);
      if (exact.peer === undefined) exact.bits = node.bits; // a join node's may be another prefix's
      exact.peer = peer;
      this.attachToPeer(exact);
      return;
    }
    this.attachToPeer(node);
    const down = parent ? child(parent, chooseByKey(parent, node.bits)) : this.root(root);
    if (!down) {
      this.link(parent, node, root);
      return;
    }
    const common = commonBits(down.bits, node.bits, Math.min(node.cidr, down.cidr));
    if (common === node.cidr) {
      // The new prefix contains the subtree below: it goes in between.
      this.link(node, down, root);
      this.link(parent, node, root);
      return;
    }
    // They diverge before either ends: a peerless node at the common prefix joins them.
    const join = joinNode<T>(node.bits, common);
    this.link(join, down, root);
    this.link(join, node, root);
    this.link(parent, join, root);
  }

  /** Removes a prefix if present (and, when a peer is given, only if it routes to that peer). */
  remove(prefix: IpPrefix, peer?: T): boolean {
    checkPrefix(prefix);
    this.forgetLastLookup();
    const masked = maskPrefix(prefix);
    const root = masked.address.length === 4 ? 'v4' : 'v6';
    const { exact } = this.placement(root, keyOf(masked.address), masked.cidr);
    if (!exact || exact.peer === undefined || (peer !== undefined && exact.peer !== peer)) return false;
    this.detachFromPeer(exact);
    exact.peer = undefined;
    this.unlinkEmpty(exact);
    return true;
  }

  /** Removes every prefix of a peer. */
  removeByPeer(peer: T): void {
    this.forgetLastLookup();
    const nodes = this.nodesOf(peer);
    this.byPeer.delete(peer);
    for (const node of nodes) {
      node.peer = undefined;
      node.nextOfPeer = undefined;
      this.unlinkEmpty(node);
    }
  }

  /** A peer's prefixes as canonical 'ip/cidr' text (host bits cleared), IPv4 first, each in address order. */
  prefixesOf(peer: T): string[] {
    const nodes = this.nodesOf(peer);
    // One char per byte: comparing keys as strings is comparing the addresses.
    nodes.sort((a, b) => a.bits.length - b.bits.length || compareKeys(a.bits, b.bits) || a.cidr - b.cidr);
    return nodes.map((node) =>
      formatPrefix({ address: Uint8Array.from(node.bits, (c) => c.charCodeAt(0)), cidr: node.cidr }),
    );
  }

  /** Longest-prefix match of a 4- or 16-byte address. */
  lookup(address: Uint8Array): T | undefined {
    if (address.length === 4) return this.lookupV4(address, 0);
    if (address.length === 16) return this.lookupV6(address, 0);
    return undefined;
  }

  /** Longest-prefix match of the IPv4 address at bytes[offset..offset+4] (e.g. a header field). Allocates nothing. */
  lookupV4(bytes: Uint8Array, offset: number): T | undefined {
    if (!(offset >= 0 && offset + 4 <= bytes.length)) return undefined;
    const address =
      (bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
    if (this.lastV4Known && address === this.lastV4Address) return this.lastV4Peer;
    const peer = walk(this.rootV4, bytes, offset, 4);
    this.lastV4Known = true;
    this.lastV4Address = address;
    this.lastV4Peer = peer;
    return peer;
  }

  /** Longest-prefix match of the IPv6 address at bytes[offset..offset+16]. Allocates nothing. */
  lookupV6(bytes: Uint8Array, offset: number): T | undefined {
    return offset >= 0 && offset + 16 <= bytes.length ? walk(this.rootV6, bytes, offset, 16) : undefined;
  }

  private root(root: Root): TrieNode<T> | undefined {
    return root === 'v4' ? this.rootV4 : this.rootV6;
  }

  private setRoot(root: Root, node: TrieNode<T> | undefined): void {
    if (root === 'v4') this.rootV4 = node;
    else this.rootV6 = node;
    if (node) node.parent = undefined;
  }

  // The deepest node whose prefix contains (bits, cidr) without being longer; exact if it is that prefix.
  private placement(
    root: Root,
    key: string,
    cidr: number,
  ): { parent: TrieNode<T> | undefined; exact: TrieNode<T> | undefined } {
    let parent: TrieNode<T> | undefined;
    let node = this.root(root);
    while (node && node.cidr <= cidr && containsKey(node, key)) {
      if (node.cidr === cidr) return { parent: node.parent, exact: node };
      parent = node;
      node = child(node, chooseByKey(node, key));
    }
    return { parent, exact: undefined };
  }

  // Makes child hang below parent on the side its bits choose (or become the root).
  private link(parent: TrieNode<T> | undefined, below: TrieNode<T>, root: Root): void {
    if (!parent) return this.setRoot(root, below);
    if (chooseByKey(parent, below.bits) === 0) parent.left = below;
    else parent.right = below;
    below.parent = parent;
  }

  private replace(node: TrieNode<T>, by: TrieNode<T> | undefined): void {
    const parent = node.parent;
    if (!parent) return this.setRoot(node.bits.length === 4 ? 'v4' : 'v6', by);
    if (parent.left === node) parent.left = by;
    else parent.right = by;
    if (by) by.parent = parent;
  }

  // After a node lost its peer: drop it unless it still joins two subtrees, then drop a parent that
  // was only joining this node to its sibling.
  private unlinkEmpty(node: TrieNode<T>): void {
    const { left, right } = node;
    if (left && right) return;
    const parent = node.parent;
    this.replace(node, left ?? right);
    if (left || right || !parent || parent.peer !== undefined) return;
    this.replace(parent, parent.left ?? parent.right);
  }

  private nodesOf(peer: T): TrieNode<T>[] {
    const nodes: TrieNode<T>[] = [];
    for (let node = this.byPeer.get(peer); node; node = node.nextOfPeer) nodes.push(node);
    return nodes;
  }

  private attachToPeer(node: TrieNode<T>): void {
    const peer = node.peer as T;
    node.nextOfPeer = this.byPeer.get(peer);
    this.byPeer.set(peer, node);
  }

  private detachFromPeer(node: TrieNode<T>): void {
    if (node.peer === undefined) return; // a join node being given its first peer
    const head = this.byPeer.get(node.peer);
    if (head === node) {
      if (node.nextOfPeer) this.byPeer.set(node.peer, node.nextOfPeer);
      else this.byPeer.delete(node.peer);
    } else {
      let before = head;
      while (before && before.nextOfPeer !== node) before = before.nextOfPeer;
      if (before) before.nextOfPeer = node.nextOfPeer;
    }
    node.nextOfPeer = undefined;
  }
}

function walk<T>(
  node: TrieNode<T> | undefined,
  bytes: Uint8Array,
  offset: number,
  size: number,
): T | undefined {
  let found: T | undefined;
  while (node && matches(node, bytes, offset)) {
    if (node.peer !== undefined) found = node.peer;
    if (node.cidr === size * 8) break;
    node = child(node, choose(node, bytes, offset));
  }
  return found;
}

const compareKeys = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

// Prefixes come from parsePrefix; anything else is a programmer mistake.
function checkPrefix(prefix: IpPrefix): void {
  const size = prefix.address.length;
  if (
    (size !== 4 && size !== 16) ||
    !Number.isInteger(prefix.cidr) ||
    prefix.cidr < 0 ||
    prefix.cidr > size * 8
  ) {
    throw new RangeError('an allowed-IPs prefix needs a 4- or 16-byte address and a length within it');
  }
}
