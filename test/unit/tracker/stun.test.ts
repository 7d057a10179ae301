import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ATTR_FINGERPRINT,
  ATTR_MAPPED_ADDRESS,
  ATTR_XOR_MAPPED_ADDRESS,
  BINDING_SUCCESS,
  MAGIC_COOKIE,
  crc32,
  decodeAddress,
  encodeBindingRequest,
  encodeBindingSuccess,
  encodeXorMappedAddress,
  handleStunDatagram,
  parseStunMessage,
  startStunServer,
  type StunServer,
} from '../../../tracker/stun.js';

// RFC 5769 section 2.2/2.3 sample values.
const TXID = Buffer.from('b7e7a701bc34d686fa87dfae', 'hex');

describe('STUN codec', () => {
  it('crc32 matches the standard check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });

  it('encodes XOR-MAPPED-ADDRESS like RFC 5769 (IPv4 and IPv6)', () => {
    const v4 = encodeXorMappedAddress({ family: 'IPv4', address: '192.0.2.1', port: 32853 }, TXID);
    expect(v4.toString('hex')).toBe('0001a147e112a643');
    const v6 = encodeXorMappedAddress({ family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 }, TXID);
    expect(v6.toString('hex')).toBe('0002a1470113a9faa5d3f179bc25f4b5bed2b9d9');
    expect(decodeAddress(v6, TXID)).toEqual({ family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 });
    expect(decodeAddress(v4, TXID)).toEqual({ family: 'IPv4', address: '192.0.2.1', port: 32853 });
  });

  it('builds a Binding Success Response that parses back, with a valid FINGERPRINT', () => {
    for (const from of [
      { family: 'IPv4' as const, address: '10.0.0.7', port: 54321 },
      { family: 'IPv6' as const, address: '::1', port: 1 },
      { family: 'IPv6' as const, address: 'fe80::1:2', port: 65535 },
    ]) {
      const res = encodeBindingSuccess(TXID, from);
      const parsed = parseStunMessage(res);
      if (!parsed.ok) throw new Error(parsed.reason);
      expect(parsed.msg.type).toBe(BINDING_SUCCESS);
      expect(parsed.msg.transactionId.equals(TXID)).toBe(true);
      const byType = new Map(parsed.msg.attributes.map((a) => [a.type, a.value]));
      const expectAddr = from.address === 'fe80::1:2' ? 'fe80:0:0:0:0:0:1:2' : from.address === '::1' ? '0:0:0:0:0:0:0:1' : from.address;
      expect(decodeAddress(byType.get(ATTR_XOR_MAPPED_ADDRESS)!, TXID)).toEqual({ ...from, address: expectAddr });
      expect(decodeAddress(byType.get(ATTR_MAPPED_ADDRESS)!)).toEqual({ ...from, address: expectAddr });
      expect(parsed.msg.attributes.at(-1)!.type).toBe(ATTR_FINGERPRINT);
    }
  });

  it('maps IPv4-mapped IPv6 sources (dual-stack sockets) to IPv4', () => {
    const r = handleStunDatagram(encodeBindingRequest(TXID), { family: 'IPv6', address: '::ffff:192.0.2.1', port: 32853 });
    if (!('response' in r)) throw new Error('ignored');
    const p = parseStunMessage(r.response);
    if (!p.ok) throw new Error(p.reason);
    expect(p.msg.attributes[0].value.toString('hex')).toBe('0001a147e112a643');
  });

  it('ignores malformed datagrams with a reason', () => {
    const from = { family: 'IPv4' as const, address: '127.0.0.1', port: 1 };
    const req = encodeBindingRequest(TXID, true);
    expect('response' in handleStunDatagram(req, from)).toBe(true);
    const cases: Array<[Buffer, string]> = [
      [Buffer.alloc(10), 'short'],
      [Buffer.concat([Buffer.from([0xc0]), req.subarray(1)]), 'not stun'],
      [(() => { const b = Buffer.from(req); b.writeUInt32BE(0xdeadbeef, 4); return b; })(), 'bad cookie'],
      [(() => { const b = Buffer.from(req); b.writeUInt16BE(12, 2); return b; })(), 'bad length'],
      [Buffer.concat([req, Buffer.alloc(4)]), 'bad length'],
      [(() => { const b = Buffer.concat([encodeBindingRequest(TXID), Buffer.from([0x80, 0x22, 0, 9, 0, 0, 0, 0])]); b.writeUInt16BE(8, 2); return b; })(), 'bad attribute'],
      [(() => { const b = Buffer.from(req); b[27] ^= 1; return b; })(), 'bad fingerprint'],
      [(() => { const b = Buffer.from(req); b.writeUInt16BE(0x0011, 0); b.writeUInt32BE(0, 24); return b; })(), 'bad fingerprint'],
      [(() => { const b = encodeBindingRequest(TXID); b.writeUInt16BE(0x0011, 0); return b; })(), 'not binding request'],
      [encodeBindingSuccess(TXID, from), 'not binding request'],
    ];
    cases.forEach(([buf, reason], i) => expect({ i, r: handleStunDatagram(buf, from) }).toEqual({ i, r: { ignored: reason } }));
    expect(MAGIC_COOKIE).toBe(0x2112a442);
  });
});

describe('STUN server over UDP (loopback)', () => {
  let server: StunServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('answers a Binding Request with the client address and counts junk', async () => {
    const ignored: string[] = [];
    server = await startStunServer({ port: 0, host: '127.0.0.1', onIgnored: (r) => ignored.push(r) });
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    try {
      const reply = new Promise<Buffer>((resolve) => sock.once('message', (m) => resolve(m)));
      sock.send(Buffer.from('hello'), server.port, '127.0.0.1');
      sock.send(encodeBindingRequest(TXID), server.port, '127.0.0.1');
      const res = await reply;
      const parsed = parseStunMessage(res);
      if (!parsed.ok) throw new Error(parsed.reason);
      expect(parsed.msg.type).toBe(BINDING_SUCCESS);
      expect(parsed.msg.transactionId.equals(TXID)).toBe(true);
      const xor = parsed.msg.attributes.find((a) => a.type === ATTR_XOR_MAPPED_ADDRESS)!;
      expect(decodeAddress(xor.value, TXID)).toEqual({ family: 'IPv4', address: '127.0.0.1', port: sock.address().port });
      expect(server.stats.answered).toBe(1);
      expect(ignored).toEqual(['short']);
    } finally {
      sock.close();
    }
  });
});

describe('STUN interop', () => {
  it("werift's STUN parser accepts our responses (FINGERPRINT checked)", async () => {
    const { parseMessage } = await import('werift');
    for (const from of [
      { family: 'IPv4' as const, address: '10.1.2.3', port: 5000 },
      { family: 'IPv6' as const, address: 'fe80::1', port: 6000 },
    ]) {
      const m = parseMessage(encodeBindingSuccess(TXID, from));
      expect(m).toBeDefined();
      expect(m!.getAttributeValue('XOR-MAPPED-ADDRESS')).toEqual([from.address, from.port]);
      expect(m!.getAttributeValue('MAPPED-ADDRESS')).toEqual([from.address, from.port]);
    }
  });
});
