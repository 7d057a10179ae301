/** The simulator end to end: determinism and a small scenario with all three variants. */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runScenario, type RunOutput } from '../../../sim/run.js';
import { parseScenario } from '../../../sim/scenario.js';
import { World } from '../../../sim/world.js';

const tiny = {
  name: 'tiny',
  seed: 3,
  durationS: 24,
  population: { viewers: 8, join: { pattern: 'steady', atS: 0, overS: 4 } },
  churn: { meanSessionS: 60, abruptShare: 0.5, replace: true, detectMs: 3000 },
  metrics: { sampleS: 4, trackEverySegments: 1, horizonS: 8 },
};

describe('simulator', () => {
  let first: RunOutput;

  it('runs a small scenario end to end with the three variants', async () => {
    first = await runScenario(parseScenario(tiny));
    const [st, mesh, http] = first.report.variants;
    expect(first.report.variants.map((v) => v.variant)).toEqual(['starling', 'mesh-pull', 'http-only']);
    for (const v of first.report.variants) {
      expect(v.viewersStarted).toBeGreaterThanOrEqual(8);
      expect(v.bytesMB.fromPeers + v.bytesMB.fromOriginPeer + v.bytesMB.fromHttp).toBeGreaterThan(10);
      expect(v.startupS.p50).toBeGreaterThan(0);
      expect(v.series.length).toBe(6);
      expect(v.totals.badPieces).toBe(0);
    }
    expect(st.offload!).toBeGreaterThan(0.2);
    expect(st.offload!).toBeLessThanOrEqual(st.offloadBound! + 0.05);
    expect(mesh.offload!).toBeGreaterThan(0.1);
    expect(http.offload).toBe(0);
    expect(http.bytesMB.originPeerUpload).toBe(0);
    // where the HTTP goes, by the viewer's load: HTTP-only viewers fetch every load over HTTP,
    // and what the completed loads fetched is at most what the viewers fetched in all
    const loadSum = (v: typeof http) => Object.values(v.httpByLoadMB).reduce((a, x) => a + x, 0);
    const h = http.httpByLoadMB;
    expect(h.init).toBeGreaterThan(0);
    expect(Math.min(h.first, h.second, h.third, h.later)).toBeGreaterThan(0);
    expect(h.later).toBeGreaterThan(h.first); // 24 s of play: most loads are later ones
    for (const v of first.report.variants) {
      expect(loadSum(v)).toBeLessThanOrEqual(v.bytesMB.fromHttp + 0.01);
      expect(loadSum(v)).toBeGreaterThan(v.bytesMB.fromHttp * 0.7);
    }
    // with peers, the first segment is HTTP's main load; the later ones mostly come from peers
    expect(st.httpByLoadMB.first).toBeGreaterThan(st.httpByLoadMB.later / 10);
    expect(st.httpByLoadMB.later).toBeLessThan(h.later / 2);
    // the origin's root peer uploads about one copy of the stream (1 Mbit/s), not one per viewer
    expect(st.bytesMB.originPeerUpload).toBeLessThan(24 * 1.2 / 8 + 0.5);
    expect(st.dissemination.segmentsMeasured).toBeGreaterThan(0);
    expect(first.html).toContain('<svg');
    expect(first.html).toContain('Starling simulation: tiny');
    // perf.json counts the frames by type: peers exchange pieces and HAVEs, HTTP-only viewers none
    const [stPerf, , httpPerf] = first.perf;
    expect(stPerf.frames.piece).toBeGreaterThan(0);
    expect(stPerf.frames.have).toBeGreaterThan(0);
    expect(stPerf.frames.hello).toBeGreaterThan(0);
    expect(httpPerf.frames).toEqual({});
  }, 20_000);

  it('is deterministic: same seed, same report byte for byte; another seed differs', async () => {
    const again = await runScenario(parseScenario(tiny));
    expect(again.json).toBe(first.json);
    expect(again.html).toBe(first.html);
    const other = await runScenario(parseScenario({ ...tiny, seed: 4 }), { variants: ['starling'] });
    expect(other.json).not.toBe(first.json);
  }, 20_000);

  it('keeps the init segment on the HTTP server for good: a viewer joining after 90 segments starts', async () => {
    // joins at 0, 95 and 190 s; the server drops media segments 90 behind the edge (180 s)
    const late = { ...tiny, durationS: 200, population: { viewers: 3, join: { pattern: 'steady', atS: 0, overS: 285 } }, churn: { meanSessionS: 0 } };
    const out = await runScenario(parseScenario(late), { variants: ['http-only', 'starling'] });
    for (const v of out.report.variants) expect(v.viewersStarted).toBe(3);
  }, 30_000);

  it('network.connectSetupMs: a connection opens that much later than its round trips allow', async () => {
    const firstNeighborMs = async (connectSetupMs: number): Promise<number[]> => {
      const sc = parseScenario({ ...tiny, durationS: 8, network: { connectSetupMs } });
      // internals on purpose: each viewer's first open neighbor, from its engine's event
      const w = new World(sc, 'starling', () => {}) as unknown as { peers: { push(p: unknown): number }; now: number; run(): Promise<unknown> };
      const out: number[] = [];
      const push = w.peers.push.bind(w.peers);
      w.peers.push = (p: any) => {
        const off = p.engine.on('neighbor-open', () => { out.push(w.now - p.joinT); off(); });
        return push(p);
      };
      await w.run();
      return out;
    };
    const fast = await firstNeighborMs(0);
    const slow = await firstNeighborMs(400);
    expect(fast.length).toBeGreaterThan(0);
    expect(slow.length).toBeGreaterThan(0);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    expect(Math.min(...slow)).toBeGreaterThanOrEqual(400);
    expect(median(slow) - median(fast)).toBeGreaterThan(300);
    expect(median(slow) - median(fast)).toBeLessThan(500);
    expect(() => parseScenario({ ...tiny, network: { connectSetupMs: -1 } })).toThrow(/connectSetupMs/);
  });

  it('chandelier: joins and leaves bring rounds forward as the tracker does (200 ms later, at most one a second)', async () => {
    const roundTimes = async (churnRounds: boolean): Promise<number[]> => {
      const sc = parseScenario({ ...tiny, durationS: 8, optimizer: { periodMs: 5000, churnRounds } });
      // internals on purpose: when the world runs a round
      const w = new World(sc, 'chandelier', () => {}) as unknown as { optimizerRound(): void; now: number; run(): Promise<unknown> };
      const times: number[] = [];
      const round = w.optimizerRound.bind(w);
      w.optimizerRound = () => { times.push(w.now); round(); };
      await w.run();
      return times;
    };
    expect(await roundTimes(false)).toEqual([5000]);
    const times = await roundTimes(true);
    const churn = times.filter((t) => t !== 5000);
    // the origin joins at once and 8 viewers over 4 s: a round soon after the first join, then
    // about one a second while they keep coming, never two within a second
    expect(churn[0]).toBeGreaterThanOrEqual(200);
    expect(churn[0]).toBeLessThan(500);
    expect(churn.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < churn.length; i++) expect(churn[i] - churn[i - 1]).toBeGreaterThanOrEqual(1000);
    expect(() => parseScenario({ ...tiny, optimizer: { churnRounds: 'yes' } })).toThrow(/churnRounds/);
  });

  it('rejects unknown scenario fields and accepts every shipped scenario', () => {
    expect(() => parseScenario({ ...tiny, bogus: 1 })).toThrow(/unknown field bogus/);
    expect(() => parseScenario({ ...tiny, origin: { region: 'mars' } })).toThrow(/unknown region/);
    expect(parseScenario({ ...tiny, optimizer: { weights: { stay: 3 }, minGain: 0.5 } }).optimizer).toMatchObject({ weights: { stay: 3 }, minGain: 0.5 });
    expect(() => parseScenario({ ...tiny, optimizer: { weights: { bogus: 1 } } })).toThrow(/unknown optimizer weight bogus/);
    expect(() => parseScenario({ ...tiny, optimizer: { weights: { stay: -1 } } })).toThrow(/optimizer.weights.stay/);
    expect(() => parseScenario({ ...tiny, optimizer: { minGain: -0.1 } })).toThrow(/minGain/);
    expect(() => parseScenario({ ...tiny, optimizer: { maxSwitches: 2.5 } })).toThrow(/maxSwitches/);
    expect(parseScenario({ ...tiny, optimizer: { maxSwitches: 20 } }).optimizer.maxSwitches).toBe(20);
    // every scenario shipped
    const dir = join(import.meta.dirname, '../../../sim/scenarios');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files).toContain('scale-100k-5s.json');
    for (const f of files) {
      const raw = JSON.parse(readFileSync(join(dir, f), 'utf8'));
      expect(() => parseScenario(raw), f).not.toThrow();
    }
  });
});
