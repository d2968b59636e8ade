/**
 * A watchdog that keeps a shutdown to its deadline under any load. The graceful shutdown runs on
 * the server's own thread, which requests can keep so busy that it hears a signal late, or not
 * at all; the watchdog runs in a thread of its own (watchdog_thread.ts), hears the signal too,
 * and ends the process if it is still running past the deadline, saying what was cut.
 */

import type { LogFormat, Logger } from "./log.ts";
import { reasonOf } from "../shared/errors.ts";

/**
 * What a shutdown may take beyond its timeout before the process is ended: the second in which
 * sessions end once their sockets are closed (server.ts), and one more for the summary and the log.
 */
const WATCHDOG_GRACE_MS = 2000;

/** What the watchdog's thread is told at start. */
export interface WatchdogSettings {
  /** How long after the first SIGINT or SIGTERM the process is ended, if it has not ended. */
  deadlineMs: number;
  /** The log's format, for the line that says what was cut. */
  format: LogFormat;
}

/** The running watchdog, as the server's thread sees it. */
export interface Watchdog {
  /** Tells the watchdog that the graceful shutdown began, with `connections` open. */
  began(connections: number): void;
}

/**
 * Starts the watchdog for a server whose shutdown waits up to `shutdownTimeoutMs` for answers in
 * flight: a signal ends the process within that and {@link WATCHDOG_GRACE_MS}, and a second
 * signal ends it at once. If its thread cannot start, `logger` says so, and the server runs on
 * without it.
 */
export function watchShutdown(shutdownTimeoutMs: number, logger: Logger): Watchdog {
  const url = new URL("./watchdog_thread.ts", import.meta.url);
  const worker = new Worker(url, { type: "module" });
  worker.addEventListener("error", (event) => {
    event.preventDefault();
    logger.event("warning", {
      message:
        `the shutdown watchdog could not start (${reasonOf(event.error ?? event.message)}); ` +
        "a shutdown under heavy load may take longer than --shutdown-timeout",
    }, "warning");
  });
  const settings: WatchdogSettings = {
    deadlineMs: shutdownTimeoutMs + WATCHDOG_GRACE_MS,
    format: logger.format,
  };
  worker.postMessage(settings);
  return { began: (connections) => worker.postMessage({ connections }) };
}
