/**
 * Eviction policies: which cached key goes next when room is needed. Each keeps its order in a
 * JS `Map` or `Set` (insertion order is the queue: oldest first), so every operation is O(1)
 * amortised. The cache ({@link ByteCache} in cache.ts) does the byte accounting; a policy only
 * orders keys, and sees every key the cache holds, in and out.
 *
 * - `fifo`: first in, first out, as the original server did.
 * - `lru`: least recently used first.
 * - `sieve`: SIEVE (Zhang et al., NSDI'24): FIFO order with a visited bit and a moving hand.
 * - `s3fifo`: S3-FIFO (Yang et al., SOSP'23): a small probation FIFO, a main FIFO with a 2-bit
 *   frequency, and a ghost FIFO of recently evicted keys.
 */

import { Front } from "../front.ts";

/** The names `--policy` accepts. */
export const POLICIES = ["fifo", "lru", "sieve", "s3fifo"] as const;

/** One of {@link POLICIES}. */
export type PolicyName = typeof POLICIES[number];

/** An eviction order over the keys a cache holds. */
export interface Policy<K> {
  /** A key entered the cache with `size` bytes (it was not there). */
  insert(key: K, size: number): void;
  /** A cached key was requested. */
  touch(key: K): void;
  /** A cached key left other than by {@link evict} (deleted or about to be replaced). */
  remove(key: K): void;
  /** Chooses the next victim among the cached keys, forgets it and returns it; never empty. */
  evict(): K;
}

/**
 * A new, empty policy of the given kind for a cache of `capacity` bytes.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { createPolicy } from "./policies.ts";
 * const lru = createPolicy<string>("lru", 100);
 * lru.insert("a", 10);
 * lru.insert("b", 10);
 * lru.touch("a");
 * equal(lru.evict(), "b");
 * ```
 */
export function createPolicy<K>(name: PolicyName, capacity: number): Policy<K> {
  switch (name) {
    case "fifo":
      return new Fifo<K>();
    case "lru":
      return new Lru<K>();
    case "sieve":
      return new Sieve<K>();
    case "s3fifo":
      return new S3Fifo<K>(capacity);
  }
}

/** Evicts in insertion order; a request changes nothing. */
class Fifo<K> implements Policy<K> {
  protected readonly order = new Set<K>();
  readonly #front = new Front(() => this.order.values());

  insert(key: K): void {
    this.order.add(key);
  }

  touch(_key: K): void {}

  remove(key: K): void {
    this.order.delete(key);
  }

  evict(): K {
    const key = this.#front.take();
    this.order.delete(key);
    return key;
  }
}

/** Evicts the least recently used: a request moves its key to the back of the queue. */
class Lru<K> extends Fifo<K> {
  override touch(key: K): void {
    this.order.delete(key);
    this.order.add(key);
  }
}

/**
 * SIEVE: keys stay in insertion order; a request only sets the key's visited bit. The hand walks
 * from the oldest key towards the newest, clearing visited bits, and evicts the first unvisited
 * key; it then points at the next newer key for the next eviction, or, when the victim was the
 * newest, back at the oldest. A live `Map` iterator is that hand: it survives deletions, and
 * stepping it once past each victim tells whether the victim was the newest.
 */
class Sieve<K> implements Policy<K> {
  readonly #visited = new Map<K, boolean>();
  #hand: Iterator<K> | undefined;
  /** The key the hand points at, already taken from the iterator. */
  #pointed: { key: K } | undefined;

  insert(key: K): void {
    this.#visited.set(key, false);
  }

  touch(key: K): void {
    this.#visited.set(key, true);
  }

  remove(key: K): void {
    this.#visited.delete(key);
    if (this.#pointed?.key === key) this.#pointed = undefined;
  }

  evict(): K {
    for (;;) {
      const key = this.#take();
      if (this.#visited.get(key)) {
        this.#visited.set(key, false);
        continue;
      }
      this.#visited.delete(key);
      const step = this.#hand!.next();
      if (step.done) this.#hand = undefined;
      else this.#pointed = { key: step.value };
      return key;
    }
  }

  /** The key under the hand, moving it on; after the newest it starts again at the oldest. */
  #take(): K {
    if (this.#pointed) {
      const { key } = this.#pointed;
      this.#pointed = undefined;
      return key;
    }
    for (;;) {
      this.#hand ??= this.#visited.keys();
      const step = this.#hand.next();
      if (!step.done) return step.value;
      if (this.#visited.size === 0) throw new Error("eviction from an empty policy");
      this.#hand = undefined;
    }
  }
}

/** Share of the capacity for S3-FIFO's small (probation) queue, as the paper sets it. */
const SMALL_SHARE = 0.1;
/** Ceiling of the 2-bit access counter. */
const MAX_FREQUENCY = 3;

/**
 * S3-FIFO: a new key enters the small queue S (10% of the bytes) unless the ghost queue G
 * remembers it, in which case it enters the main queue M. Requests count up to 3. Eviction takes
 * from S while S holds at least its share: a key requested while in S moves to M, others leave
 * (and G remembers them). Otherwise it takes from M, where a requested key goes back to the end
 * of M with its count lowered by one. G forgets in FIFO order once it holds more keys' bytes
 * than M's share, so it remembers about as much as M holds.
 */
class S3Fifo<K> implements Policy<K> {
  readonly #smallTarget: number;
  readonly #ghostLimit: number;
  readonly #small = new Map<K, { size: number; frequency: number }>();
  readonly #main = new Map<K, { size: number; frequency: number }>();
  readonly #ghost = new Map<K, number>();
  readonly #smallFront = new Front(() => this.#small.keys());
  readonly #mainFront = new Front(() => this.#main.keys());
  readonly #ghostFront = new Front(() => this.#ghost.keys());
  #smallBytes = 0;
  #ghostBytes = 0;

  constructor(capacity: number) {
    this.#smallTarget = capacity * SMALL_SHARE;
    this.#ghostLimit = capacity - this.#smallTarget;
  }

  insert(key: K, size: number): void {
    if (this.#ghost.has(key)) {
      this.#ghostBytes -= this.#ghost.get(key)!;
      this.#ghost.delete(key);
      this.#main.set(key, { size, frequency: 0 });
    } else {
      this.#small.set(key, { size, frequency: 0 });
      this.#smallBytes += size;
    }
  }

  touch(key: K): void {
    const entry = this.#small.get(key) ?? this.#main.get(key);
    if (entry) entry.frequency = Math.min(MAX_FREQUENCY, entry.frequency + 1);
  }

  remove(key: K): void {
    const small = this.#small.get(key);
    if (small) {
      this.#smallBytes -= small.size;
      this.#small.delete(key);
    } else {
      this.#main.delete(key);
    }
  }

  evict(): K {
    while (this.#small.size > 0 && (this.#smallBytes >= this.#smallTarget || !this.#main.size)) {
      const key = this.#smallFront.take();
      const entry = this.#small.get(key)!;
      this.#small.delete(key);
      this.#smallBytes -= entry.size;
      if (entry.frequency > 0) {
        entry.frequency = 0;
        this.#main.set(key, entry);
        continue;
      }
      this.#remember(key, entry.size);
      return key;
    }
    for (;;) {
      const key = this.#mainFront.take();
      const entry = this.#main.get(key)!;
      this.#main.delete(key);
      if (entry.frequency === 0) return key;
      entry.frequency--;
      this.#main.set(key, entry);
    }
  }

  #remember(key: K, size: number): void {
    this.#ghost.set(key, size);
    this.#ghostBytes += size;
    while (this.#ghostBytes > this.#ghostLimit) {
      const oldest = this.#ghostFront.take();
      const bytes = this.#ghost.get(oldest)!;
      this.#ghost.delete(oldest);
      this.#ghostBytes -= bytes;
    }
  }
}
