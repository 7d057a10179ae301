/** Public API of the pure P2P engine (peer/core). */
export * from './types.js';
export * from './engine-api.js';
export * from './manifest.js';
export * from './paths.js';
export { nobleCrypto, hexToBytes, bytesToHex } from './crypto.js';
export * from './codec.js';
export * from './bitfield.js';
export { SegmentStore, segmentKey, type SegmentEntry, type StoreOptions } from './store.js';
export {
  schedule, coalesce, RequestTracker,
  type SchedNeighbor, type SchedSegment, type PieceRequest, type ScheduleOptions, type RequestRecord,
} from './scheduler.js';
export { Engine, ENGINE_DEFAULTS, ENGINE_LIMITS } from './engine.js';
