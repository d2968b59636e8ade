/**
 * A server of several worker threads (`--workers N`): one port answered by every worker, one cache
 * whose cap holds across them and whose loads are single-flight across them, limits that hold for
 * the whole server, a worker that dies replaced while the others serve, and a SIGTERM that drains
 * every worker. The other tests of servers run with workers too (FILESERVER_TEST_WORKERS, `make
 * test`); these are what only several workers can show.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { GREETING } from "../lib/shared/greeting.ts";
import { randomBytes, run, spawnServer } from "../testing/support.ts";
import { rawConnect, type RawSocket, startServer, tempFolder, text, until } from "./harness.ts";

const WORKERS = 4;

/** The samples of `metric` on the metrics page at `base`, by their labels. */
async function samples(base: string, metric: string): Promise<Map<string, number>> {
  const page = await (await fetch(`${base}/-/metrics`)).text();
  const found = new Map<string, number>();
  for (const line of page.split("\n")) {
    const sample = new RegExp(`^${metric}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (sample) found.set(sample[1] ?? "", Number(sample[2]));
  }
  return found;
}

/** `count` GETs of `url` with curl, each on a connection of its own: their statuses. */
async function curlEach(url: string, count: number): Promise<string[]> {
  const urls = Array.from({ length: count }, () => ["-o", "/dev/null", url]).flat();
  const got = await run("curl", [
    "-sS",
    "-H",
    "Connection: close",
    "-w",
    "%{http_code}\n",
    ...urls,
  ]);
  assertEquals(got.code, 0, got.stderr);
  return got.stdout.trim().split("\n");
}

/** The body of a GET of `url`, on a connection of its own. */
async function get(url: string): Promise<Uint8Array> {
  const response = await fetch(url, { headers: { Connection: "close" } });
  assertEquals(response.status, 200);
  return new Uint8Array(await response.arrayBuffer());
}

Deno.test("one port: every worker answers on it, and the metrics say which", async () => {
  await using folder = await tempFolder({ "a.txt": "a" });
  await using server = await startServer(folder.path, { workers: WORKERS, httpPort: 0 });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  assertEquals(await curlEach(`${base}/a.txt`, 40), Array(40).fill("200"));
  const accepted = await samples(base, "fileserver_worker_connections_total");
  assertEquals(accepted.size, WORKERS);
  const busy = [...accepted.values()].filter((count) => count > 0).length;
  assert(busy >= 2, `one worker took every connection: ${[...accepted.values()]}`);
  assertEquals((await server.stats()).totalConnections, 41);
  assert(server.log.lines[0].includes(` workers=${WORKERS}`), server.log.lines[0]);
});

Deno.test("one cache across workers: its cap holds under misses, loads are single-flight", async (t) => {
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < 24; i++) files[`f${i}.bin`] = randomBytes(300 * 1024, i + 1);
  files["big.bin"] = randomBytes(8 * 1024 * 1024, 99);
  await using folder = await tempFolder(files);
  const capacity = 1024 * 1024;
  await using server = await startServer(folder.path, {
    workers: WORKERS,
    httpPort: 0,
    cacheBytes: 16 * 1024 * 1024,
  });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;

  await t.step(
    "eight clients at once on one file: one read from disk, every byte right",
    async () => {
      const bodies = await Promise.all(Array.from({ length: 8 }, () => get(`${base}/big.bin`)));
      for (const body of bodies) assertEquals(body, files["big.bin"]);
      const stats = await server.stats();
      assertEquals(stats.diskReads, 1);
      assertEquals(stats.cacheEntries, 1);
    },
  );

  await using small = await startServer(folder.path, {
    workers: WORKERS,
    httpPort: 0,
    cacheBytes: capacity,
  });
  const smallBase = `http://127.0.0.1:${small.httpAddr!.port}`;
  await t.step("misses of every worker at once never take the cache past its cap", async () => {
    let done = false;
    let highest = 0;
    const watching = (async () => {
      while (!done) {
        const { cacheBytes, cacheReserved, cachePinned } = await small.stats();
        highest = Math.max(highest, cacheBytes + cacheReserved + cachePinned);
      }
    })();
    const names = Object.keys(files).filter((name) => name !== "big.bin");
    await Promise.all(
      names.concat(names).map(async (name) => {
        assertEquals(await get(`${smallBase}/${name}`), files[name], name);
      }),
    );
    done = true;
    await watching;
    const stats = await small.stats();
    assert(highest <= capacity, `the cache held ${highest} bytes, over its ${capacity}`);
    assert(stats.cacheBytes > 0 && stats.cacheBytes <= capacity, `${stats.cacheBytes} cached`);
    assert(stats.evictions > 0, "nothing was evicted: the test did not fill the cache");
  });
});

/** Opens a native connection: the greeting, or the busy text the server sends instead. */
async function opened(port: number): Promise<{ socket: RawSocket; said: string }> {
  const socket = await rawConnect(port);
  const said = text(await socket.readExactly(GREETING.length)).slice(0, 12);
  return { socket, said };
}

/**
 * What a connection is told once `open` others are open, on a server of WORKERS worker threads
 * with `limits`: each of the others must have been let in.
 */
async function toldAfter(
  folder: string,
  open: number,
  limits: { maxConnections: number; maxConnectionsPerHost: number },
): Promise<string> {
  await using server = await startServer(folder, { workers: WORKERS, ...limits });
  const first = await Promise.all(Array.from({ length: open }, () => opened(server.addr.port)));
  try {
    assert(first.every(({ said }) => !said.startsWith("DISCONNECTED")), "a place was refused");
    using socket = await rawConnect(server.addr.port);
    return text(await socket.readToEnd());
  } finally {
    for (const { socket } of first) socket[Symbol.dispose]();
  }
}

Deno.test("the connection limits hold for the whole server, not for each worker", async (t) => {
  await using folder = await tempFolder({ "a.txt": "a" });
  await t.step("--max-connections", async () => {
    const told = await toldAfter(folder.path, 4, { maxConnections: 4, maxConnectionsPerHost: 4 });
    assert(told.startsWith("DISCONNECTED@Server busy: 4 connections"), told);
  });
  await t.step("--max-connections-per-host", async () => {
    const told = await toldAfter(folder.path, 2, { maxConnections: 100, maxConnectionsPerHost: 2 });
    assert(told.includes("2 connections are open from 127.0.0.1"), told);
  });
});

/** The arguments of a server of WORKERS worker threads sharing `folder`, with an HTTP port. */
function withWorkers(folder: string): string[] {
  return ["--data", folder, "--http-port", "0", "--workers", String(WORKERS)];
}

Deno.test("wrong tokens from one host wait longer each time, whichever worker they reach", async () => {
  await using folder = await tempFolder({ "a.txt": "a", "tokens.txt": "right-token-1234\n" });
  await using server = await spawnServer([
    ...withWorkers(folder.path),
    "--tokens",
    `${folder.path}/tokens.txt`,
  ]);
  const url = `http://127.0.0.1:${server.httpPort}/a.txt`;
  const waits: number[] = [];
  for (let i = 0; i < 3; i++) {
    // A curl of its own each time: a new connection, which any worker may take.
    const got = await run("curl", [
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code} %{time_total}",
      "-H",
      "Authorization: Bearer wrong-token",
      url,
    ]);
    const [status, seconds] = got.stdout.split(" ");
    assertEquals(status, "401");
    waits.push(Number(seconds) * 1000);
  }
  // 200, 400 and 800 ms: the delay doubles for the host across the workers.
  assert(waits[2] >= 780, `the third wrong token waited ${waits[2]} ms: ${waits}`);
});

Deno.test("a worker that dies is logged and replaced; the others serve meanwhile", async () => {
  await using folder = await tempFolder({ "a.txt": "a", "b.bin": randomBytes(2 * 1024 * 1024) });
  const started: Worker[] = [];
  const Real = globalThis.Worker;
  globalThis.Worker = class extends Real {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      started.push(this);
    }
  };
  let server;
  try {
    server = await startServer(folder.path, { workers: 2, httpPort: 0 });
  } finally {
    globalThis.Worker = Real;
  }
  await using _server = server;
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  assertEquals(await curlEach(`${base}/b.bin`, 8), Array(8).fill("200"));
  const idle = await Promise.all(Array.from({ length: 8 }, () => opened(server.addr.port)));
  // As a worker that fails dies: its thread ends, and the main thread hears the error.
  started[0].terminate();
  const error = new Error("the test ended this worker");
  started[0].dispatchEvent(new ErrorEvent("error", { error, message: error.message }));
  assertEquals(await curlEach(`${base}/a.txt`, 20), Array(20).fill("200"));
  await until(
    () => server.log.lines.some((line) => / worker-replaced worker=0/.test(line)),
    "a new worker",
  );
  assert(server.log.lines.some((line) => / worker-died worker=0 error=/.test(line)));
  assertEquals(await curlEach(`${base}/b.bin`, 8), Array(8).fill("200"));
  for (const { socket } of idle) socket[Symbol.dispose]();
  // The places the dead worker's connections held are given back, not kept for ever.
  await until(async () => (await server.stats()).connections === 0, "every place given back");
  const stats = await server.stats();
  assertEquals([stats.cachePinned, stats.cacheReserved], [0, 0]);
});

Deno.test("SIGTERM drains every worker: transfers in flight finish, then the server exits 0", async () => {
  const big = randomBytes(4 * 1024 * 1024, 7);
  await using folder = await tempFolder({ "big.bin": big });
  // At the debug level, for the lines that say a connection opened.
  const server = await spawnServer([...withWorkers(folder.path), "--log-level", "debug"]);
  await using _server = server;
  const url = `http://127.0.0.1:${server.httpPort}/big.bin`;
  // Slow readers on connections of their own, spread over the workers.
  const readers = Array.from(
    { length: 6 },
    () => run("curl", ["-sS", "--limit-rate", "4M", url, "-o", "-"]),
  );
  await until(
    () => server.lines.filter((line) => / open id=/.test(line)).length === 6,
    "every reader connected",
  );
  server.process.kill("SIGTERM");
  for (const reader of await Promise.all(readers)) assertEquals(reader.bytes, big);
  assertEquals((await server.process.status).code, 0);
  await server.waitFor(/ stopped requests=6 /);
});
