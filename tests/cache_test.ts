/**
 * The byte-bounded cache and its eviction policies: random sequences of lookups, loads,
 * completions, failures, invalidations and readers' holds checked against a model after every
 * step (values let go of exactly when nothing holds them any more), each policy's eviction order
 * against its definition (FIFO, LRU, SIEVE of NSDI'24, S3-FIFO of SOSP'23), and a sanity check
 * that every operation stays cheap on a large cache.
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import fc from "fast-check";
import {
  ByteCache,
  POLICIES,
  type PolicyName,
  type Release,
  type Reservation,
} from "../lib/server/cache/cache.ts";
import { createPolicy } from "../lib/server/cache/policies.ts";
import { randomBytes } from "../testing/support.ts";

/** A value the model can tell apart from every other: which commit made it, and its size. */
interface Value {
  key: string;
  serial: number;
  size: number;
}

/**
 * One thing done to the cache; `pick` chooses among the reservations open (or settled, or the
 * holds taken). `hold` holds a cached value, `holdLoad` a value being loaded, `letGo` releases.
 * `elsewhere` has a reader the cache cannot see take the value under `key`: the cache hears of
 * it only when the value leaves (`onLeave`), and the reader takes its hold then.
 */
type Op =
  | { kind: "get" | "peek" | "delete" | "hold" | "touch" | "elsewhere"; key: string }
  | { kind: "reserve"; key: string; size: number }
  | { kind: "commit" | "release" | "settleAgain" | "holdLoad" | "letGo"; pick: number };

const KEYS = ["a", "b", "c", "d", "e", "f"];
const key = fc.constantFrom(...KEYS);
const pick = fc.nat({ max: 1000 });
/** Capacities include 0; sizes include 0, small ones, and ones up to 2.5 times the largest cache. */
const capacity = fc.integer({ min: 0, max: 100 });
const size = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: 30 }),
  fc.integer({ min: 31, max: 250 }),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("get" as const), key }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("peek" as const), key }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), key }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("reserve" as const), key, size }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("commit" as const), pick }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("release" as const), pick }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("settleAgain" as const), pick }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("hold" as const), key }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("holdLoad" as const), pick }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("letGo" as const), pick }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("touch" as const), key }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("elsewhere" as const), key }) },
);

/** The sum of the sizes of `items`. */
const total = (sizes: Iterable<{ size: number }>) => {
  let sum = 0;
  for (const item of sizes) sum += item.size;
  return sum;
};

/** The model's view of one value's bytes, loading or loaded, and the holds on them. */
interface Slot {
  size: number;
  value?: Value;
  holds: number;
}

/**
 * Runs `ops` on a cache and on a model of it (the values committed and not yet gone, the
 * reservations open, the holds taken), checking after every step that the two agree and that the
 * cache never holds, promises or leaves pinned more bytes than its capacity.
 */
function modelCheck(policy: PolicyName, capacity: number, ops: Op[]): void {
  const dropped: Value[] = [];
  const left: Value[] = [];
  /** Serials of the values read where the cache cannot see. */
  const elsewhere = new Set<number>();
  /** Holds taken as values left, in this step. */
  let heldAsLeaving = 0;
  const committed: Slot[] = [];
  const cache = new ByteCache<string, Value>({
    capacity,
    policy,
    onDrop: (value) => dropped.push(value),
    onLeave: (value, hold) => {
      left.push(value);
      if (!elsewhere.has(value.serial)) return;
      const slot = committed.find((slot) => slot.value === value)!;
      slot.holds++;
      holds.push({ slot, release: hold() });
      heldAsLeaving++;
    },
  });
  const held = new Map<string, Slot>();
  const open: { key: string; slot: Slot; room: Reservation<Value> }[] = [];
  const settled: Reservation<Value>[] = [];
  const holds: { slot: Slot; release: Release }[] = [];
  const isHeld = (slot: Slot) => slot.holds > 0;
  let lookups = 0;
  let hits = 0;
  let evicted = 0;
  let serial = 0;
  for (const [step, op] of ops.entries()) {
    const where = `${policy}, capacity ${capacity}, step ${step} ${JSON.stringify(op)}`;
    const pinned = cache.pinned;
    const inUse = cache.used + cache.reserved + pinned;
    const crowded = inUse + ("size" in op ? op.size : 0) > capacity;
    let evicting = false;
    heldAsLeaving = 0;
    switch (op.kind) {
      case "get": {
        lookups++;
        if (held.has(op.key)) hits++;
        assertEquals(cache.get(op.key), held.get(op.key)?.value, where);
        break;
      }
      case "peek":
        assertEquals(cache.peek(op.key), held.get(op.key)?.value, where);
        break;
      case "delete":
        assertEquals(cache.delete(op.key), held.delete(op.key), where);
        break;
      case "reserve": {
        const slots = [...held.values()].filter(isHeld);
        const fits = total(open.map((o) => o.slot)) + pinned + total(slots) + op.size <= capacity;
        const room = cache.reserve(op.key, op.size);
        // A reader it could not see can leave it without room all the same, having evicted.
        const unseen = heldAsLeaving > 0;
        assert(room === undefined || fits, `${where}: reserved without room`);
        assert(room !== undefined || !fits || unseen, `${where}: refused with room`);
        if (op.size > capacity) assert(room === undefined, `${where}: larger than the cache`);
        evicting = unseen;
        if (room) {
          assertEquals(room.size, op.size, where);
          open.push({ key: op.key, slot: { size: op.size, holds: 0 }, room });
          evicting = true;
        }
        break;
      }
      case "commit":
      case "release": {
        if (open.length === 0) break;
        const [{ key, slot, room }] = open.splice(op.pick % open.length, 1);
        if (op.kind === "commit") {
          slot.value = { key, serial: serial++, size: slot.size };
          room.commit(slot.value);
          held.set(key, slot);
          committed.push(slot);
          assertEquals(cache.peek(key), slot.value, `${where}: the committed value is held`);
        } else {
          room.release();
        }
        settled.push(room);
        break;
      }
      case "settleAgain": {
        if (settled.length === 0) break;
        const room = settled[op.pick % settled.length];
        throws(() => room.commit({ key: "z", serial: -1, size: room.size }), /settled twice/);
        throws(() => room.release(), /settled twice/);
        break;
      }
      case "hold": {
        const release = cache.hold(op.key);
        const slot = held.get(op.key);
        assertEquals(release !== undefined, slot !== undefined, where);
        if (release && slot) {
          slot.holds++;
          holds.push({ slot, release });
        }
        break;
      }
      case "holdLoad": {
        if (open.length === 0) break;
        const { slot, room } = open[op.pick % open.length];
        slot.holds++;
        holds.push({ slot, release: room.hold() });
        break;
      }
      case "touch":
        assertEquals(cache.touch(op.key), held.has(op.key), where);
        break;
      case "elsewhere": {
        const value = held.get(op.key)?.value;
        if (value) elsewhere.add(value.serial);
        break;
      }
      case "letGo": {
        if (holds.length === 0) break;
        const [{ slot, release }] = holds.splice(op.pick % holds.length, 1);
        release();
        release(); // a second call does nothing
        slot.holds--;
        break;
      }
    }
    const vanished = [...held.keys()].filter((k) => !cache.has(k));
    if (vanished.length > 0) {
      assert(evicting, `${where}: ${vanished} left without a reservation evicting them`);
      assert(crowded, `${where}: ${vanished} evicted although there was room`);
      for (const k of vanished) held.delete(k);
      evicted += vanished.length;
    }
    const live = new Set([...held.values(), ...open.map((o) => o.slot)]);
    const gone = new Set(holds.map((h) => h.slot).filter((slot) => !live.has(slot)));
    assert(cache.used + cache.reserved + cache.pinned <= capacity, `${where}: over capacity`);
    assertEquals(cache.used, total(held.values()), `${where}: used`);
    assertEquals(cache.reserved, total(open.map((o) => o.slot)), `${where}: reserved`);
    assertEquals(cache.pinned, total(gone), `${where}: pinned`);
    assertEquals(cache.size, held.size, `${where}: size`);
    assertEquals(new Set(cache.keys()), new Set(held.keys()), `${where}: keys`);
    assertEquals([cache.hits, cache.misses], [hits, lookups - hits], `${where}: hits, misses`);
    assertEquals(cache.evictions, evicted, `${where}: evictions`);
    // A value is let go of exactly once, as soon as it is out of the cache and no longer held.
    const free = committed.filter((slot) => held.get(slot.value!.key) !== slot && !isHeld(slot));
    assertEquals(
      new Set(dropped.map((value) => value.serial)),
      new Set(free.map((slot) => slot.value!.serial)),
      `${where}: dropped`,
    );
    assertEquals(dropped.length, free.length, `${where}: a value was dropped twice`);
    // onLeave hears of each value once, as it leaves.
    const departed = committed.filter((slot) => held.get(slot.value!.key) !== slot);
    assertEquals(new Set(left), new Set(departed.map((slot) => slot.value!)), `${where}: left`);
    assertEquals(left.length, departed.length, `${where}: onLeave called twice for a value`);
  }
}

Deno.test("every policy keeps the cache's invariants under random use", async (t) => {
  for (const policy of POLICIES) {
    await t.step(policy, () => {
      fc.assert(
        fc.property(capacity, fc.array(op, { maxLength: 200, size: "max" }), (capacity, ops) => {
          modelCheck(policy, capacity, ops);
        }),
        { numRuns: 300 },
      );
    });
  }
});

/**
 * FIFO, LRU and SIEVE over keys of one byte each, written as plainly as their definitions:
 * an array, oldest first. SIEVE follows Algorithm 1 of the NSDI'24 paper: the hand walks from
 * the oldest towards the newest, clearing visited bits; after evicting it points at the next
 * newer key, or at nothing when the victim was the newest, and then starts again at the oldest.
 */
function referenceCache(policy: "fifo" | "lru" | "sieve", slots: number) {
  type Slot = { key: string; visited: boolean };
  const queue: Slot[] = [];
  let hand: Slot | undefined;
  const evict = () => {
    let at = policy === "sieve" && hand ? queue.indexOf(hand) : 0;
    while (policy === "sieve" && queue[at].visited) {
      queue[at].visited = false;
      at = (at + 1) % queue.length;
    }
    hand = queue[at + 1];
    queue.splice(at, 1);
  };
  return {
    held: () => new Set(queue.map((slot) => slot.key)),
    request(key: string) {
      const found = queue.find((slot) => slot.key === key);
      if (found === undefined) {
        if (queue.length === slots) evict();
        queue.push({ key, visited: false });
      } else if (policy === "lru") {
        queue.push(...queue.splice(queue.indexOf(found), 1));
      } else {
        found.visited = true;
      }
    },
  };
}

/** A request as the server makes it: a lookup, and on a miss a load of `size` bytes. */
function request(cache: ByteCache<string, string>, key: string, size = 1): void {
  if (cache.get(key) !== undefined) return;
  const room = cache.reserve(key, size);
  assert(room, `no room for ${key} (${size} bytes)`);
  room.commit(key);
}

Deno.test("FIFO, LRU and SIEVE evict exactly as their definitions do", async (t) => {
  for (const policy of ["fifo", "lru", "sieve"] as const) {
    await t.step(policy, () => {
      const requests = fc.array(fc.constantFrom(...KEYS, "g", "h"), {
        maxLength: 300,
        size: "max",
      });
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 6 }), requests, (slots, keys) => {
          const cache = new ByteCache<string, string>({ capacity: slots, policy });
          const reference = referenceCache(policy, slots);
          for (const [step, key] of keys.entries()) {
            request(cache, key);
            reference.request(key);
            assertEquals(new Set(cache.keys()), reference.held(), `step ${step}: ${key}`);
          }
        }),
        { numRuns: 500 },
      );
    });
  }
});

/** A fresh cache of `capacity` bytes and a way to request keys and see which are held. */
function tiny(policy: PolicyName, capacity: number, size = 1) {
  const cache = new ByteCache<string, string>({ capacity, policy });
  return {
    cache,
    request: (...keys: string[]) => keys.forEach((key) => request(cache, key, size)),
    held: () => [...cache.keys()].sort(),
  };
}

/** `count` distinct keys that appear nowhere else: a scan of one-hit wonders. */
const scan = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => prefix + i);

Deno.test("FIFO evicts the oldest admission, however often it was requested", () => {
  const { request, held } = tiny("fifo", 3);
  request("a", "b", "c", "a", "a", "a", "d");
  assertEquals(held(), ["b", "c", "d"]);
});

Deno.test("LRU evicts the least recently used", () => {
  const { request, held } = tiny("lru", 3);
  request("a", "b", "c", "a", "d");
  assertEquals(held(), ["a", "c", "d"]);
  request("c", "e");
  assertEquals(held(), ["c", "d", "e"]);
});

Deno.test("SIEVE keeps visited keys and moves its hand as NSDI'24 defines", async (t) => {
  await t.step(
    "the hand skips visited keys, clearing their bit, and evicts the first other",
    () => {
      const { request, held } = tiny("sieve", 4);
      request("a", "b", "c", "d", "a", "c", "e");
      assertEquals(held(), ["a", "c", "d", "e"]);
    },
  );

  await t.step("the hand resumes where it stopped, not at the oldest key", () => {
    const { request, held } = tiny("sieve", 4);
    request("a", "b", "c", "d", "a", "c", "e"); // hand: a (cleared), b evicted; now at c
    request("a", "f"); // hand: c (cleared), d evicted; now at e
    assertEquals(held(), ["a", "c", "e", "f"]);
    request("g"); // from the oldest, c (unvisited) would go; the hand is at e, so e goes
    assertEquals(held(), ["a", "c", "f", "g"]);
  });

  await t.step("after evicting the newest key, the hand starts again at the oldest", () => {
    const { request, held } = tiny("sieve", 3);
    request("a", "b", "c", "a", "b", "d"); // a, b cleared; c (the newest) evicted
    assertEquals(held(), ["a", "b", "d"]);
    request("e"); // the hand wrapped: a is the oldest and no longer visited, so a goes
    assertEquals(held(), ["b", "d", "e"]);
  });
});

Deno.test("S3-FIFO: small, main and ghost queues as SOSP'23 defines them", async (t) => {
  // 100 bytes of 10-byte values: the small queue's share is 10 bytes, the ghost's 90.
  const s3fifo = () => tiny("s3fifo", 100, 10);
  const first = scan("k", 10);

  await t.step("new keys go to the small queue; one-hit keys leave it oldest first", () => {
    const { request, held } = s3fifo();
    request(...first, "x", "y");
    assertEquals(held(), [...first.slice(2), "x", "y"].sort());
  });

  await t.step("a key requested while in the small queue moves to main and outlives a scan", () => {
    const { request, held } = s3fifo();
    request(...first, "k2", "x", "y", "z"); // k2 moves to main, k3 leaves instead
    assertEquals(held(), ["k2", ...first.slice(4), "x", "y", "z"].sort());
    request(...scan("s", 30));
    assert(held().includes("k2"), `k2 was lost to a scan: ${held()}`);
  });

  await t.step("a key the ghost remembers goes straight to main and outlives a scan", () => {
    const { request, held } = s3fifo();
    request(...first, "x"); // k0 leaves, the ghost remembers it
    request("k0", "y"); // k0 returns to main; y, never seen, to the small queue
    request(...scan("s", 30));
    assert(held().includes("k0"), `k0 was lost to a scan: ${held()}`);
    assert(!held().includes("y"), "a one-hit key survived a scan");
  });

  await t.step("the ghost remembers about as many bytes as main may hold", () => {
    const { request, held } = s3fifo();
    request(...first, ...scan("n", 10)); // k0..k9 leave: 100 bytes, the ghost keeps 90
    request("k0", "k9"); // k0 was forgotten, k9 is remembered
    request(...scan("s", 30));
    assert(held().includes("k9"), `k9 (remembered) was lost to a scan: ${held()}`);
    assert(!held().includes("k0"), "k0 (forgotten) was kept as if remembered");
  });

  await t.step("main reinserts a requested key with its count lowered; counts stop at 3", () => {
    const policy = createPolicy<string>("s3fifo", 100);
    policy.insert("a", 10);
    policy.insert("b", 10);
    assertEquals([policy.evict(), policy.evict()], ["a", "b"]); // to the ghost
    policy.insert("a", 10); // remembered: into main
    policy.insert("b", 10);
    for (let i = 0; i < 5; i++) policy.touch("a");
    for (let i = 0; i < 3; i++) policy.touch("b");
    // Both counts are 3, so a, ahead in the queue, runs out first; with 5 it would outlast b.
    assertEquals(policy.evict(), "a");
    assertEquals(policy.evict(), "b");
  });
});

Deno.test("every operation stays cheap on a cache of 10,000 entries", async (t) => {
  const OPS = 200_000;
  const random = new DataView(randomBytes(OPS * 8, 7).buffer);
  for (const policy of POLICIES) {
    await t.step(policy, () => {
      const cache = new ByteCache<number, number>({ capacity: 10_000 * 100, policy });
      const started = performance.now();
      for (let i = 0; i < OPS; i++) {
        const key = random.getUint32(i * 8) % 20_000;
        const choice = random.getUint16(i * 8 + 4) % 10;
        if (choice === 0) cache.delete(key);
        else if (cache.get(key) === undefined) {
          cache.reserve(key, 1 + random.getUint16(i * 8 + 6) % 199)?.commit(key);
        }
      }
      const elapsed = performance.now() - started;
      assert(cache.size > 5_000, `only ${cache.size} entries: the test did not fill the cache`);
      assert(cache.evictions > 10_000, `only ${cache.evictions} evictions`);
      assert(elapsed < 3_000, `${OPS} operations took ${elapsed.toFixed(0)} ms`);
    });
  }
});
