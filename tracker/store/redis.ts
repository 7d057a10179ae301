/**
 * RedisStore: several tracker processes share channels through one Redis (standalone or behind
 * Sentinel; not Redis Cluster: the scripts touch keys they compute).
 *
 * Keys (prefix `starling:` by default):
 *   alive:<tracker>      "1" with a TTL, refreshed every ttl/3: the tracker is alive
 *   trackers             set of tracker ids that have written peers
 *   channels             set of channels with peers
 *   peers:<channel>      hash peerId -> "kind|tracker|joinedAt"
 *   tp:<tracker>         set of "channel peerId" a tracker holds (to clean up after it dies)
 *   reports:<channel>    hash peerId -> JSON StoredReport (latest; written at most once a second)
 *   lease:<name>         lease holder id, with a TTL
 *   secret               shared resume-token key (created by the first tracker)
 * Pub/sub:
 *   ev                   membership events, every tracker listens: join / leave / gone
 *   sig:<tracker>        signals for the peers of one tracker
 *
 * Each tracker keeps every peer of every tracker in its in-memory Registry (sampling stays O(k)
 * and synchronous): its own with their Session, the others' with a RemotePeerConn whose sendJson
 * publishes to the owner's sig:<tracker>. Events from one tracker arrive in the order it sent them
 * (one connection publishes, one subscribes), so a peer's join is always known before its signals.
 *
 * A tracker that dies stops refreshing alive:<id>; within ttl the other trackers drop its peers
 * from their registries, and one of them (holding the lease reap:<id>) deletes its entries. Its
 * peers reconnect elsewhere with their resume tokens (the key is shared) and keep their ids.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';
import type { FastifyBaseLogger } from 'fastify';
import { isValidName } from '../../peer/core/paths.js';
import type { PeerKind } from '../../peer/core/types.js';
import { parseTrackerMessage } from '../../peer/host/signaling-client.js';
import type { PeerConn } from '../context.js';
import { Registry, type PeerRecord } from '../registry.js';
import { PEER_ID_RE } from '../schemas.js';
import { isRemote, type RemoteConn, type StoreHealth, type StoredReport, type TrackerStore } from './types.js';

export interface RedisStoreOptions {
  /** redis://[:password@]host:port[/db] */
  url: string;
  trackerId: string;
  /** Key and pub/sub prefix (several deployments can share one Redis). Default 'starling:'. */
  prefix?: string;
  /** A tracker silent this long is dead. Default 5000 ms. */
  aliveTtlMs?: number;
  /** Reports are written to Redis at most this often per peer. Default 1000 ms. */
  reportFlushMs?: number;
  /** A signal to a local peer whose socket has more queued bytes than this is dropped. */
  maxBufferedBytes?: number;
  log?: FastifyBaseLogger;
  /** Registry to put the store's counters in. */
  metrics?: PromRegistry;
  /** Extra ioredis options (tests). */
  redis?: RedisOptions;
}

const KINDS: readonly PeerKind[] = ['origin', 'seeder', 'browser'];
const isKind = (v: unknown): v is PeerKind => typeof v === 'string' && (KINDS as readonly string[]).includes(v);
const TRACKER_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const isTrackerId = (v: unknown): v is string => typeof v === 'string' && TRACKER_ID_RE.test(v);
/** Largest pub/sub payload accepted (a relayed signal is at most 64 KiB of JSON plus an envelope). */
const MAX_EVENT_BYTES = 80 * 1024;
/** Max fields per HSET when flushing reports. */
const FLUSH_CHUNK = 500;

/** Handle of a peer connected to another tracker: signals go through Redis. */
class RemotePeerConn implements RemoteConn {
  readonly bufferedAmount = 0;
  constructor(readonly remoteTracker: string, private readonly store: RedisStore, private readonly channel: string, private readonly peerId: string) {}
  sendJson(msg: object): boolean {
    return this.store.relay(this.remoteTracker, this.channel, this.peerId, msg);
  }
  /** The owner closes its own connection when it sees our join for the same id. */
  close(): void {}
}

// ---- Lua scripts (atomic per call) ----
const JOIN_LUA = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[6])
redis.call('PUBLISH', KEYS[5], ARGV[5])
return 1`;
// Removes the entry only if it is still ours (another tracker may have taken the id over).
const LEAVE_LUA = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[4]) end
end
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[5], ARGV[5])
return 1`;
const LEASE_ACQUIRE_LUA = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`;
const LEASE_RENEW_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`;
const LEASE_RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0`;
// Pops up to ARGV[3] members of a dead tracker's set and deletes the entries still its own.
const REAP_LUA = `
local members = redis.call('SPOP', KEYS[1], tonumber(ARGV[3]))
local needle = '|' .. ARGV[2] .. '|'
for _, m in ipairs(members) do
  local sp = string.find(m, ' ', 1, true)
  if sp then
    local ch = string.sub(m, 1, sp - 1)
    local id = string.sub(m, sp + 1)
    local pk = ARGV[1] .. 'peers:' .. ch
    local v = redis.call('HGET', pk, id)
    if v and string.find(v, needle, 1, true) then
      redis.call('HDEL', pk, id)
      redis.call('HDEL', ARGV[1] .. 'reports:' .. ch, id)
      if redis.call('HLEN', pk) == 0 then redis.call('SREM', ARGV[1] .. 'channels', ch) end
    end
  end
end
return #members`;

type Ev =
  | { t: 'join'; ch: string; id: string; k: PeerKind; tr: string; at: number }
  | { t: 'leave'; ch: string; id: string; tr: string }
  | { t: 'gone'; tr: string };

interface RedisWithScripts extends Redis {
  stJoin(k1: string, k2: string, k3: string, k4: string, k5: string, ...args: string[]): Promise<number>;
  stLeave(k1: string, k2: string, k3: string, k4: string, k5: string, ...args: string[]): Promise<number>;
  stLeaseAcquire(key: string, owner: string, ttl: string): Promise<number>;
  stLeaseRenew(key: string, owner: string, ttl: string): Promise<number>;
  stLeaseRelease(key: string, owner: string): Promise<number>;
  stReap(key: string, prefix: string, dead: string, count: string): Promise<number>;
}

function parseEvent(text: string): Ev | null {
  if (text.length > MAX_EVENT_BYTES) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const e = v as Record<string, unknown>;
  if (!isTrackerId(e.tr)) return null;
  if (e.t === 'gone') return { t: 'gone', tr: e.tr };
  if (typeof e.ch !== 'string' || !isValidName(e.ch) || typeof e.id !== 'string' || !PEER_ID_RE.test(e.id)) return null;
  if (e.t === 'leave') return { t: 'leave', ch: e.ch, id: e.id, tr: e.tr };
  if (e.t === 'join' && isKind(e.k) && typeof e.at === 'number' && Number.isFinite(e.at)) {
    return { t: 'join', ch: e.ch, id: e.id, k: e.k, tr: e.tr, at: e.at };
  }
  return null;
}

const RELAY_TYPE_RE = /^[a-z][a-z_-]{0,31}$/;

/** The message object to deliver, or null (see RedisStore.onSignal). */
function relayable(text: string): object | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const type = (v as { type?: unknown }).type;
  if (typeof type !== 'string' || !RELAY_TYPE_RE.test(type) || type === 'welcome') return null;
  // Signals: validated as any client would (tracker/schemas.ts checked them at the sending
  // tracker too), then relayed verbatim, as a local signal is.
  if (type === 'signal' && parseTrackerMessage(text)?.type !== 'signal') return null;
  return v;
}

/** "kind|tracker|joinedAt" */
function parseEntry(v: string): { kind: PeerKind; tracker: string; joinedAt: number } | null {
  const [kind, tracker, at] = v.split('|');
  const joinedAt = Number(at);
  if (!isKind(kind) || !isTrackerId(tracker) || !Number.isFinite(joinedAt)) return null;
  return { kind, tracker, joinedAt };
}

function parseStoredReport(peerId: string, text: string): StoredReport | null {
  if (text.length > MAX_EVENT_BYTES) return null;
  try {
    const r = JSON.parse(text) as StoredReport;
    if (typeof r !== 'object' || r === null || !isKind(r.kind) || typeof r.at !== 'number') return null;
    if (typeof r.stats !== 'object' || r.stats === null) return null;
    for (const v of Object.values(r.stats)) if (typeof v !== 'number') return null;
    return { ...r, peerId };
  } catch {
    return null;
  }
}

export class RedisStore implements TrackerStore {
  readonly backend = 'redis' as const;
  readonly trackerId: string;
  readonly registry = new Registry<PeerConn>();
  private readonly prefix: string;
  private readonly aliveTtl: number;
  private readonly flushMs: number;
  private readonly maxBuffered: number;
  private readonly cmd: RedisWithScripts;
  private readonly sub: Redis;
  private readonly log: FastifyBaseLogger | undefined;
  /** Local peers per channel. */
  private readonly localCount = new Map<string, number>();
  private local = 0;
  /** Remote records per tracker (dropping a dead tracker is O(its peers)). */
  private readonly byTracker = new Map<string, Set<PeerRecord<PeerConn>>>();
  /** The value we wrote for each local peer (conditional delete on leave). */
  private readonly written = new WeakMap<PeerRecord<PeerConn>, string>();
  private readonly dirty = new Map<string, Map<string, string>>();
  private timers: ReturnType<typeof setInterval>[] = [];
  private subReady = false;
  private started = false;
  private closed = false;
  private liveTrackers = 1;
  private c: {
    ops: Counter<'op'>;
    errors: Counter;
    signals: Counter<'direction'>;
    events: Counter<'type'>;
  } | null = null;

  constructor(private readonly opts: RedisStoreOptions) {
    if (!isTrackerId(opts.trackerId)) throw new TypeError('tracker id must match [A-Za-z0-9_.-]{1,64}');
    this.trackerId = opts.trackerId;
    this.prefix = opts.prefix ?? 'starling:';
    this.aliveTtl = opts.aliveTtlMs ?? 5000;
    this.flushMs = opts.reportFlushMs ?? 1000;
    this.maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024;
    this.log = opts.log;
    const base: RedisOptions = {
      lazyConnect: true,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 3,
      retryStrategy: (n) => Math.min(2000, 100 * n),
      connectionName: `starling-tracker-${opts.trackerId}`,
      ...opts.redis,
    };
    this.cmd = new Redis(opts.url, base) as RedisWithScripts;
    this.sub = new Redis(opts.url, { ...base, enableAutoPipelining: false, connectionName: `starling-tracker-${opts.trackerId}-sub` });
    this.cmd.defineCommand('stJoin', { numberOfKeys: 5, lua: JOIN_LUA });
    this.cmd.defineCommand('stLeave', { numberOfKeys: 5, lua: LEAVE_LUA });
    this.cmd.defineCommand('stLeaseAcquire', { numberOfKeys: 1, lua: LEASE_ACQUIRE_LUA });
    this.cmd.defineCommand('stLeaseRenew', { numberOfKeys: 1, lua: LEASE_RENEW_LUA });
    this.cmd.defineCommand('stLeaseRelease', { numberOfKeys: 1, lua: LEASE_RELEASE_LUA });
    this.cmd.defineCommand('stReap', { numberOfKeys: 1, lua: REAP_LUA });
    this.cmd.on('error', (err) => this.log?.warn({ err: String(err) }, 'redis command connection error'));
    this.sub.on('error', (err) => this.log?.warn({ err: String(err) }, 'redis subscriber connection error'));
    if (opts.metrics) this.attachMetrics(opts.metrics);
  }

  /** Puts the store's counters and gauges in a prom-client registry (once). */
  attachMetrics(registry: PromRegistry): void {
    if (this.c) return;
    const registers = [registry];
    this.c = {
      ops: new Counter({ name: 'starling_tracker_store_ops_total', help: 'Redis store operations, by kind', labelNames: ['op'], registers }),
      errors: new Counter({ name: 'starling_tracker_store_errors_total', help: 'Redis store operations that failed', registers }),
      signals: new Counter({
        name: 'starling_tracker_remote_signals_total',
        help: 'Signals relayed through Redis: out (to another tracker), in (delivered here), dropped (no such local peer, congested or malformed)',
        labelNames: ['direction'],
        registers,
      }),
      events: new Counter({ name: 'starling_tracker_store_events_total', help: 'Membership events from other trackers, by type', labelNames: ['type'], registers }),
    };
    const self = this;
    new Gauge({
      name: 'starling_tracker_store_trackers', help: 'Live trackers sharing the Redis store', registers,
      collect() { this.set(self.liveTrackers); },
    });
    new Gauge({
      name: 'starling_tracker_local_peers', help: 'Peers connected to this tracker (starling_tracker_peers counts those of every tracker)', registers,
      collect() { this.set(self.local); },
    });
    new Gauge({
      name: 'starling_tracker_store_connected', help: '1 while the Redis subscriber connection is up', registers,
      collect() { this.set(self.subReady ? 1 : 0); },
    });
  }

  private key(k: string): string {
    return this.prefix + k;
  }

  private lastFailLog = -Infinity;
  private failsSinceLog = 0;

  /** Counts a failed operation; logs at most every 5 s (a Redis outage fails every write). */
  private fail(op: string): (err: unknown) => void {
    return (err) => {
      this.c?.errors.inc();
      if (this.closed) return;
      this.failsSinceLog++;
      const now = Date.now();
      if (now - this.lastFailLog < 5000) return;
      this.log?.warn({ err: String(err), op, failures: this.failsSinceLog }, 'redis store operations failing');
      this.lastFailLog = now;
      this.failsSinceLog = 0;
    };
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await Promise.all([this.cmd.connect(), this.sub.connect()]);
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(channel.toString('latin1'), message));
    await this.sub.subscribe(this.key('ev'), this.key(`sig:${this.trackerId}`));
    this.subReady = true;
    await this.heartbeat();
    // A restarted tracker with a fixed id: whatever it held before is stale.
    await this.reapTracker(this.trackerId);
    await this.loadSnapshot();
    // After a Redis outage: resubscribe (ioredis does), then reload and re-assert our peers.
    this.sub.on('ready', () => {
      if (this.closed) return;
      this.subReady = true;
      void this.resync().catch(this.fail('resync'));
    });
    this.sub.on('close', () => {
      this.subReady = false;
    });
    const hb = setInterval(() => void this.heartbeat().catch(this.fail('heartbeat')), Math.max(200, Math.floor(this.aliveTtl / 3)));
    const reap = setInterval(() => void this.reapDead().catch(this.fail('reap')), Math.max(250, Math.floor(this.aliveTtl / 2)));
    const flush = setInterval(() => this.flushReports(), this.flushMs);
    this.timers = [hb, reap, flush];
    for (const t of this.timers) t.unref();
  }

  private async heartbeat(): Promise<void> {
    await Promise.all([
      this.cmd.set(this.key(`alive:${this.trackerId}`), '1', 'PX', this.aliveTtl),
      this.cmd.sadd(this.key('trackers'), this.trackerId),
    ]);
  }

  /** Loads every other live tracker's peers into the registry. */
  private async loadSnapshot(): Promise<void> {
    const alive = await this.aliveTrackers();
    const channels = (await this.cmd.smembers(this.key('channels'))).filter(isValidName);
    for (const ch of channels) {
      const entries = await this.cmd.hgetall(this.key(`peers:${ch}`));
      for (const [id, v] of Object.entries(entries)) {
        const e = parseEntry(v);
        if (!e || !PEER_ID_RE.test(id) || e.tracker === this.trackerId || !alive.has(e.tracker)) continue;
        this.addRemote(ch, id, e.kind, e.tracker, e.joinedAt);
      }
    }
  }

  private async aliveTrackers(): Promise<Set<string>> {
    const ids = (await this.cmd.smembers(this.key('trackers'))).filter(isTrackerId);
    const flags = await Promise.all(ids.map((id) => this.cmd.exists(this.key(`alive:${id}`))));
    const alive = new Set(ids.filter((_, i) => flags[i] === 1));
    alive.add(this.trackerId);
    this.liveTrackers = alive.size;
    return alive;
  }

  private async resync(): Promise<void> {
    this.log?.info({}, 'redis reconnected: reloading the shared state');
    for (const [tr] of this.byTracker) this.dropTracker(tr);
    await this.heartbeat();
    const jobs: Promise<unknown>[] = [];
    for (const ch of this.localChannels()) {
      for (const rec of this.registry.peers(ch)) if (!isRemote(rec.conn)) jobs.push(this.writeJoin(rec));
    }
    await Promise.all(jobs);
    await this.loadSnapshot();
  }

  /** Drops the peers of trackers that stopped refreshing their alive key; one of us cleans up. */
  private async reapDead(): Promise<void> {
    if (this.closed) return;
    const alive = await this.aliveTrackers();
    const known = (await this.cmd.smembers(this.key('trackers'))).filter(isTrackerId);
    for (const tr of [...this.byTracker.keys()]) if (!alive.has(tr)) this.dropTracker(tr);
    for (const tr of known) {
      if (alive.has(tr)) continue;
      if (!(await this.acquireLease(`reap:${tr}`, this.trackerId, 30_000))) continue;
      const n = await this.reapTracker(tr);
      await this.cmd.srem(this.key('trackers'), tr);
      await this.cmd.publish(this.key('ev'), JSON.stringify({ t: 'gone', tr }));
      this.log?.warn({ tracker: tr, peers: n }, 'tracker gone: its peers removed from the store');
    }
  }

  private async reapTracker(tr: string): Promise<number> {
    let total = 0;
    for (let i = 0; i < 10_000; i++) {
      const n = await this.cmd.stReap(this.key(`tp:${tr}`), this.prefix, tr, '1000');
      total += n;
      if (n < 1000) break;
    }
    return total;
  }

  private dropTracker(tr: string): void {
    const set = this.byTracker.get(tr);
    if (!set) return;
    this.byTracker.delete(tr);
    for (const rec of set) this.registry.remove(rec);
    this.log?.info({ tracker: tr, peers: set.size }, 'peers of a departed tracker dropped');
  }

  private addRemote(ch: string, id: string, kind: PeerKind, tr: string, joinedAt: number): void {
    const existing = this.registry.get(ch, id);
    if (existing) {
      if (isRemote(existing.conn)) {
        this.removeRemote(existing);
      } else {
        // Another tracker took this id over (the peer resumed there): our connection is stale.
        existing.conn.close(4000, 'resumed on another tracker');
        if (this.registry.get(ch, id) === existing) this.registry.remove(existing);
      }
    }
    const rec = this.registry.add({ peerId: id, kind, channel: ch, joinedAt, conn: new RemotePeerConn(tr, this, ch, id) });
    let set = this.byTracker.get(tr);
    if (!set) this.byTracker.set(tr, (set = new Set()));
    set.add(rec);
  }

  private removeRemote(rec: PeerRecord<PeerConn>): void {
    this.registry.remove(rec);
    if (isRemote(rec.conn)) this.byTracker.get(rec.conn.remoteTracker)?.delete(rec);
  }

  private onMessage(channel: string, message: Buffer): void {
    if (message.length > MAX_EVENT_BYTES) return;
    const text = message.toString('utf8');
    if (channel === this.key('ev')) return this.onEvent(text);
    if (channel === this.key(`sig:${this.trackerId}`)) return this.onSignal(text);
  }

  private onEvent(text: string): void {
    const e = parseEvent(text);
    if (!e || e.tr === this.trackerId) return;
    this.c?.events.inc({ type: e.t });
    if (e.t === 'gone') return this.dropTracker(e.tr);
    const cur = this.registry.get(e.ch, e.id);
    if (e.t === 'join') {
      this.addRemote(e.ch, e.id, e.k, e.tr, e.at);
    } else if (cur && isRemote(cur.conn) && cur.conn.remoteTracker === e.tr) {
      this.removeRemote(cur);
    }
  }

  /**
   * A message for one of our peers from another tracker: a relayed signal, or anything else a
   * tracker sends a peer through its registry handle (e.g. the optimizer leader's decisions for
   * peers connected here). Signals are validated as a client would; other messages must be a
   * JSON object with a plain `type` (never a welcome, which belongs to a connection).
   */
  private onSignal(text: string): void {
    let env: unknown;
    try {
      env = JSON.parse(text);
    } catch {
      this.c?.signals.inc({ direction: 'dropped' });
      return;
    }
    const e = env as { ch?: unknown; to?: unknown; m?: unknown };
    if (typeof e !== 'object' || e === null || typeof e.ch !== 'string' || typeof e.to !== 'string' || typeof e.m !== 'string') {
      this.c?.signals.inc({ direction: 'dropped' });
      return;
    }
    const target = this.registry.get(e.ch, e.to);
    const msg = target && !isRemote(target.conn) ? relayable(e.m) : null;
    if (!target || !msg || target.conn.bufferedAmount > this.maxBuffered || !target.conn.sendJson(msg)) {
      this.c?.signals.inc({ direction: 'dropped' });
      return;
    }
    this.c?.signals.inc({ direction: 'in' });
  }

  /** Publishes a message for a peer held by tracker `tr`. */
  relay(tr: string, ch: string, to: string, msg: object): boolean {
    if (this.closed) return false;
    this.c?.signals.inc({ direction: 'out' });
    this.cmd.publish(this.key(`sig:${tr}`), JSON.stringify({ ch, to, m: JSON.stringify(msg) })).catch(this.fail('publish'));
    return true;
  }

  private writeJoin(rec: PeerRecord<PeerConn>): Promise<unknown> {
    const value = `${rec.kind}|${this.trackerId}|${rec.joinedAt}`;
    this.written.set(rec, value);
    const ev: Ev = { t: 'join', ch: rec.channel, id: rec.peerId, k: rec.kind, tr: this.trackerId, at: rec.joinedAt };
    this.c?.ops.inc({ op: 'join' });
    return this.cmd
      .stJoin(
        this.key(`peers:${rec.channel}`), this.key(`tp:${this.trackerId}`), this.key('channels'), this.key('trackers'), this.key('ev'),
        rec.peerId, value, `${rec.channel} ${rec.peerId}`, rec.channel, JSON.stringify(ev), this.trackerId,
      )
      .catch(this.fail('join'));
  }

  peerJoined(rec: PeerRecord<PeerConn>): void {
    this.local++;
    this.localCount.set(rec.channel, (this.localCount.get(rec.channel) ?? 0) + 1);
    if (!this.closed) void this.writeJoin(rec);
  }

  peerLeft(rec: PeerRecord<PeerConn>): void {
    if (isRemote(rec.conn)) {
      // A remote record taken over by a local join (resume): forget it here only.
      this.byTracker.get(rec.conn.remoteTracker)?.delete(rec);
      return;
    }
    this.local--;
    const n = (this.localCount.get(rec.channel) ?? 1) - 1;
    if (n <= 0) this.localCount.delete(rec.channel);
    else this.localCount.set(rec.channel, n);
    this.dirty.get(rec.channel)?.delete(rec.peerId);
    const value = this.written.get(rec);
    if (value === undefined || this.closed) return;
    const ev: Ev = { t: 'leave', ch: rec.channel, id: rec.peerId, tr: this.trackerId };
    this.c?.ops.inc({ op: 'leave' });
    this.cmd
      .stLeave(
        this.key(`peers:${rec.channel}`), this.key(`tp:${this.trackerId}`), this.key(`reports:${rec.channel}`), this.key('channels'), this.key('ev'),
        rec.peerId, value, `${rec.channel} ${rec.peerId}`, rec.channel, JSON.stringify(ev),
      )
      .catch(this.fail('leave'));
  }

  putReport(rec: PeerRecord<PeerConn>, report: Omit<StoredReport, 'peerId' | 'kind' | 'at'>, at: number): void {
    let m = this.dirty.get(rec.channel);
    if (!m) this.dirty.set(rec.channel, (m = new Map()));
    m.set(rec.peerId, JSON.stringify({ kind: rec.kind, at, ...report }));
  }

  /** Writes the reports received since the last flush: one HSET per channel (chunked). */
  flushReports(): void {
    if (this.closed) return;
    for (const [ch, m] of this.dirty) {
      if (m.size === 0) continue;
      const args: string[] = [];
      for (const [id, v] of m) {
        args.push(id, v);
        if (args.length >= FLUSH_CHUNK * 2) {
          this.cmd.hset(this.key(`reports:${ch}`), ...args).catch(this.fail('reports'));
          this.c?.ops.inc({ op: 'reports' });
          args.length = 0;
        }
      }
      if (args.length > 0) {
        this.cmd.hset(this.key(`reports:${ch}`), ...args).catch(this.fail('reports'));
        this.c?.ops.inc({ op: 'reports' });
      }
      m.clear();
    }
  }

  async reports(channel: string): Promise<StoredReport[]> {
    if (!isValidName(channel)) return [];
    const all = await this.cmd.hgetall(this.key(`reports:${channel}`));
    const out: StoredReport[] = [];
    for (const [id, text] of Object.entries(all)) {
      if (!PEER_ID_RE.test(id)) continue;
      const r = parseStoredReport(id, text);
      if (r) out.push(r);
    }
    // Reports received here but not flushed yet are newer.
    const pending = this.dirty.get(channel);
    if (pending) {
      const byId = new Map(out.map((r) => [r.peerId, r]));
      for (const [id, text] of pending) {
        const r = parseStoredReport(id, text);
        if (r) byId.set(id, r);
      }
      return [...byId.values()];
    }
    return out;
  }

  localChannels(): string[] {
    return [...this.localCount.keys()];
  }

  get localSize(): number {
    return this.local;
  }

  async sharedSecret(): Promise<Uint8Array> {
    const key = this.key('secret');
    await this.cmd.set(key, randomBytes(32).toString('base64'), 'NX');
    const v = await this.cmd.get(key);
    const bytes = v ? Buffer.from(v, 'base64') : null;
    if (!bytes || bytes.length < 16) throw new Error('shared secret in redis is malformed');
    return new Uint8Array(bytes);
  }

  health(): StoreHealth {
    return { backend: 'redis', connected: this.subReady && this.cmd.status === 'ready', trackers: this.liveTrackers };
  }

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    this.c?.ops.inc({ op: 'lease' });
    return (await this.cmd.stLeaseAcquire(this.key(`lease:${name}`), owner, String(Math.max(1, Math.round(ttlMs))))) === 1;
  }

  async renewLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    this.c?.ops.inc({ op: 'lease' });
    return (await this.cmd.stLeaseRenew(this.key(`lease:${name}`), owner, String(Math.max(1, Math.round(ttlMs))))) === 1;
  }

  async releaseLease(name: string, owner: string): Promise<boolean> {
    return (await this.cmd.stLeaseRelease(this.key(`lease:${name}`), owner)) === 1;
  }

  async leaseOwner(name: string): Promise<string | null> {
    return this.cmd.get(this.key(`lease:${name}`));
  }

  /** Graceful: local peers have left (their leaves are queued); flush, forget us, disconnect. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.started) {
      this.flushReports();
      try {
        await Promise.all([
          this.cmd.del(this.key(`alive:${this.trackerId}`)),
          this.reapTracker(this.trackerId).then(() => this.cmd.srem(this.key('trackers'), this.trackerId)),
          this.cmd.publish(this.key('ev'), JSON.stringify({ t: 'gone', tr: this.trackerId })),
        ]);
      } catch (err) {
        this.fail('close')(err);
      }
    }
    this.closed = true;
    this.subReady = false;
    await Promise.allSettled([this.sub.quit(), this.cmd.quit()]);
    this.sub.disconnect();
    this.cmd.disconnect();
  }
}
