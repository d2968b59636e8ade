/**
 * A worker thread of a server started with `--workers N` (pool.ts starts it): a FileServer of its
 * own on the same ports as the others (SO_REUSEPORT), on the cache the main thread coordinates,
 * with its connection limits, wrong-token delays and numbers asked of the main thread, and its log
 * lines written there.
 */

import { reasonOf } from "../../shared/errors.ts";
import { Logger } from "../log.ts";
import { FileServer, type Part } from "../server.ts";
import { SharedCache } from "../store/threads/shared.ts";
import { Tokens } from "../tokens.ts";
import {
  Asks,
  type FromThread,
  type MeasuresData,
  measuresData,
  measuresOf,
  type ThreadAsk,
  type ThreadStart,
  type ToThread,
} from "./messages.ts";

/** This thread as its parent sees it. */
const parent = globalThis as unknown as {
  postMessage(message: FromThread): void;
  onmessage: ((event: MessageEvent<ToThread>) => void) | null;
};
const asks = new Asks();
/** The longest a log line waits here before it is sent to the main thread, and the most bytes. */
const RELAY_MS = 20;
const RELAY_BYTES = 64 * 1024;
let server: FileServer | undefined;
let cache: SharedCache | undefined;
let tokens: Tokens | undefined;
let logger: Logger | undefined;

/**
 * Log lines made here, gathered and sent to the main thread (which writes them) at most every
 * RELAY_MS, or once RELAY_BYTES wait: one message a turn, at one request a turn, cost the main
 * thread a wake-up for each request. `events`: the lines a combined log writes apart.
 */
function relayTo(events: boolean) {
  const relay = {
    waiting: [] as Uint8Array[],
    bytes: 0,
    timer: undefined as ReturnType<typeof setTimeout> | undefined,
    write(bytes: Uint8Array): Promise<number> {
      relay.waiting.push(bytes);
      relay.bytes += bytes.length;
      if (relay.bytes >= RELAY_BYTES) relay.send();
      else relay.timer ??= setTimeout(relay.send, RELAY_MS);
      return Promise.resolve(bytes.length);
    },
    /** Sends what waits now. */
    send(): void {
      clearTimeout(relay.timer);
      relay.timer = undefined;
      if (relay.waiting.length === 0) return;
      const decoder = new TextDecoder();
      const lines = relay.waiting.map((bytes) => decoder.decode(bytes)).join("");
      relay.waiting = [];
      relay.bytes = 0;
      parent.postMessage({ kind: "log", lines, events });
    },
  };
  return relay;
}

/** The relays of the log's lines, and of the events a combined log writes apart. */
const relays = { lines: relayTo(false), events: relayTo(true) };

/** Asks the main thread `question`. */
function ask<T>(question: ThreadAsk): Promise<T> {
  return asks.ask<T>(parent as { postMessage(message: unknown): void }, question);
}

/** Starts serving as `start` says; tells the main thread it serves, or why it cannot. */
async function start(start: ThreadStart): Promise<void> {
  const { options, log, limits } = start;
  logger = new Logger(log.format, relays.lines, log.level, { eventSink: relays.events });
  try {
    cache = await SharedCache.connect(start.cache);
    tokens = start.tokenFile === undefined ? undefined : await Tokens.load(start.tokenFile);
    const ids = new Int32Array(start.ids);
    const part: Part = {
      cache,
      gate: {
        ...limits,
        enter: (host, perHost) => ask({ kind: "enter", host, perHost }),
        leave: (host) => parent.postMessage({ kind: "leave", host }),
      },
      failures: (host) => ask({ kind: "fail", host }),
      nextId: () => Atomics.add(ids, 0, 1) + 1,
      measures: async () => measuresOf(await ask<MeasuresData>({ kind: "measures" })),
    };
    server = await FileServer.start({ ...options, tokens, logger, part });
    const { addr, httpAddr } = server;
    const hostname = addr.hostname;
    parent.postMessage({
      kind: "started",
      startup: server.startup,
      hostname,
      port: addr.port,
      httpPort: httpAddr?.port,
    });
  } catch (error) {
    parent.postMessage({ kind: "failed", error: reasonOf(error) });
  }
}

/** Shuts the server down; its last numbers once it has, and once the cache has its releases. */
async function close(): Promise<MeasuresData | undefined> {
  if (server === undefined) return undefined;
  await server.close();
  await cache?.flush();
  await logger?.flush();
  relays.lines.send();
  relays.events.send();
  return measuresData(server.measures());
}

/**
 * Reads the token file and the TLS certificate again; a file that cannot be used leaves what was
 * in use, and the log says why.
 */
async function reload(): Promise<void> {
  try {
    await tokens?.reload();
  } catch (error) {
    logger?.event("tokens-kept", { tokens: tokens?.count, error: reasonOf(error) }, "warning");
  }
  await server?.reloadCertificate();
}

parent.onmessage = async ({ data }) => {
  switch (data.kind) {
    case "start":
      return await start(data);
    case "answer":
      return asks.answered(data.ask, data.value);
    case "measures": {
      const value = server && measuresData(server.measures());
      return parent.postMessage({ kind: "answer", ask: data.ask, value });
    }
    case "reload":
      await reload();
      return parent.postMessage({ kind: "answer", ask: data.ask, value: undefined });
    case "close":
      return parent.postMessage({ kind: "answer", ask: data.ask, value: await close() });
  }
};
