/**
 * Rebuffering figures of one <video> element: how many times playback stalled and for how long.
 *
 * A stall begins with a 'waiting' event once playback has started (the first 'playing'), unless
 * the element is seeking (a seek's own rebuffering is the viewer's doing, not the network's):
 * from 'seeking' until playback resumes ('playing'), 'waiting' does not count. A stall ends at
 * the next 'playing', or when the viewer pauses, or at 'ended'. A stall already in progress is
 * not ended by a seek: hls.js itself nudges the playhead when it is stuck, and that time is still
 * stalled time.
 *
 * StallMonitor is the pure state machine (fed events and a clock); watchStalls() wires it to a
 * media element. Startup time (attach → first 'playing') is measured too.
 */
import type { Clock } from '../../peer/core/types.js';

export type MediaEventName = 'playing' | 'waiting' | 'seeking' | 'seeked' | 'pause' | 'ended';

export interface StallStats {
  /** Stalls since playback started. */
  stalls: number;
  /** Total stalled time in ms, including the stall in progress. */
  stalledMs: number;
  /** True while stalled. */
  stalled: boolean;
  /** True once playback has started. */
  started: boolean;
  /** ms from the monitor's creation to the first 'playing'; null before. */
  startupMs: number | null;
}

export class StallMonitor {
  private started = false;
  private seeking = false;
  private stallStart: number | null = null;
  private stallCount = 0;
  private closedStallMs = 0;
  private readonly createdAt: number;
  private startupMs: number | null = null;

  constructor(private readonly clock: Clock) {
    this.createdAt = clock.now();
  }

  /** Feeds one media event. Unknown names are ignored. */
  handle(event: MediaEventName | string): void {
    const now = this.clock.now();
    switch (event) {
      case 'playing':
        if (!this.started) {
          this.started = true;
          this.startupMs = now - this.createdAt;
        }
        this.endStall(now);
        this.seeking = false;
        break;
      case 'waiting':
        if (this.started && !this.seeking && this.stallStart === null) {
          this.stallStart = now;
          this.stallCount++;
        }
        break;
      case 'seeking':
        this.seeking = true;
        break;
      case 'seeked':
        // Rebuffering right after a seek is still the seek's: keep `seeking` until 'playing'.
        break;
      case 'pause':
      case 'ended':
        this.endStall(now);
        break;
      default:
        break;
    }
  }

  stats(): StallStats {
    const now = this.clock.now();
    const current = this.stallStart === null ? 0 : now - this.stallStart;
    return {
      stalls: this.stallCount,
      stalledMs: this.closedStallMs + current,
      stalled: this.stallStart !== null,
      started: this.started,
      startupMs: this.startupMs,
    };
  }

  private endStall(now: number): void {
    if (this.stallStart !== null) {
      this.closedStallMs += Math.max(0, now - this.stallStart);
      this.stallStart = null;
    }
  }
}

export const MONITORED_EVENTS: readonly MediaEventName[] = ['playing', 'waiting', 'seeking', 'seeked', 'pause', 'ended'];

/** Minimal event-target shape of a media element (keeps this module free of DOM globals). */
export interface MediaEventSource {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** Feeds a media element's events into the monitor; returns a function that unhooks them. */
export function watchStalls(media: MediaEventSource, monitor: StallMonitor): () => void {
  const listeners = MONITORED_EVENTS.map((name) => {
    const fn = () => monitor.handle(name);
    media.addEventListener(name, fn);
    return [name, fn] as const;
  });
  return () => {
    for (const [name, fn] of listeners) media.removeEventListener(name, fn);
  };
}
