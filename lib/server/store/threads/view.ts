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

/**
 * A {@link CacheView} whose counters are read from `figures` (a Float64Array's memory, in the
 * order of FIGURES) as they are asked for, and whose keys are those of `keys`.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { FIGURES } from "./messages.ts";
 * import { figuresView } from "./view.ts";
 * const figures = new SharedArrayBuffer(FIGURES.length * 8);
 * const view = figuresView(100, "sieve", figures, new Map());
 * new Float64Array(figures)[FIGURES.indexOf("used")] = 40;
 * equal(view.used, 40);
 * ```
 */
export function figuresView(
  capacity: number,
  policy: PolicyName,
  figures: SharedArrayBuffer,
  keys: Keys,
): CacheView<string> {
  const values = new Float64Array(figures);
  const view = { capacity, policy, has: (key: string) => keys.has(key), keys: () => keys.keys() };
  for (const [i, name] of FIGURES.entries()) {
    Object.defineProperty(view, name, { get: () => values[i], enumerable: true });
  }
  return view as typeof view & Record<typeof FIGURES[number], number>;
}
