/**
 * The tracker's side of parent candidates: per channel, the index of fed peers with a slot to
 * offer (tracker/parent-candidates.ts), built from the peers' latest reports in the store (every
 * tracker's peers when the store is Redis) and rebuilt at most every maxAgeMs however many peers
 * ask: reports come every 5 s, so a fresher index would not tell more.
 */
import type { Clock } from '../peer/core/types.js';
import type { PeerConn } from './context.js';
import type { Registry } from './registry.js';
import type { TrackerStore } from './store/types.js';
import { buildOverlay, type MemberReport } from './optimizer/overlay.js';
import { indexParentCandidates, type RenditionCandidates } from './parent-candidates.js';

/** The channel's members now (registry: every tracker's peers) with their latest reports. */
export async function channelMembers(store: Pick<TrackerStore, 'reports'>, registry: Pick<Registry<PeerConn>, 'peers'>, channel: string): Promise<MemberReport[]> {
  const reports = await store.reports(channel);
  const byId = new Map<string, unknown>();
  for (const r of reports) if (r && typeof r.peerId === 'string') byId.set(r.peerId, r);
  // the registry decides who is in the channel and of which kind: a stale report of a peer
  // that left is not a member, and a report's own `kind` is not trusted
  return registry.peers(channel).map((rec) => ({ peerId: rec.peerId, kind: rec.kind, report: byId.get(rec.peerId) ?? null }));
}

export const PARENT_INDEX_DEFAULTS = {
  maxAgeMs: 1000,
  /** Channels whose index is kept (least recently built dropped first). */
  maxChannels: 1024,
} as const;

type Index = Map<string, RenditionCandidates>;

export class ParentIndexCache {
  private readonly built = new Map<string, { at: number; index: Index }>();
  private readonly building = new Map<string, Promise<Index>>();

  constructor(
    private readonly deps: { store: TrackerStore; registry: Registry<PeerConn>; clock: Clock },
    private readonly maxAgeMs: number = PARENT_INDEX_DEFAULTS.maxAgeMs,
  ) {}

  /** The channel's index, rebuilt first if older than maxAgeMs (concurrent callers share one build). */
  async get(channel: string): Promise<Index> {
    const have = this.built.get(channel);
    if (have && this.deps.clock.now() - have.at < this.maxAgeMs) return have.index;
    let p = this.building.get(channel);
    if (!p) {
      p = this.build(channel).finally(() => this.building.delete(channel));
      this.building.set(channel, p);
    }
    return p;
  }

  private async build(channel: string): Promise<Index> {
    const members = await channelMembers(this.deps.store, this.deps.registry, channel);
    const index = indexParentCandidates(buildOverlay(members));
    this.built.delete(channel);
    this.built.set(channel, { at: this.deps.clock.now(), index });
    while (this.built.size > PARENT_INDEX_DEFAULTS.maxChannels) this.built.delete(this.built.keys().next().value as string);
    return index;
  }
}
