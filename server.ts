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
import { FileServer, type ServerOptions } from "./lib/server/server.ts";
import { Tokens } from "./lib/server/tokens.ts";
import { watchShutdown } from "./lib/server/watchdog.ts";
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
  --shutdown-timeout S     on SIGINT/SIGTERM, wait up to S seconds for answers in flight
                           (default 10); the process ends S+2 seconds after the signal at the
                           latest, however busy, and a second signal ends it at once
  --log text|json          log format (default text)
  --log-level info|debug   debug adds the routine lines left out by default: the connections a
                           trusted proxy makes for itself, such as its health checks (default info)
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
export type ServerCommand = Omit<ServerOptions, "tokens"> & { tokenFile?: string };

/** Turns the command line into server options; throws UsageError on any mistake. */
export function parseServerArgs(args: string[]): ServerCommand | "help" {
  const { values, positionals } = parseCommandLine(args, {
    host: { type: "string", default: DEFAULT_HOST },
    port: { type: "string" },
    "http-port": { type: "string" },
    "html-sandbox": { type: "boolean", default: false },
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
    log: { type: "string", default: "text" },
    "log-level": { type: "string", default: "info" },
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
    throw new UsageError(`--log takes text or json, not "${values.log}"`);
  }
  const level = values["log-level"] as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    throw new UsageError(`--log-level takes info or debug, not "${level}"`);
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
  if (values["html-sandbox"] && values["http-port"] === undefined) {
    throw new UsageError("--html-sandbox goes with --http-port");
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
    shutdownTimeoutMs: parseSeconds(values["shutdown-timeout"], "--shutdown-timeout"),
    logger: new Logger(values.log as LogFormat, Deno.stdout, level, LOG_GATHER_MS),
    tls: cert === undefined || key === undefined ? undefined : { cert, key },
    tokenFile: values.tokens,
    originalWithoutToken: values["allow-original-without-token"],
  };
}

/**
 * Reads the token file again (on SIGHUP) without touching a connection; a file that cannot be
 * used leaves the tokens as they were, and the log says why.
 */
async function reloadTokens(tokens: Tokens, logger: Logger): Promise<void> {
  try {
    logger.event("tokens-reloaded", { tokens: await tokens.reload() });
  } catch (error) {
    logger.event("tokens-kept", { tokens: tokens.count, error: reasonOf(error) });
  }
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
  const { tokenFile, ...options } = command;
  let server: FileServer;
  try {
    const tokens = tokenFile === undefined ? undefined : await Tokens.load(tokenFile);
    server = await FileServer.start({ ...options, tokens });
    if (tokens !== undefined) {
      Deno.addSignalListener("SIGHUP", () => reloadTokens(tokens, options.logger));
    }
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
    watchdog.began(server.stats().connections);
    server.close().then(() => Deno.exit(Exit.Ok));
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
