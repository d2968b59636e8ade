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

/** The narrowest bar drawn: a narrower one says less than the percentage beside it. */
const MIN_BAR = 10;

/**
 * The bar's text for a state, fitted to `columns`. The name comes first: on a narrow terminal the
 * bar goes, then the rate, then the bytes, then the time left, before the name is cut (at its
 * start, as a path's end says most).
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { renderProgress } from "./progress.ts";
 * const state = { name: "a.bin", done: 512, total: 1024, elapsedMs: 1000 };
 * equal(
 *   renderProgress(state, 60),
 *   "a.bin [######     ]   50%  512 B / 1.0 KiB  512 B/s  1s left",
 * );
 * equal(renderProgress(state, 30), "a.bin   50%  1s left");
 * ```
 */
export function renderProgress(state: ProgressState, columns: number): string {
  const fraction = state.total > 0 ? Math.min(1, state.done / state.total) : 1;
  const received = state.done - (state.start ?? 0);
  const rate = state.elapsedMs > 0 ? received / (state.elapsedMs / 1000) : 0;
  const left = rate > 0 ? (state.total - state.done) / rate : Infinity;
  const percent = `${Math.floor(fraction * 100).toString().padStart(3)}%`;
  const bytes = `${formatBytes(state.done)} / ${formatBytes(state.total)}`;
  const speed = `${formatBytes(Math.round(rate))}/s`;
  const eta = `${formatDuration(left)} left`;
  const name = state.name;
  for (const facts of [[percent, bytes, speed, eta], [percent, bytes, eta], [percent, eta]]) {
    const text = facts.join("  ");
    if (name.length + 2 + text.length > columns) continue;
    const room = columns - name.length - text.length - 5; // " [", "]" and two spaces
    const width = facts.length === 4 && room >= MIN_BAR ? Math.min(30, room) : 0;
    const filled = Math.round(fraction * width);
    const bar = width > 0 ? ` [${"#".repeat(filled)}${" ".repeat(width - filled)}]` : "";
    return `${name}${bar}  ${text}`;
  }
  const room = columns - 2 - percent.length;
  const cut = name.length <= room ? name : `…${name.slice(name.length - room + 1)}`;
  return `${cut}  ${percent}`.slice(0, columns);
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

  /**
   * Erases the bar's line, for a line of text to take its place; the bar is drawn again, below
   * it, at the next update. So a line printed while a file comes leaves no stale bar above it.
   */
  clear(): void {
    this.#drawnMs = -Infinity;
    if (!this.#visible) return;
    this.#write("\r\x1b[K");
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
