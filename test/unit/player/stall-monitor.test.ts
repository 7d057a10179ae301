import { describe, expect, it } from 'vitest';
import { StallMonitor, watchStalls, MONITORED_EVENTS, type MediaEventSource } from '../../../player/src/stall-monitor.js';

function fakeClock(start = 1000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe('StallMonitor', () => {
  it('ignores waiting before playback started (startup is not a stall) and measures startup', () => {
    const c = fakeClock();
    const m = new StallMonitor(c);
    m.handle('waiting');
    c.advance(800);
    m.handle('playing');
    expect(m.stats()).toEqual({ stalls: 0, stalledMs: 0, stalled: false, started: true, startupMs: 800 });
  });

  it('counts a stall from waiting to playing, including the one in progress', () => {
    const c = fakeClock();
    const m = new StallMonitor(c);
    m.handle('playing');
    c.advance(5000);
    m.handle('waiting');
    c.advance(300);
    expect(m.stats()).toMatchObject({ stalls: 1, stalledMs: 300, stalled: true });
    m.handle('waiting'); // repeated waiting in the same stall
    c.advance(200);
    m.handle('playing');
    c.advance(10_000);
    expect(m.stats()).toMatchObject({ stalls: 1, stalledMs: 500, stalled: false });
    m.handle('waiting');
    c.advance(1000);
    m.handle('playing');
    expect(m.stats()).toMatchObject({ stalls: 2, stalledMs: 1500 });
  });

  it('excludes rebuffering caused by a seek, until playback resumes', () => {
    const c = fakeClock();
    const m = new StallMonitor(c);
    m.handle('playing');
    m.handle('seeking');
    m.handle('waiting');
    c.advance(700);
    m.handle('seeked');
    m.handle('waiting'); // still the seek's rebuffering
    c.advance(300);
    m.handle('playing');
    expect(m.stats()).toMatchObject({ stalls: 0, stalledMs: 0 });
    m.handle('waiting'); // a real stall afterwards counts
    c.advance(100);
    m.handle('playing');
    expect(m.stats()).toMatchObject({ stalls: 1, stalledMs: 100 });
  });

  it('keeps counting a stall through a seek made while stalled (hls.js nudges)', () => {
    const c = fakeClock();
    const m = new StallMonitor(c);
    m.handle('playing');
    m.handle('waiting');
    c.advance(400);
    m.handle('seeking');
    m.handle('seeked');
    c.advance(600);
    m.handle('playing');
    expect(m.stats()).toMatchObject({ stalls: 1, stalledMs: 1000 });
  });

  it('ends a stall when the viewer pauses or the stream ends', () => {
    const c = fakeClock();
    const m = new StallMonitor(c);
    m.handle('playing');
    m.handle('waiting');
    c.advance(250);
    m.handle('pause');
    c.advance(60_000);
    expect(m.stats()).toMatchObject({ stalls: 1, stalledMs: 250, stalled: false });
    m.handle('playing');
    m.handle('waiting');
    c.advance(50);
    m.handle('ended');
    c.advance(1000);
    expect(m.stats()).toMatchObject({ stalls: 2, stalledMs: 300, stalled: false });
  });

  it('watchStalls wires element events and unhooks them', () => {
    const listeners = new Map<string, Set<() => void>>();
    const el: MediaEventSource = {
      addEventListener: (t, fn) => void (listeners.get(t) ?? listeners.set(t, new Set()).get(t)!).add(fn),
      removeEventListener: (t, fn) => void listeners.get(t)?.delete(fn),
    };
    const fire = (t: string) => listeners.get(t)?.forEach((fn) => fn());
    const c = fakeClock();
    const m = new StallMonitor(c);
    const off = watchStalls(el, m);
    expect([...listeners.keys()].sort()).toEqual([...MONITORED_EVENTS].sort());
    fire('playing');
    fire('waiting');
    c.advance(100);
    fire('playing');
    expect(m.stats()).toMatchObject({ stalls: 1, stalledMs: 100 });
    off();
    expect([...listeners.values()].every((s) => s.size === 0)).toBe(true);
  });
});
