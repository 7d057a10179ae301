import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { launchTracker } from '../../../tracker/launch.js';
import { ATTR_XOR_MAPPED_ADDRESS, BINDING_SUCCESS, decodeAddress, encodeBindingRequest, parseStunMessage } from '../../../tracker/stun.js';
import { Client, getMetrics, metricValue } from './helpers.js';

describe('launchTracker', () => {
  it('starts HTTP, WebSocket and STUN on loopback and advertises the STUN port', async () => {
    const t = await launchTracker({ port: 0, host: '127.0.0.1', stunPort: 'any' });
    const sock = dgram.createSocket('udp4');
    try {
      expect(t.wsUrls[0]).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/ws$/);
      const c = await Client.connect(t.wsUrls[0]);
      const w = await c.join('demo', 'browser');
      c.close();
      expect(w.iceServers).toEqual([{ urls: `stun:127.0.0.1:${t.stun!.port}` }]);

      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      const txid = Buffer.from('0123456789ab');
      const reply = new Promise<Buffer>((resolve) => sock.once('message', (m) => resolve(m)));
      sock.send(Buffer.from([0xff]), t.stun!.port, '127.0.0.1');
      sock.send(encodeBindingRequest(txid, true), t.stun!.port, '127.0.0.1');
      const parsed = parseStunMessage(await reply);
      if (!parsed.ok) throw new Error(parsed.reason);
      expect(parsed.msg.type).toBe(BINDING_SUCCESS);
      const xor = parsed.msg.attributes.find((a) => a.type === ATTR_XOR_MAPPED_ADDRESS)!;
      expect(decodeAddress(xor.value, txid)?.port).toBe(sock.address().port);
      const m = await getMetrics(t.httpUrls[0]);
      expect(metricValue(m, 'starling_stun_binding_answered_total')).toBe(1);
      expect(metricValue(m, 'starling_stun_ignored_total{reason="short"}')).toBe(1);
    } finally {
      sock.close();
      await t.close();
    }
  });
});
