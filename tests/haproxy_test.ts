/**
 * The HTTP front of several nodes, as deploy/haproxy.cfg sets it up (haproxy's `balance uri` with
 * `hash-type consistent`, health checks on /-/healthy, a PROXY line on every connection): curl
 * through haproxy gets byte-exact files, each name from one node only, and the nodes count and
 * log the real client, not haproxy, and leave haproxy's health checks out of their logs. Skipped, saying so, where haproxy is not installed.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import type { LogLevel } from "../lib/server/log.ts";
import {
  freePort,
  haproxyChecked,
  haproxyConfig,
  has,
  randomBytes,
  run,
} from "../testing/support.ts";
import { spawned, startServer, tempFolder, until } from "./harness.ts";

const installed = await has("haproxy");

Deno.test({
  name: "curl through haproxy: byte-exact, each name from one node, the real client counted, " +
    "health checks quiet",
  ignore: !installed,
  async fn(t) {
    const files = Object.fromEntries(
      Array.from({ length: 9 }, (_, i) => [`docs/f${i}.bin`, randomBytes(30_000 + i, 40 + i)]),
    );
    await using data = await tempFolder(files);
    await using work = await tempFolder();
    // The third node logs what the others leave out by default, haproxy's health checks among it.
    const node = (logLevel: LogLevel) =>
      startServer(data.path, { httpPort: 0, trustProxies: ["127.0.0.1"], logLevel });
    await using a = await node("info");
    await using b = await node("info");
    await using c = await node("debug");
    const nodes = [a, b, c];
    const [front, stats] = [freePort(), freePort()];
    const config = join(work.path, "haproxy.cfg");
    await Deno.writeTextFile(
      config,
      await haproxyConfig(nodes.map((n) => n.httpAddr!.port), front, stats),
    );
    await using _haproxy = spawned("haproxy", ["-db", "-f", config]);
    // Until haproxy has checked a node and found it up, it would send the node's names to others.
    await haproxyChecked(stats, nodes.length);

    await t.step("health checks are routine: left out of the log unless asked for", async () => {
      // Each node has been checked, and nothing but haproxy has connected yet.
      for (const quiet of [a, b]) {
        assertEquals(quiet.log.lines.slice(1), [], "lines past listening");
      }
      const checks = (lines: string[]) =>
        lines.filter((l) => / request id=\d+ .*op=http-get .*status=200 /.test(l)).length;
      await until(() => checks(c.log.lines) >= 2, "two health checks logged at debug level");
      const check = c.log.lines.find((l) => / open /.test(l))!;
      assert(/ open id=\d+ peer=127\.0\.0\.1:\d+$/.test(check), check);
      const stats = await Promise.all([a, b, c].map((n) => n.stats()));
      assertEquals(stats.map((s) => s.errors), [0, 0, 0]);
    });

    await t.step("every file byte-exact, twice; each name read from disk once", async () => {
      for (const round of [1, 2]) {
        for (const [name, bytes] of Object.entries(files)) {
          const out = join(work.path, `r${round}.bin`);
          const got = await run("curl", [
            "-sf",
            "--retry",
            "20",
            "--retry-all-errors",
            "--retry-delay",
            "0",
            "--interface",
            "127.0.0.2",
            "-o",
            out,
            `http://127.0.0.1:${front}/${name}`,
          ]);
          assertEquals(got.code, 0, got.stderr);
          assertEquals(await Deno.readFile(out), bytes, `${name}, round ${round}`);
        }
      }
      const misses = (await Promise.all(nodes.map((n) => n.stats()))).map((s) => s.misses);
      assertEquals(misses.reduce((x, y) => x + y), Object.keys(files).length, `misses ${misses}`);
      assert(misses.filter((m) => m > 0).length >= 2, `one node got every name: ${misses}`);
    });

    await t.step("the nodes log the client haproxy carried, not haproxy", () => {
      const opened = nodes.flatMap((n) => n.log.lines.filter((l) => / open /.test(l)));
      assert(
        opened.some((l) => / peer="127\.0\.0\.2:\d+ via 127\.0\.0\.1:/.test(l)),
        opened.join("\n"),
      );
    });
  },
});
