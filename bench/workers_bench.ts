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
  /** Ours: the processes whose main thread (which serves no request) is measured apart. */
  mains?: number[];
  stop(): Promise<void>;
}

/**
 * CPU time (µs) used so far (utime + stime) by process `pid`, every thread of it; or with `task`,
 * by that thread of it alone.
 */
async function cpuMicros(pid: number, task?: number): Promise<number> {
  const path = task === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${task}/stat`;
  const stat = await Deno.readTextFile(path);
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

/**
 * Runs `work`, and the CPU time (µs) `subject`'s processes used meanwhile: in all, and in the main
 * threads of ours.
 */
async function measured<T>(
  subject: Subject,
  work: () => Promise<T>,
): Promise<[T, number, number]> {
  const read = () =>
    Promise.all([
      ...subject.pids().map((pid) => cpuMicros(pid)),
      ...(subject.mains ?? []).map((pid) => cpuMicros(pid, pid)),
    ]);
  const before = await read();
  const result = await work();
  const used = (await read()).map((cpu, i) => cpu - before[i]);
  const all = subject.pids().length;
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  return [result, sum(used.slice(0, all)), sum(used.slice(all))];
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
    mains: [plain.process.pid, secure.process.pid],
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

/** A figure: the rate, and the CPU time per request (µs) in all and in our main threads. */
interface Figure {
  rate: number;
  cpu: number;
  main?: number;
}

/**
 * A row: `what`, then each subject's rate and CPU per request: req/s and µs, or for the rows of
 * 32 MiB files MB/s and ms per file; for ours, the main thread's part of it in brackets.
 */
function row(what: string, figures: (Figure | undefined)[]): string {
  const big = what.includes("32 MiB");
  const time = (µs: number) => (big ? µs / 1000 : µs).toFixed(big ? 0 : 1);
  const cells = figures.map((figure) => {
    if (figure === undefined) return "-".padEnd(34);
    const main = figure.main === undefined ? "" : `(${time(figure.main)})`;
    return `${figure.rate.toFixed(0).padStart(7)} ${big ? "MB/s" : "r/s "} ` +
      `${time(figure.cpu).padStart(6)} ${big ? "ms" : "µs"} ${main.padEnd(9)}`;
  });
  return `${what.padEnd(25)}${cells.join(" ")}`;
}

/** Every figure for `subject`: rate and CPU per request (per file for the 32 MiB rows). */
async function measure(subject: Subject, ca: string): Promise<Map<string, Figure>> {
  const figures = new Map<string, Figure>();
  const add = async (what: string, work: () => Promise<[number, number]>) => {
    const [[rate, count], cpu, main] = await measured(subject, work);
    figures.set(what, { rate, cpu: cpu / count, main: subject.mains && main / count });
  };
  await output("curl", ["-sS", "-o", "/dev/null", `${subject.http}/big.bin`]); // cached
  await output("curl", ["-sS", "--cacert", ca, "-o", "/dev/null", `${subject.https}/big.bin`]);
  for (const connections of RUN.connections) {
    await add(`HTTP 4 KiB ${connections}c`, () => wrk(`${subject.http}/small.bin`, connections));
  }
  if (subject.native !== undefined) {
    const port = subject.native;
    await add("native 4 KiB 64c", async () => {
      const load = await loadgen(port, 64);
      return [load.requestsPerSecond, load.requests];
    });
    await add("native connect+greeting", () => connects(port));
  }
  await add("TLS 32 MiB cached", () => curls(subject.https, ["big.bin"], ca));
  const misses = Array.from({ length: MISSES }, (_, i) => `miss${i}.bin`);
  await add("32 MiB misses", () => curls(subject.http, misses));
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
  const results: Map<string, Figure>[] = [];
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
      "rate and the server's CPU per request (all its threads or processes, from /proc; " +
      "ours: (its main thread's part))",
  );
  console.log(`${"".padEnd(25)}${names.map((name) => name.padEnd(35)).join("")}`);
  for (const what of results[0].keys()) {
    console.log(row(what, results.map((figures) => figures.get(what))));
  }
}
