/**
 * The HTTP front of several nodes, as deploy/haproxy.cfg sets it up (haproxy's `balance uri` with
 * `hash-type consistent`, health checks on /-/healthy, a PROXY line on every connection): curl
 * through haproxy gets byte-exact files, each name from one node only, and the nodes count and
 * log the real client, not haproxy. Skipped, saying so, where haproxy is not installed.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { freePort, haproxyConfig, has, randomBytes, run } from "../testing/support.ts";
import { spawned, startServer, tempFolder, until } from "./harness.ts";

const installed = await has("haproxy");

Deno.test({
  name: "curl through haproxy: byte-exact, each name from one node, the real client counted",
  ignore: !installed,
  async fn(t) {
    const files = Object.fromEntries(
      Array.from({ length: 9 }, (_, i) => [`docs/f${i}.bin`, randomBytes(30_000 + i, 40 + i)]),
    );
    await using data = await tempFolder(files);
    await using work = await tempFolder();
    const node = () => startServer(data.path, { httpPort: 0, trustProxies: ["127.0.0.1"] });
    await using a = await node();
    await using b = await node();
    await using c = await node();
    const nodes = [a, b, c];
    const front = freePort();
    const config = join(work.path, "haproxy.cfg");
    await Deno.writeTextFile(
      config,
      await haproxyConfig(nodes.map((n) => n.httpAddr!.port), front),
    );
    await using _haproxy = spawned("haproxy", ["-db", "-f", config]);
    // haproxy sends nothing to a node before its health checks pass (rise 2, a second apart).
    // Until then it would send a node's names to the others. Its checks are answered without a
    // file's name in the log: two such answers on each node mark it up.
    const checks = (n: typeof a) => n.log.lines.filter((l) => / op=http-get status=200 /.test(l));
    await until(() => nodes.every((n) => checks(n).length >= 2), "haproxy to find every node up");

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
      const misses = nodes.map((n) => n.stats().misses);
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
