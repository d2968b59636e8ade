/**
 * What the server gives each dialect (framed.ts, original.ts), and nothing more: the store, whether
 * it is shutting down, its counters, and a record per request that counts it, logs it once and
 * records the body bytes it sent. Both dialects send a file's bytes through the one loop here, so
 * what is counted and logged cannot drift apart between them.
 */

import { errorCodeName, reasonOf, WireError } from "../shared/errors.ts";
import { asWireError } from "./errors.ts";
import type { ServerStats } from "../shared/stats.ts";
import type { Access } from "./access.ts";
import type { Connection } from "./connection.ts";
import type { Logger, LogValue } from "./log.ts";
import { Histogram, type Protocol } from "./metrics.ts";
import type { FileBody, FileStore } from "./store/store.ts";

/** The server as a dialect sees it. */
export interface Service {
  /** The shared folder's files, through the cache. */
  readonly store: FileStore;
  /** True once shutdown has begun: a dialect takes no new request. */
  closing(): boolean;
  /** The server's counters now. */
  stats(): ServerStats;
  /** The server's numbers as a Prometheus metrics page. */
  metrics(): string;
  /** Starts the record of one request, `op`, on `connection`. */
  begin(connection: Connection, op: string): Request;
  /**
   * Counts (as the peer's fault, not the server's) and logs bytes from the peer that broke the
   * protocol; the connection ends after.
   */
  violation(connection: Connection, error: WireError): void;
  /** Who may make requests (access tokens), and the count of those turned away. */
  readonly access: Access;
}

/** The counters that requests add to, kept by the server for its stats and metrics. */
export interface Tally {
  /** Requests, by the protocol they came in. */
  requests: Record<Protocol, number>;
  /** How long requests took. */
  durations: Histogram;
  /**
   * Requests and connections that failed on the server's side (a file that changed while it was
   * sent, a disk read that failed), each counted once; not refusals, nor a peer's faults.
   */
  errors: number;
  /** Connections a peer ended by breaking a protocol (a frame, a request, a PROXY line). */
  peerErrors: number;
  /** File bytes sent, and those of them sent from the cache (for the byte hit ratio). */
  bodyBytes: number;
  bodyBytesFromCache: number;
}

/** A tally with nothing counted yet. */
export function newTally(): Tally {
  return {
    requests: { framed: 0, original: 0, http: 0 },
    durations: new Histogram(),
    errors: 0,
    peerErrors: 0,
    bodyBytes: 0,
    bodyBytesFromCache: 0,
  };
}

/** One request being answered: counted when it begins, logged once when it ends. */
export class Request {
  readonly #tally: Tally;
  readonly #logger: Logger;
  readonly #connection: Connection;
  readonly #op: string;
  readonly #started = performance.now();
  #body: FileBody | undefined;
  #bytes = 0;

  constructor(tally: Tally, logger: Logger, connection: Connection, op: string) {
    this.#tally = tally;
    this.#logger = logger;
    this.#connection = connection;
    this.#op = op;
    tally.requests[connection.protocol]++;
  }

  /**
   * Sends `body`'s bytes from `offset` to `end`, one chunk at a time through `emit` (which frames
   * them or not, as its dialect wants), counting each once it is sent.
   */
  async send(
    body: FileBody,
    offset: number,
    end: number,
    emit: (chunk: Uint8Array) => Promise<void>,
  ): Promise<void> {
    this.#body = body;
    for await (const chunk of body.chunks(offset, end)) {
      await emit(chunk);
      this.#bytes += chunk.length;
      this.#tally.bodyBytes += chunk.length;
      if (body.source === "cache") this.#tally.bodyBytesFromCache += chunk.length;
    }
  }

  /** Logs the request as answered, with `fields` (a file's name, bytes and source come by themselves). */
  done(fields: Record<string, LogValue> = {}): void {
    const source = this.#body && (this.#body.source === "cache" ? "hit" : "miss");
    this.#log({ ...fields, source });
  }

  /**
   * Logs a request the server said no to (a bad name, a missing file), and returns what the peer
   * is to be told. A refusal is an answer, not an error of the server's.
   */
  refused(error: unknown, fields: Record<string, LogValue> = {}): WireError {
    const failure = asWireError(error);
    this.#log({ ...fields, error: errorCodeName(failure.code) });
    return failure;
  }

  /**
   * Logs a request cut short by `error`. A WireError (the file changed, a disk read failed) is
   * counted here and returned for the peer; any other error is only logged and is the caller's to
   * throw: the connection cannot carry on after it.
   */
  failed(error: unknown): WireError | undefined {
    if (!(error instanceof WireError)) {
      this.#log({ error: reasonOf(error) });
      return undefined;
    }
    this.#tally.errors++;
    this.#log({ error: errorCodeName(error.code) });
    return error;
  }

  #log(fields: Record<string, LogValue>): void {
    const ms = performance.now() - this.#started;
    this.#tally.durations.observe(ms / 1000);
    const file = this.#body && { name: this.#body.name, bytes: this.#bytes };
    this.#logger.event("request", {
      id: this.#connection.id,
      op: this.#op,
      ...file,
      ...fields,
      ms: Math.round(ms * 100) / 100,
    }, this.#connection.logLevel);
  }
}
