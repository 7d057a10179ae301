/**
 * No Docker engine runs on our machines, so the deployment file is checked against the code:
 * every service's command must name an entry point that exists and accepts exactly those flags
 * (each CLI's --print-config parses its arguments strictly and prints the resolved config), and
 * the ports each service publishes must be the ports its process listens on.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';

const root = join(import.meta.dirname, '..', '..', '..');
const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, {
    build?: string; image?: string; command: string[]; ports?: string[]; depends_on?: string[];
    environment?: Record<string, string>; network_mode?: string;
  }>;
};

/** Compose's `${VAR:-default}` interpolation, with nothing set in the environment. */
function interpolate(v: string): string {
  return v.replace(/\$\{([A-Z0-9_]+)(?::-([^}]*))?\}/g, (_m, _name, dflt: string | undefined) => dflt ?? '');
}

function printConfig(command: string[], environment: Record<string, string> = {}): Record<string, unknown> {
  expect(command.slice(0, 2)).toEqual(['npx', 'tsx']);
  const entry = command[2];
  expect(existsSync(join(root, entry)), `${entry} exists`).toBe(true);
  const env = { ...process.env, ...Object.fromEntries(Object.entries(environment).map(([k, v]) => [k, interpolate(v)])) };
  const out = execFileSync(join(root, 'node_modules', '.bin', 'tsx'), [entry, ...command.slice(3), '--print-config'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 30_000,
    env,
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe('docker-compose.yml', () => {
  it('builds every service from the one Dockerfile, which installs system ffmpeg', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:20/m);
    expect(dockerfile).toMatch(/apt-get install[^\n]*ffmpeg/);
    for (const [name, svc] of Object.entries(compose.services)) if (name !== 'coturn') expect(svc.build, name).toBe('.');
    expect(Object.keys(compose.services).sort()).toEqual(['coturn', 'origin', 'seeder', 'tracker']);
  });

  it('tracker: published ports are the ones it listens on', () => {
    const cfg = printConfig(compose.services.tracker.command, compose.services.tracker.environment);
    const ports = compose.services.tracker.ports!;
    expect(ports).toContain(`${cfg.port}:${cfg.port}`);
    expect(ports).toContain(`${cfg.stunPort}:${cfg.stunPort}/udp`);
    expect(cfg.host).toBe('0.0.0.0');
  });

  it('origin: listens on its published port and points at the tracker service', () => {
    const cfg = printConfig(compose.services.origin.command, compose.services.origin.environment);
    expect(compose.services.origin.ports).toContain(`${cfg.port}:${cfg.port}`);
    expect(cfg.host).toBe('0.0.0.0');
    const tracker = printConfig(compose.services.tracker.command, compose.services.tracker.environment);
    expect(cfg.trackerUrl).toBe(`ws://tracker:${tracker.port}/ws`);
    expect(cfg.trackerPort).toBe(tracker.port);
    expect(compose.services.origin.depends_on).toContain('tracker');
  });

  it('seeder: joins the tracker and the origin services by their ports', () => {
    const cfg = printConfig(compose.services.seeder.command, compose.services.seeder.environment);
    const tracker = printConfig(compose.services.tracker.command, compose.services.tracker.environment);
    const origin = printConfig(compose.services.origin.command, compose.services.origin.environment);
    expect(cfg.trackerUrl).toBe(`ws://tracker:${tracker.port}/ws`);
    expect(cfg.originUrl).toBe(`http://origin:${origin.port}`);
    expect(cfg.channel).toBe(origin.channel);
  });

  it('coturn: listens where the TURN URLs of the tracker point, with its REST secret', () => {
    const coturn = compose.services.coturn;
    expect(coturn.image).toMatch(/^coturn\/coturn:/);
    const args = coturn.command.map(interpolate);
    const flag = (name: string) => args.filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
    expect(args).toContain('--use-auth-secret');
    const listen = Number(flag('listening-port')[0] ?? 3478);
    const [minPort, maxPort] = [Number(flag('min-port')[0]), Number(flag('max-port')[0])];
    expect(minPort).toBeGreaterThan(listen);
    expect(maxPort).toBeGreaterThan(minPort);
    // Host networking, or the ports published (the listening port and the whole relay range).
    if (coturn.network_mode !== 'host') expect(coturn.ports).toContain(`${listen}:${listen}/udp`);
    // The tracker hands out TURN URLs with coturn's port, and signs with the same secret.
    const tracker = compose.services.tracker;
    const urls = tracker.command[tracker.command.indexOf('--turn-urls') + 1].split(',');
    expect(urls.length).toBeGreaterThan(0);
    for (const u of urls) expect(u).toMatch(new RegExp(`^turns?:\\{host\\}:${listen}(\\?transport=(udp|tcp))?$`));
    const secret = flag('static-auth-secret')[0];
    expect(secret.length).toBeGreaterThanOrEqual(16);
    expect(interpolate(tracker.environment!.STARLING_TRACKER_TURN_SECRET)).toBe(secret);
    // Both read the one variable, so setting it changes both.
    expect(tracker.environment!.STARLING_TRACKER_TURN_SECRET).toMatch(/^\$\{STARLING_TURN_SECRET/);
    expect(coturn.command.join(' ')).toContain('${STARLING_TURN_SECRET');
    // The tracker accepts that configuration (--turn-urls needs the secret).
    expect(printConfig(tracker.command, tracker.environment).turn).toBe(true);
    // The tracker's own STUN port and coturn's must not collide on a host running both.
    expect(listen).not.toBe(printConfig(tracker.command, tracker.environment).stunPort);
  });

  it('a flag the code does not know is refused (the check above can fail)', () => {
    expect(() => printConfig(['npx', 'tsx', 'tracker/main.ts', '--no-such-flag'])).toThrow();
  });
});
