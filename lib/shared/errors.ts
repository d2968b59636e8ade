/**
 * The errors both sides share: the wire error codes an ERROR frame carries, the error that carries
 * one, and the one way to put an operating system's error into words.
 */

/** Wire error codes, as sent in an ERROR frame (see docs/PROTOCOL.md). */
export const ErrorCode = {
  /** The request was malformed or named something that can never be served. */
  BadRequest: 1,
  /** No such file in the data folder. */
  NotFound: 2,
  /** A frame, name or queue exceeded its bound. */
  TooLarge: 3,
  /** The server is at its connection limit. */
  Busy: 4,
  /** Something failed on the server's side (a disk read, say). */
  Internal: 5,
  /** The file changed on disk while it was being sent; the bytes sent must be discarded. */
  Changed: 6,
  /** The peer speaks a protocol version this server does not. */
  Unsupported: 7,
  /** The connection was idle or stalled for too long. */
  Timeout: 8,
  /** The server is shutting down and takes no new requests. */
  ShuttingDown: 9,
  /** The server takes requests only from a peer that presents a valid access token. */
  Unauthorized: 10,
} as const;

/** One of the wire error codes. */
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode];

/**
 * The short lowercase name of a wire error code, for logs and messages.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ErrorCode, errorCodeName } from "./errors.ts";
 * equal(errorCodeName(ErrorCode.NotFound), "not-found");
 * equal(errorCodeName(ErrorCode.ShuttingDown), "shutting-down");
 * equal(errorCodeName(77), "code-77");
 * ```
 */
export function errorCodeName(code: number): string {
  for (const [name, value] of Object.entries(ErrorCode)) {
    if (value === code) return name.replace(/[A-Z]/g, (c, i) => (i ? "-" : "") + c.toLowerCase());
  }
  return `code-${code}`;
}

/** A failure with a wire code and a one-sentence message, safe to send to a peer. */
export class WireError extends Error {
  /** The wire code a peer sees. */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WireError";
    this.code = code;
  }
}

/**
 * Bytes from a peer that break the protocol's rules (a frame too large, a field out of range): the
 * codec throws it, and the connection cannot carry on after it.
 */
export class ProtocolError extends WireError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = "ProtocolError";
  }
}

/**
 * An error's reason in one line: the message of an Error without the "(os error N)" the runtime
 * appends to system errors, nor the operation and path it adds after that (callers say what they
 * were doing, in their own words, and a path is not for every reader); a system error from `node:`
 * modules ("ENOENT: no such file or directory, open '/a'") in the same words; or the value itself
 * as text.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { reasonOf } from "./errors.ts";
 * equal(reasonOf(new Error("Connection refused (os error 111)")), "Connection refused");
 * equal(reasonOf(new Error("No such file or directory (os error 2): readfile '/a b'")), "No such file or directory");
 * equal(reasonOf(new Error("EACCES: permission denied, open '/a, b'")), "Permission denied");
 * equal(reasonOf("plain"), "plain");
 * ```
 */
export function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const node = /^E[A-Z0-9]+: (.+?), \w+( '.*')?$/.exec(error.message);
  if (node) return node[1][0].toUpperCase() + node[1].slice(1);
  return error.message.replace(/ \(os error \d+\)(: \w+ '.*')?$/, "");
}
