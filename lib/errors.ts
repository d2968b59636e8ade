/**
 * Errors that a peer must see carry a wire code; errors a person reads carry one clear sentence.
 * Every module throws these named classes so the server can map any failure to an answer.
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
} as const;

/** One of the wire error codes. */
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode];

/** The short lowercase name of a wire error code, for logs and messages. */
export function errorCodeName(code: number): string {
  for (const [name, value] of Object.entries(ErrorCode)) {
    if (value === code) return name.replace(/[A-Z]/g, (c, i) => (i ? "-" : "") + c.toLowerCase());
  }
  return `code-${code}`;
}

/** A failure with a wire code and a one-sentence message, safe to send to a peer. */
export class FileServerError extends Error {
  /** The wire code a peer sees. */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FileServerError";
    this.code = code;
  }
}

/** The peer broke the framing rules; the connection cannot continue after this. */
export class ProtocolError extends FileServerError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = "ProtocolError";
  }
}

/** A requested name is not acceptable (escapes the folder, has NUL, is too long, ...). */
export class BadNameError extends FileServerError {
  constructor(message: string) {
    super(ErrorCode.BadRequest, message);
    this.name = "BadNameError";
  }
}

/** The named file does not exist (or is not a regular file we may serve). */
export class NotFoundError extends FileServerError {
  constructor(message: string) {
    super(ErrorCode.NotFound, message);
    this.name = "NotFoundError";
  }
}

/** Any error as something a peer may be told: known failures as they are, others as internal. */
export function asFailure(error: unknown): FileServerError {
  if (error instanceof FileServerError) return error;
  return new FileServerError(ErrorCode.Internal, `internal error: ${describe(error)}`);
}

/** True for the errors a peer causes by going away. */
export function isDisconnect(error: unknown): boolean {
  return error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.NotConnected;
}

/** One line describing an error, for logs. */
export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
