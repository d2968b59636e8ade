/**
 * One client connection on the server side: reads that record progress, and writes that gather
 * small pieces into one reused buffer (so a small answer, or a burst of pipelined answers, leaves
 * in one write) while large bodies go straight from their own memory to the socket.
 */

import { writeAll } from "../shared/io.ts";
import { isDisconnect } from "./errors.ts";
import type { LogLevel } from "./log.ts";
import type { Protocol } from "./metrics.ts";

/** Bytes gathered before a write; also the threshold above which a piece is written directly. */
const GATHER_BYTES = 16 * 1024;

/**
 * Gather buffers not in use. A connection holds one only between its first queued byte and the
 * flush, so a thousand idle connections hold none.
 */
const spare: Uint8Array[] = [];
const MAX_SPARE = 64;

/** Longest wait in {@link Connection.finish} for the peer to close its side. */
const LINGER_MS = 1000;

/** A server-side connection with output gathering and a progress clock for timeouts. */
export class Connection {
  readonly id: number;
  #host: string;
  #peer: string;
  readonly socket: Deno.Conn;
  /** When bytes last moved in either direction (ms since the epoch). */
  lastProgress = Date.now();
  /** The protocol spoken, once the server knows it (it counts requests by it). */
  protocol: Protocol = "framed";
  /** True while a request is being answered: silence then is a stall, not idleness. */
  busy = false;
  /**
   * The level its open, request and close lines are logged at: debug for a trusted proxy's own
   * connection (its health checks), which no client's request comes through.
   */
  logLevel: LogLevel = "info";
  /** Set once the connection is closed, with the reason for the log. */
  closedBecause: string | undefined;
  #out: Uint8Array | undefined;
  #length = 0;
  #bytesWritten = 0;
  readonly #opened = performance.now();
  #firstByte: number | undefined;
  #requestSince: number | undefined;
  #unread: Uint8Array | undefined;
  readonly #closed = Promise.withResolvers<void>();

  constructor(id: number, socket: Deno.Conn) {
    this.id = id;
    this.socket = socket;
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

  /** Records the client a trusted proxy carries on this connection (see proxy.ts). */
  forwardedFor(client: { host: string; port: number }): void {
    this.#host = client.host;
    this.#peer = `${client.host}:${client.port} via ${this.#peer}`;
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

  /**
   * When the first byte of a request not yet whole arrived (ms since the epoch), or undefined when
   * none is pending. Bytes read start the clock; {@link requestDone} stops it.
   */
  get requestSince(): number | undefined {
    return this.#requestSince;
  }

  /**
   * Stops the request clock: a request has arrived whole. With `more`, bytes of the next one are
   * already here, and its clock starts now.
   */
  requestDone(more: boolean): void {
    this.#requestSince = more ? Date.now() : undefined;
  }

  /**
   * Completes the TLS handshake of a TLS connection (nothing to do for plain TCP) on the request
   * clock, so a peer that does not finish it within the request timeout is closed as one that
   * does not send its request (closing the socket ends the handshake: tls.ts).
   */
  async handshake(): Promise<void> {
    if (!("handshake" in this.socket)) return;
    this.#requestSince = Date.now();
    await (this.socket as Deno.TlsConn).handshake();
    this.lastProgress = Date.now();
    this.#requestSince = undefined;
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
    this.lastProgress = Date.now();
    if (n) {
      this.#firstByte ??= performance.now();
      this.#requestSince ??= this.lastProgress;
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
    try {
      await this.#writeAll(out.subarray(0, length));
    } finally {
      if (spare.length < MAX_SPARE) spare.push(out);
    }
  }

  /**
   * Ends the connection politely: writes what is gathered, says no more will come (a TCP
   * half-close), then reads and drops whatever the peer still sends until it closes too, for at
   * most a second, and closes. Closing with bytes unread makes the kernel
   * reset the connection, and a reset can destroy answers the peer has not read yet.
   */
  async finish(reason: string): Promise<void> {
    if (this.closedBecause !== undefined) return;
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
    if (this.closedBecause !== undefined) return;
    this.closedBecause = reason;
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
      this.lastProgress = Date.now();
      return n;
    },
  };
}
