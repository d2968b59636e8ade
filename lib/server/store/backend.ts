/**
 * What the file store asks of a cache: the one thread's own (local.ts), or one shared by worker
 * threads (shared.ts, coordinator.ts). The store's code is the same over either.
 */

import type { CacheView } from "../cache/cache.ts";
import type { Held } from "./load.ts";
import type { Stamp } from "./version.ts";

/**
 * Where the bytes of a requested file come from, as the cache decides: `hit`, its memory (held for
 * the caller); `join`, the memory a load under way fills (held); `load`, memory reserved for the
 * caller to fill (held), after which it calls `settle` (true once filled, false if the load
 * failed); `stream`, no room: the caller reads the file from disk, uncached.
 */
export type Found =
  | { kind: "hit" | "join"; held: Held }
  | { kind: "load"; held: Held; settle(loaded: boolean): void }
  | { kind: "stream" };

/** A cache of whole files, by their real names, with the byte accounting of ByteCache. */
export interface CacheBackend {
  /** Its counters and the keys it holds. */
  readonly view: CacheView<string>;
  /**
   * Looks `key` up for a request of version `stamp`, counting a hit or a miss; a cached copy of
   * another version is dropped first, never served. Answers at once when it can (always, in one
   * thread), else once it knows.
   */
  find(key: string, stamp: Stamp): Found | Promise<Found>;
  /** The cached copy of `key` if it is version `stamp`, held, without counting a lookup. */
  peek(key: string, stamp: Stamp): Held | undefined;
  /** Whether `key` is cached as version `stamp`, without counting a lookup or holding it. */
  has(key: string, stamp: Stamp): boolean;
  /** Drops `key`: its file is gone from disk, or can no longer be served. */
  delete(key: string): void;
}
