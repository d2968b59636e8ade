/**
 * `make cluster N=3`: N server nodes on this machine sharing one folder, each with 1/N of the
 * cache and an HTTP port, plus haproxy in front of their HTTP ports when it is installed, all
 * stopped together on Ctrl-C. Node i listens on 4460+i (native) and 8080+i (HTTP); haproxy on
 * 8080. The client reaches them all with --servers 127.0.0.1:4461,127.0.0.1:4462,...
 *
 * Usage: deno run -A scripts/cluster.ts [--nodes N] [--data DIR] [--cache-size SIZE]
 */

import { join } from "node:path";
import { formatBytes, parseSize } from "../lib/shared/units.ts";
import { parseCommandLine, parseInteger } from "../lib/shared/cli.ts";
import { accepting, haproxyConfig, has, ROOT, SERVER_COMMAND } from "../testing/support.ts";

const { values } = parseCommandLine(Deno.args, {
  nodes: { type: "string", default: "3" },
  data: { type: "string", default: join(ROOT, "server_data") },
  "cache-size": { type: "string", default: "64MiB" },
});
const nodes = parseInteger(values.nodes, "--nodes", 1, 64);
const each = Math.floor(parseSize(values["cache-size"]) / nodes);

const children: Deno.ChildProcess[] = [];
const temporary: string[] = [];

/**
 * Starts a process of the cluster in a session of its own (setsid), so that Ctrl-C reaches this
 * script alone, which stops each process with one signal: a node that heard Ctrl-C too would take
 * the second signal as the order to stop without finishing its transfers.
 */
function start(command: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command("setsid", { args: [command, ...args], stdout: "inherit" }).spawn();
}
let stopped: Promise<void> | undefined;
/** Stops every process, once: a second signal would make a node drop its transfers in flight. */
const stopAll = () =>
  stopped ??= (async () => {
    for (const child of children) {
      try {
        child.kill("SIGTERM");
      } catch {
        // it has already exited
      }
    }
    await Promise.all(children.map((child) => child.status));
    for (const path of temporary) await Deno.remove(path);
  })();
Deno.addSignalListener("SIGINT", async () => {
  console.log("\nstopping every node");
  await stopAll();
  Deno.exit(0);
});

for (let i = 1; i <= nodes; i++) {
  const args = [
    ...SERVER_COMMAND,
    "--port",
    String(4460 + i),
    "--http-port",
    String(8080 + i),
    "--data",
    values.data,
    "--cache-size",
    String(each),
    "--trust-proxy",
    "127.0.0.1",
  ];
  children.push(start(Deno.execPath(), args));
}
const servers = Array.from({ length: nodes }, (_, i) => `127.0.0.1:${4461 + i}`).join(",");
console.log(`${nodes} nodes, ${formatBytes(each)} of cache each, sharing ${values.data}`);
console.log(`client: client --servers ${servers} get NAME...`);

// haproxy would otherwise find the nodes down at its first checks, and say so.
for (let i = 1; i <= nodes; i++) await accepting(8080 + i);

if (await has("haproxy")) {
  const config = await haproxyConfig(Array.from({ length: nodes }, (_, i) => 8081 + i), 8080);
  const path = await Deno.makeTempFile({ prefix: "fileserver-haproxy-", suffix: ".cfg" });
  temporary.push(path);
  await Deno.writeTextFile(path, config);
  children.push(start("haproxy", ["-db", "-f", path]));
  console.log("HTTP through haproxy: curl -O http://127.0.0.1:8080/NAME");
} else {
  console.log("haproxy is not installed (Debian: apt-get install haproxy): the nodes run alone");
}
console.log("Ctrl-C stops them all.");
await Promise.race(children.map((child) => child.status));
if (stopped === undefined) {
  console.error("a process of the cluster ended; stopping the others");
  await stopAll();
  Deno.exit(1);
}
