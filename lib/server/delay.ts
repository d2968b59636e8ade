/**
 * The delay before a failed attempt (a wrong access token) is answered, growing with the failures
 * from the same host: an honest mistake costs a fraction of a second, while guessing from one
 * address slows to one guess every few seconds per connection it may hold.
 */

/** The delay after a host's first failure; each further failure doubles it. */
const FIRST_MS = 200;
/** The longest delay, well within the client's default timeout (30 s). */
const MAX_MS = 5000;
/** A host with no failure for this long starts again from FIRST_MS. */
const FORGET_MS = 10 * 60 * 1000;
/** The most hosts remembered: past this, the one whose last failure is oldest is forgotten. */
const MAX_HOSTS = 10_000;

/**
 * Failures per host, and the delay each one earns. Memory is bounded: a host is forgotten once it
 * has been quiet for ten minutes, and at most MAX_HOSTS are remembered, so a flood of addresses
 * costs a fixed amount.
 * @example
 * ```ts
 * import { deepEqual, equal } from "node:assert/strict";
 * import { FailureDelay } from "./delay.ts";
 * let now = 0;
 * const delay = new FailureDelay(() => now);
 * deepEqual([1, 2, 3, 4, 5, 6, 7].map(() => delay.fail("192.0.2.7")), [200, 400, 800, 1600, 3200, 5000, 5000]);
 * equal(delay.fail("198.51.100.1"), 200); // each host on its own
 * now += 10 * 60 * 1000;
 * equal(delay.fail("192.0.2.7"), 200); // quiet for ten minutes: forgotten
 * ```
 */
export class FailureDelay {
  /** Each host's failures and when the last one was; in order of last failure, oldest first. */
  readonly #hosts = new Map<string, { failures: number; last: number }>();
  readonly #now: () => number;

  /** `now` is the clock (ms), for tests. */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Counts a failure from `host`, and returns how long (ms) to wait before answering it. */
  fail(host: string): number {
    const now = this.#now();
    for (const [known, { last }] of this.#hosts) {
      if (now - last < FORGET_MS) break;
      this.#hosts.delete(known);
    }
    const failures = (this.#hosts.get(host)?.failures ?? 0) + 1;
    this.#hosts.delete(host); // set again below, so it moves to the end of the order
    this.#hosts.set(host, { failures, last: now });
    if (this.#hosts.size > MAX_HOSTS) this.#hosts.delete(this.#hosts.keys().next().value!);
    return Math.min(MAX_MS, FIRST_MS * 2 ** (failures - 1));
  }
}
