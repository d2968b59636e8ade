/**
 * The cache shared by worker threads, with real workers each running a FileStore on it over
 * real files in temp folders: a file missed by several workers at once is read from disk once,
 * readers in several workers keep an entry intact while it is evicted (and counted until the
 * last lets go), a changed file is never served stale from another worker's load, a worker that
 * dies gives back what it held, and under churn from every worker each file comes out whole and
 * the cache stays within its cap.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { openRoot } from "../lib/server/folder.ts";
import { CacheCoordinator } from "../lib/server/store/threads/coordinator.ts";
import { CacheWorker } from "../testing/cache_workers.ts";
import { randomBytes } from "../testing/support.ts";
import { sha256, tempFolder, xxh3 } from "./harness.ts";

const MiB = 1024 * 1024;

/** What a worker's fetch call gives: how the file came, its bytes and its SHA-256. */
interface Fetched {
  source: string;
  bytes: Uint8Array;
  digest: Uint8Array;
}

/** `count` workers sharing `coordinator`'s cache over the folder at `path`, stopped on dispose. */
async function startWorkers(coordinator: CacheCoordinator, path: string, count: number) {
  const root = await openRoot(path);
  const workers = await Promise.all(
    Array.from({ length: count }, () => CacheWorker.start(coordinator, root)),
  );
  return Object.assign(workers, {
    /** Every worker's reports told and dealt with. */
    flush: () => Promise.all(workers.map((worker) => worker.call("flush"))),
    diskReads: async () => {
      const reads = await Promise.all(workers.map((worker) => worker.call<number>("diskReads")));
      return reads.reduce((sum, n) => sum + n, 0);
    },
    [Symbol.asyncDispose]: async () => {
      for (const worker of workers) await worker[Symbol.asyncDispose]();
    },
  });
}

/** Asserts `fetched` is `bytes`, with their SHA-256. */
async function assertFile(fetched: Fetched, bytes: Uint8Array): Promise<void> {
  assertEquals(fetched.bytes.length, bytes.length, "length");
  assert(fetched.bytes.every((byte, i) => byte === bytes[i]), "the bytes differ");
  assertEquals(fetched.digest, await sha256(bytes));
}

/** The bytes of the cache's capacity a file of `size` bytes takes: whole pages of 4 KiB. */
const pagesOf = (size: number) => Math.ceil(size / 4096) * 4096;

Deno.test("concurrent misses for one file in several workers read it from disk once", async () => {
  const file = randomBytes(5 * MiB + 321, 11);
  await using data = await tempFolder({ "shared.bin": file });
  const coordinator = new CacheCoordinator({ capacity: 64 * MiB });
  await using workers = await startWorkers(coordinator, data.path, 3);

  const first = await Promise.all(workers.map((w) => w.call<Fetched>("fetch", "shared.bin")));
  for (const fetched of first) await assertFile(fetched, file);
  assertEquals(await workers.diskReads(), 1);
  await workers.flush(); // every worker has heard of the entry now
  const again = await Promise.all(workers.map((w) => w.call<Fetched>("fetch", "shared.bin")));
  for (const fetched of again) {
    assertEquals(fetched.source, "cache");
    await assertFile(fetched, file);
  }
  await workers.flush();
  const view = coordinator.view;
  assertEquals([view.misses, view.hits, await workers.diskReads()], [3, 3, 1]);
  assertEquals([view.used, view.reserved, view.pinned], [pagesOf(file.length), 0, 0]);
});

Deno.test("readers in several workers keep an entry intact while it is evicted, and counted until the last lets go", async () => {
  const [a, b, c] = [31, 32, 33].map((seed) => randomBytes(4 * MiB, seed));
  await using data = await tempFolder({ "a.bin": a, "b.bin": b, "c.bin": c });
  // Room for two of the three; FIFO evicts the oldest whether or not it is being read.
  const coordinator = new CacheCoordinator({ capacity: 10 * MiB, policy: "fifo" });
  await using workers = await startWorkers(coordinator, data.path, 3);
  const [first, second, third] = workers;
  await assertFile(await first.call("fetch", "a.bin"), a);
  await first.call("open", 1, "a.bin");
  await second.call("open", 2, "a.bin");

  await assertFile(await third.call("fetch", "b.bin"), b);
  await assertFile(await third.call("fetch", "c.bin"), c); // evicts a.bin, then b.bin
  await workers.flush();
  const view = coordinator.view;
  assertEquals(["a.bin", "b.bin", "c.bin"].map((name) => view.has(name)), [false, false, true]);
  assertEquals(view.pinned, 4 * MiB, "a.bin's bytes, still being read, count");
  assert(view.used + view.reserved + view.pinned <= view.capacity);

  // c.bin was loaded into memory no reader held: a.bin's bytes are as they were.
  assertEquals(await first.call<Uint8Array>("read", 1), a);
  await first.call("close", 1);
  await workers.flush();
  assertEquals(view.pinned, 4 * MiB, "one reader still holds a.bin");
  assertEquals(await second.call<Uint8Array>("read", 2), a);
  await second.call("close", 2);
  await workers.flush();
  assertEquals(view.pinned, 0, "the bytes are let go of once the last reader is done");
  assertEquals(coordinator.takenBytes, view.used);
});

Deno.test("a file changed on disk is never served stale from another worker's load", async () => {
  const path = "f.bin";
  const before = randomBytes(2 * MiB, 21);
  const after = randomBytes(2 * MiB, 22);
  await using data = await tempFolder({ [path]: before });
  const coordinator = new CacheCoordinator({ capacity: 64 * MiB });
  await using workers = await startWorkers(coordinator, data.path, 2);
  const [first, second] = workers;
  await assertFile(await first.call("fetch", path), before);
  await workers.flush();
  await Deno.writeFile(`${data.path}/${path}`, after); // the same size, the same inode
  const { mtime } = await Deno.stat(`${data.path}/${path}`);
  await Deno.utime(`${data.path}/${path}`, mtime!, new Date(mtime!.getTime() - 10_000));

  const fetched = await second.call<Fetched>("fetch", path);
  assertEquals(fetched.source, "disk");
  await assertFile(fetched, after);
  await workers.flush();
  await assertFile(await first.call("fetch", path), after);
  assertEquals(await workers.diskReads(), 2);
  assertEquals([coordinator.view.size, coordinator.view.used], [1, pagesOf(after.length)]);
});

Deno.test("a worker that dies holding an entry gives it back", async () => {
  const [a, b, c] = [41, 42, 43].map((seed) => randomBytes(4 * MiB, seed));
  await using data = await tempFolder({ "a.bin": a, "b.bin": b, "c.bin": c });
  const coordinator = new CacheCoordinator({ capacity: 10 * MiB, policy: "fifo" });
  await using workers = await startWorkers(coordinator, data.path, 1);
  const doomed = await CacheWorker.start(coordinator, await openRoot(data.path));
  await assertFile(await doomed.call("fetch", "a.bin"), a);
  await doomed.call("open", 1, "a.bin");
  await doomed.call("flush");
  doomed.stop(); // mid-answer, without a word

  await assertFile(await workers[0].call("fetch", "b.bin"), b);
  await assertFile(await workers[0].call("fetch", "c.bin"), c); // evicts a.bin, held by no one
  await workers.flush();
  const view = coordinator.view;
  assertEquals([view.has("a.bin"), view.pinned], [false, 0]);
  assertEquals(coordinator.takenBytes, view.used);
});

Deno.test("under churn from three workers every file comes out whole and the cache stays within its cap", async () => {
  const files = Array.from(
    { length: 40 },
    (_, i) => randomBytes((i * 997 % 40 + 1) * 32 * 1024 + i, 90 + i),
  );
  await using data = await tempFolder(
    Object.fromEntries(files.map((bytes, i) => [`f${i}.bin`, bytes])),
  );
  const capacity = 4 * MiB;
  const coordinator = new CacheCoordinator({ capacity });
  await using workers = await startWorkers(coordinator, data.path, 3);
  const names = files.map((_, i) => `f${i}.bin`);
  const digests = await Promise.all(
    workers.map((worker, i) => worker.call<Record<string, string>>("churn", names, 100, 4, i + 1)),
  );
  for (const seen of digests) {
    for (const [name, digest] of Object.entries(seen)) {
      assertEquals(digest, (await xxh3(files[names.indexOf(name)])).toHex(), name);
    }
  }
  await workers.flush();
  const view = coordinator.view;
  assert(view.evictions > 0, "the churn never filled the cache");
  assertEquals([view.reserved, view.pinned, view.hits + view.misses], [0, 0, 300]);
  assertEquals(coordinator.takenBytes, view.used);
  assert(coordinator.arenaBytes <= capacity, "more shared memory than the capacity");
});
