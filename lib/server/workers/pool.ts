/**
 * A server of several worker threads (`server --workers N`): every worker (thread.ts) serves every
 * port on the same address (SO_REUSEPORT), and this, the main thread, holds what they share: the
 * cache's coordinator (one cache of --cache-size for all), the connection limits and the delay
 * wrong tokens earn (asked of it by every worker, so they hold for the whole server), the log
 * (every worker's lines written here), and the statistics (every worker's summed). A worker that
 * dies is logged and replaced; the cache lets go of what it held.
 */

import { reasonOf } from "../../shared/errors.ts";
import { ratio, type ServerStats, sumStats } from "../../shared/stats.ts";
import type { CacheView } from "../cache/cache.ts";
import { FailureDelay } from "../delay.ts";
import { openRoot } from "../folder.ts";
import type { Gate } from "../limits.ts";
import { Histogram, type Measures, PROTOCOLS, STATUS_CLASSES } from "../metrics.ts";
import { checkPorts, fittedGate, logStart, logStopped, type ServerOptions } from "../server.ts";
import { CacheCoordinator } from "../store/threads/coordinator.ts";
import {
  Asks,
  type FromThread,
  type MeasuresData,
  measuresData,
  measuresOf,
  type ThreadOptions,
  type ThreadStart,
  type ThreadStarted,
  type ToThread,
} from "./messages.ts";

/** A worker thread and what the main thread keeps of it. */
interface Thread {
  /** Its number, from 0; one that replaces a dead worker takes its number. */
  index: number;
  worker: Worker;
  /** Its end of the channel to the cache's coordinator. */
  cache: MessagePort;
  /** The places it holds at the gate, by host, given back if it dies. */
  hosts: Map<string, number>;
  /** The main thread's questions to it. */
  asks: Asks;
}

/** A running server of several worker threads. */
export class ServerPool {
  readonly #options: ServerOptions;
  readonly #gate: Gate;
  readonly #coordinator: CacheCoordinator;
  readonly #failures = new FailureDelay();
  readonly #ids = new SharedArrayBuffer(4);
  readonly #threads = new Set<Thread>();
  readonly #started = Date.now();
  /** The options every worker starts with: the ports fixed once the first has them. */
  #threadOptions: ThreadOptions;
  #addr: Deno.NetAddr | undefined;
  #httpAddr: Deno.NetAddr | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;

  private constructor(options: ServerOptions, gate: Gate) {
    this.#options = options;
    this.#gate = gate;
    this.#coordinator = new CacheCoordinator({
      capacity: options.cacheBytes,
      policy: options.policy,
    });
    const { logger: _logger, tokens: _tokens, part: _part, ...threadOptions } = options;
    this.#threadOptions = threadOptions;
  }

  /**
   * Starts `workers` worker threads serving as `options` say, once the first has its ports (so a
   * port 0 becomes one free port for all), and logs the listening line; throws, with no thread
   * left running, when one cannot start.
   */
  static async start(options: ServerOptions, workers: number): Promise<ServerPool> {
    const root = await openRoot(options.folder);
    await checkPorts(options);
    const pool = new ServerPool(options, fittedGate(root, options));
    try {
      const first = await pool.#spawn(0);
      const { port, httpPort, hostname } = first;
      pool.#threadOptions = { ...pool.#threadOptions, port, httpPort };
      pool.#addr = { transport: "tcp", hostname, port };
      if (httpPort !== undefined) pool.#httpAddr = { transport: "tcp", hostname, port: httpPort };
      await Promise.all(Array.from({ length: workers - 1 }, (_, i) => pool.#spawn(i + 1)));
      const { address, http, ...rest } = first.startup;
      await logStart(options.logger, { address, http, workers, ...rest }, hostname, options);
    } catch (error) {
      for (const thread of pool.#threads) pool.#stop(thread);
      throw error;
    }
    return pool;
  }

  /** The address the native port listens on. */
  get addr(): Deno.NetAddr {
    return this.#addr!;
  }

  /** The address of the HTTP port, if there is one. */
  get httpAddr(): Deno.NetAddr | undefined {
    return this.#httpAddr;
  }

  /** Connections open now, over every worker. */
  get connections(): number {
    return this.#gate.open;
  }

  /** The whole server's counters: every worker's, summed. */
  async stats(): Promise<ServerStats> {
    return (await this.measures()).stats;
  }

  /** The whole server's numbers: every worker's, asked now and summed. */
  async measures(): Promise<Measures> {
    const threads = [...this.#threads].sort((a, b) => a.index - b.index);
    const parts = await Promise.all(
      threads.map((thread) =>
        thread.asks.ask<MeasuresData | undefined>(thread.worker, { kind: "measures" })
      ),
    );
    const measures = this.#sum(parts.filter((part) => part !== undefined));
    const workers = parts.map((part) => ({
      requests: part?.stats.requests ?? 0,
      connections: part?.stats.totalConnections ?? 0,
    }));
    return { ...measures, workers };
  }

  /** Has every worker read the token file again (SIGHUP); resolves once each has. */
  async reload(): Promise<void> {
    const threads = [...this.#threads];
    await Promise.all(threads.map(({ worker, asks }) => asks.ask(worker, { kind: "reload" })));
  }

  /**
   * Shuts every worker down gracefully (each within the shutdown timeout), then logs the whole
   * server's summary. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    const threads = [...this.#threads];
    const last = await Promise.all(
      threads.map((thread) =>
        thread.asks.ask<MeasuresData | undefined>(thread.worker, { kind: "close" })
      ),
    );
    for (const thread of threads) this.#stop(thread);
    logStopped(this.#options.logger, this.#sum(last.filter((part) => part !== undefined)).stats);
    await this.#options.logger.flush();
  }

  /** Every worker's numbers as one; the cache's are the coordinator's, counted once. */
  #sum(parts: MeasuresData[]): Measures {
    const measures = parts.map(measuresOf);
    const durations = new Histogram();
    for (const part of parts) durations.add(part.durations);
    const requests = Object.fromEntries(
      PROTOCOLS.map((protocol) => [protocol, sum(measures.map((m) => m.requests[protocol]))]),
    ) as Measures["requests"];
    const stats = {
      ...sumStats(measures.map((m) => m.stats)),
      ...cacheStats(this.#coordinator.view),
      connections: this.#gate.open,
      uptimeSeconds: (Date.now() - this.#started) / 1000,
    };
    const statusClasses = Object.fromEntries(
      STATUS_CLASSES.map((c) => [c, sum(measures.map((m) => m.statusClasses[c]))]),
    ) as Measures["statusClasses"];
    const peerErrors = sum(measures.map((m) => m.peerErrors));
    return { stats, requests, statusClasses, durations, peerErrors };
  }

  /** Starts worker number `index`; resolves once it serves, or rejects with why it cannot. */
  #spawn(index: number): Promise<ThreadStarted> {
    const url = new URL("./thread.ts", import.meta.url);
    const worker = new Worker(url, { type: "module" });
    const channel = new MessageChannel();
    const thread: Thread = {
      index,
      worker,
      cache: channel.port1,
      hosts: new Map(),
      asks: new Asks(),
    };
    this.#threads.add(thread);
    this.#coordinator.attach(channel.port1);
    const started = Promise.withResolvers<ThreadStarted>();
    worker.onmessage = ({ data }: MessageEvent<FromThread>) => {
      if (data.kind === "started") started.resolve(data);
      else if (data.kind === "failed") started.reject(new Error(data.error));
      else this.#heard(thread, data);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      const error = reasonOf(event.error ?? event.message);
      started.reject(new Error(`a worker thread failed at start: ${error}`));
      this.#died(thread, error);
    };
    const { logger, tokens } = this.#options;
    const start: ThreadStart = {
      kind: "start",
      options: this.#threadOptions,
      tokenFile: tokens?.file,
      log: { format: logger.format, level: logger.level },
      limits: { max: this.#gate.max, perHost: this.#gate.perHost },
      cache: channel.port2,
      ids: this.#ids,
    };
    worker.postMessage(start, [channel.port2]);
    return started.promise;
  }

  /** What a worker says, beside its start. */
  #heard(thread: Thread, message: FromThread): void {
    const { worker } = thread;
    const answer = (ask: number, value: unknown) =>
      worker.postMessage({ kind: "answer", ask, value } satisfies ToThread);
    switch (message.kind) {
      case "log":
        return this.#options.logger.relay(message.lines, message.events);
      case "answer":
        return thread.asks.answered(message.ask, message.value);
      case "enter": {
        const full = this.#gate.enter(message.host, message.perHost);
        if (full === undefined) count(thread.hosts, message.host, 1);
        return answer(message.ask, full);
      }
      case "leave":
        count(thread.hosts, message.host, -1);
        return this.#gate.leave(message.host);
      case "fail":
        return answer(message.ask, this.#failures.fail(message.host));
      case "measures":
        this.measures().then((measures) => answer(message.ask, measuresData(measures)));
    }
  }

  /**
   * A worker stopped by an error: logged; its cache holds and its places at the gate given back;
   * replaced by a new one unless the server is shutting down.
   */
  #died(thread: Thread, error: string): void {
    if (!this.#threads.has(thread)) return;
    const { index } = thread;
    this.#options.logger.event("worker-died", { worker: index, error });
    this.#stop(thread);
    if (this.#closing || this.#addr === undefined) return;
    this.#spawn(index).then(
      () => this.#options.logger.event("worker-replaced", { worker: index }),
      (error) =>
        this.#options.logger.event("worker-lost", { worker: index, error: reasonOf(error) }),
    );
  }

  /** Ends `thread` and parts with it: the cache lets go of its holds, the gate of its places. */
  #stop(thread: Thread): void {
    this.#threads.delete(thread);
    thread.worker.terminate();
    thread.asks.abandon();
    this.#coordinator.detach(thread.cache);
    thread.cache.close();
    for (const [host, places] of thread.hosts) {
      for (let i = 0; i < places; i++) this.#gate.leave(host);
    }
    thread.hosts.clear();
  }
}

/** The statistics of the cache, as its coordinator counts them for every worker. */
function cacheStats(cache: CacheView<string>): Partial<ServerStats> {
  return {
    policy: cache.policy,
    hits: cache.hits,
    misses: cache.misses,
    hitRatio: ratio(cache.hits, cache.hits + cache.misses),
    evictions: cache.evictions,
    cacheBytes: cache.used,
    cacheReserved: cache.reserved,
    cachePinned: cache.pinned,
    cacheCapacity: cache.capacity,
    cacheEntries: cache.size,
  };
}

/** Adds `by` to the count of `key` in `counts`, leaving out counts of 0. */
function count(counts: Map<string, number>, key: string, by: number): void {
  const value = (counts.get(key) ?? 0) + by;
  if (value === 0) counts.delete(key);
  else counts.set(key, value);
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
