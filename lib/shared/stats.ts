/**
 * The server's counters, as a STATS answer carries them: a JSON object of numbers and text, whose
 * names scripts rely on.
 */

import { ProtocolError } from "./errors.ts";
import { badFrame, encodeText, Frame, readText } from "./frames.ts";

/** The counters a STATS answer carries, as a JSON object; scripts rely on these names. */
export interface ServerStats {
  policy: string;
  requests: number;
  hits: number;
  misses: number;
  hitRatio: number;
  byteHitRatio: number;
  evictions: number;
  bytesSent: number;
  cacheBytes: number;
  cacheReserved: number;
  /** Bytes evicted from the cache but still being sent to slow readers; they count against the cap. */
  cachePinned: number;
  cacheCapacity: number;
  cacheEntries: number;
  diskReads: number;
  connections: number;
  totalConnections: number;
  errors: number;
  /** Peers turned away for want of a valid access token. */
  authFailures: number;
  uptimeSeconds: number;
}

/** Encodes a STATS_REPLY frame. */
export function encodeStats(stats: ServerStats): Uint8Array {
  return encodeText(Frame.StatsReply, JSON.stringify(stats));
}

/**
 * Reads a STATS_REPLY payload: a JSON object whose values are numbers or strings. Anything else is
 * a ProtocolError, so a broken server cannot make a reader print whatever it sent.
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { encodeText, Frame, HEADER_BYTES } from "./frames.ts";
 * import { readStats } from "./stats.ts";
 * const payload = (text: string) => encodeText(Frame.StatsReply, text).subarray(HEADER_BYTES);
 * equal(readStats(payload('{"requests":3}')).requests, 3);
 * throws(() => readStats(payload("not json")), { name: "ProtocolError" });
 * ```
 */
export function readStats(payload: Uint8Array): ServerStats {
  let stats: unknown;
  try {
    stats = JSON.parse(readText(payload));
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw badFrame("a STATS_REPLY frame is not JSON");
  }
  if (typeof stats !== "object" || stats === null || Array.isArray(stats)) {
    throw badFrame("a STATS_REPLY frame is not a JSON object");
  }
  for (const value of Object.values(stats)) {
    if (typeof value !== "number" && typeof value !== "string") {
      throw badFrame("a STATS_REPLY frame holds a value that is neither a number nor text");
    }
  }
  return stats as ServerStats;
}
