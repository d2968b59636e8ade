/**
 * Writing a whole buffer to something that may take only part of it per call: sockets, files,
 * standard output; and joining buffers into one.
 */

/** Something bytes can be written to, a few at a time, as a Deno.Conn or a Deno.FsFile. */
export interface Writer {
  write(bytes: Uint8Array): Promise<number>;
}

/**
 * Writes every byte of `bytes` to `writer`, however few each call takes.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { writeAll } from "./io.ts";
 * const seen: number[] = [];
 * const oneAtATime = { write: (bytes: Uint8Array) => Promise.resolve(seen.push(bytes[0]) && 1) };
 * await writeAll(oneAtATime, new Uint8Array([1, 2, 3]));
 * deepEqual(seen, [1, 2, 3]);
 * ```
 */
export async function writeAll(writer: Writer, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await writer.write(bytes.subarray(at));
}

/**
 * `parts` joined into one buffer, in order.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { concat } from "./io.ts";
 * deepEqual(concat([Uint8Array.of(1, 2), Uint8Array.of(), Uint8Array.of(3)]), Uint8Array.of(1, 2, 3));
 * ```
 */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const whole = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    whole.set(part, at);
    at += part.length;
  }
  return whole;
}
