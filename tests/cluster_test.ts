/**
 * The client over several servers sharing one folder (`--servers`), as a user runs it: each name
 * fetched from the server rendezvous hashing ranks first for it, a server that cannot be reached
 * left out in one line, lists merged and counters summed.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { rank } from "../lib/client/rendezvous.ts";
import { runClient, startServer, tempFolder } from "./harness.ts";
import { freePort, randomBytes } from "../testing/support.ts";

Deno.test("--servers: names spread by rendezvous hashing over servers sharing one folder", async (t) => {
  const files = Object.fromEntries(
    Array.from({ length: 12 }, (_, i) => [`docs/f${i}.bin`, randomBytes(20_000 + i, i)]),
  );
  await using data = await tempFolder(files);
  await using a = await startServer(data.path);
  await using b = await startServer(data.path);
  await using c = await startServer(data.path);
  const nodes = [a, b, c];
  const servers = nodes.map((node) => `127.0.0.1:${node.addr.port}`);
  const names = Object.keys(files);
  await using out = await tempFolder();

  await t.step("get saves every file, each read by the server ranked first for it", async () => {
    const got = await runClient(["--servers", servers.join(","), "get", ...names, "-o", out.path]);
    assertEquals([got.code, got.stderr], [0, ""]);
    for (const name of names) assertEquals(await Deno.readFile(join(out.path, name)), files[name]);
    for (const [i, node] of nodes.entries()) {
      const own = names.filter((name) => rank(name, servers)[0] === servers[i]).length;
      assertEquals(node.stats().misses, own, `server ${i + 1}`);
    }
  });

  await t.step("list merges the servers' lists: each name once, cached", async () => {
    const listed = await runClient(["--servers", servers.join(","), "list", "--json"]);
    const entries = JSON.parse(listed.stdout) as { name: string; cached: boolean }[];
    assertEquals(entries.map((e) => e.name), [...names].sort());
    assert(entries.every((e) => e.cached), "a file fetched is not shown cached");
  });

  await t.step("stats sums the servers and shows each", async () => {
    const shown = JSON.parse(
      (await runClient(["--servers", servers.join(","), "stats", "--json"])).stdout,
    );
    assertEquals(Object.keys(shown.servers), servers);
    assertEquals(shown.total.misses, names.length);
    assertEquals(shown.total.cacheEntries, names.length);
    const table = await runClient(["--servers", servers.join(","), "stats"]);
    const head = table.stdout.split("\n")[0].trim().split(/\s+/);
    assertEquals(head, ["total", ...servers]);
  });

  await t.step("a server that cannot be reached is left out, said once, in one line", async () => {
    const gone = `127.0.0.1:${freePort()}`;
    const list = [servers[0], gone, servers[2]].join(",");
    const again = await tempFolder();
    const got = await runClient(["--servers", list, "get", ...names, "-o", again.path]);
    assertEquals(got.code, 0, got.stderr);
    assertEquals(
      got.stderr,
      `client: cannot connect to ${gone}: connection refused; is the server running?; going on without it\n`,
    );
    for (const name of names) {
      assertEquals(await Deno.readFile(join(again.path, name)), files[name]);
    }
    await Deno.remove(again.path, { recursive: true });
  });

  await t.step("no server reached: exit 3, one line", async () => {
    const gone = [freePort(), freePort()].map((port) => `127.0.0.1:${port}`);
    const got = await runClient(["--servers", gone.join(","), "get", names[0], "-o", out.path]);
    assertEquals(got.code, 3);
    assertEquals(got.stderr.trim().split("\n").length, 1, got.stderr);
  });

  await t.step("--servers-file, and mistakes on the command line", async () => {
    const file = join(out.path, "servers.txt");
    await Deno.writeTextFile(file, `# the nodes\n${servers.join("\n")}\n\n`);
    assertEquals((await runClient(["--servers-file", file, "list"])).code, 0);
    for (
      const args of [
        ["--servers", servers[0], "--host", "127.0.0.1", "list"],
        ["--servers", "no-port", "list"],
        ["--servers", servers[0], "--servers-file", file, "list"],
      ]
    ) {
      const wrong = await runClient(args);
      assertEquals(wrong.code, 2, args.join(" "));
    }
  });
});
