/**
 * The cache benchmark that picks the default policy: replays deterministic synthetic traces
 * (bench/traces.ts) against every policy through the real {@link ByteCache} — a lookup, and on a
 * miss a reservation of the file's size and its commit, so a file larger than the cache is never
 * admitted — at cache sizes of 1%, 5%, 10% and 25% of each trace's distinct bytes. Prints object
 * and byte hit ratios side by side with their ratio to FIFO, says which policies beat FIFO and
 * LRU on object hit ratio at every size of every Zipf trace and which of those avoids most of
 * FIFO's misses (the default policy should be that one), and draws the object hit ratios as an
 * SVG chart (docs/cache-hit-ratio.svg by default in a full run).
 *
 * Usage: deno run --allow-write=docs bench/cache_sim.ts [--quick | --smoke] [--requests N]
 *        [--seed N] [--svg PATH]
 * A full run (1,000,000 requests per trace) of seed 0 redraws docs/cache-hit-ratio.svg; a quick
 * run (200,000), a smoke run (5,000), another length or another seed draws nothing unless given
 * --svg.
 */

import { ByteCache, DEFAULT_POLICY, POLICIES, type PolicyName } from "../lib/server/cache/cache.ts";
import { parseCommandLine, parseInteger } from "../lib/shared/cli.ts";
import { type Length, lengthOf } from "./length.ts";
import { formatBytes } from "../lib/shared/units.ts";
import { standardTraces, type Trace } from "./traces.ts";

/** Cache sizes, as shares of a trace's distinct bytes. */
export const CACHE_SHARES = [0.01, 0.05, 0.1, 0.25] as const;
/** Requests per trace in a run of each length. */
export const TRACE_REQUESTS: Record<Length, number> = {
  full: 1_000_000,
  quick: 200_000,
  smoke: 5_000,
};
/** Where a full run draws its chart. */
export const CHART_PATH = new URL("../docs/cache-hit-ratio.svg", import.meta.url);

/** Settings of {@link runCacheSim}. */
export interface CacheSimOptions {
  /** How long it runs (full by default): TRACE_REQUESTS says how many requests per trace. */
  length?: Length;
  /** Requests per trace, overriding `length`. */
  requests?: number;
  /** Added to every trace's seed (0 gives the published traces). */
  seed?: number;
  /** Where to write the SVG chart; none when undefined. */
  svg?: string | URL;
  /** Where the tables go (console.log by default). */
  print?: (line: string) => void;
}

/** One policy at one cache size on one trace. */
export interface Outcome {
  policy: PolicyName;
  /** Share of the trace's distinct bytes the cache holds. */
  share: number;
  /** Requests answered from the cache, over all requests. */
  hitRatio: number;
  /** Bytes answered from the cache, over all bytes requested. */
  byteHitRatio: number;
}

/** Every outcome on one trace. */
export interface TraceResult {
  name: string;
  title: string;
  description: string;
  zipf: boolean;
  requests: number;
  distinctFiles: number;
  distinctBytes: number;
  outcomes: Outcome[];
}

/** What {@link runCacheSim} measured and concluded. */
export interface CacheSimReport {
  traces: TraceResult[];
  /** Policies with a higher object hit ratio than both FIFO and LRU at every Zipf cell. */
  beatsFifoAndLru: PolicyName[];
  /** The policy the measurements recommend as the default. */
  choice: PolicyName;
}

/** Replays `trace` against one policy and cache size; returns the hit ratios. */
export function replay(trace: Trace, policy: PolicyName, share: number): Outcome {
  const cache = new ByteCache<number, number>({
    capacity: Math.round(share * trace.distinctBytes),
    policy,
  });
  const { requests, sizes } = trace;
  let hitBytes = 0;
  let requestBytes = 0;
  for (let i = 0; i < requests.length; i++) {
    const id = requests[i];
    const size = sizes[id];
    requestBytes += size;
    if (cache.get(id) === undefined) cache.reserve(id, size)?.commit(size);
    else hitBytes += size;
  }
  return {
    policy,
    share,
    hitRatio: cache.hits / requests.length,
    byteHitRatio: hitBytes / requestBytes,
  };
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}

/** The table of one trace: a row per policy, a column per cache size, ratios to FIFO beside. */
function table(result: TraceResult, measure: "hitRatio" | "byteHitRatio"): string[] {
  const head = measure === "hitRatio" ? "object hit ratio at" : "byte hit ratio at";
  const lines = [
    head.padEnd(19) +
    CACHE_SHARES.map((share) => `${share * 100}%`.padStart(7).padEnd(14)).join(""),
  ];
  for (const policy of POLICIES) {
    const cells = CACHE_SHARES.map((share) => {
      const value = find(result, policy, share)[measure];
      const fifo = find(result, "fifo", share)[measure];
      const ratio = policy === "fifo" ? "" : ` ×${(value / fifo).toFixed(2)}`;
      return percent(value).padStart(7) + ratio.padEnd(7);
    });
    lines.push(`  ${policy.padEnd(17)}${cells.join("")}`);
  }
  return lines;
}

function find(result: TraceResult, policy: PolicyName, share: number): Outcome {
  return result.outcomes.find((o) => o.policy === policy && o.share === share)!;
}

/** Object hit ratio of `policy` minus the better of FIFO and LRU, per cache size. */
function margins(result: TraceResult, policy: PolicyName): number[] {
  return CACHE_SHARES.map((share) =>
    find(result, policy, share).hitRatio -
    Math.max(find(result, "fifo", share).hitRatio, find(result, "lru", share).hitRatio)
  );
}

/** Mean of `measure` over the Zipf traces' cells (trace × cache size). */
function zipfMean(results: TraceResult[], measure: (r: TraceResult, share: number) => number) {
  const values = results.filter((r) => r.zipf).flatMap((r) =>
    CACHE_SHARES.map((share) => measure(r, share))
  );
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Mean share of FIFO's misses that `policy` avoids, (FIFO misses − misses) / FIFO misses. */
function missCut(results: TraceResult[], policy: PolicyName): number {
  return zipfMean(results, (r, share) => {
    const fifoMisses = 1 - find(r, "fifo", share).hitRatio;
    return (fifoMisses - (1 - find(r, policy, share).hitRatio)) / fifoMisses;
  });
}

/** Mean object hit ratio relative to FIFO. */
function hitGain(results: TraceResult[], policy: PolicyName): number {
  return zipfMean(
    results,
    (r, share) => find(r, policy, share).hitRatio / find(r, "fifo", share).hitRatio,
  );
}

/** Runs every policy on every standard trace; prints the tables and the verdict. */
export async function runCacheSim(options: CacheSimOptions = {}): Promise<CacheSimReport> {
  const print = options.print ?? console.log;
  const requests = options.requests ?? TRACE_REQUESTS[options.length ?? "full"];
  const traces = standardTraces({ requests, seed: options.seed ?? 0 });
  print(
    `cache simulation: ${requests.toLocaleString("en")} requests per trace, seed ${
      options.seed ?? 0
    }, ${new Date().toISOString()}`,
  );
  print("ratios (×) are to FIFO at the same cache size; cache sizes are shares of distinct bytes");
  const results: TraceResult[] = [];
  for (const trace of traces) {
    const outcomes = POLICIES.flatMap((policy) =>
      CACHE_SHARES.map((share) => replay(trace, policy, share))
    );
    const { requests: _, sizes: __, ...about } = trace;
    const result = { ...about, requests: trace.requests.length, outcomes };
    results.push(result);
    print("");
    print(
      `${trace.name}: ${trace.description}; ${trace.distinctFiles.toLocaleString("en")} files, ${
        formatBytes(trace.distinctBytes)
      } distinct`,
    );
    for (const line of [...table(result, "hitRatio"), ...table(result, "byteHitRatio")]) {
      print(line);
    }
  }

  const zipfResults = results.filter((r) => r.zipf);
  const contenders = POLICIES.filter((p) => p !== "fifo" && p !== "lru");
  const beatsFifoAndLru = contenders.filter((p) =>
    zipfResults.every((r) => margins(r, p).every((m) => m > 0))
  );
  // Among those (or all, if none), the one that avoids most of FIFO's misses: a miss is a read
  // from disk, and the cut in misses is the measure the SIEVE and S3-FIFO papers report.
  const pool = beatsFifoAndLru.length ? beatsFifoAndLru : contenders;
  const choice = pool.reduce((a, b) => missCut(results, b) > missCut(results, a) ? b : a);
  print("");
  print("object hit ratio minus the better of fifo and lru, in points, per cache size:");
  for (const result of zipfResults) {
    contenders.forEach((policy, i) => {
      const gains = margins(result, policy);
      const verdict = gains.every((g) => g > 0)
        ? "beats both at every size"
        : `loses at ${CACHE_SHARES.filter((_, i) => gains[i] <= 0).map(percent).join(", ")}`;
      const points = gains.map((g) => `${g >= 0 ? "+" : ""}${(g * 100).toFixed(2)}`.padStart(8));
      print(
        `  ${(i ? "" : result.name).padEnd(10)}${policy.padEnd(8)}${points.join("")}   ${verdict}`,
      );
    });
  }
  print("mean over the Zipf cells:   misses avoided vs fifo   object hit ratio ×fifo");
  for (const policy of POLICIES) {
    print(
      `  ${policy.padEnd(8)}${percent(missCut(results, policy)).padStart(31)}${
        hitGain(results, policy).toFixed(3).padStart(25)
      }`,
    );
  }
  print(`beat fifo and lru at every Zipf size: ${beatsFifoAndLru.join(", ") || "none"}`);
  print(
    `choice (${
      beatsFifoAndLru.length ? "of those" : "of all"
    }, most fifo misses avoided): ${choice}` +
      `; DEFAULT_POLICY in lib/server/cache/cache.ts is ${DEFAULT_POLICY}${
        choice === DEFAULT_POLICY ? " (agrees)" : " (DISAGREES)"
      }`,
  );
  const report = { traces: results, beatsFifoAndLru, choice };
  if (options.svg !== undefined) {
    await Deno.writeTextFile(options.svg, chart(report, requests));
    print(`chart: ${options.svg instanceof URL ? options.svg.pathname : options.svg}`);
  }
  return report;
}

/** How each policy is drawn: colour-blind-safe colours (Okabe–Ito), dashes and markers. */
const STYLE: Record<PolicyName, { color: string; dash: string; marker: string }> = {
  fifo: { color: "#666666", dash: "6 4", marker: "circle" },
  lru: { color: "#E69F00", dash: "2 3", marker: "square" },
  sieve: { color: "#0072B2", dash: "", marker: "triangle" },
  s3fifo: { color: "#D55E00", dash: "", marker: "diamond" },
};

function marker(kind: string, x: number, y: number, color: string): string {
  const at = (dx: number, dy: number) => `${(x + dx).toFixed(1)},${(y + dy).toFixed(1)}`;
  switch (kind) {
    case "circle":
      return `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${color}"/>`;
    case "square":
      return `<rect x="${(x - 3.5).toFixed(1)}" y="${(y - 3.5).toFixed(1)}" width="7" height="7" ` +
        `fill="${color}"/>`;
    case "triangle":
      return `<polygon points="${at(0, -4.5)} ${at(4.5, 3.5)} ${at(-4.5, 3.5)}" fill="${color}"/>`;
    default:
      return `<polygon points="${at(0, -5)} ${at(5, 0)} ${at(0, 5)} ${
        at(-5, 0)
      }" fill="${color}"/>`;
  }
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A step of 1, 2, 5, 10, 20 or 25 points giving at most six gridlines over [low, high]. */
function gridStep(low: number, high: number): number {
  return [1, 2, 5, 10, 20, 25].find((step) => (high - low) / step <= 6) ?? 50;
}

/**
 * The object hit ratios as a hand-written SVG: one panel per trace, hit ratio against cache
 * size (log scale), one line per policy, a shared legend.
 */
export function chart(report: CacheSimReport, requests: number): string {
  const columns = 3;
  const panel = { width: 300, height: 230 };
  const plot = { left: 52, top: 28, width: 228, height: 150 };
  const top = 84;
  const width = columns * panel.width + 20;
  const rows = Math.ceil(report.traces.length / columns);
  const height = top + rows * panel.height + 10;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" font-size="18" font-weight="bold" text-anchor="middle">` +
    `Object hit ratio against cache size, per eviction policy</text>`,
    `<text x="${width / 2}" y="44" font-size="12" fill="#444444" text-anchor="middle">` +
    `${requests.toLocaleString("en")} requests per trace; cache size as a share of the ` +
    `trace's distinct bytes (log scale); higher is better. bench/cache_sim.ts</text>`,
  ];
  // Legend: a sample line and a label per policy, centred; 7.5 px per character at 13 px.
  const labels = POLICIES.map((p) => p === DEFAULT_POLICY ? `${p} (default)` : p);
  const widths = labels.map((label) => 40 + label.length * 7.5 + 28);
  let x = (width - widths.reduce((a, b) => a + b, 0)) / 2;
  POLICIES.forEach((policy, i) => {
    const style = STYLE[policy];
    out.push(
      `<line x1="${x}" y1="64" x2="${x + 32}" y2="64" stroke="${style.color}" stroke-width="2.5"` +
        `${style.dash ? ` stroke-dasharray="${style.dash}"` : ""}/>`,
      marker(style.marker, x + 16, 64, style.color),
      `<text x="${x + 40}" y="68" font-size="13">${labels[i]}</text>`,
    );
    x += widths[i];
  });
  const logLow = Math.log(CACHE_SHARES[0]);
  const logSpan = Math.log(CACHE_SHARES[CACHE_SHARES.length - 1]) - logLow;
  report.traces.forEach((trace, index) => {
    const ox = 10 + (index % columns) * panel.width + plot.left;
    const oy = top + Math.floor(index / columns) * panel.height + plot.top;
    const values = trace.outcomes.map((o) => o.hitRatio * 100);
    const step = gridStep(Math.min(...values), Math.max(...values));
    const low = Math.floor(Math.min(...values) / step) * step;
    const high = Math.max(low + step, Math.ceil(Math.max(...values) / step) * step);
    const xOf = (share: number) =>
      ox + 8 + (Math.log(share) - logLow) / logSpan * (plot.width - 16);
    const yOf = (value: number) => oy + plot.height - (value - low) / (high - low) * plot.height;
    out.push(
      `<text x="${ox + plot.width / 2}" y="${oy - 10}" font-size="14" font-weight="bold" ` +
        `text-anchor="middle">${escape(trace.title)}</text>`,
      `<rect x="${ox}" y="${oy}" width="${plot.width}" height="${plot.height}" fill="none" ` +
        `stroke="#999999"/>`,
    );
    for (let value = low; value <= high + 1e-9; value += step) {
      const y = yOf(value).toFixed(1);
      out.push(
        `<line x1="${ox}" y1="${y}" x2="${ox + plot.width}" y2="${y}" stroke="#e4e4e4"/>`,
        `<text x="${ox - 6}" y="${y}" dy="4" font-size="11" text-anchor="end">${value}%</text>`,
      );
    }
    for (const share of CACHE_SHARES) {
      const x = xOf(share).toFixed(1);
      out.push(
        `<line x1="${x}" y1="${oy + plot.height}" x2="${x}" y2="${oy + plot.height + 4}" ` +
          `stroke="#999999"/>`,
        `<text x="${x}" y="${oy + plot.height + 17}" font-size="11" text-anchor="middle">` +
          `${share * 100}%</text>`,
      );
    }
    out.push(
      `<text x="${ox + plot.width / 2}" y="${oy + plot.height + 33}" font-size="11" ` +
        `fill="#444444" text-anchor="middle">cache size (share of distinct bytes)</text>`,
      `<text transform="translate(${ox - 38} ${oy + plot.height / 2}) rotate(-90)" ` +
        `font-size="11" fill="#444444" text-anchor="middle">object hit ratio</text>`,
    );
    for (const policy of POLICIES) {
      const style = STYLE[policy];
      const points = CACHE_SHARES.map((share) => {
        const outcome = trace.outcomes.find((o) => o.policy === policy && o.share === share)!;
        return [xOf(share), yOf(outcome.hitRatio * 100)];
      });
      out.push(
        `<polyline points="${
          points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ")
        }"` +
          ` fill="none" stroke="${style.color}" stroke-width="2"` +
          `${style.dash ? ` stroke-dasharray="${style.dash}"` : ""}/>`,
        ...points.map(([x, y]) => marker(style.marker, x, y, style.color)),
      );
    }
  });
  out.push("</svg>", "");
  return out.join("\n");
}

if (import.meta.main) {
  const { values } = parseCommandLine(Deno.args, {
    quick: { type: "boolean" },
    smoke: { type: "boolean" },
    requests: { type: "string" },
    seed: { type: "string" },
    svg: { type: "string" },
  });
  const length = lengthOf(Deno.args);
  const seed = values.seed === undefined ? 0 : parseInteger(values.seed, "--seed", 0, 1_000_000);
  const requests = values.requests === undefined
    ? undefined
    : parseInteger(values.requests, "--requests", 1_000, 100_000_000);
  const published = length === "full" && requests === undefined && seed === 0;
  const started = performance.now();
  // Only a full run of the published traces redraws the published chart.
  await runCacheSim({
    length,
    requests,
    seed,
    svg: values.svg ?? (published ? CHART_PATH : undefined),
  });
  console.error(`(ran in ${((performance.now() - started) / 1000).toFixed(0)} s)`);
}
