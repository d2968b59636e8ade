/**
 * The headers of the entries of the cache shared by threads, in one SharedArrayBuffer every
 * thread sees: for each entry, the readers holding it, whether it is gone, how far its load has
 * come and the digest the load worked out. Readers take and let go of holds here without a word
 * to the coordinator; the coordinator alone marks an entry gone, and by one atomic step, so from
 * then on no reader can take a new hold on it, and it knows how many still hold it.
 *
 * A slot is 64 bytes, eight 64-bit words:
 *
 * - 0, the hold word: the slot's generation × 2^25 + gone × 2^24 + holds (below 2^24). The
 *   generation counts the entries the slot has had, so a reader whose news of a slot is old
 *   cannot take hold of the entry that has it now.
 * - 1, the fill word: bytes loaded so far; {@link DONE} once the load is confirmed whole;
 *   {@link FAILED} if it failed.
 * - 2, the error code of a failed load (ErrorCode).
 * - 3, the wire id of the digest's algorithm (0: none yet).
 * - 4 to 7, the digest's bytes.
 */

import type { DigestAlgorithm } from "../../../shared/digest.ts";
import { type ErrorCode, WireError } from "../../../shared/errors.ts";
import { quote } from "../../../shared/names.ts";
import type { Progress } from "../load.ts";
import { changed } from "../version.ts";

/** Bytes of one slot. */
export const SLOT_BYTES = 64;
const WORDS = SLOT_BYTES / 8;
const GONE = 1n << 24n;
const HOLDS = GONE - 1n;
const GENERATION = 25n;
/** The fill word of a load confirmed whole. */
const DONE = -1n;
/** The fill word of a load that failed. */
const FAILED = -2n;

/**
 * What the top bits of the hold word (above the holds) are while the entry of generation
 * `generation` is live: worked out once, as a hit checks it.
 */
export function liveTag(generation: number): bigint {
  return BigInt(generation) << 1n;
}

/** What is left of an entry once a reader let go. */
export type Left = "held" | "unheld" | "dropped";

/** The slots of one SharedArrayBuffer. */
export class Slots {
  readonly #words: BigInt64Array<SharedArrayBuffer>;
  readonly #bytes: Uint8Array<SharedArrayBuffer>;

  constructor(buffer: SharedArrayBuffer) {
    this.#words = new BigInt64Array(buffer);
    this.#bytes = new Uint8Array(buffer);
  }

  /** How many slots `buffer` holds. */
  get count(): number {
    return this.#words.length / WORDS;
  }

  /**
   * The coordinator: gives `slot` a new entry (of the next generation), held `holds` times, its
   * load not begun; returns the generation.
   */
  open(slot: number, holds: number): number {
    const at = slot * WORDS;
    const generation = Number(Atomics.load(this.#words, at) >> GENERATION) + 1;
    for (let word = 1; word < WORDS; word++) Atomics.store(this.#words, at + word, 0n);
    Atomics.store(this.#words, at, (BigInt(generation) << GENERATION) + BigInt(holds));
    return generation;
  }

  /**
   * Takes a hold on the entry `live` names (liveTag) in `slot`, unless it is gone (or the slot
   * has moved on to another entry). True if the hold was taken.
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { liveTag, SLOT_BYTES, Slots } from "./slots.ts";
   * const slots = new Slots(new SharedArrayBuffer(SLOT_BYTES));
   * const live = liveTag(slots.open(0, 0));
   * equal(slots.hold(0, live), true);
   * equal(slots.gone(0), 1); // one reader holds it still
   * equal(slots.hold(0, live), false); // and no one else can now
   * equal(slots.release(0, 1), "dropped"); // the last reader tells the coordinator
   * ```
   */
  hold(slot: number, live: bigint): boolean {
    const at = slot * WORDS;
    for (;;) {
      const word = Atomics.load(this.#words, at);
      if (word >> 24n !== live) return false;
      if (Atomics.compareExchange(this.#words, at, word, word + 1n) === word) return true;
    }
  }

  /** The coordinator: adds `count` holds for readers elsewhere on an entry it knows is not gone. */
  add(slot: number, count: number): void {
    Atomics.add(this.#words, slot * WORDS, BigInt(count));
  }

  /**
   * Lets go of `count` holds on `slot`: the entry is still `held` by someone, or `unheld`, or was
   * gone and these were its last holds, so it can be `dropped`.
   */
  release(slot: number, count: number): Left {
    const before = Atomics.sub(this.#words, slot * WORDS, BigInt(count));
    const after = before - BigInt(count);
    if ((after & HOLDS) !== 0n) return "held";
    return after & GONE ? "dropped" : "unheld";
  }

  /** The coordinator: marks the entry in `slot` gone; returns how many readers hold it still. */
  gone(slot: number): number {
    return Number(Atomics.or(this.#words, slot * WORDS, GONE) & HOLDS);
  }

  /** How many readers hold the entry in `slot`. */
  holds(slot: number): number {
    return Number(Atomics.load(this.#words, slot * WORDS) & HOLDS);
  }

  /**
   * The progress of the load of `name` into `slot`, as its loader and every reader see it. The
   * loader's own (`loader`) also wakes the readers that share it without a round through the
   * runtime: waking a wait in shared memory takes tens of microseconds even in one thread.
   */
  progress(slot: number, name: string, loader = false): Progress {
    return new SlotProgress(this.#words, this.#bytes, slot * WORDS, name, loader);
  }
}

/** A load's progress in its slot: readers in any thread wait on the fill word changing. */
class SlotProgress implements Progress {
  readonly #words: BigInt64Array<SharedArrayBuffer>;
  readonly #bytes: Uint8Array<SharedArrayBuffer>;
  readonly #at: number;
  readonly #name: string;
  /** Readers sharing the loader's progress, waiting for its next step; undefined for others. */
  #waiters: (() => void)[] | undefined;
  /** The failure itself, for readers in the loader's thread (others learn only its code). */
  #error: WireError | undefined;

  constructor(
    words: BigInt64Array<SharedArrayBuffer>,
    bytes: Uint8Array<SharedArrayBuffer>,
    at: number,
    name: string,
    loader: boolean,
  ) {
    this.#words = words;
    this.#bytes = bytes;
    this.#at = at;
    this.#name = name;
    if (loader) this.#waiters = [];
  }

  async filledPast(position: number): Promise<number> {
    for (;;) {
      const fill = Atomics.load(this.#words, this.#at + 1);
      if (fill === DONE) return Infinity;
      if (fill === FAILED) throw this.#error ?? this.#failure();
      if (fill > position) return Number(fill);
      const waiters = this.#waiters;
      await (waiters ? new Promise<void>((resolve) => waiters.push(resolve)) : this.#changed(fill));
    }
  }

  advance(filled: number): void {
    this.#set(BigInt(filled));
  }

  finish(algorithm: DigestAlgorithm, digest: Uint8Array): void {
    this.#bytes.set(digest, (this.#at + 4) * 8);
    Atomics.store(this.#words, this.#at + 3, BigInt(algorithm.id));
    this.#set(DONE);
  }

  fail(error: WireError): void {
    this.#error = error;
    Atomics.store(this.#words, this.#at + 2, BigInt(error.code));
    this.#set(FAILED);
  }

  digest(algorithm: DigestAlgorithm): Uint8Array | undefined {
    if (Atomics.load(this.#words, this.#at + 3) !== BigInt(algorithm.id)) return undefined;
    const from = (this.#at + 4) * 8;
    return this.#bytes.slice(from, from + algorithm.bytes);
  }

  /** The fill word becomes `fill`, and every reader waiting on it, in any thread, is woken. */
  #set(fill: bigint): void {
    Atomics.store(this.#words, this.#at + 1, fill);
    Atomics.notify(this.#words, this.#at + 1);
    const waiters = this.#waiters;
    if (waiters) this.#waiters = [];
    for (const wake of waiters ?? []) wake();
  }

  /**
   * Resolves once the fill word is no longer `fill`. A wait in shared memory does not keep the
   * thread's event loop running, so a timer does meanwhile: a thread whose only work is waiting
   * for another's load would otherwise end.
   */
  async #changed(fill: bigint): Promise<void> {
    const wait = Atomics.waitAsync(this.#words, this.#at + 1, fill);
    if (!wait.async) return;
    const alive = setInterval(() => {}, 60_000);
    try {
      await wait.value;
    } finally {
      clearInterval(alive);
    }
  }

  /** The failure of a load in another thread, from its code. */
  #failure(): WireError {
    const code = Number(Atomics.load(this.#words, this.#at + 2)) as ErrorCode;
    const failure = changed(this.#name);
    return code === failure.code
      ? failure
      : new WireError(code, `cannot read ${quote(this.#name)}`);
  }
}
