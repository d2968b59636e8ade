/**
 * What someone who can write into the shared folder can try against the server: swap a FIFO in
 * for a file, rewrite a file in place and put its modification time back, reach one file through
 * two names. None may hang the server, pass mixed bytes off as a file, or cost memory twice.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { FileClient } from "../lib/client/client.ts";
import { ServerError } from "../lib/client/errors.ts";
import { HashBuffers } from "../lib/server/store/hashing.ts";
import { openLockOf, VersionFile } from "../lib/server/store/version.ts";
import { ErrorCode } from "../lib/shared/errors.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import {
  cachedBytes,
  rawConnect,
  spawned,
  startServer,
  tempFolder,
  text,
  xxh3,
} from "./harness.ts";
import { randomBytes, run, spawnServer } from "../testing/support.ts";

const MiB = 1024 * 1024;

/** Makes a FIFO at `path` (Deno has no call for it; coreutils' mkfifo is on every Linux). */
async function mkfifo(path: string): Promise<void> {
  const made = await run("mkfifo", [path]);
  assertEquals(made.code, 0, made.stderr);
}

/** `promise`, or a rejection naming `what` if it takes longer than `ms`. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

Deno.test("a FIFO swapped in for a file never hangs the server", async (t) => {
  await using data = await tempFolder({ "swap.bin": randomBytes(64 * 1024, 1), "other.bin": "x" });
  const swap = join(data.path, "swap.bin");

  await t.step("opening a FIFO where a file was checked fails at once", async () => {
    const fifo = join(data.path, "pipe");
    await mkfifo(fifo);
    const info = await Deno.stat(swap);
    const stamp = {
      size: info.size,
      mtimeMs: info.mtime!.getTime(),
      ctimeMs: info.ctime!.getTime(),
      ino: info.ino!,
      dev: info.dev,
    };
    const opened = await within(
      2000,
      "opening a FIFO",
      VersionFile.open(fifo, stamp, "swap.bin", new HashBuffers(1, 1024)),
    )
      .catch((error) => error);
    assertEquals((opened as { code?: number }).code, ErrorCode.Changed);
    await Deno.remove(fifo);
  });

  await t.step("clients asking while a FIFO and the file take turns under one name", async () => {
    const file = await Deno.readFile(swap);
    const keep = join(data.path, "keep.bin");
    const fifo = join(data.path, "fifo");
    await Deno.link(swap, keep);
    await mkfifo(fifo);
    await using server = await spawnServer(["--data", data.path, "--shutdown-timeout", "2"]);
    let swapping = true;
    const swapper = (async () => {
      for (let turn = 0; swapping; turn++) {
        const next = join(data.path, "next");
        await Deno.link(turn % 2 ? keep : fifo, next);
        await Deno.rename(next, swap); // atomic: the name is always one or the other
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    const outcomes = new Map<string, number>();
    const asker = async () => {
      const client = await FileClient.connect("127.0.0.1", server.port);
      for (let i = 0; i < 40; i++) {
        await client.send(client.encodeGet("swap.bin"));
        const parts: Uint8Array[] = [];
        const outcome = await within(
          5000,
          "a GET",
          client.readFile({ header() {}, data: (chunk) => void parts.push(chunk.slice()) })
            .then(
              async (digest) => {
                assertEquals(digest, await xxh3(file));
                return "whole";
              },
              (error) =>
                error instanceof ServerError ? `error ${error.code}` : Promise.reject(error),
            ),
        );
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
      client.close();
    };
    try {
      await Promise.all(Array.from({ length: 8 }, asker));
    } finally {
      swapping = false;
      await swapper;
    }
    assert(outcomes.get("whole")! > 0, `no whole file in ${[...outcomes]}`);
    const client = await FileClient.connect("127.0.0.1", server.port);
    const stats = await client.stats();
    assertEquals(stats.cacheReserved, 0, "a failed open kept its reservation");
    await client.send(client.encodeGet("other.bin"));
    await within(2000, "a GET after the swaps", client.readFile({ header() {}, data() {} }));
    assert((await within(2000, "a LIST after the swaps", client.list())).length > 0);
    client.close();
    server.process.kill("SIGTERM");
    assertEquals((await within(4000, "the shutdown", server.process.status)).code, 0);
  });
});

Deno.test("a file rewritten in place with its mtime put back is never sent as a whole file", async (t) => {
  // Larger than the cache and than socket buffers, so the server streams it, waiting on the reader.
  const size = 96 * MiB;
  const original = randomBytes(size, 7);
  await using data = await tempFolder({});
  const path = join(data.path, "movie.bin");

  /** Overwrites 8 MiB at the start and 8 MiB near the end in place, then puts the mtime back. */
  const rewrite = async () => {
    const { mtime, atime } = await Deno.stat(path);
    await using file = await Deno.open(path, { write: true });
    await file.write(randomBytes(8 * MiB, 8));
    await file.seek(size - 16 * MiB, Deno.SeekMode.Start);
    await file.write(randomBytes(8 * MiB, 9));
    await Deno.utime(path, atime!, mtime!);
  };

  await t.step("framed: the answer ends in Changed, not an END", async () => {
    await Deno.writeFile(path, original);
    await using server = await startServer(data.path, { cacheBytes: 16 * MiB });
    const client = await FileClient.connect("127.0.0.1", server.addr.port);
    await client.send(client.encodeGet("movie.bin"));
    let received = 0;
    const outcome = await client.readFile({
      header() {},
      async data(chunk) {
        if (received < 30 * MiB && received + chunk.length >= 30 * MiB) await rewrite();
        received += chunk.length;
      },
    }).catch((error) => error);
    client.close();
    assert(
      outcome instanceof ServerError,
      `expected Changed, got a digest after ${received} bytes`,
    );
    assertEquals(outcome.code, ErrorCode.Changed);
  });

  await t.step("original dialect: the connection ends before the file is whole", async () => {
    await Deno.writeFile(path, original);
    await using server = await startServer(data.path, { cacheBytes: 16 * MiB });
    using socket = await rawConnect(server.addr.port);
    assertEquals(await socket.readExactly(GREETING.length), GREETING);
    await socket.write("file@movie.bin");
    assertEquals(text(await socket.readExactly(3)), "OK@");
    await socket.readExactly(30 * MiB);
    await rewrite();
    const rest = await socket.readToEnd();
    assert(30 * MiB + rest.length < size, "the whole length arrived, as if the file were whole");
  });
});

Deno.test("a file reached through a link is cached once, under its real name", async () => {
  await using data = await tempFolder({ "real.bin": randomBytes(100_000, 3) });
  await Deno.symlink("real.bin", join(data.path, "alias.bin"));
  await using server = await startServer(data.path);
  const client = await FileClient.connect("127.0.0.1", server.addr.port);
  for (const name of ["real.bin", "alias.bin", "alias.bin", "real.bin"]) {
    await client.send(client.encodeGet(name));
    await client.readFile({ header() {}, data() {} });
  }
  const stats = await client.stats();
  assertEquals([stats.cacheEntries, stats.cacheBytes, stats.misses], [1, cachedBytes(100_000), 1]);
  const listed = (await client.list()).map(({ name, cached }) => ({ name, cached }));
  assertEquals(listed, [{ name: "alias.bin", cached: true }, { name: "real.bin", cached: true }]);
  client.close();

  using socket = await rawConnect(server.addr.port);
  await socket.readExactly(GREETING.length);
  await socket.write("list");
  assertEquals(
    text(await socket.readToEnd()),
    "OK@\n[FILES INSIDE THE SERVER DIRECTORY]:\nalias.bin\nreal.bin\n[FILES IN CACHE]:\nreal.bin",
  );
});

Deno.test("a link out of the folder swapped in while a name is looked up is never followed", async () => {
  await using data = await tempFolder();
  await using outside = await tempFolder({ "race.txt": "secret\n" });
  await using server = await startServer(data.path, { httpPort: 0 });
  // Two other processes swap, as fast as they can, a file for a link to a file outside, and a
  // folder for a link to a folder outside: whatever the server is doing when a link arrives,
  // between its checks and its open, it must never follow one out.
  const [folder, away] = [data.path, outside.path].map((path) => JSON.stringify(path));
  await Deno.mkdir(join(data.path, "dir"));
  await Deno.writeTextFile(join(data.path, "dir/race.txt"), "inside");
  await Deno.symlink(outside.path, join(data.path, ".link"));
  const swaps = [
    `for (let i = 0; ; i++) {
      const next = ${folder} + "/.next" + i;
      if (i % 2) Deno.symlinkSync(${away} + "/race.txt", next);
      else Deno.writeTextFileSync(next, "inside");
      Deno.renameSync(next, ${folder} + "/race.txt");
    }`,
    `const [dir, real, link] = ["dir", ".real", ".link"].map((name) => ${folder} + "/" + name);
    for (;;) {
      Deno.renameSync(dir, real);
      Deno.renameSync(link, dir);
      Deno.renameSync(dir, link);
      Deno.renameSync(real, dir);
    }`,
  ];
  await using _files = spawned(Deno.execPath(), ["eval", swaps[0]]);
  await using _folders = spawned(Deno.execPath(), ["eval", swaps[1]]);
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  let asked = 0;
  for (const started = Date.now(); Date.now() - started < 3000; asked++) {
    const name = asked % 2 ? "race.txt" : "dir/race.txt";
    const answer = await (await fetch(`${base}/${name}`)).text();
    assert(!answer.includes("secret"), `the file outside was served as ${name} (${asked})`);
  }
  assert(asked > 100, `only ${asked} requests`);
});

Deno.test("threads sharing the open lock open files in different folders at once", async () => {
  await using data = await tempFolder({ "a/one.txt": "one", "b/two.txt": "two" });
  // Each thread opens its file 2,000 times, checked as the store checks it; the process has one
  // working folder, so an open that went through it could land in the other thread's folder.
  const version = new URL("../lib/server/store/version.ts", import.meta.url).href;
  const hashing = new URL("../lib/server/store/hashing.ts", import.meta.url).href;
  const code = `
    import { shareOpenLock, stampOf, VersionFile } from "${version}";
    import { HashBuffers } from "${hashing}";
    self.onmessage = async ({ data: [lock, path] }) => {
      shareOpenLock(lock);
      const stamp = stampOf(Deno.statSync(path));
      let failed = 0;
      for (let i = 0; i < 2000; i++) {
        try {
          await using _file = await VersionFile.open(path, stamp, path, new HashBuffers(1, 1));
        } catch {
          failed++;
        }
      }
      self.postMessage(failed);
    };`;
  const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
  const workers = [0, 1].map(() => new Worker(url, { type: "module" }));
  try {
    const failed = await Promise.all(
      ["a/one.txt", "b/two.txt"].map((name, i) =>
        new Promise<number>((resolve, reject) => {
          workers[i].onmessage = (event) => resolve(event.data);
          workers[i].onerror = (event) => reject(event.error ?? event.message);
          workers[i].postMessage([openLockOf(), join(data.path, name)]);
        })
      ),
    );
    assertEquals(failed, [0, 0], "opens refused as changed");
  } finally {
    for (const worker of workers) worker.terminate();
    URL.revokeObjectURL(url);
  }
});
