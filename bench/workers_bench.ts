/**
 * `server --workers 1` beside `--workers 2`, and nginx with 1 and 2 worker processes, side by side
 * in one run on the same files: the HTTP port at 4 KiB (wrk at 1, 16 and 64 connections), the
 * native port at 4 KiB over 64 connections (loadgen.ts, ours only), a cached 32 MiB file over TLS
 * and 32 MiB misses served from the page cache (curl, two at once, so two workers have work). Each
 * figure comes with the server's CPU time per request, all its threads (and for nginx all its
 * processes) counted from /proc: what a core more buys, and at what cost. What needs a missing
 * tool is skipped, saying so (Debian: nginx-light wrk curl).
 *
 * Usage: deno run -A bench/workers_bench.ts [--quick | --smoke]
 */

import {
  ended,
  has,
  makeCertificates,
  randomBytes,
  ROOT,
  SERVER_COMMAND,
  textLines,
} from "../testing/support.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import { lengthOf } from "./length.ts";
import type { LoadResult } from "./loadgen.ts";
import { startNginx } from "./services.ts";

const length = lengthOf(Deno.args);
/** Seconds of each wrk or loadgen run, and files each curl run fetches. */
const RUN = {
  full: { seconds: 5, files: 16, connections: [1, 16, 64] },
  quick: { seconds: 2, files: 6, connections: [1, 16, 64] },
  smoke: { seconds: 1, files: 2, connections: [16] },
}[length];
const WORK = `${ROOT}bench/.work/workers`;
const DATA = `${WORK}/data`;
/** 32 MiB files read from the page cache on every request: more than a 16 MiB cache takes. */
const MISSES = 4;
const MIB32 = 32 * 1024 * 1024;

/** A server under measure: where its ports are, and the processes whose CPU time is its. */
interface Subject {
  name: string;
  http: string;
  https: string;
  /** The native port, for ours. */
  native?: number;
  pids: () => number[];
  stop(): Promise<void>;
}

/** CPU time (µs) `pid` has used so far, every thread of it (utime + stime, /proc/PID/stat). */
async function cpuMicros(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15, counted from 1 with the pid, in clock ticks of 10 ms.
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** The processes whose parent is `pid` (nginx's workers). */
async function children(pid: number): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[1]) === pid) found.push(Number(entry.name));
  }
  return found;
}

/** Runs `work`, and the CPU time (µs) `subject`'s processes used meanwhile. */
async function measured<T>(subject: Subject, work: () => Promise<T>): Promise<[T, number]> {
  const pids = subject.pids();
  const before = await Promise.all(pids.map(cpuMicros));
  const result = await work();
  const after = await Promise.all(pids.map(cpuMicros));
  return [result, after.reduce((sum, cpu, i) => sum + cpu - before[i], 0)];
}

/** The stdout of `command args`, or a thrown error naming it. */
async function output(command: string, args: string[]): Promise<string> {
  const result = await new Deno.Command(command, { args, stderr: "inherit" }).output();
  if (!result.success) throw new Error(`${command} ${args.join(" ")} failed`);
  return new TextDecoder().decode(result.stdout);
}

/** Requests per second wrk measures for `url` over `connections`, and its request count. */
async function wrk(url: string, connections: number): Promise<[number, number]> {
  const threads = Math.min(connections, 2);
  const report = await output("wrk", [
    `-t${threads}`,
    `-c${connections}`,
    `-d${RUN.seconds}s`,
    url,
  ]);
  const requests = Number(/(\d+) requests in/.exec(report)![1]);
  return [Number(/Requests\/sec:\s+([\d.]+)/.exec(report)![1]), requests];
}

/**
 * Two curls at once, each fetching `names` under `base` in turn, RUN.files in all: MB/s overall and
 * the files fetched. `ca` is the authority to trust for TLS.
 */
async function curls(base: string, names: string[], ca?: string): Promise<[number, number]> {
  const started = performance.now();
  const one = async (offset: number) => {
    const args = ["-sS", ...(ca ? ["--cacert", ca] : [])];
    for (let i = offset; i < RUN.files; i += 2) {
      args.push("-o", "/dev/null", `${base}/${names[i % names.length]}`);
    }
    await output("curl", args);
  };
  await Promise.all([one(0), one(1)]);
  const seconds = (performance.now() - started) / 1000;
  return [RUN.files * MIB32 / seconds / 1e6, RUN.files];
}

/** What loadgen.ts (its own process) measures on the native port. */
async function loadgen(port: number, connections: number): Promise<LoadResult> {
  const args = [port, "small.bin", connections, 1, RUN.seconds].map(String);
  const out = await output(Deno.execPath(), [
    "run",
    "--allow-net",
    "--allow-read",
    `${ROOT}bench/loadgen.ts`,
    ...args,
  ]);
  return JSON.parse(out);
}

/**
 * New connections on the native port one after another, each closed once its greeting is read:
 * connections per second, and how many. Each costs a worker a round trip to the main thread for
 * its place at the gate, which this shows.
 */
async function connects(port: number): Promise<[number, number]> {
  const greeting = new Uint8Array(GREETING.length);
  const deadline = performance.now() + RUN.seconds * 1000;
  let count = 0;
  const started = performance.now();
  while (performance.now() < deadline) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    for (let got = 0; got < greeting.length;) {
      const n = await conn.read(greeting.subarray(got));
      if (n === null) throw new Error("the server closed before its greeting");
      got += n;
    }
    conn.close();
    count++;
  }
  return [count / ((performance.now() - started) / 1000), count];
}

/** Writes the files: a 4 KiB one, a 32 MiB one to cache, and MISSES more of 32 MiB. */
async function writeData(): Promise<void> {
  await Deno.mkdir(DATA, { recursive: true });
  await Deno.writeFile(`${DATA}/small.bin`, randomBytes(4096));
  for (const name of ["big.bin", ...Array.from({ length: MISSES }, (_, i) => `miss${i}.bin`)]) {
    await Deno.writeFile(`${DATA}/${name}`, randomBytes(MIB32, name.length));
  }
}

/** server.ts with `args` on free ports, once every worker serves: its process and ports. */
async function server(args: string[]) {
  const process = new Deno.Command(Deno.execPath(), {
    args: [...SERVER_COMMAND, "--port", "0", "--http-port", "0", ...args],
    stdout: "piped",
  }).spawn();
  const lines = textLines(process.stdout);
  let listening = "";
  while (!/ listening /.test(listening)) {
    const next = await lines.next();
    if (next.done) throw new Error(`server.ts ${args.join(" ")} ended before it listened`);
    listening = next.value;
  }
  // The log of every request is read and dropped, as a terminal would scroll it away.
  (async () => {
    for await (const _ of lines);
  })();
  const port = (field: string) => Number(new RegExp(`${field}=[^ ]*:(\\d+)`).exec(listening)![1]);
  return { process, port: port("address"), httpPort: port("http") };
}

/** Ours with `workers` threads: plain, and a second server over TLS. */
async function ours(workers: number, tls: { cert: string; key: string }): Promise<Subject> {
  const common = ["--data", DATA, "--workers", String(workers), "--cache-size", "40MiB"];
  const plain = await server(common);
  const secure = await server([...common, "--tls-cert", tls.cert, "--tls-key", tls.key]);
  return {
    name: `ours --workers ${workers}`,
    http: `http://127.0.0.1:${plain.httpPort}`,
    https: `https://127.0.0.1:${secure.httpPort}`,
    native: plain.port,
    pids: () => [plain.process.pid, secure.process.pid],
    stop: async () => {
      await ended(plain.process, "SIGKILL");
      await ended(secure.process, "SIGKILL");
    },
  };
}

/** nginx with `workers` worker processes: plain HTTP, and a second over TLS. */
async function nginx(workers: number, tls: { cert: string; key: string }): Promise<Subject> {
  const plain = await startNginx(DATA, `${WORK}/nginx-${workers}`, { workers });
  const secure = await startNginx(DATA, `${WORK}/nginx-${workers}-tls`, { workers, tls });
  const masters = [plain.process.pid, secure.process.pid];
  const all = [...masters];
  for (const master of masters) all.push(...await children(master));
  return {
    name: `nginx ${workers} worker${workers > 1 ? "s" : ""}`,
    http: `http://127.0.0.1:${plain.port}`,
    https: `https://127.0.0.1:${secure.port}`,
    pids: () => all,
    stop: async () => {
      await plain.stop();
      await secure.stop();
    },
  };
}

/**
 * A row: `what`, then each subject's rate and CPU per request: req/s and µs, or for the rows of
 * 32 MiB files MB/s and ms per file.
 */
function row(what: string, figures: ([number, number] | undefined)[]): string {
  const big = what.includes("32 MiB");
  const cells = figures.map((figure) => {
    if (figure === undefined) return "-".padStart(22);
    const [rate, cpu] = [figure[0].toFixed(0), (big ? figure[1] / 1000 : figure[1]).toFixed(0)];
    return `${rate.padStart(8)} ${big ? "MB/s" : "r/s "} ${cpu.padStart(6)} ${big ? "ms" : "µs"}`;
  });
  return `${what.padEnd(26)}${cells.join(" ")}`;
}

/** Every figure for `subject`: rate and CPU µs per request (per file for the 32 MiB rows). */
async function measure(subject: Subject, ca: string): Promise<Map<string, [number, number]>> {
  const figures = new Map<string, [number, number]>();
  const perRequest = ([rate, count]: [number, number], cpu: number): [number, number] => [
    rate,
    cpu / count,
  ];
  await output("curl", ["-sS", "-o", "/dev/null", `${subject.http}/big.bin`]); // cached
  await output("curl", ["-sS", "--cacert", ca, "-o", "/dev/null", `${subject.https}/big.bin`]);
  for (const connections of RUN.connections) {
    const [result, cpu] = await measured(
      subject,
      () => wrk(`${subject.http}/small.bin`, connections),
    );
    figures.set(`HTTP 4 KiB ${connections}c`, perRequest(result, cpu));
  }
  if (subject.native !== undefined) {
    const [load, cpu] = await measured(subject, () => loadgen(subject.native!, 64));
    figures.set("native 4 KiB 64c", [load.requestsPerSecond, cpu / load.requests]);
    const [rate, connectCpu] = await measured(subject, () => connects(subject.native!));
    figures.set("native connect+greeting", perRequest(rate, connectCpu));
  }
  const [tls, tlsCpu] = await measured(subject, () => curls(subject.https, ["big.bin"], ca));
  figures.set("TLS 32 MiB cached", perRequest(tls, tlsCpu));
  const misses = Array.from({ length: MISSES }, (_, i) => `miss${i}.bin`);
  const [miss, missCpu] = await measured(subject, () => curls(subject.http, misses));
  figures.set("32 MiB misses", perRequest(miss, missCpu));
  return figures;
}

if (import.meta.main) {
  const tools = ["wrk", "curl", "nginx", "openssl"];
  if (!(await Promise.all(tools.map(has))).every(Boolean)) {
    console.log("workers benchmark skipped: needs wrk, curl, nginx and openssl");
    Deno.exit(0);
  }
  await writeData();
  await Deno.mkdir(`${WORK}/tls`, { recursive: true });
  const certs = await makeCertificates(`${WORK}/tls`);
  const tls = { cert: certs.cert, key: certs.key };
  const starts = [() => ours(1, tls), () => ours(2, tls), () => nginx(1, tls), () => nginx(2, tls)];
  const names: string[] = [];
  const results: Map<string, [number, number]>[] = [];
  for (const start of starts) {
    const subject = await start();
    try {
      names.push(subject.name);
      results.push(await measure(subject, certs.ca));
    } finally {
      await subject.stop();
    }
  }
  console.log(
    `Workers (${length}), ${new Date().toISOString()}, ${navigator.hardwareConcurrency} cores; ` +
      "rate and the server's CPU per request (all its threads or processes, from /proc)",
  );
  console.log(`${"".padEnd(26)}${names.map((name) => name.padEnd(23)).join("")}`);
  for (const what of results[0].keys()) {
    console.log(row(what, results.map((figures) => figures.get(what))));
  }
}
