// A WireGuard endpoint, 'host:port' or '[IPv6]:port', as wg(8) reads it: the one parser the broker (node
// registration, client configs), the CLI and wg-quick files share. Numeric hosts come back canonical.
import { formatIpAddress, parseIpAddress } from '../../crypto/ipaddr.js';

export interface Endpoint {
  /** Numeric IPv4/IPv6 (canonical text, no brackets) or a host name resolved by whoever uses it. */
  readonly host: string;
  readonly port: number;
}

export type EndpointParse = { ok: true; value: Endpoint } | { ok: false; message: string };

const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** A DNS name (RFC 1123 labels); an all-numeric last label would make it an IPv4 address instead. */
export function isHostName(text: string): boolean {
  const labels = (text.endsWith('.') ? text.slice(0, -1) : text).split('.');
  return text.length <= 253 && labels.every((l) => HOST_LABEL.test(l)) && !/^[0-9]+$/.test(labels.at(-1)!);
}

export function parseEndpoint(text: string): EndpointParse {
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(text);
  const plain = /^([^:[\]]+):([^:]*)$/.exec(text);
  const [, host, portText] = bracketed ?? plain ?? [];
  if (host === undefined || portText === undefined) {
    return { ok: false, message: "Endpoint must be 'host:port' or '[IPv6]:port'" };
  }
  if (!/^[0-9]{1,10}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    return { ok: false, message: 'Endpoint port must be an integer from 1 to 65535' };
  }
  const port = Number(portText);
  const ip = parseIpAddress(host);
  if (bracketed && !(ip.ok && ip.value.length === 16)) {
    return { ok: false, message: 'only an IPv6 address goes in brackets' };
  }
  if (ip.ok) return { ok: true, value: { host: formatIpAddress(ip.value), port } };
  return isHostName(host)
    ? { ok: true, value: { host, port } }
    : { ok: false, message: `Endpoint host '${host}' is not valid` };
}

export const formatEndpoint = (endpoint: Endpoint) =>
  `${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;

/** An endpoint written exactly as formatEndpoint writes it, so it reaches configs unchanged. */
export function isCanonicalEndpoint(text: string): boolean {
  const parsed = parseEndpoint(text);
  return parsed.ok && formatEndpoint(parsed.value) === text;
}
