/**
 * The file server: listens (on plain TCP or TLS), greets each connection, and hands it to its
 * dialect (framed.ts or original.ts) by the first byte the client sends. It keeps the limits (the
 * connection cap, the idle and stall timeout), the access tokens, the statistics, and shuts down
 * gracefully.
 */

import { ErrorCode, errorCodeName, reasonOf, WireError } from "../shared/errors.ts";
import { FrameReader } from "../shared/frame_reader.ts";
import { encodeBusy, GREETING, MAGIC, type ServerStats } from "../shared/protocol.ts";
import type { PolicyName } from "./cache/cache.ts";
import { Connection } from "./connection.ts";
import { FailureDelay } from "./delay.ts";
import { isDisconnect } from "./errors.ts";
import { openRoot } from "./folder.ts";
import { MAX_REQUEST_PAYLOAD, serveFramed } from "./framed.ts";
import {
  connectionsThatFit,
  descriptorsFor,
  freeDescriptors,
  Gate,
  LINGERING_REFUSALS,
  REFUSALS,
} from "./limits.ts";
import { exposureWarning, listen, type TlsFiles } from "./listen.ts";
import type { Logger } from "./log.ts";
import { MAX_ORIGINAL_REQUEST, refuseOriginal, serveOriginal } from "./original.ts";
import { Request, type Service, type Tally } from "./service.ts";
import { FileStore } from "./store/store.ts";
import type { Tokens } from "./tokens.ts";

/** How long a shutdown waits for sessions to end once their sockets are closed. */
const CLOSE_GRACE_MS = 1000;
/**
 * The longest a refusal (the busy text) may take. Plain TCP takes its text at once; a TLS peer
 * must first complete its handshake, and one that never does must not hold a refusal's place.
 */
const REFUSAL_MS = 2000;

/** Everything a server needs to start. */
export interface ServerOptions {
  host: string;
  port: number;
  /** The folder to share. */
  folder: string;
  cacheBytes: number;
  policy?: PolicyName;
  /** Connections served at once; lowered at start to what the open-file limit holds. */
  maxConnections: number;
  /** Connections served at once from one address (default a quarter of maxConnections). */
  maxConnectionsPerHost?: number;
  /** A connection with no bytes moving for this long is closed (idle between requests or stalled). */
  idleTimeoutMs: number;
  /** A request must arrive whole within this long of its first byte. */
  requestTimeoutMs: number;
  /** How long a shutdown waits for answers in flight. */
  shutdownTimeoutMs: number;
  logger: Logger;
  /** The certificate and key to speak TLS with; plain TCP without. */
  tls?: TlsFiles;
  /** With tokens, no request is answered before the peer presents one of them. */
  tokens?: Tokens;
  /**
   * With tokens, serve the original dialect anyway, though it cannot carry a token: anyone who
   * reaches the port can then read every file through it.
   */
  originalWithoutToken?: boolean;
}

/** A running file server. */
export class FileServer {
  readonly #options: ServerOptions;
  readonly #logger: Logger;
  readonly #store: FileStore;
  readonly #listener: Deno.Listener;
  readonly #connections = new Set<Connection>();
  readonly #sessions = new Set<Promise<void>>();
  readonly #started = Date.now();
  readonly #sweeper: ReturnType<typeof setInterval>;
  readonly #tally: Tally = { requests: 0, errors: 0, bodyBytes: 0, bodyBytesFromCache: 0 };
  /** What the dialects are given of the server. */
  readonly #service: Service;
  readonly #gate: Gate;
  /** The delay before a wrong token is answered, by host. */
  readonly #failures = new FailureDelay();
  #authFailures = 0;
  #nextId = 1;
  /** Refusals under way, and how many of them wait for their peer to close. */
  readonly #refusals = new Set<Promise<void>>();
  #lingering = 0;
  #closing = false;
  #closed: Promise<void> | undefined;
  #bytesSent = 0;
  #accepting: Promise<void>;

  private constructor(
    options: ServerOptions,
    root: string,
    listener: Deno.Listener,
    gate: Gate,
  ) {
    this.#options = options;
    this.#gate = gate;
    this.#logger = options.logger;
    this.#listener = listener;
    this.#store = new FileStore({ root, cacheBytes: options.cacheBytes, policy: options.policy });
    this.#service = {
      store: this.#store,
      closing: () => this.#closing,
      stats: () => this.stats(),
      begin: (connection, op) => new Request(this.#tally, this.#logger, connection, op),
      violation: (connection, error) => this.#violation(connection, error),
      admit: (connection, token) => this.#admit(connection, token),
    };
    const shortest = Math.min(options.idleTimeoutMs, options.requestTimeoutMs);
    const tick = Math.max(10, Math.min(1000, shortest / 4));
    this.#sweeper = setInterval(() => this.#sweep(), tick);
    this.#accepting = this.#acceptLoop();
  }

  /**
   * Opens the folder, listens, and starts serving; logs the startup line, which says so when the
   * connection limit had to be lowered to fit the open-file limit.
   */
  static async start(options: ServerOptions): Promise<FileServer> {
    const root = await openRoot(options.folder);
    const wanted = options.maxConnections;
    const max = connectionsThatFit(wanted, freeDescriptors(root, descriptorsFor(wanted)));
    const perHost = Math.min(max, options.maxConnectionsPerHost ?? Math.ceil(max / 4));
    const listener = await listen(options.host, options.port, options.tls);
    const server = new FileServer(options, root, listener, new Gate(max, perHost));
    const tls = options.tls !== undefined;
    options.logger.event("listening", {
      address: `${server.addr.hostname}:${server.addr.port}`,
      folder: root,
      cacheBytes: options.cacheBytes,
      policy: server.#store.cache.policy,
      maxConnections: max,
      maxConnectionsPerHost: perHost,
      lowered: max < wanted
        ? `--max-connections ${wanted} does not fit the open-file limit (ulimit -n); raise it to serve more`
        : undefined,
      tls,
      tokens: options.tokens?.count ?? 0,
      dialects: server.#originalOpen ? "framed,original" : "framed",
    });
    const warning = exposureWarning(server.addr.hostname, { tls, tokens: !!options.tokens });
    if (warning !== undefined) options.logger.event("warning", { message: warning });
    return server;
  }

  /** The address the server listens on (with the real port when 0 was asked for). */
  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }

  /** The server's counters now. */
  stats(): ServerStats {
    const cache = this.#store.cache;
    const lookups = cache.hits + cache.misses;
    const tally = this.#tally;
    return {
      policy: cache.policy,
      requests: tally.requests,
      hits: cache.hits,
      misses: cache.misses,
      hitRatio: lookups ? cache.hits / lookups : 0,
      byteHitRatio: tally.bodyBytes ? tally.bodyBytesFromCache / tally.bodyBytes : 0,
      evictions: cache.evictions,
      bytesSent: this.#bytesSent + this.#inFlightBytes(),
      cacheBytes: cache.used,
      cacheReserved: cache.reserved,
      cachePinned: cache.pinned,
      cacheCapacity: cache.capacity,
      cacheEntries: cache.size,
      diskReads: this.#store.diskReads,
      connections: this.#connections.size,
      totalConnections: this.#nextId - 1,
      errors: tally.errors,
      authFailures: this.#authFailures,
      uptimeSeconds: (Date.now() - this.#started) / 1000,
    };
  }

  /**
   * Stops accepting, lets answers in flight finish for up to the shutdown timeout, closes every
   * connection, and logs a summary. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    this.#listener.close();
    await this.#accepting;
    for (const connection of this.#connections) {
      if (!connection.busy) connection.close("shutdown");
    }
    await this.#sessionsEnd(this.#options.shutdownTimeoutMs);
    for (const connection of this.#connections) connection.close("shutdown timeout");
    // Closing its socket ends a session at its next step; one stuck where no socket reaches it
    // (a disk that does not answer, say) must not hold the shutdown past its deadline.
    await this.#sessionsEnd(CLOSE_GRACE_MS);
    clearInterval(this.#sweeper);
    const stats = this.stats();
    this.#logger.event("stopped", {
      requests: stats.requests,
      bytesSent: stats.bytesSent,
      hits: stats.hits,
      misses: stats.misses,
      uptimeSeconds: Math.round(stats.uptimeSeconds),
    });
    await this.#logger.flush();
  }

  /** Resolves when every session has ended, or after `ms`, whichever comes first. */
  async #sessionsEnd(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
    await Promise.race([Promise.allSettled([...this.#sessions]), deadline]);
    clearTimeout(timer);
  }

  #inFlightBytes(): number {
    let bytes = 0;
    for (const connection of this.#connections) bytes += connection.bytesWritten;
    return bytes;
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let socket: Deno.Conn;
      try {
        socket = await this.#listener.accept();
      } catch (error) {
        if (this.#closing || error instanceof Deno.errors.BadResource) return;
        this.#logger.event("accept-error", { error: reasonOf(error) });
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      const id = this.#nextId++;
      const connection = new Connection(id, socket);
      const full = this.#gate.enter(connection.host);
      if (full !== undefined) {
        const refusal = this.#refuse(connection, full);
        this.#refusals.add(refusal);
        refusal.finally(() => this.#refusals.delete(refusal));
        if (this.#refusals.size >= REFUSALS) await Promise.race(this.#refusals);
        continue;
      }
      this.#connections.add(connection);
      const session = this.#session(connection);
      this.#sessions.add(session);
      session.finally(() => this.#sessions.delete(session));
    }
  }

  /**
   * Tells a client over a limit that the server is busy, and which limit, in words both dialects
   * understand. A refusal lingers for its peer to close (so that what the peer sent meanwhile
   * cannot turn the close into a reset that destroys the text), unless LINGERING_REFUSALS already
   * do: then the text is written and the socket closed, so that a flood moves on.
   */
  async #refuse(connection: Connection, why: string): Promise<void> {
    const id = connection.id;
    this.#logger.event("busy", { id, peer: connection.peer, why });
    const linger = this.#lingering < LINGERING_REFUSALS;
    if (linger) this.#lingering++;
    const deadline = setTimeout(() => connection.close("busy"), REFUSAL_MS);
    try {
      await connection.send(encodeBusy(why));
      if (linger) await connection.finish("busy");
      else await connection.flush();
    } catch (error) {
      if (!isDisconnect(error)) this.#logger.event("busy-error", { id, error: reasonOf(error) });
    } finally {
      clearTimeout(deadline);
      connection.close("busy");
      if (linger) this.#lingering--;
    }
  }

  async #session(connection: Connection): Promise<void> {
    this.#logger.event("open", { id: connection.id, peer: connection.peer });
    try {
      if (!await this.#handshake(connection)) return;
      // Small answers leave at once (TCP_NODELAY). Deno has no such switch for a TLS connection,
      // which keeps Nagle's algorithm: see docs/PERFORMANCE.md for what that costs.
      if ("setNoDelay" in connection.socket) (connection.socket as Deno.TcpConn).setNoDelay(true);
      await connection.send(GREETING);
      await connection.flush();
      // Requests are small, so idle connections cost little memory; the first read can still
      // take a whole original-dialect request, and shows one over the limit as too long.
      const reader = new FrameReader(connection, {
        maxPayload: MAX_REQUEST_PAYLOAD,
        bufferBytes: MAX_ORIGINAL_REQUEST + 1,
      });
      if (!await reader.fill()) return;
      if (reader.buffered[0] === MAGIC[0]) await serveFramed(connection, reader, this.#service);
      else if (this.#originalOpen) await serveOriginal(connection, reader, this.#service);
      else {
        this.#unauthorized(connection, "the original dialect cannot carry a token");
        await refuseOriginal(connection);
      }
    } catch (error) {
      if (!isDisconnect(error) && connection.closedBecause === undefined) {
        this.#failed(connection, error);
      }
    } finally {
      // Ending it can fail too (a TLS peer may send garbage after the last answer): that is
      // counted and logged, and the socket closed all the same, rather than thrown from here.
      await connection.finish("done").catch((error) => {
        if (!isDisconnect(error)) this.#failed(connection, error);
      });
      this.#connections.delete(connection);
      this.#gate.leave(connection.host);
      this.#bytesSent += connection.bytesWritten;
      this.#logger.event("close", {
        id: connection.id,
        bytes: connection.bytesWritten,
        reason: connection.closedBecause,
      });
    }
  }

  /**
   * Completes a TLS connection's handshake (true at once for plain TCP). A failed one (a client
   * that does not speak TLS, or that refused the certificate) is logged and the connection closed:
   * it is the peer's trouble, not the server's, so it is not counted as an error.
   */
  async #handshake(connection: Connection): Promise<boolean> {
    try {
      await connection.handshake();
      return connection.closedBecause === undefined;
    } catch (error) {
      if (connection.closedBecause !== undefined) return false;
      this.#logger.event("tls-error", {
        id: connection.id,
        peer: connection.peer,
        error: reasonOf(error),
      });
      connection.close("tls-error");
      return false;
    }
  }

  /** True when the original dialect is served: tokens are off, or the operator allowed it. */
  get #originalOpen(): boolean {
    return this.#options.tokens === undefined || this.#options.originalWithoutToken === true;
  }

  /** See {@link Service.admit}. */
  async #admit(
    connection: Connection,
    token: Uint8Array | undefined,
  ): Promise<WireError | undefined> {
    const tokens = this.#options.tokens;
    if (tokens === undefined || (token !== undefined && tokens.verify(token))) return undefined;
    if (token === undefined) {
      this.#unauthorized(connection, "protocol version 1 cannot carry a token");
      return new WireError(
        ErrorCode.Unauthorized,
        "this server needs an access token, which takes protocol version 2",
      );
    }
    if (token.length === 0) {
      this.#unauthorized(connection, "no token");
      return new WireError(
        ErrorCode.Unauthorized,
        "this server needs an access token; none was given",
      );
    }
    this.#unauthorized(connection, "wrong token");
    await connection.pause(this.#failures.fail(connection.host));
    return new WireError(ErrorCode.Unauthorized, "the access token was not accepted");
  }

  /** Counts and logs a peer turned away for want of a valid token; `why` never holds the token. */
  #unauthorized(connection: Connection, why: string): void {
    this.#authFailures++;
    this.#logger.event("unauthorized", { id: connection.id, peer: connection.peer, why });
  }

  /** Counts and logs a connection's failure. */
  #failed(connection: Connection, error: unknown): void {
    this.#tally.errors++;
    this.#logger.event("connection-error", { id: connection.id, error: reasonOf(error) });
  }

  /** Counts and logs a protocol violation. */
  #violation(connection: Connection, error: WireError): void {
    this.#tally.errors++;
    this.#logger.event("protocol-error", {
      id: connection.id,
      code: errorCodeName(error.code),
      error: error.message,
    });
  }

  /**
   * Closes connections that moved no bytes for the idle timeout (idle, or a stalled reader), and
   * those whose request has not arrived whole within the request timeout of its first byte (a
   * sender slow on purpose, whose trickle the idle timeout alone would never stop).
   */
  #sweep(): void {
    const now = Date.now();
    for (const connection of this.#connections) {
      if (now - connection.lastProgress > this.#options.idleTimeoutMs) {
        connection.close(connection.busy ? "stalled" : "idle");
      } else if (now - (connection.requestSince ?? now) > this.#options.requestTimeoutMs) {
        connection.close("request-timeout");
      }
    }
  }
}
