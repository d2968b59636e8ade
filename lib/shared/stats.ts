/**
 * The server's counters, as a STATS answer carries them: a JSON object of numbers and text, whose
 * names scripts rely on; and the table that describes each (its kind, metric and help), from
 * which the server's stats, its metrics page, several servers' sum and the client's report derive.
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

/**
 * What a statistic is, which says how the statistics of several servers combine: a `counter`
 * (counted since the start) and a `gauge` (an amount now) are summed; a `ratio` is worked out
 * again as the mean of the servers' ratios, each weighted by its `weight` (so the hit ratio of a
 * cluster is its hits over its lookups), or plainly when no server has any weight; a `maximum` is
 * the largest (the longest uptime); a `setting` is the servers' common one, or "mixed".
 */
export type StatKind = "counter" | "gauge" | "ratio" | "maximum" | "setting";

/** A statistic with a number: what it is, what it means, and its metric's name if it has one. */
export type NumberStat =
  & { help: string; metric?: string }
  & (
    | { kind: Exclude<StatKind, "ratio" | "setting"> }
    | { kind: "ratio"; weight: (stats: ServerStats) => number }
  );

/** A statistic with a text: a setting of the server's. */
export interface SettingStat {
  kind: "setting";
  help: string;
}

/**
 * Every statistic, in the order people are shown them: the one description from which the
 * server's stats, its metrics page, the sum of several servers' and the client's report derive.
 * Its type holds it to ServerStats: a statistic cannot be added to one and not to the other, and
 * so none is ever summed without its kind saying it may be.
 */
export const STATS: {
  readonly [K in keyof ServerStats]: ServerStats[K] extends string ? SettingStat : NumberStat;
} = {
  policy: { kind: "setting", help: "The cache's eviction policy." },
  requests: {
    kind: "counter",
    metric: "fileserver_requests_total",
    help: "Requests, by the protocol they came in.",
  },
  hits: {
    kind: "counter",
    metric: "fileserver_cache_hits_total",
    help: "Lookups that found the file cached.",
  },
  misses: {
    kind: "counter",
    metric: "fileserver_cache_misses_total",
    help: "Lookups that did not.",
  },
  hitRatio: {
    kind: "ratio",
    help: "Lookups that found the file cached, of all lookups.",
    weight: (stats) => stats.hits + stats.misses,
  },
  byteHitRatio: {
    kind: "ratio",
    help: "File bytes sent from the cache, of all file bytes sent.",
    weight: (stats) => stats.bytesSent,
  },
  evictions: {
    kind: "counter",
    metric: "fileserver_cache_evictions_total",
    help: "Files evicted to make room.",
  },
  bytesSent: {
    kind: "counter",
    metric: "fileserver_bytes_sent_total",
    help: "Bytes written to clients.",
  },
  cacheBytes: {
    kind: "gauge",
    metric: "fileserver_cache_bytes",
    help: "Bytes of files held in the cache.",
  },
  cacheReserved: {
    kind: "gauge",
    metric: "fileserver_cache_reserved_bytes",
    help: "Bytes reserved for files being loaded into the cache.",
  },
  cachePinned: {
    kind: "gauge",
    metric: "fileserver_cache_pinned_bytes",
    help: "Bytes evicted from the cache but still being sent; they count against its capacity.",
  },
  cacheCapacity: {
    kind: "gauge",
    metric: "fileserver_cache_capacity_bytes",
    help: "The most bytes the cache may hold.",
  },
  cacheEntries: {
    kind: "gauge",
    metric: "fileserver_cache_entries",
    help: "Files held in the cache.",
  },
  diskReads: {
    kind: "counter",
    metric: "fileserver_disk_reads_total",
    help: "Files read from disk.",
  },
  connections: { kind: "gauge", metric: "fileserver_connections", help: "Connections open now." },
  totalConnections: {
    kind: "counter",
    metric: "fileserver_connections_total",
    help: "Connections accepted, the refused included.",
  },
  errors: {
    kind: "counter",
    metric: "fileserver_errors_total",
    help: "Requests and connections that failed on the server's side (a file that changed while " +
      "it was sent, a disk read that failed), each counted once; a peer's faults are " +
      "fileserver_peer_errors_total.",
  },
  authFailures: { kind: "counter", help: "Peers turned away for want of a valid access token." },
  uptimeSeconds: {
    kind: "maximum",
    metric: "fileserver_uptime_seconds",
    help: "Seconds since the server started.",
  },
};

/** The names of the statistics, in the table's order. */
export const STAT_NAMES = Object.keys(STATS) as (keyof ServerStats)[];

/**
 * `part` of `whole` (0 of nothing), as a ratio statistic is worked out.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ratio } from "./stats.ts";
 * equal(ratio(1, 4), 0.25);
 * equal(ratio(0, 0), 0);
 * ```
 */
export function ratio(part: number, whole: number): number {
  return whole ? part / whole : 0;
}

/**
 * The statistics of several servers as one, each by its kind (see {@link StatKind}); only those in
 * the table, so a statistic a newer server adds is never summed blindly.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { type ServerStats, sumStats } from "./stats.ts";
 * const one = { policy: "sieve", hits: 3, misses: 1, hitRatio: 0.75, bytesSent: 10, byteHitRatio: 1, uptimeSeconds: 5 };
 * const two = { policy: "lru", hits: 1, misses: 3, hitRatio: 0.25, bytesSent: 30, byteHitRatio: 0, uptimeSeconds: 9 };
 * const sum = sumStats([one, two] as ServerStats[]);
 * equal(sum.hits, 4);
 * equal(sum.hitRatio, 0.5);
 * equal(sum.byteHitRatio, 0.25);
 * equal(sum.uptimeSeconds, 9);
 * equal(sum.policy, "mixed");
 * ```
 */
export function sumStats(all: readonly ServerStats[]): ServerStats {
  const total: Record<string, number | string> = {};
  for (const name of STAT_NAMES) {
    total[name] = combine(
      STATS[name],
      all.map((stats) => stats[name]),
      all,
    );
  }
  return total as unknown as ServerStats;
}

/** The values of one statistic of `stat`'s kind, from the servers `all`, as one. */
function combine(
  stat: NumberStat | SettingStat,
  values: unknown[],
  all: readonly ServerStats[],
): number | string {
  const numbers = values.map((value) => typeof value === "number" ? value : 0);
  const sum = (terms: number[]) => terms.reduce((a, b) => a + b, 0);
  switch (stat.kind) {
    case "counter":
    case "gauge":
      return sum(numbers);
    case "maximum":
      return Math.max(...numbers);
    case "ratio": {
      // Servers with nothing to weigh (no lookups, no bytes sent) count alike.
      const weighed = all.map(stat.weight);
      const weights = sum(weighed) > 0 ? weighed : weighed.map(() => 1);
      return ratio(sum(numbers.map((value, i) => value * weights[i])), sum(weights));
    }
    case "setting":
      return values.every((value) => value === values[0]) ? String(values[0]) : "mixed";
  }
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
