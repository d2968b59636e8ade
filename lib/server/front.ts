/**
 * The front of a JS `Map` or `Set` used as a queue (insertion order is the queue, oldest first).
 */

/**
 * The oldest key of a `Map` or `Set` used as a queue, for a caller that deletes each key it takes
 * before taking the next. A fresh iterator would step over every deleted entry V8 still keeps at
 * the front of the table, making each take cost time in proportion to the queue's length; one
 * live iterator steps over each deleted entry once, so a take is O(1) amortised.
 */
export class Front<K> {
  readonly #keys: () => Iterator<K>;
  #iterator: Iterator<K> | undefined;

  constructor(keys: () => Iterator<K>) {
    this.#keys = keys;
  }

  /**
   * The oldest key; throws when the queue is empty.
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Front } from "./front.ts";
   * const queue = new Set(["a", "b"]);
   * const front = new Front(() => queue.values());
   * const oldest = front.take();
   * equal(oldest, "a");
   * queue.delete(oldest);
   * equal(front.take(), "b");
   * ```
   */
  take(): K {
    for (let fresh = false;; fresh = true) {
      this.#iterator ??= this.#keys();
      const step = this.#iterator.next();
      if (!step.done) return step.value;
      this.#iterator = undefined; // an iterator that is done stays done, even as keys arrive
      if (fresh) throw new Error("took from an empty queue");
    }
  }
}
