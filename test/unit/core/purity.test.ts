/** peer/core must stay pure: no I/O modules, no timers, no ambient clocks or randomness, no DOM. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const dir = join(import.meta.dirname, '../../../peer/core');

function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

const FORBIDDEN: Array<[RegExp, string]> = [
  [/from\s+['"]node:/, 'node:* import'],
  [/from\s+['"](fs|path|os|net|dgram|http|https|crypto|child_process|worker_threads|ws|werift|node-datachannel)['"]/, 'I/O module import'],
  [/\bimport\s*\(/, 'dynamic import'],
  [/\brequire\s*\(/, 'require()'],
  [/\bsetTimeout\b|\bsetInterval\b|\bsetImmediate\b|\bqueueMicrotask\b/, 'timer'],
  [/\bDate\.now\b|\bnew Date\b/, 'wall clock'],
  [/\bMath\.random\b/, 'ambient randomness'],
  [/\bperformance\./, 'performance clock'],
  [/\bdocument\.|\bwindow\.|\bglobalThis\b|\bprocess\./, 'ambient global'],
];

describe('peer/core purity', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  it('has source files', () => expect(files.length).toBeGreaterThan(5));
  for (const f of files) {
    it(`${f} uses nothing impure`, () => {
      const src = stripComments(readFileSync(join(dir, f), 'utf8'));
      const hits = FORBIDDEN.filter(([re]) => re.test(src)).map(([, what]) => what);
      expect(hits).toEqual([]);
      // relative imports carry .js extensions
      for (const m of src.matchAll(/from\s+['"](\.[^'"]+)['"]/g)) expect(m[1]).toMatch(/\.js$/);
    });
  }
});
