// A handshake worker (nodes/handshakes.ts): answers batches of admitted initiations with our private key and
// its snapshot of the peers, and wipes every secret it holds when a key is replaced, a peer removed or the
// device closed.
import { parentPort } from 'node:worker_threads';

import { localStatic, ownPresharedKey, peerKeys, type LocalStatic, type PeerKeys } from '../crypto/noise.js';
import { wipe } from '../crypto/primitives.js';
import {
  answerBatch,
  warmAnswers,
  type FromWorker,
  type SnapshotChange,
  type ToWorker,
} from './handshakes.js';
import { secureRandomBytes } from './random.js';

if (parentPort === null) throw new Error('nodes/handshake-worker.js runs as a worker thread only');
const port = parentPort;

let local: LocalStatic | undefined;
/** Each peer's pre-shared key (undefined: none) and handshake keys, by public key in base64. */
const presharedKeys = new Map<string, Uint8Array | undefined>();
const peers = new Map<string, PeerKeys>();

function forget(name: string): void {
  const presharedKey = presharedKeys.get(name);
  if (presharedKey !== undefined) wipe(presharedKey);
  presharedKeys.delete(name);
  peers.delete(name);
}

function apply(change: SnapshotChange): void {
  switch (change.kind) {
    case 'key': {
      if (local !== undefined) wipe(local.privateKey);
      local = localStatic(change.privateKey);
      wipe(change.privateKey);
      // Every static-static DH is made again, lazily, with the new key.
      for (const [name, presharedKey] of presharedKeys) peers.set(name, peerKeys(local, name, presharedKey));
      return;
    }
    case 'peer': {
      const kept = presharedKeys.get(change.name);
      if (peers.has(change.name) && change.presharedKey === undefined) return;
      if (kept !== undefined) wipe(kept);
      const given = change.presharedKey ?? undefined;
      const presharedKey = ownPresharedKey(given);
      if (given !== undefined) wipe(given); // shared with this worker for the copy just made
      presharedKeys.set(change.name, presharedKey);
      if (local !== undefined) peers.set(change.name, peerKeys(local, change.name, presharedKey));
      return;
    }
    case 'remove':
      forget(change.name);
      return;
    case 'clear':
      for (const name of [...presharedKeys.keys()]) forget(name);
      return;
  }
}

// Before the first message is read (those sent meanwhile wait in order): the first client's handshake is
// answered by compiled code.
warmAnswers(secureRandomBytes);

port.on('message', (message: ToWorker) => {
  switch (message.kind) {
    case 'changes':
      message.changes.forEach(apply);
      return;
    case 'answer': {
      const records =
        local === undefined
          ? new Uint8Array(0) // no key yet: nothing authenticates
          : answerBatch(local, peers, message.initiations, secureRandomBytes);
      port.postMessage({ records } satisfies FromWorker);
      return;
    }
    case 'close':
      apply({ kind: 'clear' });
      if (local !== undefined) wipe(local.privateKey);
      port.close();
      return;
  }
});
