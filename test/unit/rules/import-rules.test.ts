/**
 * DESIGN.md §2 import rules: the pure cores (peer/core, tracker/chandelier) touch no I/O, clock
 * or randomness of their own; the player never pulls in werift or node:*; production code never
 * imports tests or benchmarks.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..', '..', '..');

function tsFiles(dir: string): string[] {
  const abs = join(root, dir);
  if (!existsSync(abs)) return [];
  const out: string[] = [];
  for (const name of readdirSync(abs)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = join(abs, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(relative(root, p)));
    else if (/\.(ts|mts|tsx)$/.test(name) && !/\.d\.ts$/.test(name)) out.push(p);
  }
  return out;
}

function importsOf(source: string): string[] {
  const specs: string[] = [];
  const re = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;
  for (const m of source.matchAll(re)) specs.push(m[1] ?? m[2] ?? m[3]);
  return specs;
}

const IO_MODULES = /^(node:.*|fs|fs\/promises|net|dgram|http|https|http2|tls|dns|child_process|worker_threads|os|path|crypto|ws|werift.*|node-datachannel|pino.*|fastify.*|@fastify\/.*)$/;
const IMPURE_GLOBALS = /\b(setTimeout|setInterval|setImmediate|queueMicrotask|Date\.now|Math\.random|performance\.now|process\.|document\.|window\.|globalThis\.|fetch\()/;

/** Returns the violations of the pure-core rule in one file's source. */
export function pureCoreViolations(source: string): string[] {
  const found: string[] = [];
  for (const spec of importsOf(source)) if (IO_MODULES.test(spec)) found.push(`imports ${spec}`);
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const m = IMPURE_GLOBALS.exec(code);
  if (m) found.push(`uses ${m[1]}`);
  return found;
}

describe('import rules', () => {
  it('the checker itself catches impurity', () => {
    expect(pureCoreViolations(`import { x } from 'node:fs';`)).toEqual(['imports node:fs']);
    expect(pureCoreViolations(`import { RTCPeerConnection } from 'werift';`)).toEqual(['imports werift']);
    expect(pureCoreViolations(`const t = Date.now();`)).toEqual(['uses Date.now']);
    expect(pureCoreViolations(`setTimeout(() => 1, 5);`)).toEqual(['uses setTimeout']);
    expect(pureCoreViolations(`// setTimeout in a comment is fine\nconst a = 1;`)).toEqual([]);
    expect(pureCoreViolations(`import { sha256 } from '@noble/hashes/sha2';`)).toEqual([]);
  });

  it('peer/core and tracker/chandelier are pure', () => {
    const files = [...tsFiles('peer/core'), ...tsFiles('tracker/chandelier')];
    expect(files.length).toBeGreaterThan(3);
    const bad = files.flatMap((f) => pureCoreViolations(readFileSync(f, 'utf8')).map((v) => `${relative(root, f)}: ${v}`));
    expect(bad).toEqual([]);
  });

  it('the player never imports werift or node:*', () => {
    const files = [...tsFiles('player'), ...tsFiles('peer/transport').filter((f) => /browser/.test(f)), ...tsFiles('peer/host')];
    expect(files.length).toBeGreaterThan(0);
    const bad = files.flatMap((f) =>
      importsOf(readFileSync(f, 'utf8')).filter((s) => /^(node:|werift|ws$|fs$|pino)/.test(s)).map((s) => `${relative(root, f)}: ${s}`),
    );
    expect(bad).toEqual([]);
  });

  it('production code never imports from test/ or bench/', () => {
    const files = ['peer', 'tracker', 'server', 'player', 'scripts', 'sim'].flatMap(tsFiles);
    const bad = files.flatMap((f) =>
      importsOf(readFileSync(f, 'utf8')).filter((s) => /(^|\/)(test|bench)\//.test(s)).map((s) => `${relative(root, f)}: ${s}`),
    );
    expect(bad).toEqual([]);
  });
});
