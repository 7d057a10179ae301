/** Launches Debian's Chromium for the network tests (headless, nothing leaves the namespace). */
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.STARLING_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** The namespace's own address (test/netns.sh): pages reach the servers there, and WebRTC gathers it. */
export function netnsHost(): string {
  return process.env.STARLING_NETNS_ADDR ?? '127.0.0.1';
}
