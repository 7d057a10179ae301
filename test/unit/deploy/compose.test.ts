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
  services: Record<string, { build?: string; command: string[]; ports?: string[]; depends_on?: string[] }>;
};

function printConfig(command: string[]): Record<string, unknown> {
  expect(command.slice(0, 2)).toEqual(['npx', 'tsx']);
  const entry = command[2];
  expect(existsSync(join(root, entry)), `${entry} exists`).toBe(true);
  const out = execFileSync(join(root, 'node_modules', '.bin', 'tsx'), [entry, ...command.slice(3), '--print-config'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe('docker-compose.yml', () => {
  it('builds every service from the one Dockerfile, which installs system ffmpeg', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:20/m);
    expect(dockerfile).toMatch(/apt-get install[^\n]*ffmpeg/);
    for (const [name, svc] of Object.entries(compose.services)) expect(svc.build, name).toBe('.');
    expect(Object.keys(compose.services).sort()).toEqual(['origin', 'seeder', 'tracker']);
  });

  it('tracker: published ports are the ones it listens on', () => {
    const cfg = printConfig(compose.services.tracker.command);
    const ports = compose.services.tracker.ports!;
    expect(ports).toContain(`${cfg.port}:${cfg.port}`);
    expect(ports).toContain(`${cfg.stunPort}:${cfg.stunPort}/udp`);
    expect(cfg.host).toBe('0.0.0.0');
  });

  it('origin: listens on its published port and points at the tracker service', () => {
    const cfg = printConfig(compose.services.origin.command);
    expect(compose.services.origin.ports).toContain(`${cfg.port}:${cfg.port}`);
    expect(cfg.host).toBe('0.0.0.0');
    const tracker = printConfig(compose.services.tracker.command);
    expect(cfg.trackerUrl).toBe(`ws://tracker:${tracker.port}/ws`);
    expect(cfg.trackerPort).toBe(tracker.port);
    expect(compose.services.origin.depends_on).toContain('tracker');
  });

  it('seeder: joins the tracker and the origin services by their ports', () => {
    const cfg = printConfig(compose.services.seeder.command);
    const tracker = printConfig(compose.services.tracker.command);
    const origin = printConfig(compose.services.origin.command);
    expect(cfg.trackerUrl).toBe(`ws://tracker:${tracker.port}/ws`);
    expect(cfg.originUrl).toBe(`http://origin:${origin.port}`);
    expect(cfg.channel).toBe(origin.channel);
  });

  it('a flag the code does not know is refused (the check above can fail)', () => {
    expect(() => printConfig(['npx', 'tsx', 'tracker/main.ts', '--no-such-flag'])).toThrow();
  });
});
