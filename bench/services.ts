/**
 * The servers the benchmarks run against, each as its own process on a free loopback port: ours
 * (server.ts, as `make run` starts it), and nginx and an rsync daemon for comparison when they are
 * installed.
 */

import { accepting, freePort, SERVER_COMMAND } from "../testing/support.ts";

/** A server running for a benchmark. */
export interface Service {
  port: number;
  process: Deno.ChildProcess;
  stop(): Promise<void>;
}

/** Clock ticks a second, in /proc's times: 100 on every Linux machine here. */
const TICKS_PER_SECOND = 100;

/**
 * Seconds of CPU (user and system, every thread) the process `pid` and its children alive now
 * have used: a server's own, or an nginx master's and its workers'.
 */
export function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The fields after the name (which may hold spaces) in parentheses; utime and stime are 14, 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const own = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  const children = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim();
  const pids = children.split(" ").filter((child) => child !== "").map(Number);
  return pids.map(cpuSeconds).reduce((a, b) => a + b, own);
}

/** Starts server.ts with `args` on a free port; resolves once it accepts connections. */
export function startServer(args: string[]): Promise<Service> {
  const port = freePort();
  return started(
    port,
    new Deno.Command(Deno.execPath(), {
      args: [...SERVER_COMMAND, "--port", String(port), ...args],
      stdout: "null",
      stderr: "inherit",
    }),
    "SIGKILL",
  );
}

/**
 * Serves `root` with nginx (sendfile on, as a production setup would), its files under `prefix`:
 * a worker per core unless `workers` says, over TLS with `tls`'s certificate and key, with `http`
 * added to its http block and `server` to its server block (locations, say).
 */
export async function startNginx(
  root: string,
  prefix: string,
  { workers = "auto", tls, http = "", server = "" }: {
    workers?: number | "auto";
    tls?: { cert: string; key: string };
    http?: string;
    server?: string;
  } = {},
): Promise<Service> {
  const port = freePort();
  await Deno.mkdir(`${prefix}/logs`, { recursive: true });
  const listen = tls === undefined
    ? `listen 127.0.0.1:${port};`
    : `listen 127.0.0.1:${port} ssl; ssl_certificate ${tls.cert}; ssl_certificate_key ${tls.key};`;
  await Deno.writeTextFile(
    `${prefix}/nginx.conf`,
    `daemon off; worker_processes ${workers}; pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log;
events { worker_connections 4096; }
http { access_log ${prefix}/logs/access.log; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  ${http}
  server { ${listen} root ${root}; ${server} } }
`,
  );
  const command = new Deno.Command("nginx", {
    args: ["-p", prefix, "-c", `${prefix}/nginx.conf`],
  });
  return await started(port, command, "SIGTERM");
}

/**
 * Serves `root` as the module `data` of an rsync daemon, its files under `prefix`. It runs as the
 * user running the benchmark (a daemon started as root would otherwise switch to nobody).
 */
export async function startRsync(root: string, prefix: string): Promise<Service> {
  const port = freePort();
  await Deno.mkdir(prefix, { recursive: true });
  await Deno.writeTextFile(
    `${prefix}/rsyncd.conf`,
    `use chroot = no
uid = ${Deno.uid()}
gid = ${Deno.gid()}
pid file = ${prefix}/rsyncd.pid
log file = ${prefix}/rsyncd.log
[data]
path = ${root}
read only = yes
`,
  );
  const command = new Deno.Command("rsync", {
    args: [
      "--daemon",
      "--no-detach",
      `--config=${prefix}/rsyncd.conf`,
      `--port=${port}`,
      "--address=127.0.0.1",
    ],
  });
  return await started(port, command, "SIGTERM");
}

/** Spawns `command` and waits until `port` accepts connections. */
async function started(port: number, command: Deno.Command, signal: Deno.Signal): Promise<Service> {
  const process = command.spawn();
  const stop = async () => {
    process.kill(signal);
    await process.status;
  };
  try {
    await accepting(port);
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, process, stop };
}
