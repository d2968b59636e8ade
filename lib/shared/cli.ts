/**
 * What both command-line programs share: argument parsing that turns every mistake into one clear
 * line, and the exit codes.
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { parseSize } from "./units.ts";

/**
 * Exit codes: 0 all done, 1 a file failed, 2 usage, 3 connection trouble; 141 when the reader of
 * standard output left before the end (`| head`), as a shell reports a program SIGPIPE ended.
 */
export const Exit = { Ok: 0, Failed: 1, Usage: 2, Connection: 3, ReaderLeft: 141 } as const;

/** A mistake on the command line; the message is one sentence for the user. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The options a program accepts, in node:util parseArgs form. */
export type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses `args` strictly; unknown flags and missing values become a {@link UsageError}. */
export function parseCommandLine<T extends Options>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.split("\n")[0].replace(/\. To specify.*$/, "."));
  }
}

/**
 * Parses a whole number in [min, max] given for `flag`.
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { parseInteger } from "./cli.ts";
 * equal(parseInteger("12", "--n", 1, 100), 12);
 * throws(() => parseInteger("0", "--n", 1, 100), { name: "UsageError" });
 * ```
 */
export function parseInteger(text: string, flag: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
    throw new UsageError(`${flag} takes a whole number from ${min} to ${max}, not "${text}"`);
  }
  return value;
}

/** Parses a TCP port (0 means any free port). */
export function parsePort(text: string, flag = "--port"): number {
  return parseInteger(text, flag, 0, 65535);
}

/**
 * Parses a duration in seconds (fractions allowed) into milliseconds.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { parseSeconds } from "./cli.ts";
 * equal(parseSeconds("1.5", "--timeout"), 1500);
 * ```
 */
export function parseSeconds(text: string, flag: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`${flag} takes a number of seconds above 0, not "${text}"`);
  }
  return Math.round(value * 1000);
}

/** Parses a size in bytes ("67108864", "64MiB", "64MB") given for `flag`. */
export function parseSizeFlag(text: string, flag: string): number {
  try {
    return parseSize(text);
  } catch (error) {
    throw new UsageError(`${flag}: ${(error as Error).message}`);
  }
}
