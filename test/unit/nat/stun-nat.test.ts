/** RFC 5780 server (tracker/stun-nat.ts) and the Node discovery client against it on loopback. */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { BINDING_SUCCESS, decodeAddress, parseStunMessage, ATTR_XOR_MAPPED_ADDRESS, startStunServer, type TransportAddress } from '../../../tracker/stun.js';
import {
  ATTR_OTHER_ADDRESS, ATTR_RESPONSE_ORIGIN, CHANGE_IP, CHANGE_PORT, changeFlags, encodeChangeRequest, handleRfc5780, startRfc5780Server, type Rfc5780Server,
} from '../../../tracker/stun-nat.js';
import { discoverNat } from '../../../peer/node/nat-discovery.js';

const TXID = Buffer.from('b7e7a701bc34d686fa87dfae', 'hex');
const A = (address: string, port: number): TransportAddress => ({ family: 'IPv4', address, port });
const ADDRS = [A('192.0.2.1', 3478), A('192.0.2.1', 3479), A('192.0.2.2', 3478), A('192.0.2.2', 3479)] as const;

describe('RFC 5780 codec', () => {
  it('answers from the socket CHANGE-REQUEST asks for, with RESPONSE-ORIGIN and OTHER-ADDRESS', () => {
    const from = A('203.0.113.9', 40000);
    for (const [flags, expectFrom] of [[0, 0], [CHANGE_PORT, 1], [CHANGE_IP, 2], [CHANGE_IP | CHANGE_PORT, 3]] as const) {
      const req = encodeChangeRequest(TXID, flags);
      const p = parseStunMessage(req);
      expect(p.ok).toBe(true);
      if (p.ok) expect(changeFlags(p.msg.attributes)).toBe(flags);
      const r = handleRfc5780(req, from, 0, ADDRS);
      if (!('response' in r)) throw new Error('ignored');
      expect(r.from).toBe(expectFrom);
      const res = parseStunMessage(r.response);
      if (!res.ok) throw new Error(res.reason);
      expect(res.msg.type).toBe(BINDING_SUCCESS);
      const get = (t: number) => res.msg.attributes.find((a) => a.type === t)!.value;
      expect(decodeAddress(get(ATTR_XOR_MAPPED_ADDRESS), TXID)).toEqual(from);
      expect(decodeAddress(get(ATTR_RESPONSE_ORIGIN))).toEqual(ADDRS[expectFrom]);
      expect(decodeAddress(get(ATTR_OTHER_ADDRESS))).toEqual(ADDRS[3]);
    }
    // Received on the alternate socket: OTHER-ADDRESS is the primary.
    const r = handleRfc5780(encodeChangeRequest(TXID, 0), from, 3, ADDRS);
    if (!('response' in r)) throw new Error('ignored');
    const res = parseStunMessage(r.response);
    if (!res.ok) throw new Error(res.reason);
    expect(decodeAddress(res.msg.attributes.find((a) => a.type === ATTR_OTHER_ADDRESS)!.value)).toEqual(ADDRS[0]);
  });

  it('ignores what is not a Binding Request', () => {
    expect(handleRfc5780(Buffer.from('hello world, not stun'), A('1.2.3.4', 1), 0, ADDRS)).toHaveProperty('ignored');
  });
});

describe('RFC 5780 server + discovery on loopback (127.0.0.1 / 127.0.0.2)', () => {
  let server: Rfc5780Server | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('answers CHANGE-REQUEST from the other address, and a peer without NAT finds itself open', async () => {
    server = await startRfc5780Server({ primaryIp: '127.0.0.1', alternateIp: '127.0.0.2', port: 0 });
    const [p] = server.addresses;
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const answer = new Promise<{ rinfo: dgram.RemoteInfo }>((resolve) => sock.once('message', (_m, rinfo) => resolve({ rinfo })));
    sock.send(encodeChangeRequest(TXID, CHANGE_IP | CHANGE_PORT), p.port, p.address);
    const { rinfo } = await answer;
    expect({ address: rinfo.address, port: rinfo.port }).toEqual({ address: server.addresses[3].address, port: server.addresses[3].port });
    sock.close();

    const r = await discoverNat({ server: { host: '127.0.0.1', port: p.port }, rtoMs: 100, retries: 2 });
    expect(r).toMatchObject({ type: 'open', mapping: 'none', filtering: 'endpoint-independent' });
    expect(r.otherAddress).toEqual(server.addresses[3]);
  });

  it('against a plain RFC 5389 server: knows only that there is no NAT; with no server: udp-blocked', async () => {
    const plain = await startStunServer({ port: 0, host: '127.0.0.1' });
    try {
      const r = await discoverNat({ server: { host: '127.0.0.1', port: plain.port }, rtoMs: 100, retries: 2 });
      expect(r).toMatchObject({ type: 'open', mapping: 'none', filtering: 'unknown', otherAddress: null });
    } finally {
      await plain.close();
    }
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    const r = await discoverNat({ server: { host: '127.0.0.1', port: silent.address().port }, rtoMs: 50, retries: 2 });
    silent.close();
    expect(r.type).toBe('udp-blocked');
  });
});

describe('createNatReporter', () => {
  it('starts discovery once ICE servers are known and then reports the NAT type', async () => {
    const { createNatReporter } = await import('../../../peer/node/nat-discovery.js');
    const server = await startRfc5780Server({ primaryIp: '127.0.0.1', alternateIp: '127.0.0.2', port: 0 });
    try {
      let ice: { urls: string }[] = [];
      const r = createNatReporter(() => ice, { rtoMs: 100, retries: 2 });
      expect(r.extraReport()).toEqual({});
      ice = [{ urls: `stun:127.0.0.1:${server.addresses[0].port}` }];
      expect(r.extraReport()).toEqual({});
      const end = Date.now() + 3000;
      while (!r.result() && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
      expect(r.extraReport()).toEqual({ nat: 'open' });
    } finally {
      await server.close();
    }
  });
});
