/**
 * Speed of each eviction policy through the real {@link ByteCache}: a cache of 10,000 one-byte
 * entries serves Zipf(0.8) requests over 100,000 path-like keys — a lookup, and on a miss a
 * reservation and its commit (an insert, evicting one entry). Operations (lookups plus inserts)
 * per second are printed side by side with their ratio to FIFO; the policies take turns, round
 * after round, and each one's median round is reported, so machine noise hits them alike.
 *
 * Usage: deno run bench/cache_ops.ts [--quick | --smoke]
 */

import { ByteCache, POLICIES, type PolicyName } from "../lib/server/cache/cache.ts";
import { parseCommandLine } from "../lib/shared/cli.ts";
import { type Length, lengthOf } from "./length.ts";
import { Rng, Zipf } from "./traces.ts";
import { median } from "./median.ts";

/** Entries the cache holds. */
export const OPS_ENTRIES = 10_000;
/** Distinct keys requested. */
export const OPS_KEYS = 100_000;
/** Popularity skew of the requests. */
export const OPS_ALPHA = 0.8;

/** Settings of {@link runCacheOps}. */
export interface CacheOpsOptions {
  /** How long it runs: 1,000,000 requests a round (full, the default), 200,000 or 20,000. */
  length?: Length;
  /** Where the table goes (console.log by default). */
  print?: (line: string) => void;
}

/** One policy's speed. */
export interface OpsResult {
  policy: PolicyName;
  /** Lookups plus inserts per second, median round. */
  operationsPerSecond: number;
  /** Share of the lookups that hit. */
  hitRatio: number;
  /** Share of the operations that are inserts. */
  insertShare: number;
}

/** Serves `requests` through a fresh cache; returns operations, hits and elapsed milliseconds. */
function round(policy: PolicyName, keys: string[], requests: Uint32Array) {
  const cache = new ByteCache<string, true>({ capacity: OPS_ENTRIES, policy });
  let inserts = 0;
  const started = performance.now();
  for (let i = 0; i < requests.length; i++) {
    const key = keys[requests[i]];
    if (cache.get(key) === undefined) {
      cache.reserve(key, 1)!.commit(true);
      inserts++;
    }
  }
  const milliseconds = performance.now() - started;
  return { operations: requests.length + inserts, inserts, hits: cache.hits, milliseconds };
}

/** Measures every policy's operations per second; prints and returns them. */
export function runCacheOps(options: CacheOpsOptions = {}): OpsResult[] {
  const print = options.print ?? console.log;
  const length = options.length ?? "full";
  const count = { full: 1_000_000, quick: 200_000, smoke: 20_000 }[length];
  const rounds = 3;
  const keys = Array.from({ length: OPS_KEYS }, (_, i) => `docs/section-${i % 97}/file-${i}.bin`);
  const rng = new Rng(42);
  const zipf = new Zipf(OPS_KEYS, OPS_ALPHA);
  const requests = Uint32Array.from({ length: count }, () => zipf.sample(rng));
  for (const policy of POLICIES) round(policy, keys, requests.subarray(0, count / 10)); // warm-up
  const rates = new Map<PolicyName, number[]>(POLICIES.map((p) => [p, []]));
  const outcome = new Map<PolicyName, { hits: number; inserts: number; operations: number }>();
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < POLICIES.length; i++) {
      const policy = POLICIES[(i + r) % POLICIES.length]; // a different policy goes first each round
      const result = round(policy, keys, requests);
      rates.get(policy)!.push(result.operations / result.milliseconds * 1000);
      outcome.set(policy, result);
    }
  }
  const results = POLICIES.map((policy) => {
    const { hits, inserts, operations } = outcome.get(policy)!;
    return {
      policy,
      operationsPerSecond: median(rates.get(policy)!),
      hitRatio: hits / count,
      insertShare: inserts / operations,
    };
  });
  print(
    `cache operations (${length}): ${OPS_ENTRIES.toLocaleString("en")}` +
      `-entry cache, ${count.toLocaleString("en")} Zipf(${OPS_ALPHA}) requests over ` +
      `${OPS_KEYS.toLocaleString("en")} keys, median of ${rounds} rounds, ${
        new Date().toISOString()
      }`,
  );
  print("policy      hit ratio   inserts   ops/s (lookups + inserts)   ×fifo");
  const fifo = results.find((r) => r.policy === "fifo")!.operationsPerSecond;
  for (const r of results) {
    print(
      `  ${r.policy.padEnd(8)}${`${(r.hitRatio * 100).toFixed(1)}%`.padStart(11)}${
        `${(r.insertShare * 100).toFixed(1)}%`.padStart(10)
      }${Math.round(r.operationsPerSecond).toLocaleString("en").padStart(28)}${
        (r.operationsPerSecond / fifo).toFixed(2).padStart(8)
      }`,
    );
  }
  return results;
}

if (import.meta.main) {
  parseCommandLine(Deno.args, { quick: { type: "boolean" }, smoke: { type: "boolean" } });
  runCacheOps({ length: lengthOf(Deno.args) });
}
