/**
 * One request and its answer, as the server counts and logs it. A connection begins an exchange
 * when a request has arrived whole (Connection.begin); the exchange counts the request, sends a
 * file's bytes through the one loop every dialect uses, and ends in exactly one outcome, which it
 * logs in one line: answered, refused (an answer that says no) or failed (cut short). One disposed
 * of without an outcome is a dialect's mistake: it is logged as abandoned and counted as an error,
 * so a forgotten ending shows in the log and the metrics rather than nowhere.
 */

import { ErrorCode, errorCodeName, reasonOf, WireError } from "../shared/errors.ts";
import type { Logger, LogLevel, LogValue } from "./log.ts";
import { Histogram, type Protocol, type StatusClass } from "./metrics.ts";
import type { FileBody } from "./store/store.ts";

/** The counters that exchanges and connections add to, kept by the server for its stats. */
export interface Tally {
  /** Requests, by the protocol they came in. */
  requests: Record<Protocol, number>;
  /** HTTP answers, by their status class. */
  statusClasses: Record<StatusClass, number>;
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
    statusClasses: { "1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 },
    durations: new Histogram(),
    errors: 0,
    peerErrors: 0,
    bodyBytes: 0,
    bodyBytesFromCache: 0,
  };
}

/** Where exchanges are counted and logged: the server's tally and its log. */
export interface Ledger {
  readonly tally: Tally;
  readonly logger: Logger;
}

/** What an exchange knows of its connection. */
export interface Party {
  /** The connection's number, in every log line about it. */
  readonly id: number;
  /** The client's address and port, as the log shows them. */
  readonly peer: string;
  /** The protocol its requests are counted under. */
  readonly protocol: Protocol;
  /** The level its request lines are logged at. */
  readonly logLevel: LogLevel;
}

/** Log fields an outcome adds to the request's line. */
export type Fields = Record<string, LogValue>;

/**
 * One request being answered: counted when it begins, logged once when it ends.
 * @example
 * ```ts
 * import { equal, ok, throws } from "node:assert/strict";
 * import { Exchange, newTally } from "./exchange.ts";
 * import { Logger } from "./log.ts";
 * const lines: string[] = [];
 * const logger = new Logger("text", {
 *   write: (bytes) => (lines.push(new TextDecoder().decode(bytes)), Promise.resolve(bytes.length)),
 * });
 * const ledger = { tally: newTally(), logger };
 * const party = { id: 7, peer: "127.0.0.1:5000", protocol: "framed" as const, logLevel: "info" as const };
 * const exchange = new Exchange(ledger, party, "stats");
 * exchange.answered();
 * throws(() => exchange.answered(), /ended already/);
 * {
 *   using _forgotten = new Exchange(ledger, party, "help");
 * }
 * equal(ledger.tally.requests.framed, 2);
 * equal(ledger.tally.errors, 1); // the abandoned one
 * await logger.flush();
 * ok(lines.join("").includes("op=help error=abandoned"));
 * ```
 */
export class Exchange implements Disposable {
  readonly #ledger: Ledger;
  readonly #party: Party;
  readonly #op: string;
  readonly #started = performance.now();
  #body: FileBody | undefined;
  #bytes = 0;
  #ended = false;

  /** Begins exchange `op` for `party`, counting the request; Connection.begin makes them. */
  constructor(ledger: Ledger, party: Party, op: string) {
    this.#ledger = ledger;
    this.#party = party;
    this.#op = op;
    ledger.tally.requests[party.protocol]++;
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
    const tally = this.#ledger.tally;
    for await (const chunk of body.chunks(offset, end)) {
      await emit(chunk);
      this.#bytes += chunk.length;
      tally.bodyBytes += chunk.length;
      if (body.source === "cache") tally.bodyBytesFromCache += chunk.length;
    }
  }

  /**
   * Ends the exchange as answered, with `fields` (a file's name, bytes and source come by
   * themselves).
   */
  answered(fields: Fields = {}): void {
    const source = this.#body && (this.#body.source === "cache" ? "hit" : "miss");
    this.#end({ ...fields, source });
  }

  /**
   * Ends the exchange as refused with `error`, what the peer is told (a bad name, a missing file).
   * A refusal is an answer, not an error of the server's.
   */
  refused(error: WireError, fields: Fields = {}): void {
    this.#end({ ...fields, error: errorCodeName(error.code) });
  }

  /**
   * Ends the exchange as cut short by `error`, with `fields`. A WireError (the file changed, a
   * disk read failed) is counted here and returned, for the peer to be told if its dialect can,
   * except ShuttingDown (a list the server's shutdown ended), which is no failure; any other
   * error (the peer gone, say) is logged and thrown on, as the connection cannot carry on after
   * it, and the server counts it once if it is a failure of its own.
   */
  failed(error: unknown, fields: Fields = {}): WireError {
    if (!(error instanceof WireError)) {
      this.#end({ ...fields, error: reasonOf(error) });
      throw error;
    }
    // A request cut by the server's shutdown is no failure of its own.
    const failure = error.code !== ErrorCode.ShuttingDown;
    this.#end({ ...fields, error: errorCodeName(error.code) }, failure ? "error" : undefined);
    if (failure) this.#ledger.tally.errors++;
    return error;
  }

  /** True once the exchange has ended, with an outcome or abandoned. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Ends an exchange no outcome ended: logged as abandoned, and counted as an error. */
  [Symbol.dispose](): void {
    if (this.#ended) return;
    this.#end({ error: "abandoned" }, "error");
    this.#ledger.tally.errors++;
  }

  /** Ends the exchange with `fields`, its line logged at `level` (else as its party's lines). */
  #end(fields: Fields, level = this.#party.logLevel): void {
    if (this.#ended) throw new Error(`the exchange "${this.#op}" has ended already`);
    this.#ended = true;
    const ms = performance.now() - this.#started;
    this.#ledger.tally.durations.observe(ms / 1000);
    if (typeof fields.status === "number") {
      this.#ledger.tally.statusClasses[`${Math.floor(fields.status / 100)}xx` as StatusClass]++;
    }
    const file = this.#body && { name: this.#body.name, bytes: this.#bytes };
    this.#ledger.logger.event("request", {
      id: this.#party.id,
      peer: this.#party.peer,
      op: this.#op,
      ...file,
      ...fields,
      ms: Math.round(ms * 100) / 100,
    }, level);
    this.#body = undefined; // an ended exchange keeps no file alive
  }
}
