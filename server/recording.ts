/**
 * A channel's recording: every published segment (and its signed manifest) kept on disk, so that
 * a broadcast stays watchable as VoD after it ended (HLS with EXT-X-ENDLIST), beyond the
 * in-memory live window. The index (seq, duration, time, discontinuity) lives in memory; a
 * segment is listed only once both of its files are written. Bounded: past `maxSegments` per
 * rendition the oldest segments are deleted.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { segmentFileName } from '../peer/core/paths.js';
import { INIT_SEQ, silentLogger, type Logger, type SegmentRef } from '../peer/core/types.js';
import type { WindowEntry } from './segment-window.js';

export interface RecordedSegment {
  seq: number;
  durationMs: number;
  createdAt: number;
  discontinuity: boolean;
}

/** What the HTTP layer serves for one segment (a WindowEntry fits). */
export interface StoredSegment {
  data: Uint8Array;
  manifest: { encoded: Uint8Array };
}

export class Recording {
  private readonly index = new Map<string, RecordedSegment[]>();
  private readonly inits = new Map<string, StoredSegment>();
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private readonly log: Logger;

  constructor(private readonly dir: string, private readonly maxSegments = 7200, log?: Logger) {
    this.log = log ?? silentLogger;
  }

  /** Queues the segment for writing (in order); never throws. */
  add(e: WindowEntry): void {
    const rendition = e.ref.rendition;
    if (e.ref.seq === INIT_SEQ) {
      this.inits.set(rendition, { data: e.data, manifest: { encoded: e.manifest.encoded } });
      return;
    }
    if (this.pending > 64) {
      this.log.error({ rendition, seq: e.ref.seq }, 'recording: disk too slow, segment not recorded');
      return;
    }
    this.pending++;
    this.chain = this.chain.then(async () => {
      try {
        const d = join(this.dir, rendition);
        await mkdir(d, { recursive: true });
        const name = segmentFileName(e.ref.seq);
        await writeFile(join(d, name), e.data);
        await writeFile(join(d, `${name}.manifest`), e.manifest.encoded);
        let list = this.index.get(rendition);
        if (!list) this.index.set(rendition, (list = []));
        list.push({ seq: e.ref.seq, durationMs: e.manifest.durationMs, createdAt: e.manifest.createdAt, discontinuity: e.discontinuity });
        while (list.length > this.maxSegments) {
          const gone = list.shift()!;
          const n = segmentFileName(gone.seq);
          await rm(join(d, n), { force: true });
          await rm(join(d, `${n}.manifest`), { force: true });
        }
      } catch (err) {
        this.log.error({ rendition, seq: e.ref.seq, err: String(err) }, 'recording: could not write a segment');
      } finally {
        this.pending--;
      }
    });
  }

  /** Resolves once every queued segment is written. */
  flush(): Promise<void> {
    return this.chain;
  }

  list(rendition: string): RecordedSegment[] {
    return this.index.get(rendition) ?? [];
  }

  has(ref: SegmentRef): boolean {
    if (ref.seq === INIT_SEQ) return this.inits.has(ref.rendition);
    return this.find(ref.rendition, ref.seq) !== null;
  }

  async read(ref: SegmentRef): Promise<StoredSegment | null> {
    if (ref.seq === INIT_SEQ) return this.inits.get(ref.rendition) ?? null;
    if (this.find(ref.rendition, ref.seq) === null) return null;
    const d = join(this.dir, ref.rendition);
    const name = segmentFileName(ref.seq);
    try {
      const [data, manifest] = await Promise.all([readFile(join(d, name)), readFile(join(d, `${name}.manifest`))]);
      return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), manifest: { encoded: new Uint8Array(manifest) } };
    } catch {
      return null;
    }
  }

  private find(rendition: string, seq: number): RecordedSegment | null {
    const list = this.index.get(rendition);
    if (!list) return null;
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = list[mid].seq;
      if (s === seq) return list[mid];
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return null;
  }
}
