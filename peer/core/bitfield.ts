/**
 * Piece bitfields: bit i set = piece i held. Byte 0's most significant bit is piece 0
 * (BitTorrent order); bits past the piece count are zero.
 */

export function bitfieldBytes(pieceCount: number): number {
  return (pieceCount + 7) >> 3;
}

export function newBitfield(pieceCount: number): Uint8Array {
  return new Uint8Array(bitfieldBytes(pieceCount));
}

export function getBit(bf: Uint8Array, index: number): boolean {
  const byte = index >> 3;
  if (index < 0 || byte >= bf.length) return false;
  return (bf[byte] & (0x80 >> (index & 7))) !== 0;
}

export function setBit(bf: Uint8Array, index: number): void {
  bf[index >> 3] |= 0x80 >> (index & 7);
}

export function clearBit(bf: Uint8Array, index: number): void {
  bf[index >> 3] &= ~(0x80 >> (index & 7)) & 0xff;
}

/** A bitfield with the first `pieceCount` bits set. */
export function fullBitfield(pieceCount: number): Uint8Array {
  const bf = newBitfield(pieceCount);
  const whole = pieceCount >> 3;
  bf.fill(0xff, 0, whole);
  const rest = pieceCount & 7;
  if (rest) bf[whole] = (0xff00 >> rest) & 0xff;
  return bf;
}

export function countBits(bf: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bf.length; i++) {
    let b = bf[i];
    while (b) { b &= b - 1; n++; }
  }
  return n;
}

/** True if no bit at or beyond `pieceCount` is set (and the length matches). */
export function paddingIsClean(bf: Uint8Array, pieceCount: number): boolean {
  if (bf.length !== bitfieldBytes(pieceCount)) return false;
  const rest = pieceCount & 7;
  if (!rest) return true;
  const mask = 0xff >> rest;
  return (bf[bf.length - 1] & mask) === 0;
}
