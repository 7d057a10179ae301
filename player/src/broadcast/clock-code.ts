/**
 * A burnt-in clock for glass-to-glass latency: the broadcaster draws the wall clock (10 ms
 * units, 24 bits) plus an 8-bit checksum as 32 black/white blocks across the top of the frame;
 * a viewer on the same clock reads them back from the decoded video. Blocks are 1/32 of the width
 * and 1/18 of the height, so they survive scaling to 240p and lossy encoding.
 */

export const CODE_BITS = 32;

/** The 32 bits for `nowMs`: 24 bits of the time in 10 ms units, then their byte sum. */
export function clockBits(nowMs: number): number[] {
  const v = Math.floor(nowMs / 10) % 0x1000000;
  const sum = ((v & 0xff) + ((v >> 8) & 0xff) + ((v >> 16) & 0xff)) & 0xff;
  const bits: number[] = [];
  for (let i = 23; i >= 0; i--) bits.push((v >> i) & 1);
  for (let i = 7; i >= 0; i--) bits.push((sum >> i) & 1);
  return bits;
}

/** Draws the code strip on a 2D context of size w×h. */
export function drawClock(ctx: CanvasRenderingContext2D, w: number, h: number, nowMs: number): void {
  const bw = w / CODE_BITS;
  const bh = Math.round(h / 18);
  clockBits(nowMs).forEach((b, i) => {
    ctx.fillStyle = b ? '#ffffff' : '#000000';
    ctx.fillRect(Math.floor(i * bw), 0, Math.ceil(bw), bh);
  });
}

/**
 * Reads the clock from a video element (self-contained: tests pass it to page.evaluate). Returns
 * the latency in ms (now - burnt-in time), or null when no valid code is visible.
 */
export function readClockLatency(): number | null {
  const video = document.querySelector('video');
  if (!video || video.videoWidth === 0) return null;
  const w = video.videoWidth;
  const h = video.videoHeight;
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  if (!ctx) return null;
  ctx.drawImage(video, 0, 0, w, h);
  const now = Date.now();
  const bw = w / 32;
  const y = Math.round(h / 36);
  let v = 0;
  let sum = 0;
  for (let i = 0; i < 32; i++) {
    const px = ctx.getImageData(Math.floor(i * bw + bw / 2), y, 1, 1).data;
    const bit = (px[0] + px[1] + px[2]) / 3 > 128 ? 1 : 0;
    if (i < 24) v = (v << 1) | bit;
    else sum = (sum << 1) | bit;
  }
  const check = ((v & 0xff) + ((v >> 8) & 0xff) + ((v >> 16) & 0xff)) & 0xff;
  if (check !== sum) return null;
  const nowUnits = Math.floor(now / 10) % 0x1000000;
  let d = nowUnits - v;
  if (d < 0) d += 0x1000000;
  return d * 10;
}
