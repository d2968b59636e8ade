/**
 * Past one node: a Zipf trace whose files come to about 2.5 times one node's cache, replayed
 * against one node, against one node with three times the cache (what three nodes should add up
 * to), against three nodes chosen by rendezvous hashing (as `client --servers` does), and through
 * haproxy in front of three nodes (when installed); then against three nodes of which one is
 * stopped halfway. For each: the hit ratio, the files read from disk, requests per second, and
 * the cache in use over all nodes.
 *
 * Usage: deno run -A bench/cluster.ts [--quick | --smoke] [--svg PATH]
 * A full run redraws docs/cluster-hit-ratio.svg.
 */

import { FileClient } from "../lib/client/client.ts";
import { ConnectionError } from "../lib/client/errors.ts";
import { rank } from "../lib/client/rendezvous.ts";
import { parseCommandLine } from "../lib/shared/cli.ts";
import { formatBytes } from "../lib/shared/units.ts";
import {
  accepting,
  ended,
  freePort,
  haproxyChecked,
  haproxyConfig,
  has,
  ROOT,
  SERVER_COMMAND,
} from "../testing/support.ts";
import { lengthOf } from "./length.ts";
import { type Trace, zipfTrace } from "./traces.ts";

const { values } = parseCommandLine(Deno.args, {
  quick: { type: "boolean", default: false },
  smoke: { type: "boolean", default: false },
  svg: { type: "string" },
});
const length = lengthOf(Deno.args);
/** The trace of a run of each length: requests, and the files they ask for. */
const TRACE = {
  full: { requests: 40_000, files: 600 },
  quick: { requests: 8000, files: 300 },
  smoke: { requests: 1000, files: 60 },
}[length];
const WORK = `${ROOT}bench/.work/cluster`;
const DATA = `${WORK}/data`;
/** Concurrent requests, as from several clients. */
const WORKERS = 8;
/** The share of the trace replayed before measuring, to fill the caches. */
const WARM_UP = 0.2;

/** A node of the cluster, running. */
interface Node {
  native: string;
  http: number;
  process: Deno.ChildProcess;
}

/** What one replay measured. */
interface Outcome {
  setup: string;
  hitRatio: number;
  diskReads: number;
  requestsPerSecond: number;
  cacheBytes: number;
  /** Hit ratio per tenth of the measured trace. */
  windows: number[];
}

async function startNode(cacheBytes: number): Promise<Node> {
  const [port, http] = [freePort(), freePort()];
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      ...SERVER_COMMAND,
      "--port",
      String(port),
      "--http-port",
      String(http),
      "--data",
      DATA,
      "--cache-size",
      String(cacheBytes),
      "--trust-proxy",
      "127.0.0.1",
      "--max-connections-per-host",
      "1024",
    ],
    stdout: "null",
  }).spawn();
  await accepting(port);
  return { native: `127.0.0.1:${port}`, http, process };
}

async function stopNode(node: Node): Promise<void> {
  await ended(node.process, "SIGKILL");
}

async function statsOf(node: Node) {
  const [host, port] = node.native.split(":");
  const client = await FileClient.connect(host, Number(port));
  try {
    return await client.stats();
  } finally {
    client.close();
  }
}

/**
 * Replays the trace's requests with WORKERS at once over the native protocol, each name sent to
 * its node by rendezvous hashing; a node that stops answering is left out from then on, as the
 * client does. `halfway` runs once half of the measured part is done.
 */
async function replayNative(
  trace: Trace,
  nodes: Node[],
  setup: string,
  halfway?: () => Promise<void>,
): Promise<Outcome> {
  const alive = new Set(nodes.map((node) => node.native));
  const measuredFrom = Math.floor(trace.requests.length * WARM_UP);
  const windowSize = Math.ceil((trace.requests.length - measuredFrom) / 10);
  const hits = new Array(10).fill(0);
  const counts = new Array(10).fill(0);
  let next = 0;
  let started = 0;
  let halfwayDone: Promise<void> | undefined;
  const worker = async () => {
    const clients = new Map<string, FileClient>();
    try {
      for (let i = next++; i < trace.requests.length; i = next++) {
        if (i === measuredFrom) started = performance.now();
        if (halfway && i === measuredFrom + 5 * windowSize) halfwayDone = halfway();
        await halfwayDone;
        const name = `f${trace.requests[i]}.bin`;
        for (;;) {
          const server = rank(name, [...alive])[0];
          try {
            const [host, port] = server.split(":");
            let client = clients.get(server);
            if (!client) clients.set(server, client = await FileClient.connect(host, Number(port)));
            await client.send(client.encodeGet(name));
            let source = "";
            await client.readFile({ header: (h) => void (source = h.source), data() {} });
            if (i >= measuredFrom) {
              const window = Math.floor((i - measuredFrom) / windowSize);
              counts[window]++;
              if (source === "cache") hits[window]++;
            }
            break;
          } catch (error) {
            if (!(error instanceof ConnectionError)) throw error;
            clients.get(server)?.close();
            clients.delete(server);
            alive.delete(server); // perhaps already, by another worker
            if (alive.size === 0) throw error;
          }
        }
      }
    } finally {
      for (const client of clients.values()) client.close();
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  const seconds = (performance.now() - started) / 1000;
  const stats = await Promise.all(nodes.filter((n) => alive.has(n.native)).map(statsOf));
  const total = counts.reduce((a, b) => a + b);
  return {
    setup,
    hitRatio: hits.reduce((a, b) => a + b) / total,
    diskReads: counts.reduce((a, b) => a + b) - hits.reduce((a, b) => a + b),
    requestsPerSecond: total / seconds,
    cacheBytes: stats.reduce((sum, s) => sum + s.cacheBytes, 0),
    windows: hits.map((hit, w) => hit / counts[w]),
  };
}

/** The same replay over HTTP through haproxy; hits are read off the nodes' counters. */
async function replayHaproxy(trace: Trace, nodes: Node[], front: number): Promise<Outcome> {
  const totals = async () => {
    const stats = await Promise.all(nodes.map(statsOf));
    return {
      hits: stats.reduce((sum, s) => sum + s.hits, 0),
      misses: stats.reduce((sum, s) => sum + s.misses, 0),
      cacheBytes: stats.reduce((sum, s) => sum + s.cacheBytes, 0),
    };
  };
  const measuredFrom = Math.floor(trace.requests.length * WARM_UP);
  let before = await totals();
  let started = 0;
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < trace.requests.length; i = next++) {
      if (i === measuredFrom) {
        before = await totals();
        started = performance.now();
      }
      const response = await fetch(`http://127.0.0.1:${front}/f${trace.requests[i]}.bin`);
      if (!response.ok) throw new Error(`haproxy answered ${response.status}`);
      await response.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  const seconds = (performance.now() - started) / 1000;
  const after = await totals();
  const hits = after.hits - before.hits;
  const lookups = hits + after.misses - before.misses;
  return {
    setup: "3 nodes of C through haproxy",
    hitRatio: hits / lookups,
    diskReads: after.misses - before.misses,
    requestsPerSecond: lookups / seconds,
    cacheBytes: after.cacheBytes,
    windows: [],
  };
}

/** The files of `trace`, written once into DATA. */
async function writeFiles(trace: Trace): Promise<void> {
  await Deno.mkdir(DATA, { recursive: true });
  const block = new Uint8Array(1024 * 1024);
  crypto.getRandomValues(block.subarray(0, 65536));
  for (let at = 65536; at < block.length; at *= 2) block.copyWithin(at, 0, at);
  for (let id = 0; id < trace.sizes.length; id++) {
    const path = `${DATA}/f${id}.bin`;
    const size = trace.sizes[id];
    if ((await Deno.stat(path).catch(() => undefined))?.size === size) continue;
    await using file = await Deno.create(path);
    for (let done = 0; done < size; done += block.length) {
      await file.write(block.subarray(0, Math.min(block.length, size - done)));
    }
  }
}

async function withNodes<T>(caches: number[], run: (nodes: Node[]) => Promise<T>): Promise<T> {
  const nodes = await Promise.all(caches.map(startNode));
  try {
    return await run(nodes);
  } finally {
    await Promise.all(nodes.map(stopNode));
  }
}

if (import.meta.main) {
  const trace = zipfTrace(0.8, TRACE);
  // Files too large for a node's cache are never cached, and nothing would change their count.
  const node = Math.round(trace.distinctBytes / 2.5);
  await writeFiles(trace);
  console.log(
    `cluster benchmark (${length}), ${new Date().toISOString()}: ` +
      `${trace.requests.length} requests (${WARM_UP * 100}% to warm up), Zipf α=0.8 over ` +
      `${trace.distinctFiles} files of ${formatBytes(trace.distinctBytes)}; C = ${
        formatBytes(node)
      }`,
  );
  const outcomes: Outcome[] = [];
  const show = (outcome: Outcome) => {
    outcomes.push(outcome);
    console.log(
      `${outcome.setup.padEnd(36)} hit ratio ${(outcome.hitRatio * 100).toFixed(1).padStart(5)}%` +
        `  disk reads ${String(outcome.diskReads).padStart(6)}` +
        `  ${outcome.requestsPerSecond.toFixed(0).padStart(6)} req/s` +
        `  cache in use ${formatBytes(outcome.cacheBytes)}`,
    );
  };
  show(await withNodes([node], (nodes) => replayNative(trace, nodes, "1 node of C")));
  show(await withNodes([3 * node], (nodes) => replayNative(trace, nodes, "1 node of 3C")));
  show(
    await withNodes(
      [node, node, node],
      (nodes) => replayNative(trace, nodes, "3 nodes of C, --servers"),
    ),
  );
  if (await has("haproxy")) {
    show(
      await withNodes([node, node, node], async (nodes) => {
        const [front, stats] = [freePort(), freePort()];
        const path = `${WORK}/haproxy.cfg`;
        const config = await haproxyConfig(nodes.map((n) => n.http), front, stats);
        await Deno.writeTextFile(path, config);
        const haproxy = new Deno.Command("haproxy", { args: ["-db", "-f", path], stderr: "null" })
          .spawn();
        try {
          // Until haproxy has checked a node, it would send that node's names to the others.
          await haproxyChecked(stats, nodes.length);
          return await replayHaproxy(trace, nodes, front);
        } finally {
          haproxy.kill("SIGTERM");
          await haproxy.status;
        }
      }),
    );
  } else {
    console.log("haproxy skipped: not installed (Debian: apt-get install haproxy)");
  }
  const stopped = await withNodes(
    [node, node, node],
    (nodes) =>
      replayNative(trace, nodes, "3 nodes of C, one stopped halfway", () => stopNode(nodes[1])),
  );
  show(stopped);
  console.log(
    "hit ratio by tenth of the trace, one node stopped after the fifth: " +
      stopped.windows.map((ratio) => `${(ratio * 100).toFixed(0)}%`).join(" "),
  );
  if (values.svg ?? length === "full") {
    const path = values.svg ?? `${ROOT}docs/cluster-hit-ratio.svg`;
    await Deno.writeTextFile(path, chart(outcomes, stopped.windows));
    console.log(`chart: ${path}`);
  }
}

/** Bars of the hit ratios, and the hit ratio over time with a node stopped. */
function chart(outcomes: Outcome[], windows: number[]): string {
  const width = 760;
  const height = 330;
  const bars = outcomes.slice(0, -1);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="20" y="22" font-size="14" font-weight="bold">Hit ratio, Zipf trace over 2.5 × C</text>`,
  ];
  const barWidth = 300;
  bars.forEach((outcome, i) => {
    const y = 50 + i * 52;
    const w = outcome.hitRatio * barWidth;
    out.push(
      `<text x="20" y="${y + 14}">${outcome.setup}</text>`,
      `<rect x="20" y="${y + 20}" width="${w.toFixed(1)}" height="16" fill="#4477aa"/>`,
      `<text x="${(26 + w).toFixed(1)}" y="${y + 33}">${
        (outcome.hitRatio * 100).toFixed(1)
      }%</text>`,
    );
  });
  const [x0, y0, plotW, plotH] = [420, 60, 310, 220];
  out.push(
    `<text x="${x0}" y="42" font-size="13">3 nodes of C, one stopped at the middle</text>`,
    `<line x1="${x0}" y1="${y0 + plotH}" x2="${x0 + plotW}" y2="${y0 + plotH}" stroke="#888"/>`,
    `<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y0 + plotH}" stroke="#888"/>`,
    `<line x1="${x0 + plotW / 2}" y1="${y0}" x2="${x0 + plotW / 2}" y2="${
      y0 + plotH
    }" stroke="#cc6677" stroke-dasharray="4 3"/>`,
    `<text x="${x0 + plotW / 2 + 4}" y="${y0 + 12}" fill="#cc6677">node stopped</text>`,
  );
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    const y = y0 + plotH * (1 - tick);
    out.push(`<text x="${x0 - 6}" y="${y + 4}" text-anchor="end">${tick * 100}%</text>`);
  }
  const points = windows.map((ratio, i) =>
    `${(x0 + (i + 0.5) * plotW / windows.length).toFixed(1)},${
      (y0 + plotH * (1 - ratio)).toFixed(1)
    }`
  );
  out.push(
    `<polyline points="${points.join(" ")}" fill="none" stroke="#4477aa" stroke-width="2"/>`,
    `<text x="${x0 + plotW / 2}" y="${
      y0 + plotH + 18
    }" text-anchor="middle">tenths of the trace</text>`,
    "</svg>",
    "",
  );
  return out.join("\n");
}
