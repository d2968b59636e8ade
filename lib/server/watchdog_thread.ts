/**
 * The shutdown watchdog's own thread (a worker that lib/server/watchdog.ts starts). It hears
 * SIGINT and SIGTERM itself, on an event loop no request can crowd, and ends the process when the
 * server's graceful shutdown has not done so by its deadline, or at once on a second signal: so
 * a signal is honoured in time however busy the server's own thread is (a listing of a huge folder
 * for many clients at once has kept it from even hearing the signal for a minute).
 */

import { Logger } from "./log.ts";
import type { WatchdogSettings } from "./watchdog.ts";

/** How long the line saying what is cut may take to be written before the process is ended. */
const LINE_WAIT_MS = 500;

/** What the server's thread said of its shutdown: whether it began, and with how many connections. */
let begun: { connections: number } | undefined;
let settings: WatchdogSettings | undefined;
/** When the first signal came (performance.now()), if one has. */
let signalledAt: number | undefined;

globalThis.addEventListener("message", (event) => {
  const { data } = event as MessageEvent;
  if (settings === undefined) settings = data as WatchdogSettings;
  else begun = data as { connections: number };
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    if (settings === undefined) return; // not started yet: the server's thread handles it alone
    if (signalledAt !== undefined) return void cut(signal, "a second signal: stopping at once");
    signalledAt = performance.now();
    // Cut in time for the line that says so to be written by the deadline.
    const cutAt = settings.deadlineMs - LINE_WAIT_MS;
    setTimeout(() => cut(signal, "the shutdown did not end by its deadline"), cutAt);
  });
}

/**
 * Logs what is cut short, and why (with the time since the first signal), then ends the process
 * within {@link LINE_WAIT_MS}.
 */
async function cut(signal: string, why: string): Promise<void> {
  const logger = new Logger(settings!.format);
  logger.event("shutdown-cut", {
    signal,
    ms: Math.round(performance.now() - signalledAt!),
    openAtShutdown: begun?.connections,
    message: begun === undefined
      ? `${why}; the server was too busy to begin its shutdown: its connections, and log lines ` +
        "not yet written, are cut"
      : `${why}; connections still open, and log lines not yet written, are cut`,
  }, "error");
  // The line is given a moment to be written, no more: a log reader that has stalled (one more
  // thing that can hold a graceful shutdown up for good) must not hold this one.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const moment = new Promise((resolve) => timer = setTimeout(resolve, LINE_WAIT_MS));
  await Promise.race([logger.flush(), moment]);
  clearTimeout(timer);
  // No exit code can be given from here (Deno.exit ends only this worker); a signal nothing can
  // catch ends the process whatever its own thread is doing.
  Deno.kill(Deno.pid, "SIGKILL");
}
