/**
 * The file server: accepts connections, greets them, tells the framed protocol from the original
 * text dialect by the first byte, and answers requests through the {@link FileStore}. It enforces
 * the connection limit and the idle/stall timeout, keeps the statistics, and shuts down gracefully.
 */

import type { PolicyName } from "./cache.ts";
import { Connection } from "./connection.ts";
import {
  asFailure,
  describe,
  ErrorCode,
  errorCodeName,
  FileServerError,
  isDisconnect,
  ProtocolError,
} from "./errors.ts";
import { MAX_LEGACY_REQUEST, serveLegacy } from "./legacy.ts";
import { walkFiles } from "./listing.ts";
import type { Logger, LogValue } from "./log.ts";
import { openRoot } from "./names.ts";
import {
  encodeEnd,
  encodeError,
  encodeFrame,
  encodeHello,
  encodeListEnd,
  encodeListParts,
  encodeText,
  FILE_FRAME_BYTES,
  Frame,
  FrameReader,
  GREETING,
  HEADER_BYTES,
  type ListEntry,
  MAGIC,
  readGet,
  VERSION,
  writeFileFrame,
  writeHeader,
} from "./protocol.ts";
import { type FileBody, FileStore } from "./store.ts";

/** The server's name and version, sent in HELLO. */
export const SERVER_NAME = "fileserver/1.0";
/** Largest request frame payload: an 8-byte offset and a name of up to 1 KiB, with room. */
export const MAX_REQUEST_PAYLOAD = 4096;
/** Largest DATA frame the server sends. */
const MAX_DATA_FRAME = 1 << 30;
/** List entries per LIST_PART batch. */
const LIST_BATCH = 1000;

/** Everything a server needs to start. */
export interface ServerOptions {
  host: string;
  port: number;
  /** The folder to share. */
  folder: string;
  cacheBytes: number;
  policy?: PolicyName;
  maxConnections: number;
  /** A connection with no bytes moving for this long is closed (idle between requests or stalled). */
  idleTimeoutMs: number;
  /** How long a shutdown waits for answers in flight. */
  shutdownTimeoutMs: number;
  logger: Logger;
}

/** The counters `stats` reports; scripts rely on these names. */
export interface ServerStats {
  policy: string;
  requests: number;
  hits: number;
  misses: number;
  hitRatio: number;
  byteHitRatio: number;
  evictions: number;
  bytesSent: number;
  cacheBytes: number;
  cacheReserved: number;
  /** Bytes evicted from the cache but still being sent to slow readers; they count against the cap. */
  cachePinned: number;
  cacheCapacity: number;
  cacheEntries: number;
  diskReads: number;
  connections: number;
  totalConnections: number;
  errors: number;
  uptimeSeconds: number;
}

const HELP_TEXT = [
  "Requests:",
  "  list           every file in the shared folder, with size, modification time and whether cached",
  "  get NAME [AT]  the file NAME (a path relative to the folder), from byte AT (default 0)",
  "  stats          the server's counters",
  "  help           this text",
  "  quit           end the session",
].join("\n");

/** A running file server. */
export class FileServer {
  readonly store: FileStore;
  readonly logger: Logger;
  readonly #options: ServerOptions;
  readonly #listener: Deno.Listener;
  readonly #connections = new Set<Connection>();
  readonly #sessions = new Set<Promise<void>>();
  readonly #started = Date.now();
  readonly #sweeper: ReturnType<typeof setInterval>;
  #nextId = 1;
  #closing = false;
  #closed: Promise<void> | undefined;
  /** Counters both dialects add to. */
  readonly counters = { requests: 0, errors: 0, bodyBytes: 0, bodyBytesFromCache: 0 };
  #bytesSent = 0;
  #accepting: Promise<void>;

  private constructor(options: ServerOptions, root: string, listener: Deno.Listener) {
    this.#options = options;
    this.logger = options.logger;
    this.#listener = listener;
    this.store = new FileStore({ root, cacheBytes: options.cacheBytes, policy: options.policy });
    const tick = Math.max(10, Math.min(1000, options.idleTimeoutMs / 4));
    this.#sweeper = setInterval(() => this.#sweep(), tick);
    this.#accepting = this.#acceptLoop();
  }

  /** Opens the folder, listens, and starts serving; logs the startup line. */
  static async start(options: ServerOptions): Promise<FileServer> {
    const root = await openRoot(options.folder);
    const listener = Deno.listen({ hostname: options.host, port: options.port, transport: "tcp" });
    const server = new FileServer(options, root, listener);
    options.logger.event("listening", {
      address: `${server.addr.hostname}:${server.addr.port}`,
      folder: root,
      cacheBytes: options.cacheBytes,
      policy: server.store.cache.policy,
      maxConnections: options.maxConnections,
    });
    return server;
  }

  /** The address the server listens on (with the real port when 0 was asked for). */
  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }

  /** The server's counters now. */
  stats(): ServerStats {
    const cache = this.store.cache;
    const lookups = cache.hits + cache.misses;
    return {
      policy: cache.policy,
      requests: this.counters.requests,
      hits: cache.hits,
      misses: cache.misses,
      hitRatio: lookups ? cache.hits / lookups : 0,
      byteHitRatio: this.counters.bodyBytes
        ? this.counters.bodyBytesFromCache / this.counters.bodyBytes
        : 0,
      evictions: cache.evictions,
      bytesSent: this.#bytesSent + this.#inFlightBytes(),
      cacheBytes: cache.used,
      cacheReserved: cache.reserved,
      cachePinned: cache.pinned,
      cacheCapacity: cache.capacity,
      cacheEntries: cache.size,
      diskReads: this.store.diskReads,
      connections: this.#connections.size,
      totalConnections: this.#nextId - 1,
      errors: this.counters.errors,
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
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#options.shutdownTimeoutMs);
    });
    await Promise.race([Promise.allSettled([...this.#sessions]), deadline]);
    clearTimeout(timer);
    for (const connection of this.#connections) connection.close("shutdown timeout");
    await Promise.allSettled([...this.#sessions]);
    clearInterval(this.#sweeper);
    const stats = this.stats();
    this.logger.event("stopped", {
      requests: stats.requests,
      bytesSent: stats.bytesSent,
      hits: stats.hits,
      misses: stats.misses,
      uptimeSeconds: Math.round(stats.uptimeSeconds),
    });
    await this.logger.flush();
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
        this.logger.event("accept-error", { error: describe(error) });
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      const id = this.#nextId++;
      if (this.#connections.size >= this.#options.maxConnections) {
        this.#refuseBusy(id, socket);
        continue;
      }
      const connection = new Connection(id, socket);
      this.#connections.add(connection);
      const session = this.#session(connection);
      this.#sessions.add(session);
      session.finally(() => this.#sessions.delete(session));
    }
  }

  /** Tells a client over the limit that the server is busy, in words both dialects understand. */
  async #refuseBusy(id: number, socket: Deno.Conn): Promise<void> {
    const connection = new Connection(id, socket);
    this.logger.event("busy", { id, peer: connection.peer });
    const limit = this.#options.maxConnections;
    const open = limit === 1 ? "1 connection is open" : `${limit} connections are open`;
    try {
      await connection.send(
        new TextEncoder().encode(`DISCONNECTED@Server busy: ${open}; try again later.`),
      );
      await connection.finish("busy");
    } catch (error) {
      connection.close("busy");
      if (!isDisconnect(error)) this.logger.event("busy-error", { id, error: describe(error) });
    }
  }

  async #session(connection: Connection): Promise<void> {
    const socket = connection.socket as Deno.TcpConn;
    this.logger.event("open", { id: connection.id, peer: connection.peer });
    try {
      socket.setNoDelay(true);
      await connection.send(GREETING);
      await connection.flush();
      // Requests are small, so idle connections cost little memory; the first read can still
      // take a whole original-dialect request, and shows one over the limit as too long.
      const reader = new FrameReader(connection, {
        maxPayload: MAX_REQUEST_PAYLOAD,
        bufferBytes: MAX_LEGACY_REQUEST + 1,
      });
      if (!await reader.fill()) return;
      if (reader.decoder.buffered[0] === MAGIC[0]) await this.#serveFramed(connection, reader);
      else {
        await serveLegacy(connection, reader, this);
      }
    } catch (error) {
      if (!isDisconnect(error) && connection.closedBecause === undefined) {
        this.counters.errors++;
        this.logger.event("connection-error", { id: connection.id, error: describe(error) });
      }
    } finally {
      await connection.finish("done");
      this.#connections.delete(connection);
      this.#bytesSent += connection.bytesWritten;
      this.logger.event("close", {
        id: connection.id,
        bytes: connection.bytesWritten,
        reason: connection.closedBecause,
      });
    }
  }

  /** The framed protocol: preamble, HELLO, then requests answered in order until QUIT or EOF. */
  async #serveFramed(connection: Connection, reader: FrameReader): Promise<void> {
    while (reader.decoder.buffered.length < MAGIC.length + 1) {
      if (!await reader.fill()) return;
    }
    const preamble = reader.decoder.buffered;
    if (!MAGIC.every((byte, i) => preamble[i] === byte)) {
      return this.#fatal(connection, new ProtocolError(ErrorCode.BadRequest, "bad preamble"));
    }
    if (preamble[MAGIC.length] !== VERSION) {
      const message = `protocol version ${preamble[MAGIC.length]} is not supported; ` +
        `this server speaks version ${VERSION}`;
      return this.#fatal(connection, new ProtocolError(ErrorCode.Unsupported, message));
    }
    reader.decoder.skip(MAGIC.length + 1);
    await connection.send(encodeHello(SERVER_NAME));
    for (;;) {
      if (this.#closing) {
        await connection.send(encodeError(ErrorCode.ShuttingDown, "the server is shutting down"));
        await connection.flush();
        return;
      }
      let frame;
      try {
        frame = reader.decoder.next();
        if (!frame) {
          await connection.flush();
          // Only now, with every answer written, is the connection idle: a shutdown may close it.
          connection.busy = false;
          frame = await reader.next();
          if (!frame) return;
        }
      } catch (error) {
        if (error instanceof ProtocolError) return this.#fatal(connection, error);
        throw error;
      }
      connection.busy = true;
      const started = performance.now();
      this.counters.requests++;
      switch (frame.type) {
        case Frame.Get: {
          let request;
          try {
            request = readGet(frame.payload);
          } catch (error) {
            return this.#fatal(connection, error as ProtocolError);
          }
          await this.#answerGet(connection, request.name, request.offset, started);
          break;
        }
        case Frame.List:
          await this.#answerList(connection, started);
          break;
        case Frame.Stats:
          await connection.send(encodeText(Frame.StatsReply, JSON.stringify(this.stats())));
          this.logRequest(connection, { op: "stats" }, started);
          break;
        case Frame.Help:
          await connection.send(encodeText(Frame.HelpReply, HELP_TEXT));
          this.logRequest(connection, { op: "help" }, started);
          break;
        case Frame.Quit:
          await connection.send(encodeFrame(Frame.Bye));
          await connection.flush();
          this.logRequest(connection, { op: "quit" }, started);
          return;
        default: {
          const message = `unknown request type 0x${frame.type.toString(16).padStart(2, "0")}`;
          return this.#fatal(connection, new ProtocolError(ErrorCode.BadRequest, message));
        }
      }
    }
  }

  /** Sends an error for a protocol violation and ends the connection. */
  async #fatal(connection: Connection, error: ProtocolError): Promise<void> {
    this.counters.errors++;
    this.logger.event("protocol-error", {
      id: connection.id,
      code: errorCodeName(error.code),
      error: error.message,
    });
    await connection.send(encodeError(error.code, error.message));
    await connection.flush();
  }

  async #answerGet(connection: Connection, name: string, offset: number, started: number) {
    let opened: FileBody | undefined;
    try {
      opened = this.store.open(name);
      if (offset > opened.stamp.size) {
        throw new FileServerError(
          ErrorCode.BadRequest,
          `offset ${offset} is past the end of "${opened.name}" (${opened.stamp.size} bytes)`,
        );
      }
    } catch (error) {
      opened?.[Symbol.dispose]();
      const failure = asFailure(error);
      await connection.send(encodeError(failure.code, failure.message));
      this.logRequest(connection, { op: "get", name, error: errorCodeName(failure.code) }, started);
      return;
    }
    using body = opened;
    const head = await connection.reserve(FILE_FRAME_BYTES);
    writeFileFrame(head, 0, {
      size: body.stamp.size,
      offset,
      mtimeMs: body.stamp.mtimeMs,
      source: body.source,
    });
    connection.sendReserved(FILE_FRAME_BYTES);
    let sent = 0;
    try {
      for await (const chunk of body.chunks(offset)) {
        for (let at = 0; at < chunk.length; at += MAX_DATA_FRAME) {
          const piece = chunk.subarray(at, at + MAX_DATA_FRAME);
          const header = await connection.reserve(HEADER_BYTES);
          writeHeader(header, 0, Frame.Data, piece.length);
          connection.sendReserved(HEADER_BYTES);
          await connection.send(piece);
          sent += piece.length;
        }
      }
      await connection.send(encodeEnd(await body.digest()));
    } catch (error) {
      this.bodySent(connection, "get", body, sent, started, error);
      if (!(error instanceof FileServerError)) throw error;
      this.counters.errors++;
      await connection.send(encodeError(error.code, error.message));
      return;
    }
    this.bodySent(connection, "get", body, sent, started);
  }

  /**
   * Counts the body bytes a request sent (for the byte hit ratio) and logs it, with the failure
   * that cut it short if one did. Shared by both dialects.
   */
  bodySent(
    connection: Connection,
    op: string,
    body: FileBody,
    sent: number,
    started: number,
    failure?: unknown,
  ): void {
    this.counters.bodyBytes += sent;
    if (body.source === "cache") this.counters.bodyBytesFromCache += sent;
    const outcome = failure === undefined ? { source: body.source === "cache" ? "hit" : "miss" } : {
      error: failure instanceof FileServerError ? errorCodeName(failure.code) : describe(failure),
    };
    this.logRequest(connection, { op, name: body.name, bytes: sent, ...outcome }, started);
  }

  /** Every servable file with its size, time and whether it is cached, in batches. */
  async *listBatches(): AsyncGenerator<ListEntry[]> {
    let batch: ListEntry[] = [];
    for await (const entry of walkFiles(this.store.folder.root)) {
      batch.push({ ...entry, cached: this.store.cache.has(entry.name) });
      if (batch.length === LIST_BATCH) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }

  async #answerList(connection: Connection, started: number): Promise<void> {
    let count = 0;
    for await (const batch of this.listBatches()) {
      for (const frame of encodeListParts(batch)) await connection.send(frame);
      count += batch.length;
    }
    await connection.send(encodeListEnd(count));
    this.logRequest(connection, { op: "list", entries: count }, started);
  }

  /** Logs one answered request with how long it took. */
  logRequest(connection: Connection, fields: Record<string, LogValue>, started: number) {
    this.logger.event("request", {
      id: connection.id,
      ...fields,
      ms: Math.round((performance.now() - started) * 100) / 100,
    });
  }

  /** Closes connections that moved no bytes for the idle timeout (idle, or a stalled reader). */
  #sweep(): void {
    const now = Date.now();
    for (const connection of this.#connections) {
      if (now - connection.lastProgress > this.#options.idleTimeoutMs) {
        connection.close(connection.busy ? "stalled" : "idle");
      }
    }
  }

  /** True once shutdown has begun. */
  get closing(): boolean {
    return this.#closing;
  }
}
