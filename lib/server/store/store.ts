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
import { ByteCache, type CacheView, type PolicyName, type Reservation } from "../cache/cache.ts";
import { DataFolder } from "../folder.ts";
import { readFolder, walkFiles } from "../listing.ts";
import type { FileBody } from "./body.ts";
import { Digests } from "./digests.ts";
import { HashBuffers } from "./hashing.ts";
import { Load, MemoryBody } from "./load.ts";
import { Recycler } from "./recycle.ts";
import { BufferPool, StreamBody } from "./stream.ts";
import { sameStamp, type Stamp, stampOf } from "./version.ts";

export type { FileBody } from "./body.ts";

/** The size of the pooled buffers that streams from disk read into. */
const STREAM_BUFFER_BYTES = 1024 * 1024;
/** The size of the buffers that files hashed from disk (not in the cache) are read through. */
const HASH_BUFFER_BYTES = 1024 * 1024;

/** A whole file held in the cache. */
interface CachedFile {
  bytes: Uint8Array<ArrayBuffer>;
  stamp: Stamp;
}

/** List entries per batch of {@link FileStore.list}. */
const LIST_BATCH = 1000;

/** Settings of a {@link FileStore}. */
export interface StoreOptions {
  /** The data folder's real path (see openRoot in folder.ts). */
  root: string;
  /** Cache capacity in bytes. */
  cacheBytes: number;
  policy?: PolicyName;
  /** Pooled buffers for streaming files that are not cached; each is STREAM_BUFFER_BYTES. */
  streamBuffers?: number;
  /**
   * Buffers for hashing files that are not cached (HASH_BUFFER_BYTES each), lent in turn: what
   * hashing may hold however many requests need a digest at once.
   */
  hashBuffers?: number;
}

/** Reads files for the server, through the cache. */
export class FileStore {
  readonly #folder: DataFolder;
  readonly #cache: ByteCache<string, CachedFile>;
  /** Loads in progress, with the room they fill. */
  readonly #loads = new Map<string, { load: Load; room: Reservation<CachedFile> }>();
  readonly #digests: Digests;
  readonly #pool: BufferPool;
  readonly #recycler = new Recycler();
  #diskReads = 0;

  constructor(options: StoreOptions) {
    this.#folder = new DataFolder(options.root);
    this.#cache = new ByteCache({
      capacity: options.cacheBytes,
      policy: options.policy,
      // Reused by a load in the same turn, or detached, which frees the bytes now: left to the
      // garbage collector, files the cache let go of would stay in memory beside their
      // replacements, and the process would outgrow the cap.
      onDrop: (file) => this.#recycler.give(file.bytes.buffer),
    });
    this.#pool = new BufferPool(options.streamBuffers ?? 16, STREAM_BUFFER_BYTES);
    this.#digests = new Digests(4096, new HashBuffers(options.hashBuffers ?? 4, HASH_BUFFER_BYTES));
  }

  /** The cache's counters and keys, to read. */
  get cache(): CacheView<string> {
    return this.#cache;
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
      resolved = this.#folder.resolve(name);
    } catch (error) {
      // Gone from disk (or no longer servable): it must leave the cache too.
      if (error instanceof WireError) this.#cache.delete(name);
      throw error;
    }
    // Cached under its real name: a file reached through links is one file, cached once.
    const { path, realName: key, info } = resolved;
    const stamp = stampOf(info);
    const held = this.#cache.peek(key);
    if (held && !sameStamp(held.stamp, stamp)) this.#cache.delete(key);
    const hit = this.#cache.get(key);
    if (hit) {
      const load = Load.complete(name, stamp, this.#digests, hit.bytes);
      return new MemoryBody("cache", load, algorithm, this.#cache.hold(key)!);
    }
    const running = this.#loads.get(key);
    if (running && sameStamp(running.load.stamp, stamp)) {
      return new MemoryBody("disk", running.load, algorithm, running.room.hold());
    }
    const room = this.#cache.reserve(key, stamp.size);
    this.#diskReads++;
    if (!room) return new StreamBody(name, path, stamp, algorithm, this.#pool, this.#digests);
    const load = new Load(name, stamp, this.#digests, this.#recycler.take(stamp.size));
    this.#loads.set(key, { load, room });
    // Settled in the same turn as it leaves #loads, so no request joins a load whose room is gone.
    const settled = () => {
      if (this.#loads.get(key)?.load === load) this.#loads.delete(key);
    };
    load.run(path, algorithm).then(() => {
      settled();
      room.commit({ bytes: load.bytes, stamp });
    }, () => {
      settled();
      room.release();
    });
    return new MemoryBody("disk", load, algorithm, room.hold());
  }

  /**
   * Every servable file with its size, time and whether it is cached, in batches; with `sha256`,
   * each with its SHA-256 too (known, or read from disk, through the cache's copy when it has one).
   * A file that vanishes or changes while it is hashed is left out, as a file gone before the walk
   * reached it would be.
   */
  async *list(sha256 = false): AsyncGenerator<ListEntry[]> {
    let batch: ListEntry[] = [];
    for await (const entry of walkFiles(this.#folder.root)) {
      const { realName, ...listed } = entry;
      const item: ListEntry = { ...listed, cached: this.#cache.has(realName) };
      if (sha256) {
        const digest = await this.#sha256(entry.name);
        if (digest === undefined) continue;
        item.sha256 = digest;
      }
      batch.push(item);
      if (batch.length === LIST_BATCH) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }

  /**
   * The sub-folders and files directly inside the folder `prefix` ("" for the root, else a name
   * ending in "/"), with whether each file is cached; undefined when it is no folder to show.
   */
  async folder(prefix: string): Promise<{ folders: string[]; files: ListEntry[] } | undefined> {
    const contents = await readFolder(this.#folder.root, prefix);
    if (contents === undefined) return undefined;
    const files = contents.files.map(({ realName, ...file }) => ({
      ...file,
      cached: this.#cache.has(realName),
    }));
    return { folders: contents.folders, files };
  }

  /**
   * The SHA-256 of `name`, without counting a lookup or loading the file into the cache; undefined
   * if it cannot be served (any more).
   */
  async #sha256(name: string): Promise<Uint8Array | undefined> {
    try {
      const { path, realName, info } = this.#folder.resolve(name);
      const stamp = stampOf(info);
      const cached = this.#cache.peek(realName);
      if (cached && sameStamp(cached.stamp, stamp)) {
        using body = new MemoryBody(
          "cache",
          Load.complete(name, stamp, this.#digests, cached.bytes),
          SHA256,
          this.#cache.hold(realName)!,
        );
        return await body.digest();
      }
      return await this.#digests.of(path, stamp, name, SHA256);
    } catch (error) {
      if (error instanceof WireError) return undefined;
      throw error;
    }
  }
}
