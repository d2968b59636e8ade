/**
 * The cache shared by worker threads beside the cache of one thread, in one run: what a hit
 * costs (lookup, hold and release in the cache; then open and close through the store, stat
 * included), what a miss costs (a worker asks the coordinator, is given room, fills it and says
 * so), what joining another worker's load costs (the answer, then the wake when it ends), and the
 * process's resident memory under churn, beside the cache's capacity (each side in a process of
 * its own, run as the server runs). The shared figures are taken in a worker while the
 * coordinator runs in this thread; the local ones in this thread.
 *
 * Usage: deno run -A bench/shared_cache.ts [--quick | --smoke]
 */

import { openRoot } from "../lib/server/folder.ts";
import type { Found } from "../lib/server/store/backend.ts";
import { LocalCache } from "../lib/server/store/local.ts";
import { FileStore } from "../lib/server/store/store.ts";
import { CacheCoordinator } from "../lib/server/store/threads/coordinator.ts";
import { parseCommandLine } from "../lib/shared/cli.ts";
import { SHA256, XXH3_128 } from "../lib/shared/digest.ts";
import { formatBytes } from "../lib/shared/units.ts";
import { CacheWorker } from "../testing/cache_workers.ts";
import { churn, readEach, timed } from "../testing/requests.ts";
import { randomBytes, ROOT, SERVER_COMMAND } from "../testing/support.ts";
import { lengthOf } from "./length.ts";
import { median } from "./median.ts";

const MiB = 1024 * 1024;
const WORK = `${ROOT}bench/.work/shared_cache`;

/**
 * What a run of each length does: hits and misses timed in the cache, misses of files of 4 KiB
 * timed through the store (each side its own files), joins timed, and the churn: the cache's
 * capacity, the files (sizes from 64 KiB to 4 MiB, about six times the capacity in all) and the
 * requests each of the workers makes.
 */
const RUN = {
  full: {
    hits: 1e6,
    misses: 20_000,
    small: 1000,
    joins: 200,
    capacity: 64 * MiB,
    files: 192,
    churn: 1200,
  },
  quick: {
    hits: 2e5,
    misses: 5_000,
    small: 300,
    joins: 50,
    capacity: 64 * MiB,
    files: 192,
    churn: 300,
  },
  smoke: { hits: 2000, misses: 100, small: 10, joins: 5, capacity: 4 * MiB, files: 12, churn: 10 },
}[lengthOf(Deno.args)];
/** Workers churning at once. */
const WORKERS = 4;

/** A stamp for a file that exists only in the cache: only the cache is timed. */
function madeUp(size: number) {
  return { size, mtimeMs: 1, ctimeMs: 1, ino: 1, dev: 1 };
}

function row(what: string, value: string): void {
  console.log(`  ${what.padEnd(58)}${value.padStart(14)}`);
}

/** The files the churn draws from, made once in WORK. */
async function churnFiles(): Promise<string[]> {
  await Deno.mkdir(WORK, { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < RUN.files; i++) {
    const name = `f${i}.bin`;
    const size = (64 << 10) * (1 + (i * 37) % 64) + i; // 64 KiB to 4 MiB
    names.push(name);
    const stat = await Deno.stat(`${WORK}/${name}`).catch(() => undefined);
    if (stat?.size !== size) await Deno.writeFile(`${WORK}/${name}`, randomBytes(size, i + 1));
  }
  await Deno.writeFile(`${WORK}/small.bin`, randomBytes(4096, 7));
  for (let i = 0; i < 2 * RUN.small; i++) {
    const stat = await Deno.stat(`${WORK}/s${i}.bin`).catch(() => undefined);
    if (stat === undefined) await Deno.writeFile(`${WORK}/s${i}.bin`, randomBytes(4096, i));
  }
  return names;
}

/** The names of the small files one side misses on: its own, so that each is a miss. */
function smallFiles(side: number): string[] {
  return Array.from({ length: RUN.small }, (_, i) => `s${side * RUN.small + i}.bin`);
}

/** Hits and misses in the cache of this thread: ns per hit, µs per miss. */
async function localCosts() {
  const cache = new LocalCache(RUN.capacity);
  const loaded = cache.find("hot", madeUp(4096)) as Found & { kind: "load" };
  loaded.held.progress.finish(XXH3_128, new Uint8Array(XXH3_128.bytes));
  loaded.settle(true);
  loaded.held.release();
  const hit = await timed(RUN.hits, 64, () => {
    (cache.find("hot", madeUp(4096)) as Found & { kind: "hit" }).held.release();
  });
  const started = performance.now();
  for (let i = 0; i < RUN.misses; i++) {
    const found = cache.find(`cold${i}`, madeUp(4096)) as Found & { kind: "load" };
    found.held.progress.finish(XXH3_128, new Uint8Array(XXH3_128.bytes));
    found.settle(true);
    found.held.release();
  }
  const miss = (performance.now() - started) * 1000 / RUN.misses;
  const store = new FileStore({ root: await openRoot(WORK), cacheBytes: RUN.capacity });
  await churn(store, ["small.bin"], 1, 1, 1); // read whole once: cached
  const open = await timed(
    RUN.hits / 10,
    64,
    () => store.open("small.bin", SHA256)[Symbol.dispose](),
  );
  return { hit, miss, open, read: await readEach(store, smallFiles(0)) };
}

/** The same from a worker, with the coordinator in this thread. */
async function sharedCosts(root: string) {
  const coordinator = new CacheCoordinator({ capacity: RUN.capacity });
  await using loader = await CacheWorker.start(coordinator, root);
  await using reader = await CacheWorker.start(coordinator, root);
  const miss = await reader.call<number>("misses", "cold", 4096, RUN.misses);
  await reader.call("misses", "hot", 4096, 1);
  await reader.call("fetch", "small.bin");
  await reader.call("flush"); // the reader has heard that both are cached
  const hit = await reader.call<number>("hits", "hot0", 4096, RUN.hits);
  const open = await reader.call<number>("opens", "small.bin", RUN.hits / 10);
  const read = await reader.call<number>("readEach", smallFiles(1));
  const answers: number[] = [];
  const wakes: number[] = [];
  for (let i = 0; i < RUN.joins; i++) {
    await loader.call("begin", `joined${i}`, 4096);
    answers.push(await reader.call<number>("join", `joined${i}`, 4096));
    const ended = await loader.call<number>("end", `joined${i}`);
    wakes.push((await reader.call<number>("woken", `joined${i}`) - ended) * 1000);
  }
  return { hit, miss, open, read, join: median(answers), wake: median(wakes) };
}

/**
 * The process's resident memory while `work` runs, sampled every 5 ms: its peak above what it
 * was before.
 */
async function peakGrowth(work: () => Promise<unknown>): Promise<number> {
  const before = Deno.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 5);
  try {
    await work();
  } finally {
    clearInterval(sampler);
  }
  return Math.max(peak, Deno.memoryUsage().rss) - before;
}

/**
 * This process's resident memory under churn, `WORKERS` × RUN.churn requests: through one cache
 * shared by that many workers, or in this thread with a cache of its own. Its peak growth, and
 * what the cache did.
 */
async function churnMemory(side: "shared" | "local", root: string, names: string[]) {
  if (side === "local") {
    const store = new FileStore({ root, cacheBytes: RUN.capacity });
    await churn(store, ["small.bin"], 1, 1, 1); // every module loaded
    const growth = await peakGrowth(() =>
      Promise.all(
        Array.from({ length: WORKERS }, (_, i) => churn(store, names, RUN.churn, 4, i + 1)),
      )
    );
    return { growth, evictions: store.cache.evictions, arena: 0 };
  }
  const coordinator = new CacheCoordinator({ capacity: RUN.capacity });
  const workers = await Promise.all(
    Array.from({ length: WORKERS }, () => CacheWorker.start(coordinator, root)),
  );
  await Promise.all(workers.map((worker) => worker.call("fetch", "small.bin"))); // warmed up
  const growth = await peakGrowth(() =>
    Promise.all(workers.map((worker, i) => worker.call("churn", names, RUN.churn, 4, i + 1)))
  );
  for (const worker of workers) await worker[Symbol.asyncDispose]();
  const { evictions } = coordinator.view;
  return { growth, evictions, arena: coordinator.arenaBytes };
}

/**
 * {@link churnMemory} in a process of its own, so that neither side's memory counts for the
 * other, with V8 set as the server runs it (its young generation capped: see PERFORMANCE.md).
 */
async function churnMemoryApart(side: "shared" | "local") {
  const v8 = SERVER_COMMAND.filter((arg) => arg.startsWith("--v8-flags"));
  const program = new URL(import.meta.url).pathname;
  const { success, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", ...v8, program, ...Deno.args, "--memory", side],
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`the ${side} churn failed`);
  return JSON.parse(new TextDecoder().decode(stdout)) as Awaited<ReturnType<typeof churnMemory>>;
}

if (import.meta.main) {
  const { values } = parseCommandLine(Deno.args, {
    quick: { type: "boolean" },
    smoke: { type: "boolean" },
    memory: { type: "string" },
  });
  const names = await churnFiles();
  const root = await openRoot(WORK);
  if (values.memory === "shared" || values.memory === "local") {
    console.log(JSON.stringify(await churnMemory(values.memory, root, names)));
    Deno.exit(0);
  }
  console.log(`shared cache (${lengthOf(Deno.args)}), ${new Date().toISOString()}`);
  const local = await localCosts();
  const shared = await sharedCosts(root);
  row("hit, in the cache (lookup, hold, release), one thread", `${local.hit.toFixed(0)} ns`);
  row("hit, in the cache, from a worker", `${shared.hit.toFixed(0)} ns`);
  row("hit through the store (open, close), one thread", `${(local.open / 1000).toFixed(2)} µs`);
  row("hit through the store, from a worker", `${(shared.open / 1000).toFixed(2)} µs`);
  row("miss: room given, load told (no disk), one thread", `${local.miss.toFixed(2)} µs`);
  row("miss: asked, room given, load told, from a worker", `${shared.miss.toFixed(2)} µs`);
  row("miss through the store (4 KiB, page cache), one thread", `${local.read.toFixed(0)} µs`);
  row("miss through the store, from a worker", `${shared.read.toFixed(0)} µs`);
  row("join another worker's load: the answer (median)", `${shared.join.toFixed(1)} µs`);
  row("join: from the load's end to the reader's wake (median)", `${shared.wake.toFixed(1)} µs`);
  const sharedMemory = await churnMemoryApart("shared");
  const localMemory = await churnMemoryApart("local");
  console.log(
    `resident memory under churn: ${WORKERS} × ${RUN.churn} requests, 4 at a time, for ` +
      `${names.length} files, cache ${formatBytes(RUN.capacity)}`,
  );
  row(`${WORKERS} workers, one shared cache: peak growth`, formatBytes(sharedMemory.growth));
  row(`  shared memory made for entries (arenas)`, formatBytes(sharedMemory.arena));
  row(`  evictions`, sharedMemory.evictions.toLocaleString("en"));
  row(`one thread, its own cache: peak growth`, formatBytes(localMemory.growth));
  row(`  evictions`, localMemory.evictions.toLocaleString("en"));
}
