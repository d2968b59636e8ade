/**
 * The client over several servers sharing one folder (`--servers`), as a user runs it: each name
 * fetched from the server rendezvous hashing ranks first for it, a server that cannot be reached
 * left out in one line, lists merged and counters summed. And `make cluster` (scripts/cluster.ts)
 * as a user runs it: its hints run as printed, it raises no alarm at start, and a node that ends
 * is named while the rest carry on.
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { join } from "node:path";
import { rank } from "../lib/client/rendezvous.ts";
import { runClient, startCluster, startServer, tempFolder } from "./harness.ts";
import { freePort, has, randomBytes, run } from "../testing/support.ts";

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
      assertEquals((await node.stats()).misses, own, `server ${i + 1}`);
    }
  });

  await t.step("list merges the servers' lists: each name once, cached", async () => {
    const listed = await runClient(["--servers", servers.join(","), "list", "--json"]);
    const entries = JSON.parse(listed.stdout) as { name: string; cached: boolean }[];
    assertEquals(entries.map((e) => e.name).sort(), [...names].sort());
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

Deno.test("make cluster: quiet at start, a node that ends is named, the rest carry on", async (t) => {
  const files = Object.fromEntries(
    Array.from({ length: 8 }, (_, i) => [`f${i}.bin`, randomBytes(10_000 + i, 70 + i)]),
  );
  const names = Object.keys(files);
  await using data = await tempFolder(files);
  await using out = await tempFolder();
  await using cluster = startCluster(["--nodes", "2", "--data", data.path]);
  await cluster.waitFor(/^Ctrl-C stops them all/, 30_000);
  const pids = ["node1", "node2"].map((name) =>
    Number(cluster.lines.find((l) => l.startsWith(`  ${name}: `))!.split("pid ")[1])
  );
  const haproxy = await has("haproxy");
  /** The client, as the hint line gives it, getting every file into `folder`. */
  const getAll = async (folder: string) => {
    const hint = cluster.lines.find((l) => l.startsWith("Through the nodes: "))!;
    const command = hint.replace("Through the nodes: ", "").replace(/ NAME$/, "").split(" ");
    assertEquals(command.slice(0, 5), ["./scripts/deno", "run", "-A", "client.ts", "--servers"]);
    const got = await runClient([...command.slice(4), ...names, "-o", folder]);
    for (const name of names) assertEquals(await Deno.readFile(join(folder, name)), files[name]);
    return got;
  };

  await t.step("every file through the nodes, and through haproxy when installed", async () => {
    assertEquals((await getAll(out.path)).code, 0);
    if (!haproxy) return;
    const hint = cluster.lines.find((l) => l.startsWith("Through haproxy: curl -O "))!;
    const url = hint.split(" ").at(-1)!.replace("NAME", names[0]);
    const got = await run("curl", ["-sf", "-o", join(out.path, "front.bin"), url]);
    assertEquals(got.code, 0, got.stderr);
    assertEquals(await Deno.readFile(join(out.path, "front.bin")), files[names[0]]);
  });

  await t.step("no error logged or counted, no health check logged", async () => {
    const hint = cluster.lines.find((l) => l.startsWith("Through the nodes: "))!;
    const servers = hint.split(" --servers ")[1].split(" ")[0];
    const stats = JSON.parse((await runClient(["--servers", servers, "stats", "--json"])).stdout);
    assertEquals(stats.total.errors, 0);
    const alarming = cluster.lines.filter((l) => /-error |malformed/.test(l));
    assertEquals(alarming, []);
    // haproxy checked every node before the script said it was ready: none of it is logged.
    const checks = cluster.lines.filter((l) =>
      / request id=\d+ .*op=http-get .*target=\/-\/healthy /.test(l)
    );
    assertEquals(checks, []);
  });

  await t.step("a node that ends is named, with how it ended; the rest keep serving", async () => {
    Deno.kill(pids[0], "SIGKILL");
    const rest = haproxy ? "node2, haproxy" : "node2";
    await cluster.waitFor(
      new RegExp(`^node1 \\(pid ${pids[0]}\\) was killed by SIGKILL; still running: ${rest}$`),
    );
    await using again = await tempFolder();
    const got = await getAll(again.path);
    assertEquals(got.code, 0, got.stderr);
  });

  await t.step("Ctrl-C stops them all; exit 0", async () => {
    cluster.process.kill("SIGINT");
    assertEquals((await cluster.process.status).code, 0);
    await cluster.read;
    assert(cluster.lines.some((l) => /^node2 \| .* stopped /.test(l)), "node2 did not stop");
    throws(() => Deno.kill(pids[1], "SIGTERM"), Deno.errors.NotFound);
  });
});

Deno.test("make cluster: a node that cannot have its port says which, and is named", async () => {
  await using data = await tempFolder({ "a.txt": "a\n" });
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  await using cluster = startCluster([
    "--nodes",
    "1",
    "--data",
    data.path,
    "--port",
    String(port - 1),
  ]);
  assertEquals((await cluster.process.status).code, 1);
  await cluster.read;
  const said = cluster.lines.filter((l) => l.startsWith("node1 ")).map((l) =>
    l.replace(/\d+\)/, "PID)")
  );
  assertEquals(said, [
    `node1 | server: cannot start: cannot listen on 127.0.0.1:${port}, the native port (--port): ` +
    "Address already in use",
    "node1 (pid PID) ended with exit status 1; no process of the cluster is left",
  ]);
});
