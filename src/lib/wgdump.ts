// `wg show <if> dump` (wg(8)): what the CLI's follower and the namespace tests read from an interface.

export interface WgPeerDump {
  readonly publicKey: string;
  readonly presharedKey: string | null;
  readonly endpoint: string | null;
  readonly allowedIps: string[];
  readonly latestHandshake: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly persistentKeepalive: number;
}

export interface WgDump {
  readonly privateKey: string;
  readonly publicKey: string;
  readonly listenPort: number;
  readonly peers: WgPeerDump[];
}

/** Parses `wg show <if> dump` (tab-separated: one interface line, then one line per peer). */
export function parseWgDump(text: string): WgDump {
  const [device, ...peers] = text
    .trim()
    .split('\n')
    .map((line) => line.split('\t'));
  if (!device || device.length < 4) throw new Error(`unexpected wg dump: ${text}`);
  const none = (value: string | undefined) => (value === undefined || value === '(none)' ? null : value);
  return {
    privateKey: device[0]!,
    publicKey: device[1]!,
    listenPort: Number(device[2]),
    peers: peers.map((fields) => ({
      publicKey: fields[0]!,
      presharedKey: none(fields[1]),
      endpoint: none(fields[2]),
      allowedIps: fields[3] === '(none)' || fields[3] === undefined ? [] : fields[3].split(','),
      latestHandshake: Number(fields[4]),
      rxBytes: Number(fields[5]),
      txBytes: Number(fields[6]),
      persistentKeepalive: fields[7] === 'off' ? 0 : Number(fields[7]),
    })),
  };
}
