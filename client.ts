/**
 * The file server's command-line client: parses arguments and drives {@link FileClient}.
 * Both the original form (`client HOST PORT list|help|file NAME`) and the modern one work.
 */

import { type ConnectOptions, FileClient } from "./lib/client/client.ts";
import { Cluster, type Connect, downloadShares, mergeLists } from "./lib/client/cluster.ts";
import { credentials, TOKEN_VARIABLE } from "./lib/client/credentials.ts";
import type { DownloadResult } from "./lib/client/plan.ts";
import { SPLIT_MIN_BYTES } from "./lib/client/split.ts";
import { ConnectionError, ServerError, writeFailure } from "./lib/client/errors.ts";
import { ProgressBar } from "./lib/client/progress.ts";
import { formatStats, printList } from "./lib/client/report.ts";
import { printable } from "./lib/client/terminal.ts";
import {
  Exit,
  parseCommandLine,
  parseInteger,
  parsePort,
  parseSeconds,
  UsageError,
} from "./lib/shared/cli.ts";
import { DEFAULT_HOST, DEFAULT_PORT } from "./lib/shared/defaults.ts";
import { type DigestAlgorithm, digestByName, DIGESTS } from "./lib/shared/digest.ts";
import { reasonOf } from "./lib/shared/errors.ts";
import { formatBytes } from "./lib/shared/units.ts";

const USAGE = `Usage: client [--host HOST] [--port PORT | --servers H:P,...] COMMAND [ARGS]
       client HOST PORT list | help | file NAME      (the original form)

Commands:
  list [--json]          the server's files as they come: size, modified, whether cached, name
  get NAME... [options]  download files (several go over one connection)
      --output DIR|FILE  where to save (default client_data); for one NAME, a FILE to save it as
                         unless that is a folder; - writes to standard output
      --no-verify        skip the digest check of each file
      --digest NAME      the digest to check with: xxh3-128 (default) or sha256
      --connections N    fetch over N connections at once (default 1; a large file in pieces)
      --quiet            no progress bar (there is none anyway when stderr is not a terminal)
  stats [--json]         the server's counters
  help                   the server's list of requests

Options:
  --host HOST            server address (default ${DEFAULT_HOST})
  --port PORT            server port (default ${DEFAULT_PORT})
  --servers H:P,H:P,...  several servers sharing one folder: each name goes to one of them (the
                         same for every client given the same list), one that cannot be reached
                         is left out; list merges their lists, stats shows each and the sum
  --servers-file FILE    the same, one HOST:PORT per line (# starts a comment)
  --timeout S            give up when the server sends nothing for S seconds (default 30)
  --tls                  speak TLS, trusting the certificate authorities this system trusts
  --ca FILE              trust the authority (or self-signed certificate) in FILE too; implies --tls
  --token-file FILE      present the access token in FILE (its one line); without it, the one in
                         the ${TOKEN_VARIABLE} environment variable, if set
  -h, --help             show this help

Exit codes: 0 all done, 1 a file not found or failed, 2 usage, 3 could not connect (the
certificate or the token refused among others), the connection broke or the server broke the
protocol.`;

const COMMANDS = ["list", "get", "stats", "help"];

/** Where `get` saves when not told. */
const DEFAULT_OUTPUT = "client_data";

/** The most connections one `get` opens: past a few, more only crowd the server. */
const MAX_CONNECTIONS = 16;
/** The exit code of a run ended by Ctrl-C (SIGINT), as a shell reports one killed by it. */
const INTERRUPTED = 130;
/** From how many MiB a file may come in pieces. */
const SPLIT_MIN_MIB = SPLIT_MIN_BYTES / 1024 / 1024;

/** `client COMMAND --help`: what one command does and takes. */
const COMMAND_HELP: Record<string, string> = {
  list: `Usage: client [--host HOST] [--port PORT] list [--json] [--sha256]

Lists the server's files as they come, in the order its disk gives (pipe through sort for
another): size, modification time, whether the server holds the file in its cache, and name.
--json prints one JSON array for scripts; with --sha256, each file's
SHA-256 too (in hex), to compare with a published sum (the server reads every file it has no
digest of yet, so this can take a while on a large folder).`,
  get: `Usage: client [--host HOST] [--port PORT] get NAME... [options]
       client HOST PORT file NAME      (the original form)

Downloads each NAME (a path relative to the server's folder); several go over one connection
unless --connections says more. Each file is written to a hidden temporary name beside its target
(.NAME.part) and renamed only once complete and its digest matches the server's. An interrupted
download resumes from where it stopped when the same command runs again; if the file changed on
the server meanwhile (its size or modification time differ from those recorded beside the partial
file, .NAME.part.ranges), the partial file is deleted and the file fetched from the start.

Options:
  -o, --output PATH      where to save (default client_data): a folder, in which each file keeps
                         its name; with one NAME, a PATH that is not a folder (one that exists, or
                         one ending in /) is the name the file is saved as, as curl -o and wget -O
                         have it; - writes the bytes to standard output
  --no-verify            skip the digest check: faster, but a damaged or changed file goes unseen
  --digest NAME          the digest the server ends each file with, and the client checks:
                         xxh3-128 (the default: fast) or sha256 (to compare with published sums)
  --connections N        fetch over N connections at once, 1 to ${MAX_CONNECTIONS} (default 1): the files are
                         shared out among them, and when there are fewer files than connections,
                         a file of ${SPLIT_MIN_MIB} MiB or more comes in pieces side by side, what is written
                         recorded in .NAME.part.ranges so that a rerun fetches only the rest.
                         Faster where one connection cannot fill the network (a long round
                         trip); a folder only, as standard output takes the files in order
  -q, --quiet            no progress bar (one shows on a terminal for files over 1 MiB)`,
  stats: `Usage: client [--host HOST] [--port PORT] stats [--json]

Prints the server's counters: requests, hits, misses, hit ratios, evictions, bytes sent, cache
use, connections and uptime. --json prints one JSON object for scripts.`,
  help: `Usage: client [--host HOST] [--port PORT] help

Prints the list of requests the server understands.`,
};

/** A parsed command line. */
export interface ClientCommand {
  /** The servers, each "host:port": one, or several sharing one folder. */
  servers: string[];
  command: "list" | "get" | "stats" | "help";
  names: string[];
  /** The output folder, or "-" for standard output; see `toFile`. */
  output: string;
  /** One file, and --output named for it: the path to save it at, unless that is a folder. */
  toFile: boolean;
  json: boolean;
  verify: boolean;
  /** The one digest to ask for, or undefined to offer every one known, XXH3-128 first. */
  digest?: DigestAlgorithm;
  /** `list` with each file's SHA-256. */
  sha256: boolean;
  /** Connections a `get` fetches over. */
  connections: number;
  quiet: boolean;
  timeoutMs: number;
  /** Speak TLS; with `ca`, trusting the certificates in that file too. */
  tls?: { ca?: string };
  /** The file holding the access token to present (else FILESERVER_TOKEN, if set). */
  tokenFile?: string;
}

/** Turns the command line into a command; throws UsageError on any mistake. */
export function parseClientArgs(args: string[]): ClientCommand | { help: string } {
  const { values, positionals } = parseCommandLine(args, {
    host: { type: "string" },
    port: { type: "string" },
    servers: { type: "string" },
    "servers-file": { type: "string" },
    timeout: { type: "string", default: "30" },
    output: { type: "string", short: "o" },
    json: { type: "boolean", default: false },
    "no-verify": { type: "boolean", default: false },
    digest: { type: "string" },
    connections: { type: "string", default: "1" },
    sha256: { type: "boolean", default: false },
    quiet: { type: "boolean", short: "q", default: false },
    tls: { type: "boolean", default: false },
    ca: { type: "string" },
    "token-file": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    const command = positionals.find((word) => COMMANDS.includes(word) || word === "file");
    return { help: COMMAND_HELP[command === "file" ? "get" : command ?? ""] ?? USAGE };
  }
  let host = values.host ?? DEFAULT_HOST;
  let port = values.port === undefined ? DEFAULT_PORT : parsePort(values.port);
  let words = positionals;
  const original = words.length >= 3 && !COMMANDS.includes(words[0]) && /^\d+$/.test(words[1]);
  if (original) {
    if (values.host !== undefined || values.port !== undefined) {
      throw new UsageError("give the server either as HOST PORT or with --host/--port, not both");
    }
    host = words[0];
    port = parsePort(words[1], "PORT");
    words = words.slice(2);
    if (words[0] === "file") words = ["get", ...words.slice(1)];
  }
  const [command, ...names] = words;
  if (command === undefined) throw new UsageError("no command given");
  if (!COMMANDS.includes(command)) throw new UsageError(`unknown command "${command}"`);
  if (command === "get" && names.length === 0) throw new UsageError("get needs at least one NAME");
  if (command !== "get" && names.length > 0) {
    throw new UsageError(`${command} takes no names, but got "${names[0]}"`);
  }
  const digest = values.digest === undefined ? undefined : digestByName(values.digest);
  if (values.digest !== undefined && digest === undefined) {
    const known = DIGESTS.map((algorithm) => algorithm.name).join(" or ");
    throw new UsageError(`--digest takes ${known}, not "${values.digest}"`);
  }
  if (values.sha256 && command !== "list") throw new UsageError("--sha256 goes with list");
  const connections = parseInteger(values.connections, "--connections", 1, MAX_CONNECTIONS);
  const servers = serversOf(values, original, `${host.includes(":") ? `[${host}]` : host}:${port}`);
  if (connections > 1 && values.output === "-") {
    throw new UsageError("--connections goes with a folder: standard output takes files in order");
  }
  return {
    servers,
    command: command as ClientCommand["command"],
    names,
    output: values.output ?? DEFAULT_OUTPUT,
    toFile: values.output !== undefined && values.output !== "-" && new Set(names).size === 1,
    json: values.json,
    verify: !values["no-verify"],
    digest,
    sha256: values.sha256,
    connections,
    quiet: values.quiet,
    timeoutMs: parseSeconds(values.timeout, "--timeout"),
    tls: values.tls || values.ca !== undefined ? { ca: values.ca } : undefined,
    tokenFile: values["token-file"],
  };
}

/**
 * The servers the command line names: --servers, --servers-file, or the one server of --host and
 * --port (or HOST PORT), `one`.
 */
function serversOf(
  values: { host?: string; port?: string; servers?: string; "servers-file"?: string },
  original: boolean,
  one: string,
): string[] {
  const file = values["servers-file"];
  if (values.servers === undefined && file === undefined) return [one];
  if (values.servers !== undefined && file !== undefined) {
    throw new UsageError("give the servers either with --servers or with --servers-file, not both");
  }
  if (original || values.host !== undefined || values.port !== undefined) {
    throw new UsageError("give the servers either with --servers or as one --host and --port");
  }
  let list = values.servers?.split(",") ?? [];
  if (file !== undefined) {
    try {
      list = Deno.readTextFileSync(file).split("\n").filter((line) => !/^\s*(#|$)/.test(line));
    } catch (error) {
      throw new UsageError(`cannot read --servers-file ${file}: ${reasonOf(error)}`);
    }
  }
  const servers = [...new Set(list.map((server) => server.trim()))];
  for (const server of servers) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d+)$/.exec(server);
    if (!match) throw new UsageError(`a server is HOST:PORT, not "${server}"`);
    parsePort(match[2], `the port of ${server}`);
  }
  if (servers.length === 0) throw new UsageError("--servers names no server");
  return servers;
}

/** Runs a command against the server (or servers); returns the exit code. */
export async function runClient(command: ClientCommand): Promise<number> {
  const options: ConnectOptions = {
    timeoutMs: command.timeoutMs,
    digests: command.digest && [command.digest],
    ...await credentials(command.tls, command.tokenFile),
  };
  const connect = (server: string) => {
    const colon = server.lastIndexOf(":");
    const host = server.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
    return FileClient.connect(host, Number(server.slice(colon + 1)), options);
  };
  const cluster = new Cluster(command.servers, connect, (_server, error) => {
    complain(`${error.message}; going on without it`);
  });
  try {
    switch (command.command) {
      case "list": {
        const clients = [...(await cluster.reachable()).values()];
        // One server's list is printed as it comes; several servers' are merged first.
        const batches = clients.length === 1
          ? clients[0].entries(command.sha256)
          : [mergeLists(await Promise.all(clients.map((client) => client.list(command.sha256))))];
        await printList(batches, command.json, Deno.stdout);
        return Exit.Ok;
      }
      case "stats": {
        const reached = await cluster.reachable();
        const stats = await Promise.all([...reached.values()].map((client) => client.stats()));
        console.log(formatStats([...reached.keys()], stats, command.json));
        return Exit.Ok;
      }
      case "help": {
        const [client] = (await cluster.reachable()).values();
        console.log(printable(await client.help(), { multiline: true }));
        return Exit.Ok;
      }
      case "get":
        return await get(await cluster.assign(command.names), connect, command);
    }
  } finally {
    await cluster.close();
  }
}

/**
 * Downloads the command's files, each share over its server's connection and as many more as
 * asked for, telling how each went as soon as it is done.
 */
async function get(
  shares: Map<FileClient, string[]>,
  connect: Connect,
  command: ClientCommand,
): Promise<number> {
  const bar = new ProgressBar(Deno.stderr, { quiet: command.quiet });
  const report = command.output === "-" ? console.error : console.log;
  let failed = 0;
  // Ctrl-C still ends the run at once, but says what it leaves, and how to go on from there.
  const interrupted = () => {
    bar.done();
    complain("interrupted; partial files are kept: run the same command again to resume");
    Deno.exit(INTERRUPTED);
  };
  if (command.output !== "-") Deno.addSignalListener("SIGINT", interrupted);
  try {
    for await (
      const result of downloadShares(shares, connect, command.connections, {
        output: command.output,
        toFile: command.toFile,
        verify: command.verify,
        progress: progressOf(bar, command),
      })
    ) {
      bar.clear();
      if (result.error !== undefined) {
        failed++;
        complain(`${result.name}: ${result.error}`);
      } else if (result.path !== undefined) report(saved(result));
    }
  } finally {
    if (command.output !== "-") Deno.removeSignalListener("SIGINT", interrupted);
    bar.done();
  }
  return failed > 0 ? Exit.Failed : Exit.Ok;
}

/** The line that tells of a file saved: where, how large, and what an interrupted run left. */
function saved(result: DownloadResult): string {
  const resumed = result.afresh
    ? ", from the start: the file changed on the server since the interrupted run"
    : result.resumedFrom === 0
    ? ""
    : result.split
    ? `, ${formatBytes(result.resumedFrom)} of it from the interrupted run`
    : `, resumed from byte ${result.resumedFrom}`;
  return `saved ${result.path} (${formatBytes(result.resumedFrom + result.bytes)}${resumed})`;
}

/**
 * What the progress bar is told: each file as it comes, or, when several files come at once over
 * several connections, all of them together as one.
 */
function progressOf(bar: ProgressBar, command: ClientCommand) {
  if ((command.connections === 1 && command.servers.length === 1) || command.names.length === 1) {
    return (name: string, done: number, total: number) => bar.update(name, done, total);
  }
  const files = new Map<string, { done: number; total: number }>();
  const label = `${new Set(command.names).size} files`;
  return (name: string, done: number, total: number) => {
    files.set(name, { done, total });
    let allDone = 0;
    let allTotal = 0;
    for (const file of files.values()) {
      allDone += file.done;
      allTotal += file.total;
    }
    bar.update(label, allDone, allTotal);
  };
}

/** Tells the user of a failure in one line on standard error, what a server said escaped. */
function complain(message: string): void {
  console.error(`client: ${printable(message)}`);
}

if (import.meta.main) {
  let command;
  try {
    command = parseClientArgs(Deno.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    complain(`${error.message} (see client --help)`);
    Deno.exit(Exit.Usage);
  }
  if ("help" in command) {
    console.log(command.help);
    Deno.exit(Exit.Ok);
  }
  try {
    Deno.exit(await runClient(command));
  } catch (error) {
    if (error instanceof UsageError) {
      complain(error.message);
      Deno.exit(Exit.Usage);
    }
    if (error instanceof ConnectionError) {
      complain(error.message);
      Deno.exit(Exit.Connection);
    }
    if (error instanceof ServerError) {
      complain(error.message);
      Deno.exit(Exit.Failed);
    }
    if (error instanceof Error && "code" in error) {
      // Only printing touches the system outside the download's own handling: stdout failed.
      // A reader that has read enough (`| head`) closed it: nothing to say, as for any Unix tool.
      if (error.code === "EPIPE") Deno.exit(Exit.ReaderLeft);
      complain(writeFailure(error, "standard output"));
      Deno.exit(Exit.Failed);
    }
    throw error;
  }
}
