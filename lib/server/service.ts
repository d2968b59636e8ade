/**
 * What the server gives every dialect (framed.ts, original.ts, http/serve.ts), and nothing more:
 * the store, whether it is shutting down, its counters, its access rules, and where a peer's
 * protocol violations are counted. A request's own counting and logging is its exchange's
 * (exchange.ts), begun on its connection.
 */

import { ErrorCode, WireError } from "../shared/errors.ts";
import type { ServerStats } from "../shared/stats.ts";
import type { Access } from "./access.ts";
import type { Connection } from "./connection.ts";
import type { FileStore } from "./store/store.ts";

/** The shared folder's files as the dialects use them: opened, listed, shown by folder. */
export type Store = Pick<
  FileStore,
  "open" | "openIfPresent" | "encoded" | "list" | "tree" | "folder" | "cache"
>;

/** The server as a dialect sees it. */
export interface Service {
  /** The shared folder's files, through the cache. */
  readonly store: Store;
  /** True once shutdown has begun: a dialect takes no new request. */
  closing(): boolean;
  /** The server's counters now (with worker threads, every worker's: asked of the main thread). */
  stats(): Promise<ServerStats>;
  /** The server's numbers as a Prometheus metrics page. */
  metrics(): Promise<string>;
  /**
   * Counts (as the peer's fault, not the server's) and logs bytes from the peer that broke the
   * protocol; the connection ends after.
   */
  violation(connection: Connection, error: WireError): void;
  /** Who may make requests (access tokens), and the count of those turned away. */
  readonly access: Access;
}

/** What a request the server will not answer because it is shutting down is told. */
export const SHUTTING_DOWN = new WireError(ErrorCode.ShuttingDown, "the server is shutting down");

/**
 * The batches of a list while `service` serves: once its shutdown has begun, asking for the next
 * throws SHUTTING_DOWN instead, so that a list however long ends at once rather than hold up the
 * shutdown (a file's answer, whose end is known, is let finish).
 */
export async function* untilShutdown<T>(
  batches: AsyncIterable<T>,
  service: Service,
): AsyncGenerator<T> {
  for await (const batch of batches) {
    if (service.closing()) throw SHUTTING_DOWN;
    yield batch;
  }
}
