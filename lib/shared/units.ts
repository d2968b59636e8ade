/**
 * Byte sizes as people write them on a command line, and as they read them in a table.
 * Binary units (KiB, MiB, GiB) are powers of 1024; decimal ones (KB, MB, GB) powers of 1000,
 * as the SI and IEC standards define them; a bare number is bytes.
 */

const UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
};

/** The size units accepted by {@link parseSize}, for help texts. */
export const SIZE_UNITS_HELP =
  "a size is bytes (67108864) or a number with a unit: KiB, MiB, GiB are powers of 1024 " +
  "(64MiB = 67108864); KB, MB, GB are powers of 1000 (64MB = 64000000)";

/**
 * Parses "67108864", "64MiB", "64MB", "1.5GiB" into a whole number of bytes.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { parseSize } from "./units.ts";
 * equal(parseSize("64MiB"), 67108864);
 * equal(parseSize("64MB"), 64000000);
 * ```
 */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = match ? UNITS[match[2].toUpperCase()] : undefined;
  if (!match || unit === undefined) {
    throw new RangeError(`"${text}" is not a size; ${SIZE_UNITS_HELP}`);
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`"${text}" is too large a size`);
  return bytes;
}

/**
 * Formats a byte count for people: "912 B", "1.5 KiB", "64.0 MiB".
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { formatBytes } from "./units.ts";
 * equal(formatBytes(67108864), "64.0 MiB");
 * equal(formatBytes(912), "912 B");
 * ```
 */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${value.toFixed(1)} ${units[i]}`;
}
