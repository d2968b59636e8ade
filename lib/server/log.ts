/**
 * The server's log: one line per event, readable text by default, JSON lines for machines, or
 * the access log format web servers write. Lines are gathered and written in one go, per turn of
 * the event loop or per few milliseconds, so logging every request costs one write per burst or
 * per few milliseconds, not one per line.
 * Lines are gathered and written in one go per turn of the event loop, so logging every request
 * costs one write per burst, not one per line.
 */

import { reasonOf } from "../shared/errors.ts";
import { writeAll, type Writer } from "../shared/io.ts";
import { printable } from "../shared/printable.ts";

/**
 * How log lines look: `text` for people, `json` for machines, `combined` for the tools that read
 * web servers' access logs (nginx's and Apache's format for requests; every other event goes, as
 * text, to a second sink: standard error, as a web server's error log).
 */
export type LogFormat = "text" | "json" | "combined";

/** The log formats, for help texts and validation. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json", "combined"];

/**
 * How much the log says, least to most important: `debug` lines (connections opened and closed
 * as usual, a trusted proxy's own requests such as its health checks) are left out unless asked
 * for; `info` is a line per request and what else happens as usual; `warning` what an operator
 * should look at (a limit reached, a token file kept, a wrong token); `error` the server's own
 * failures.
 */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** The log levels, least important first, for help texts and validation. */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warning", "error"];

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
  readonly #lines: Lines;
  /** Where events other than requests go: the same lines but in the combined format. */
  readonly #events: Lines;

  /**
   * A log of `format` lines to `sink`, leaving out lines below `level`; in the combined format,
   * events other than requests go to `eventSink`, as text. With `gatherMs`, a line waits up to
   * that long for the lines after it, to be written with them; else the lines of each turn of the
   * event loop are written at its end. A server asked one thing at a time has a turn per request,
   * and a write of the log hands its bytes to another thread, which cost it as much as the rest of
   * a small answer (docs/PERFORMANCE.md).
   */
  constructor(
    format: LogFormat = "text",
    sink: LogSink = Deno.stdout,
    level: LogLevel = "info",
    { gatherMs = 0, eventSink = Deno.stderr }: { gatherMs?: number; eventSink?: LogSink } = {},
  ) {
    this.format = format;
    this.level = level;
    const lineOf = format === "json" ? jsonLine : textLine;
    this.#lines = new Lines(sink, lineOf, gatherMs);
    this.#events = format === "combined" ? new Lines(eventSink, textLine, gatherMs) : this.#lines;
  }

  /** Logs one event with its fields, unless `level` is below the logger's. */
  event(event: string, fields: Record<string, LogValue> = {}, level: LogLevel = "info"): void {
    if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(this.level)) return;
    if (this.format !== "combined") this.#lines.add(event, fields, level);
    else if (event === "request") this.#lines.push(combinedLine(fields));
    else this.#events.add(event, fields, level);
  }

  /**
   * Logs `lines`, already made by a worker thread's logger (one of the same format and level),
   * in this one's turn: so the whole server has one log, written by one thread. `events` are the
   * lines a combined log writes apart from the requests'.
   */
  relay(lines: string, events = false): void {
    (events ? this.#events : this.#lines).push(lines);
  }

  /** Resolves once every line logged so far is written. */
  async flush(): Promise<void> {
    await this.#lines.flush();
    await this.#events.flush();
  }
}

/** How an event becomes a line. */
type LineOf = (event: string, fields: Record<string, LogValue>, level: LogLevel) => string;

/**
 * Lines on their way to one sink, written in one go per turn of the event loop (or per `gatherMs`),
 * and bounded.
 */
class Lines {
  readonly #sink: LogSink;
  readonly #lineOf: LineOf;
  readonly #gatherMs: number;
  #pending: string[] = [];
  #dropped = 0;
  #flushing: Promise<void> | undefined;
  #gathering: ReturnType<typeof setTimeout> | undefined;
  readonly #encoder = new TextEncoder();

  constructor(sink: LogSink, lineOf: LineOf, gatherMs: number) {
    this.#sink = sink;
    this.#lineOf = lineOf;
    this.#gatherMs = gatherMs;
  }

  /** Adds the line of an event. */
  add(event: string, fields: Record<string, LogValue>, level: LogLevel): void {
    this.push(this.#lineOf(event, fields, level));
  }

  /** Adds a line made already. */
  push(line: string): void {
    if (this.#pending.length < MAX_PENDING_LINES) this.#pending.push(line);
    else this.#dropped++;
    if (this.#flushing !== undefined || this.#gathering !== undefined) return;
    if (this.#gatherMs > 0) this.#gathering = setTimeout(() => this.#write(), this.#gatherMs);
    else this.#flushing = Promise.resolve().then(() => this.#flush());
  }

  /** Writes every line added so far, now; resolves once they are written. */
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

  async #flush(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        if (this.#dropped > 0) {
          this.#pending.push(this.#lineOf("log-dropped", { lines: this.#dropped }, "warning"));
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

/** A line of text: the time, the event and its fields as `key=value`. */
function textLine(event: string, fields: Record<string, LogValue>): string {
  let line = `${isoNow()} ${event}`;
  for (const key in fields) {
    const value = fields[key];
    // A number's text is always plain; for...in makes no array of pairs, as entries() does.
    if (value !== undefined) {
      line += ` ${key}=${typeof value === "number" ? value : fieldValue(String(value))}`;
    }
  }
  return line + "\n";
}

/** A JSON line: the time, the level, the event and its fields. */
function jsonLine(event: string, fields: Record<string, LogValue>, level: LogLevel): string {
  return printable(JSON.stringify({ time: isoNow(), level, event, ...fields })) + "\n";
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

const MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(" ");

/**
 * A request in nginx's and Apache's `combined` format, which log analysers read:
 * `PEER - - [08/Dec/2026:01:18:32 +0000] "GET /a.txt HTTP/1.1" 200 6 "REFERER" "AGENT"`. A request
 * of the native port or the original dialect reads `"OP /NAME"` (`"get /a.txt"`,
 * `"original-get /a.txt"`), its status what HTTP would have answered. Quoted values escape `"`, `\` and anything printable() escapes, as nginx
 * does, so no client can forge a line.
 */
function combinedLine(fields: Record<string, LogValue>): string {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  const time = `${pad(now.getUTCDate())}/${MONTHS[now.getUTCMonth()]}/${now.getUTCFullYear()}:` +
    `${pad(now.getUTCHours())}:${pad(now.getUTCMinutes())}:${pad(now.getUTCSeconds())} +0000`;
  const host = String(fields.peer ?? "-").replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  const request = fields.method === undefined
    ? `${fields.op} /${fields.name ?? ""}`
    : `${fields.method} ${fields.target} ${fields.version}`;
  const status = fields.status ?? statusOf(fields.error);
  return `${host} - - [${time}] "${quote(request)}" ${status} ${fields.bytes ?? 0} ` +
    `"${quote(fields.referer ?? "-")}" "${quote(fields.agent ?? "-")}"\n`;
}

/** The HTTP status a request of another protocol would have had, by its error. */
function statusOf(error: LogValue): number {
  if (error === undefined) return 200;
  return error === "not-found" ? 404 : error === "bad-request" ? 400 : 500;
}

/** `value` for the inside of a quoted field: `"` and `\` as nginx writes them, and no control. */
function quote(value: LogValue): string {
  const escaped = String(value).replace(
    /["\\]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return printable(escaped);
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
