/**
 * A minimal RFC 5389 STUN server: answers Binding Requests with XOR-MAPPED-ADDRESS (and the
 * classic MAPPED-ADDRESS for RFC 3489 clients) plus FINGERPRINT, over UDP. Peers' ICE agents
 * learn their server-reflexive address here, so nothing ever asks a public STUN server.
 * Pure codec functions first (unit-tested), then the node:dgram server.
 * Not implemented (answered as a plain Binding): RFC 5780 CHANGE-REQUEST, authentication.
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';

export const STUN_HEADER_BYTES = 20;
export const MAGIC_COOKIE = 0x2112a442;
export const BINDING_REQUEST = 0x0001;
export const BINDING_SUCCESS = 0x0101;
export const ATTR_MAPPED_ADDRESS = 0x0001;
export const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
export const ATTR_FINGERPRINT = 0x8028;
const FINGERPRINT_XOR = 0x5354554e;
const FAMILY_IPV4 = 0x01;
const FAMILY_IPV6 = 0x02;

export type StunIgnoreReason = 'short' | 'not stun' | 'bad cookie' | 'bad length' | 'bad attribute' | 'bad fingerprint' | 'not binding request';

export interface StunAttribute {
  type: number;
  value: Buffer;
}

export interface StunMessage {
  type: number;
  transactionId: Buffer;
  attributes: StunAttribute[];
}

export type StunParseResult = { ok: true; msg: StunMessage } | { ok: false; reason: StunIgnoreReason };

export interface TransportAddress {
  family: 'IPv4' | 'IPv6';
  address: string;
  port: number;
}

// ---- CRC-32 (IEEE 802.3), for FINGERPRINT (node:zlib's crc32 needs Node >= 22.2) ----
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** FINGERPRINT of a message whose header length already counts the 8-byte FINGERPRINT attribute. */
export function fingerprint(msgUpToFingerprint: Uint8Array): number {
  return (crc32(msgUpToFingerprint) ^ FINGERPRINT_XOR) >>> 0;
}

/** Parses and checks one datagram. Never throws. */
export function parseStunMessage(buf: Buffer): StunParseResult {
  if (buf.length < STUN_HEADER_BYTES) return { ok: false, reason: 'short' };
  if ((buf[0] & 0xc0) !== 0) return { ok: false, reason: 'not stun' };
  if (buf.readUInt32BE(4) !== MAGIC_COOKIE) return { ok: false, reason: 'bad cookie' };
  const length = buf.readUInt16BE(2);
  if (length % 4 !== 0 || length !== buf.length - STUN_HEADER_BYTES) return { ok: false, reason: 'bad length' };
  const attributes: StunAttribute[] = [];
  let pos = STUN_HEADER_BYTES;
  while (pos < buf.length) {
    if (pos + 4 > buf.length) return { ok: false, reason: 'bad attribute' };
    const type = buf.readUInt16BE(pos);
    const len = buf.readUInt16BE(pos + 2);
    const end = pos + 4 + len;
    const padded = pos + 4 + Math.ceil(len / 4) * 4;
    if (padded > buf.length) return { ok: false, reason: 'bad attribute' };
    if (type === ATTR_FINGERPRINT) {
      // Must be the last attribute, and match the CRC of everything before it.
      if (len !== 4 || end !== buf.length || buf.readUInt32BE(pos + 4) !== fingerprint(buf.subarray(0, pos))) {
        return { ok: false, reason: 'bad fingerprint' };
      }
    }
    attributes.push({ type, value: buf.subarray(pos + 4, end) });
    pos = padded;
  }
  return { ok: true, msg: { type: buf.readUInt16BE(0), transactionId: Buffer.from(buf.subarray(8, 20)), attributes } };
}

/** An IPv4-mapped IPv6 address ('::ffff:1.2.3.4', as seen on dual-stack sockets) -> IPv4. */
export function normalizeAddress(addr: TransportAddress): TransportAddress {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr.address);
  return m ? { family: 'IPv4', address: m[1], port: addr.port } : addr;
}

function ipv4Bytes(address: string): Buffer {
  const parts = address.split('.').map(Number);
  return Buffer.from(parts);
}

function ipv6Bytes(address: string): Buffer {
  // Expand '::' and any embedded dotted IPv4 tail.
  let a = address.split('%')[0];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const b = ipv4Bytes(v4[1]);
    a = a.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function addressBytes(addr: TransportAddress): Buffer {
  if (addr.family === 'IPv4') {
    if (isIP(addr.address) !== 4) throw new Error(`not an IPv4 address: ${addr.address}`);
    return ipv4Bytes(addr.address);
  }
  if (isIP(addr.address.split('%')[0]) !== 6) throw new Error(`not an IPv6 address: ${addr.address}`);
  return ipv6Bytes(addr.address);
}

function formatAddress(family: number, bytes: Buffer): string {
  if (family === FAMILY_IPV4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** MAPPED-ADDRESS value (RFC 5389 15.1). */
export function encodeMappedAddress(addr: TransportAddress): Buffer {
  const ip = addressBytes(addr);
  const v = Buffer.alloc(4 + ip.length);
  v[1] = addr.family === 'IPv4' ? FAMILY_IPV4 : FAMILY_IPV6;
  v.writeUInt16BE(addr.port, 2);
  ip.copy(v, 4);
  return v;
}

/** XOR-MAPPED-ADDRESS value (RFC 5389 15.2): port ^ cookie>>16, address ^ (cookie || txid). */
export function encodeXorMappedAddress(addr: TransportAddress, transactionId: Buffer): Buffer {
  const v = encodeMappedAddress(addr);
  v.writeUInt16BE(addr.port ^ (MAGIC_COOKIE >>> 16), 2);
  const mask = Buffer.alloc(16);
  mask.writeUInt32BE(MAGIC_COOKIE, 0);
  transactionId.copy(mask, 4);
  for (let i = 4; i < v.length; i++) v[i] ^= mask[i - 4];
  return v;
}

/** Decodes a (XOR-)MAPPED-ADDRESS value; null if malformed. Pass the transaction id for XOR. */
export function decodeAddress(value: Buffer, xorTransactionId?: Buffer): TransportAddress | null {
  if (value.length < 4) return null;
  const family = value[1];
  const len = family === FAMILY_IPV4 ? 4 : family === FAMILY_IPV6 ? 16 : -1;
  if (len < 0 || value.length !== 4 + len) return null;
  let port = value.readUInt16BE(2);
  const ip = Buffer.from(value.subarray(4));
  if (xorTransactionId) {
    port ^= MAGIC_COOKIE >>> 16;
    const mask = Buffer.alloc(16);
    mask.writeUInt32BE(MAGIC_COOKIE, 0);
    xorTransactionId.copy(mask, 4);
    for (let i = 0; i < ip.length; i++) ip[i] ^= mask[i];
  }
  return { family: family === FAMILY_IPV4 ? 'IPv4' : 'IPv6', address: formatAddress(family, ip), port };
}

function attr(type: number, value: Buffer): Buffer {
  const padded = Math.ceil(value.length / 4) * 4;
  const b = Buffer.alloc(4 + padded);
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(value.length, 2);
  value.copy(b, 4);
  return b;
}

/** A complete Binding Success Response for `mapped` (the request's source address). */
export function encodeBindingSuccess(transactionId: Buffer, mapped: TransportAddress): Buffer {
  if (transactionId.length !== 12) throw new Error('transaction id must be 12 bytes');
  const addr = normalizeAddress(mapped);
  const body = Buffer.concat([
    attr(ATTR_XOR_MAPPED_ADDRESS, encodeXorMappedAddress(addr, transactionId)),
    attr(ATTR_MAPPED_ADDRESS, encodeMappedAddress(addr)),
  ]);
  const msg = Buffer.alloc(STUN_HEADER_BYTES + body.length + 8);
  msg.writeUInt16BE(BINDING_SUCCESS, 0);
  msg.writeUInt16BE(body.length + 8, 2); // the length counts FINGERPRINT before it is computed
  msg.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(msg, 8);
  body.copy(msg, STUN_HEADER_BYTES);
  const fpPos = STUN_HEADER_BYTES + body.length;
  msg.writeUInt16BE(ATTR_FINGERPRINT, fpPos);
  msg.writeUInt16BE(4, fpPos + 2);
  msg.writeUInt32BE(fingerprint(msg.subarray(0, fpPos)), fpPos + 4);
  return msg;
}

/** A Binding Request (for tests and health checks). */
export function encodeBindingRequest(transactionId: Buffer, withFingerprint = false): Buffer {
  const msg = Buffer.alloc(STUN_HEADER_BYTES + (withFingerprint ? 8 : 0));
  msg.writeUInt16BE(BINDING_REQUEST, 0);
  msg.writeUInt16BE(withFingerprint ? 8 : 0, 2);
  msg.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(msg, 8);
  if (withFingerprint) {
    msg.writeUInt16BE(ATTR_FINGERPRINT, 20);
    msg.writeUInt16BE(4, 22);
    msg.writeUInt32BE(fingerprint(msg.subarray(0, 20)), 24);
  }
  return msg;
}

export type StunHandleResult = { response: Buffer } | { ignored: StunIgnoreReason };

/** The whole server logic for one datagram: the response to send back, or why it is ignored. */
export function handleStunDatagram(datagram: Buffer, from: TransportAddress): StunHandleResult {
  const parsed = parseStunMessage(datagram);
  if (!parsed.ok) return { ignored: parsed.reason };
  if (parsed.msg.type !== BINDING_REQUEST) return { ignored: 'not binding request' };
  return { response: encodeBindingSuccess(parsed.msg.transactionId, from) };
}

export interface StunServerOptions {
  /** UDP port; 0 picks a free one. */
  port: number;
  /** Bind address. Default '0.0.0.0'; an IPv6 address (e.g. '::') binds a dual-stack socket. */
  host?: string;
  onAnswered?(): void;
  onIgnored?(reason: StunIgnoreReason): void;
  onError?(err: Error): void;
}

export interface StunServer {
  readonly address: string;
  readonly port: number;
  readonly stats: { answered: number; ignored: Record<string, number> };
  close(): Promise<void>;
}

export function startStunServer(opts: StunServerOptions): Promise<StunServer> {
  const host = opts.host ?? '0.0.0.0';
  const socket = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4', ipv6Only: false });
  const stats = { answered: 0, ignored: {} as Record<string, number> };
  socket.on('message', (msg, rinfo) => {
    let result: StunHandleResult;
    try {
      result = handleStunDatagram(msg, { family: rinfo.family === 'IPv6' ? 'IPv6' : 'IPv4', address: rinfo.address, port: rinfo.port });
    } catch (err) {
      opts.onError?.(err as Error);
      return;
    }
    if ('ignored' in result) {
      stats.ignored[result.ignored] = (stats.ignored[result.ignored] ?? 0) + 1;
      opts.onIgnored?.(result.ignored);
      return;
    }
    stats.answered++;
    opts.onAnswered?.();
    socket.send(result.response, rinfo.port, rinfo.address, (err) => {
      if (err) opts.onError?.(err);
    });
  });
  return new Promise((resolve, reject) => {
    const onListenError = (err: Error) => reject(err);
    socket.once('error', onListenError);
    socket.bind(opts.port, host, () => {
      socket.off('error', onListenError);
      socket.on('error', (err) => opts.onError?.(err));
      const a = socket.address();
      resolve({
        address: a.address,
        port: a.port,
        stats,
        close: () => new Promise<void>((res) => socket.close(() => res())),
      });
    });
  });
}
