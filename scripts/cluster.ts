/**
 * `make cluster N=3`: N server nodes on this machine sharing one folder, each with 1/N of the
 * cache and an HTTP port, plus haproxy in front of their HTTP ports when it is installed. Node i
 * listens on 4460+i (native) and 8080+i (HTTP), haproxy on 8080; `--port 0 --http-port 0` takes
 * any free ports instead. Each line a process prints is shown after its name. A process that ends
 * is named, with how it ended, and the others keep running: stop a node to see the rest carry on.
 * Ctrl-C stops them all.
 *
 * Usage: deno run -A scripts/cluster.ts [--nodes N] [--data DIR] [--cache-size SIZE] [--port P]
 *        [--http-port P]
 */

import { join } from "node:path";
import { parseCommandLine, parseInteger, parsePort } from "../lib/shared/cli.ts";
import { formatBytes, parseSize } from "../lib/shared/units.ts";
import {
  ended,
  freePort,
  haproxyChecked,
  haproxyConfig,
  has,
  ROOT,
  SERVER_COMMAND,
  textLines,
} from "../testing/support.ts";

/** A process of the cluster, running or ended. */
interface Member {
  name: string;
  child: Deno.ChildProcess;
  /** Resolves with the node's "listening" line, or undefined if it ended before logging one. */
  listening: Promise<string | undefined>;
  /** Resolves once everything it printed is shown. */
  shown: Promise<unknown>;
}

/**
 * Starts a process of the cluster in a session of its own (setsid), so that Ctrl-C reaches this
 * script alone, which stops each process with one signal: a node that heard Ctrl-C too would take
 * the second signal as the order to stop without finishing its transfers. Every line it prints
 * is shown after its name, on standard output or standard error as it printed it.
 */
function start(name: string, command: string, args: string[]): Member {
  const child = new Deno.Command("setsid", {
    args: [command, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const listening = Promise.withResolvers<string | undefined>();
  const show = async (stream: ReadableStream<Uint8Array>, to: typeof Deno.stdout) => {
    const encoder = new TextEncoder();
    for await (const line of textLines(stream)) {
      if (/^\S+ listening /.test(line)) listening.resolve(line);
      await to.write(encoder.encode(`${name} | ${line}\n`));
    }
  };
  const shown = Promise.all([show(child.stdout, Deno.stdout), show(child.stderr, Deno.stderr)])
    .finally(() => listening.resolve(undefined));
  return { name, child, listening: listening.promise, shown };
}

/** How a process ended, in words. */
function howItEnded(status: Deno.CommandStatus): string {
  return status.signal ? `was killed by ${status.signal}` : `ended with exit status ${status.code}`;
}

const { values } = parseCommandLine(Deno.args, {
  nodes: { type: "string", default: "3" },
  data: { type: "string", default: join(ROOT, "server_data") },
  "cache-size": { type: "string", default: "64MiB" },
  port: { type: "string", default: "4460" },
  "http-port": { type: "string", default: "8080" },
});
const count = parseInteger(values.nodes, "--nodes", 1, 64);
const each = Math.floor(parseSize(values["cache-size"]) / count);
const [base, httpBase] = [parsePort(values.port), parsePort(values["http-port"], "--http-port")];
/** Port `base`+i for node i, or any free one when `base` is 0. */
const portOf = (base: number, i: number) => String(base && base + i);

const members: Member[] = [];
let stopped: Promise<void> | undefined;
const temporary: string[] = [];
/** Stops every process, once: a second signal would make a node drop its transfers in flight. */
const stopAll = () =>
  stopped ??= (async () => {
    await Promise.all(
      members.map(({ child, shown }) => Promise.all([ended(child, "SIGTERM"), shown])),
    );
    for (const path of temporary) await Deno.remove(path);
  })();
Deno.addSignalListener("SIGINT", async () => {
  console.log("\nstopping every process of the cluster");
  await stopAll();
  Deno.exit(0);
});

/** A node that listens: its name, its addresses and its pid. */
interface Node {
  name: string;
  native: string;
  http: number;
  pid: number;
}

/** Starts the nodes; resolves with those that listen, once each has said where (or ended). */
async function startNodes(): Promise<Node[]> {
  const nodes = Array.from({ length: count }, (_, i) =>
    start(`node${i + 1}`, Deno.execPath(), [
      ...SERVER_COMMAND,
      ...["--port", portOf(base, i + 1), "--http-port", portOf(httpBase, i + 1)],
      ...["--data", values.data, "--cache-size", String(each), "--trust-proxy", "127.0.0.1"],
    ]));
  members.push(...nodes);
  const up: Node[] = [];
  for (const node of nodes) {
    const line = await node.listening;
    if (line === undefined) continue;
    const native = /address=(\S+)/.exec(line)![1];
    const http = Number(/http=\S+:(\d+)/.exec(line)![1]);
    up.push({ name: node.name, native, http, pid: node.child.pid });
  }
  return up;
}

/**
 * Starts haproxy in front of the nodes' HTTP ports, and says where once it has checked each node
 * and found it up.
 */
async function startHaproxy(up: Node[]): Promise<void> {
  const front = httpBase === 0 ? freePort() : httpBase;
  const stats = freePort();
  const path = await Deno.makeTempFile({ prefix: "fileserver-haproxy-", suffix: ".cfg" });
  temporary.push(path);
  await Deno.writeTextFile(path, await haproxyConfig(up.map((node) => node.http), front, stats));
  const haproxy = start("haproxy", "haproxy", ["-db", "-f", path]);
  members.push(haproxy);
  const checked = await Promise.race([
    haproxyChecked(stats, up.length).then(() => true, (error) => {
      console.error(`haproxy: ${error.message} (its view of them: http://127.0.0.1:${stats}/)`);
      return false;
    }),
    haproxy.child.status.then(() => false),
  ]);
  if (checked) {
    console.log(`Through haproxy: curl -O http://127.0.0.1:${front}/NAME`);
    console.log(`  its view of the nodes: http://127.0.0.1:${stats}/`);
  }
}

/** Names each process that ends and how, while others run; resolves once none is left. */
async function watch(): Promise<void> {
  const running = new Set(members);
  await Promise.all(members.map(async (member) => {
    const [status] = await Promise.all([member.child.status, member.shown]); // its last words first
    running.delete(member);
    if (stopped !== undefined) return;
    const rest = [...running].map(({ name }) => name);
    console.error(
      `${member.name} (pid ${member.child.pid}) ${howItEnded(status)}; ` +
        (rest.length > 0
          ? `still running: ${rest.join(", ")}`
          : "no process of the cluster is left"),
    );
  }));
}

const up = await startNodes();
console.log(
  `${up.length} of ${count} nodes, ${formatBytes(each)} of cache each, sharing ${values.data}:`,
);
for (const node of up) {
  console.log(`  ${node.name}: ${node.native}, HTTP 127.0.0.1:${node.http}, pid ${node.pid}`);
}
if (up.length > 0) {
  const servers = up.map((node) => node.native).join(",");
  console.log(`Through the nodes: ./scripts/deno run -A client.ts --servers ${servers} get NAME`);
  if (await has("haproxy")) await startHaproxy(up);
  else {console.log(
      "haproxy is not installed (Debian: apt-get install haproxy): the nodes run alone",
    );}
  console.log("Ctrl-C stops them all; stopping one node (kill PID) leaves the rest.");
}
await watch();
await stopAll(); // for the temporary files
Deno.exit(1);
