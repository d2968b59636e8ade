/**
 * A cache bounded in bytes, never over its capacity, not for an instant: room for a value is
 * reserved before it is loaded, so loads running side by side can never together push it past
 * the cap; and a value that leaves while someone still reads it (a slow download, say) stays
 * counted until they let go, so readers cannot make it hold more than the cap either
 * (used + reserved + pinned ≤ capacity at every moment). A `Map` holds the entries; which entry
 * leaves when room is needed is the business of a {@link Policy} (policies.ts).
 */

import { createPolicy, type Policy, type PolicyName } from "./policies.ts";

export { POLICIES, type PolicyName } from "./policies.ts";

/** The policy the server uses unless told otherwise: the winner of bench/cache_sim.ts. */
export const DEFAULT_POLICY: PolicyName = "sieve";

/** Settings of a {@link ByteCache}. */
export interface ByteCacheOptions<V = unknown> {
  /** The most bytes the cache may hold (and have reserved) at once. */
  capacity: number;
  /** The eviction policy (default {@link DEFAULT_POLICY}). */
  policy?: PolicyName;
  /**
   * Called once for each committed value when it has left the cache and no reader holds it any
   * more: from then on nothing uses it, so its memory can be given back at once rather than
   * whenever the garbage collector comes round.
   */
  onDrop?: (value: V) => void;
  /**
   * Called as a committed value leaves the cache (evicted, deleted or replaced), before its bytes
   * stop being counted, with a way to hold it: whoever answers for readers the cache cannot see
   * (in other threads) takes a hold here for them, so the bytes count as pinned until they let
   * go, or lets go of holds it took for them earlier.
   */
  onLeave?: (value: V, hold: () => Release) => void;
}

/** Room held for one value while it loads; settle it exactly once. */
export interface Reservation<V> {
  /** The bytes held. */
  readonly size: number;
  /** Admits the loaded value in the room held (replacing any value under the same key). */
  commit(value: V): void;
  /** Gives the room back: the load failed or was abandoned. */
  release(): void;
  /** Takes hold of the value being loaded here, as {@link ByteCache.hold} does of a cached one. */
  hold(): Release;
}

/** What a cache's owner may show of it: its counters and which keys it holds. */
export interface CacheView<K> {
  readonly capacity: number;
  readonly policy: PolicyName;
  readonly used: number;
  readonly reserved: number;
  readonly pinned: number;
  readonly size: number;
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
  has(key: K): boolean;
  keys(): IterableIterator<K>;
}

/** Lets go of a hold; calling it again does nothing. */
export type Release = () => void;

/** Where a value's bytes are counted: reserved while loading, used while cached, else nowhere. */
interface Slot<V> {
  readonly size: number;
  state: "loading" | "cached" | "gone";
  value?: V;
  /** Holds taken and not yet released. */
  holds: number;
}

/**
 * A byte-bounded cache of values whose sizes are known before they are loaded.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ByteCache } from "./cache.ts";
 * const cache = new ByteCache<string, Uint8Array>({ capacity: 1024, policy: "lru" });
 * cache.reserve("a.txt", 600)?.commit(new Uint8Array(600));
 * equal(cache.get("a.txt")?.length, 600);
 * cache.reserve("b.txt", 600)?.commit(new Uint8Array(600)); // evicts a.txt to make room
 * equal(cache.has("a.txt"), false);
 * equal(cache.reserve("c.txt", 2048), undefined); // larger than the whole cache
 * ```
 */
export class ByteCache<K, V> implements CacheView<K> {
  /** The most bytes held and reserved at once. */
  readonly capacity: number;
  /** The eviction policy's name. */
  readonly policy: PolicyName;
  readonly #entries = new Map<K, Slot<V>>();
  readonly #order: Policy<K>;
  readonly #onDrop: ((value: V) => void) | undefined;
  readonly #onLeave: ((value: V, hold: () => Release) => void) | undefined;
  #used = 0;
  #reserved = 0;
  #pinned = 0;
  /** Bytes of cached values that are held: evicting them frees nothing. */
  #held = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(options: ByteCacheOptions<V>) {
    if (!Number.isSafeInteger(options.capacity) || options.capacity < 0) {
      throw new RangeError(`a cache capacity is a whole number of bytes, not ${options.capacity}`);
    }
    this.capacity = options.capacity;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.#order = createPolicy<K>(this.policy, options.capacity);
    this.#onDrop = options.onDrop;
    this.#onLeave = options.onLeave;
  }

  /** Bytes of the values held. */
  get used(): number {
    return this.#used;
  }

  /** Bytes reserved for loads in progress. */
  get reserved(): number {
    return this.#reserved;
  }

  /** Bytes of values that left the cache (evicted, deleted, failed) while still held. */
  get pinned(): number {
    return this.#pinned;
  }

  /** Number of values held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Lookups by {@link get} that found a value. */
  get hits(): number {
    return this.#hits;
  }

  /** Lookups by {@link get} that found nothing. */
  get misses(): number {
    return this.#misses;
  }

  /** Values evicted to make room (not those deleted or replaced). */
  get evictions(): number {
    return this.#evictions;
  }

  /**
   * The value under `key`, counted as a hit (and told to the policy) or a miss.
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * equal(cache.get("a"), undefined);
   * equal(cache.misses, 1);
   * ```
   */
  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    this.#order.touch(key);
    return entry.value!;
  }

  /**
   * Tells the policy that `key` was requested, without counting a lookup: for a hit counted
   * elsewhere (in another thread, heard of later). False when no value is held under `key`.
   * @example
   * ```ts
   * import { deepEqual } from "node:assert/strict";
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 2, policy: "lru" });
   * cache.reserve("a", 1)?.commit("x");
   * cache.reserve("b", 1)?.commit("y");
   * cache.touch("a");
   * cache.reserve("c", 1)?.commit("z"); // b, not a, was least recently used
   * deepEqual([...cache.keys()], ["a", "c"]);
   * deepEqual([cache.hits, cache.misses], [0, 0]);
   * ```
   */
  touch(key: K): boolean {
    if (!this.#entries.has(key)) return false;
    this.#order.touch(key);
    return true;
  }

  /**
   * The value under `key`, without counting a lookup or telling the policy.
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * cache.reserve("a", 1)?.commit("x");
   * equal(cache.peek("a"), "x");
   * equal(cache.hits, 0);
   * ```
   */
  peek(key: K): V | undefined {
    return this.#entries.get(key)?.value;
  }

  /**
   * Takes hold of the value under `key` while it is being read: should it leave the cache before
   * the returned release is called, its bytes stay counted (as pinned) until then, since they are
   * still in memory. Undefined when no value is held under `key`.
   * @example
   * ```ts
   * import { equal, ok } from "node:assert/strict";
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * cache.reserve("a", 8)?.commit("12345678");
   * const release = cache.hold("a")!;
   * cache.delete("a");
   * equal(cache.pinned, 8); // a reader still has those bytes
   * equal(cache.reserve("b", 8), undefined); // no room until the reader lets go
   * release();
   * equal(cache.pinned, 0);
   * ok(cache.reserve("b", 8));
   * ```
   */
  hold(key: K): Release | undefined {
    const slot = this.#entries.get(key);
    return slot && this.#holder(slot);
  }

  /**
   * True when a value is held under `key`.
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { ByteCache } from "./cache.ts";
   * equal(new ByteCache<string, string>({ capacity: 10 }).has("a"), false);
   * ```
   */
  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /**
   * The keys held, oldest admission first.
   * @example
   * ```ts
   * import { deepEqual } from "node:assert/strict";
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * cache.reserve("a", 1)?.commit("x");
   * cache.reserve("b", 1)?.commit("y");
   * deepEqual([...cache.keys()], ["a", "b"]);
   * ```
   */
  keys(): IterableIterator<K> {
    return this.#entries.keys();
  }

  /**
   * Drops the value under `key` (a stale or deleted file, say); true if one was held.
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * cache.reserve("a", 4)?.commit("abcd");
   * equal(cache.delete("a"), true);
   * equal(cache.used, 0);
   * ```
   */
  delete(key: K): boolean {
    const slot = this.#entries.get(key);
    if (slot === undefined) return false;
    this.#entries.delete(key);
    this.#order.remove(key);
    this.#leave(slot);
    return true;
  }

  /**
   * Holds `size` bytes for a value about to be loaded under `key`, evicting values as the policy
   * orders until there is room. Returns undefined, evicting nothing, when the value cannot fit:
   * it is larger than the whole cache, or the rest is reserved by other loads or held by readers.
   * (Readers the cache learns of only as their value leaves, by `onLeave`, can make it evict and
   * still find no room.) Values being loaded are never evicted: they are not in the cache until
   * committed.
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * const room = cache.reserve("a", 8)!;
   * equal(cache.reserve("b", 8), undefined); // 8 of the 10 bytes are reserved
   * room.release();
   * cache.reserve("b", 8)?.commit("12345678");
   * equal(cache.used, 8);
   * ```
   */
  reserve(key: K, size: number): Reservation<V> | undefined {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`a value's size is a whole number of bytes, not ${size}`);
    }
    if (this.#reserved + this.#pinned + this.#held + size > this.capacity) return undefined;
    while (this.#used + this.#reserved + this.#pinned + size > this.capacity) {
      if (this.#entries.size === 0) return undefined; // what left was held where we could not see
      this.#evictOne();
    }
    this.#reserved += size;
    const slot: Slot<V> = { size, state: "loading", holds: 0 };
    const settle = () => {
      if (slot.state !== "loading") throw new Error("a cache reservation was settled twice");
      this.#reserved -= size;
    };
    return {
      size,
      commit: (value: V) => {
        settle();
        this.delete(key);
        slot.state = "cached";
        slot.value = value;
        if (slot.holds > 0) this.#held += size;
        this.#entries.set(key, slot);
        this.#used += size;
        this.#order.insert(key, size);
      },
      release: () => {
        settle();
        this.#leave(slot);
      },
      hold: () => this.#holder(slot),
    };
  }

  /** Counts a hold on `slot`; a slot already gone is in no count, so there is nothing to hold. */
  #holder(slot: Slot<V>): Release {
    if (slot.state === "gone") return () => {};
    if (slot.holds++ === 0 && slot.state === "cached") this.#held += slot.size;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--slot.holds > 0) return;
      if (slot.state === "cached") this.#held -= slot.size;
      if (slot.state === "gone") {
        this.#pinned -= slot.size;
        this.#drop(slot);
      }
    };
  }

  /** Takes `slot` out of the used or reserved count; still held, it counts as pinned. */
  #leave(slot: Slot<V>): void {
    if (slot.state === "cached") this.#onLeave?.(slot.value!, () => this.#holder(slot));
    if (slot.state === "cached") this.#used -= slot.size;
    if (slot.state === "cached" && slot.holds > 0) this.#held -= slot.size;
    slot.state = "gone";
    if (slot.holds > 0) this.#pinned += slot.size;
    else this.#drop(slot);
  }

  #drop(slot: Slot<V>): void {
    const value = slot.value;
    slot.value = undefined;
    if (value !== undefined) this.#onDrop?.(value);
  }

  #evictOne(): void {
    const key = this.#order.evict();
    const slot = this.#entries.get(key);
    if (slot === undefined) throw new Error("the eviction policy named a key the cache lacks");
    this.#entries.delete(key);
    this.#leave(slot);
    this.#evictions++;
  }
}
