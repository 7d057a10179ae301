/**
 * Processes of the NAT lab: coturn on the public host, and werift peers (test/net/natlab/peer.ts)
 * inside the sites' namespaces. Every process is tracked and killed by its own pid in stopAll().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'node:net';

const root = new URL('../../..', import.meta.url).pathname;

export interface LabEvent {
  ev: string;
  [k: string]: unknown;
}

export class LabProcess {
  readonly events: LabEvent[] = [];
  private waiters: Array<{ pred: (e: LabEvent) => boolean; resolve: (e: LabEvent) => void }> = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(readonly name: string, readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let e: LabEvent;
      try {
        e = JSON.parse(line) as LabEvent;
      } catch {
        return;
      }
      this.events.push(e);
      for (const w of this.waiters.filter((x) => x.pred(e))) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(e);
      }
    });
    createInterface({ input: proc.stderr! }).on('line', (l) => {
      if (this.stderr.length < 200) this.stderr.push(l);
    });
    this.exited = new Promise((r) => proc.on('exit', (code) => r(code)));
  }

  send(cmd: Record<string, unknown>): void {
    this.proc.stdin?.write(`${JSON.stringify(cmd)}\n`);
  }

  /** The first event (already seen or future) matching pred. */
  wait(pred: (e: LabEvent) => boolean, ms: number, what = 'event'): Promise<LabEvent> {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (e: LabEvent) => (clearTimeout(t), resolve(e)) };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`${this.name}: no ${what} within ${ms} ms; stderr: ${this.stderr.slice(-10).join(' | ')}`));
      }, ms);
      this.waiters.push(w);
    });
  }
}

const procs: ChildProcess[] = [];

/** Starts test/net/natlab/peer.ts inside namespace `ns`. */
export function startLabPeer(ns: string, name: string, config: Record<string, unknown>): LabProcess {
  // One process (node --import tsx), so that its pid is the peer's own: stopAll() kills exactly it.
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', join(root, 'test/net/natlab/peer.ts'), JSON.stringify({ name, ...config })], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  procs.push(proc);
  return new LabProcess(name, proc);
}

export interface Coturn {
  url: string;
  secret: string;
  realm: string;
  proc: LabProcess;
  log: () => string[];
  dir: string;
}

/** coturn (Debian `coturn`) on the public host: STUN + TURN with the REST shared secret. */
export async function startCoturn(opts: { ip: string; port: number; secret: string; minPort: number; maxPort: number }): Promise<Coturn> {
  const dir = mkdtempSync(join(tmpdir(), 'starling-coturn-'));
  const realm = 'starling.test';
  const args = [
    '-n', // no configuration file
    '--listening-ip', opts.ip,
    '--listening-port', String(opts.port),
    '--relay-ip', opts.ip,
    '--min-port', String(opts.minPort),
    '--max-port', String(opts.maxPort),
    '--use-auth-secret',
    '--static-auth-secret', opts.secret,
    '--realm', realm,
    '--fingerprint',
    '--no-tls', '--no-dtls', '--no-cli', '--no-tcp-relay',
    '--pidfile', join(dir, 'turnserver.pid'),
    '--log-file', 'stdout', '--simple-log',
    '--no-software-attribute',
  ];
  const proc = spawn(process.env.STARLING_TURNSERVER ?? '/usr/bin/turnserver', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  const lp = new LabProcess('coturn', proc);
  const lines: string[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => lines.length < 2000 && lines.push(l));
  // Ready when its TCP listener accepts (it opens UDP and TCP on the same port together).
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: opts.ip, port: opts.port }, () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`coturn did not start: ${lines.slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `turn:${opts.ip}:${opts.port}?transport=udp`, secret: opts.secret, realm, proc: lp, log: () => lines, dir };
}

/** Kills every process started here (by pid) and waits for them to exit. */
export async function stopAll(): Promise<void> {
  const running = procs.splice(0).filter((p) => p.exitCode === null && p.signalCode === null);
  await Promise.all(
    running.map(
      (p) =>
        new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            try {
              p.kill('SIGKILL');
            } catch {
              /* gone */
            }
            resolve();
          }, 3000);
          p.once('exit', () => (clearTimeout(t), resolve()));
          try {
            p.kill('SIGTERM');
          } catch {
            clearTimeout(t);
            resolve();
          }
        }),
    ),
  );
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
