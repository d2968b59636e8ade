/**
 * A server listing a folder of 100,000 files, run as users run it: other requests are answered
 * meanwhile, memory stays flat however many pages are asked for at once, and a listing whose
 * client has gone stops; and the flags that bound listings. (The walk itself is tested in
 * listing_test.ts.)
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { parseServerArgs } from "../server.ts";
import { CLIENT_COMMAND, spawnServer } from "../testing/support.ts";
import { rawConnect, tempFolder } from "./harness.ts";

Deno.test("a folder of 100,000 files, listed", async (t) => {
  const count = 100_000;
  await using base = await tempFolder({ "first.txt": "1" });
  const made = await new Deno.Command("sh", {
    args: ["-c", `mkdir many && cd many && seq -f 'f%06g' 1 ${count} | xargs touch`],
    cwd: base.path,
  }).output();
  assert(made.success, "the folder could not be made");

  await using server = await spawnServer(["--data", base.path, "--http-port", "0"]);
  const http = `http://127.0.0.1:${server.httpPort}`;

  await t.step("a small GET stays quick while the tree is listed", async () => {
    const gets = async () => {
      const times: number[] = [];
      while (times.length < 300) {
        const started = performance.now();
        assertEquals(await (await fetch(`${http}/first.txt`)).text(), "1");
        times.push(performance.now() - started);
      }
      return times.sort((a, b) => a - b)[Math.floor(times.length * 0.99)];
    };
    // Against the same GETs with no listing: a busy machine slows both, a stalled server one.
    const alone = await gets();
    const listing = listWhile(server.port);
    let during: number;
    try {
      await listing.started;
      during = await gets();
    } finally {
      assert(await listing.stop() > 0, "no list was made meanwhile");
    }
    console.log(`GET p99: ${alone.toFixed(2)} ms alone, ${during.toFixed(2)} ms during listings`);
    assert(during < 10 + 3 * alone, `p99 ${during.toFixed(1)} ms, against ${alone.toFixed(1)}`);
  });

  await t.step("ten pages of the folder at once hold little memory", async () => {
    const before = rss(server.process.pid);
    let peak = before;
    const pages = Array.from({ length: 10 }, async () => {
      const page = await (await fetch(`${http}/many/`)).text();
      peak = Math.max(peak, rss(server.process.pid));
      return page;
    });
    for (const page of await Promise.all(pages)) {
      assert(page.includes("f100000") && page.endsWith("</html>\n"), page.slice(-200));
    }
    const grew = (peak - before) / 2 ** 20;
    console.log(`the server grew by ${grew.toFixed(0)} MiB at most`);
    // Four walks at once (--max-listings), each with a batch and its folder open (a few entries
    // read ahead), and the entries the pages hold to sort (--sort-limit, 50,000 between them,
    // some 10-20 MiB), and garbage not yet collected; pages built whole took 400 MiB each.
    assert(grew < 100, `the server grew by ${grew.toFixed(0)} MiB`);
  });

  await t.step("a page whose client has gone stops at once", async () => {
    using socket = await rawConnect(server.httpPort!);
    await socket.write("GET /many/ HTTP/1.1\r\nHost: x\r\n\r\n");
    await socket.readExactly(1024);
    const left = performance.now();
    socket.conn.close();
    const logged = await server.waitFor(/ op=http-get .*status=200 .*error=/, 2000);
    const ms = performance.now() - left;
    const entries = Number(/ entries=(\d+)/.exec(logged)?.[1]);
    assert(entries < count, logged);
    console.log(`stopped ${ms.toFixed(0)} ms after the client left, ${entries} entries sent`);
  });
});

/** The RSS of the process `pid`, in bytes. */
function rss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/**
 * Runs `client list` against the server at `port` again and again, its output dropped,
 * until stopped; `started` once the first is under way, `stop` then says how many were made.
 */
function listWhile(port: number): { started: Promise<void>; stop: () => Promise<number> } {
  let stopped = false;
  let made = 0;
  const started = Promise.withResolvers<void>();
  const runs = (async () => {
    while (!stopped) {
      // At the lowest priority: on a machine of few cores, the client's own work would otherwise
      // slow the GETs measured beside it, whatever the server does.
      const child = new Deno.Command("nice", {
        args: ["-n", "19", Deno.execPath(), ...CLIENT_COMMAND, "--port", String(port), "list"],
        stdout: "null",
        stderr: "inherit",
      }).spawn();
      started.resolve();
      assert((await child.status).success);
      made++;
    }
  })();
  return {
    started: started.promise,
    stop: async () => {
      stopped = true;
      await runs;
      return made;
    },
  };
}

Deno.test("the listing flags: given, defaulted, and refused out of range", () => {
  const given = parseServerArgs(["--max-listings", "2", "--list-depth", "0", "--sort-limit", "0"]);
  assert(given !== "help");
  assertEquals([given.maxListings, given.listDepth, given.sortLimit], [2, 0, 0]);
  const defaults = parseServerArgs([]);
  assert(defaults !== "help");
  assertEquals([defaults.maxListings, defaults.listDepth, defaults.sortLimit], [4, 32, 50_000]);
  throws(() => parseServerArgs(["--max-listings", "0"]), { name: "UsageError" });
  throws(() => parseServerArgs(["--list-depth", "-1"]), { name: "UsageError" });
});
