/**
 * How soon a change on disk is served: a check that a cached file is unchanged stands for
 * `--revalidate-ms` (timed here by a clock the test moves, so nothing sleeps), 0 checks for every
 * request, and a file rewritten in the millisecond it was written, which keeps its stamp, is
 * never served from a copy of what it was.
 */

import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { join } from "node:path";
import { openRoot } from "../lib/server/folder.ts";
import { type FileBody, FileStore } from "../lib/server/store/store.ts";
import { SHA256 } from "../lib/shared/digest.ts";
import { UsageError } from "../lib/shared/cli.ts";
import { parseServerArgs } from "../server.ts";
import { spawnServer } from "../testing/support.ts";
import { tempFolder, text } from "./harness.ts";
import { concat } from "../lib/shared/io.ts";

/** The whole of `body`, as text. */
async function read(body: FileBody): Promise<string> {
  using _body = body;
  const parts: Uint8Array[] = [];
  for await (const chunk of body.chunks(0, body.stamp.size)) parts.push(chunk.slice());
  return text(concat(parts));
}

/** Writes `contents` to `path`, modified a minute ago: a version the cache may keep. */
async function writeSettled(path: string, contents: string): Promise<void> {
  await Deno.writeTextFile(path, contents);
  // A second apart for each write: two writes of one size in one millisecond would otherwise
  // leave the same stamp, a change no server can see (docs/SECURITY.md).
  const past = new Date(Date.now() - 60_000 - ++writes * 1000);
  await Deno.utime(path, past, past);
}

/** Writes made by writeSettled so far. */
let writes = 0;

/**
 * A store of `folder` whose checks stand for 50 ms, timed by a clock the test moves (`clock.now`),
 * so nothing sleeps.
 */
async function timedStore(folder: string) {
  const clock = { now: Date.now() };
  const store = new FileStore({
    root: await openRoot(folder),
    cacheBytes: 1024 * 1024,
    revalidateMs: 50,
    clock: () => clock.now,
  });
  return { store, clock };
}

/** The body of `name` from the HTTP port `port`, by curl. */
async function curl(port: number, name: string): Promise<string> {
  const output = await new Deno.Command("curl", {
    args: ["-sf", `http://127.0.0.1:${port}/${name}`],
  }).output();
  return text(output.stdout);
}

Deno.test("--revalidate-ms: one check stands for the interval, and a change is served by its end", async (t) => {
  await using data = await tempFolder({ "f.txt": "one" });
  const path = join(data.path, "f.txt");
  const { store, clock } = await timedStore(data.path);

  await t.step("requests within the interval are answered by its check", async () => {
    assertEquals(await read(store.open("f.txt", SHA256)), "one");
    await writeSettled(path, "two!");
    clock.now += 49;
    assertEquals(await read(store.open("f.txt", SHA256)), "one");
  });

  await t.step("the first request after it checks again, and sees the change", async () => {
    clock.now += 1;
    assertEquals(await read(store.open("f.txt", SHA256)), "two!");
  });

  await t.step("a file removed is gone once the interval is over", async () => {
    await Deno.remove(path);
    clock.now += 50;
    throws(() => store.open("f.txt", SHA256), /no such file/);
  });

  await t.step("a clock that goes back checks again", async () => {
    await writeSettled(path, "three");
    assertEquals(await read(store.open("f.txt", SHA256)), "three");
    await writeSettled(path, "four!");
    clock.now -= 1000;
    assertEquals(await read(store.open("f.txt", SHA256)), "four!");
  });
});

Deno.test("--revalidate-ms 0 checks every request", async () => {
  await using data = await tempFolder({ "f.txt": "one" });
  const path = join(data.path, "f.txt");
  const store = new FileStore({
    root: await openRoot(data.path),
    cacheBytes: 1024 * 1024,
    revalidateMs: 0,
    clock: () => 0, // the clock never moves: only checking every time can see a change
  });
  assertEquals(await read(store.open("f.txt", SHA256)), "one");
  for (const next of ["two!", "three", "four!!"]) {
    await writeSettled(path, next);
    assertEquals(await read(store.open("f.txt", SHA256)), next);
  }
});

Deno.test("server --revalidate-ms, through curl", async (t) => {
  await using data = await tempFolder({ "f.txt": "one", "big.txt": "a".repeat(4096) });
  const path = join(data.path, "f.txt");

  /** What a request for f.txt gets just after it changed, from a server given `ms` to wait. */
  const afterChange = async (ms: string) => {
    await writeSettled(path, "one");
    await using server = await spawnServer([
      ...["--data", data.path, "--http-port", "0", "--revalidate-ms", ms],
    ]);
    assertEquals(await curl(server.httpPort!, "f.txt"), "one");
    await writeSettled(path, "two!");
    return await curl(server.httpPort!, "f.txt");
  };

  await t.step("a minute's interval: a change to a cached file within it is not seen", async () => {
    assertEquals(await afterChange("60000"), "one");
  });

  await t.step("a file the cache does not hold is checked, and served, every time", async () => {
    await using server = await spawnServer([
      ...["--data", data.path, "--http-port", "0", "--revalidate-ms", "60000"],
      ...["--cache-size", "1KiB"],
    ]);
    assertEquals(await curl(server.httpPort!, "big.txt"), "a".repeat(4096));
    // Replaced by rename: a stream of what the last check saw would find another file.
    const big = join(data.path, "big.txt");
    await writeSettled(`${big}.new`, "b".repeat(4096));
    await Deno.rename(`${big}.new`, big);
    assertEquals(await curl(server.httpPort!, "big.txt"), "b".repeat(4096));
  });

  await t.step("0: the next request sees it", async () => {
    assertEquals(await afterChange("0"), "two!");
  });

  await t.step("a whole number of milliseconds, up to a minute", () => {
    assertEquals((parseServerArgs([]) as { revalidateMs: number }).revalidateMs, 100);
    for (const wrong of ["-1", "1.5", "60001", "soon"]) {
      throws(() => parseServerArgs(["--revalidate-ms", wrong]), UsageError);
    }
  });
});

Deno.test("a file rewritten in the millisecond it was read, same size, is served as it is now", async () => {
  await using data = await tempFolder();
  const path = join(data.path, "f.txt");
  await using server = await spawnServer([
    ...["--data", data.path, "--http-port", "0"],
  ]);
  // Both versions get one modification time, to the millisecond, as a quick rewrite most often
  // does; it is set a second ahead, as a write in the very millisecond of the read would have it
  // (a request through curl cannot be timed that finely). Only a change of second between the
  // writes tells them apart (by ctime), so then it tries again.
  for (let attempt = 0;; attempt++) {
    const written = new Date(Date.now() + 1000);
    await Deno.writeTextFile(path, `first ${attempt}`);
    await Deno.utime(path, written, written);
    const before = await Deno.stat(path);
    assertEquals(await curl(server.httpPort!, "f.txt"), `first ${attempt}`);
    await Deno.writeTextFile(path, `again ${attempt}`);
    await Deno.utime(path, written, written);
    const after = await Deno.stat(path);
    if (after.ctime!.getTime() !== before.ctime!.getTime() && attempt < 5) continue;
    assertEquals([after.size, after.mtime, after.ino], [before.size, before.mtime, before.ino]);
    assertEquals(await curl(server.httpPort!, "f.txt"), `again ${attempt}`);
    break;
  }
});

Deno.test("a name looked for on every request is found missing once per interval", async (t) => {
  await using data = await tempFolder({ "site.css": "body {}" });
  const { store, clock } = await timedStore(data.path);

  await t.step("missing: undefined, and so it stays for the interval", async () => {
    assertEquals(store.openIfPresent("site.css.gz", SHA256), undefined);
    await writeSettled(join(data.path, "site.css.gz"), "packed");
    clock.now += 49;
    assertEquals(store.openIfPresent("site.css.gz", SHA256), undefined);
  });

  await t.step("after it, the file that came meanwhile is found", async () => {
    clock.now += 1;
    assertEquals(await read(store.openIfPresent("site.css.gz", SHA256)!), "packed");
  });

  await t.step("with --revalidate-ms 0, every look is made", async () => {
    const eager = new FileStore({ root: await openRoot(data.path), cacheBytes: 1024 * 1024 });
    assertEquals(eager.openIfPresent("site.css.br", SHA256), undefined);
    await writeSettled(join(data.path, "site.css.br"), "brotli");
    assertEquals(await read(eager.openIfPresent("site.css.br", SHA256)!), "brotli");
  });
});
