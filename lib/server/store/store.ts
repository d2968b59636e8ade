/**
 * The file store: turns a requested name into the bytes to send, from the cache when it holds a
 * fresh copy, otherwise from disk. A miss that fits is read from disk once, straight into a
 * reserved cache entry, and every request for that file (the one that caused the load and any
 * that arrive meanwhile) streams from the entry as it fills. Every such request holds the entry
 * until its answer is sent, so bytes that slow readers keep alive after an eviction still count
 * against the cache's cap. Files that cannot be cached stream from disk through a few shared big
 * buffers, or a small buffer of the stream's own until a big one is free, so memory stays bounded
 * under any load and no request waits on another.
 */

import { type DigestAlgorithm, SHA256 } from "../../shared/digest.ts";
import { WireError } from "../../shared/errors.ts";
import type { ListEntry } from "../../shared/protocol.ts";
import type { CacheView, PolicyName } from "../cache/cache.ts";
import { DataFolder, type FolderOptions, type Resolved } from "../folder.ts";
import {
  Batch,
  DEFAULT_MAX_LISTINGS,
  type FolderEntry,
  ListingTurns,
  readFolder,
  type SubFolder,
  TreeWalk,
} from "../listing.ts";
import type { CacheBackend, Found } from "./backend.ts";
import { type FileBody, LaterBody } from "./body.ts";
import { Digests } from "./digests.ts";
import { HashBuffers } from "./hashing.ts";
import { load, MemoryBody } from "./load.ts";
import { LocalCache } from "./local.ts";
import { BufferPool, StreamBody } from "./stream.ts";
import { type Coding, Variants } from "./variants.ts";
import { type Stamp, stampOf } from "./version.ts";

export type { FileBody } from "./body.ts";

/** The size of the pooled buffers that streams from disk read into. */
const STREAM_BUFFER_BYTES = 1024 * 1024;
/** The size of the buffers that files hashed from disk (not in the cache) are read through. */
const HASH_BUFFER_BYTES = 1024 * 1024;

/**
 * How many levels of sub-folders a list walks into by default: each level holds its folder open
 * (a descriptor and about 64 KiB of the runtime's) while the walk is inside it.
 */
export const DEFAULT_LIST_DEPTH = 32;

/** Settings of a {@link FileStore}. */
export type StoreOptions =
  & FolderOptions
  & {
    /** The data folder's real path (see openRoot in folder.ts). */
    root: string;
    /** Pooled buffers for streaming files that are not cached; each is STREAM_BUFFER_BYTES. */
    streamBuffers?: number;
    /**
     * Buffers for hashing files that are not cached (HASH_BUFFER_BYTES each), lent in turn: what
     * hashing may hold however many requests need a digest at once.
     */
    hashBuffers?: number;
    /** How many levels of sub-folders a list walks into (DEFAULT_LIST_DEPTH unless given). */
    listDepth?: number;
    /** How many lists and folder pages are read at once (DEFAULT_MAX_LISTINGS unless given). */
    maxListings?: number;
  }
  & (
    /** A cache of this thread's own, of `cacheBytes` bytes. */
    | { cacheBytes: number; policy?: PolicyName }
    /** A cache made elsewhere: one shared with other threads, say (shared.ts). */
    | { cache: CacheBackend }
  );

/** Reads files for the server, through the cache. */
export class FileStore {
  readonly #folder: DataFolder;
  readonly #cache: CacheBackend;
  readonly #digests: Digests;
  readonly #pool: BufferPool;
  readonly #listDepth: number;
  readonly #listings: ListingTurns;
  readonly #variants: Variants;
  #diskReads = 0;

  constructor(options: StoreOptions) {
    this.#folder = new DataFolder(options.root, options);
    this.#cache = "cache" in options
      ? options.cache
      : new LocalCache(options.cacheBytes, options.policy);
    this.#pool = new BufferPool(options.streamBuffers ?? 16, STREAM_BUFFER_BYTES);
    this.#digests = new Digests(4096, new HashBuffers(options.hashBuffers ?? 4, HASH_BUFFER_BYTES));
    this.#listDepth = options.listDepth ?? DEFAULT_LIST_DEPTH;
    this.#listings = new ListingTurns(options.maxListings ?? DEFAULT_MAX_LISTINGS);
    this.#variants = new Variants(this.#cache, this.#digests);
  }

  /** The cache's counters and keys, to read. */
  get cache(): CacheView<string> {
    return this.#cache.view;
  }

  /** How many times a file was read from disk (a shared load counts once). */
  get diskReads(): number {
    return this.#diskReads;
  }

  /**
   * Opens `name` for sending, its answer to end with its digest by `algorithm`. Throws
   * BadNameError or NotFoundError (with clear messages) when it cannot be served. Counts a cache
   * hit or miss.
   */
  open(name: string, algorithm: DigestAlgorithm): FileBody {
    let resolved;
    try {
      resolved = this.#folder.resolve(name, this.#holds);
    } catch (error) {
      // Gone from disk (or no longer servable): it must leave the cache too.
      if (error instanceof WireError) this.#cache.delete(name);
      throw error;
    }
    return this.#opened(name, resolved, algorithm);
  }

  /**
   * Opens `name` as {@link open} does, or undefined when there is no such file: for a file that
   * is looked for on every request and mostly absent (a compressed sibling), whose absence is then
   * trusted for `revalidateMs` (see DataFolder.resolveIfPresent).
   */
  openIfPresent(name: string, algorithm: DigestAlgorithm): FileBody | undefined {
    const resolved = this.#folder.resolveIfPresent(name, this.#holds);
    return resolved && this.#opened(name, resolved, algorithm);
  }

  /** The body of `name`, found on disk as `resolved`, from the cache or not. */
  #opened(name: string, resolved: Resolved, algorithm: DigestAlgorithm): FileBody {
    // Cached under its real name: a file reached through links is one file, cached once.
    const { path, realName: key, info } = resolved;
    const file = { name, path, stamp: stampOf(info), algorithm };
    const found = this.#cache.find(key, file.stamp);
    if (!(found instanceof Promise)) return this.#body(found, file);
    // Only a miss waits for the cache's answer (from another thread): its bytes come from disk,
    // unless that thread has just cached them.
    return new LaterBody(name, file.stamp, found.then((found) => this.#body(found, file)));
  }

  /**
   * Whether the cache holds the version of a file `resolved` describes, for the folder to answer
   * from its last check (see DataFolder.resolve): a version not cached is read from disk, which
   * must be checked first.
   */
  readonly #holds = ({ realName, info }: Resolved): boolean =>
    this.#cache.has(realName, stampOf(info));

  /**
   * `file` (opened here) compressed by `coding`, from the cache or made now and cached beside it;
   * undefined when that would not make it smaller. `file` stays open, for the caller to dispose of.
   */
  encoded(file: FileBody, coding: Coding): Promise<FileBody | undefined> {
    return this.#variants.open(file.name, file, coding);
  }

  /** The body for a file the cache answered `found` for. */
  #body(found: Found, file: FileToOpen): FileBody {
    const { name, path, stamp, algorithm } = file;
    if (found.kind === "stream" || found.kind === "load") this.#diskReads++;
    if (found.kind === "stream") {
      return new StreamBody(name, path, stamp, algorithm, this.#pool, this.#digests);
    }
    if (found.kind === "load") {
      // An unsettled version is served to the requests that share its load, but not cached.
      load(path, name, stamp, found.held, algorithm, this.#digests).then(
        (settled) => found.settle(settled),
        () => found.settle(false),
      );
    }
    const source = found.kind === "hit" ? "cache" : "disk";
    return new MemoryBody(source, name, stamp, found.held, algorithm, this.#digests);
  }

  /**
   * Every servable file with its size, time and whether it is cached, in batches as the folder is
   * walked (see {@link TreeWalk}); with `sha256`, each with its SHA-256 too (known, or read from
   * disk, through the cache's copy when it has one). A file that vanishes or changes while it is
   * hashed is left out, as a file gone before the walk reached it would be.
   */
  list(sha256 = false): Listing {
    return this.#listed(new TreeWalk(this.#folder.root, this.#listDepth, this.#listings), sha256);
  }

  /**
   * Every servable file in the folder `prefix` (a name ending in "/") and below, as {@link list}
   * gives them; undefined when it is no folder to show.
   */
  async tree(prefix: string): Promise<Listing | undefined> {
    // Checked as a page's folder is (its batches, never read, hold nothing open).
    if (await readFolder(this.#folder.root, prefix, this.#listings) === undefined) return undefined;
    const walk = new TreeWalk(this.#folder.root, this.#listDepth, this.#listings, prefix);
    return this.#listed(walk, false);
  }

  /** The files `walk` finds, as a listing (see {@link list}). */
  #listed(walk: TreeWalk, sha256: boolean): Listing {
    const entries = this.#entries<never>(walk);
    return Object.assign(sha256 ? this.#hashed(entries) : entries, {
      get deeper() {
        return walk.deeper;
      },
    });
  }

  /**
   * The sub-folders and files directly inside the folder `prefix` ("" for the root, else a name
   * ending in "/"), with whether each file is cached, in batches as the folder is read; undefined
   * when it is no folder to show.
   */
  async folder(prefix: string): Promise<AsyncGenerator<(ListEntry | SubFolder)[]> | undefined> {
    const items = await readFolder(this.#folder.root, prefix, this.#listings);
    return items && this.#entries(items);
  }

  /** Each batch of `batches` with whether each file in it is cached. */
  async *#entries<T>(
    batches: AsyncIterable<(FolderEntry | T)[]>,
  ): AsyncGenerator<(ListEntry | T)[]> {
    const cache = this.#cache.view;
    for await (const batch of batches) {
      yield batch.map((item) =>
        isFile(item)
          ? {
            name: item.name,
            size: item.size,
            mtimeMs: item.mtimeMs,
            cached: cache.has(item.realName),
          }
          : item
      );
    }
  }

  /**
   * The entries of `batches` with their SHA-256, in batches that leave as they are hashed (see
   * Batch): hashing a large file takes a while.
   */
  async *#hashed(batches: AsyncIterable<ListEntry[]>): AsyncGenerator<ListEntry[]> {
    const hashed = new Batch<ListEntry>();
    for await (const batch of batches) {
      for (const entry of batch) {
        const digest = await this.#sha256(entry.name);
        if (digest !== undefined && hashed.add({ ...entry, sha256: digest })) yield hashed.take();
      }
    }
    if (hashed.size > 0) yield hashed.take();
  }

  /**
   * The SHA-256 of `name`, without counting a lookup or loading the file into the cache; undefined
   * if it cannot be served (any more).
   */
  async #sha256(name: string): Promise<Uint8Array | undefined> {
    try {
      const { path, realName, info } = this.#folder.resolve(name, this.#holds);
      const stamp = stampOf(info);
      const held = this.#cache.peek(realName, stamp);
      if (held) {
        using body = new MemoryBody("cache", name, stamp, held, SHA256, this.#digests);
        return await body.digest();
      }
      return await this.#digests.of(path, stamp, name, SHA256);
    } catch (error) {
      if (error instanceof WireError) return undefined;
      throw error;
    }
  }
}

/** The batches of a list, and how many folders it found too deep to walk into (so far). */
export type Listing = AsyncIterable<ListEntry[]> & { readonly deeper: number };

/** True for a file of a folder's entries (not a sub-folder). */
function isFile<T>(item: FolderEntry | T): item is FolderEntry {
  return typeof item === "object" && item !== null && "realName" in item;
}

/** A file to open: the name asked for, where it is, its version, the digest its answer ends with. */
interface FileToOpen {
  name: string;
  path: string;
  stamp: Stamp;
  algorithm: DigestAlgorithm;
}
