/**
 * UDP counters of the current network namespace (Linux /proc/net/snmp; null elsewhere).
 * RcvbufErrors are datagrams the kernel dropped because a socket's receive buffer was full: with
 * a saturated event loop, WebRTC packets lost before SCTP sees them (it recovers a lost tail
 * only after its retransmission timeout, at least 1 s in werift).
 */
import { readFileSync } from 'node:fs';

export interface UdpCounters {
  datagrams: number;
  rcvbufErrors: number;
}

export function udpCounters(): UdpCounters | null {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    if (lines.length < 2) return null;
    const names = lines[0].split(/\s+/);
    const values = lines[1].split(/\s+/).map(Number);
    const get = (k: string) => values[names.indexOf(k)] ?? 0;
    return { datagrams: get('InDatagrams'), rcvbufErrors: get('RcvbufErrors') };
  } catch {
    return null;
  }
}

/** What happened between two readings (null if either is missing). */
export function udpDelta(before: UdpCounters | null, after: UdpCounters | null): UdpCounters | null {
  return before && after ? { datagrams: after.datagrams - before.datagrams, rcvbufErrors: after.rcvbufErrors - before.rcvbufErrors } : null;
}
