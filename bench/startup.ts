/**
 * Startup of the watch page with and without P2P: tracker + origin + one seeding peer (as
 * `npm start` runs them), one Chromium, pages opened one after the other alternating `?p2p=0` and
 * `?p2p=1` (the first page of each kind pays for compiling the page's JS, so it is reported
 * apart). Per page: time to the first frame (currentTime > 0.1 s) and the page's HTTP requests
 * (Resource Timing), so the gap between the two modes can be read off request by request.
 *   bash test/netns.sh npx tsx bench/startup.ts [--rounds 3]
 */
import { parseArgs } from 'node:util';
import { startPlatform } from '../test/net/platform.js';
import { launchChromium } from '../test/net/chromium.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, verbose: { type: 'boolean', default: false } } });
const rounds = Math.min(10, Math.max(1, Number(values.rounds)));
const CH = 'startup';
const platform = await startPlatform({ channel: CH });
try {
  const t0 = Date.now();
  while (platform.origin.stats().segmentsPublished < 4 && Date.now() - t0 < 40_000) await new Promise((r) => setTimeout(r, 200));
  await platform.peer('seeder');
  await new Promise((r) => setTimeout(r, 3000));
  const browser = await launchChromium();
  const firstFrame: Record<string, number[]> = { '0': [], '1': [] };
  try {
    for (let i = 0; i <= rounds; i++) {
      for (const p2p of ['0', '1']) {
        const page = await browser.newPage();
        await page.goto(`${platform.origin.url.replace('127.0.0.1', platform.host)}/watch.html?channel=${CH}&p2p=${p2p}`);
        await page.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 0.1, undefined, { timeout: 30_000 });
        const r = await page.evaluate(() => ({
          now: performance.now(),
          res: performance.getEntriesByType('resource').map((e) => `${e.name.replace(/^https?:\/\/[^/]+/, '')} ${e.startTime.toFixed(0)}-${(e.startTime + e.duration).toFixed(0)} ms`),
        }));
        await page.close();
        const label = i === 0 ? 'cold' : `round ${i}`;
        console.log(`${label} p2p=${p2p}: first frame at ${r.now.toFixed(0)} ms`);
        if (values.verbose || i === 1) console.log(`  ${r.res.filter((x) => x.includes('/live/')).join('\n  ')}`);
        if (i > 0) firstFrame[p2p].push(r.now);
      }
    }
  } finally {
    await browser.close();
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(`\nwarm pages, median of ${rounds}: HTTP-only ${median(firstFrame['0']).toFixed(0)} ms, P2P ${median(firstFrame['1']).toFixed(0)} ms ` +
    `(all: ${firstFrame['0'].map((x) => x.toFixed(0)).join('/')} vs ${firstFrame['1'].map((x) => x.toFixed(0)).join('/')})`);
} finally {
  await platform.stop();
}
process.exit(0);
