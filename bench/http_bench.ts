/**
 * The HTTP port beside nginx with one worker process on the same files, with the same generator
 * (wrk): 4 KiB requests per second at 1, 16 and 64 connections and each server's CPU time per
 * request (user and system time from /proc over requests served; nginx's master and worker
 * summed), the medians of runs the two take in turn, and a cached 32 MiB file's throughput with
 * curl, as ratios. Our port always serves each
 * file once first, checked byte for byte; what needs a missing tool is skipped, saying so: the
 * comparison without nginx, every figure without wrk and curl (Debian: nginx-light wrk curl).
 *
 * Usage: deno run -A bench/http_bench.ts [--quick | --smoke]
 */

import { accepting, freePort, has, ROOT, SERVER_COMMAND } from "../testing/support.ts";
import { lengthOf } from "./length.ts";
import { cpuSeconds, type Service, startNginx } from "./services.ts";
import { median } from "./median.ts";

const length = lengthOf(Deno.args);
/**
 * Seconds of each wrk run (whole seconds: what wrk takes), rounds of runs (ours, then nginx) whose
 * medians are taken, and curl runs whose mean is taken.
 */
const RUN = {
  full: { seconds: 5, rounds: 3, curls: 12, connections: [1, 16, 64] },
  quick: { seconds: 2, rounds: 1, curls: 4, connections: [1, 16, 64] },
  smoke: { seconds: 1, rounds: 1, curls: 1, connections: [16] },
}[length];
const WORK = `${ROOT}bench/.work/http`;
const DATA = `${WORK}/data`;

/** The output of `command args`, or a thrown error naming it. */
async function output(command: string, args: string[]): Promise<string> {
  const result = await new Deno.Command(command, { args, stderr: "inherit" }).output();
  if (!result.success) throw new Error(`${command} failed`);
  return new TextDecoder().decode(result.stdout);
}

/** What one wrk run at a server measured. */
interface Load {
  /** Requests answered per second. */
  rate: number;
  /** The server's CPU time per request answered, in microseconds. */
  cpuMicros: number;
}

/** wrk at `url` over `connections` connections, with the CPU the server `pid` spent meanwhile. */
async function wrk(url: string, connections: number, pid: number): Promise<Load> {
  const before = cpuSeconds(pid);
  const report = await output("wrk", [`-t1`, `-c${connections}`, `-d${RUN.seconds}s`, url]);
  const cpu = cpuSeconds(pid) - before;
  const requests = Number(/(\d+) requests in/.exec(report)![1]);
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(report)![1]);
  return { rate, cpuMicros: cpu / requests * 1e6 };
}

/** GB/s of curl downloading `url` to nowhere, the mean of several runs. */
async function curl(url: string): Promise<number> {
  const rates: number[] = [];
  for (let i = 0; i < RUN.curls; i++) {
    rates.push(
      Number(await output("curl", ["-s", "-o", "/dev/null", "-w", "%{speed_download}", url])) / 1e9,
    );
  }
  return rates.reduce((a, b) => a + b) / rates.length;
}

/** Writes the files both servers serve: a 32 MiB one and a 4 KiB one. */
async function writeData(): Promise<Map<string, Uint8Array>> {
  await Deno.mkdir(DATA, { recursive: true });
  const big = new Uint8Array(32 * 1024 * 1024);
  crypto.getRandomValues(big.subarray(0, 65536));
  for (let at = 65536; at < big.length; at *= 2) big.copyWithin(at, 0, at);
  const files = new Map([["big.bin", big], ["small.bin", big.subarray(0, 4096)]]);
  for (const [name, bytes] of files) await Deno.writeFile(`${DATA}/${name}`, bytes);
  return files;
}

/** Fetches each file once from `url`, checking its bytes; that also fills the cache. */
async function checkFiles(url: string, files: Map<string, Uint8Array>): Promise<void> {
  for (const [name, bytes] of files) {
    const response = await fetch(`${url}/${name}`);
    const body = new Uint8Array(await response.arrayBuffer());
    if (
      response.status !== 200 || body.length !== bytes.length ||
      !body.every((b, i) => b === bytes[i])
    ) {
      throw new Error(`${url}/${name} was not served byte for byte (status ${response.status})`);
    }
  }
}

/** The rows: ours beside nginx (its pid) when there is one, ours alone when not. */
async function measure(
  ours: { url: string; pid: number },
  nginx: { url: string; pid: number } | undefined,
): Promise<void> {
  const beside = nginx ? "beside nginx with 1 worker" : "alone";
  console.log(`HTTP ${beside} (${length}), ${new Date().toISOString()}`);
  const figure = (value: number) => value.toFixed(value >= 100 ? 0 : 2).padStart(8);
  const row = (what: string, a: number, b: number | undefined, unit: string) =>
    console.log(
      `${what.padEnd(40)} ours ${figure(a)} ${unit}` +
        (b === undefined
          ? ""
          : `  nginx ${figure(b)} ${unit}  ours/nginx ${(a / b * 100).toFixed(0)}%`),
    );
  for (const connections of RUN.connections) {
    // The two take turns, so that other work on the machine weighs on both alike.
    const a: Load[] = [];
    const b: Load[] = [];
    for (let round = 0; round < RUN.rounds; round++) {
      a.push(await wrk(`${ours.url}/small.bin`, connections, ours.pid));
      if (nginx) b.push(await wrk(`${nginx.url}/small.bin`, connections, nginx.pid));
    }
    const what = `4 KiB, ${connections} connection${connections > 1 ? "s" : ""}`;
    const of = (loads: Load[], figure: keyof Load) =>
      loads.length === 0 ? undefined : median(loads.map((load) => load[figure]));
    row(what, of(a, "rate")!, of(b, "rate"), "req/s");
    row(`${what}: CPU per request`, of(a, "cpuMicros")!, of(b, "cpuMicros"), "µs");
  }
  const a = await curl(`${ours.url}/big.bin`);
  const b = nginx === undefined ? undefined : await curl(`${nginx.url}/big.bin`);
  row("cached 32 MiB, curl", a, b, "GB/s");
}

if (import.meta.main) {
  const files = await writeData();
  const httpPort = freePort();
  const ours = new Deno.Command(Deno.execPath(), {
    args: [
      ...SERVER_COMMAND,
      "--port",
      String(freePort()),
      "--http-port",
      String(httpPort),
      "--data",
      DATA,
      "--max-connections-per-host",
      "1024",
      // One thread beside one nginx worker: the CPU a request costs, not how it spreads
      // (bench/workers_bench.ts compares more threads).
      "--workers",
      "1",
    ],
    stdout: "null",
  }).spawn();
  const measured = await has("wrk") && await has("curl");
  let nginx: Service | undefined;
  try {
    await accepting(httpPort);
    const url = `http://127.0.0.1:${httpPort}`;
    const served = { url, pid: ours.pid };
    await checkFiles(url, files);
    console.log(`our HTTP port served ${files.size} files byte for byte`);
    if (!measured) {
      console.log("HTTP benchmark skipped: needs wrk and curl (Debian: wrk curl)");
    } else if (!await has("nginx")) {
      console.log("nginx comparison skipped: nginx is not installed (Debian: nginx-light)");
      await measure(served, undefined);
    } else {
      nginx = await startNginx(DATA, `${WORK}/nginx`, { workers: 1 });
      const other = `http://127.0.0.1:${nginx.port}`;
      await curl(`${other}/big.bin`); // into nginx's page cache, as ours is in its cache
      await measure(served, { url: other, pid: nginx.process.pid });
    }
  } finally {
    ours.kill("SIGTERM");
    await ours.status;
    await nginx?.stop();
  }
}
