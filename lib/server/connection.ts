/**
 * One client connection on the server side: reads that record progress, writes that gather small
 * pieces into one reused buffer (so a small answer, or a burst of pipelined answers, leaves in one
 * write) while large bodies go straight from their own memory to the socket, and the exchanges
 * (exchange.ts) its requests are answered in, one at a time, which alone move its request state.
 */

import { writeAll } from "../shared/io.ts";
import { isDisconnect } from "./errors.ts";
import { Exchange, type Ledger } from "./exchange.ts";
import type { LogLevel } from "./log.ts";
import type { Protocol } from "./metrics.ts";
import type { Forwarded } from "./proxy.ts";

/** Bytes gathered before a write; also the threshold above which a piece is written directly. */
const GATHER_BYTES = 16 * 1024;
const encoder = new TextEncoder();

/**
 * Gather buffers not in use. A connection holds one only between its first queued byte and the
 * flush, so a thousand idle connections hold none.
 */
const spare: Uint8Array[] = [];
const MAX_SPARE = 64;

/** Longest wait in {@link Connection.finish} for the peer to close its side. */
const LINGER_MS = 1000;

/** What a connection is given at its start, beside its socket. */
export interface ConnectionTerms {
  /** The protocol its port speaks, which its requests are counted under (see {@link speaks}). */
  protocol: Protocol;
  /** Where its exchanges are counted and logged. */
  ledger: Ledger;
}

/**
 * A server-side connection with output gathering, a progress clock and a request clock for the
 * deadlines, and the exchange (one request and its answer) under way, if any. Its request state
 * is its own: dialects change it only by beginning and ending exchanges.
 */
export class Connection {
  readonly id: number;
  #host: string;
  #peer: string;
  readonly socket: Deno.Conn;
  #protocol: Protocol;
  readonly #ledger: Ledger;
  /** The latest exchange; under way until it has ended. */
  #exchange: Exchange | undefined;
  #exchanges = 0;
  #lastProgress = Date.now();
  #logLevel: LogLevel = "info";
  #closedBecause: string | undefined;
  #out: Uint8Array | undefined;
  #length = 0;
  /**
   * Flushes under way: gathered bytes handed to the socket and not yet written. (A large piece is
   * written through only within an exchange, which keeps the connection answering by itself.)
   */
  #flushing = 0;
  #bytesWritten = 0;
  readonly #opened = performance.now();
  #firstByte: number | undefined;
  #requestSince: number | undefined;
  #unread: Uint8Array | undefined;
  readonly #closed = Promise.withResolvers<void>();

  constructor(id: number, socket: Deno.Conn, { protocol, ledger }: ConnectionTerms) {
    this.id = id;
    this.socket = socket;
    this.#protocol = protocol;
    this.#ledger = ledger;
    const addr = socket.remoteAddr as Deno.NetAddr;
    this.#host = addr.hostname;
    this.#peer = `${addr.hostname}:${addr.port}`;
  }

  /** The peer's address (the client's, when a trusted proxy named it). */
  get host(): string {
    return this.#host;
  }

  /** The peer's address and port, for logs. */
  get peer(): string {
    return this.#peer;
  }

  /** The protocol spoken, which requests are counted under. */
  get protocol(): Protocol {
    return this.#protocol;
  }

  /**
   * Says the peer speaks `protocol`, where its port could not know it before the peer's first
   * byte: the native port, whose client speaks the framed protocol or the original dialect
   * (native.ts, the one caller). Only before the first exchange, as requests are counted by it.
   */
  speaks(protocol: Protocol): void {
    if (this.#exchanges > 0) {
      throw new Error("a connection's protocol is known before its requests");
    }
    this.#protocol = protocol;
  }

  /**
   * The level its open, request and close lines are logged at: debug for a trusted proxy's own
   * connection (its health checks), which no client's request comes through.
   */
  get logLevel(): LogLevel {
    return this.#logLevel;
  }

  /**
   * Takes in the client a trusted proxy's PROXY line names (see proxy.ts): true when it is a
   * client, who is then this connection's host and is named in its log lines; false when the line
   * names this very connection (the proxy speaking for itself, as haproxy's health checks do),
   * whose lines are then logged at the debug level.
   */
  carries(client: Forwarded): boolean {
    if (client === undefined) return false;
    if (`${client.host}:${client.port}` === this.#peer) {
      this.#logLevel = "debug";
      return false;
    }
    this.#host = client.host;
    this.#peer = `${client.host}:${client.port} via ${this.#peer}`;
    return true;
  }

  /** Why the connection was closed, once it is. */
  get closedBecause(): string | undefined {
    return this.#closedBecause;
  }

  /** Puts `bytes` back to be read again first (what followed a PROXY line, say). */
  unread(bytes: Uint8Array): void {
    if (bytes.length > 0) this.#unread = bytes.slice();
  }

  /** Total bytes written to the socket. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /**
   * Milliseconds from the connection's start to the first byte the peer sent (undefined until it
   * sends one): how long the peer takes to react to the greeting, on this machine and network now.
   */
  get reactionMs(): number | undefined {
    return this.#firstByte === undefined ? undefined : this.#firstByte - this.#opened;
  }

  /** When bytes last moved in either direction (ms since the epoch). */
  get lastProgress(): number {
    return this.#lastProgress;
  }

  /**
   * When the first byte of a request not yet whole arrived (ms since the epoch), or undefined when
   * none is pending. A read that brings bytes starts the clock; beginning an exchange stops it.
   */
  get requestSince(): number | undefined {
    return this.#requestSince;
  }

  /**
   * True while an answer is under way: an exchange is open, or bytes of an answer are not yet
   * handed to the kernel. Silence then is a stall, not idleness, and a shutdown waits for it.
   */
  get answering(): boolean {
    return this.#underWay() || this.#length > 0 || this.#flushing > 0;
  }

  /**
   * Begins the exchange of a request that has arrived whole, `op`: the request clock stops, and
   * the connection is answering until the exchange ends and its answer is written. One exchange
   * at a time: requests are answered in order.
   */
  begin(op: string): Exchange {
    if (this.#underWay()) throw new Error("an exchange is under way on the connection");
    this.#requestSince = undefined;
    this.#exchanges++;
    const party = {
      id: this.id,
      peer: this.peer,
      protocol: this.#protocol,
      logLevel: this.#logLevel,
    };
    return this.#exchange = new Exchange(this.#ledger, party, op);
  }

  /** True while the latest exchange has not ended. */
  #underWay(): boolean {
    return this.#exchange !== undefined && !this.#exchange.ended;
  }

  /**
   * Runs `step`, a part of the peer's opening that is due now (a TLS handshake, a PROXY line, the
   * framed preamble), on the request clock: the clock runs from now, or from the first byte of it
   * already read, until the step is done, so a peer that never completes it is closed at the
   * request timeout, as one that never completes a request is.
   */
  async opening<T>(step: () => Promise<T>): Promise<T> {
    this.#requestSince ??= Date.now();
    try {
      return await step();
    } finally {
      this.#requestSince = undefined;
    }
  }

  /**
   * Completes the TLS handshake of a TLS connection (nothing to do for plain TCP) on the request
   * clock, so a peer that does not finish it within the request timeout is closed as one that
   * does not send its request (closing the socket ends the handshake: tls.ts).
   */
  async handshake(): Promise<void> {
    if (!("handshake" in this.socket)) return;
    await this.opening(() => (this.socket as Deno.TlsConn).handshake());
    this.#lastProgress = Date.now();
  }

  /**
   * Waits `ms`, or less when the connection is closed meanwhile (a timeout, a shutdown), so that a
   * pause never holds up a connection that has already ended.
   */
  async pause(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const paused = new Promise((resolve) => timer = setTimeout(resolve, ms));
    await Promise.race([paused, this.#closed.promise]);
    clearTimeout(timer);
  }

  /** Reads into `buffer`, like Deno.Conn.read, recording progress and starting the request clock. */
  async read(buffer: Uint8Array): Promise<number | null> {
    const unread = this.#unread;
    if (unread) {
      const n = Math.min(buffer.length, unread.length);
      buffer.set(unread.subarray(0, n));
      this.#unread = n < unread.length ? unread.subarray(n) : undefined;
      return n;
    }
    const n = await this.socket.read(buffer);
    this.#lastProgress = Date.now();
    if (n) {
      this.#firstByte ??= performance.now();
      this.#requestSince ??= this.#lastProgress;
    }
    return n;
  }

  /** Queues `bytes` for sending; small pieces are gathered, large ones written through. */
  async send(bytes: Uint8Array): Promise<void> {
    if (bytes.length > GATHER_BYTES - this.#length) {
      await this.flush();
      if (bytes.length > GATHER_BYTES / 2) return await this.#writeAll(bytes);
    }
    this.#gather().set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /**
   * Queues `text` for sending as UTF-8, written straight into the gather buffer when it fits
   * there (an answer's head: no bytes of its own to make and copy).
   */
  async sendText(text: string): Promise<void> {
    const most = text.length * 3; // UTF-8 bytes a UTF-16 unit can take
    if (most > GATHER_BYTES / 2) return await this.send(encoder.encode(text));
    const { written } = encoder.encodeInto(text, await this.reserve(most));
    this.sendReserved(written);
  }

  /** Room in the gather buffer to build a piece in place; commit it with {@link sendReserved}. */
  async reserve(bytes: number): Promise<Uint8Array> {
    if (bytes > GATHER_BYTES - this.#length) await this.flush();
    return this.#gather().subarray(this.#length, this.#length + bytes);
  }

  /** Queues `bytes` bytes written into the room {@link reserve} gave. */
  sendReserved(bytes: number): void {
    this.#length += bytes;
  }

  /** Writes out everything gathered. */
  async flush(): Promise<void> {
    const out = this.#out;
    if (out === undefined) return;
    const length = this.#length;
    this.#out = undefined;
    this.#length = 0;
    this.#flushing++;
    try {
      await this.#writeAll(out.subarray(0, length));
    } finally {
      this.#flushing--;
      if (spare.length < MAX_SPARE) spare.push(out);
    }
  }

  /**
   * Ends the connection politely, once its dialect is done with it: writes what is gathered, says
   * no more will come (a TCP half-close), then reads and drops whatever the peer still sends until
   * it closes too, for at most a second, and closes. Closing with bytes unread makes the kernel
   * reset the connection, and a reset can destroy answers the peer has not read yet.
   */
  async finish(reason: string): Promise<void> {
    // An exchange its dialect dropped without ending it: logged and counted as abandoned.
    this.#exchange?.[Symbol.dispose]();
    if (this.#closedBecause !== undefined) return;
    try {
      await this.flush();
      await this.socket.closeWrite();
      const timer = setTimeout(() => this.close(reason), LINGER_MS);
      try {
        const drain = new Uint8Array(4096);
        while (await this.socket.read(drain) !== null);
      } finally {
        clearTimeout(timer);
      }
    } catch (error) {
      if (!isDisconnect(error)) throw error;
    } finally {
      this.close(reason);
    }
  }

  /** Closes the socket (once), remembering why. */
  close(reason: string): void {
    if (this.#closedBecause !== undefined) return;
    this.#closedBecause = reason;
    this.#closed.resolve();
    try {
      this.socket.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  /** The gather buffer, taken from the spares (or made) when the connection first needs one. */
  #gather(): Uint8Array {
    return this.#out ??= spare.pop() ?? new Uint8Array(GATHER_BYTES);
  }

  #writeAll(bytes: Uint8Array): Promise<void> {
    return writeAll(this.#counted, bytes);
  }

  /** The socket as a writer that records each write's bytes and progress. */
  readonly #counted = {
    write: async (bytes: Uint8Array): Promise<number> => {
      const n = await this.socket.write(bytes);
      this.#bytesWritten += n;
      this.#lastProgress = Date.now();
      return n;
    },
  };
}
