/**
 * Deterministic synthetic request traces for the cache benchmarks: a seeded generator (the same
 * seed gives the same trace on every machine), Zipf popularity, heavy-tailed file sizes, and the
 * trace shapes the policies are judged on.
 */

/** Median file size: 100 KiB. */
export const MEDIAN_FILE_BYTES = 100 * 1024;
/** Spread of the log of the file sizes: sizes are lognormal(ln median, 1.5). */
export const SIZE_SIGMA = 1.5;
/** No file is larger than this. */
export const MAX_FILE_BYTES = 64 * 1024 * 1024;

/**
 * A seeded pseudo-random generator (sfc32, seeded through splitmix32): fast, 128 bits of state,
 * and reproducible, which `Math.random` is not.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { Rng } from "./traces.ts";
 * equal(new Rng(7).next(), new Rng(7).next());
 * ```
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    let state = seed >>> 0;
    const splitmix = () => {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = splitmix();
    this.#b = splitmix();
    this.#c = splitmix();
    this.#d = splitmix();
    for (let i = 0; i < 12; i++) this.next();
  }

  /** A uniform number in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** A uniform whole number in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A standard normal number (Box–Muller). */
  normal(): number {
    const u = 1 - this.next(); // in (0, 1]: the logarithm stays finite
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

/**
 * Zipf popularity over `n` ranks: rank r (from 0) is drawn with probability ∝ 1 / (r + 1)^alpha.
 * Sampling is O(1) with Vose's alias table.
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { Rng, Zipf } from "./traces.ts";
 * const zipf = new Zipf(10_000, 1.0);
 * const rng = new Rng(1);
 * const ranks = Array.from({ length: 1000 }, () => zipf.sample(rng));
 * ok(ranks.every((rank) => rank >= 0 && rank < 10_000));
 * ok(ranks.filter((rank) => rank < 100).length > 400); // the first 1% get most requests
 * ```
 */
export class Zipf {
  readonly #keep: Float64Array;
  readonly #alias: Uint32Array;

  constructor(n: number, alpha: number) {
    const weights = new Float64Array(n);
    let total = 0;
    for (let r = 0; r < n; r++) total += weights[r] = 1 / (r + 1) ** alpha;
    this.#keep = new Float64Array(n);
    this.#alias = new Uint32Array(n);
    const small: number[] = [];
    const large: number[] = [];
    for (let r = 0; r < n; r++) {
      weights[r] = weights[r] * n / total;
      (weights[r] < 1 ? small : large).push(r);
    }
    while (small.length && large.length) {
      const less = small.pop()!;
      const more = large[large.length - 1];
      this.#keep[less] = weights[less];
      this.#alias[less] = more;
      weights[more] -= 1 - weights[less];
      if (weights[more] < 1) small.push(large.pop()!);
    }
    for (const r of [...small, ...large]) this.#keep[r] = 1; // rounding leftovers
  }

  /** A rank drawn from the distribution. */
  sample(rng: Rng): number {
    const column = rng.below(this.#keep.length);
    return rng.next() < this.#keep[column] ? column : this.#alias[column];
  }
}

/** A sequence of requests for files of known sizes. */
export interface Trace {
  /** Short name for tables: "zipf-0.8". */
  name: string;
  /** Title for the chart: "Zipf α=0.8". */
  title: string;
  /** One line on how it was made. */
  description: string;
  /** True for the plain Zipf traces, on which the default policy is chosen. */
  zipf: boolean;
  /** The requested file ids, in order. */
  requests: Uint32Array;
  /** The size in bytes of each file id. */
  sizes: Uint32Array;
  /** Number of distinct files requested. */
  distinctFiles: number;
  /** Sum of the sizes of the distinct files requested: the base of the cache sizes. */
  distinctBytes: number;
}

/** Shape of the standard traces. */
export interface TraceOptions {
  /** Requests per trace. */
  requests: number;
  /** Files in the Zipf population (10,000). */
  files?: number;
  /** Added to every trace's seed, to check that results do not hang on one draw. */
  seed?: number;
}

/** A heavy-tailed file size: lognormal with median {@link MEDIAN_FILE_BYTES}, capped. */
function fileSize(rng: Rng): number {
  const size = Math.round(MEDIAN_FILE_BYTES * Math.exp(SIZE_SIGMA * rng.normal()));
  return Math.min(MAX_FILE_BYTES, Math.max(1, size));
}

function fileSizes(count: number, rng: Rng): number[] {
  return Array.from({ length: count }, () => fileSize(rng));
}

/** A random permutation of 0..n-1 (Fisher–Yates). */
function permutation(n: number, rng: Rng): Uint32Array {
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

function finish(trace: Omit<Trace, "sizes" | "distinctFiles" | "distinctBytes">, sizes: number[]) {
  const seen = new Uint8Array(sizes.length);
  let distinctFiles = 0;
  let distinctBytes = 0;
  for (const id of trace.requests) {
    if (seen[id]) continue;
    seen[id] = 1;
    distinctFiles++;
    distinctBytes += sizes[id];
  }
  return { ...trace, sizes: Uint32Array.from(sizes), distinctFiles, distinctBytes };
}

/**
 * Independent requests with Zipf(alpha) popularity over `files` files. Sizes are drawn apart
 * from popularity, so a popular file is no likelier to be small than an unpopular one.
 */
export function zipfTrace(alpha: number, options: TraceOptions): Trace {
  const files = options.files ?? 10_000;
  const rng = new Rng(Math.round(alpha * 100) + (options.seed ?? 0));
  const sizes = fileSizes(files, rng);
  const zipf = new Zipf(files, alpha);
  const requests = new Uint32Array(options.requests);
  for (let i = 0; i < requests.length; i++) requests[i] = zipf.sample(rng);
  return finish({
    name: `zipf-${alpha.toFixed(1)}`,
    title: `Zipf α=${alpha.toFixed(1)}`,
    description: `Zipf α=${alpha.toFixed(1)} over ${files.toLocaleString("en")} files`,
    zipf: true,
    requests,
  }, sizes);
}

/** Share of the scan trace's requests that go to files requested once. */
export const SCAN_SHARE = 0.1;
/** Popularity skew of the working set in the scan and shift traces. */
export const MIXED_ALPHA = 1.0;

/**
 * A Zipf(1.0) working set interrupted by scans: bursts of 100 to 1,000 files never requested
 * before nor after (one-hit wonders, as when a crawler or a backup walks a folder), making
 * {@link SCAN_SHARE} of the requests.
 */
export function scanTrace(options: TraceOptions): Trace {
  const files = options.files ?? 10_000;
  const rng = new Rng(1001 + (options.seed ?? 0));
  const sizes = fileSizes(files, rng);
  const zipf = new Zipf(files, MIXED_ALPHA);
  const requests = new Uint32Array(options.requests);
  const meanBurst = 550;
  const meanGap = meanBurst * (1 - SCAN_SHARE) / SCAN_SHARE;
  for (let i = 0; i < requests.length;) {
    const gap = 1 + rng.below(2 * meanGap - 1);
    for (const end = Math.min(requests.length, i + gap); i < end;) requests[i++] = zipf.sample(rng);
    const burst = 100 + rng.below(901);
    for (const end = Math.min(requests.length, i + burst); i < end;) {
      requests[i++] = sizes.length;
      sizes.push(fileSize(rng));
    }
  }
  return finish({
    name: "scan",
    title: `Zipf α=${MIXED_ALPHA.toFixed(1)} + scans`,
    description: `Zipf α=${MIXED_ALPHA.toFixed(1)} over ${files.toLocaleString("en")} files; ${
      SCAN_SHARE * 100
    }% of requests are scans of 100-1,000 files requested once`,
    zipf: false,
    requests,
  }, sizes);
}

/**
 * Zipf(1.0) over `files` files whose popularity is reshuffled halfway: after the midpoint, each
 * rank belongs to a file drawn at random, so yesterday's favourites become ordinary.
 */
export function shiftTrace(options: TraceOptions): Trace {
  const files = options.files ?? 10_000;
  const rng = new Rng(2002 + (options.seed ?? 0));
  const sizes = fileSizes(files, rng);
  const zipf = new Zipf(files, MIXED_ALPHA);
  const later = permutation(files, rng);
  const requests = new Uint32Array(options.requests);
  const half = requests.length >>> 1;
  for (let i = 0; i < half; i++) requests[i] = zipf.sample(rng);
  for (let i = half; i < requests.length; i++) requests[i] = later[zipf.sample(rng)];
  return finish({
    name: "shift",
    title: `Zipf α=${MIXED_ALPHA.toFixed(1)}, shifts midway`,
    description: `Zipf α=${MIXED_ALPHA.toFixed(1)} over ${
      files.toLocaleString("en")
    } files; the popularity ranks are reshuffled at the midpoint`,
    zipf: false,
    requests,
  }, sizes);
}

/** The Zipf skews the default policy is chosen on. */
export const ZIPF_ALPHAS = [0.6, 0.8, 1.0, 1.2] as const;

/** Every trace the cache simulation replays, Zipf ones first. */
export function standardTraces(options: TraceOptions): Trace[] {
  return [
    ...ZIPF_ALPHAS.map((alpha) => zipfTrace(alpha, options)),
    scanTrace(options),
    shiftTrace(
      options,
    ),
  ];
}
