/**
 * `get --connections N`: files shared out among connections, a large file in pieces written at
 * their offsets, byte for byte; a client killed mid-transfer resumes with only what is missing, over
 * any number of connections; and a file that changed since is caught and started afresh.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { partialPath } from "../lib/client/plan.ts";
import { SPLIT_MIN_BYTES } from "../lib/client/split.ts";
import { recordPath } from "../lib/client/pieces.ts";
import { runClient, startServer, tempFolder, until } from "./harness.ts";
import { randomBytes, ROOT } from "../testing/support.ts";

const MiB = 1024 * 1024;

/** `size` bytes, every MiB different (quicker to make than randomBytes for hundreds of MiB). */
function bigBytes(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  const block = randomBytes(MiB, seed);
  for (let at = 0; at < size; at += MiB) {
    bytes.set(block.subarray(0, Math.min(MiB, size - at)), at);
    if (size - at >= 8) new DataView(bytes.buffer).setFloat64(at, at + seed);
  }
  return bytes;
}

/** True when `a` and `b` hold the same bytes (without assertEquals' dump of megabytes). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, (error) => {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  });
}

/** Bytes a record says are written; 0 while there is none (or it is being replaced). */
function recorded(path: string): number {
  try {
    const { done } = JSON.parse(Deno.readTextFileSync(path));
    return done.reduce((sum: number, [start, end]: number[]) => sum + end - start, 0);
  } catch {
    return 0;
  }
}

/** Body bytes the server's log says it sent for `name` since line `from`, and in how many GETs. */
function served(lines: string[], name: string, from = 0): { gets: number; bytes: number } {
  const gets = lines.slice(from).filter((line) => line.includes(` op=get name=${name} `));
  const bytes = gets.reduce((sum, line) => sum + Number(/ bytes=(\d+) /.exec(line)?.[1] ?? 0), 0);
  return { gets: gets.length, bytes };
}

Deno.test("--connections 4: small files shared out, a large one in pieces, byte for byte", async () => {
  const big = bigBytes(SPLIT_MIN_BYTES + 5 * MiB + 3, 1);
  const small = { "a.txt": "alpha", "b.bin": randomBytes(3 * MiB, 2), "c/d.txt": "delta" };
  await using data = await tempFolder({ "big.bin": big, ...small });
  await using out = await tempFolder();
  await using server = await startServer(data.path, { cacheBytes: 16 * MiB });
  const port = String(server.addr.port);

  const one = await runClient([
    "--port",
    port,
    "get",
    "big.bin",
    "-o",
    out.path,
    "--connections",
    "4",
  ]);
  assertEquals(one.code, 0, one.stderr);
  assertEquals(one.stdout, `saved ${out.path}/big.bin (69.0 MiB)\n`);
  assert(same(await Deno.readFile(`${out.path}/big.bin`), big), "the joined file differs");
  assertEquals((await server.stats()).totalConnections, 4);
  const { gets, bytes } = served(server.log.lines, "big.bin");
  assert(gets >= 5, `big.bin came in ${gets} requests, not in pieces`);
  assertEquals(bytes, big.length + 1, "every byte once, and the one byte that told the size");
  assert(!await exists(recordPath(partialPath(`${out.path}/big.bin`))), "the record was left");

  const names = Object.keys(small);
  const many = await runClient([
    "--port",
    port,
    "get",
    ...names,
    "-o",
    out.path,
    "--connections",
    "4",
  ]);
  assertEquals(many.code, 0, many.stderr);
  assertEquals(many.stdout.trim().split("\n").length, names.length);
  for (const [name, contents] of Object.entries(small)) {
    const expected = typeof contents === "string" ? new TextEncoder().encode(contents) : contents;
    assertEquals(await Deno.readFile(`${out.path}/${name}`), expected);
  }
  assertEquals((await server.stats()).totalConnections, 8);
});

Deno.test("--connections goes with a folder, and takes 1 to 16", async () => {
  const piped = await runClient(["get", "a", "-o", "-", "--connections", "2"]);
  assertEquals([piped.code, piped.stderr], [
    2,
    "client: --connections goes with a folder: standard output takes files in order " +
    "(see client --help)\n",
  ]);
  const many = await runClient(["get", "a", "--connections", "17"]);
  assertEquals(many.code, 2);
});

Deno.test("killed mid-transfer, a download in pieces resumes with what is missing; a changed file starts afresh", async (t) => {
  const size = 128 * MiB + 7;
  const original = bigBytes(size, 3);
  await using data = await tempFolder({ "big.bin": original });
  await using out = await tempFolder();
  await using server = await startServer(data.path, { cacheBytes: 16 * MiB });
  const target = `${out.path}/big.bin`;
  const part = partialPath(target);
  const record = recordPath(part);
  const args = (n: number) => [
    "--port",
    String(server.addr.port),
    "get",
    "big.bin",
    "-o",
    out.path,
    "--connections",
    String(n),
  ];

  /** Starts the client, kills it once its record shows pieces written; what is kept. */
  const killMidway = async () => {
    const permissions = ["--allow-net", "--allow-read", "--allow-write"];
    const client = new Deno.Command(Deno.execPath(), {
      args: ["run", ...permissions, `${ROOT}client.ts`, ...args(4)],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await until(() => recorded(record) > 0, "a record of written pieces");
    client.kill("SIGKILL");
    await client.status;
    // Its requests are logged as they end: once the server has seen every connection go.
    await until(
      async () => (await server.stats()).connections === 0,
      "the killed client's connections to end",
    );
    assert(!await exists(target), "the client finished before it was killed; use a larger file");
    return recorded(record);
  };

  await t.step("killed, then run again over one connection", async () => {
    const kept = await killMidway();
    assert(kept > 0 && kept < size, `the record says ${kept} bytes`);
    const from = server.log.lines.length;
    const again = await runClient(args(1));
    assertEquals(again.code, 0, again.stderr);
    assert(again.stdout.includes("of it from the interrupted run"), again.stdout);
    assert(same(await Deno.readFile(target), original), "the resumed file differs");
    const { bytes } = served(server.log.lines, "big.bin", from);
    assertEquals(
      bytes,
      size - kept + 1,
      "only what was missing, and the byte that told the version",
    );
    assert(!await exists(part) && !await exists(record), "the part or its record was left");
    await Deno.remove(target);
  });

  await t.step("killed, then run again over four connections", async () => {
    const kept = await killMidway();
    const from = server.log.lines.length;
    const again = await runClient(args(4));
    assertEquals(again.code, 0, again.stderr);
    assert(same(await Deno.readFile(target), original), "the resumed file differs");
    assertEquals(served(server.log.lines, "big.bin", from).bytes, size - kept + 1);
    await Deno.remove(target);
  });

  await t.step(
    "killed, the file changed on the server, run again: fetched from the start at once",
    async () => {
      await killMidway();
      const changed = bigBytes(size, 4);
      await Deno.writeFile(`${data.path}/big.bin`, changed);
      const later = new Date(Date.now() + 60_000);
      await Deno.utime(`${data.path}/big.bin`, later, later);
      const from = server.log.lines.length;
      const afresh = await runClient(args(4));
      assertEquals([afresh.code, afresh.stderr], [0, ""]);
      assertEquals(
        afresh.stdout,
        `saved ${target} (128.0 MiB, from the start: ` +
          "the file changed on the server since the interrupted run)\n",
      );
      assert(same(await Deno.readFile(target), changed), "the new file differs");
      assertEquals(
        served(server.log.lines, "big.bin", from).bytes,
        size + 1,
        "the new file once, and the byte that told its version: none of the rest of the old",
      );
      assert(!await exists(part) && !await exists(record), "the part or its record was left");
    },
  );
});
