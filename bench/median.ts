/** The median the benchmarks report of repeated runs. */

/**
 * The middle value of `values`; of an even number of them, the mean of the two middle ones.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { median } from "./median.ts";
 * equal(median([3, 1, 2]), 2);
 * equal(median([4, 1, 3, 2]), 2.5);
 * ```
 */
export function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
