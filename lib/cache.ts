/**
 * A cache bounded in bytes, never over its capacity, not for an instant: room for a value is
 * reserved before it is loaded, so loads running side by side can never together push it past
 * the cap (used + reserved ≤ capacity at every moment). A `Map` holds the entries; which entry
 * leaves when room is needed is the business of a {@link Policy} (policies.ts).
 */

import { createPolicy, type Policy, type PolicyName } from "./policies.ts";

export { POLICIES, type PolicyName } from "./policies.ts";

/** The policy the server uses unless told otherwise: the winner of bench/cache_sim.ts. */
export const DEFAULT_POLICY: PolicyName = "sieve";

/** Settings of a {@link ByteCache}. */
export interface ByteCacheOptions {
  /** The most bytes the cache may hold (and have reserved) at once. */
  capacity: number;
  /** The eviction policy (default {@link DEFAULT_POLICY}). */
  policy?: PolicyName;
}

/** Room held for one value while it loads; settle it exactly once. */
export interface Reservation<V> {
  /** The bytes held. */
  readonly size: number;
  /** Admits the loaded value in the room held (replacing any value under the same key). */
  commit(value: V): void;
  /** Gives the room back: the load failed or was abandoned. */
  release(): void;
}

/**
 * A byte-bounded cache of values whose sizes are known before they are loaded.
 * @example
 * ```ts
 * import { ByteCache } from "./cache.ts";
 * const cache = new ByteCache<string, Uint8Array>({ capacity: 1024, policy: "lru" });
 * const room = cache.reserve("a.txt", 600);
 * room?.commit(new Uint8Array(600));
 * cache.get("a.txt")?.length; // 600
 * cache.reserve("b.txt", 600); // evicts a.txt to make room
 * cache.reserve("c.txt", 2048); // undefined: larger than the whole cache
 * ```
 */
export class ByteCache<K, V> {
  /** The most bytes held and reserved at once. */
  readonly capacity: number;
  /** The eviction policy's name. */
  readonly policy: PolicyName;
  readonly #entries = new Map<K, { value: V; size: number }>();
  readonly #order: Policy<K>;
  #used = 0;
  #reserved = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(options: ByteCacheOptions) {
    if (!Number.isSafeInteger(options.capacity) || options.capacity < 0) {
      throw new RangeError(`a cache capacity is a whole number of bytes, not ${options.capacity}`);
    }
    this.capacity = options.capacity;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.#order = createPolicy<K>(this.policy, options.capacity);
  }

  /** Bytes of the values held. */
  get used(): number {
    return this.#used;
  }

  /** Bytes reserved for loads in progress. */
  get reserved(): number {
    return this.#reserved;
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
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * cache.get("a"); // undefined, and cache.misses is 1
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
    return entry.value;
  }

  /**
   * The value under `key`, without counting a lookup or telling the policy.
   * @example
   * ```ts
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * cache.reserve("a", 1)?.commit("x");
   * cache.peek("a"); // "x", and cache.hits is still 0
   * ```
   */
  peek(key: K): V | undefined {
    return this.#entries.get(key)?.value;
  }

  /**
   * True when a value is held under `key`.
   * @example
   * ```ts
   * import { ByteCache } from "./cache.ts";
   * new ByteCache<string, string>({ capacity: 10 }).has("a"); // false
   * ```
   */
  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /**
   * The keys held, oldest admission first.
   * @example
   * ```ts
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * cache.reserve("a", 1)?.commit("x");
   * [...cache.keys()]; // ["a"]
   * ```
   */
  keys(): IterableIterator<K> {
    return this.#entries.keys();
  }

  /**
   * Drops the value under `key` (a stale or deleted file, say); true if one was held.
   * @example
   * ```ts
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * cache.reserve("a", 4)?.commit("abcd");
   * cache.delete("a"); // true, and cache.used is 0
   * ```
   */
  delete(key: K): boolean {
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    this.#entries.delete(key);
    this.#used -= entry.size;
    this.#order.remove(key);
    return true;
  }

  /**
   * Holds `size` bytes for a value about to be loaded under `key`, evicting values as the policy
   * orders until there is room. Returns undefined, evicting nothing, when the value can never fit:
   * it is larger than the whole cache, or the rest is reserved by other loads. Values being
   * loaded are never evicted: they are not in the cache until committed.
   * @example
   * ```ts
   * import { ByteCache } from "./cache.ts";
   * const cache = new ByteCache<string, string>({ capacity: 10 });
   * const room = cache.reserve("a", 8)!;
   * cache.reserve("b", 8); // undefined: 8 of the 10 bytes are reserved
   * room.release();
   * cache.reserve("b", 8)?.commit("12345678");
   * ```
   */
  reserve(key: K, size: number): Reservation<V> | undefined {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`a value's size is a whole number of bytes, not ${size}`);
    }
    if (this.#reserved + size > this.capacity) return undefined;
    while (this.#used + this.#reserved + size > this.capacity) this.#evictOne();
    this.#reserved += size;
    let settled = false;
    const settle = () => {
      if (settled) throw new Error("a cache reservation was settled twice");
      settled = true;
      this.#reserved -= size;
    };
    return {
      size,
      commit: (value: V) => {
        settle();
        this.delete(key);
        this.#entries.set(key, { value, size });
        this.#used += size;
        this.#order.insert(key, size);
      },
      release: settle,
    };
  }

  #evictOne(): void {
    const key = this.#order.evict();
    const entry = this.#entries.get(key);
    if (entry === undefined) throw new Error("the eviction policy named a key the cache lacks");
    this.#entries.delete(key);
    this.#used -= entry.size;
    this.#evictions++;
  }
}
