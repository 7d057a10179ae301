/** Outgoing reports are trimmed to the tracker's schema, and what the peer host sends validates there. */
import { describe, expect, it } from 'vitest';
import { sanitizeReport } from '../../../peer/host/signaling-client.js';
import { parseClientMessage } from '../../../tracker/schemas.js';
import { REPORT_MAX_BANS, REPORT_MAX_LINKS } from '../../../peer/core/signaling.js';

describe('sanitizeReport', () => {
  it('keeps valid members and drops what the tracker would reject', () => {
    const stats: Record<string, number> = { ok: 1, nan: Number.NaN, 'bad key!': 2 };
    for (let i = 0; i < 80; i++) stats[`k${i}`] = i;
    const links = Array.from({ length: REPORT_MAX_LINKS + 5 }, (_, i) => ({ peerId: `peer-${i}`, sent: i + 0.4, received: 1 }));
    links.unshift({ peerId: 'bad id!', sent: 1, received: 1 }, { peerId: 'negative', sent: -1, received: 1 });
    const msg = sanitizeReport(stats, {
      links: [...links.slice(0, 2), { peerId: 'parent-1', sent: 0, received: 5, parent: true, bad: 2 }, ...links.slice(2)],
      rendition: '360p',
      nat: 'symmetric',
      region: 'eu west', // space: not a valid label
      bans: Array.from({ length: REPORT_MAX_BANS + 3 }, (_, i) => ({ peerId: `ban-${i}`, reason: 'bad\npieces' })),
    });
    expect(Object.keys(msg.stats)).toHaveLength(64);
    expect(msg.stats.ok).toBe(1);
    expect(msg.stats).not.toHaveProperty('nan');
    expect(msg.links).toHaveLength(REPORT_MAX_LINKS);
    expect(msg.links![0]).toEqual({ peerId: 'parent-1', sent: 0, received: 5, parent: true, bad: 2 });
    expect(msg.links![1]).toEqual({ peerId: 'peer-0', sent: 0, received: 1 });
    expect(msg).toMatchObject({ rendition: '360p', nat: 'symmetric' });
    expect(msg).not.toHaveProperty('region');
    expect(msg.bans).toHaveLength(REPORT_MAX_BANS);
    expect(msg.bans![0].reason).toBe('badpieces');
    expect(parseClientMessage(JSON.stringify(msg))).toMatchObject({ ok: true });
  });

  it('never sends an invalid rendition', () => {
    const msg = sanitizeReport({}, { rendition: '720P.HD' });
    expect(msg).not.toHaveProperty('rendition');
    expect(parseClientMessage(JSON.stringify(msg))).toMatchObject({ ok: true });
  });
});
