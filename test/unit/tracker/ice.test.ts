import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { hostFromHeader, iceServersFor, turnCredentials, urlHost } from '../../../tracker/ice.js';
import { Client, startTracker, type Started } from './helpers.js';

let tracker: Started | null = null;
afterEach(async () => {
  await tracker?.app.close();
  tracker = null;
});

describe('ICE server configuration', () => {
  it('takes the host from the Host header, stripping the port; rejects junk', () => {
    expect(hostFromHeader('example.org:8000')).toBe('example.org');
    expect(hostFromHeader('10.1.2.3')).toBe('10.1.2.3');
    expect(hostFromHeader('[::1]:8000')).toBe('[::1]');
    expect(hostFromHeader('[fe80::1]')).toBe('[fe80::1]');
    expect(hostFromHeader(undefined)).toBeNull();
    expect(hostFromHeader('evil.org/x?y')).toBeNull();
    expect(hostFromHeader('a b')).toBeNull();
    expect(hostFromHeader('[nope]:1')).toBeNull();
    expect(urlHost('::1')).toBe('[::1]');
    expect(urlHost('::ffff:10.0.0.1')).toBe('10.0.0.1');
  });

  it('prefers publicHost, substitutes {host} in TURN URLs, appends extras', () => {
    const now = 1_700_000_000_000;
    const servers = iceServersFor(
      { publicHost: 'turn.example.org', stunPort: 3478, turn: { urls: ['turn:{host}:3478?transport=udp'], secret: 'k' }, extra: [{ urls: 'stun:stun.example.net' }] },
      '10.0.0.1',
      'peer-12345678',
      now,
    );
    expect(servers[0]).toEqual({ urls: 'stun:turn.example.org:3478' });
    expect(servers[1].urls).toEqual(['turn:turn.example.org:3478?transport=udp']);
    expect(servers[2]).toEqual({ urls: 'stun:stun.example.net' });
    expect(iceServersFor({ stunPort: 0 }, '10.0.0.1', 'p', now)).toEqual([]);
  });

  it('hands out coturn REST credentials valid for one hour', async () => {
    const now = 1_700_000_000_123;
    tracker = await startTracker({ stunPort: 3479, turn: { urls: 'turn:{host}:3478', secret: 'turn-secret' }, now: () => now });
    const c = await Client.connect(tracker.ws);
    const w = await c.join('demo', 'browser', { peerId: 'viewer-0001' });
    c.close();
    expect(w.iceServers[0]).toEqual({ urls: 'stun:127.0.0.1:3479' });
    const turn = w.iceServers[1];
    expect(turn.urls).toBe('turn:127.0.0.1:3478');
    expect(turn.username).toBe(`${Math.floor(now / 1000) + 3600}:viewer-0001`);
    const expected = createHmac('sha1', 'turn-secret').update(turn.username).digest('base64');
    expect(turn.credential).toBe(expected);
    expect(turnCredentials('turn-secret', 'viewer-0001', now)).toEqual({ username: turn.username, credential: expected });
  });

  it('uses publicHost over the Host header in welcomes', async () => {
    tracker = await startTracker({ stunPort: 3478, publicHost: '203.0.113.7' });
    const c = await Client.connect(tracker.ws);
    const w = await c.join('demo', 'browser');
    c.close();
    expect(w.iceServers).toEqual([{ urls: 'stun:203.0.113.7:3478' }]);
  });
});
