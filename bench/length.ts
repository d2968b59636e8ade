/**
 * How long a benchmark runs, as its command line asks: every program of bench/ takes the same two
 * flags, and bench/main.ts hands them on to each.
 */

/**
 * `full` by default: the figures the docs report. `quick` (--quick): a shorter run, its figures
 * noisier. `smoke` (--smoke): the shortest settings, a second or two of work, which only show that
 * the program still runs end to end; its figures mean nothing (`make test` runs every program so).
 */
export type Length = "full" | "quick" | "smoke";

/**
 * The length `args` ask for; --smoke wins over --quick.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { lengthOf } from "./length.ts";
 * equal(lengthOf([]), "full");
 * equal(lengthOf(["--quick"]), "quick");
 * equal(lengthOf(["--quick", "--smoke"]), "smoke");
 * ```
 */
export function lengthOf(args: readonly string[]): Length {
  if (args.includes("--smoke")) return "smoke";
  return args.includes("--quick") ? "quick" : "full";
}
