/**
 * The server's numbers in the Prometheus text format (version 0.0.4), for every dashboard: the
 * same counters `stats` shows, counted once, with requests by protocol and a histogram of how
 * long requests take.
 */

import process from "node:process";
import { type ServerStats, STAT_NAMES, STATS } from "../shared/stats.ts";

/** The protocols a request can come in by, as the `protocol` label names them. */
export const PROTOCOLS = ["framed", "original", "http"] as const;

/** One of {@link PROTOCOLS}. */
export type Protocol = typeof PROTOCOLS[number];

/** The classes of HTTP status codes, as the `class` label names them. */
export const STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;

/** One of {@link STATUS_CLASSES}. */
export type StatusClass = typeof STATUS_CLASSES[number];

/** Upper bounds of the duration buckets, in seconds: half a millisecond to ten seconds. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * A histogram of durations, as Prometheus keeps one: a count per bucket (cumulative when shown),
 * the sum and the count.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { Histogram } from "./metrics.ts";
 * const histogram = new Histogram();
 * histogram.observe(0.002);
 * histogram.observe(3);
 * equal(histogram.count, 2);
 * equal(histogram.cumulative()[2], 1); // at most 2.5 ms
 * ```
 */
export class Histogram {
  readonly #counts = new Array<number>(BUCKETS.length).fill(0);
  count = 0;
  sum = 0;

  /** Counts one duration of `seconds`. */
  observe(seconds: number): void {
    const bucket = BUCKETS.findIndex((bound) => seconds <= bound);
    if (bucket !== -1) this.#counts[bucket]++;
    this.count++;
    this.sum += seconds;
  }

  /** Its counts as plain numbers, to send to another thread (see {@link Histogram.add}). */
  data(): HistogramData {
    return { counts: [...this.#counts], count: this.count, sum: this.sum };
  }

  /**
   * Counts the durations `other` counted too: a worker thread's, into the whole server's.
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Histogram } from "./metrics.ts";
   * const one = new Histogram();
   * one.observe(0.002);
   * const all = new Histogram();
   * all.add(one.data());
   * all.add(one.data());
   * equal(all.count, 2);
   * equal(all.cumulative()[2], 2);
   * ```
   */
  add(other: HistogramData): void {
    other.counts.forEach((count, i) => this.#counts[i] += count);
    this.count += other.count;
    this.sum += other.sum;
  }

  /** How many durations were at most each bucket's bound, bucket by bucket. */
  cumulative(): number[] {
    let total = 0;
    return this.#counts.map((count) => total += count);
  }
}

/** A histogram's counts as plain numbers, as they cross between threads. */
export interface HistogramData {
  counts: number[];
  count: number;
  sum: number;
}

/**
 * What the metrics page shows: the stats, requests by protocol, their durations, and the peers'
 * faults (counted apart from the server's errors).
 */
export interface Measures {
  stats: ServerStats;
  requests: Record<Protocol, number>;
  statusClasses: Record<StatusClass, number>;
  durations: Histogram;
  peerErrors: number;
  /** With worker threads: each one's requests and connections so far, by its number. */
  workers?: { requests: number; connections: number }[];
}

/** A metric: its name, type and help, and its samples (labels, and the number). */
type Metric = [string, string, string, [string, number][]];

/**
 * The metrics page: a metric for each statistic that has one (STATS in lib/shared/stats.ts: its
 * name, help, and type by kind), requests by protocol, HTTP answers by status class, the peers'
 * faults, the histogram, and the process's own figures under the names every Prometheus client
 * library gives them (`process_*`), so the usual dashboards and alerts apply.
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { Histogram, renderMetrics } from "./metrics.ts";
 * const stats = { hits: 3 } as unknown as import("../shared/stats.ts").ServerStats;
 * const requests = { framed: 2, original: 0, http: 1 };
 * const statusClasses = { "1xx": 0, "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 0 };
 * const durations = new Histogram();
 * const text = renderMetrics({ stats, requests, statusClasses, durations, peerErrors: 4 });
 * ok(text.includes("# TYPE fileserver_cache_hits_total counter\nfileserver_cache_hits_total 3\n"));
 * ok(text.includes('fileserver_requests_total{protocol="http"} 1\n'));
 * ok(text.includes("fileserver_peer_errors_total 4\n"));
 * ok(text.includes('fileserver_http_responses_total{class="2xx"} 1\n'));
 * ok(/\nprocess_resident_memory_bytes \d+\n/.test(text));
 * ```
 */
export function renderMetrics(
  { stats, requests, statusClasses, durations, peerErrors, workers }: Measures,
): string {
  // The statistics shown in parts, by their labels; the others are one number each.
  const parts: Partial<Record<keyof ServerStats, [string, number][]>> = {
    requests: Object.entries(requests).map((
      [protocol, count],
    ) => [`{protocol="${protocol}"}`, count]),
  };
  const metrics: Metric[] = [
    ...STAT_NAMES.flatMap((name): Metric[] => {
      const stat = STATS[name];
      if (!("metric" in stat) || stat.metric === undefined) return [];
      const samples = parts[name] ?? [["", stats[name] as number]];
      return [[stat.metric, stat.kind === "counter" ? "counter" : "gauge", stat.help, samples]];
    }),
    [
      "fileserver_peer_errors_total",
      "counter",
      "Connections a peer ended by breaking a protocol: framed bytes against its rules, an " +
      "original-dialect request that is not list, help or file@NAME, a malformed PROXY line. " +
      "The peer's fault, not the server's: not in fileserver_errors_total.",
      [["", peerErrors]],
    ],
    [
      "fileserver_http_responses_total",
      "counter",
      "Answers of the HTTP port, by the class of their status: 2xx served, 3xx redirected or not " +
      "modified, 4xx refused (missing, bad, unauthorized), 5xx failed.",
      Object.entries(statusClasses).map(([name, count]) => [`{class="${name}"}`, count]),
    ],
    histogram(durations),
    ...(workers === undefined ? [] : perWorker(workers)),
    ...processMetrics(),
  ];
  const lines = metrics.flatMap(([name, type, help, samples]) => [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} ${type}`,
    ...samples.map(([labels, value]) => `${name}${labels} ${value ?? 0}`),
  ]);
  return lines.join("\n") + "\n";
}

/** The figures of each worker thread, labelled with its number. */
function perWorker(workers: NonNullable<Measures["workers"]>): Metric[] {
  const samples = (figure: "requests" | "connections") =>
    workers.map(({ [figure]: value }, i): [string, number] => [`{worker="${i}"}`, value]);
  return [
    [
      "fileserver_worker_requests_total",
      "counter",
      "Requests answered by each worker thread (--workers) since it started.",
      samples("requests"),
    ],
    [
      "fileserver_worker_connections_total",
      "counter",
      "Connections accepted by each worker thread (--workers) since it started.",
      samples("connections"),
    ],
  ];
}

/** The histogram of request durations, as its metric. */
function histogram(durations: Histogram): Metric {
  const cumulative = durations.cumulative();
  return [
    "fileserver_request_duration_seconds",
    "histogram",
    "How long requests took, from reading them to their last byte handed to the kernel.",
    [
      ...BUCKETS.map((bound, i): [string, number] => [`_bucket{le="${bound}"}`, cumulative[i]]),
      [`_bucket{le="+Inf"}`, durations.count],
      ["_sum", durations.sum],
      ["_count", durations.count],
    ],
  ];
}

/** When the process started, in seconds since the epoch. */
const STARTED = Math.round(performance.timeOrigin) / 1000;

/**
 * The process's figures, as Prometheus's client libraries name them. Its open descriptors
 * (`process_open_fds`) are left out: Deno reads /proc/self/fd only with every permission, which the
 * server does not take.
 */
function processMetrics(): Metric[] {
  const { user, system } = process.cpuUsage();
  return [
    [
      "process_cpu_seconds_total",
      "counter",
      "CPU time the process has used, user and system, in seconds (every thread).",
      [["", (user + system) / 1e6]],
    ],
    [
      "process_resident_memory_bytes",
      "gauge",
      "Resident memory of the process, in bytes.",
      [["", Deno.memoryUsage().rss]],
    ],
    [
      "process_start_time_seconds",
      "gauge",
      "When the process started, in seconds since the Unix epoch.",
      [["", STARTED]],
    ],
  ];
}
