/**
 * A minimal TURN client (RFC 5766 Allocate with long-term credentials) for checking that coturn
 * accepts the tracker's REST credentials (tracker/ice.ts) and refuses bad ones.
 */
import dgram from 'node:dgram';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { MAGIC_COOKIE, STUN_HEADER_BYTES, parseStunMessage, decodeAddress } from '../../../tracker/stun.js';

const ALLOCATE = 0x0003;
const ALLOCATE_SUCCESS = 0x0103;
const ALLOCATE_ERROR = 0x0113;
const ATTR_USERNAME = 0x0006;
const ATTR_MESSAGE_INTEGRITY = 0x0008;
const ATTR_ERROR_CODE = 0x0009;
const ATTR_REALM = 0x0014;
const ATTR_NONCE = 0x0015;
const ATTR_XOR_RELAYED_ADDRESS = 0x0016;
const ATTR_REQUESTED_TRANSPORT = 0x0019;

function attr(type: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + Math.ceil(value.length / 4) * 4);
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(value.length, 2);
  value.copy(b, 4);
  return b;
}

function message(type: number, tid: Buffer, attrs: Buffer[], integrityKey?: Buffer): Buffer {
  const body = Buffer.concat(attrs);
  const header = Buffer.alloc(STUN_HEADER_BYTES);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(body.length + (integrityKey ? 24 : 0), 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  tid.copy(header, 8);
  const msg = Buffer.concat([header, body]);
  if (!integrityKey) return msg;
  const mac = createHmac('sha1', integrityKey).update(msg).digest();
  return Buffer.concat([msg, attr(ATTR_MESSAGE_INTEGRITY, mac)]);
}

export type AllocateResult = { ok: true; relayed: string } | { ok: false; code: number; reason: string };

/** Allocates a UDP relay on `server` with (username, password); resolves with the outcome. */
export async function turnAllocate(server: { host: string; port: number }, username: string, password: string, timeoutMs = 3000): Promise<AllocateResult> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, () => r()));
  const transport = Buffer.from([17, 0, 0, 0]);
  const exchange = (req: Buffer) =>
    new Promise<ReturnType<typeof parseStunMessage>>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('TURN server did not answer')), timeoutMs);
      sock.once('message', (m) => (clearTimeout(t), resolve(parseStunMessage(m))));
      sock.send(req, server.port, server.host);
    });
  try {
    const first = await exchange(message(ALLOCATE, randomBytes(12), [attr(ATTR_REQUESTED_TRANSPORT, transport)]));
    if (!first.ok || first.msg.type !== ALLOCATE_ERROR) throw new Error('expected a 401 challenge');
    const realm = first.msg.attributes.find((a) => a.type === ATTR_REALM)?.value;
    const nonce = first.msg.attributes.find((a) => a.type === ATTR_NONCE)?.value;
    if (!realm || !nonce) throw new Error('challenge without realm/nonce');
    const key = createHash('md5').update(`${username}:${realm.toString()}:${password}`).digest();
    const tid = randomBytes(12);
    const res = await exchange(
      message(ALLOCATE, tid, [attr(ATTR_REQUESTED_TRANSPORT, transport), attr(ATTR_USERNAME, Buffer.from(username)), attr(ATTR_REALM, realm), attr(ATTR_NONCE, nonce)], key),
    );
    if (!res.ok) throw new Error(`bad answer: ${res.reason}`);
    if (res.msg.type === ALLOCATE_SUCCESS) {
      const r = res.msg.attributes.find((a) => a.type === ATTR_XOR_RELAYED_ADDRESS);
      const a = r ? decodeAddress(r.value, tid) : null;
      return { ok: true, relayed: a ? `${a.address}:${a.port}` : '?' };
    }
    const e = res.msg.attributes.find((a) => a.type === ATTR_ERROR_CODE)?.value;
    return { ok: false, code: e ? e[2] * 100 + e[3] : 0, reason: e ? e.subarray(4).toString() : '' };
  } finally {
    sock.close();
  }
}
