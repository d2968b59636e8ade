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

import { createHash } from "node:crypto";
import { WireError } from "../shared/errors.ts";
import { quote } from "../shared/names.ts";
import type { ListEntry, Source } from "../shared/protocol.ts";
import {
  ByteCache,
  type CacheView,
  type PolicyName,
  type Release,
  type Reservation,
} from "./cache/cache.ts";
import { Front } from "./cache/front.ts";
import { asWireError } from "./errors.ts";
import { DataFolder } from "./folder.ts";
import { walkFiles } from "./listing.ts";
import { changed, sameStamp, type Stamp, stampOf, VersionFile } from "./version.ts";

/** Bytes read from disk per step, and the size of the pooled buffers. */
const CHUNK_BYTES = 1024 * 1024;
/** The buffer a stream from disk keeps for when every pooled one is lent. */
const SMALL_CHUNK_BYTES = 16 * 1024;
/** Small buffers kept for reuse once their streams end. */
const MAX_SPARE_SMALL = 256;

/** A whole file held in the cache. */
interface CachedFile {
  bytes: Uint8Array<ArrayBuffer>;
  digest: Uint8Array;
  stamp: Stamp;
}

/**
 * A file ready to send: its metadata, its bytes in order, then its digest. Dispose of it once the
 * answer is sent or abandoned, so the cache stops counting the bytes it keeps alive.
 */
export interface FileBody extends Disposable {
  readonly name: string;
  readonly stamp: Stamp;
  /** "cache" when the bytes were already in memory, "disk" when this request read from disk. */
  readonly source: Source;
  /**
   * The bytes from `offset` to the end, as views valid until the next step. Throws a
   * WireError with code Changed if the file changed on disk while it was being read.
   */
  chunks(offset: number): AsyncGenerator<Uint8Array>;
  /** SHA-256 of the whole file; call after {@link chunks} has finished. */
  digest(): Promise<Uint8Array>;
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
  /** Pooled buffers for streaming files that are not cached; each is CHUNK_BYTES. */
  streamBuffers?: number;
}

/** Reads files for the server, through the cache. */
export class FileStore {
  readonly #folder: DataFolder;
  readonly #cache: ByteCache<string, CachedFile>;
  /** Loads in progress, with the room they fill. */
  readonly #loads = new Map<string, { load: Load; room: Reservation<CachedFile> }>();
  readonly #digests = new DigestMemo(4096);
  readonly #pool: BufferPool;
  #diskReads = 0;

  constructor(options: StoreOptions) {
    this.#folder = new DataFolder(options.root);
    this.#cache = new ByteCache({
      capacity: options.cacheBytes,
      policy: options.policy,
      // Detaching frees the bytes now: left to the garbage collector, files the cache let go of
      // would stay in memory beside their replacements, and the process would outgrow the cap.
      onDrop: (file) => file.bytes.buffer.transfer(0),
    });
    this.#pool = new BufferPool(options.streamBuffers ?? 16, CHUNK_BYTES);
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
   * Opens `name` for sending. Throws BadNameError or NotFoundError (with clear messages) when it
   * cannot be served. Counts a cache hit or miss.
   */
  open(name: string): FileBody {
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
    if (hit) return new MemoryBody("cache", Load.complete(name, hit), this.#cache.hold(key)!);
    const running = this.#loads.get(key);
    if (running && sameStamp(running.load.stamp, stamp)) {
      return new MemoryBody("disk", running.load, running.room.hold());
    }
    const room = this.#cache.reserve(key, stamp.size);
    this.#diskReads++;
    if (!room) return new StreamBody(name, path, stamp, this.#pool, this.#digests);
    const load = new Load(name, stamp);
    this.#loads.set(key, { load, room });
    // Settled in the same turn as it leaves #loads, so no request joins a load whose room is gone.
    const settled = () => {
      if (this.#loads.get(key)?.load === load) this.#loads.delete(key);
    };
    load.run(path).then((file) => {
      settled();
      room.commit(file);
    }, () => {
      settled();
      room.release();
    });
    return new MemoryBody("disk", load, room.hold());
  }

  /** Every servable file with its size, time and whether it is cached, in batches. */
  async *list(): AsyncGenerator<ListEntry[]> {
    let batch: ListEntry[] = [];
    for await (const entry of walkFiles(this.#folder.root)) {
      const { realName, ...listed } = entry;
      batch.push({ ...listed, cached: this.#cache.has(realName) });
      if (batch.length === LIST_BATCH) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }
}

/** A file being read into memory (or already read): its bytes fill from the front. */
class Load {
  readonly name: string;
  readonly stamp: Stamp;
  readonly bytes: Uint8Array<ArrayBuffer>;
  #filled = 0;
  #digest: Uint8Array | undefined;
  #error: unknown;
  #waiters: (() => void)[] = [];

  constructor(
    name: string,
    stamp: Stamp,
    bytes: Uint8Array<ArrayBuffer> = new Uint8Array(stamp.size),
  ) {
    this.name = name;
    this.stamp = stamp;
    this.bytes = bytes;
  }

  /** A finished load over a cached file. */
  static complete(name: string, file: CachedFile): Load {
    const load = new Load(name, file.stamp, file.bytes);
    load.#filled = file.bytes.length;
    load.#digest = file.digest;
    return load;
  }

  /**
   * Reads the file at `path` into memory, hashing as it goes; resolves to the cached form. The
   * bytes of the last read are handed out only once the file is confirmed unchanged, so a file
   * that changed while it loaded reaches no reader whole.
   */
  async run(path: string): Promise<CachedFile> {
    try {
      await using file = await VersionFile.open(path, this.stamp, this.name);
      const hash = createHash("sha256");
      const size = this.stamp.size;
      for (let read = 0; read < size;) {
        const room = this.bytes.subarray(read, Math.min(size, read + CHUNK_BYTES));
        const n = await file.read(room);
        if (n === null) throw changed(this.name);
        hash.update(room.subarray(0, n));
        read += n;
        if (read < size) {
          this.#filled = read;
          this.#wake();
        }
      }
      const digest = new Uint8Array(hash.digest());
      await file.confirm(digest);
      this.#filled = size;
      this.#digest = digest;
      return { bytes: this.bytes, digest, stamp: this.stamp };
    } catch (error) {
      this.#error = readFailure(error, this.name);
      throw this.#error;
    } finally {
      this.#wake();
    }
  }

  /** Bytes filled so far, once more than `position` are there (or the load ended). */
  async filledPast(position: number): Promise<number> {
    while (this.#filled <= position && this.#digest === undefined && this.#error === undefined) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    if (this.#error !== undefined) throw this.#error;
    return this.#filled;
  }

  /** The digest, once the load has finished. */
  async digest(): Promise<Uint8Array> {
    await this.filledPast(this.stamp.size);
    if (this.#digest === undefined) throw new Error("the load ended without a digest");
    return this.#digest;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** A body served from memory: a cached file, or a load in progress, held until disposed. */
class MemoryBody implements FileBody {
  readonly source: Source;
  readonly #load: Load;
  readonly #release: Release;

  constructor(source: Source, load: Load, release: Release) {
    this.source = source;
    this.#load = load;
    this.#release = release;
  }

  [Symbol.dispose](): void {
    this.#release();
  }

  get name(): string {
    return this.#load.name;
  }

  get stamp(): Stamp {
    return this.#load.stamp;
  }

  async *chunks(offset: number): AsyncGenerator<Uint8Array> {
    for (let sent = offset; sent < this.stamp.size;) {
      const filled = await this.#load.filledPast(sent);
      yield this.#load.bytes.subarray(sent, filled);
      sent = filled;
    }
  }

  digest(): Promise<Uint8Array> {
    return this.#load.digest();
  }
}

/** A failure to read `name` as an answer for the peer: a file gone meanwhile has changed. */
function readFailure(error: unknown, name: string): WireError {
  if (error instanceof Deno.errors.NotFound) return changed(name);
  return asWireError(error, `cannot read ${quote(name)}`);
}

/** A body streamed from disk through pooled buffers, for files the cache cannot take. */
class StreamBody implements FileBody {
  readonly name: string;
  readonly source: Source = "disk";
  readonly stamp: Stamp;
  readonly #path: string;
  readonly #pool: BufferPool;
  readonly #digests: DigestMemo;
  #digest: Uint8Array | undefined;

  constructor(name: string, path: string, stamp: Stamp, pool: BufferPool, digests: DigestMemo) {
    this.name = name;
    this.stamp = stamp;
    this.#path = path;
    this.#pool = pool;
    this.#digests = digests;
  }

  [Symbol.dispose](): void {} // its buffers go back to the pool as soon as chunks() ends

  /** The bytes from `offset`; the last piece comes only once the file is confirmed unchanged. */
  async *chunks(offset: number): AsyncGenerator<Uint8Array> {
    const known = this.#digests.get(this.stamp);
    const hash = known ? undefined : createHash("sha256");
    const size = this.stamp.size;
    let big: Uint8Array | undefined;
    let own: Uint8Array | undefined;
    try {
      await using file = await VersionFile.open(this.#path, this.stamp, this.name);
      const confirm = async () => {
        this.#digest = known ?? new Uint8Array(hash!.digest());
        await file.confirm(this.#digest);
      };
      let position = 0;
      if (known && offset > 0) file.seek(position = offset);
      if (position === size) await confirm();
      while (position < size) {
        big ??= this.#pool.lend(); // a stream that began without one takes one once one is free
        const buffer = big ?? (own ??= this.#pool.small());
        const n = await file.read(buffer.subarray(0, Math.min(buffer.length, size - position)));
        if (n === null) throw changed(this.name);
        hash?.update(buffer.subarray(0, n));
        if (position + n === size) await confirm();
        if (position + n > offset) yield buffer.subarray(Math.max(0, offset - position), n);
        position += n;
      }
      this.#digests.set(this.stamp, this.#digest!);
    } catch (error) {
      throw readFailure(error, this.name);
    } finally {
      if (big) this.#pool.release(big);
      if (own) this.#pool.release(own);
    }
  }

  digest(): Promise<Uint8Array> {
    if (this.#digest === undefined) throw new Error("digest() called before chunks() finished");
    return Promise.resolve(this.#digest);
  }
}

/** Digests of files too large to cache, remembered by stamp so each version is hashed once. */
class DigestMemo {
  readonly #limit: number;
  readonly #digests = new Map<string, Uint8Array>();
  readonly #oldest = new Front(() => this.#digests.keys());

  constructor(limit: number) {
    this.#limit = limit;
  }

  get(stamp: Stamp): Uint8Array | undefined {
    return this.#digests.get(key(stamp));
  }

  set(stamp: Stamp, digest: Uint8Array): void {
    this.#digests.delete(key(stamp));
    this.#digests.set(key(stamp), digest);
    if (this.#digests.size > this.#limit) {
      this.#digests.delete(this.#oldest.take());
    }
  }
}

function key(stamp: Stamp): string {
  return `${stamp.dev}:${stamp.ino}:${stamp.size}:${stamp.mtimeMs}:${stamp.ctimeMs}`;
}

/**
 * Buffers for streaming from disk: a few big ones, and small ones for streams that find every big
 * one out (to other streams, slow readers among them). Nothing waits for a buffer, and stream
 * memory stays at most the big ones, a small one per stream and the spare small ones kept.
 */
class BufferPool {
  readonly #big: Uint8Array[] = [];
  readonly #small: Uint8Array[] = [];
  readonly #bigBytes: number;
  #unmade: number;

  constructor(count: number, bigBytes: number) {
    this.#unmade = count;
    this.#bigBytes = bigBytes;
  }

  /** A big buffer, if one is free (or may still be made). */
  lend(): Uint8Array | undefined {
    const buffer = this.#big.pop();
    if (buffer || this.#unmade === 0) return buffer;
    this.#unmade--;
    return new Uint8Array(this.#bigBytes);
  }

  /** A small buffer for a stream to use until it ends. */
  small(): Uint8Array {
    return this.#small.pop() ?? new Uint8Array(SMALL_CHUNK_BYTES);
  }

  /** Takes back a buffer from {@link lend} or {@link small}. */
  release(buffer: Uint8Array): void {
    if (buffer.length === this.#bigBytes) this.#big.push(buffer);
    else if (this.#small.length < MAX_SPARE_SMALL) this.#small.push(buffer);
  }
}
