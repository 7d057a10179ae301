/**
 * What a peer's reports tell the tracker's optimizer (docs/stats-api.md, "Optimizer inputs"):
 * per rendition its upload slots (`slots.<r>`: the engine's capacity, children it could feed)
 * and depth (`depth.<r>`: hops from the origin, 255 = not fed), and which rendition each upload
 * link carries (ReportLink.rendition), so the tracker knows the current tree of every rendition.
 * Isomorphic, no I/O: PeerHost calls these while building a report.
 */
import type { EngineApi } from '../core/engine-api.js';
import type { ReportLink } from '../core/signaling.js';
import { REPORT_MAX_LINKS } from '../core/signaling.js';

/** Engine.links(): not part of EngineApi (engines without upload links have none). */
export interface UploadLinksView {
  parents: Record<string, string>;
  children: ReadonlyArray<{ peerId: string; rendition: string }>;
  depth: Record<string, number>;
  capacity: Record<string, number>;
  /** Measured bitrate per rendition held, kbit/s. */
  bitrateKbps?: Record<string, number>;
  /** Upload left for more children, kbit/s (capped peers). */
  spareKbps?: number;
  /** The rendition being played: the report's `rendition` unless the page reports its own. */
  playing?: string;
}

/** Renditions whose slots/depth go into one report: 2 stats each, of the 64 a report may hold. */
export const REPORT_MAX_RENDITION_STATS = 8;

/** The engine's upload-link view, or null when the engine has none. May throw (the engine's). */
export function uploadLinksOf(engine: EngineApi): UploadLinksView | null {
  const fn = (engine as EngineApi & { links?: () => UploadLinksView }).links;
  return typeof fn === 'function' ? fn.call(engine) : null;
}

const byte = (v: unknown): number | null =>
  typeof v === 'number' && Number.isFinite(v) ? Math.max(0, Math.min(255, Math.round(v))) : null;

/**
 * `slots.<r>`, `depth.<r>` and `kbps.<r>` for up to REPORT_MAX_RENDITION_STATS renditions
 * (sorted, stable), and `spareKbps`: what the optimizer plans trees and relays with.
 */
export function renditionStats(view: UploadLinksView): Record<string, number> {
  const out: Record<string, number> = {};
  const names = [...new Set([...Object.keys(view.capacity), ...Object.keys(view.depth)])].sort();
  for (const r of names.slice(0, REPORT_MAX_RENDITION_STATS)) {
    const slots = byte(view.capacity[r]);
    const depth = byte(view.depth[r]);
    const kbps = view.bitrateKbps?.[r];
    if (slots !== null) out[`slots.${r}`] = slots;
    if (depth !== null) out[`depth.${r}`] = depth;
    if (typeof kbps === 'number' && Number.isFinite(kbps) && kbps > 0) out[`kbps.${r}`] = Math.round(kbps);
  }
  if (typeof view.spareKbps === 'number' && Number.isFinite(view.spareKbps) && view.spareKbps >= 0) out.spareKbps = Math.round(view.spareKbps);
  return out;
}

/**
 * Tags each neighbor's entry with the rendition of its upload link. A neighbor with upload links
 * in several renditions (a seeder fed all renditions by one parent) keeps its entry untagged
 * (counters, flags) and gets one more entry per link: that link's flag and rendition, zero
 * counters (the stats hub reads only the first entry of a neighbor; the optimizer reads the
 * tagged ones). Extra entries come after every neighbor's own and are cut at REPORT_MAX_LINKS.
 */
export function tagLinkRenditions(links: ReportLink[], view: UploadLinksView | null): ReportLink[] {
  if (!view) return links;
  const roles = new Map<string, Array<{ parent: boolean; rendition: string }>>();
  const add = (peerId: string, parent: boolean, rendition: string) => {
    let list = roles.get(peerId);
    if (!list) roles.set(peerId, (list = []));
    list.push({ parent, rendition });
  };
  for (const [r, id] of Object.entries(view.parents).sort(([a], [b]) => a.localeCompare(b))) add(id, true, r);
  for (const c of view.children) add(c.peerId, false, c.rendition);
  const extra: ReportLink[] = [];
  const out = links.map((l) => {
    const list = roles.get(l.peerId);
    if (!list) return l;
    if (list.length === 1) return { ...l, rendition: list[0].rendition };
    for (const role of list) {
      extra.push(role.parent
        ? { peerId: l.peerId, sent: 0, received: 0, parent: true, rendition: role.rendition }
        : { peerId: l.peerId, sent: 0, received: 0, child: true, rendition: role.rendition });
    }
    return l;
  });
  return out.concat(extra).slice(0, REPORT_MAX_LINKS);
}
