/**
 * A one-line progress bar for downloads on a terminal: name, bytes, rate and time left, redrawn
 * at most ten times a second. Drawing is separate from rendering, so the text is tested alone.
 */

import { formatBytes } from "../shared/units.ts";

/** Files smaller than this finish too fast for a bar to help. */
export const PROGRESS_MIN_BYTES = 1024 * 1024;
/** Least time between two redraws. */
const REDRAW_MS = 100;

/** What one line of the bar says. */
export interface ProgressState {
  name: string;
  /** Bytes of the file there are now, including those a resumed download started with. */
  done: number;
  total: number;
  /** Bytes already there when this run started (a resumed download's); not part of the rate. */
  start?: number;
  /** Time since this run started receiving the file. */
  elapsedMs: number;
}

/**
 * The bar's text for a state, fitted to `columns`.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { renderProgress } from "./progress.ts";
 * equal(
 *   renderProgress({ name: "a.bin", done: 512, total: 1024, elapsedMs: 1000 }, 60),
 *   "a.bin [######     ]   50%  512 B / 1.0 KiB  512 B/s  1s left",
 * );
 * ```
 */
export function renderProgress(state: ProgressState, columns: number): string {
  const fraction = state.total > 0 ? Math.min(1, state.done / state.total) : 1;
  const received = state.done - (state.start ?? 0);
  const rate = state.elapsedMs > 0 ? received / (state.elapsedMs / 1000) : 0;
  const left = rate > 0 ? (state.total - state.done) / rate : Infinity;
  const facts = `${Math.floor(fraction * 100).toString().padStart(3)}%  ` +
    `${formatBytes(state.done)} / ${formatBytes(state.total)}  ` +
    `${formatBytes(Math.round(rate))}/s  ${formatDuration(left)} left`;
  const barWidth = Math.max(0, Math.min(30, columns - facts.length - state.name.length - 5));
  const name = barWidth > 0
    ? state.name
    : state.name.slice(0, Math.max(0, columns - facts.length - 2));
  const filled = Math.round(fraction * barWidth);
  const bar = barWidth > 0 ? ` [${"#".repeat(filled)}${" ".repeat(barWidth - filled)}]` : "";
  return `${name}${bar}  ${facts}`.slice(0, columns);
}

/** Seconds as "42s", "3m05s" or "1h02m"; "?" when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** Where a bar is drawn: a terminal's standard error, usually. */
export interface ProgressOutput {
  isTerminal(): boolean;
  writeSync(bytes: Uint8Array): number;
}

/**
 * Draws progress for one file at a time on a terminal. It stays silent when the output is not a
 * terminal, when told to be quiet, and for files under {@link PROGRESS_MIN_BYTES}. The first
 * report of a file (until {@link ProgressBar.done}) sets where this run started, so the rate and
 * time left of a resumed download count only the bytes received now.
 */
export class ProgressBar {
  readonly #output: ProgressOutput;
  readonly #enabled: boolean;
  readonly #columns: () => number;
  readonly #now: () => number;
  /** The file being drawn: its name, where this run started, and when. */
  #current: { name: string; start: number; startedMs: number } | undefined;
  #drawnMs = -Infinity;
  #visible = false;

  /**
   * A bar on `output`, silent with `quiet`. `columns` (the terminal's width) and `now` (a clock
   * in milliseconds) are there for tests.
   */
  constructor(
    output: ProgressOutput = Deno.stderr,
    { quiet = false, columns = terminalColumns, now = () => performance.now() } = {},
  ) {
    this.#output = output;
    this.#enabled = !quiet && output.isTerminal();
    this.#columns = columns;
    this.#now = now;
  }

  /** Records that `done` of `total` bytes of `name` are there; redraws when due. */
  update(name: string, done: number, total: number): void {
    if (!this.#enabled || total < PROGRESS_MIN_BYTES) return;
    const now = this.#now();
    if (this.#current?.name !== name) {
      this.done();
      this.#current = { name, start: done, startedMs: now };
      this.#drawnMs = -Infinity;
    }
    if (now - this.#drawnMs < REDRAW_MS && done < total) return;
    this.#drawnMs = now;
    const { start, startedMs } = this.#current;
    const line = renderProgress(
      { name, done, total, start, elapsedMs: now - startedMs },
      this.#columns(),
    );
    this.#write(`\r${line}\x1b[K`);
    this.#visible = true;
    if (done >= total) this.done();
  }

  /** Ends the current file's bar and its line, so what follows starts on a fresh one. */
  done(): void {
    this.#current = undefined;
    if (!this.#visible) return;
    this.#write("\n");
    this.#visible = false;
  }

  #write(text: string): void {
    const bytes = new TextEncoder().encode(text);
    for (let at = 0; at < bytes.length;) at += this.#output.writeSync(bytes.subarray(at));
  }
}

/** The terminal's width; 80 when it reports none (a pseudo-terminal may say 0). */
function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80; // not a terminal after all: a sensible width
  }
}
