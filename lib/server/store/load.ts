/**
 * Files read from disk into memory once, straight into their cache entry, while every request
 * for them streams from the entry as it fills.
 */

import { createHasher, type DigestAlgorithm, digestOf } from "../../shared/digest.ts";
import type { Source } from "../../shared/protocol.ts";
import type { Release } from "../cache/cache.ts";
import { type FileBody, readFailure } from "./body.ts";
import type { Digests } from "./digests.ts";
import { changed, type Stamp, VersionFile } from "./version.ts";

/** Bytes read from disk per step. */
const LOAD_STEP_BYTES = 1024 * 1024;

/** A file being read into memory (or already read): its bytes fill from the front. */
export class Load {
  readonly name: string;
  readonly stamp: Stamp;
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly #digests: Digests;
  #filled = 0;
  #done = false;
  #error: unknown;
  #waiters: (() => void)[] = [];

  constructor(
    name: string,
    stamp: Stamp,
    digests: Digests,
    bytes: Uint8Array<ArrayBuffer>,
  ) {
    this.name = name;
    this.stamp = stamp;
    this.bytes = bytes;
    this.#digests = digests;
  }

  /** A finished load over bytes already in memory (a cached file). */
  static complete(name: string, stamp: Stamp, digests: Digests, bytes: Uint8Array<ArrayBuffer>) {
    const load = new Load(name, stamp, digests, bytes);
    load.#filled = bytes.length;
    load.#done = true;
    return load;
  }

  /**
   * Reads the file at `path` into memory, hashing by `algorithm` as it goes. The bytes of the last
   * read are handed out only once the file is confirmed unchanged, so a file that changed while
   * it loaded reaches no reader whole.
   */
  async run(path: string, algorithm: DigestAlgorithm): Promise<void> {
    try {
      await using file = await VersionFile.open(path, this.stamp, this.name, this.#digests.hashing);
      const hasher = await createHasher(algorithm);
      const size = this.stamp.size;
      for (let read = 0; read < size;) {
        const room = this.bytes.subarray(read, Math.min(size, read + LOAD_STEP_BYTES));
        const n = await file.read(room);
        if (n === null) throw changed(this.name);
        hasher.update(room.subarray(0, n));
        read += n;
        if (read < size) {
          this.#filled = read;
          this.#wake();
        }
      }
      const digest = hasher.digest();
      await file.confirm(algorithm, digest);
      this.#digests.set(this.stamp, algorithm, digest);
      this.#filled = size;
      this.#done = true;
    } catch (error) {
      this.#error = readFailure(error, this.name);
      throw this.#error;
    } finally {
      this.#wake();
    }
  }

  /** Bytes filled so far, once more than `position` are there (or the load ended). */
  async filledPast(position: number): Promise<number> {
    while (this.#filled <= position && !this.#done && this.#error === undefined) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    if (this.#error !== undefined) throw this.#error;
    return this.#filled;
  }

  /**
   * The digest by `algorithm`, once the load has finished: the one worked out while loading, or
   * one worked out now from the bytes in memory (for a request that asked for another digest).
   */
  async digest(algorithm: DigestAlgorithm): Promise<Uint8Array> {
    await this.filledPast(this.stamp.size);
    const known = this.#digests.get(this.stamp, algorithm);
    if (known) return known;
    const digest = await digestOf(algorithm, this.bytes);
    this.#digests.set(this.stamp, algorithm, digest);
    return digest;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** A body served from memory: a cached file, or a load in progress, held until disposed. */
export class MemoryBody implements FileBody {
  readonly source: Source;
  readonly #load: Load;
  readonly #algorithm: DigestAlgorithm;
  readonly #release: Release;

  constructor(source: Source, load: Load, algorithm: DigestAlgorithm, release: Release) {
    this.source = source;
    this.#load = load;
    this.#algorithm = algorithm;
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

  async *chunks(offset: number, end: number): AsyncGenerator<Uint8Array> {
    for (let sent = offset; sent < end;) {
      const filled = Math.min(end, await this.#load.filledPast(sent));
      yield this.#load.bytes.subarray(sent, filled);
      sent = filled;
    }
  }

  digest(): Promise<Uint8Array> {
    return this.#load.digest(this.#algorithm);
  }
}
