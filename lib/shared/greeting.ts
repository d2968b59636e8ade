/**
 * What the server sends first on every connection, in either dialect: the greeting, or instead,
 * when it is at one of its limits, the busy text (docs/PROTOCOL.md, Connection start).
 */

const encoder = new TextEncoder();
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** The greeting the server sends on every connection, in both dialects (30 bytes). */
export const GREETING = encoder.encode("OK@Welcome to the File Server.");
/** What the busy text, sent instead of the greeting, starts with; the original client prints it. */
const BUSY_PREFIX = "DISCONNECTED@";

/**
 * The text a server at one of its limits sends instead of the greeting, in words both dialects'
 * clients understand; `why` says which limit.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { encodeBusy, readBusy } from "./greeting.ts";
 * const text = encodeBusy("2 connections are open");
 * equal(new TextDecoder().decode(text), "DISCONNECTED@Server busy: 2 connections are open; try again later.");
 * equal(readBusy(text), "2 connections are open; try again later.");
 * ```
 */
export function encodeBusy(why: string): Uint8Array {
  return encoder.encode(`${BUSY_PREFIX}Server busy: ${why}; try again later.`);
}

/** The reason in a busy text (what follows "Server busy: "), or undefined if `bytes` is none. */
export function readBusy(bytes: Uint8Array): string | undefined {
  const text = lenientDecoder.decode(bytes);
  if (!text.startsWith(BUSY_PREFIX)) return undefined;
  return text.slice(BUSY_PREFIX.length).replace(/^Server busy: /, "").trim();
}
