/**
 * The file store over real temp folders: concurrent misses share one disk read, changed,
 * replaced, grown and deleted files are never served stale, eviction never disturbs a body
 * being read, files larger than the cache stream with the right digest, and a load that fails
 * gives its room back.
 */

import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import type { PolicyName } from "../lib/server/cache/cache.ts";
import { NotFoundError } from "../lib/server/errors.ts";
import { openRoot } from "../lib/server/folder.ts";
import { type FileBody, FileStore } from "../lib/server/store/store.ts";
import { SHA256 } from "../lib/shared/digest.ts";
import { ErrorCode, WireError } from "../lib/shared/errors.ts";
import { sha256, tempFolder } from "./harness.ts";
import { concat } from "../lib/shared/io.ts";
import { randomBytes } from "../testing/support.ts";

/** The store reads files in steps of a mebibyte: the sizes below span several of them. */
const MiB = 1024 * 1024;

/** A store over `folder` with a cache of `cacheBytes`. */
async function openStore(
  folder: string,
  cacheBytes = 64 * MiB,
  policy?: PolicyName,
): Promise<FileStore> {
  return new FileStore({ root: await openRoot(folder), cacheBytes, policy });
}

/** The bytes of `chunks` from where it stands to its end, copied (chunks are views). */
async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk.slice());
  return concat(parts);
}

/** Asserts `actual` is `expected`, naming the first difference rather than dumping megabytes. */
function assertBytes(actual: Uint8Array, expected: Uint8Array): void {
  assertEquals(actual.length, expected.length, "length");
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  assertEquals(at, -1, `the bytes differ from offset ${at}`);
}

/** Asserts that `body` yields the file `whole` from `offset`, then the whole file's digest. */
async function assertBody(body: FileBody, whole: Uint8Array, offset = 0): Promise<void> {
  using _sent = body; // as the server does once an answer is sent
  assertBytes(await collect(body.chunks(offset, body.stamp.size)), whole.subarray(offset));
  assertEquals(await body.digest(), await sha256(whole));
}

Deno.test("concurrent misses for one file share one disk read", async () => {
  const file = randomBytes(5 * MiB + 321, 11);
  await using data = await tempFolder({ "shared.bin": file });
  const store = await openStore(data.path);

  const early = Array.from({ length: 8 }, () => store.open("shared.bin", SHA256));
  const reader = early[0].chunks(0, early[0].stamp.size);
  const firstChunk = await reader.next(); // the load is under way, not finished
  assert(!firstChunk.done && firstChunk.value.length < file.length, "the load had finished");
  const late = Array.from({ length: 8 }, () => store.open("shared.bin", SHA256));
  assertEquals(store.diskReads, 1);
  assertEquals(store.cache.misses, 16);
  for (const body of [...early, ...late]) assertEquals(body.source, "disk");

  await reader.return(undefined);
  await Promise.all([...early, ...late].map((body) => assertBody(body, file)));
  const again = store.open("shared.bin", SHA256);
  assertEquals(again.source, "cache");
  await assertBody(again, file);
  assertEquals(store.diskReads, 1);
  assertEquals([store.cache.used, store.cache.reserved], [file.length, 0]);
});

Deno.test("a changed, replaced, grown or deleted file is never served stale", async (t) => {
  const original = randomBytes(2 * MiB + 5, 21);
  await using data = await tempFolder({ "f.bin": original });
  const path = `${data.path}/f.bin`;
  const store = await openStore(data.path);
  let current = original;

  /** Serves f.bin once from disk and once from the cache, both as `current`. */
  const serveFresh = async () => {
    const reads = store.diskReads;
    const loaded = store.open("f.bin", SHA256);
    assertEquals(loaded.source, "disk");
    await assertBody(loaded, current);
    const cached = store.open("f.bin", SHA256);
    assertEquals(cached.source, "cache");
    await assertBody(cached, current);
    assertEquals(store.diskReads, reads + 1);
    assertEquals([store.cache.size, store.cache.used], [1, current.length]);
  };
  /** The stamp's modification time, moved `seconds` away from the file's present one. */
  const shiftMtime = async (seconds: number) => {
    const { mtime } = await Deno.stat(path);
    await Deno.utime(path, mtime!, new Date(mtime!.getTime() + seconds * 1000));
  };

  await t.step("the first request reads from disk, the next from the cache", serveFresh);

  await t.step("changed in place (same size and inode, new content and mtime)", async () => {
    const { ino } = await Deno.stat(path);
    current = randomBytes(original.length, 22);
    await Deno.writeFile(path, current); // truncates and rewrites the same inode
    await shiftMtime(-10);
    assertEquals((await Deno.stat(path)).ino, ino);
    await serveFresh();
  });

  await t.step("replaced by rename (new inode, same size and mtime)", async () => {
    const before = await Deno.stat(path);
    current = randomBytes(original.length, 23);
    await Deno.writeFile(`${path}.new`, current);
    await Deno.utime(`${path}.new`, before.atime!, before.mtime!);
    await Deno.rename(`${path}.new`, path);
    const after = await Deno.stat(path);
    assert(after.ino !== before.ino && after.mtime!.getTime() === before.mtime!.getTime());
    await serveFresh();
  });

  await t.step("grown by an append (same inode and mtime)", async () => {
    const before = await Deno.stat(path);
    const tail = randomBytes(1000, 24);
    await Deno.writeFile(path, tail, { append: true });
    await Deno.utime(path, before.atime!, before.mtime!); // only the size tells
    current = concat([current, tail]);
    await serveFresh();
  });

  await t.step("deleted: NotFound, and the entry leaves the cache", async () => {
    await Deno.remove(path);
    const evictions = store.cache.evictions;
    let thrown: unknown;
    try {
      store.open("f.bin", SHA256);
    } catch (error) {
      thrown = error;
    }
    assert(thrown instanceof NotFoundError, `open threw ${thrown}`);
    assertEquals(thrown.code, ErrorCode.NotFound);
    assertEquals([store.cache.has("f.bin"), store.cache.used], [false, 0]);
    assertEquals(store.cache.evictions, evictions, "a deleted file is not an eviction");
  });
});

Deno.test("evicting an entry never disturbs a body being read from it", async (t) => {
  const a = randomBytes(4 * MiB + 7, 31);
  const b = randomBytes(4 * MiB + 9, 32);
  const c = randomBytes(4 * MiB + 11, 33);
  await using data = await tempFolder({ "a.bin": a, "b.bin": b, "c.bin": c });
  // Room for two of the three; FIFO evicts the oldest whether or not it is being read.
  let store = await openStore(data.path, 10 * MiB, "fifo");

  /** Loads b.bin then c.bin, which evicts a.bin (the oldest), then b.bin, to make room. */
  const evictA = async () => {
    assert(store.cache.has("a.bin"), "a.bin was not cached");
    await assertBody(store.open("b.bin", SHA256), b);
    await assertBody(store.open("c.bin", SHA256), c);
    assertEquals(["a.bin", "b.bin", "c.bin"].map((name) => store.cache.has(name)), [
      false,
      false,
      true,
    ]);
    assertEquals(store.cache.pinned, a.length, "a.bin's bytes still being read count");
    assert(store.cache.used + store.cache.pinned <= store.cache.capacity);
  };

  await t.step("a body read from the cache", async () => {
    await assertBody(store.open("a.bin", SHA256), a);
    const body = store.open("a.bin", SHA256);
    assertEquals(body.source, "cache");
    const chunks = body.chunks(0, body.stamp.size);
    const first = await chunks.next();
    assert(!first.done);
    const evictions = store.cache.evictions;
    await evictA();
    assertEquals(store.cache.evictions, evictions + 2);
    assertBytes(concat([first.value, await collect(chunks)]), a);
    assertEquals(await body.digest(), await sha256(a));
    body[Symbol.dispose]();
    assertEquals(store.cache.pinned, 0, "the bytes are let go once the body is done");
  });

  await t.step("a body that started while its file loaded from disk", async () => {
    store = await openStore(data.path, 10 * MiB, "fifo");
    const body = store.open("a.bin", SHA256);
    assertEquals(body.source, "disk");
    const chunks = body.chunks(0, body.stamp.size);
    const first = await chunks.next();
    assert(!first.done && first.value.length < a.length, "the load had finished");
    const copy = first.value.slice();
    await assertBody(store.open("a.bin", SHA256), a); // the same load, now committed
    await evictA();
    assertBytes(concat([copy, await collect(chunks)]), a);
    assertEquals(await body.digest(), await sha256(a));
    body[Symbol.dispose]();
    assertEquals(store.cache.pinned, 0, "the bytes are let go once the body is done");
  });
});

Deno.test("slow readers keep the cache within its cap: what they hold is not evicted for room", async () => {
  const a = randomBytes(4 * MiB, 34);
  const b = randomBytes(4 * MiB, 35);
  await using data = await tempFolder({ "a.bin": a, "b.bin": b });
  const store = await openStore(data.path, 6 * MiB); // room for one of the two
  await assertBody(store.open("a.bin", SHA256), a);
  using reading = store.open("a.bin", SHA256);
  assertEquals(reading.source, "cache");
  await assertBody(store.open("b.bin", SHA256), b); // streams from disk: a.bin is being read
  assertEquals([store.cache.has("a.bin"), store.cache.has("b.bin")], [true, false]);
  reading[Symbol.dispose]();
  await assertBody(store.open("b.bin", SHA256), b); // now a.bin can make room
  assertEquals([store.cache.has("a.bin"), store.cache.has("b.bin")], [false, true]);
});

Deno.test("the memory of files the cache lets go of is given back at once", async () => {
  const files = Array.from({ length: 48 }, (_, i) => randomBytes(2 * MiB, 70 + i));
  await using data = await tempFolder(
    Object.fromEntries(files.map((bytes, i) => [`f${i}.bin`, bytes])),
  );
  const store = await openStore(data.path, 8 * MiB);
  const before = Deno.memoryUsage().external;
  let peak = 0;
  for (const [i, bytes] of files.entries()) {
    using body = store.open(`f${i}.bin`, SHA256);
    let length = 0;
    for await (const chunk of body.chunks(0, body.stamp.size)) length += chunk.length; // no copies of our own
    assertEquals(length, bytes.length);
    peak = Math.max(peak, Deno.memoryUsage().external - before);
  }
  assertEquals(store.cache.evictions, files.length - 4);
  // The cache's 8 MiB and one file's worth of slack.
  assert(peak <= 10 * MiB, `memory outside the JS heap grew by ${(peak / MiB).toFixed(1)} MiB`);
});

Deno.test("a file larger than the cache streams, is never cached, and keeps its digest", async () => {
  const big = randomBytes(3 * MiB + 123, 41);
  await using data = await tempFolder({ "big.bin": big });
  const store = await openStore(data.path, 2 * MiB);
  const tail = MiB + 1000;

  for (const offset of [tail, 0, tail, big.length, 0]) {
    const body = store.open("big.bin", SHA256);
    assertEquals(body.source, "disk");
    await assertBody(body, big, offset);
    assertEquals([store.cache.size, store.cache.used, store.cache.reserved], [0, 0, 0]);
  }
  assertEquals(store.diskReads, 5);
});

Deno.test("more streams than pooled buffers all move at once, and take big buffers as they free up", async () => {
  const files = Array.from({ length: 5 }, (_, i) => randomBytes(3 * MiB + i, 60 + i));
  await using data = await tempFolder(
    Object.fromEntries(files.map((bytes, i) => [`s${i}.bin`, bytes])),
  );
  const store = new FileStore({
    root: await openRoot(data.path),
    cacheBytes: 2 * MiB,
    streamBuffers: 2,
  });
  const bodies = files.map((_, i) => store.open(`s${i}.bin`, SHA256));
  const streams = bodies.map((body) => body.chunks(0, body.stamp.size));
  const received: Uint8Array[][] = files.map(() => []);
  const current: (Uint8Array | undefined)[] = [];
  /** Takes stream i's next chunk, checking that every other stream's current chunk is unchanged. */
  const step = async (i: number) => {
    const next = await streams[i].next();
    for (const [j, chunk] of current.entries()) {
      if (j === i || chunk === undefined) continue;
      const at = received[j].reduce((sum, part) => sum + part.length, 0) - chunk.length;
      assertBytes(chunk, files[j].subarray(at, at + chunk.length));
    }
    current[i] = next.done ? undefined : next.value; // a finished stream's last chunk is gone
    if (next.done) return false;
    received[i].push(next.value.slice());
    return true;
  };
  // Every stream holds a chunk at once: two in the big buffers, the rest in small ones.
  for (let i = 0; i < files.length; i++) assert(await step(i), `stream ${i} had no first chunk`);
  assertEquals(current.map((chunk) => chunk?.length === MiB), [
    true,
    true,
    false,
    false,
    false,
  ]);
  // The first stream runs to its end; the next stream to step takes the big buffer it gave back.
  while (await step(0));
  assert(await step(2), "stream 2 ended early");
  assertEquals(current[2]?.length, MiB, "stream 2 did not take the free big buffer");
  // Round robin to the end.
  const open = new Set([1, 2, 3, 4]);
  while (open.size > 0) {
    for (const i of [...open]) if (!await step(i)) open.delete(i);
  }
  for (const [i, body] of bodies.entries()) {
    assertBytes(concat(received[i]), files[i]);
    assertEquals(await body.digest(), await sha256(files[i]));
    body[Symbol.dispose]();
  }
  // Once they have all ended, a stream alone reads every chunk into a big buffer.
  using alone = store.open("s0.bin", SHA256);
  const sizes: number[] = [];
  for await (const chunk of alone.chunks(0, alone.stamp.size)) sizes.push(chunk.length);
  assertEquals(sizes, [MiB, MiB, MiB]);
});

Deno.test("a load that fails gives its room back and tells the reader the file changed", async () => {
  const file = randomBytes(32 * MiB, 51);
  await using data = await tempFolder({ "shrinks.bin": file });
  const path = `${data.path}/shrinks.bin`;
  const store = await openStore(data.path);

  const body = store.open("shrinks.bin", SHA256);
  assertEquals(store.cache.reserved, file.length);
  const chunks = body.chunks(0, body.stamp.size);
  const first = await chunks.next();
  assert(!first.done && first.value.length < file.length, "the load had finished");
  Deno.truncateSync(path, 8 * MiB); // before the load reads on
  await rejects(
    (async () => {
      while (!(await chunks.next()).done);
    })(),
    (error) => error instanceof WireError && error.code === ErrorCode.Changed,
  );
  assertEquals([store.cache.reserved, store.cache.used, store.cache.has("shrinks.bin")], [
    0,
    0,
    false,
  ]);

  const minuteAgo = new Date(Date.now() - 60_000);
  await Deno.utime(path, minuteAgo, minuteAgo); // settled, so that its next load is cached
  const after = store.open("shrinks.bin", SHA256);
  assertEquals(after.source, "disk");
  await assertBody(after, file.subarray(0, 8 * MiB));
  assertEquals(store.cache.used, 8 * MiB);
});
