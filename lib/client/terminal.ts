/**
 * Text from a server, made safe to print: a server is not trusted to drive the user's terminal.
 */

/**
 * What could drive a terminal or change how a line reads: C0 controls (escape, bell, newline…),
 * DEL, C1 controls, Unicode's line and paragraph separators, and the bidirectional embeddings,
 * overrides and isolates.
 */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]/g;

/**
 * `text` from a server with every character in {@link UNSAFE} written as a `\uXXXX` escape, so a
 * server can neither set the terminal's title, clear the screen, add a line to one promised as
 * one, nor reverse what follows. With `multiline` (a help text), newlines are kept. The escapes
 * are JSON's, so it may be applied to JSON text: the JSON still reads as the same value.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { printable } from "./terminal.ts";
 * equal(printable("no\x1b]0;pwned\x07\nway"), "no\\u001b]0;pwned\\u0007\\u000away");
 * equal(printable("one\ntwo\x1b[2J", { multiline: true }), "one\ntwo\\u001b[2J");
 * equal(JSON.parse(printable(JSON.stringify("a\u202eb\u009b"))), "a\u202eb\u009b");
 * ```
 */
export function printable(text: string, { multiline = false } = {}): string {
  return text.replace(
    UNSAFE,
    (c) => multiline && c === "\n" ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
