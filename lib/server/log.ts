/**
 * The server's log: one line per event, readable text by default or JSON lines for machines.
 * Lines are gathered and written in one go, per turn of the event loop or per few milliseconds,
 * so logging every request costs one write per burst or per few milliseconds, not one per line.
 */

import { reasonOf } from "../shared/errors.ts";
import { writeAll, type Writer } from "../shared/io.ts";
import { printable } from "../shared/printable.ts";

/** How log lines look: `text` for people, `json` for machines. */
export type LogFormat = "text" | "json";

/** The log formats, for help texts and validation. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/**
 * How much the log says, least to most important: `debug` lines (a trusted proxy's own
 * connections: its health checks) are left out unless asked for; `info` is every other line.
 */
export type LogLevel = "debug" | "info";

/** The log levels, least important first, for help texts and validation. */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info"];

/** A field's value in a log line. */
export type LogValue = string | number | boolean | undefined;

/** Where log lines go; a test can pass its own sink. */
export type LogSink = Writer;

/**
 * Lines held while the sink is slow to take them. Past this, lines are dropped and counted (and
 * the count logged once the sink catches up), so a stalled log reader cannot make the server hold
 * unbounded memory.
 */
export const MAX_PENDING_LINES = 10_000;

/** Writes events as log lines. */
export class Logger {
  readonly format: LogFormat;
  /** The least important lines written; less important ones are left out. */
  readonly level: LogLevel;
  readonly #sink: LogSink;
  #pending: string[] = [];
  #dropped = 0;
  #flushing: Promise<void> | undefined;
  #gathering: ReturnType<typeof setTimeout> | undefined;
  readonly #encoder = new TextEncoder();

  readonly #gatherMs: number;

  /**
   * A log of `format` lines at `level` and above, written to `sink`. With `gatherMs`, a line waits
   * up to that long for the lines after it, to be written with them; else the lines of each turn
   * of the event loop are written at its end. A server asked one thing at a time has a turn per
   * request, and a write of the log hands its bytes to another thread, which cost it as much as
   * the rest of a small answer (docs/PERFORMANCE.md).
   */
  constructor(
    format: LogFormat = "text",
    sink: LogSink = Deno.stdout,
    level: LogLevel = "info",
    gatherMs = 0,
  ) {
    this.format = format;
    this.#sink = sink;
    this.level = level;
    this.#gatherMs = gatherMs;
  }

  /** Logs one event with its fields, unless `level` is below the logger's. */
  event(event: string, fields: Record<string, LogValue> = {}, level: LogLevel = "info"): void {
    if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(this.level)) return;
    if (this.#pending.length < MAX_PENDING_LINES) this.#pending.push(this.#line(event, fields));
    else this.#dropped++;
    if (this.#flushing !== undefined || this.#gathering !== undefined) return;
    if (this.#gatherMs > 0) this.#gathering = setTimeout(() => this.#write(), this.#gatherMs);
    else this.#flushing = Promise.resolve().then(() => this.#flush());
  }

  /** Writes every line logged so far, now; resolves once they are written. */
  async flush(): Promise<void> {
    if (this.#pending.length > 0) this.#write();
    while (this.#flushing) await this.#flushing;
  }

  /** Starts writing what is pending, unless a write is under way (it writes what follows too). */
  #write(): void {
    clearTimeout(this.#gathering);
    this.#gathering = undefined;
    if (this.#flushing === undefined && this.#pending.length > 0) this.#flushing = this.#flush();
  }

  #line(event: string, fields: Record<string, LogValue>): string {
    const time = isoNow();
    if (this.format === "json") return printable(JSON.stringify({ time, event, ...fields })) + "\n";
    let line = `${time} ${event}`;
    for (const key in fields) {
      const value = fields[key];
      // A number's text is always plain; for...in makes no array of pairs, as entries() does.
      if (value !== undefined) {
        line += ` ${key}=${typeof value === "number" ? value : fieldValue(String(value))}`;
      }
    }
    return line + "\n";
  }

  async #flush(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        if (this.#dropped > 0) {
          this.#pending.push(this.#line("log-dropped", { lines: this.#dropped }));
          this.#dropped = 0;
        }
        const bytes = this.#encoder.encode(this.#pending.join(""));
        this.#pending = [];
        await writeAll(this.#sink, bytes);
      }
    } catch (error) {
      console.error(`cannot write the log: ${reasonOf(error)}`);
    } finally {
      this.#flushing = undefined;
    }
  }
}

/** The millisecond the time was last written for, and how it was written then. */
let lastTime = { ms: NaN, iso: "" };

/**
 * The time now as the log writes it (ISO 8601), made once a millisecond: a busy server logs tens
 * of lines in one, and formatting a date costs about as much as the rest of the line.
 */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastTime.ms) lastTime = { ms, iso: new Date(ms).toISOString() };
  return lastTime.iso;
}

/** Printable ASCII but the space, `"`, `=` and `\`: what a value may hold and stay plain. */
const PLAIN = /^[!#-<>-[\]-~]+$/;

/**
 * A value as a text line shows it: as it is when plain, else quoted and escaped (when it is empty,
 * or has a space, "=", a quote, a backslash or any character printable() escapes). So a name a
 * client sent can neither break a line, send escape sequences to a terminal, pass for another
 * field, nor read as something else. Most values (numbers, words, ASCII names) are plain ASCII,
 * told by one test; the rest are quoted and escaped to see whether they change.
 */
function fieldValue(text: string): string {
  if (PLAIN.test(text)) return text;
  const quoted = printable(JSON.stringify(text));
  const plain = text !== "" && !/[ =]/.test(text) && quoted.slice(1, -1) === text;
  return plain ? text : quoted;
}
