/**
 * ICE restart policy, shared by the werift and the browser transport (NAT traversal, issue 8).
 *
 * An open connection whose path dies (the NAT gateway's public mapping changed, the peer moved to
 * another network, a Wi-Fi/cellular switch) is repaired in place by an ICE restart: new ICE
 * credentials and fresh candidates are exchanged through the tracker (the usual offer/answer and
 * trickled candidates), ICE finds a new pair, and the DTLS session, the SCTP association and the
 * data channel carry on over it. The engine's Link stays open throughout; SCTP retransmits what
 * was lost during the outage, so no frame is lost.
 *
 * Policy (one IceRestarter per open connection):
 * - `down(reason)`: the transport saw the connection go 'disconnected' / 'failed' (browsers), or
 *   no packet on the selected pair for `silenceMs` (werift, whose own detection is the 30 s consent
 *   expiry). A grace period (`graceMs`) lets a blip recover by itself.
 * - then up to `maxAttempts` restarts; an attempt not connected within `attemptTimeoutMs` (or one
 *   that fails outright) is followed by a back-off (`backoffMs`, doubling) and the next attempt;
 * - `up()`: the connection carries traffic again: back to idle (the attempt count starts over);
 * - after the last failed attempt, `giveUp()`: the transport closes the Link and the peer host
 *   reconnects from scratch (its existing path: back-off, fresh connection, fresh gathering).
 * With the defaults a dead path is given up about 20 s after it was noticed.
 *
 * Who offers: either side may. The side that did not create the original offer waits
 * `politeExtraGraceMs` longer, so when both notice the same outage, usually only the original
 * offerer restarts; if both offer at once (glare), the original offerer ignores the other's offer
 * and the other rolls its own back and answers (the "perfect negotiation" roles).
 *
 * Pure: no timers of its own (a RestartClock is injected), no WebRTC.
 */

export interface IceRestartOptions {
  /** A connection seen down waits this long before the first restart (it may recover alone). */
  graceMs?: number;
  /** Extra wait on the side that did not make the original offer (see the file comment). */
  politeExtraGraceMs?: number;
  /** Restart attempts per outage before giving up. 0 disables ICE restarts (outage = link closed). */
  maxAttempts?: number;
  /** An attempt not connected after this long counts as failed. */
  attemptTimeoutMs?: number;
  /** Wait before attempt n+1: backoffMs * 2^(n-1), capped at maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /**
   * werift: no packet received on the selected candidate pair for this long counts as
   * 'disconnected' (werift itself only notices a dead path when consent expires after 30 s). The
   * transport shortens SCTP's idle heartbeat so that a healthy idle link is never this silent.
   */
  silenceMs?: number;
}

export const ICE_RESTART_DEFAULTS: Readonly<Required<IceRestartOptions>> = {
  graceMs: 1000,
  politeExtraGraceMs: 1500,
  maxAttempts: 3,
  attemptTimeoutMs: 5000,
  backoffMs: 1000,
  maxBackoffMs: 8000,
  silenceMs: 4000,
};

export function iceRestartConfig(o: IceRestartOptions | undefined): Required<IceRestartOptions> {
  const out = { ...ICE_RESTART_DEFAULTS } as Required<IceRestartOptions>;
  for (const k of Object.keys(ICE_RESTART_DEFAULTS) as (keyof IceRestartOptions)[]) {
    const v = o?.[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`iceRestart.${k} must be a number >= 0`);
    out[k] = v;
  }
  out.maxAttempts = Math.floor(out.maxAttempts);
  return out;
}

/** What happened, for counters and logs (ConnectorOptions.onIceRestart). */
export type IceRestartEvent =
  /** The connection looked down (grace period started). */
  | { type: 'down'; reason: string }
  /** Restart attempt `attempt` (1-based) began: a restart offer goes out. */
  | { type: 'restart'; attempt: number; reason: string }
  /** Traffic again, `ms` after it was first seen down; attempt 0 = recovered during the grace period. */
  | { type: 'recovered'; attempt: number; ms: number; relayed?: boolean }
  /** Every attempt failed: the link is closed, `ms` after it was first seen down. */
  | { type: 'gave-up'; attempts: number; ms: number };

export interface RestartClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realRestartClock: RestartClock = {
  now: () => (typeof performance !== 'undefined' ? performance.now() : Date.now()),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface RestartHooks {
  /** Start attempt `attempt`: send a restart offer. May throw (the attempt then fails at its timeout). */
  restart(attempt: number): void;
  /** Every attempt failed: close the connection. */
  giveUp(): void;
  onEvent?(e: IceRestartEvent): void;
}

export type RestartPhase = 'idle' | 'grace' | 'restarting' | 'backoff' | 'stopped';

export class IceRestarter {
  private phase: RestartPhase = 'idle';
  private timer: unknown = null;
  private attempt = 0;
  private downAt = 0;
  private downReason = '';
  private readonly cfg: Required<IceRestartOptions>;
  private readonly grace: number;
  /** Attempts made over the connection's life (all outages). */
  totalAttempts = 0;

  constructor(
    cfg: Required<IceRestartOptions>,
    /** The side that made the original offer (impolite: its restart offers win glare). */
    readonly initiator: boolean,
    private readonly hooks: RestartHooks,
    private readonly clock: RestartClock = realRestartClock,
  ) {
    this.cfg = cfg;
    this.grace = cfg.graceMs + (initiator ? 0 : cfg.politeExtraGraceMs);
  }

  get state(): RestartPhase {
    return this.phase;
  }

  /** An outage is being handled (grace, attempt or back-off). */
  get active(): boolean {
    return this.phase === 'grace' || this.phase === 'restarting' || this.phase === 'backoff';
  }

  /** The connection looks down. Idempotent while an outage is being handled. */
  down(reason: string): void {
    if (this.phase !== 'idle') return;
    this.phase = 'grace';
    this.downAt = this.clock.now();
    this.downReason = reason;
    this.attempt = 0;
    this.emit({ type: 'down', reason });
    this.arm(this.grace, () => this.next());
  }

  /**
   * Restart now, skipping the grace period or the back-off (e.g. the host learned that the
   * network changed, or its tracker connection is back after an outage: offers sent meanwhile
   * were lost). An attempt in progress counts as failed. `onlyIfDown`: only during an outage.
   * Returns whether an attempt started (or the policy gave up).
   */
  restartNow(reason: string, onlyIfDown = false): boolean {
    if (this.phase === 'stopped') return false;
    if (this.phase === 'idle') {
      if (onlyIfDown) return false;
      this.downAt = this.clock.now();
      this.attempt = 0;
    }
    this.downReason = reason;
    this.next();
    return true;
  }

  /** The connection carries traffic again. */
  up(relayed?: boolean): void {
    if (!this.active) return;
    this.clear();
    const attempt = this.attempt;
    this.phase = 'idle';
    this.attempt = 0;
    const e: IceRestartEvent = { type: 'recovered', attempt, ms: Math.round(this.clock.now() - this.downAt) };
    if (relayed !== undefined) e.relayed = relayed;
    this.emit(e);
  }

  /** The current attempt failed for sure (ICE 'failed', the offer could not be made): back off now. */
  attemptFailed(): void {
    if (this.phase !== 'restarting') return;
    this.clear();
    this.afterAttempt();
  }

  /**
   * The remote peer sent a restart offer: while still in our grace period, give its attempt time
   * before starting our own.
   */
  remoteRestart(): void {
    if (this.phase === 'grace') this.arm(this.cfg.attemptTimeoutMs, () => this.next());
  }

  stop(): void {
    this.clear();
    this.phase = 'stopped';
  }

  private next(): void {
    this.clear();
    if (this.attempt >= this.cfg.maxAttempts) {
      this.phase = 'stopped';
      this.emit({ type: 'gave-up', attempts: this.attempt, ms: Math.round(this.clock.now() - this.downAt) });
      this.hooks.giveUp();
      return;
    }
    this.attempt++;
    this.totalAttempts++;
    this.phase = 'restarting';
    this.emit({ type: 'restart', attempt: this.attempt, reason: this.downReason });
    this.arm(this.cfg.attemptTimeoutMs, () => this.afterAttempt());
    try {
      this.hooks.restart(this.attempt);
    } catch {
      // the attempt fails at its timeout (or sooner through attemptFailed)
    }
  }

  private afterAttempt(): void {
    if (this.attempt >= this.cfg.maxAttempts) {
      this.next(); // gives up
      return;
    }
    this.phase = 'backoff';
    const wait = Math.min(this.cfg.maxBackoffMs, this.cfg.backoffMs * 2 ** Math.max(0, this.attempt - 1));
    this.arm(wait, () => this.next());
  }

  private arm(ms: number, fn: () => void): void {
    this.clear();
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      fn();
    }, ms);
  }

  private clear(): void {
    if (this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private emit(e: IceRestartEvent): void {
    try {
      this.hooks.onEvent?.(e);
    } catch {
      /* a listener's bug must not break the policy */
    }
  }
}

/** The `a=fingerprint:` lines of an SDP (session or media level), normalised; '' when none. */
export function sdpFingerprint(sdp: string | undefined | null): string {
  if (typeof sdp !== 'string') return '';
  const out = new Set<string>();
  for (const m of sdp.matchAll(/^a=fingerprint:\s*(\S+)\s+(\S+)\s*$/gim)) out.add(`${m[1].toLowerCase()} ${m[2].toUpperCase()}`);
  return [...out].sort().join(',');
}

/** The `a=ice-ufrag:` of an SDP ('' when none). */
export function sdpIceUfrag(sdp: string | undefined | null): string {
  if (typeof sdp !== 'string') return '';
  const m = /^a=ice-ufrag:(\S+)/im.exec(sdp);
  return m ? m[1] : '';
}
