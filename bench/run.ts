/**
 * `npm run bench`: every benchmark, each inside the private network namespace (WebRTC must not
 * see the machine's external interface). Results are recorded by hand in bench/RESULTS.md with
 * the command that produced them.
 *   npm run bench                    # all
 *   npm run bench -- werift-link     # one
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const benches: Record<string, string[]> = {
  'werift-link': ['npx', 'tsx', 'bench/werift-link.ts'],
  'werift-stall': ['npx', 'tsx', 'bench/werift-stall.ts'],
  'swarm-pages': ['npx', 'tsx', 'bench/swarm-pages.ts', '--pages', '3', '--seconds', '120'],
};
const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const [name, cmd] of Object.entries(benches)) {
  if (only.length > 0 && !only.includes(name)) continue;
  console.log(`\n== ${name}: bash test/netns.sh ${cmd.join(' ')}`);
  const r = spawnSync('bash', ['test/netns.sh', ...cmd], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`${name} failed (exit ${r.status})`);
    process.exitCode = 1;
  }
}
