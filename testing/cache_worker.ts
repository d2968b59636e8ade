/**
 * A worker thread with a FileStore on the cache shared by threads, for the tests and the
 * benchmarks: it joins the coordinator at the port it is started with and answers calls from
 * its parent (cache_workers.ts), one message each: `{ id, call, args }`, answered
 * `{ id, result }` or `{ id, error }`.
 */

import type { Found } from "../lib/server/store/backend.ts";
import { readWhole } from "../lib/server/store/body.ts";
import { type FileBody, FileStore } from "../lib/server/store/store.ts";
import { SharedCache } from "../lib/server/store/threads/shared.ts";
import { SHA256, XXH3_128 } from "../lib/shared/digest.ts";
import { churn, readEach, timed } from "./requests.ts";

let cache: SharedCache;
let store: FileStore;
/** Bodies opened and not yet closed, by the number their opener gave. */
const bodies = new Map<number, FileBody>();

/** A stamp for a file the benchmarks make up: no file on disk, only the cache is exercised. */
function madeUp(size: number) {
  return { size, mtimeMs: 1, ctimeMs: 1, ino: 1, dev: 1 };
}

const calls = {
  async start(port: MessagePort, root: string) {
    cache = await SharedCache.connect(port);
    store = new FileStore({ root, cache });
  },
  open(id: number, name: string) {
    const body = store.open(name, SHA256);
    bodies.set(id, body);
    return { source: body.source, size: body.stamp.size };
  },
  read: (id: number) => readWhole(bodies.get(id)!),
  digest: (id: number) => bodies.get(id)!.digest(),
  close(id: number) {
    bodies.get(id)![Symbol.dispose]();
    bodies.delete(id);
  },
  /** Opens, reads and closes `name`: its source, bytes and SHA-256. */
  async fetch(name: string) {
    using body = store.open(name, SHA256);
    return { source: body.source, bytes: await readWhole(body), digest: await body.digest() };
  },
  /** Fetches `count` files of `names` at random, `parallel` at a time (see requests.ts). */
  churn: (names: string[], count: number, parallel: number, seed: number) =>
    churn(store, names, count, parallel, seed),
  /** Microseconds per file to read each of `names`, one after another (see requests.ts). */
  readEach: (names: string[]) => readEach(store, names),
  flush: () => cache.flush(),
  diskReads: () => store.diskReads,
  /** Nanoseconds per open and close of `name`, cached: what a hit costs a request here. */
  opens: (name: string, count: number) =>
    timed(count, 64, () => store.open(name, SHA256)[Symbol.dispose]()),
  /** Nanoseconds per hit on made-up `key` (cached, of `size` bytes): lookup, hold, release. */
  hits: (key: string, size: number, count: number) =>
    timed(
      count,
      64,
      () => (cache.find(key, madeUp(size)) as Found & { kind: "hit" }).held.release(),
    ),
  /**
   * Microseconds per miss on made-up keys `prefix`0 … of `size` bytes, one at a time: the
   * coordinator's answer (room to load into), then the load's end told and the hold let go of.
   */
  async misses(prefix: string, size: number, count: number) {
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const found = await cache.find(`${prefix}${i}`, madeUp(size));
      if (found.kind !== "load") throw new Error(`a miss was answered ${found.kind}`);
      found.held.progress.finish(XXH3_128, new Uint8Array(XXH3_128.bytes));
      found.settle(true);
      found.held.release();
    }
    return (performance.now() - started) * 1000 / count;
  },
  /** Begins to load made-up `key` and keeps it going: the time (ms since the epoch) it is asked. */
  async begin(key: string, size: number) {
    const found = await cache.find(key, madeUp(size));
    if (found.kind !== "load") throw new Error(`a miss was answered ${found.kind}`);
    loading.set(key, found);
  },
  /** Ends the load `begin` began: the time it ended, ms since the epoch. */
  end(key: string) {
    const found = loading.get(key)!;
    loading.delete(key);
    const ended = performance.timeOrigin + performance.now();
    found.held.progress.finish(XXH3_128, new Uint8Array(XXH3_128.bytes));
    found.settle(true);
    found.held.release();
    return ended;
  },
  /**
   * Asks for made-up `key`, which another worker is loading: how long the answer (join) took,
   * in µs. The reader then waits for the load to end (see woken).
   */
  async join(key: string, size: number) {
    const started = performance.now();
    const found = await cache.find(key, madeUp(size));
    if (found.kind !== "join") throw new Error(`a miss was answered ${found.kind}`);
    const answered = (performance.now() - started) * 1000;
    waiting.set(
      key,
      found.held.progress.filledPast(size).then(() => {
        found.held.release();
        return performance.timeOrigin + performance.now();
      }),
    );
    return answered;
  },
  /** When the reader `join` began learnt that its load ended, ms since the epoch. */
  woken: (key: string) => waiting.get(key)!,
};

const loading = new Map<string, Found & { kind: "load" }>();
const waiting = new Map<string, Promise<number>>();

/** This thread as its parent sees it. */
const parent = globalThis as unknown as { postMessage(message: unknown): void };

globalThis.addEventListener("message", async (event) => {
  const { id, call, args } = (event as MessageEvent).data as {
    id: number;
    call: keyof typeof calls;
    args: unknown[];
  };
  try {
    const result = await (calls[call] as (...args: unknown[]) => unknown)(...args);
    parent.postMessage({ id, result });
  } catch (error) {
    const { message, code } = error as { message?: string; code?: number };
    parent.postMessage({ id, error: { message: message ?? String(error), code } });
  }
});
