/**
 * The Range header (RFC 9110 §14): which part of a file a request asks for.
 */

/** A part of a file: bytes `start` up to `end`, exclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The single range `header` asks of a file of `size` bytes: a range; "unsatisfiable" when none
 * of it lies within the file (answered 416); or undefined when the header is absent, malformed,
 * or asks for several ranges, all of which are answered with the whole file, as RFC 9110 allows.
 * @example
 * ```ts
 * import { deepEqual, equal } from "node:assert/strict";
 * import { parseRange } from "./ranges.ts";
 * deepEqual(parseRange("bytes=0-99", 1000), { start: 0, end: 100 });
 * deepEqual(parseRange("bytes=900-", 1000), { start: 900, end: 1000 });
 * deepEqual(parseRange("bytes=-100", 1000), { start: 900, end: 1000 });
 * deepEqual(parseRange("bytes=500-5000", 1000), { start: 500, end: 1000 });
 * equal(parseRange("bytes=1000-", 1000), "unsatisfiable");
 * equal(parseRange("bytes=-5", 0), "unsatisfiable"); // an empty file has no last 5 bytes
 * equal(parseRange("bytes=0-1,5-9", 1000), undefined);
 * ```
 */
export function parseRange(
  header: string | undefined,
  size: number,
): ByteRange | "unsatisfiable" | undefined {
  const match = header && /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  const [first, last] = [match[1], match[2]].map((digits) =>
    digits === "" ? undefined : Number(digits)
  );
  if (first === undefined) {
    if (last === 0 || size === 0) return "unsatisfiable"; // no last bytes to give
    return { start: Math.max(0, size - last!), end: size };
  }
  if (last !== undefined && last < first) return undefined;
  if (first >= size) return "unsatisfiable";
  return { start: first, end: last === undefined ? size : Math.min(size, last + 1) };
}
