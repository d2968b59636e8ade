/**
 * Several servers sharing one folder, as one: each name goes to the server rendezvous hashing
 * ranks first for it (rendezvous.ts), and a server that cannot be reached is left out, each of
 * its names going to the server ranked next for it. Lists are merged; the servers' counters are
 * summed, each by its kind, by sumStats (lib/shared/stats.ts).
 */

import type { ListEntry } from "../shared/protocol.ts";
import type { FileClient } from "./client.ts";
import { downloadFiles } from "./download.ts";
import { ConnectionError } from "./errors.ts";
import type { DownloadOptions, DownloadResult } from "./plan.ts";
import { rank } from "./rendezvous.ts";

/** Connects to one server ("host:port"). */
export type Connect = (server: string) => Promise<FileClient>;

/** The servers of a cluster, as the client reaches them. */
export class Cluster {
  readonly #servers: readonly string[];
  readonly #connect: Connect;
  readonly #onDown: (server: string, error: ConnectionError) => void;
  readonly #down = new Set<string>();
  /** Servers found down before any was reached: told only once some is (else the error says). */
  #untold: [string, ConnectionError][] = [];
  #reachedAny = false;
  readonly #clients = new Map<string, Promise<FileClient>>();

  /**
   * The servers `servers` (each "host:port"), reached with `connect`; `onDown` hears once of
   * each one that cannot be reached.
   */
  constructor(
    servers: readonly string[],
    connect: Connect,
    onDown: (server: string, error: ConnectionError) => void,
  ) {
    this.#servers = servers;
    this.#connect = connect;
    this.#onDown = onDown;
  }

  /**
   * `names` shared out to the servers they go to, with a connection to each server involved.
   * Throws the last ConnectionError when no server can be reached.
   */
  async assign(names: readonly string[]): Promise<Map<FileClient, string[]>> {
    const shares = new Map<FileClient, string[]>();
    for (const name of names) {
      const client = await this.#first(rank(name, this.#servers));
      const share = shares.get(client) ?? [];
      share.push(name);
      shares.set(client, share);
    }
    return shares;
  }

  /** A connection to every server that can be reached, by name; throws when there is none. */
  async reachable(): Promise<Map<string, FileClient>> {
    const reached = new Map<string, FileClient>();
    for (const server of this.#servers) {
      const client = await this.#reach(server);
      if (client) reached.set(server, client);
    }
    if (reached.size === 0) await this.#first(this.#servers); // throws with the reason
    return reached;
  }

  /** Closes every connection made. */
  async close(): Promise<void> {
    for (const client of this.#clients.values()) {
      await client.then((c) => c.close(), () => {}); // one that never opened has nothing to close
    }
  }

  /** The first of `servers` that can be reached, in that order. */
  async #first(servers: readonly string[]): Promise<FileClient> {
    let last: ConnectionError | undefined;
    for (const server of servers) {
      const client = await this.#reach(server, (error) => last = error);
      if (client) return client;
    }
    throw last ?? new ConnectionError("no server was given");
  }

  /** A connection to `server`, made once; undefined if it cannot be reached. */
  async #reach(
    server: string,
    failed?: (error: ConnectionError) => void,
  ): Promise<FileClient | undefined> {
    if (!this.#clients.has(server)) this.#clients.set(server, this.#connect(server));
    try {
      const client = await this.#clients.get(server)!;
      this.#reachedAny = true;
      this.#tell();
      return client;
    } catch (error) {
      if (!(error instanceof ConnectionError)) throw error;
      if (!this.#down.has(server)) {
        this.#down.add(server);
        this.#untold.push([server, error]);
        if (this.#reachedAny) this.#tell();
      }
      failed?.(error);
      return undefined;
    }
  }

  #tell(): void {
    for (const [server, error] of this.#untold) this.#onDown(server, error);
    this.#untold = [];
  }
}

/**
 * The lists of servers sharing one folder, as one list: an entry per name, cached when any
 * server holds it. One server's list is as it came.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { mergeLists } from "./cluster.ts";
 * const a = { name: "a.txt", size: 1, mtimeMs: 0, cached: false };
 * deepEqual(mergeLists([[a], [{ ...a, cached: true }]]), [{ ...a, cached: true }]);
 * ```
 */
export function mergeLists(lists: readonly ListEntry[][]): ListEntry[] {
  if (lists.length === 1) return lists[0];
  const merged = new Map<string, ListEntry>();
  for (const entry of lists.flat()) {
    const seen = merged.get(entry.name);
    merged.set(entry.name, seen ? { ...seen, cached: seen.cached || entry.cached } : entry);
  }
  return [...merged.values()];
}

/**
 * Downloads each server's share of the names over `connections` connections to it (the one the
 * share came with and more made with `connect`), every server at once, yielding what became of
 * each file as soon as it is done.
 */
export async function* downloadShares(
  shares: Map<FileClient, string[]>,
  connect: Connect,
  connections: number,
  options: DownloadOptions,
): AsyncGenerator<DownloadResult> {
  const opened: FileClient[] = [];
  try {
    const downloads = await Promise.all([...shares].map(async ([client, names]) => {
      const clients = [client];
      while (clients.length < connections) {
        const more = await connect(`${client.host}:${client.port}`);
        opened.push(more);
        clients.push(more);
      }
      return downloadFiles(clients, names, options);
    }));
    yield* merge(downloads);
  } finally {
    for (const client of opened) client.close();
  }
}

/** The items of `sources` as each comes, whichever source it comes from. */
async function* merge<T>(sources: AsyncGenerator<T>[]): AsyncGenerator<T> {
  const step = (i: number) => sources[i].next().then((result) => ({ i, result }));
  const pending = new Map(sources.map((_, i) => [i, step(i)]));
  while (pending.size > 0) {
    const { i, result } = await Promise.race(pending.values());
    if (result.done) pending.delete(i);
    else {
      pending.set(i, step(i));
      yield result.value;
    }
  }
}
