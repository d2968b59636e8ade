/**
 * Text from elsewhere made safe to show to a person, on a terminal or in a log line: the one rule
 * for what must be escaped, which the server's log and the client's output both apply.
 */

/**
 * Every character that is not a letter, mark, number, punctuation, symbol or the plain space:
 * what could drive a terminal or mislead whoever reads a line. That is the controls (C0 such as
 * escape and newline, DEL, C1 such as U+0085 NEXT LINE and U+009B, a terminal's CSI), the format
 * characters (the bidirectional overrides and isolates such as U+202E, zero-width spaces and
 * joiners, the byte-order mark, tags), the line and paragraph separators, every space but U+0020
 * (each looks like one), lone surrogates, and private-use and unassigned code points (which a
 * font may draw as anything).
 */
const UNSAFE = /[[\p{C}\p{Z}]--[ ]]/gv;

/**
 * `text` with every character in {@link UNSAFE} written as JSON's `\uXXXX` escape (two for one
 * beyond U+FFFF), so no one can set a terminal's title, clear the screen, add a line to one
 * promised as one, or make a name read backwards. With `multiline` (a help text), newlines are
 * kept. The escapes are JSON's, so it may be applied to JSON text written without spaces between
 * its tokens (`JSON.stringify`'s): the JSON still reads as the same value.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { printable } from "./printable.ts";
 * equal(printable("no\x1b]0;pwned\x07\nway"), "no\\u001b]0;pwned\\u0007\\u000away");
 * equal(printable("one\ntwo\x1b[2J", { multiline: true }), "one\ntwo\\u001b[2J");
 * equal(printable("a\u2028b\u202ec\u0085d\u{e0041}"), "a\\u2028b\\u202ec\\u0085d\\udb40\\udc41");
 * equal(printable("née 漢字 😀"), "née 漢字 😀");
 * equal(JSON.parse(printable(JSON.stringify("a\u202eb\u009b"))), "a\u202eb\u009b");
 * ```
 */
export function printable(text: string, { multiline = false } = {}): string {
  return text.replace(UNSAFE, (c) => multiline && c === "\n" ? c : escapes(c));
}

/** `\uXXXX` for each UTF-16 code unit of `c`. */
function escapes(c: string): string {
  let out = "";
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`;
  return out;
}
