/**
 * The counters of the cache shared by threads, as any thread may read them: the coordinator
 * writes them to shared memory after each message it deals with, so a worker reads figures at
 * most a message behind.
 */

import type { CacheView, PolicyName } from "../../cache/cache.ts";
import { FIGURES } from "./messages.ts";

/** The keys a thread knows the cache holds. */
interface Keys {
  has(key: string): boolean;
  keys(): IterableIterator<string>;
}

/** A {@link CacheView} over the figures in `figures` and the keys of `keys`. */
export class FiguresView implements CacheView<string> {
  readonly capacity: number;
  readonly policy: PolicyName;
  readonly #figures: Float64Array<SharedArrayBuffer>;
  readonly #keys: Keys;

  constructor(capacity: number, policy: PolicyName, figures: SharedArrayBuffer, keys: Keys) {
    this.capacity = capacity;
    this.policy = policy;
    this.#figures = new Float64Array(figures);
    this.#keys = keys;
  }

  get used(): number {
    return this.#figures[FIGURES.indexOf("used")];
  }

  get reserved(): number {
    return this.#figures[FIGURES.indexOf("reserved")];
  }

  get pinned(): number {
    return this.#figures[FIGURES.indexOf("pinned")];
  }

  get size(): number {
    return this.#figures[FIGURES.indexOf("size")];
  }

  get hits(): number {
    return this.#figures[FIGURES.indexOf("hits")];
  }

  get misses(): number {
    return this.#figures[FIGURES.indexOf("misses")];
  }

  get evictions(): number {
    return this.#figures[FIGURES.indexOf("evictions")];
  }

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  keys(): IterableIterator<string> {
    return this.#keys.keys();
  }
}
