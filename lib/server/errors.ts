/**
 * The server's errors: the wire errors of lib/shared (with NotFoundError for files it will not
 * serve), the one conversion of any failure into something a peer may be told, and what a peer
 * going away looks like.
 */

import { ErrorCode, reasonOf, WireError } from "../shared/errors.ts";

/** The named file does not exist, or is not a regular file the server may serve. */
export class NotFoundError extends WireError {
  constructor(message: string) {
    super(ErrorCode.NotFound, message);
    this.name = "NotFoundError";
  }
}

/**
 * Any error as something a peer may be told: the server's own failures as they are, anything
 * else (a bug, an unexpected system error) as Internal, with what was being done and why it failed.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ErrorCode, WireError } from "../shared/errors.ts";
 * import { asWireError } from "./errors.ts";
 * const failure = asWireError(new Error("Input/output error (os error 5)"), 'cannot read "a"');
 * equal(failure.code, ErrorCode.Internal);
 * equal(failure.message, 'cannot read "a": Input/output error');
 * const known = new WireError(ErrorCode.NotFound, "no such file");
 * equal(asWireError(known), known);
 * ```
 */
export function asWireError(error: unknown, doing = "internal error"): WireError {
  if (error instanceof WireError) return error;
  return new WireError(ErrorCode.Internal, `${doing}: ${reasonOf(error)}`, { cause: error });
}

/**
 * True for the errors a peer causes by going away; over TLS, also by closing without saying so
 * first (no close_notify), as clients commonly do.
 */
export function isDisconnect(error: unknown): boolean {
  return error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.NotConnected;
}
