/**
 * What the server gives every dialect (framed.ts, original.ts, http/serve.ts), and nothing more:
 * the store, whether it is shutting down, its counters, its access rules, and where a peer's
 * protocol violations are counted. A request's own counting and logging is its exchange's
 * (exchange.ts), begun on its connection.
 */

import type { WireError } from "../shared/errors.ts";
import type { ServerStats } from "../shared/stats.ts";
import type { Access } from "./access.ts";
import type { Connection } from "./connection.ts";
import type { FileStore } from "./store/store.ts";

/** The shared folder's files as the dialects use them: opened, listed, shown by folder. */
export type Store = Pick<FileStore, "open" | "encoded" | "list" | "folder" | "cache">;

/** The server as a dialect sees it. */
export interface Service {
  /** The shared folder's files, through the cache. */
  readonly store: Store;
  /** True once shutdown has begun: a dialect takes no new request. */
  closing(): boolean;
  /** The server's counters now. */
  stats(): ServerStats;
  /** The server's numbers as a Prometheus metrics page. */
  metrics(): string;
  /**
   * Counts (as the peer's fault, not the server's) and logs bytes from the peer that broke the
   * protocol; the connection ends after.
   */
  violation(connection: Connection, error: WireError): void;
  /** Who may make requests (access tokens), and the count of those turned away. */
  readonly access: Access;
}
