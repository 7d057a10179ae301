/**
 * NAT behaviour discovery for Node peers (RFC 5780 §4.3 mapping and §4.4 filtering tests) against
 * a STUN server that has a second address: tracker/stun-nat.ts, or coturn started with two
 * `--listening-ip`s. The result's `type` is the label a peer reports to the tracker
 * (`report.nat`), which orders neighbor proposals with the NAT-pair table (tracker/nat.ts).
 *
 * Browsers cannot do this: a page has no raw UDP socket and cannot send CHANGE-REQUEST. A page
 * can only infer from its ICE candidates (a srflx candidate whose address equals a host
 * candidate: no NAT; srflx from two STUN servers with different ports: symmetric) and from which
 * of its connections end up relayed; it reports nothing (the tracker treats it as 'unknown').
 *
 * Tests, all from one local UDP socket per behaviour (a fresh binding for filtering, so the
 * mapping tests' outgoing packets do not open the filter):
 *   mapping   I: Binding to the primary address P -> mapped M1, OTHER-ADDRESS A.
 *                M1 == local address: no NAT.
 *            II: Binding to (A.ip, P.port) -> M2. M2 == M1: endpoint-independent mapping.
 *           III: Binding to A -> M3. M3 == M2: address-dependent, else address-and-port-dependent.
 *   filtering  II: Binding to P with CHANGE-REQUEST(ip+port); an answer: endpoint-independent.
 *             III: Binding to P with CHANGE-REQUEST(port); an answer: address-dependent, else
 *                  address-and-port-dependent.
 * A test whose answer does not come back after `retries` transmissions of `rtoMs` each counts as
 * "no answer"; the whole discovery takes about 2 x retries x rtoMs at worst.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { ATTR_MAPPED_ADDRESS, ATTR_XOR_MAPPED_ADDRESS, BINDING_SUCCESS, decodeAddress, parseStunMessage, type TransportAddress } from '../../tracker/stun.js';
import { ATTR_OTHER_ADDRESS, ATTR_RESPONSE_ORIGIN, CHANGE_IP, CHANGE_PORT, encodeChangeRequest } from '../../tracker/stun-nat.js';
import type { NatType } from '../../tracker/nat.js';
import type { IceServer } from '../core/signaling.js';

export type MappingBehaviour = 'none' | 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent' | 'unknown';
export type FilteringBehaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent' | 'unknown';

export interface NatDiscoveryResult {
  type: NatType;
  mapping: MappingBehaviour;
  filtering: FilteringBehaviour;
  /** Our address as the STUN server saw it (test I), if it answered. */
  mapped: TransportAddress | null;
  /** The server's OTHER-ADDRESS; null when the server does not support RFC 5780. */
  otherAddress: TransportAddress | null;
  /** Wall time of the whole discovery. */
  ms: number;
}

export interface NatDiscoveryOptions {
  /** The STUN server's primary address. */
  server: { host: string; port: number };
  /** Retransmission timeout per attempt. Default 250 ms. */
  rtoMs?: number;
  /** Transmissions per test. Default 3. */
  retries?: number;
}

/** The NAT label for a pair of behaviours (pure; see tracker/nat.ts for the table). */
export function classifyNat(mapping: MappingBehaviour, filtering: FilteringBehaviour, answered = true): NatType {
  if (!answered) return 'udp-blocked';
  if (mapping === 'address-dependent' || mapping === 'address-and-port-dependent') return 'symmetric';
  if (mapping === 'none') return filtering === 'endpoint-independent' ? 'open' : filtering === 'unknown' ? 'unknown' : 'firewall';
  if (mapping === 'endpoint-independent') {
    if (filtering === 'endpoint-independent') return 'full-cone';
    if (filtering === 'address-dependent') return 'restricted-cone';
    if (filtering === 'address-and-port-dependent') return 'port-restricted';
  }
  return 'unknown';
}

/** host:port of the first `stun:` URL in a welcome's ICE servers, or null. */
export function stunServerOf(iceServers: readonly IceServer[]): { host: string; port: number } | null {
  for (const s of iceServers) {
    for (const u of Array.isArray(s.urls) ? s.urls : [s.urls]) {
      const m = /^stun:(\[[^\]]+\]|[^:?]+)(?::(\d+))?/i.exec(u);
      if (m) return { host: m[1].replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : 3478 };
    }
  }
  return null;
}

interface Answer {
  mapped: TransportAddress | null;
  other: TransportAddress | null;
  origin: TransportAddress | null;
}

/** One UDP socket that sends Binding Requests and matches answers by transaction id. */
class Prober {
  private readonly waiting = new Map<string, (a: Answer) => void>();
  readonly socket = dgram.createSocket('udp4');

  constructor() {
    this.socket.on('message', (msg) => {
      const p = parseStunMessage(msg);
      if (!p.ok || p.msg.type !== BINDING_SUCCESS) return;
      const tid = p.msg.transactionId;
      const done = this.waiting.get(tid.toString('hex'));
      if (!done) return;
      const get = (type: number, xor = false) => {
        const a = p.msg.attributes.find((x) => x.type === type);
        return a ? decodeAddress(a.value, xor ? tid : undefined) : null;
      };
      done({
        mapped: get(ATTR_XOR_MAPPED_ADDRESS, true) ?? get(ATTR_MAPPED_ADDRESS),
        other: get(ATTR_OTHER_ADDRESS),
        origin: get(ATTR_RESPONSE_ORIGIN),
      });
    });
    this.socket.on('error', () => undefined);
  }

  bind(): Promise<void> {
    return new Promise((resolve) => this.socket.bind(0, '0.0.0.0', () => resolve()));
  }

  /** Sends up to `retries` times; resolves with the answer or null. */
  async request(to: { address: string; port: number }, flags: number, rtoMs: number, retries: number): Promise<Answer | null> {
    const tid = randomBytes(12);
    const key = tid.toString('hex');
    const req = encodeChangeRequest(tid, flags);
    return new Promise<Answer | null>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | null = null;
      let sent = 0;
      const finish = (a: Answer | null) => {
        if (timer) clearTimeout(timer);
        this.waiting.delete(key);
        resolve(a);
      };
      this.waiting.set(key, finish);
      const send = () => {
        if (sent++ >= retries) return finish(null);
        this.socket.send(req, to.port, to.address, () => undefined);
        timer = setTimeout(send, rtoMs);
      };
      send();
    });
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      /* closed */
    }
  }
}

/** The local IP the kernel would use towards `host` (a connected, never-used UDP socket). */
function localIpTowards(host: string, port: number): Promise<string | null> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    s.on('error', () => resolve(null));
    s.connect(port, host, () => {
      try {
        resolve(s.address().address);
      } catch {
        resolve(null);
      } finally {
        s.close();
      }
    });
  });
}

const same = (a: TransportAddress | null, b: TransportAddress | null) => !!a && !!b && a.address === b.address && a.port === b.port;

export async function discoverNat(opts: NatDiscoveryOptions): Promise<NatDiscoveryResult> {
  const t0 = performance.now();
  const rto = opts.rtoMs ?? 250;
  const retries = opts.retries ?? 3;
  const address = isIP(opts.server.host) ? opts.server.host : (await lookup(opts.server.host, { family: 4 })).address;
  const primary = { address, port: opts.server.port };
  const result = (type: NatType, mapping: MappingBehaviour, filtering: FilteringBehaviour, mapped: TransportAddress | null, other: TransportAddress | null): NatDiscoveryResult => ({
    type, mapping, filtering, mapped, otherAddress: other, ms: Math.round(performance.now() - t0),
  });

  const m = new Prober();
  const f = new Prober();
  try {
    await Promise.all([m.bind(), f.bind()]);
    // Mapping test I.
    const one = await m.request(primary, 0, rto, retries);
    if (!one || !one.mapped) return result('udp-blocked', 'unknown', 'unknown', null, null);
    const localIp = await localIpTowards(primary.address, primary.port);
    const noNat = one.mapped.address === localIp && one.mapped.port === m.socket.address().port;
    const other = one.other;
    if (!other) {
      // Not an RFC 5780 server: we only know whether there is a NAT at all.
      return result(noNat ? 'open' : 'unknown', noNat ? 'none' : 'unknown', 'unknown', one.mapped, null);
    }
    let mapping: MappingBehaviour;
    if (noNat) mapping = 'none';
    else {
      const two = await m.request({ address: other.address, port: primary.port }, 0, rto, retries);
      if (!two?.mapped) mapping = 'unknown';
      else if (same(two.mapped, one.mapped)) mapping = 'endpoint-independent';
      else {
        const three = await m.request(other, 0, rto, retries);
        mapping = !three?.mapped ? 'unknown' : same(three.mapped, two.mapped) ? 'address-dependent' : 'address-and-port-dependent';
      }
    }
    // Filtering, on a fresh binding: test I through it first, then the change requests.
    let filtering: FilteringBehaviour = 'unknown';
    const fOne = await f.request(primary, 0, rto, retries);
    if (fOne?.mapped) {
      const both = await f.request(primary, CHANGE_IP | CHANGE_PORT, rto, retries);
      if (both) filtering = 'endpoint-independent';
      else {
        const port = await f.request(primary, CHANGE_PORT, rto, retries);
        filtering = port ? 'address-dependent' : 'address-and-port-dependent';
      }
    }
    return result(classifyNat(mapping, filtering), mapping, filtering, one.mapped, other);
  } finally {
    m.close();
    f.close();
  }
}

/**
 * For PeerHost's `extraReport`: runs discovery once, against the first STUN server of the
 * tracker's welcome as soon as there is one, and then reports `{nat: type}` in every report.
 *   const nat = createNatReporter(() => host.getIceServers());
 *   new PeerHost({ ..., extraReport: nat.extraReport });
 */
export function createNatReporter(getIceServers: () => readonly IceServer[], opts: Omit<NatDiscoveryOptions, 'server'> = {}): {
  extraReport(): Record<string, string>;
  result(): NatDiscoveryResult | null;
} {
  let started = false;
  let result: NatDiscoveryResult | null = null;
  const maybeStart = () => {
    if (started) return;
    const server = stunServerOf(getIceServers());
    if (!server) return;
    started = true;
    discoverNat({ ...opts, server }).then(
      (r) => (result = r),
      () => undefined,
    );
  };
  return {
    extraReport(): Record<string, string> {
      maybeStart();
      return result ? { nat: result.type } : {};
    },
    result: () => result,
  };
}
