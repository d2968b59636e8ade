/**
 * Cross-origin reads (`--cors`), as the Fetch standard has a browser ask for them: a page of
 * another origin may read the answers when the server names its origin (or `*`) in
 * `Access-Control-Allow-Origin`, and may send a token or a range only after a preflight OPTIONS
 * request is answered with the methods and fields it may use. Without `--cors` no such field is
 * sent and browsers keep other origins' pages from reading anything.
 */

import type { Field, RequestHead } from "./message.ts";

/**
 * The value of `Access-Control-Allow-Origin` for `head`, given the origins allowed (`["*"]` for
 * any); undefined when no field is due: cross-origin reads are off, or the request comes from an
 * origin not allowed (or from no page at all, for a list of origins).
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { allowedOrigin } from "./cors.ts";
 * import { parseRequestHead } from "./message.ts";
 * const from = (origin: string) =>
 *   parseRequestHead(new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: a\r\nOrigin: ${origin}\r\n\r\n`));
 * equal(allowedOrigin(from("https://app.example"), ["*"]), "*");
 * equal(allowedOrigin(from("https://app.example"), ["https://app.example"]), "https://app.example");
 * equal(allowedOrigin(from("https://evil.example"), ["https://app.example"]), undefined);
 * equal(allowedOrigin(from("https://app.example"), undefined), undefined);
 * ```
 */
export function allowedOrigin(head: RequestHead, allowed?: string[]): string | undefined {
  if (allowed === undefined) return undefined;
  if (allowed.includes("*")) return "*";
  const origin = head.headers.get("origin");
  return origin !== undefined && allowed.includes(origin) ? origin : undefined;
}

/** True when `head` is a browser's preflight: OPTIONS asking whether a method may be used. */
export function isPreflight(head: RequestHead): boolean {
  return head.method === "OPTIONS" && head.headers.has("access-control-request-method");
}

/** Fields a page of another origin reads besides the few every answer shows it. */
const EXPOSED = [
  "Content-Disposition",
  "Content-Length",
  "Content-Range",
  "Accept-Ranges",
  "ETag",
  "Repr-Digest",
  "Digest",
  "WWW-Authenticate",
].join(", ");

/** Fields a page may send: a token, a range and the validators (each needs a preflight). */
const ALLOWED_HEADERS = "Authorization, Range, If-Range, If-None-Match, If-Modified-Since";

/**
 * The fields that let `origin`'s pages read an answer. A list of origins makes the answer depend
 * on the request's Origin, which `Vary` tells caches.
 */
export function corsFields(origin: string): Field[] {
  const fields: Field[] = [
    ["Access-Control-Allow-Origin", origin],
    ["Access-Control-Expose-Headers", EXPOSED],
  ];
  if (origin !== "*") fields.push(["Vary", "Origin"]);
  return fields;
}

/**
 * The fields of a preflight's answer: GET and HEAD, with a token, a range and validators, for
 * a day (so a page asks once, not before every request).
 */
export function preflightFields(origin: string): Field[] {
  return [
    ...corsFields(origin),
    ["Access-Control-Allow-Methods", "GET, HEAD"],
    ["Access-Control-Allow-Headers", ALLOWED_HEADERS],
    ["Access-Control-Max-Age", "86400"],
  ];
}
