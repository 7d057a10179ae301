/**
 * A Chromium page of the NAT lab behind one site's NAT (test/net/ice-restart.test.ts): the
 * browser runs inside the site's host namespace through a wrapper (`ip netns exec`; playwright
 * talks to it over pipes, which cross namespaces). The page holds peer/transport's browser
 * transport (bundled with esbuild), joins a tracker channel with plain signaling, answers every
 * offer, echoes every frame, and records each link's ConnectionInfo and ICE restart events.
 */
import { writeFileSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { Site } from './topology.js';

export interface LabPage {
  page: Page;
  pageId: string;
  /** The selected pair of the link to `remote` (null until known). */
  linkInfo(remote: string): Promise<{ local?: string; remote?: string; relayed?: boolean } | null>;
  /** ICE restart events of the page's connection to `remote` (with `at`, epoch ms). */
  iceEvents(remote: string): Promise<Array<Record<string, unknown>>>;
  /** The page's tracker connection events (closed, probe-failed, rejoined; with `at`). */
  signalingEvents(): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
}

export async function startLabPage(site: Site, trackerUrl: string, channel: string): Promise<LabPage> {
  const { build } = await import('esbuild');
  const { chromium } = await import('playwright-core');
  const { CHROMIUM_ARGS } = await import('../chromium.js');
  const root = new URL('../../..', import.meta.url).pathname;
  const bundle = await build({
    stdin: {
      contents: `import { createBrowserTransport } from './peer/transport/browser-transport.ts';
        (window as any).__transport = createBrowserTransport();`,
      resolveDir: root,
      loader: 'ts',
    },
    bundle: true, format: 'iife', write: false, logLevel: 'silent',
  });
  const dir = mkdtempSync(join(tmpdir(), 'starling-natlab-chromium-'));
  const wrapper = join(dir, 'chromium-in-netns');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${site.hostNs} ${process.env.STARLING_CHROMIUM ?? '/usr/bin/chromium'} "$@"\n`);
  chmodSync(wrapper, 0o755);
  let browser: Browser | null = null;
  try {
    browser = await chromium.launch({ executablePath: wrapper, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.log('[lab page error]', e.message));
    await page.setContent('<html><body>NAT lab</body></html>');
    await page.addScriptTag({ content: bundle.outputFiles[0].text });
    const pageId = `lab-page-${process.pid}`;
    // The page's signaling behaves like PeerHost's: it reconnects when the tracker connection
    // drops (keeping its id with the resume token), probes it when a link goes down (a peers
    // request; no answer within 2.5 s: reconnect now), and restarts ICE on links still in an
    // outage once welcomed again.
    await page.evaluate(
      ({ url, pageId, channel }) =>
        new Promise<void>((resolve, reject) => {
          const w = window as any;
          w.__links = {};
          w.__ice = {};
          w.__signaling = [];
          const conns = new Map<string, any>();
          let ws: WebSocket;
          let resumeToken: string | undefined;
          let joined = false;
          let heardAt = 0;
          let probing = false;
          const send = (msg: unknown) => {
            if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
          };
          const probe = () => {
            if (probing || ws.readyState !== WebSocket.OPEN) return;
            probing = true;
            const sentAt = Date.now();
            send({ type: 'peers', max: 1 });
            setTimeout(() => {
              probing = false;
              if (heardAt >= sentAt) return;
              w.__signaling.push({ at: Date.now(), ev: 'probe-failed' });
              reconnect();
            }, 2500);
          };
          const onMessage = (ev: MessageEvent) => {
            heardAt = Date.now();
            const m = JSON.parse(ev.data);
            if (m.type === 'welcome') {
              w.__iceServers = m.iceServers;
              resumeToken = m.resumeToken ?? resumeToken;
              if (joined) {
                w.__signaling.push({ at: Date.now(), ev: 'rejoined' });
                for (const c of conns.values()) c.restartIce?.('tracker reconnected', true);
              }
              joined = true;
              resolve();
            } else if (m.type === 'signal') {
              let c = conns.get(m.from);
              if (!c && m.data.sdp && m.data.sdp.type === 'offer') {
                w.__ice[m.from] = [];
                c = w.__transport.connect({
                  remoteId: m.from, initiator: false, iceServers: w.__iceServers,
                  sendSignal: (d: unknown) => send({ type: 'signal', to: m.from, data: d }),
                  onLink: (link: any) => {
                    link.onMessage = (f: Uint8Array) => link.send(f);
                    w.__links[m.from] = () => link.connection ?? null;
                  },
                  onFailed: (r: string) => (w.__links[m.from] = () => ({ failed: r })),
                  onIceRestart: (e: any) => {
                    w.__ice[m.from].push({ at: Date.now(), ...e });
                    if (e.type === 'down') probe();
                  },
                });
                conns.set(m.from, c);
              }
              void c?.handleSignal(m.data);
            }
          };
          const connect = () => {
            const sock = new WebSocket(url);
            ws = sock;
            sock.onerror = () => {
              if (!joined) reject(new Error('page: tracker websocket failed'));
            };
            sock.onopen = () => sock.send(JSON.stringify({ type: 'join', channel, kind: 'browser', peerId: pageId, ...(resumeToken ? { resumeToken } : {}) }));
            sock.onmessage = (ev) => {
              if (ws === sock) onMessage(ev);
            };
            sock.onclose = () => {
              if (ws !== sock) return;
              w.__signaling.push({ at: Date.now(), ev: 'closed' });
              setTimeout(connect, 300);
            };
          };
          // A dead connection's close event may take long: detach it and open a new one now.
          const reconnect = () => {
            const old = ws;
            old.onclose = old.onmessage = old.onerror = null;
            try {
              old.close();
            } catch {
              /* ignore */
            }
            connect();
          };
          connect();
        }),
      { url: trackerUrl, pageId, channel },
    );
    const b = browser;
    return {
      page,
      pageId,
      linkInfo: (remote) => page.evaluate((r) => ((window as any).__links[r]?.() ?? null), remote),
      iceEvents: (remote) => page.evaluate((r) => (window as any).__ice[r] ?? [], remote),
      signalingEvents: () => page.evaluate(() => (window as any).__signaling ?? []),
      async close() {
        await b.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
