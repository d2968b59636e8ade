/**
 * The buffers that hashing a file from disk reads through, a fixed few lent in turn. A request
 * that needs a digest the server has not worked out (HTTP's headers, a part of a file, a
 * listing's SHA-256) waits for one rather than take fresh memory of its own, so however many
 * clients ask at once, hashing holds at most these buffers.
 */

/** A fixed set of buffers, each lent to one piece of work at a time; the rest wait their turn. */
export class HashBuffers {
  readonly #free: Uint8Array[] = [];
  readonly #waiting: ((buffer: Uint8Array) => void)[] = [];
  readonly #bytes: number;
  #unmade: number;

  /** `count` buffers of `bytes` each, made as they are first needed. */
  constructor(count: number, bytes: number) {
    this.#unmade = count;
    this.#bytes = bytes;
  }

  /**
   * Runs `work` with a buffer of its own for as long as it runs, once one is free (first come,
   * first served). `work` must not wait for another buffer while it holds this one.
   * @example
   * ```ts
   * import { deepEqual } from "node:assert/strict";
   * import { HashBuffers } from "./hashing.ts";
   * const buffers = new HashBuffers(1, 4);
   * const order: string[] = [];
   * const step = (name: string) => (buffer: Uint8Array) => {
   *   order.push(`${name} begins`);
   *   return Promise.resolve().then(() => void order.push(`${name} ends, ${buffer.length} bytes`));
   * };
   * await Promise.all([buffers.use(step("a")), buffers.use(step("b"))]);
   * deepEqual(order, ["a begins", "a ends, 4 bytes", "b begins", "b ends, 4 bytes"]);
   * ```
   */
  async use<T>(work: (buffer: Uint8Array) => Promise<T>): Promise<T> {
    const buffer = await this.#take();
    try {
      return await work(buffer);
    } finally {
      const next = this.#waiting.shift();
      if (next) next(buffer);
      else this.#free.push(buffer);
    }
  }

  /** A free buffer, a new one while fewer than `count` are made, or else the next one given back. */
  #take(): Promise<Uint8Array> | Uint8Array {
    const free = this.#free.pop();
    if (free) return free;
    if (this.#unmade > 0) {
      this.#unmade--;
      return new Uint8Array(this.#bytes);
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}
