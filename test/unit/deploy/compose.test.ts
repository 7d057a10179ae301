/**
 * No Docker engine runs on our machines, so the deployment file is checked against the code:
 * every service's command must name an entry point that exists and accepts exactly those flags
 * (each CLI's --print-config parses its arguments strictly and prints the resolved config), and
 * the ports each service publishes must be the ports its process listens on. The load balancer's
 * configuration (deploy/haproxy.cfg) must route to every tracker service on its port.
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
    environment?: Record<string, string>; network_mode?: string; volumes?: string[];
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

const TRACKERS = ['tracker1', 'tracker2'];
const SEEDERS = ['seeder1', 'seeder2'];
const svc = (name: string) => compose.services[name];
const trackerCfg = (name: string) => printConfig(svc(name).command, svc(name).environment);
/** ws://<service>:<port>/ws of every tracker service. */
const trackerUrls = () => TRACKERS.map((t) => `ws://${t}:${trackerCfg(t).port}/ws`);
const haproxyCfg = () => readFileSync(join(root, 'deploy', 'haproxy.cfg'), 'utf8');

describe('docker-compose.yml', () => {
  it('builds every Starling service from the one Dockerfile, which installs system ffmpeg', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:20/m);
    expect(dockerfile).toMatch(/apt-get install[^\n]*ffmpeg/);
    for (const [name, s] of Object.entries(compose.services)) if (!['coturn', 'redis', 'lb'].includes(name)) expect(s.build, name).toBe('.');
    expect(Object.keys(compose.services).sort()).toEqual(['coturn', 'lb', 'origin', 'redis', ...SEEDERS, ...TRACKERS].sort());
  });

  it('trackers: share one redis, distinct ids, published STUN ports are the ones they listen on', () => {
    const ids = new Set<string>();
    const stunPorts = new Set<number>();
    for (const t of TRACKERS) {
      const cfg = trackerCfg(t);
      expect(cfg.host).toBe('0.0.0.0');
      expect(cfg.redis).toBe('redis://redis:6379');
      expect(svc(t).depends_on).toContain('redis');
      ids.add(String(cfg.trackerId));
      stunPorts.add(Number(cfg.stunPort));
      expect(svc(t).ports).toContain(`${cfg.stunPort}:${cfg.stunPort}/udp`);
      // Signaling is published through the balancer only.
      expect(svc(t).ports!.some((p) => p.startsWith(`${cfg.port}:`))).toBe(false);
    }
    expect(ids.size).toBe(TRACKERS.length);
    expect(stunPorts.size).toBe(TRACKERS.length); // one host: no two STUN responders on one port
    expect(svc('redis').image).toMatch(/^redis:/);
    expect(svc('redis').command.join(' ')).toContain('--appendonly no');
  });

  it('lb: HAProxy publishes the signaling port and balances over every tracker, health-checked', () => {
    const lb = svc('lb');
    expect(lb.image).toMatch(/^haproxy:/);
    const cfg = haproxyCfg();
    const bind = Number(/^\s*bind :(\d+)/m.exec(cfg.slice(cfg.indexOf('frontend signaling')))?.[1]);
    expect(lb.ports).toContain(`${bind}:${bind}`);
    expect(cfg).toMatch(/option httpchk GET \/healthz/);
    expect(cfg).toMatch(/timeout tunnel/); // WebSockets outlive the http timeouts
    for (const t of TRACKERS) {
      expect(cfg).toMatch(new RegExp(`^\\s*server ${t} ${t}:${trackerCfg(t).port} check`, 'm'));
      expect(lb.depends_on).toContain(t);
    }
    expect((lb as { volumes?: string[] }).volumes).toContain('./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');
  });

  it('origin: listens on its published port, its root peer holds both trackers, pages get the balancer', () => {
    const cfg = printConfig(svc('origin').command, svc('origin').environment);
    expect(svc('origin').ports).toContain(`${cfg.port}:${cfg.port}`);
    expect(cfg.host).toBe('0.0.0.0');
    expect(cfg.trackerUrls).toEqual(trackerUrls());
    const lbPort = Number(/^\s*bind :(\d+)/m.exec(haproxyCfg().slice(haproxyCfg().indexOf('frontend signaling')))?.[1]);
    expect(cfg.trackerPort).toBe(lbPort);
    for (const t of TRACKERS) expect(svc('origin').depends_on).toContain(t);
  });

  it('seeders: join both trackers (each its own first) and the origin service by its port', () => {
    const origin = printConfig(svc('origin').command, svc('origin').environment);
    const firsts = new Set<string>();
    for (const s of SEEDERS) {
      const cfg = printConfig(svc(s).command, svc(s).environment);
      expect([...(cfg.trackerUrls as string[])].sort()).toEqual(trackerUrls().sort());
      firsts.add((cfg.trackerUrls as string[])[0]);
      expect(cfg.originUrl).toBe(`http://origin:${origin.port}`);
      expect(cfg.channel).toBe(origin.channel);
    }
    expect(firsts.size).toBe(SEEDERS.length);
  });

  it('coturn: listens where the TURN URLs of the trackers point, with its REST secret', () => {
    const coturn = svc('coturn');
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
    const secret = flag('static-auth-secret')[0];
    expect(secret.length).toBeGreaterThanOrEqual(16);
    expect(coturn.command.join(' ')).toContain('${STARLING_TURN_SECRET');
    for (const t of TRACKERS) {
      const tracker = svc(t);
      // Each tracker hands out TURN URLs with coturn's port, and signs with the same secret.
      const urls = tracker.command[tracker.command.indexOf('--turn-urls') + 1].split(',');
      expect(urls.length).toBeGreaterThan(0);
      for (const u of urls) expect(u).toMatch(new RegExp(`^turns?:\\{host\\}:${listen}(\\?transport=(udp|tcp))?$`));
      expect(interpolate(tracker.environment!.STARLING_TRACKER_TURN_SECRET)).toBe(secret);
      // Both read the one variable, so setting it changes both.
      expect(tracker.environment!.STARLING_TRACKER_TURN_SECRET).toMatch(/^\$\{STARLING_TURN_SECRET/);
      // The tracker accepts that configuration (--turn-urls needs the secret).
      const cfg = trackerCfg(t);
      expect(cfg.turn).toBe(true);
      // The tracker's own STUN port and coturn's must not collide on a host running both.
      expect(listen).not.toBe(cfg.stunPort);
    }
  });

  it('a flag the code does not know is refused (the check above can fail)', () => {
    expect(() => printConfig(['npx', 'tsx', 'tracker/main.ts', '--no-such-flag'])).toThrow();
    expect(() => printConfig(['npx', 'tsx', 'tracker/main.ts', '--redis', 'http://nope'])).toThrow();
  });
});
