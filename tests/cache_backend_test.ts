/**
 * The cache back-ends the store runs on, against one model: the cache of one thread (LocalCache)
 * and the cache shared by threads (SharedCache clients of a CacheCoordinator), run through the
 * same random sequences of lookups, loads, completions, failures, deletions, peeks and releases.
 * After every step (every message delivered, for the shared one), what each answers, its
 * counters and keys agree with the model, used + reserved + pinned never passes the capacity,
 * the shared memory its entries take is exactly what it counts, and no entry a reader still
 * holds has its pages written by another. Then the shared one alone, with its messages
 * delivered in random order and late: the same bounds at every delivery, and everything
 * accounted for once all is delivered. The messages go through a channel in this thread whose
 * deliveries the test makes (tests/shared_cache_test.ts runs the real thing in workers).
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import { type CacheView, POLICIES, type PolicyName } from "../lib/server/cache/cache.ts";
import type { CacheBackend, Found } from "../lib/server/store/backend.ts";
import type { Held, Pieces } from "../lib/server/store/load.ts";
import { LocalCache } from "../lib/server/store/local.ts";
import { CacheCoordinator } from "../lib/server/store/threads/coordinator.ts";
import { PAGE_BYTES, type Port } from "../lib/server/store/threads/messages.ts";
import { Pages } from "../lib/server/store/threads/pages.ts";
import { SharedCache } from "../lib/server/store/threads/shared.ts";
import { sameStamp, type Stamp } from "../lib/server/store/version.ts";
import { XXH3_128 } from "../lib/shared/digest.ts";
import { ErrorCode, WireError } from "../lib/shared/errors.ts";

const PAGE = PAGE_BYTES;

/** One end of a channel in this thread; a message waits in the other end's inbox until delivered. */
class TestPort implements Port {
  onmessage: ((event: MessageEvent) => void) | null = null;
  readonly inbox: unknown[] = [];
  peer!: TestPort;

  postMessage(message: unknown): void {
    this.peer.inbox.push(structuredClone(message)); // shared memory stays shared
  }

  /** Delivers the oldest message waiting here; false if none was. */
  deliver(): boolean {
    if (this.inbox.length === 0) return false;
    this.onmessage!({ data: this.inbox.shift() } as MessageEvent);
    return true;
  }
}

function channel(): [TestPort, TestPort] {
  const [a, b] = [new TestPort(), new TestPort()];
  [a.peer, b.peer] = [b, a];
  return [a, b];
}

/** Delivers every message, and every one they lead to, until none is left. */
async function drain(ports: TestPort[]): Promise<void> {
  for (let quiet = 0; quiet < 3;) {
    let moved = false;
    for (const port of ports) while (port.deliver()) moved = true;
    await Promise.resolve(); // a turn's news and reports go out in a microtask
    quiet = moved ? 0 : quiet + 1;
  }
}

/** A back-end under test, with its clients (the workers' sides) and how to let it settle. */
interface Subject {
  clients: CacheBackend[];
  /** The counters that count (the coordinator's, for the shared one). */
  view: CacheView<string>;
  /** The bytes an entry of `size` bytes is counted as. */
  charge(size: number): number;
  /** Resolves once nothing is on its way. */
  settled(): Promise<void>;
  /** Shared only: bytes of shared memory the entries take, and every client's view. */
  taken?: () => number;
  views?: CacheView<string>[];
  ports?: TestPort[];
}

function localSubject(capacity: number, policy: PolicyName): Subject {
  const cache = new LocalCache(capacity, policy);
  return { clients: [cache], view: cache.view, charge: (size) => size, settled: async () => {} };
}

async function sharedSubject(capacity: number, policy: PolicyName, count: number) {
  const coordinator = new CacheCoordinator({ capacity, policy });
  const ports: TestPort[] = [];
  const clients: SharedCache[] = [];
  for (let i = 0; i < count; i++) {
    const [near, far] = channel();
    ports.push(near, far);
    coordinator.attach(near);
    const connecting = SharedCache.connect(far);
    await drain(ports);
    clients.push(await connecting);
  }
  const subject: Subject & { coordinator: CacheCoordinator } = {
    coordinator,
    clients,
    view: coordinator.view,
    charge: (size) => Math.max(1, Math.ceil(size / PAGE)) * PAGE,
    settled: () => drain(ports),
    taken: () => coordinator.takenBytes,
    views: clients.map((client) => client.view),
    ports,
  };
  return subject;
}

/** The file offsets a loaded entry's tag is written at: the start of each of its pages. */
function* tagOffsets(size: number): Generator<number> {
  for (let offset = 0; offset + 4 <= size; offset += PAGE) yield offset;
}

/** The 4 bytes at `offset` of the file laid out in `pieces`, as a view. */
function at(pieces: Pieces, offset: number): DataView {
  for (const piece of pieces) {
    if (offset < piece.length) return new DataView(piece.buffer, piece.byteOffset + offset, 4);
    offset -= piece.length;
  }
  throw new RangeError(`offset ${offset} is past the pieces`);
}

/** Writes `serial` at the start of each page of a file being loaded, as its load would fill it. */
function tag(pieces: Pieces, size: number, serial: number): void {
  for (const offset of tagOffsets(size)) at(pieces, offset).setUint32(0, serial);
}

/** True while every page of a loaded file still starts with its `serial`. */
function tagged(pieces: Pieces, size: number, serial: number): boolean {
  for (const offset of tagOffsets(size)) {
    if (at(pieces, offset).getUint32(0) !== serial) return false;
  }
  return true;
}

/** One entry of the model: a load, then maybe cached, then gone. */
interface Entry {
  key: string;
  stamp: Stamp;
  charge: number;
  serial: number;
  state: "loading" | "cached" | "gone";
  finished: boolean;
  holds: number;
}

type Op =
  | { kind: "find" | "peek"; client: number; key: string; version: number }
  | { kind: "delete"; client: number; key: string }
  | { kind: "finish" | "fail" | "release"; pick: number };

const KEYS = ["a", "b", "c", "d", "e"];
const key = fc.constantFrom(...KEYS);
const client = fc.nat({ max: 2 });
const pick = fc.nat({ max: 1000 });
/** Sizes of none, part of a page, a few pages, and more than the largest cache below. */
const size = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: PAGE }),
  fc.integer({ min: PAGE + 1, max: 6 * PAGE }),
  fc.integer({ min: 6 * PAGE + 1, max: 30 * PAGE }),
);
/** The size of each version (1 or 2) of each key, drawn once a run. */
const sizes = fc.array(size, { minLength: 2 * KEYS.length, maxLength: 2 * KEYS.length });
const lookup = (kind: "find" | "peek") =>
  fc.record({ kind: fc.constant(kind), client, key, version: fc.integer({ min: 1, max: 2 }) });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: lookup("find") },
  { weight: 1, arbitrary: lookup("peek") },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), client, key }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("finish" as const), pick }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("fail" as const), pick }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("release" as const), pick }) },
);
/** Capacities of a few pages, in whole pages or not. */
const capacity = fc.integer({ min: 0, max: 24 * PAGE });

/**
 * Runs `ops` on `subject` and on a model of it, checking after every step that the two agree.
 */
async function modelCheck(
  subject: Subject,
  capacity: number,
  sizes: number[],
  ops: Op[],
): Promise<void> {
  const stampOf = (key: string, version: number) => {
    const size = sizes[KEYS.indexOf(key) * 2 + version - 1];
    return { size, mtimeMs: version, ctimeMs: 0, ino: 1, dev: 1 };
  };
  const entries: Entry[] = [];
  const cached = new Map<string, Entry>();
  /** The latest load of each key, which a request of its version joins. */
  const latest = new Map<string, Entry>();
  const loads: { entry: Entry; held: Held; settle: (loaded: boolean) => void }[] = [];
  const holds: { entry: Entry; held: Held }[] = [];
  let hits = 0;
  let misses = 0;
  let evictions = 0;
  /** Takes `entry` out of the cache, as a deletion, a replacement or a failure does. */
  const leave = (entry: Entry) => {
    if (entry.state === "cached") cached.delete(entry.key);
    entry.state = "gone";
  };
  const sum = (list: Entry[]) => list.reduce((total, entry) => total + entry.charge, 0);
  const pinned = () => sum(entries.filter((entry) => entry.state === "gone" && entry.holds > 0));
  const reserved = () => sum(entries.filter((entry) => entry.state === "loading"));
  const heldCached = () => sum([...cached.values()].filter((entry) => entry.holds > 0));
  const hold = (entry: Entry, held: Held) => {
    entry.holds++;
    holds.push({ entry, held });
  };

  for (const [step, op] of ops.entries()) {
    const where = `capacity ${capacity}, step ${step} ${JSON.stringify(op)}`;
    const cache = subject.clients["client" in op ? op.client % subject.clients.length : 0];
    const inUse = subject.view.used + subject.view.reserved + subject.view.pinned;
    let admitted: Entry | undefined;
    switch (op.kind) {
      case "find": {
        const stamp = stampOf(op.key, op.version);
        const old = cached.get(op.key);
        if (old && !sameStamp(old.stamp, stamp)) leave(old); // another version: dropped
        const hit = cached.get(op.key);
        const running = latest.get(op.key);
        const joins = !hit && running && sameStamp(running.stamp, stamp) ? running : undefined;
        const charge = subject.charge(stamp.size);
        const fits = reserved() + pinned() + heldCached() + charge <= capacity;
        const expected = hit ? "hit" : joins ? "join" : fits ? "load" : "stream";
        const asked = cache.find(op.key, stamp);
        await subject.settled();
        const found: Found = await asked;
        assertEquals(found.kind, expected, where);
        if (hit) hits++;
        else misses++;
        if (found.kind === "hit" || found.kind === "join") hold((hit ?? joins)!, found.held);
        if (found.kind === "load") {
          admitted = {
            key: op.key,
            stamp,
            charge,
            serial: entries.length,
            state: "loading",
            finished: false,
            holds: 0,
          };
          entries.push(admitted);
          latest.set(op.key, admitted);
          hold(admitted, found.held);
          loads.push({ entry: admitted, held: found.held, settle: found.settle });
        }
        break;
      }
      case "peek": {
        const stamp = stampOf(op.key, op.version);
        const entry = cached.get(op.key);
        const held = cache.peek(op.key, stamp);
        const fresh = entry && sameStamp(entry.stamp, stamp) ? entry : undefined;
        assertEquals(held !== undefined, fresh !== undefined, where);
        if (held) hold(fresh!, held);
        break;
      }
      case "delete":
        cache.delete(op.key);
        if (cached.has(op.key)) leave(cached.get(op.key)!);
        break;
      case "finish":
      case "fail": {
        if (loads.length === 0) break;
        const [{ entry, held, settle }] = loads.splice(op.pick % loads.length, 1);
        if (latest.get(entry.key) === entry) latest.delete(entry.key);
        if (op.kind === "finish") {
          tag(held.pieces, entry.stamp.size, entry.serial);
          held.progress.finish(XXH3_128, new Uint8Array(XXH3_128.bytes));
          settle(true);
          const replaced = cached.get(entry.key);
          if (replaced) leave(replaced);
          entry.state = "cached";
          entry.finished = true;
          cached.set(entry.key, entry);
        } else {
          held.progress.fail(new WireError(ErrorCode.Changed, "changed"));
          settle(false);
          leave(entry);
        }
        break;
      }
      case "release": {
        if (holds.length === 0) break;
        const [{ entry, held }] = holds.splice(op.pick % holds.length, 1);
        held.release();
        held.release(); // a second call does nothing
        entry.holds--;
        break;
      }
    }
    await subject.settled();
    // Entries that vanished were evicted, by a load admitted into a full cache, and only then.
    const vanished = [...cached.keys()].filter((key) => !subject.view.has(key));
    if (vanished.length > 0) {
      assert(admitted, `${where}: ${vanished} left without a load evicting them`);
      assert(inUse + admitted.charge > capacity, `${where}: ${vanished} evicted with room left`);
      for (const key of vanished) leave(cached.get(key)!);
      evictions += vanished.length;
    }
    const view = subject.view;
    assert(view.used + view.reserved + view.pinned <= capacity, `${where}: over capacity`);
    assertEquals(
      [view.used, view.reserved, view.pinned, view.size],
      [sum([...cached.values()]), reserved(), pinned(), cached.size],
      `${where}: used, reserved, pinned, size`,
    );
    assertEquals(new Set(view.keys()), new Set(cached.keys()), `${where}: keys`);
    assertEquals([view.hits, view.misses, view.evictions], [hits, misses, evictions], where);
    if (subject.taken) {
      assertEquals(subject.taken(), view.used + view.reserved + view.pinned, `${where}: memory`);
    }
    for (const other of subject.views ?? []) {
      const figures = (v: CacheView<string>) => [v.used, v.reserved, v.pinned, v.hits, v.misses];
      assertEquals(figures(other), figures(view), `${where}: a worker's figures`);
      assertEquals(new Set(other.keys()), new Set(cached.keys()), `${where}: a worker's keys`);
    }
    for (const { entry, held } of holds) {
      if (!entry.finished) continue;
      assert(tagged(held.pieces, entry.stamp.size, entry.serial), `${where}: held bytes reused`);
    }
  }
}

Deno.test("both back-ends keep the cache's promises under random use, as the model says", async (t) => {
  const subjects: [string, (capacity: number, policy: PolicyName) => Promise<Subject>, number][] = [
    ["local", (capacity, policy) => Promise.resolve(localSubject(capacity, policy)), 300],
    ["shared by three workers", (capacity, policy) => sharedSubject(capacity, policy, 3), 200],
  ];
  for (const [name, make, numRuns] of subjects) {
    for (const policy of POLICIES) {
      await t.step(`${name}, ${policy}`, async () => {
        await fc.assert(
          fc.asyncProperty(
            capacity,
            sizes,
            fc.array(op, { maxLength: 120, size: "max" }),
            async (capacity, sizes, ops) => {
              await modelCheck(await make(capacity, policy), capacity, sizes, ops);
            },
          ),
          { numRuns },
        );
      });
    }
  }
});

Deno.test("a worker that stops mid-load: those who joined its load are told, and its room comes back", async () => {
  const subject = await sharedSubject(64 * PAGE, "sieve", 2);
  const [loader, reader] = subject.clients;
  const stamp = { size: 10 * PAGE, mtimeMs: 1, ctimeMs: 1, ino: 1, dev: 1 };
  const loading = loader.find("f", stamp) as Promise<Found>;
  await subject.settled();
  assertEquals((await loading).kind, "load");
  const joining = reader.find("f", stamp) as Promise<Found>;
  await subject.settled();
  const joined = await joining;
  assert(joined.kind === "join", `answered ${joined.kind}`);
  const waiting = joined.held.progress.filledPast(0);

  subject.coordinator.detach(subject.ports![0]); // the loader's end: it has stopped
  const failure = await waiting.catch((error) => error);
  assert(failure instanceof WireError, `the reader got ${failure}`);
  assertEquals(failure.code, ErrorCode.Internal);
  assertEquals([subject.view.reserved, subject.view.pinned], [0, 10 * PAGE]); // the reader's hold
  joined.held.release();
  await subject.settled();
  assertEquals([subject.view.reserved, subject.view.pinned, subject.taken!()], [0, 0, 0]);
  // The next request loads it afresh.
  const again = reader.find("f", stamp) as Promise<Found>;
  await subject.settled();
  assertEquals((await again).kind, "load");
});

type DelayedOp = Op | { kind: "deliver"; port: number; count: number };

const delayedOp: fc.Arbitrary<DelayedOp> = fc.oneof(
  { weight: 3, arbitrary: op },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("deliver" as const),
      port: fc.nat({ max: 5 }),
      count: fc.integer({ min: 1, max: 3 }),
    }),
  },
);

/** A hold the test has, on bytes it knows: a load it made, or a hit (read as it was taken). */
interface Reading {
  held: Held;
  size: number;
  /** The key and version asked for. */
  asked: string;
  /** The tag its pages must keep while held, once known. */
  serial?: number;
}

/**
 * Runs `ops` on a cache shared by three workers whose messages arrive only when an op delivers
 * them, checking at every step the bounds that must hold whatever is still on its way; then
 * delivers everything, lets go of everything, and checks that all is accounted for.
 */
async function delayCheck(
  policy: PolicyName,
  capacity: number,
  sizes: number[],
  ops: DelayedOp[],
): Promise<void> {
  const subject = await sharedSubject(capacity, policy, 3);
  const ports = subject.ports!;
  const view = subject.view;
  const readings: Reading[] = [];
  const loads: { reading: Reading; settle: (loaded: boolean) => void }[] = [];
  /** What each load the test finished was of: a key and version. */
  const loaded: string[] = [];
  let finds = 0;
  const received = (found: Found, asked: string, size: number) => {
    if (found.kind === "stream") return;
    const reading: Reading = { held: found.held, size, asked };
    // A hit is of a file loaded whole: its pages carry the tag of the load that filled them,
    // which must have been of the very version asked for.
    if (found.kind === "hit" && size >= 4) {
      reading.serial = at(found.held.pieces, 0).getUint32(0);
      assertEquals(loaded[reading.serial], asked, `a hit for ${asked} was sent another file`);
    }
    readings.push(reading);
    if (found.kind === "load") loads.push({ reading, settle: found.settle });
  };
  for (const [step, op] of ops.entries()) {
    const where = `${policy}, capacity ${capacity}, step ${step} ${JSON.stringify(op)}`;
    const cache = subject.clients["client" in op ? op.client % 3 : 0];
    const stamp = "version" in op
      ? {
        size: sizes[KEYS.indexOf(op.key) * 2 + op.version - 1],
        mtimeMs: op.version,
        ctimeMs: 0,
        ino: 1,
        dev: 1,
      }
      : undefined;
    switch (op.kind) {
      case "deliver":
        for (let i = 0; i < op.count; i++) ports[op.port % ports.length].deliver();
        break;
      case "find": {
        finds++;
        const found = cache.find(op.key, stamp!);
        const asked = `${op.key} ${op.version}`;
        if (found instanceof Promise) found.then((found) => received(found, asked, stamp!.size));
        else received(found, asked, stamp!.size);
        break;
      }
      case "peek": {
        const held = cache.peek(op.key, stamp!);
        if (held) received({ kind: "hit", held }, `${op.key} ${op.version}`, stamp!.size);
        break;
      }
      case "delete":
        cache.delete(op.key);
        break;
      case "finish":
      case "fail": {
        if (loads.length === 0) break;
        const [{ reading, settle }] = loads.splice(op.pick % loads.length, 1);
        if (op.kind === "finish") {
          reading.serial = loaded.push(reading.asked) - 1;
          tag(reading.held.pieces, reading.size, reading.serial);
          reading.held.progress.finish(XXH3_128, new Uint8Array(XXH3_128.bytes));
        } else reading.held.progress.fail(new WireError(ErrorCode.Changed, "changed"));
        settle(op.kind === "finish");
        break;
      }
      case "release": {
        if (readings.length === 0) break;
        const [reading] = readings.splice(op.pick % readings.length, 1);
        reading.held.release();
        break;
      }
    }
    await Promise.resolve(); // what the step queued goes out (not in): a turn's reports, news
    assert(view.used + view.reserved + view.pinned <= capacity, `${where}: over capacity`);
    assertEquals(subject.taken!(), view.used + view.reserved + view.pinned, `${where}: memory`);
    for (const { held, size, serial } of readings) {
      if (serial !== undefined) {
        assert(tagged(held.pieces, size, serial), `${where}: held bytes reused`);
      }
    }
  }
  // Everything delivered, every load settled, every hold let go of: nothing stays counted.
  await drain(ports);
  for (const { reading, settle } of loads) {
    reading.held.progress.fail(new WireError(ErrorCode.Changed, "changed"));
    settle(false);
  }
  for (const { held } of readings) held.release();
  await drain(ports);
  assertEquals([view.reserved, view.pinned, view.hits + view.misses], [0, 0, finds]);
  assertEquals(subject.taken!(), view.used);
  for (const other of subject.views!) assertEquals(new Set(other.keys()), new Set(view.keys()));
}

Deno.test("the shared back-end keeps its bounds whatever order and delay its messages arrive in", async (t) => {
  for (const policy of POLICIES) {
    await t.step(policy, async () => {
      await fc.assert(
        fc.asyncProperty(
          capacity,
          sizes,
          fc.array(delayedOp, { maxLength: 200, size: "max" }),
          async (capacity, sizes, ops) => await delayCheck(policy, capacity, sizes, ops),
        ),
        { numRuns: 150 },
      );
    });
  }
});

Deno.test("arena pages: never taken twice, never across arenas, arenas made only when needed", () => {
  const pageOp = fc.oneof(
    fc.record({ take: fc.integer({ min: 1, max: 20 }) }),
    fc.record({ give: fc.nat({ max: 100 }) }),
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 64 }),
      fc.integer({ min: 1, max: 16 }),
      fc.array(pageOp, { maxLength: 100 }),
      (total, arena, ops) => {
        let made = 0;
        const pages = new Pages(total, arena, (count) => {
          assertEquals(count, Math.min(arena, total - made * arena), "an arena's pages");
          made++;
        });
        const owner = new Array<number | undefined>(total);
        const taken: number[][] = [];
        for (const [step, op] of ops.entries()) {
          if ("take" in op) {
            const free = total - pages.taken;
            const room = Math.min(made * arena, total) - pages.taken; // in the arenas made
            const arenas = made;
            if (op.take > free) {
              assert(throws(() => pages.take(op.take)), `step ${step}: took more than was free`);
              continue;
            }
            const runs = pages.take(op.take);
            if (op.take <= room) {
              assertEquals(made, arenas, `step ${step}: an arena made needlessly`);
            }
            let count = 0;
            for (let i = 0; i < runs.length; i += 2) {
              const [start, length] = [runs[i], runs[i + 1]];
              const first = Math.floor(start / arena);
              assertEquals(Math.floor((start + length - 1) / arena), first, "a run across arenas");
              for (let page = start; page < start + length; page++) {
                assertEquals(owner[page], undefined, `step ${step}: page ${page} taken twice`);
                assert(page < total);
                owner[page] = step;
              }
              count += length;
            }
            assertEquals(count, op.take);
            taken.push(runs);
          } else if (taken.length > 0) {
            const [runs] = taken.splice(op.give % taken.length, 1);
            pages.give(runs);
            for (let i = 0; i < runs.length; i += 2) {
              for (let page = runs[i]; page < runs[i] + runs[i + 1]; page++) {
                owner[page] = undefined;
              }
            }
          }
          assertEquals(pages.taken, owner.filter((step) => step !== undefined).length);
        }
      },
    ),
    { numRuns: 500 },
  );
});

/** True if `work` throws a RangeError. */
function throws(work: () => unknown): boolean {
  try {
    work();
    return false;
  } catch (error) {
    return error instanceof RangeError;
  }
}

Deno.test("a file larger than an arena lies across arenas, and every worker reads it in place", async () => {
  const MiB = 1024 * 1024;
  const subject = await sharedSubject(160 * MiB, "sieve", 2);
  const [loader, reader] = subject.clients;
  const stamp = { size: 100 * MiB + 5, mtimeMs: 1, ctimeMs: 1, ino: 1, dev: 1 };
  const loading = loader.find("big", stamp) as Promise<Found>;
  await subject.settled();
  const load = await loading;
  assert(load.kind === "load", `answered ${load.kind}`);
  const { pieces } = load.held;
  assertEquals(pieces.reduce((sum, piece) => sum + piece.length, 0), stamp.size);
  assert(new Set(pieces.map((piece) => piece.buffer)).size > 1, "all in one arena");
  // Each piece's first and last bytes, marked where the loader sees them…
  const ends: number[] = [];
  for (let i = 0, offset = 0; i < pieces.length; offset += pieces[i++].length) {
    pieces[i][0] = 2 * i + 1;
    pieces[i][pieces[i].length - 1] = 2 * i + 2;
    ends.push(offset, offset + pieces[i].length - 1);
  }
  load.held.progress.finish(XXH3_128, new Uint8Array(XXH3_128.bytes));
  load.settle(true);
  load.held.release();
  await subject.settled();
  // …are where another worker, mapping the same pages itself, sees them.
  const hit = reader.find("big", stamp);
  assert(!(hit instanceof Promise) && hit.kind === "hit", "not a hit from the mirror");
  const seen = ends.map((offset) => {
    for (const piece of hit.held.pieces) {
      if (offset < piece.length) return piece[offset];
      offset -= piece.length;
    }
  });
  assertEquals(seen, ends.map((_, i) => i + 1));
  hit.held.release();
});
