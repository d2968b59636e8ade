/**
 * The original client, exactly as it reads. It was written for the original server and has no test
 * suite of its own, so this file copies its reads: one `recv(1024)` for the welcome (split on "@"),
 * one for the status (decoded as UTF-8, which throws on a binary byte), then `recv(4096)` until the
 * close into the file, unless the status is exactly `FNF`. Every byte read with the status is lost
 * to it, so the server must make the status arrive alone.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { writeAll } from "../lib/shared/io.ts";
import { FileClient } from "../lib/client/client.ts";
import { tempFolder } from "./harness.ts";
import { concat } from "../lib/shared/io.ts";
import { randomBytes, spawnServer } from "../testing/support.ts";

/** What the original client ends with: what it printed of the welcome and status, and the file. */
interface OriginalOutcome {
  welcome: string;
  status: string;
  /** The file it wrote, or undefined when it said "File not found!". */
  saved?: Uint8Array;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** `client HOST PORT file NAME` of the original client, read for read. */
async function originalGet(port: number, name: string): Promise<OriginalOutcome> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const small = new Uint8Array(1024);
  const welcome = utf8.decode(small.subarray(0, await conn.read(small) ?? 0));
  if (welcome.split("@").length !== 2) {
    throw new Error(`the welcome does not split in two: ${welcome}`);
  }
  await writeAll(conn, new TextEncoder().encode(`file@${name}`));
  const status = utf8.decode(small.subarray(0, await conn.read(small) ?? 0));
  if (status === "FNF") return { welcome, status };
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  for (let n; (n = await conn.read(buffer)) !== null;) parts.push(buffer.slice(0, n));
  return { welcome, status, saved: concat(parts) };
}

/** Text of `size` bytes, as a log or a page is. */
function textOf(size: number, seed: number): Uint8Array {
  const words = ["alpha", "beta", "gamma", "file", "server", "cache", "socket", "data"];
  let line = "";
  let x = seed;
  while (line.length < size) {
    x = (x * 1103515245 + 12345) >>> 0;
    line += words[x % words.length] + (x % 7 === 0 ? "\n" : " ");
  }
  return new TextEncoder().encode(line.slice(0, size));
}

Deno.test("the original client gets every file whole, cached or not, and hears of missing ones", async (t) => {
  const png = concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    randomBytes(2040, 2),
  ]);
  const files: Record<string, Uint8Array> = {
    "hello.txt": new TextEncoder().encode("Hello, world!\n"),
    "tiny.bin": randomBytes(10, 3),
    "notes.txt": textOf(900, 4),
    "logo.png": png,
    "page.html": textOf(4000, 5),
    "report.txt": textOf(200 * 1024, 6),
    "photo.jpg": concat([new Uint8Array([0xff, 0xd8, 0xff, 0xe0]), randomBytes(600 * 1024, 7)]),
    "video.mp4": randomBytes(12 * 1024 * 1024, 8),
  };
  await using data = await tempFolder(files);
  // The 12 MiB file is larger than the cache, so it always streams from disk. The server runs in a
  // process of its own, as it does for the original client: the timing between them is real.
  await using server = await spawnServer(["--data", data.path, "--cache-size", "8MiB"]);
  const port = server.port;
  const names = Object.keys(files);

  await t.step("100 downloads, small to large, first from disk then from the cache", async () => {
    const wrong: string[] = [];
    let x = 11;
    for (let i = 0; i < 100; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      // Every file once first (from disk), then any, the large one less often.
      const name = i < names.length
        ? names[i]
        : names[x % (x % 5 === 0 ? names.length : names.length - 1)];
      const outcome = await originalGet(port, name).catch((error) => ({ status: String(error) }));
      if (
        outcome.status !== "OK@" || !("saved" in outcome) || !equal(outcome.saved!, files[name])
      ) {
        wrong.push(`${name}: status ${JSON.stringify(outcome.status.slice(0, 40))}`);
      }
    }
    assertEquals(wrong, []);
    const client = await FileClient.connect("127.0.0.1", port);
    const stats = await client.stats();
    client.close();
    assert(
      stats.hits > 50 && stats.misses >= names.length,
      `hits ${stats.hits}, misses ${stats.misses}`,
    );
  });

  await t.step("a missing file is FNF alone, so the client says File not found!", async () => {
    const outcome = await originalGet(port, "no-such-file.txt");
    assertEquals(outcome, { welcome: "OK@Welcome to the File Server.", status: "FNF" });
  });

  await t.step("a name the rules refuse is FNF too", async () => {
    assertEquals((await originalGet(port, "../etc/passwd")).status, "FNF");
  });
});

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
