/**
 * The messages between the coordinator of the cache shared by threads (coordinator.ts, in the
 * main thread) and the cache of each worker (cache.ts). docs/CACHE.md tells the protocol.
 */

import type { PolicyName } from "../../cache/cache.ts";
import type { Stamp } from "../version.ts";
import type { Runs } from "./pages.ts";

/**
 * One end of a channel between two threads: a MessagePort, a Worker as its parent sees it, or a
 * worker's own global scope.
 */
export interface Port {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

/** Bytes of a page of the arenas: a file takes whole pages. */
export const PAGE_BYTES = 4096;

/** Where an entry lies: its slot (and the slot's generation), its pages and its size. */
export interface Placed {
  slot: number;
  generation: number;
  runs: Runs;
  size: number;
}

/** A cached entry as the workers' mirrors list it. */
export interface Listed extends Placed {
  key: string;
  stamp: Stamp;
}

/** Where the coordinator keeps its figures for the workers to read: a Float64Array's indexes. */
export const FIGURES = [
  "used",
  "reserved",
  "pinned",
  "size",
  "hits",
  "misses",
  "evictions",
] as const;

/** What the coordinator tells a worker once, as it joins. */
export interface Hello {
  kind: "hello";
  capacity: number;
  policy: PolicyName;
  /** The slots (slots.ts). */
  slots: SharedArrayBuffer;
  /** This worker's holds by slot (an Int32Array), so they can be let go of if it dies. */
  ledger: SharedArrayBuffer;
  /** The figures: a Float64Array, in the order of {@link FIGURES}. */
  figures: SharedArrayBuffer;
  /** The lock threads take turns at opening files through (version.ts). */
  openLock: SharedArrayBuffer;
  /** Pages per arena. */
  arenaPages: number;
  /** The arenas made so far, in order. */
  arenas: SharedArrayBuffer[];
  /** Every cached entry. */
  cached: Listed[];
}

/** What the coordinator answers a worker's {@link Find}. */
export type Answer =
  | { kind: "answer"; ask: number; found: "hit" | "join" | "load"; entry: Placed }
  | { kind: "answer"; ask: number; found: "stream" };

/** From the coordinator to one worker. */
export type ToWorker =
  | Hello
  | Answer
  /** A new arena, told before anything placed in it. */
  | { kind: "arena"; buffer: SharedArrayBuffer }
  /** The entries cached and gone since the last news, told to every worker once a turn. */
  | { kind: "news"; cached: Listed[]; gone: Listed[] }
  /** The answer to a flush: everything sent before it has been dealt with. */
  | { kind: "flushed"; ask: number };

/** A miss: what to do for a request for `key`, version `stamp`; answered under `ask`. */
export interface Find {
  ask: number;
  key: string;
  stamp: Stamp;
}

/**
 * All a worker tells the coordinator, once a turn, at its end: the loads it was told to make
 * that ended (slot, generation, 1 if filled whole or 0 if failed: triples), its hits (slot,
 * generation pairs), other entries whose holds it took without a hit (a peek) or let go of until
 * nobody held them (pairs: the coordinator reads their count), entries gone that it let go of
 * last (pairs), keys whose files are gone from disk, its misses, and asks for a "flushed" once
 * all this is dealt with. The coordinator deals with them in that order: what was let go of
 * first, so a miss finds the room it makes.
 */
export interface Turn {
  settled: number[];
  hits: number[];
  holds: number[];
  dropped: number[];
  deleted: string[];
  finds: Find[];
  flushes: number[];
}
