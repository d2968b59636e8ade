/**
 * The table of statistics (STATS, lib/shared/stats.ts) is the one description the server's stats,
 * its metrics page, the sum of several servers' and the report derive from: every statistic is
 * in it, several servers' combine by kind (a ratio or a maximum is never summed), and the names
 * scripts rely on stay as they are.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import { FileClient } from "../lib/client/client.ts";
import { formatStats } from "../lib/client/report.ts";
import { type ServerStats, STAT_NAMES, STATS, sumStats } from "../lib/shared/stats.ts";
import { startServer, tempFolder } from "./harness.ts";

/** The STATS answer's names, which scripts rely on: never renamed. */
const NAMES = [
  "policy",
  "requests",
  "hits",
  "misses",
  "hitRatio",
  "byteHitRatio",
  "evictions",
  "bytesSent",
  "cacheBytes",
  "cacheReserved",
  "cachePinned",
  "cacheCapacity",
  "cacheEntries",
  "diskReads",
  "connections",
  "totalConnections",
  "errors",
  "authFailures",
  "uptimeSeconds",
];

/** The metrics the statistics give, by the names dashboards rely on: never renamed. */
const METRICS = [
  "fileserver_requests_total",
  "fileserver_cache_hits_total",
  "fileserver_cache_misses_total",
  "fileserver_cache_evictions_total",
  "fileserver_bytes_sent_total",
  "fileserver_cache_bytes",
  "fileserver_cache_reserved_bytes",
  "fileserver_cache_pinned_bytes",
  "fileserver_cache_capacity_bytes",
  "fileserver_cache_entries",
  "fileserver_disk_reads_total",
  "fileserver_connections",
  "fileserver_connections_total",
  "fileserver_errors_total",
  "fileserver_uptime_seconds",
];

/** Any statistics a server could report: numbers for numbers (ratios within 0 and 1), a policy. */
const anyStats: fc.Arbitrary<ServerStats> = fc.record(
  Object.fromEntries(STAT_NAMES.map((name) => {
    const { kind } = STATS[name];
    const value = kind === "setting"
      ? fc.constantFrom("sieve", "lru")
      : kind === "ratio"
      ? fc.double({ min: 0, max: 1, noNaN: true })
      : fc.nat(1e9);
    return [name, value];
  })),
) as unknown as fc.Arbitrary<ServerStats>;

Deno.test("the statistics a server reports are the table's", async (t) => {
  await using data = await tempFolder({ "a.txt": "a" });
  await using server = await startServer(data.path, { httpPort: 0 });

  await t.step("every one, by its name, in the table's order, and no other", async () => {
    assertEquals(STAT_NAMES, NAMES);
    assertEquals(Object.keys(await server.stats()), NAMES);
    const client = await FileClient.connect("127.0.0.1", server.addr.port);
    try {
      assertEquals(Object.keys(await client.stats()), NAMES);
    } finally {
      client.close();
    }
  });

  await t.step(
    "each with a metric on the metrics page, under its name, with its help",
    async () => {
      const page = await (await fetch(`http://127.0.0.1:${server.httpAddr!.port}/-/metrics`))
        .text();
      const named = STAT_NAMES.flatMap((name) => {
        const stat = STATS[name];
        return "metric" in stat && stat.metric !== undefined ? [[stat.metric, stat] as const] : [];
      });
      assertEquals(named.map(([metric]) => metric).sort(), [...METRICS].sort());
      for (const [metric, { kind, help }] of named) {
        assert(page.includes(`# HELP ${metric} ${help}\n`), metric);
        assert(
          page.includes(`# TYPE ${metric} ${kind === "counter" ? "counter" : "gauge"}\n`),
          metric,
        );
      }
    },
  );
});

Deno.test("several servers' statistics combine by kind", async (t) => {
  await t.step(
    "counters and gauges summed, maximums the largest, ratios weighted, settings shared",
    () => {
      fc.assert(fc.property(fc.array(anyStats, { minLength: 1, maxLength: 4 }), (all) => {
        const total = sumStats(all);
        assertEquals(Object.keys(total), NAMES);
        for (const name of STAT_NAMES) {
          const stat = STATS[name];
          const values = all.map((stats) => stats[name]);
          const numbers = values as number[];
          const sum = (terms: number[]) => terms.reduce((a, b) => a + b, 0);
          if (stat.kind === "counter" || stat.kind === "gauge") {
            assertEquals(total[name], sum(numbers));
          } else if (stat.kind === "maximum") assertEquals(total[name], Math.max(...numbers));
          else if (stat.kind === "ratio") {
            const weighed = all.map(stat.weight);
            const weights = sum(weighed) > 0 ? weighed : weighed.map(() => 1);
            const expected = sum(numbers.map((v, i) => v * weights[i])) / sum(weights);
            assert(Math.abs((total[name] as number) - expected) < 1e-9, name);
          } else assertEquals(total[name], new Set(values).size === 1 ? values[0] : "mixed");
        }
      }));
    },
  );

  await t.step("a server with itself: only counters and gauges double", () => {
    fc.assert(fc.property(anyStats, (stats) => {
      const twice = sumStats([stats, stats]);
      for (const name of STAT_NAMES) {
        const { kind } = STATS[name];
        const doubles = kind === "counter" || kind === "gauge";
        const expected = doubles ? (stats[name] as number) * 2 : stats[name];
        if (kind === "ratio") {
          assert(Math.abs((twice[name] as number) - (expected as number)) < 1e-9, name);
        } else assertEquals(twice[name], expected, name);
      }
    }));
  });

  await t.step("the report shows the table's statistics, the sum beside each server's", () => {
    const [one, two] = fc.sample(anyStats, { numRuns: 2, seed: 21 });
    const lines = formatStats(["a:1", "b:2"], [one, two], false).split("\n");
    assertEquals(lines[0].trim().split(/\s+/), ["total", "a:1", "b:2"]);
    assertEquals(lines.slice(1).map((line) => line.split(/\s+/)[0]), NAMES);
    const json = JSON.parse(formatStats(["a:1", "b:2"], [one, two], true));
    assertEquals(json.total, sumStats([one, two]));
  });

  await t.step("a statistic the table does not know is shown, and never summed", () => {
    const [one, two] = fc.sample(anyStats, { numRuns: 2, seed: 22 });
    const newer = { ...two, futureRatio: 0.5 } as ServerStats;
    assertEquals("futureRatio" in sumStats([one, newer]), false);
    const last = formatStats(["a:1", "b:2"], [one, newer], false).split("\n").at(-1)!;
    assertEquals(last.split(/\s+/), ["futureRatio", "-", "-", "0.500"]);
  });
});
