/**
 * Requests as the tests and the benchmarks make them, in one thread or in each worker sharing a
 * cache: files at random through a FileStore, and steps timed in turns.
 */

import type { FileStore } from "../lib/server/store/store.ts";
import { XXH3_128 } from "../lib/shared/digest.ts";

/**
 * Reads `count` files of `names`, drawn at random (xorshift32 from `seed`), `parallel` at a
 * time, each whole as an answer would send it; the XXH3-128 of each file read, in hex, by name.
 */
export async function churn(
  store: FileStore,
  names: readonly string[],
  count: number,
  parallel: number,
  seed: number,
): Promise<Record<string, string>> {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % names.length;
  };
  const digests: Record<string, string> = {};
  const one = async () => {
    const name = names[next()];
    using body = store.open(name, XXH3_128);
    let length = 0;
    for await (const chunk of body.chunks(0, body.stamp.size)) length += chunk.length;
    if (length !== body.stamp.size) throw new Error(`${name}: ${length} bytes read`);
    digests[name] = (await body.digest()).toHex();
  };
  for (let done = 0; done < count; done += parallel) {
    await Promise.all(Array.from({ length: Math.min(parallel, count - done) }, one));
  }
  return digests;
}

/** Microseconds per file to read each of `names` whole, one after another, with its digest. */
export async function readEach(store: FileStore, names: readonly string[]): Promise<number> {
  const started = performance.now();
  for (const name of names) {
    using body = store.open(name, XXH3_128);
    for await (const _ of body.chunks(0, body.stamp.size));
    await body.digest();
  }
  return (performance.now() - started) * 1000 / names.length;
}

/**
 * Nanoseconds per step of `count` steps, `perTurn` to a turn: what a turn saw is told (to the
 * coordinator of a shared cache) at its end, as it would be with that many requests a turn.
 */
export async function timed(
  count: number,
  perTurn: number,
  step: (i: number) => void,
): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    step(i);
    if (i % perTurn === perTurn - 1) await Promise.resolve();
  }
  return (performance.now() - started) * 1e6 / count;
}
