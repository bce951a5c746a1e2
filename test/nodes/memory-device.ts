// An in-memory UapiDevice for the protocol and server tests that need no engine: peers in a map, the
// public key derived with tweetnacl, listen ports "bound" unless listed as taken.
import nacl from 'tweetnacl';

import type {
  UapiDevice,
  UapiDeviceStatus,
  UapiPeerSettings,
  UapiPeerStatus,
} from '../../nodes/uapi-protocol.js';

const hex = (key: Uint8Array) => Buffer.from(key).toString('hex');

export class MemoryDevice implements UapiDevice {
  privateKey: Uint8Array | undefined;
  listenPort = 0;
  fwmark = 0;
  readonly peerMap = new Map<string, UapiPeerStatus>();
  readonly takenPorts = new Set<number>();

  status(): UapiDeviceStatus {
    const status: UapiDeviceStatus = {
      listenPort: this.listenPort,
      fwmark: this.fwmark,
      peers: [...this.peerMap.values()],
    };
    if (this.privateKey) status.privateKey = this.privateKey;
    return status;
  }

  publicKey(): Uint8Array | undefined {
    return this.privateKey && nacl.scalarMult.base(this.privateKey);
  }

  setPrivateKey(privateKey: Uint8Array | undefined): void {
    this.privateKey = privateKey;
  }

  setListenPort(port: number): void {
    if (this.takenPorts.has(port)) throw new Error(`port ${port} in use`);
    this.listenPort = port === 0 ? 40000 : port;
  }

  setFwmark(mark: number): void {
    this.fwmark = mark;
  }

  removeAllPeers(): void {
    this.peerMap.clear();
  }

  upsertPeer(publicKey: Uint8Array, settings: UapiPeerSettings): void {
    const peer = this.peerMap.get(hex(publicKey)) ?? {
      publicKey,
      allowedIps: [],
      persistentKeepaliveSeconds: 0,
      rxBytes: 0,
      txBytes: 0,
      lastHandshakeUnixMs: 0,
    };
    if (settings.presharedKey === null) delete peer.presharedKey;
    else if (settings.presharedKey) peer.presharedKey = settings.presharedKey;
    if (settings.endpoint) peer.endpoint = settings.endpoint;
    if (settings.persistentKeepaliveSeconds !== undefined) {
      peer.persistentKeepaliveSeconds = settings.persistentKeepaliveSeconds;
    }
    if (settings.allowedIps) {
      // As in the trie, a prefix belongs to one peer: taking it moves it.
      for (const other of this.peerMap.values()) {
        other.allowedIps = other.allowedIps.filter((prefix) => !settings.allowedIps!.includes(prefix));
      }
      peer.allowedIps = settings.allowedIps;
    }
    this.peerMap.set(hex(publicKey), peer);
  }

  removePeer(publicKey: Uint8Array): void {
    this.peerMap.delete(hex(publicKey));
  }
}
