/**
 * ICE servers handed to each peer in its welcome: the tracker's own STUN responder, plus TURN
 * with short-lived credentials in coturn's shared-secret REST scheme ("use-auth-secret"):
 *   username   = `${expiryUnixSeconds}:${peerId}`
 *   credential = base64(HMAC-SHA1(secret, username))
 */
import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import type { IceServer } from '../peer/core/signaling.js';

export interface TurnConfig {
  /** e.g. 'turn:10.0.0.1:3478?transport=udp'; '{host}' is replaced by the tracker's host as seen by the peer. */
  urls: string | string[];
  /** coturn's static-auth-secret. */
  secret: string;
  /** Credential lifetime in seconds. Default 3600. */
  ttlSeconds?: number;
}

export interface IceConfig {
  /** Host (name or IP) put into STUN/TURN URLs; overrides the Host header. */
  publicHost?: string;
  /** The tracker's STUN responder port; 0 or undefined: no STUN entry. */
  stunPort?: number;
  turn?: TurnConfig;
  /** Appended verbatim (e.g. an external STUN server). */
  extra?: IceServer[];
}

const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * The host part of a Host header ('example.org:8000' -> 'example.org', '[::1]:8000' -> '[::1]'),
 * or null when absent or not a plausible host name / IP literal (never trust it blindly: it ends
 * up in URLs handed to other software).
 */
export function hostFromHeader(header: string | undefined): string | null {
  if (!header) return null;
  const h = header.trim();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    const rest = h.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    const ip = h.slice(1, end);
    return isIP(ip) === 6 ? `[${ip}]` : null;
  }
  const m = /^([^:]+)(?::\d{1,5})?$/.exec(h);
  if (!m) return null;
  const host = m[1];
  return isIP(host) === 4 || HOSTNAME_RE.test(host) ? host : null;
}

/** Formats an address for a URL: IPv6 literals get brackets. */
export function urlHost(address: string): string {
  const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return isIP(a) === 6 ? `[${a}]` : a;
}

export function turnCredentials(secret: string, peerId: string, nowMs: number, ttlSeconds = 3600): { username: string; credential: string } {
  const expiry = Math.floor(nowMs / 1000) + ttlSeconds;
  const username = `${expiry}:${peerId}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential };
}

/** The iceServers of one welcome. `host` is the URL-ready host the peer reached the tracker at. */
export function iceServersFor(cfg: IceConfig, host: string, peerId: string, nowMs: number): IceServer[] {
  const h = cfg.publicHost ? urlHost(cfg.publicHost) : host;
  const out: IceServer[] = [];
  if (cfg.stunPort) out.push({ urls: `stun:${h}:${cfg.stunPort}` });
  if (cfg.turn) {
    const subst = (u: string) => u.replaceAll('{host}', h);
    const urls = Array.isArray(cfg.turn.urls) ? cfg.turn.urls.map(subst) : subst(cfg.turn.urls);
    out.push({ urls, ...turnCredentials(cfg.turn.secret, peerId, nowMs, cfg.turn.ttlSeconds) });
  }
  if (cfg.extra) out.push(...cfg.extra);
  return out;
}
