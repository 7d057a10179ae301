/**
 * RFC 5780 (NAT behaviour discovery) on top of the RFC 5389 codec of tracker/stun.ts: a STUN
 * server listening on two IP addresses x two ports, which answers a Binding Request with
 * XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS and FINGERPRINT, and honours
 * CHANGE-REQUEST by answering from the socket with the other IP and/or the other port.
 * A peer (peer/node/nat-discovery.ts) learns its NAT's mapping and filtering behaviour from it.
 * coturn does the same when given two listening IPs (`--listening-ip A --listening-ip B`,
 * RFC 5780 is on by default); this one needs no separate daemon.
 * Pure codec first (unit-tested), then the node:dgram server.
 */
import dgram from 'node:dgram';
import {
  ATTR_FINGERPRINT,
  ATTR_MAPPED_ADDRESS,
  ATTR_XOR_MAPPED_ADDRESS,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  MAGIC_COOKIE,
  STUN_HEADER_BYTES,
  encodeMappedAddress,
  encodeXorMappedAddress,
  fingerprint,
  normalizeAddress,
  parseStunMessage,
  type StunIgnoreReason,
  type TransportAddress,
} from './stun.js';

export const ATTR_CHANGE_REQUEST = 0x0003;
export const ATTR_RESPONSE_ORIGIN = 0x802b;
export const ATTR_OTHER_ADDRESS = 0x802c;
export const CHANGE_IP = 0x04;
export const CHANGE_PORT = 0x02;

function attr(type: number, value: Buffer): Buffer {
  const padded = Math.ceil(value.length / 4) * 4;
  const b = Buffer.alloc(4 + padded);
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(value.length, 2);
  value.copy(b, 4);
  return b;
}

/** Wraps attributes into a STUN message of `type`, with a FINGERPRINT. */
export function encodeStunMessage(type: number, transactionId: Buffer, attributes: Array<{ type: number; value: Buffer }>, withFingerprint = true): Buffer {
  if (transactionId.length !== 12) throw new Error('transaction id must be 12 bytes');
  const body = Buffer.concat(attributes.map((a) => attr(a.type, a.value)));
  const fp = withFingerprint ? 8 : 0;
  const msg = Buffer.alloc(STUN_HEADER_BYTES + body.length + fp);
  msg.writeUInt16BE(type, 0);
  msg.writeUInt16BE(body.length + fp, 2);
  msg.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(msg, 8);
  body.copy(msg, STUN_HEADER_BYTES);
  if (withFingerprint) {
    const pos = STUN_HEADER_BYTES + body.length;
    msg.writeUInt16BE(ATTR_FINGERPRINT, pos);
    msg.writeUInt16BE(4, pos + 2);
    msg.writeUInt32BE(fingerprint(msg.subarray(0, pos)), pos + 4);
  }
  return msg;
}

/** A Binding Request, optionally with CHANGE-REQUEST flags (CHANGE_IP | CHANGE_PORT). */
export function encodeChangeRequest(transactionId: Buffer, flags: number): Buffer {
  const attrs = [];
  if (flags !== 0) {
    const v = Buffer.alloc(4);
    v.writeUInt32BE(flags & (CHANGE_IP | CHANGE_PORT), 0);
    attrs.push({ type: ATTR_CHANGE_REQUEST, value: v });
  }
  return encodeStunMessage(BINDING_REQUEST, transactionId, attrs);
}

/** The change flags of a parsed request (0 when absent or malformed). */
export function changeFlags(attributes: Array<{ type: number; value: Buffer }>): number {
  const a = attributes.find((x) => x.type === ATTR_CHANGE_REQUEST);
  if (!a || a.value.length !== 4) return 0;
  return a.value.readUInt32BE(0) & (CHANGE_IP | CHANGE_PORT);
}

/** Index of one of the four sockets: bit 1 = alternate IP, bit 0 = alternate port. */
export type SocketIndex = 0 | 1 | 2 | 3;

export interface Rfc5780Answer {
  /** Send the response from this socket. */
  from: SocketIndex;
  response: Buffer;
}

/**
 * The server logic for one datagram received on socket `at` (addresses[i] is socket i's own
 * transport address): which socket answers, and the response.
 */
export function handleRfc5780(
  datagram: Buffer,
  source: TransportAddress,
  at: SocketIndex,
  addresses: readonly [TransportAddress, TransportAddress, TransportAddress, TransportAddress],
): Rfc5780Answer | { ignored: StunIgnoreReason } {
  const parsed = parseStunMessage(datagram);
  if (!parsed.ok) return { ignored: parsed.reason };
  if (parsed.msg.type !== BINDING_REQUEST) return { ignored: 'not binding request' };
  const flags = changeFlags(parsed.msg.attributes);
  const from = (at ^ ((flags & CHANGE_IP ? 2 : 0) | (flags & CHANGE_PORT ? 1 : 0))) as SocketIndex;
  const mapped = normalizeAddress(source);
  const tid = parsed.msg.transactionId;
  const response = encodeStunMessage(BINDING_SUCCESS, tid, [
    { type: ATTR_XOR_MAPPED_ADDRESS, value: encodeXorMappedAddress(mapped, tid) },
    { type: ATTR_MAPPED_ADDRESS, value: encodeMappedAddress(mapped) },
    { type: ATTR_RESPONSE_ORIGIN, value: encodeMappedAddress(addresses[from]) },
    // The address that differs from the receiving one in both IP and port.
    { type: ATTR_OTHER_ADDRESS, value: encodeMappedAddress(addresses[(at ^ 3) as SocketIndex]) },
  ]);
  return { from, response };
}

export interface Rfc5780ServerOptions {
  /** Primary and alternate IPv4 addresses (both must be local). */
  primaryIp: string;
  alternateIp: string;
  /** Primary port (0: any free port; the alternate port is then any free port too). */
  port: number;
  /** Alternate port; default port + 1 (or any when port is 0). */
  alternatePort?: number;
  onError?(err: Error): void;
}

export interface Rfc5780Server {
  /** The four listening addresses: [primary, primary IP + alt port, alt IP + primary port, alt IP + alt port]. */
  readonly addresses: readonly [TransportAddress, TransportAddress, TransportAddress, TransportAddress];
  readonly stats: { answered: number; ignored: number };
  close(): Promise<void>;
}

function bindUdp(host: string, port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, host, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

export async function startRfc5780Server(opts: Rfc5780ServerOptions): Promise<Rfc5780Server> {
  const sockets: dgram.Socket[] = [];
  try {
    sockets.push(await bindUdp(opts.primaryIp, opts.port));
    const p1 = sockets[0].address().port;
    sockets.push(await bindUdp(opts.primaryIp, opts.alternatePort ?? (opts.port === 0 ? 0 : p1 + 1)));
    const p2 = sockets[1].address().port;
    sockets.push(await bindUdp(opts.alternateIp, p1));
    sockets.push(await bindUdp(opts.alternateIp, p2));
  } catch (err) {
    for (const s of sockets) s.close();
    throw err;
  }
  const addresses = sockets.map((s) => {
    const a = s.address();
    return { family: 'IPv4' as const, address: a.address, port: a.port };
  }) as unknown as [TransportAddress, TransportAddress, TransportAddress, TransportAddress];
  const stats = { answered: 0, ignored: 0 };
  sockets.forEach((sock, i) => {
    sock.on('error', (err) => opts.onError?.(err));
    sock.on('message', (msg, rinfo) => {
      let r: ReturnType<typeof handleRfc5780>;
      try {
        r = handleRfc5780(msg, { family: 'IPv4', address: rinfo.address, port: rinfo.port }, i as SocketIndex, addresses);
      } catch (err) {
        opts.onError?.(err as Error);
        return;
      }
      if ('ignored' in r) {
        stats.ignored++;
        return;
      }
      stats.answered++;
      sockets[r.from].send(r.response, rinfo.port, rinfo.address, (err) => err && opts.onError?.(err));
    });
  });
  return {
    addresses,
    stats,
    close: () => Promise.all(sockets.map((s) => new Promise<void>((res) => s.close(() => res())))).then(() => undefined),
  };
}
