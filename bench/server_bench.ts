/**
 * The server's speed, measured side by side in one run: the loopback ceiling (a minimal Deno
 * program with no protocol), cached and uncached large-file throughput, small-file requests per
 * second with latency, one file at a time on an open session, the load generator's own capacity,
 * the same over TLS beside plain TCP, peak server RSS with 1,000 connections, and, when nginx (and
 * curl, wrk) are installed, nginx on the same work.
 *
 * Usage: deno run -A bench/server_bench.ts [--quick | --smoke]
 */

import { FileClient } from "../lib/client/client.ts";
import { formatBytes } from "../lib/shared/units.ts";
import { freePort, has, makeCertificates, ROOT } from "../testing/support.ts";
import { lengthOf } from "./length.ts";
import { type LoadResult } from "./loadgen.ts";
import { startNginx, startServer } from "./services.ts";

const length = lengthOf(Deno.args);
/**
 * What a run of each length does: how long each load runs (wrk takes whole seconds), the large
 * file's size, the downloads of it timed, the fetches of each small file timed one at a time, the
 * curl runs against nginx, the connections of the crowd, and the small-file loads (connections,
 * and requests each keeps in flight, pipelined); a smoke run keeps the two the later rows need.
 */
const RUN = {
  full: { seconds: 5, big: 32 << 20, rounds: 48, toFile: 12, misses: 4, fetches: 25, curls: 12 },
  quick: { seconds: 2, big: 32 << 20, rounds: 16, toFile: 4, misses: 2, fetches: 9, curls: 4 },
  smoke: { seconds: 0.2, big: 1 << 20, rounds: 2, toFile: 1, misses: 1, fetches: 2, curls: 1 },
}[length];
const SECONDS = RUN.seconds;
const BIG = RUN.big;
const SMALL = 4096;
const WORK = `${ROOT}bench/.work`;
const CROWD = length === "smoke" ? 50 : 1000;
const LOADS = length === "smoke"
  ? [[64, 1], [64, 16]]
  : [[1, 1], [16, 1], [64, 1], [1, 16], [16, 16], [64, 16]];

/** A load's name in the results, as "4 KiB, 16 conn, pipelined x16". */
function loadLabel(connections: number, depth: number): string {
  return `4 KiB, ${connections} conn${depth > 1 ? `, pipelined x${depth}` : ""}`;
}

/** One row of the results table. */
interface Row {
  what: string;
  value: number;
  unit: string;
  /** The figure it is compared with, and that figure's name. */
  versus?: { name: string; value: number };
}

function record(row: Row): void {
  const ratio = row.versus
    ? `  (${(row.value / row.versus.value * 100).toFixed(0)}% of ${row.versus.name})`
    : "";
  console.log(`${row.what.padEnd(56)} ${format(row.value).padStart(10)} ${row.unit}${ratio}`);
}

function format(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(2);
}

/** Spawns a bench program that prints "ready" once it listens on the port given first. */
async function spawnReady(program: string, args: (string | number)[]): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", `${ROOT}bench/${program}`, ...args.map(String)],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read(); // "ready"
  reader.releaseLock();
  return child;
}

/** The load generator against a responder that does no work: the most it can measure. */
async function loadgenCapacity(connections: number, depth: number): Promise<LoadResult> {
  const port = freePort();
  const canned = await spawnReady("canned.ts", [port, SMALL]);
  try {
    return await loadgen([port, "small.bin", connections, depth, SECONDS]);
  } finally {
    canned.kill("SIGKILL");
    await canned.stdout.cancel();
    await canned.status;
  }
}

/** GB/s of a minimal Deno sender (its own process) to a receiver reading into one buffer. */
async function ceiling(bytes: number, rounds: number): Promise<number> {
  const port = freePort();
  const sender = await spawnReady("ceiling.ts", [port, bytes, rounds]);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buffer = new Uint8Array(1024 * 1024);
  const started = performance.now();
  let total = 0;
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) total += n;
  const seconds = (performance.now() - started) / 1000;
  conn.close();
  await sender.stdout.cancel();
  await sender.status;
  return total / seconds / 1e9;
}

/**
 * GB/s downloading `name` `rounds` times with the client library, to nowhere or to a file; over
 * TLS when `caCerts` are given.
 */
async function download(
  port: number,
  name: string,
  rounds: number,
  toFile: boolean,
  caCerts?: string[],
) {
  const client = await FileClient.connect("127.0.0.1", port, { tls: caCerts && { caCerts } });
  const file = toFile
    ? await Deno.open(`${WORK}/download.bin`, { write: true, create: true })
    : undefined;
  let total = 0;
  const started = performance.now();
  for (let r = 0; r < rounds; r++) {
    await file?.truncate(0);
    await file?.seek(0, Deno.SeekMode.Start);
    await client.send(client.encodeGet(name));
    await client.readFile({
      header() {},
      async data(chunk) {
        total += chunk.length;
        if (file) {
          for (let at = 0; at < chunk.length;) at += await file.write(chunk.subarray(at));
        }
      },
    });
  }
  const seconds = (performance.now() - started) / 1000;
  file?.close();
  client.close();
  return total / seconds / 1e9;
}

/**
 * Sessions per second, one at a time, each a new connection that fetches `name` and closes, as
 * the command-line client does; over TLS when `caCerts` are given.
 */
async function sessions(port: number, name: string, caCerts?: string[]): Promise<number> {
  let count = 0;
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  while (performance.now() < deadline) {
    const client = await FileClient.connect("127.0.0.1", port, { tls: caCerts && { caCerts } });
    await client.send(client.encodeGet(name));
    await client.readFile({ header() {}, data() {} });
    await client.quit();
    count++;
  }
  return count / ((performance.now() - started) / 1000);
}

/** Sizes of the files fetched one at a time on an open session, for the time each answer takes. */
const ONE_FILE = [20_000, 64 * 1024, 256 * 1024];

/**
 * Median milliseconds to fetch each of the ONE_FILE files on one open session, once in the cache;
 * over TLS when `caCerts` are given.
 */
async function oneFile(port: number, caCerts?: string[]): Promise<number[]> {
  const client = await FileClient.connect("127.0.0.1", port, { tls: caCerts && { caCerts } });
  const medians: number[] = [];
  for (const size of ONE_FILE) {
    const fetch = async () => {
      await client.send(client.encodeGet(`one${size}.bin`));
      await client.readFile({ header() {}, data() {} });
    };
    await fetch();
    const ms: number[] = [];
    for (let i = 0; i < RUN.fetches; i++) {
      const started = performance.now();
      await fetch();
      ms.push(performance.now() - started);
    }
    medians.push(ms.sort((a, b) => a - b)[ms.length >> 1]);
  }
  client.close();
  return medians;
}

async function loadgen(args: (string | number)[]): Promise<LoadResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", `${ROOT}bench/loadgen.ts`, ...args.map(String)],
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error("the load generator failed");
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

/** Peak RSS in MiB of a process (VmHWM). */
async function peakRss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
}

/** Runs a command and returns its standard output. */
async function run(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args, stderr: "inherit" }).output();
  if (!output.success) throw new Error(`${command} failed`);
  return new TextDecoder().decode(output.stdout);
}

async function writeData(): Promise<number> {
  await Deno.mkdir(`${WORK}/data`, { recursive: true });
  const big = new Uint8Array(BIG);
  crypto.getRandomValues(big.subarray(0, 65536));
  for (let at = 65536; at < BIG; at *= 2) big.copyWithin(at, 0, at);
  await Deno.writeFile(`${WORK}/data/big.bin`, big);
  await Deno.writeFile(`${WORK}/data/small.bin`, big.subarray(0, SMALL));
  for (const size of ONE_FILE) {
    await Deno.writeFile(`${WORK}/data/one${size}.bin`, big.subarray(0, size));
  }
  const missFiles = 4;
  for (let i = 0; i < missFiles; i++) await Deno.writeFile(`${WORK}/data/miss${i}.bin`, big);
  return missFiles;
}

if (import.meta.main) {
  const missFiles = await writeData();
  console.log(`server benchmark (${length}), ${new Date().toISOString()}`);
  const top = await ceiling(BIG, RUN.rounds);
  record({ what: "ceiling: minimal Deno sender -> receiver", value: top, unit: "GB/s" });
  const ceilingRef = { name: "ceiling", value: top };
  const large: number[] = [];
  const small = new Map<string, LoadResult>();
  let fresh = 0;
  let single: number[] = [];

  // Beside the large file, the cache holds 2 of the 4 miss files, so cycling through them makes
  // every request a miss.
  const cacheSize = String(BIG * 9 / 4);
  const server = await startServer(["--data", `${WORK}/data`, "--cache-size", cacheSize]);
  try {
    await download(server.port, "big.bin", 1, false);
    large.push(await download(server.port, "big.bin", RUN.rounds, false));
    record({
      what: `cached ${formatBytes(BIG)} file, one client, to nowhere`,
      value: large[0],
      unit: "GB/s",
      versus: ceilingRef,
    });
    record({
      what: `cached ${formatBytes(BIG)} file, one client, to a file`,
      value: await download(server.port, "big.bin", RUN.toFile, true),
      unit: "GB/s",
      versus: ceilingRef,
    });
    const misses: number[] = [];
    for (let i = 0; i < missFiles * RUN.misses; i++) {
      misses.push(await download(server.port, `miss${i % missFiles}.bin`, 1, false));
    }
    const harmonic = misses.length / misses.reduce((sum, rate) => sum + 1 / rate, 0);
    record({
      what: `miss: ${formatBytes(BIG)} from the OS page cache into ours`,
      value: harmonic,
      unit: "GB/s",
      versus: ceilingRef,
    });

    for (const [connections, depth] of LOADS) {
      const result = await loadgen([server.port, "small.bin", connections, depth, SECONDS]);
      small.set(`${connections}/${depth}`, result);
      const label = loadLabel(connections, depth);
      record({ what: `${label}: requests`, value: result.requestsPerSecond, unit: "req/s" });
      record({ what: `${label}: latency p50`, value: result.p50Ms, unit: "ms" });
      record({ what: `${label}: latency p99`, value: result.p99Ms, unit: "ms" });
    }
    fresh = await sessions(server.port, "small.bin");
    record({ what: "a new session per 4 KiB file, one at a time", value: fresh, unit: "/s" });
    single = await oneFile(server.port);
    ONE_FILE.forEach((size, i) =>
      record({ what: `one ${size} B file on an open session`, value: single[i], unit: "ms" })
    );
  } finally {
    await server.stop();
  }

  // The same over TLS, each beside its plain figure.
  const keys = `${WORK}/tls`;
  await Deno.mkdir(keys, { recursive: true });
  const certs = await makeCertificates(keys);
  const caCerts = [await Deno.readTextFile(certs.ca)];
  const tls = await startServer([
    ...["--data", `${WORK}/data`, "--cache-size", cacheSize],
    ...["--tls-cert", certs.cert, "--tls-key", certs.key],
  ]);
  try {
    await download(tls.port, "big.bin", 1, false, caCerts);
    record({
      what: `TLS: cached ${formatBytes(BIG)} file, one client, to nowhere`,
      value: await download(tls.port, "big.bin", RUN.rounds, false, caCerts),
      unit: "GB/s",
      versus: { name: "plain", value: large[0] },
    });
    for (const [connections, depth] of LOADS) {
      const args = [tls.port, "small.bin", connections, depth, SECONDS, certs.ca];
      const result = await loadgen(args);
      const plain = small.get(`${connections}/${depth}`)!;
      const label = `TLS: ${loadLabel(connections, depth)}`;
      record({
        what: `${label}: requests`,
        value: result.requestsPerSecond,
        unit: "req/s",
        versus: { name: "plain", value: plain.requestsPerSecond },
      });
      record({ what: `${label}: latency p50`, value: result.p50Ms, unit: "ms" });
      record({ what: `${label}: latency p99`, value: result.p99Ms, unit: "ms" });
    }
    record({
      what: "TLS: a new session per 4 KiB file, one at a time",
      value: await sessions(tls.port, "small.bin", caCerts),
      unit: "/s",
      versus: { name: "plain", value: fresh },
    });
    const tlsSingle = await oneFile(tls.port, caCerts);
    ONE_FILE.forEach((size, i) =>
      record({
        what: `TLS: one ${size} B file on an open session`,
        value: tlsSingle[i],
        unit: "ms",
        versus: { name: "plain", value: single[i] },
      })
    );
  } finally {
    await tls.stop();
  }

  for (const depth of [1, 16]) {
    const capacity = await loadgenCapacity(64, depth);
    const ours = small.get(`64/${depth}`)!.requestsPerSecond;
    const label = `load generator alone (canned answers), 64 conn${depth > 1 ? ", x16" : ""}`;
    record({ what: label, value: capacity.requestsPerSecond, unit: "req/s" });
    record({
      what: `  ours / load generator alone`,
      value: ours / capacity.requestsPerSecond * 100,
      unit: "%",
    });
  }

  // The crowd all comes from this one address.
  const many = await startServer([
    "--data",
    `${WORK}/data`,
    "--cache-size",
    "64MiB",
    "--max-connections-per-host",
    "1024",
  ]);
  const crowd = CROWD.toLocaleString("en");
  try {
    await download(many.port, "big.bin", 1, false);
    const result = await loadgen([many.port, "small.bin", CROWD, 1, SECONDS]);
    record({
      what: `${crowd} connections, 4 KiB: requests`,
      value: result.requestsPerSecond,
      unit: "req/s",
    });
    record({
      what: `${crowd} connections: peak server RSS (cache holds ${formatBytes(BIG)})`,
      value: await peakRss(many.process.pid),
      unit: "MiB",
    });
  } finally {
    await many.stop();
  }

  if (await has("nginx") && await has("curl") && await has("wrk")) {
    const nginx = await startNginx(`${WORK}/data`, `${WORK}/nginx`);
    try {
      const url = `http://127.0.0.1:${nginx.port}`;
      const rates: number[] = [];
      for (let i = 0; i < RUN.curls; i++) {
        rates.push(
          Number(
            await run("curl", [
              "-s",
              "-o",
              "/dev/null",
              "-w",
              "%{speed_download}",
              `${url}/big.bin`,
            ]),
          ) / 1e9,
        );
      }
      const rate = rates.reduce((a, b) => a + b) / rates.length;
      const big = formatBytes(BIG);
      record({ what: `nginx + curl: ${big} file`, value: rate, unit: "GB/s", versus: ceilingRef });
      record({ what: `ours / nginx: cached ${big} file`, value: large[0] / rate * 100, unit: "%" });
      const wrk = await run("wrk", ["-t1", "-c64", `-d${Math.ceil(SECONDS)}s`, `${url}/small.bin`]);
      const nginxRps = Number(/Requests\/sec:\s+([\d.]+)/.exec(wrk)![1]);
      record({ what: "nginx + wrk: 4 KiB, 64 conn: requests", value: nginxRps, unit: "req/s" });
      record({
        what: "ours / nginx: 4 KiB, 64 conn",
        value: small.get("64/1")!.requestsPerSecond / nginxRps * 100,
        unit: "%",
      });
    } finally {
      await nginx.stop();
    }
  } else {
    console.log(
      "nginx comparison skipped: needs nginx, curl and wrk on PATH (Debian: nginx-light wrk curl)",
    );
  }
}
