/**
 * Peer reports -> the optimizer's view of a channel (OverlayPeer[], tracker/optimizer/loop.ts).
 * Pure: no I/O, no clock. Reports come from the store, possibly written by another tracker
 * through Redis, so every field is checked again here; a malformed field is ignored (as if the
 * peer had not reported it), never trusted and never thrown on.
 *
 * What is read (docs/stats-api.md, "Optimizer inputs"):
 * - `stats["slots.<r>"]` (upload slots in rendition r, integer 0..255), `stats["depth.<r>"]`
 *   (hops from the origin, 255 = not fed), `stats.bufferMs`, `stats.stalls` (watch page),
 *   `stats["kbps.<r>"]` (measured bitrate) and `stats.spareKbps` (upload left), for relays;
 * - `links[]` with `parent: true` and a `rendition`: the peer's current parent in that rendition;
 * - `rendition` (what a viewer plays), `nat`, `region`, and `net` (the address prefix the tracker
 *   holding the connection saw: the default locality scope).
 */
import type { PeerKind } from '../../peer/core/types.js';
import { isValidName } from '../../peer/core/paths.js';
import { NO_DEPTH } from '../../peer/core/codec.js';
import { REPORT_MAX_LINKS } from '../../peer/core/signaling.js';
import { LINK_PEER_ID_PATTERN, REPORT_LABEL_PATTERN } from '../schemas.js';
import type { OverlayPeer } from './loop.js';

const LINK_PEER_ID_RE = new RegExp(LINK_PEER_ID_PATTERN);
const LABEL_RE = new RegExp(REPORT_LABEL_PATTERN);
const STAT_RE = /^(slots|depth|kbps)\.([a-z0-9][a-z0-9_-]{0,31})$/;
/** Bounds of a reported bitrate and spare upload (kbit/s): beyond them the value is ignored. */
const MAX_KBPS = 1_000_000;
/** A viewer's buffer beyond this is as good as full (and bounds hostile values). */
const MAX_BUFFER_MS = 600_000;
/** Scope of peers that report no region and whose address is unknown. */
export const DEFAULT_SCOPE = 'default';

/** A channel member as the optimizer's input builder sees it: registry facts + latest report. */
export interface MemberReport {
  peerId: string;
  /** From the registry (authoritative; the report's own kind is not trusted). */
  kind: PeerKind;
  /** The latest StoredReport (or anything read back from the store), null before the first. */
  report: unknown;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const label = (v: unknown): string | undefined => (typeof v === 'string' && LABEL_RE.test(v) ? v : undefined);
const byteStat = (v: unknown): number | undefined => (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255 ? (v as number) : undefined);
const nonNeg = (v: unknown, max: number): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.min(v, max) : undefined;

/**
 * The network prefix of an address, as a locality scope: IPv4 /16 ("10.77"), IPv6 /32
 * ("2001:db8"); IPv4-mapped IPv6 counts as IPv4. Null for anything else. Only the prefix is
 * kept (in the store and in scopes), never the address.
 */
export function addressPrefix(address: string | undefined | null): string | null {
  if (typeof address !== 'string' || address.length === 0 || address.length > 64) return null;
  const a = address.toLowerCase().startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.\d{1,3}\.\d{1,3}$/.exec(a);
  if (v4) return Number(v4[1]) <= 255 && Number(v4[2]) <= 255 ? `${Number(v4[1])}.${Number(v4[2])}` : null;
  if (!/^[0-9a-f:]+$/i.test(a) || !a.includes(':')) return null;
  const [head] = a.split('::');
  const groups = head.split(':').filter((g) => g.length > 0);
  const g = [...groups, '0', '0'].slice(0, 2).map((x) => x.replace(/^0+(?=.)/, '').toLowerCase());
  return `${g[0]}:${g[1]}`;
}

/** Locality scope: the reported region, else the address prefix, else DEFAULT_SCOPE. */
export function scopeOf(region: string | undefined, net: string | undefined): string {
  if (region) return `r:${region}`;
  if (net) return `n:${net}`;
  return DEFAULT_SCOPE;
}

/** One member's OverlayPeer from its report (null report: what is known without one). */
export function toOverlayPeer(m: MemberReport): OverlayPeer {
  const r = isObj(m.report) ? m.report : {};
  const stats = isObj(r.stats) ? r.stats : {};
  const slots: Record<string, number> = {};
  const kbps: Record<string, number> = {};
  const fed = new Set<string>();
  const depth: Record<string, number> = {};
  let keys = 0;
  for (const [k, v] of Object.entries(stats)) {
    if (++keys > 256) break; // the schema allows 64; a store entry could hold anything
    const match = STAT_RE.exec(k);
    if (!match) continue;
    if (match[1] === 'kbps') {
      if (typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= MAX_KBPS) kbps[match[2]] = v;
      continue;
    }
    const n = byteStat(v);
    if (n === undefined) continue;
    if (match[1] === 'slots') slots[match[2]] = n;
    else if (n < NO_DEPTH) { fed.add(match[2]); depth[match[2]] = n; }
  }
  const parents: Record<string, string> = {};
  const linked = new Set<string>();
  if (Array.isArray(r.links)) {
    for (const l of r.links.slice(0, REPORT_MAX_LINKS)) {
      if (!isObj(l) || typeof l.peerId !== 'string' || !LINK_PEER_ID_RE.test(l.peerId) || l.peerId === m.peerId) continue;
      if (typeof l.rendition !== 'string' || !isValidName(l.rendition)) continue;
      if (l.parent === true && parents[l.rendition] === undefined) parents[l.rendition] = l.peerId;
      if (l.parent === true || l.child === true) linked.add(l.rendition);
    }
  }
  const peer: OverlayPeer = {
    peerId: m.peerId,
    kind: m.kind,
    scope: scopeOf(label(r.region), label(r.net)),
    parents,
    slots,
  };
  if (fed.size > 0) peer.depth = depth;
  const nat = label(r.nat);
  if (nat) peer.nat = nat;
  const relays = Array.isArray(r.relays) ? r.relays.slice(0, 8).filter((x): x is string => typeof x === 'string' && isValidName(x)) : [];
  if (relays.length > 0) peer.relays = relays;
  const rendition = m.kind === 'browser' ? playedRendition(r.rendition, parents, linked, fed, new Set(relays)) : undefined;
  if (rendition) peer.rendition = rendition;
  const buffer = nonNeg(stats.bufferMs, MAX_BUFFER_MS);
  if (buffer !== undefined) peer.bufferMs = buffer;
  const stalls = nonNeg(stats.stalls, Number.MAX_SAFE_INTEGER);
  if (stalls !== undefined) peer.stalls = stalls;
  const spare = nonNeg(stats.spareKbps, MAX_KBPS);
  if (spare !== undefined) peer.spareKbps = spare;
  if (Object.keys(kbps).length > 0) peer.kbps = kbps;
  return peer;
}

/**
 * What a viewer plays: its `rendition` label; else (pages and Node viewers that report none)
 * the one rendition it has a parent in, or upload links in, or is fed in, not counting the
 * renditions it relays. Unknown (not optimized this round; local choice goes on) when that is
 * ambiguous or empty.
 */
function playedRendition(label: unknown, parents: Record<string, string>, linked: Set<string>, fed: Set<string>, relays: Set<string>): string | undefined {
  if (typeof label === 'string' && isValidName(label)) return label;
  for (const set of [new Set(Object.keys(parents)), linked, fed]) {
    const own = [...set].filter((r) => !relays.has(r));
    if (own.length === 1) return own[0];
  }
  return undefined;
}

/**
 * The channel's overlay: one OverlayPeer per member. A member that has not reported yet but that
 * others report as their parent (it just joined and was picked locally) is taken in with as many
 * slots as children claim it, in their renditions, so the optimizer does not tear those links
 * down as if the parent were gone.
 */
export function buildOverlay(members: readonly MemberReport[]): OverlayPeer[] {
  const peers = members.map((m) => ({ m, p: toOverlayPeer(m) }));
  const byId = new Map(peers.map(({ p }) => [p.peerId, p]));
  const reported = new Set(members.filter((m) => m.report != null).map((m) => m.peerId));
  const claims = new Map<string, Map<string, number>>();
  for (const { p } of peers) {
    for (const [r, parent] of Object.entries(p.parents)) {
      const target = byId.get(parent);
      if (!target || reported.has(parent)) continue;
      let per = claims.get(target.peerId);
      if (!per) claims.set(target.peerId, (per = new Map()));
      per.set(r, (per.get(r) ?? 0) + 1);
    }
  }
  for (const [id, per] of claims) {
    const p = byId.get(id)!;
    for (const [r, n] of per) p.slots[r] = Math.max(p.slots[r] ?? 0, n);
    if (p.kind === 'browser' && p.rendition === undefined && per.size === 1) p.rendition = [...per.keys()][0];
  }
  return peers.map(({ p }) => p);
}
