/**
 * The file server: listens on its own port (and on an HTTP port when asked), on plain TCP or TLS,
 * and hands each connection to what serves it: native.ts picks the framed or original dialect by
 * the first byte a client sends, http/ serves HTTP. It keeps the limits (the connection caps, the
 * idle and request deadlines), the access rules, the statistics, and shuts down gracefully.
 */

import { errorCodeName, ProtocolError, reasonOf, type WireError } from "../shared/errors.ts";
import { encodeBusy } from "../shared/greeting.ts";
import { ratio, type ServerStats } from "../shared/stats.ts";
import { Access } from "./access.ts";
import type { PolicyName } from "./cache/cache.ts";
import { Connection } from "./connection.ts";
import { isDisconnect } from "./errors.ts";
import { type Ledger, newTally, type Tally } from "./exchange.ts";
import { openRoot } from "./folder.ts";
import { httpBusy, httpsRequired, serveHttp } from "./http/serve.ts";
import {
  type Admission,
  connectionsThatFit,
  descriptorsFor,
  freeDescriptors,
  Gate,
  missedDeadline,
  Refusals,
} from "./limits.ts";
import {
  certificateWarning,
  exposureWarning,
  listen,
  reloadCertificate,
  type TlsFiles,
} from "./listen.ts";
import { DEFAULT_SORT_LIMIT, SortBudget } from "./listing.ts";
import type { Logger } from "./log.ts";
import { type Measures, type Protocol, renderMetrics } from "./metrics.ts";
import { serveNative } from "./native.ts";
import { readProxyLine } from "./proxy.ts";
import type { Service } from "./service.ts";
import type { CacheBackend } from "./store/backend.ts";
import { FileStore } from "./store/store.ts";
import type { Tokens } from "./tokens.ts";

/** How long a shutdown waits for sessions to end once their sockets are closed. */
const CLOSE_GRACE_MS = 1000;

/**
 * A port the server listens on: the protocol its connections' requests are counted under (the
 * native port's original dialect is learnt from the first byte: native.ts), how it serves a
 * connection, and how it tells one that the server is busy (full).
 */
interface Port {
  listener: Deno.Listener;
  protocol: Protocol;
  serve(connection: Connection, service: Service): Promise<void>;
  busyText(why: string): Uint8Array;
}

/** Everything a server needs to start. */
export interface ServerOptions {
  host: string;
  port: number;
  /** The folder to share. */
  folder: string;
  cacheBytes: number;
  policy?: PolicyName;
  /**
   * Milliseconds a check that a cached file is unchanged on disk stands for (see FolderOptions);
   * 0 checks for every request.
   */
  revalidateMs?: number;
  /** Connections served at once; lowered at start to what the open-file limit holds. */
  maxConnections: number;
  /** Connections served at once from one address (default a quarter of maxConnections). */
  maxConnectionsPerHost?: number;
  /** A connection with no bytes moving for this long is closed (idle between requests or stalled). */
  idleTimeoutMs: number;
  /** A request must arrive whole within this long of its first byte. */
  requestTimeoutMs: number;
  /** A port for HTTP too, on the same host (none unless given; 0 for any free one). */
  httpPort?: number;
  /**
   * Addresses of proxies whose connections start with a PROXY line naming the client they
   * carry, who then counts for the limits and the logs in the proxy's stead.
   */
  trustProxies?: string[];
  /** The certificate and key to speak TLS with, on every port; plain TCP without. */
  tls?: TlsFiles;
  /**
   * Send `Content-Security-Policy: sandbox` with the HTML (SVG, XML) files the HTTP port serves,
   * so that their scripts do not run with the origin's rights.
   */
  htmlSandbox?: boolean;
  /** A `Cache-Control` value the HTTP port sends with every file (`--cache-control`). */
  cacheControl?: string;
  /** Origins whose pages may read the HTTP port's answers, `["*"]` for any (`--cors`). */
  cors?: string[];
  /** Files the HTTP port serves for a folder's URL, the first present (`--index`). */
  index?: string[];
  /** False to send every file as it is from the HTTP port (`--compress off`). */
  compress?: boolean;
  /** With tokens, no request is answered before the peer presents one of them. */
  tokens?: Tokens;
  /**
   * With tokens, serve the original dialect anyway, though it cannot carry a token: anyone who
   * reaches the port can then read every file through it.
   */
  originalWithoutToken?: boolean;
  /** How long a shutdown waits for answers in flight. */
  shutdownTimeoutMs: number;
  /** How many levels of sub-folders a list walks into (DEFAULT_LIST_DEPTH unless given). */
  listDepth?: number;
  /** How many lists and folder pages are read at once (DEFAULT_MAX_LISTINGS unless given). */
  maxListings?: number;
  /**
   * The entries folder pages may hold at once to sort them, between them (DEFAULT_SORT_LIMIT
   * unless given); a folder that does not fit in what is free is shown unsorted.
   */
  sortLimit?: number;
  logger: Logger;
  /** Set when this server is one worker thread of several (workers/): what they share. */
  part?: Part;
}

/**
 * What a server that is one of several worker threads shares with the others, through the main
 * thread (workers/pool.ts): the cache, the connection limits, the delay wrong tokens earn, the
 * connection numbers, and the whole server's statistics. Its ports are opened with SO_REUSEPORT,
 * so every worker accepts on the same address, and the lines of the whole (listening, stopped)
 * are the main thread's to log.
 */
export interface Part {
  cache: CacheBackend;
  gate: Admission;
  /** The delay (ms) before a wrong token from `host` is answered. */
  failures(host: string): Promise<number>;
  /** The next connection's number, unique across the workers. */
  nextId(): number;
  /** The whole server's numbers: every worker's summed. */
  measures(): Promise<Measures>;
}

/**
 * Listens for one of the server's ports, `what`: one that cannot be had (taken, say) is an error
 * naming the address, the port and which of the server's ports it is. `plain` is what a TLS port
 * answers a peer that speaks no TLS (see listen()).
 */
async function listenFor(
  what: string,
  { host, tls, part }: ServerOptions,
  port: number,
  plain?: () => Uint8Array,
): Promise<Deno.Listener> {
  try {
    return await listen(host, port, tls, { plain, reusePort: part !== undefined });
  } catch (error) {
    const { AddrInUse, AddrNotAvailable, PermissionDenied } = Deno.errors;
    const unavailable = [AddrInUse, AddrNotAvailable, PermissionDenied];
    if (!unavailable.some((kind) => error instanceof kind)) throw error;
    throw new Error(`cannot listen on ${host}:${port}, ${what}: ${reasonOf(error)}`);
  }
}

/**
 * Listens on the server's ports: the native one, and the HTTP one when asked for. Throws (with
 * nothing left listening) when one cannot be had.
 */
async function openPorts(options: ServerOptions): Promise<Port[]> {
  const ports: Port[] = [{
    listener: await listenFor("the native port (--port)", options, options.port),
    protocol: "framed",
    serve: serveNative,
    busyText: encodeBusy,
  }];
  if (options.httpPort === undefined) return ports;
  const listener = await listenFor(
    "the HTTP port (--http-port)",
    options,
    options.httpPort,
    httpsRequired,
  ).catch((error) => {
    ports[0].listener.close();
    throw error;
  });
  const { htmlSandbox, cacheControl, cors, index, compress } = options;
  const sortBudget = new SortBudget(options.sortLimit ?? DEFAULT_SORT_LIMIT);
  const http = { htmlSandbox, cacheControl, cors, index, compress, sortBudget };
  const serve = (connection: Connection, service: Service) => serveHttp(connection, service, http);
  ports.push({ listener, protocol: "http", serve, busyText: httpBusy });
  return ports;
}

/**
 * Checks that the server's ports can be had, as a server of worker threads must before its
 * workers take them with SO_REUSEPORT, which would otherwise share a port with another server
 * already on it (one started with SO_REUSEPORT by the same user): throws as a server of one
 * thread would at start, naming the port, and leaves nothing listening.
 */
export async function checkPorts(options: ServerOptions): Promise<void> {
  for (const { listener } of await openPorts({ ...options, part: undefined })) listener.close();
}

/** A running file server. */
export class FileServer {
  readonly #options: ServerOptions;
  /** The shared folder's real path. */
  readonly #root: string;
  readonly #logger: Logger;
  readonly #store: FileStore;
  readonly #ports: Port[];
  readonly #connections = new Set<Connection>();
  readonly #sessions = new Set<Promise<void>>();
  readonly #started = Date.now();
  readonly #sweeper: ReturnType<typeof setInterval>;
  readonly #tally: Tally = newTally();
  /** Where exchanges are counted and logged. */
  readonly #ledger: Ledger;
  /** What the dialects are given of the server. */
  readonly #service: Service;
  readonly #gate: Admission;
  readonly #access: Access;
  /** Connections accepted so far. */
  #accepted = 0;
  readonly #nextId: () => number;
  readonly #refusals: Refusals;
  #closing = false;
  #closed: Promise<void> | undefined;
  #bytesSent = 0;
  #accepting: Promise<void[]>;

  private constructor(options: ServerOptions, root: string, ports: Port[], gate: Admission) {
    this.#options = options;
    this.#root = root;
    this.#gate = gate;
    const { part } = options;
    this.#nextId = part?.nextId ?? (() => this.#accepted + 1);
    this.#logger = options.logger;
    this.#ledger = { tally: this.#tally, logger: this.#logger };
    this.#ports = ports;
    this.#access = new Access(
      options.tokens,
      options.originalWithoutToken ?? false,
      this.#logger,
      part?.failures,
    );
    this.#refusals = new Refusals((id, error) =>
      this.#logger.event("busy-error", { id, error: reasonOf(error) }, "error")
    );
    const { listDepth, maxListings, revalidateMs } = options;
    const listing = { listDepth, maxListings, revalidateMs };
    this.#store = new FileStore(
      part
        ? { root, cache: part.cache, ...listing }
        : { root, cacheBytes: options.cacheBytes, policy: options.policy, ...listing },
    );
    const measures = part?.measures ?? (() => Promise.resolve(this.measures()));
    this.#service = {
      store: this.#store,
      closing: () => this.#closing,
      stats: async () => (await measures()).stats,
      metrics: async () => renderMetrics(await measures()),
      violation: (connection, error) => this.#violation(connection, error),
      access: this.#access,
    };
    const shortest = Math.min(options.idleTimeoutMs, options.requestTimeoutMs);
    const tick = Math.max(10, Math.min(1000, shortest / 4));
    this.#sweeper = setInterval(() => this.#sweep(), tick);
    this.#accepting = Promise.all(ports.map((port) => this.#acceptLoop(port)));
  }

  /**
   * Opens the folder, listens, and starts serving; logs the startup line, which says so when the
   * connection limit had to be lowered to fit the open-file limit.
   */
  static async start(options: ServerOptions): Promise<FileServer> {
    const root = await openRoot(options.folder);
    const gate = options.part?.gate ?? fittedGate(root, options);
    const server = new FileServer(options, root, await openPorts(options), gate);
    // A worker's pool logs these once for the whole server.
    if (options.part === undefined) {
      await logStart(options.logger, server.startup, server.addr.hostname, options);
    }
    return server;
  }

  /** What the line that says the server is listening tells of it. */
  get startup(): Startup {
    const [addr, http, options, gate] = [this.addr, this.httpAddr, this.#options, this.#gate];
    const wanted = options.maxConnections;
    return {
      address: `${addr.hostname}:${addr.port}`,
      http: http && `${http.hostname}:${http.port}`,
      folder: this.#root,
      cacheBytes: options.cacheBytes,
      policy: this.#store.cache.policy,
      maxConnections: gate.max,
      maxConnectionsPerHost: gate.perHost,
      tls: options.tls !== undefined,
      tokens: options.tokens?.count ?? 0,
      dialects: this.#access.originalOpen ? "framed,original" : "framed",
      lowered: gate.max < wanted
        ? `--max-connections ${wanted} does not fit the open-file limit (ulimit -n); raise it to serve more`
        : undefined,
    };
  }

  /** The address the server listens on (with the real port when 0 was asked for). */
  get addr(): Deno.NetAddr {
    return this.#ports[0].listener.addr as Deno.NetAddr;
  }

  /** The address of the HTTP port, if there is one. */
  get httpAddr(): Deno.NetAddr | undefined {
    return this.#ports[1]?.listener.addr as Deno.NetAddr | undefined;
  }

  /** The server's counters now: every statistic of the table (STATS, lib/shared/stats.ts). */
  stats(): ServerStats {
    const cache = this.#store.cache;
    const tally = this.#tally;
    return {
      policy: cache.policy,
      requests: tally.requests.framed + tally.requests.original + tally.requests.http,
      hits: cache.hits,
      misses: cache.misses,
      hitRatio: ratio(cache.hits, cache.hits + cache.misses),
      byteHitRatio: ratio(tally.bodyBytesFromCache, tally.bodyBytes),
      evictions: cache.evictions,
      bytesSent: this.#bytesSent + this.#inFlightBytes(),
      cacheBytes: cache.used,
      cacheReserved: cache.reserved,
      cachePinned: cache.pinned,
      cacheCapacity: cache.capacity,
      cacheEntries: cache.size,
      diskReads: this.#store.diskReads,
      connections: this.#connections.size,
      totalConnections: this.#accepted,
      errors: tally.errors,
      authFailures: this.#access.refused,
      uptimeSeconds: (Date.now() - this.#started) / 1000,
    };
  }

  /** The server's numbers as the metrics page shows them: the stats, and the tally's parts. */
  measures(): Measures {
    const { requests, statusClasses, durations, peerErrors } = this.#tally;
    return { stats: this.stats(), requests, statusClasses, durations, peerErrors };
  }

  /**
   * Reads the TLS certificate and key again (on SIGHUP, after a renewal), for the connections
   * accepted from now on; a pair that cannot be used leaves the old one serving, and the log says
   * why. Nothing to do without TLS.
   */
  async reloadCertificate(): Promise<void> {
    const { tls } = this.#options;
    if (tls === undefined) return;
    try {
      for (const { listener } of this.#ports) await reloadCertificate(listener, tls);
      this.#logger.event("certificate-reloaded", { cert: tls.cert });
      const warning = await certificateWarning(tls.cert);
      if (warning) this.#logger.event("warning", { message: warning }, "warning");
    } catch (error) {
      this.#logger.event("certificate-kept", { cert: tls.cert, error: reasonOf(error) }, "warning");
    }
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
    for (const { listener } of this.#ports) listener.close();
    await this.#accepting;
    for (const connection of this.#connections) {
      if (!connection.answering) connection.close("shutdown");
    }
    await this.#sessionsEnd(this.#options.shutdownTimeoutMs);
    for (const connection of this.#connections) connection.close("shutdown timeout");
    // Closing its socket ends a session at its next step; one stuck where no socket reaches it
    // (a disk that does not answer, say) must not hold the shutdown past its deadline.
    await this.#sessionsEnd(CLOSE_GRACE_MS);
    clearInterval(this.#sweeper);
    if (this.#options.part === undefined) logStopped(this.#logger, this.stats());
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

  async #acceptLoop(port: Port): Promise<void> {
    for (;;) {
      let socket: Deno.Conn;
      try {
        socket = await port.listener.accept();
      } catch (error) {
        if (this.#closing || error instanceof Deno.errors.BadResource) return;
        this.#logger.event("accept-error", { error: reasonOf(error) }, "error");
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      const id = this.#nextId();
      this.#accepted++;
      const connection = new Connection(id, socket, {
        protocol: port.protocol,
        ledger: this.#ledger,
      });
      // A trusted proxy's connections count towards the total until their PROXY line names the
      // client, who then takes the place (and answers to the per-host limit).
      const proxied = this.#options.trustProxies?.includes(connection.host) ?? false;
      const entered = this.#gate.enter(connection.host, proxied ? Infinity : undefined);
      const full = entered instanceof Promise ? await entered : entered;
      if (full !== undefined) {
        this.#logger.event("busy", { id, peer: connection.peer }, "warning");
        await this.#refusals.refuse(connection, port.busyText(full));
        continue;
      }
      this.#connections.add(connection);
      const session = this.#session(connection, port, proxied);
      this.#sessions.add(session);
      session.finally(() => this.#sessions.delete(session));
    }
  }

  async #session(connection: Connection, port: Port, proxied: boolean): Promise<void> {
    let admitted = true;
    try {
      if (!await this.#handshake(connection)) return;
      if (proxied) {
        const full = await this.#proxyLine(connection);
        admitted = full === undefined;
        if (full !== undefined) {
          this.#logger.event("busy", { id: connection.id, peer: connection.peer }, "warning");
          return await connection.send(port.busyText(full));
        }
      }
      // Opened and closed as usual, a connection is a matter for debugging: its requests' lines
      // say who asked for what.
      this.#logger.event("open", { id: connection.id, peer: connection.peer }, "debug");
      await port.serve(connection, this.#service);
    } catch (error) {
      if (error instanceof ProtocolError) this.#violation(connection, error);
      else if (!isDisconnect(error) && connection.closedBecause === undefined) {
        this.#failed(connection, error);
      }
    } finally {
      await this.#end(connection, admitted);
    }
  }

  /**
   * Completes a TLS connection's handshake and sets TCP_NODELAY; false when the connection was
   * closed meanwhile (a timeout, a failed handshake).
   */
  async #handshake(connection: Connection): Promise<boolean> {
    await connection.handshake().catch((error) => {
      // A client that does not speak TLS, or refused the certificate: the peer's trouble, so
      // logged but not counted as the server's error.
      if (connection.closedBecause !== undefined) return;
      const fields = { id: connection.id, peer: connection.peer, error: reasonOf(error) };
      this.#logger.event("tls-error", fields);
      connection.close("tls-error");
    });
    if (connection.closedBecause !== undefined) return false;
    // Small answers leave at once (TCP_NODELAY). A TLS connection has it from the start
    // (lib/server/tls.ts), as Deno.listenTls's have no such switch: docs/PERFORMANCE.md.
    if ("setNoDelay" in connection.socket) (connection.socket as Deno.TcpConn).setNoDelay(true);
    return true;
  }

  /**
   * Reads the PROXY line a trusted proxy's connection starts with, due at once on the request
   * clock; the client it names takes the proxy's place at the gate. Says which limit is reached
   * when the client has no place left there; undefined when the connection goes on.
   */
  async #proxyLine(connection: Connection): Promise<string | undefined> {
    const client = await connection.opening(() => readProxyLine(connection));
    const proxy = connection.host;
    if (!connection.carries(client)) return undefined;
    this.#gate.leave(proxy);
    return await this.#gate.enter(connection.host);
  }

  /**
   * Ends a session: finishes its connection, gives back its place at the gate if it was
   * `admitted` there, and logs the close.
   */
  async #end(connection: Connection, admitted: boolean): Promise<void> {
    // Ending it can fail too (a TLS peer may send garbage after the last answer): that is
    // counted and logged, and the socket closed all the same, rather than thrown from here.
    await connection.finish("done").catch((error) => {
      if (!isDisconnect(error)) this.#failed(connection, error);
    });
    this.#connections.delete(connection);
    if (admitted) this.#gate.leave(connection.host);
    this.#bytesSent += connection.bytesWritten;
    const reason = connection.closedBecause;
    const usual = reason === undefined || reason === "done";
    this.#logger.event("close", {
      id: connection.id,
      bytes: connection.bytesWritten,
      reason,
    }, usual ? "debug" : connection.logLevel);
  }

  /** Counts and logs a connection's failure. */
  #failed(connection: Connection, error: unknown): void {
    this.#tally.errors++;
    this.#logger.event("connection-error", { id: connection.id, error: reasonOf(error) }, "error");
  }

  /** Counts and logs a protocol violation: the peer's fault, counted apart from the server's. */
  #violation(connection: Connection, error: WireError): void {
    this.#tally.peerErrors++;
    this.#logger.event("protocol-error", {
      id: connection.id,
      code: errorCodeName(error.code),
      error: error.message,
    });
  }

  /** Closes the connections that missed a deadline (limits.ts). */
  #sweep(): void {
    const now = Date.now();
    for (const connection of this.#connections) {
      const missed = missedDeadline(connection, now, this.#options);
      if (missed !== undefined) connection.close(missed);
    }
  }
}

/** What the line that says a server is listening tells of it. */
export type Startup = Record<string, string | number | boolean | undefined>;

/**
 * The connection limits of a server of one thread: lowered at start to what the open-file limit
 * holds (counted with the shared folder, `root`).
 */
export function fittedGate(root: string, options: ServerOptions): Gate {
  const wanted = options.maxConnections;
  const max = connectionsThatFit(wanted, freeDescriptors(root, descriptorsFor(wanted)));
  return new Gate(max, Math.min(max, options.maxConnectionsPerHost ?? Math.ceil(max / 4)));
}

/**
 * Logs that the server listens (`startup`), and what the operator should know of how it was
 * started: `hostname` open to others with nothing protecting it, a certificate no client takes.
 */
export async function logStart(
  logger: Logger,
  startup: Startup,
  hostname: string,
  { tls, tokens }: Pick<ServerOptions, "tls" | "tokens">,
): Promise<void> {
  logger.event("listening", startup);
  const warnings = [
    exposureWarning(hostname, { tls: tls !== undefined, tokens: tokens !== undefined }),
    tls && await certificateWarning(tls.cert),
  ];
  for (const message of warnings) {
    if (message) logger.event("warning", { message }, "warning");
  }
}

/** Logs the summary of a server that has stopped. */
export function logStopped(logger: Logger, stats: ServerStats): void {
  logger.event("stopped", {
    requests: stats.requests,
    bytesSent: stats.bytesSent,
    hits: stats.hits,
    misses: stats.misses,
    uptimeSeconds: Math.round(stats.uptimeSeconds),
  });
}
