/**
 * Memory for files read into the cache, reused from the files the cache has just let go of. Every
 * page of a new buffer costs the kernel a fault and a page of zeros the first time it is written:
 * on a miss that filled a fresh 32 MiB entry, that was half the server's time (docs/PERFORMANCE.md).
 * A miss usually evicts files to make its room, so their memory, resized to fit, is what it reads
 * into. Nothing is kept beyond the turn in which it was let go, so the cache's bytes stay within
 * its cap as before: what a reservation evicts is reused by that reservation or given back at once.
 */

/** Buffers smaller than this are not worth recycling: their pages are few. */
const RECYCLE_MIN_BYTES = 1024 * 1024;

/** How far past its first size a recycled buffer may grow: its address space, not memory. */
const GROWTH = 2;

/** Buffers let go of in this turn, to be reused by the next reservation or given back. */
export class Recycler {
  #spare: ArrayBuffer[] = [];

  /**
   * Takes back the memory of a file the cache has let go of. It is kept until the end of the
   * current turn, for a reservation made in the same turn, then detached: its bytes are freed then
   * and there rather than whenever the garbage collector comes round.
   */
  give(buffer: ArrayBuffer): void {
    if (buffer.resizable && buffer.maxByteLength >= RECYCLE_MIN_BYTES) {
      if (this.#spare.push(buffer) === 1) queueMicrotask(() => this.#clear());
    } else buffer.transfer(0);
  }

  /**
   * Memory for a file of `size` bytes: a buffer let go of in this turn, resized, or else a new one.
   * The buffer with the most bytes already in place is chosen, so the fewest pages are new.
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Recycler } from "./recycle.ts";
   * const recycler = new Recycler();
   * const first = recycler.take(3 * 1024 * 1024);
   * recycler.give(first.buffer);
   * const second = recycler.take(2 * 1024 * 1024);
   * equal(second.buffer, first.buffer); // the same memory, shrunk to fit
   * equal(second.length, 2 * 1024 * 1024);
   * recycler.give(second.buffer);
   * await Promise.resolve();
   * equal(second.buffer.byteLength, 0); // not taken in the turn it was given back: freed
   * ```
   */
  take(size: number): Uint8Array<ArrayBuffer> {
    let best = -1;
    for (let i = 0; i < this.#spare.length; i++) {
      const buffer = this.#spare[i];
      if (buffer.maxByteLength < size) continue;
      if (best < 0 || buffer.byteLength > this.#spare[best].byteLength) best = i;
    }
    if (best < 0) {
      if (size < RECYCLE_MIN_BYTES) return new Uint8Array(size);
      return new Uint8Array(new ArrayBuffer(size, { maxByteLength: GROWTH * size }));
    }
    const [buffer] = this.#spare.splice(best, 1);
    buffer.resize(size);
    return new Uint8Array(buffer, 0, size);
  }

  #clear(): void {
    for (const buffer of this.#spare) buffer.transfer(0);
    this.#spare = [];
  }
}
