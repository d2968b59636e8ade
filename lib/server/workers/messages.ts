/**
 * What the main thread and a server's worker threads say to each other (pool.ts, thread.ts):
 * a worker's start, the asks either side answers (a place at the gate, a wrong token's delay, the
 * numbers), the log lines a worker makes, and the signals it is passed on.
 */

import type { ServerStats } from "../../shared/stats.ts";
import type { LogFormat, LogLevel } from "../log.ts";
import { Histogram, type HistogramData, type Measures } from "../metrics.ts";
import type { ServerOptions } from "../server.ts";
import type { Port } from "../store/threads/messages.ts";

/** A server's options as a worker is sent them: the logger and tokens are its own to make. */
export type ThreadOptions = Omit<ServerOptions, "logger" | "tokens" | "part">;

/** The main thread's first message to a worker. */
export interface ThreadStart {
  kind: "start";
  /** The ports are the ones the first worker had (so a 0 is asked for only once). */
  options: ThreadOptions;
  /** The token file, read by the worker itself, and again on "reload". */
  tokenFile?: string;
  log: { format: LogFormat; level: LogLevel };
  /** The whole server's connection limits, fitted at start to the open-file limit. */
  limits: { max: number; perHost: number };
  /** The port to the cache's coordinator. */
  cache: MessagePort;
  /** The last connection number handed out (an Int32Array of one), shared by every worker. */
  ids: SharedArrayBuffer;
}

/** What a worker says once it serves: its ports, and what the listening line tells. */
export interface ThreadStarted {
  kind: "started";
  startup: Record<string, string | number | boolean | undefined>;
  hostname: string;
  port: number;
  httpPort?: number;
}

/** The numbers of {@link Measures}, as they cross between threads. */
export interface MeasuresData {
  stats: ServerStats;
  requests: Measures["requests"];
  statusClasses: Measures["statusClasses"];
  durations: HistogramData;
  peerErrors: number;
  workers?: Measures["workers"];
}

/** `measures` as it crosses between threads. */
export function measuresData(measures: Measures): MeasuresData {
  return { ...measures, durations: measures.durations.data() };
}

/** The measures `data` crossed as. */
export function measuresOf(data: MeasuresData): Measures {
  const durations = new Histogram();
  durations.add(data.durations);
  return { ...data, durations };
}

/** What a worker asks the main thread, and is answered. */
export type ThreadAsk =
  | { kind: "enter"; host: string; perHost?: number }
  | { kind: "fail"; host: string }
  | { kind: "measures" };

/** What a worker says to the main thread. */
export type FromThread =
  | ThreadStarted
  | { kind: "failed"; error: string }
  | { kind: "log"; lines: string; events: boolean }
  | { kind: "leave"; host: string }
  | { kind: "answer"; ask: number; value: unknown }
  | ThreadAsk & { ask: number };

/** What the main thread tells a worker, beside its start and the answers to its asks. */
export type ToThread =
  | ThreadStart
  | { kind: "answer"; ask: number; value: unknown }
  /** Asks for the worker's own numbers (MeasuresData). */
  | { kind: "measures"; ask: number }
  /** Read the token file again (SIGHUP); answered once it is read. */
  | { kind: "reload"; ask: number }
  /** Shut down gracefully; answered with the worker's last numbers once it has. */
  | { kind: "close"; ask: number };

/**
 * Questions sent over a port and their answers, matched by number. Those still open when the
 * other side is gone are answered `undefined` (see abandon).
 */
export class Asks {
  #next = 0;
  readonly #waiting = new Map<number, (value: unknown) => void>();

  /** Sends `message` with a number of its own; resolves with the answer sent back under it. */
  ask<T>(port: Pick<Port, "postMessage">, message: object): Promise<T> {
    const ask = this.#next++;
    port.postMessage({ ...message, ask });
    return new Promise((resolve) => this.#waiting.set(ask, resolve as (value: unknown) => void));
  }

  /** Settles the question numbered `ask` with `value`. */
  answered(ask: number, value: unknown): void {
    this.#waiting.get(ask)?.(value);
    this.#waiting.delete(ask);
  }

  /** Settles every open question with undefined: the other side has stopped. */
  abandon(): void {
    for (const resolve of this.#waiting.values()) resolve(undefined);
    this.#waiting.clear();
  }
}
