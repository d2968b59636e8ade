/**
 * The work of a download, one request at a time, waiting for a connection to take it: a file
 * whole, a one-byte probe of a file's size and version, or a piece of a file that comes in
 * pieces.
 */

import type { FileJob, Job } from "./plan.ts";
import type { Piece } from "./split.ts";

/** One request's worth of work. Only a file saved to disk is probed or split. */
export type Work =
  | { kind: "whole"; job: Job }
  | { kind: "probe"; job: FileJob }
  | { kind: "piece"; piece: Piece };

/** Work waiting for a connection. Probes under way may add more, so a free connection waits. */
export class WorkQueue {
  readonly #items: Work[] = [];
  #probing = 0;
  #stopped = false;
  #waiting: (() => void)[] = [];

  add(...work: Work[]): void {
    this.#items.push(...work);
    this.#wake();
  }

  /** The next work waiting now, if any; pieces of a file that has failed are passed over. */
  poll(): Work | undefined {
    for (;;) {
      const work = this.#stopped ? undefined : this.#items.shift();
      if (work?.kind === "piece" && work.piece.split.failed) {
        work.piece.split.skipped();
        continue;
      }
      if (work?.kind === "probe") this.#probing++;
      return work;
    }
  }

  /** The next work; waits while probes under way may add some; undefined when none will come. */
  async take(): Promise<Work | undefined> {
    for (;;) {
      const work = this.poll();
      if (work || this.#probing === 0 || this.#stopped) return work;
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  /** A probe taken from the queue is done, having added what its file needs. */
  probed(): void {
    this.#probing--;
    this.#wake();
  }

  /** Hands out nothing more: a connection broke. */
  stop(): void {
    this.#stopped = true;
    this.#wake();
  }

  #wake(): void {
    for (const wake of this.#waiting.splice(0)) wake();
  }
}
