/**
 * The client's errors, which decide its exit code: a connection that failed or a server that
 * broke the protocol (exit 3), a server that refused a request (exit 1), and local failures put
 * into words a user can act on.
 */

import { reasonOf } from "../shared/errors.ts";

/** The connection failed, or the server broke the protocol: the session cannot go on. */
export class ConnectionError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionError";
  }
}

/** The server answered a request with an error (the connection itself is fine). */
export class ServerError extends Error {
  /** The wire code the server sent. */
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = "ServerError";
    this.code = code;
  }
}

/** The error for a connection that broke while `name` was coming, which a rerun resumes. */
export function partlySaved(error: ConnectionError, name: string): ConnectionError {
  return new ConnectionError(
    `${error.message}; ${name} is partly saved: run the same command again to resume`,
    { cause: error },
  );
}

/**
 * What the runtime's TLS says when it refuses a server's certificate, and what the user is told:
 * which check failed, and what to do about it.
 */
const CERTIFICATE_FAILURES: [RegExp, string][] = [
  [
    /UnknownIssuer/,
    "the server's certificate is not signed by an authority this client trusts " +
    "(for a private authority or a self-signed certificate, give it with --ca FILE)",
  ],
  [/NotValidForName|not valid for name/, "the server's certificate is not for this host name"],
  [/Expired/, "the server's certificate has expired"],
  [/NotValidYet/, "the server's certificate is not valid yet (is a clock wrong?)"],
  [
    /CaUsedAsEndEntity/,
    "the server's certificate is an authority's (CA:TRUE), which cannot be a server's; " +
    "see docs/SECURITY.md for how to make one",
  ],
];

/**
 * A short reason for a socket failure, in words a user knows; for a TLS connection, which check
 * the server's certificate failed.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { socketReason } from "./errors.ts";
 * equal(socketReason(new Deno.errors.ConnectionRefused("refused")), "connection refused; is the server running?");
 * equal(socketReason(new Deno.errors.InvalidData("invalid peer certificate: Expired")), "the server's certificate has expired");
 * ```
 */
export function socketReason(error: unknown): string {
  if (error instanceof Deno.errors.ConnectionRefused) {
    return "connection refused; is the server running?";
  }
  if (error instanceof Deno.errors.InvalidData) {
    const reason = reasonOf(error);
    if (/InvalidContentType/.test(reason)) {
      return "the server does not speak TLS on this port (connect without --tls)";
    }
    const failure = CERTIFICATE_FAILURES.find(([pattern]) => pattern.test(reason));
    if (failure !== undefined) return failure[1];
    const refused = /^invalid peer certificate: (.*)$/.exec(reason);
    if (refused) return `the server's certificate was refused: ${refused[1]}`;
  }
  if (error instanceof Deno.errors.ConnectionReset) return "the server reset the connection";
  if (error instanceof Deno.errors.TimedOut) return "timed out";
  if (error instanceof Deno.errors.BrokenPipe) return "the server closed the connection";
  return reasonOf(error);
}

/**
 * A failure to write `where` (disk full, no permission, a closed pipe) in one sentence, for the
 * user to act on.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { writeFailure } from "./errors.ts";
 * const full = Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
 * equal(writeFailure(full, "a.bin"), "the disk is full while writing a.bin");
 * ```
 */
export function writeFailure(error: unknown, where: string): string {
  const code = (error as { code?: unknown }).code;
  if (error instanceof Deno.errors.PermissionDenied || code === "EACCES" || code === "EPERM") {
    return `no permission to write ${where}`;
  }
  if (code === "ENOSPC" || code === "EDQUOT") return `the disk is full while writing ${where}`;
  if (code === "EROFS") return `cannot write ${where}: the file system is read-only`;
  if (code === "EPIPE") return `${where} was closed before everything was written`;
  return `cannot write ${where}: ${reasonOf(error)}`;
}
