/**
 * Every benchmark program run end to end in its shortest settings (--smoke, bench/length.ts), as
 * `make bench` and `make soak` run them, so that a harness which no longer works fails here
 * rather than on the day someone measures with it. Once with the tools this machine has, and once
 * with the optional ones hidden, as on a machine with none of them: each part then says what it
 * skipped, and still runs our own side.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { run } from "../testing/support.ts";

/** The tools the benchmarks compare with or drive, none of which a plain machine has. */
const OPTIONAL = ["nginx", "wrk", "curl", "rsync", "aria2c", "haproxy"];

/** What each part must say it skipped without the optional tools. */
const SKIPPED = [
  "nginx comparison skipped: needs nginx, curl and wrk",
  "HTTP benchmark skipped: needs wrk and curl",
  "compression beside nginx skipped: needs nginx and wrk",
  "rsync comparison skipped: rsync is not installed",
  "curl+nginx comparison skipped: needs nginx and curl",
  "aria2c comparison skipped: aria2c is not installed",
  "haproxy skipped: not installed",
  "workers benchmark skipped: needs wrk, curl, nginx and openssl",
  "HTTP page comparison skipped: needs curl",
];

/**
 * A PATH with every program of this one but `hidden`: a folder of links to them, removed by the
 * returned dispose.
 */
async function pathWithout(hidden: string[]): Promise<{ path: string } & AsyncDisposable> {
  const folder = await Deno.makeTempDir({ prefix: "fileserver-path-" });
  const linked = new Set(hidden);
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir !== "")) {
    const entries = await Array.fromAsync(Deno.readDir(dir)).catch(() => []);
    for (const { name } of entries) {
      if (linked.has(name)) continue;
      linked.add(name);
      await Deno.symlink(join(dir, name), join(folder, name));
    }
  }
  return {
    path: folder,
    [Symbol.asyncDispose]: () => Deno.remove(folder, { recursive: true }),
  };
}

/** `make` with `args`, as a user runs it, with `env` added to the environment. */
function make(args: string[], env: Record<string, string> = {}) {
  return run("make", ["--no-print-directory", ...args], { env });
}

Deno.test("make bench ARGS=--smoke: every part runs end to end", async (t) => {
  await t.step("with the tools this machine has", async () => {
    const result = await make(["bench", "ARGS=--smoke"]);
    assertEquals(result.code, 0, result.stdout + result.stderr);
    const parts = [
      "cache_sim",
      "cache_ops",
      "shared_cache",
      "server_bench",
      "http_bench",
      "workers_bench",
      "compress",
      "download",
      "listing",
    ];
    for (const part of parts) {
      assert(result.stdout.includes(`== bench/${part}.ts --smoke`), part);
    }
    assert(result.stdout.includes("cluster benchmark (smoke)"), result.stdout);
  });

  await t.step("with none of the optional tools: each says what it skipped", async () => {
    await using path = await pathWithout(OPTIONAL);
    const result = await make(["bench", "ARGS=--smoke"], { PATH: path.path });
    assertEquals(result.code, 0, result.stdout + result.stderr);
    for (const skipped of SKIPPED) assert(result.stdout.includes(skipped), skipped);
    // Our own side ran all the same.
    for (
      const ran of [
        "4 KiB, 64 conn: requests",
        "our HTTP port served 2 files byte for byte",
        "ours br ",
        "ours, verified, --connections 4",
        "3 nodes of C, one stopped halfway",
        "client list --json (whole process)",
      ]
    ) {
      assert(result.stdout.includes(ran), ran);
    }
  });
});

Deno.test("make soak: ARGS override its two minutes; every answer checks out", async () => {
  const result = await make(["soak", "ARGS=--seconds 1 --clients 4 --cache-size 1MiB"]);
  assertEquals(result.code, 0, result.stdout + result.stderr);
  assert(result.stdout.includes("soak: 1 s, seed 1, 4 clients, cache 1.0 MiB"), result.stdout);
  assert(result.stdout.trimEnd().endsWith("PASS"), result.stdout);
});
