/**
 * The benchmark suite, in one run: the cache policies' hit ratios on synthetic traces, their
 * operations per second, the cache shared by worker threads beside one thread's, the server's
 * speed beside the loopback ceiling (and nginx, when installed), its HTTP port beside nginx, its
 * compressed answers beside nginx's gzip, the client's downloads beside rsync and curl+nginx (when
 * installed), a listing of 100,000 files beside find, ls -lR and nginx's autoindex, then a cluster
 * of nodes beside one node. Each part is its own program, run
 * one after another so they never compete for the machine. Every part prints ratios measured
 * side by side in that same run. --quick and --smoke (bench/length.ts) are handed to each part.
 *
 * Usage: deno run -A bench/main.ts [--quick | --smoke]
 */

import { lengthOf } from "./length.ts";

const PARTS = [
  "cache_sim.ts",
  "cache_ops.ts",
  "shared_cache.ts",
  "server_bench.ts",
  "http_bench.ts",
  "compress.ts",
  "workers_bench.ts",
  "download.ts",
  "listing.ts",
  "cluster.ts",
];

if (import.meta.main) {
  const length = lengthOf(Deno.args);
  const flags = length === "full" ? [] : [`--${length}`];
  for (const part of PARTS) {
    console.log(`\n== bench/${part} ${flags.join(" ")}`);
    const { success } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", new URL(part, import.meta.url).pathname, ...flags],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!success) {
      console.error(`bench/${part} failed`);
      Deno.exit(1);
    }
  }
}
