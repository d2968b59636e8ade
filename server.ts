/**
 * The file server's command line: parses arguments and starts {@link FileServer}.
 * `server --help` lists the options; `server PORT` (a bare port) also works, as it did originally.
 */

import { DEFAULT_POLICY, POLICIES, type PolicyName } from "./lib/server/cache/cache.ts";
import {
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  Logger,
  type LogLevel,
} from "./lib/server/log.ts";
import { DEFAULT_MAX_LISTINGS, DEFAULT_SORT_LIMIT } from "./lib/server/listing.ts";
import { FileServer, type ServerOptions } from "./lib/server/server.ts";
import { DEFAULT_LIST_DEPTH } from "./lib/server/store/store.ts";
import { Tokens } from "./lib/server/tokens.ts";
import { watchShutdown } from "./lib/server/watchdog.ts";
import { ServerPool } from "./lib/server/workers/pool.ts";
import {
  Exit,
  parseCommandLine,
  parseInteger,
  parsePort,
  parseSeconds,
  parseSizeFlag,
  UsageError,
} from "./lib/shared/cli.ts";
import { DEFAULT_HOST, DEFAULT_PORT } from "./lib/shared/defaults.ts";
import { reasonOf } from "./lib/shared/errors.ts";
import { SIZE_UNITS_HELP } from "./lib/shared/units.ts";

/**
 * How long a check that a cached file is unchanged stands by default: a change is served at most
 * this late, and a file asked for many times a second is checked ten times a second, which costs
 * nothing to speak of however many files are in demand (docs/PERFORMANCE.md).
 */
const DEFAULT_REVALIDATE_MS = 100;

/** How long a log line waits for the lines after it, to be written with them (see Logger). */
const LOG_GATHER_MS = 10;

const USAGE = `Usage: server [PORT] [options]

Shares a folder over TCP, with an in-memory cache bounded in bytes.

Options:
  --host HOST              address to listen on (default ${DEFAULT_HOST})
  --port PORT              port to listen on, 0 for any free one (default ${DEFAULT_PORT})
  --http-port PORT         also serve HTTP on PORT (off unless given): files with ranges and
                           digests, folder pages, /-/metrics for Prometheus, /-/healthy
  --html-sandbox           send HTML, SVG and XML files from the HTTP port with
                           Content-Security-Policy: sandbox, so that a shared page's scripts
                           cannot act with the server's origin (see docs/SECURITY.md)
  --compress on|off        compress text, JSON, JavaScript, SVG and the like from the HTTP port in
                           the best of br, zstd and gzip the client takes, each copy made once and
                           cached in the cache's budget; NAME.zst, NAME.br, NAME.gz beside a file
                           are sent as they are when current (default on)
  --index NAME,...         serve the first of these files a folder holds for its URL, instead of
                           its page, so a folder can be a static site (e.g. index.html; off
                           unless given)
  --cache-control VALUE    send Cache-Control: VALUE with every file from the HTTP port (e.g.
                           "public, max-age=3600"; none unless given)
  --cors ORIGIN,...        let pages of these origins (or * for any) read files from the HTTP
                           port, answering browsers' preflight requests (off unless given)
  --data DIR               folder to share (default server_data)
  --cache-size SIZE        cache capacity (default 64MiB)
  --policy NAME            cache eviction policy: ${POLICIES.join(", ")} (default ${DEFAULT_POLICY})
  --revalidate-ms MS       check that a cached file is unchanged on disk at most once in MS
                           milliseconds however many requests ask for it meanwhile, so a change
                           is served at most MS late (a file not cached is checked every time);
                           0 checks for every request (default ${DEFAULT_REVALIDATE_MS})
  --max-connections N      connections served at once; the next one is told the server is busy
                           (default 1024; lowered at start if the open-file limit cannot hold it)
  --max-connections-per-host N
                           connections served at once from one address, so that one host cannot
                           take every place (default a quarter of --max-connections)
  --idle-timeout S         close a connection when no bytes move for S seconds, idle or stalled
                           (default 60)
  --request-timeout S      close a connection whose request has not arrived whole S seconds
                           after its first byte (default 10)
  --trust-proxy ADDR,...   connections from these addresses (a load balancer such as haproxy
                           with send-proxy) start with a PROXY protocol line naming the client,
                           who then counts for the limits and the logs in the proxy's stead
                           (plain TCP only: not with --tls-cert)
  --workers N              threads serving every port, on the same address and with one cache of
                           --cache-size (default: the cores this process may use, now ${cores()});
                           1 serves from the main thread alone
  --shutdown-timeout S     on SIGINT/SIGTERM, wait up to S seconds for answers in flight
                           (default 10); the process ends S+2 seconds after the signal at the
                           latest, however busy, and a second signal ends it at once
  --max-listings N         lists and folder pages read at once; the next waits its turn
                           (default ${DEFAULT_MAX_LISTINGS})
  --list-depth N           levels of sub-folders a list walks into; deeper ones are left out and
                           the log counts them (default ${DEFAULT_LIST_DEPTH})
  --sort-limit N           entries folder pages may hold at once to sort them, between them; a
                           folder that does not fit is shown in the order the disk gives
                           (default ${DEFAULT_SORT_LIMIT}; 0 never sorts)
  --log text|json|combined
                           log format (default text): a line per request and per event; combined
                           is the access log format of nginx and Apache, for log analysers, with
                           other events as text on standard error
  --log-level LEVEL        debug, info, warning or error: the least important lines written
                           (default info: a line per request, and what else happens as usual;
                           debug adds connections opened and closed as usual and a trusted
                           proxy's own requests, such as its health checks)
  --quiet                  --log-level warning: only what an operator should look at
  --tls-cert FILE          speak TLS, with this certificate (PEM: the server's, then any
                           intermediate ones)
  --tls-key FILE           the certificate's private key (PEM); goes with --tls-cert
  --tokens FILE            answer only clients that present one of the access tokens in FILE
                           (one a line; blank lines and # comments allowed); SIGHUP reads it again
  --allow-original-without-token
                           with --tokens, serve the original text dialect all the same, though it
                           cannot carry a token: anyone who reaches the port can read every file
  -h, --help               show this help

Sizes: ${SIZE_UNITS_HELP}.
Listening on an address other machines can reach with neither TLS nor tokens gives a warning; see
docs/SECURITY.md for how to serve other machines.`;

/** The server's options as the command line gives them: the token file still to be read. */
export type ServerCommand = Omit<ServerOptions, "tokens"> & { tokenFile?: string; workers: number };

/** The cores this process may use: the default number of worker threads. */
function cores(): number {
  return navigator.hardwareConcurrency;
}

/** Turns the command line into server options; throws UsageError on any mistake. */
export function parseServerArgs(args: string[]): ServerCommand | "help" {
  const { values, positionals } = parseCommandLine(args, {
    host: { type: "string", default: DEFAULT_HOST },
    port: { type: "string" },
    "http-port": { type: "string" },
    "html-sandbox": { type: "boolean", default: false },
    index: { type: "string" },
    compress: { type: "string", default: "on" },
    "cache-control": { type: "string" },
    cors: { type: "string" },
    data: { type: "string", default: "server_data" },
    "cache-size": { type: "string", default: "64MiB" },
    policy: { type: "string", default: DEFAULT_POLICY },
    "revalidate-ms": { type: "string", default: String(DEFAULT_REVALIDATE_MS) },
    "max-connections": { type: "string", default: "1024" },
    "max-connections-per-host": { type: "string" },
    "request-timeout": { type: "string", default: "10" },
    "trust-proxy": { type: "string" },
    "idle-timeout": { type: "string", default: "60" },
    "shutdown-timeout": { type: "string", default: "10" },
    workers: { type: "string" },
    "max-listings": { type: "string", default: String(DEFAULT_MAX_LISTINGS) },
    "list-depth": { type: "string", default: String(DEFAULT_LIST_DEPTH) },
    "sort-limit": { type: "string", default: String(DEFAULT_SORT_LIMIT) },
    log: { type: "string", default: "text" },
    "log-level": { type: "string" },
    quiet: { type: "boolean", default: false },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    tokens: { type: "string" },
    "allow-original-without-token": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return "help";
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  if (positionals.length === 1 && values.port !== undefined) {
    throw new UsageError("give the port either as PORT or as --port, not both");
  }
  const port = parsePort(
    positionals[0] ?? values.port ?? String(DEFAULT_PORT),
    positionals[0] ? "PORT" : "--port",
  );
  const cacheBytes = parseSizeFlag(values["cache-size"], "--cache-size");
  if (!POLICIES.includes(values.policy as PolicyName)) {
    throw new UsageError(`--policy takes one of ${POLICIES.join(", ")}, not "${values.policy}"`);
  }
  if (!LOG_FORMATS.includes(values.log as LogFormat)) {
    throw new UsageError(`--log takes ${LOG_FORMATS.join(", ")}, not "${values.log}"`);
  }
  if (values.quiet && values["log-level"] !== undefined) {
    throw new UsageError("give --quiet or --log-level, not both");
  }
  const level = (values.quiet ? "warning" : values["log-level"] ?? "info") as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    throw new UsageError(`--log-level takes ${LOG_LEVELS.join(", ")}, not "${level}"`);
  }
  const [cert, key] = [values["tls-cert"], values["tls-key"]];
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError(
      "--tls-cert and --tls-key go together: TLS needs the certificate and its key",
    );
  }
  if (cert !== undefined && values["trust-proxy"] !== undefined) {
    // A proxy's PROXY line comes before its TLS handshake, in the clear; the server reads it after.
    throw new UsageError(
      "--trust-proxy cannot go with --tls-cert: let the proxy end TLS (see docs/SCALING.md)",
    );
  }
  if (values.compress !== "on" && values.compress !== "off") {
    throw new UsageError(`--compress takes on or off, not "${values.compress}"`);
  }
  for (const flag of ["html-sandbox", "index", "cache-control", "cors"] as const) {
    if (values[flag] && values["http-port"] === undefined) {
      throw new UsageError(`--${flag} goes with --http-port`);
    }
  }
  if (values["allow-original-without-token"] && values.tokens === undefined) {
    throw new UsageError("--allow-original-without-token goes with --tokens");
  }
  return {
    host: values.host,
    port,
    folder: values.data,
    cacheBytes,
    policy: values.policy as PolicyName,
    revalidateMs: parseInteger(values["revalidate-ms"], "--revalidate-ms", 0, 60_000),
    maxConnections: parseInteger(values["max-connections"], "--max-connections", 1, 1_000_000),
    maxConnectionsPerHost: values["max-connections-per-host"] === undefined
      ? undefined
      : parseInteger(
        values["max-connections-per-host"],
        "--max-connections-per-host",
        1,
        1_000_000,
      ),
    idleTimeoutMs: parseSeconds(values["idle-timeout"], "--idle-timeout"),
    requestTimeoutMs: parseSeconds(values["request-timeout"], "--request-timeout"),
    trustProxies: values["trust-proxy"]?.split(",").map((address) => address.trim()),
    httpPort: values["http-port"] === undefined
      ? undefined
      : parsePort(values["http-port"], "--http-port"),
    htmlSandbox: values["html-sandbox"],
    index: listFlag(values.index, "--index", isIndexName),
    compress: values.compress === "on",
    cacheControl: headerValue(values["cache-control"], "--cache-control"),
    cors: listFlag(values.cors, "--cors", isOrigin),
    shutdownTimeoutMs: parseSeconds(values["shutdown-timeout"], "--shutdown-timeout"),
    maxListings: parseInteger(values["max-listings"], "--max-listings", 1, 1024),
    listDepth: parseInteger(values["list-depth"], "--list-depth", 0, 1024),
    sortLimit: parseInteger(values["sort-limit"], "--sort-limit", 0, 10_000_000),
    logger: new Logger(values.log as LogFormat, Deno.stdout, level, { gatherMs: LOG_GATHER_MS }),
    tls: cert === undefined || key === undefined ? undefined : { cert, key },
    tokenFile: values.tokens,
    originalWithoutToken: values["allow-original-without-token"],
    workers: values.workers === undefined
      ? cores()
      : parseInteger(values.workers, "--workers", 1, 1024),
  };
}

/**
 * The items of a comma-separated flag's value, each checked by `valid`; undefined when the flag
 * is not given.
 */
function listFlag(
  value: string | undefined,
  flag: string,
  valid: (item: string) => boolean,
): string[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(",").map((item) => item.trim());
  const wrong = items.find((item) => !valid(item));
  if (wrong !== undefined) throw new UsageError(`${flag} does not take "${wrong}"`);
  return items;
}

/** True for a file name a folder can hold: no slash, not "." or "..", not empty. */
function isIndexName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !name.includes("/");
}

/** True for `*` or an origin as browsers send it: scheme://host[:port], nothing after. */
function isOrigin(origin: string): boolean {
  return origin === "*" || /^https?:\/\/[^/\s?#]+$/i.test(origin);
}

/** `value` when it can be sent as a header field's value: printable, on one line. */
function headerValue(value: string | undefined, flag: string): string | undefined {
  if (value !== undefined && !/^[\x20-\x7e]+$/.test(value)) {
    throw new UsageError(`${flag} takes printable ASCII on one line`);
  }
  return value;
}

/**
 * Reads the token file and the TLS certificate again (on SIGHUP), without touching a connection,
 * here and in every worker thread (`server`'s, when it has them); a file that cannot be used
 * leaves what was in use, and the log says why.
 */
async function reload(
  tokens: Tokens | undefined,
  logger: Logger,
  server: FileServer | ServerPool | undefined,
): Promise<void> {
  if (tokens !== undefined) {
    try {
      logger.event("tokens-reloaded", { tokens: await tokens.reload() });
    } catch (error) {
      logger.event("tokens-kept", { tokens: tokens.count, error: reasonOf(error) }, "warning");
    }
  }
  // Worker threads read both again each for itself; one server reads its certificate again.
  if (server instanceof ServerPool) await server.reload();
  else await server?.reloadCertificate();
}

if (import.meta.main) {
  let command;
  try {
    command = parseServerArgs(Deno.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`server: ${error.message} (see server --help)`);
    Deno.exit(Exit.Usage);
  }
  if (command === "help") {
    console.log(USAGE);
    Deno.exit(Exit.Ok);
  }
  const { tokenFile, workers, ...options } = command;
  let server: FileServer | ServerPool | undefined;
  try {
    const tokens = tokenFile === undefined ? undefined : await Tokens.load(tokenFile);
    // SIGHUP reads the token file and the certificate again, as a renewal or a new token needs;
    // listened for before the server starts, so that one sent as soon as it listens is not fatal.
    let started: FileServer | ServerPool | undefined;
    Deno.addSignalListener("SIGHUP", () => reload(tokens, options.logger, started));
    server = started = workers === 1
      ? await FileServer.start({ ...options, tokens })
      : await ServerPool.start({ ...options, tokens }, workers);
  } catch (error) {
    console.error(`server: cannot start: ${reasonOf(error)}`);
    Deno.exit(1);
  }
  // The first signal shuts down gracefully. The watchdog, on a thread of its own, ends the process
  // if that overruns its deadline, or at once on a second signal, however busy this thread is.
  const watchdog = watchShutdown(options.shutdownTimeoutMs, options.logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    options.logger.event("shutdown", { signal });
    watchdog.began(server instanceof ServerPool ? server.connections : server.stats().connections);
    server.close().then(() => Deno.exit(Exit.Ok));
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
