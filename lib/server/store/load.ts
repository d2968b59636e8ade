/**
 * Files read from disk into memory once, straight into their cache entry, while every request
 * for them streams from the entry as it fills.
 */

import { createHasher, type DigestAlgorithm, digestOf } from "../../shared/digest.ts";
import type { WireError } from "../../shared/errors.ts";
import type { Source } from "../../shared/protocol.ts";
import type { Release } from "../cache/cache.ts";
import { type FileBody, readFailure } from "./body.ts";
import type { Digests } from "./digests.ts";
import { changed, type Stamp, VersionFile } from "./version.ts";

/** Bytes read from disk per step. */
const LOAD_STEP_BYTES = 1024 * 1024;

/**
 * Where a file's bytes lie in memory: pieces in order whose lengths add up to its size. One piece
 * in a cache of one thread; runs of pages in the cache shared by threads (shared.ts).
 */
export type Pieces = readonly Uint8Array[];

/**
 * How far a file's load into memory has come, as its loader and its readers see it, whether they
 * run in one thread or in several.
 */
export interface Progress {
  /**
   * Bytes filled so far, once more than `position` are there or the load has ended; throws the
   * load's failure.
   */
  filledPast(position: number): Promise<number>;
  /** The loader: the first `filled` bytes are in place (fewer than the whole file). */
  advance(filled: number): void;
  /** The loader: every byte is in place and confirmed, and `digest` is its digest by `algorithm`. */
  finish(algorithm: DigestAlgorithm, digest: Uint8Array): void;
  /** The loader: the load failed with `error`. */
  fail(error: WireError): void;
  /** The digest by `algorithm` the load worked out, if that is the algorithm it used. */
  digest(algorithm: DigestAlgorithm): Uint8Array | undefined;
}

/** A file's bytes in memory (cached, or filling) held for one request until it lets go. */
export interface Held {
  readonly pieces: Pieces;
  readonly progress: Progress;
  /** Lets go: once nobody holds the bytes and the cache has let go too, they may be reused. */
  readonly release: Release;
}

/** {@link Progress} within one thread: readers wait on promises the loader resolves. */
export class LocalProgress implements Progress {
  #filled = 0;
  #done = false;
  #error: WireError | undefined;
  #digest: { algorithm: DigestAlgorithm; digest: Uint8Array } | undefined;
  #waiters: (() => void)[] = [];

  async filledPast(position: number): Promise<number> {
    while (this.#filled <= position && !this.#done && this.#error === undefined) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    if (this.#error !== undefined) throw this.#error;
    return this.#filled;
  }

  advance(filled: number): void {
    this.#filled = filled;
    this.#wake();
  }

  finish(algorithm: DigestAlgorithm, digest: Uint8Array): void {
    this.#digest = { algorithm, digest };
    this.#filled = Infinity; // every byte, however many
    this.#done = true;
    this.#wake();
  }

  fail(error: WireError): void {
    this.#error = error;
    this.#wake();
  }

  digest(algorithm: DigestAlgorithm): Uint8Array | undefined {
    return this.#digest?.algorithm === algorithm ? this.#digest.digest : undefined;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Reads the file at `path`, version `stamp`, into `held`'s pieces, hashing by `algorithm` as it
 * goes and telling its progress. The bytes of the last read are handed out only once the file is
 * confirmed unchanged, so a file that changed while it loaded reaches no reader whole. Resolves
 * to whether the version is settled (VersionFile.settled): only then may it be cached, and its
 * digest remembered.
 */
export async function load(
  path: string,
  name: string,
  stamp: Stamp,
  { pieces, progress }: Held,
  algorithm: DigestAlgorithm,
  digests: Digests,
): Promise<boolean> {
  try {
    await using file = await VersionFile.open(path, stamp, name, digests.hashing);
    const hasher = await createHasher(algorithm);
    let read = 0;
    for (const piece of pieces) {
      for (let at = 0; at < piece.length;) {
        const room = piece.subarray(at, Math.min(piece.length, at + LOAD_STEP_BYTES));
        const n = await file.read(room);
        if (n === null) throw changed(name);
        hasher.update(room.subarray(0, n));
        at += n;
        read += n;
        if (read < stamp.size) progress.advance(read);
      }
    }
    const digest = hasher.digest();
    await file.confirm(algorithm, digest);
    if (file.settled) digests.set(stamp, algorithm, digest);
    progress.finish(algorithm, digest);
    return file.settled;
  } catch (error) {
    const failure = readFailure(error, name);
    progress.fail(failure);
    throw failure;
  }
}

/** A body served from memory: a cached file, or a load in progress, held until disposed. */
export class MemoryBody implements FileBody {
  readonly source: Source;
  readonly name: string;
  readonly stamp: Stamp;
  readonly #held: Held;
  readonly #algorithm: DigestAlgorithm;
  readonly #digests: Digests;

  constructor(
    source: Source,
    name: string,
    stamp: Stamp,
    held: Held,
    algorithm: DigestAlgorithm,
    digests: Digests,
  ) {
    this.source = source;
    this.name = name;
    this.stamp = stamp;
    this.#held = held;
    this.#algorithm = algorithm;
    this.#digests = digests;
  }

  [Symbol.dispose](): void {
    this.#held.release();
  }

  async *chunks(offset: number, end: number): AsyncGenerator<Uint8Array> {
    const { pieces, progress } = this.#held;
    let piece = 0;
    let start = 0; // where pieces[piece] begins in the file
    for (let sent = offset; sent < end;) {
      const filled = Math.min(end, await progress.filledPast(sent));
      while (sent < filled) {
        while (start + pieces[piece].length <= sent) start += pieces[piece++].length;
        const to = Math.min(filled, start + pieces[piece].length);
        yield pieces[piece].subarray(sent - start, to - start);
        sent = to;
      }
    }
  }

  /**
   * The digest, once the load has finished: the one worked out while loading, or one worked out
   * now from the bytes in memory (for a request that asked for another digest).
   */
  async digest(): Promise<Uint8Array> {
    const { pieces, progress } = this.#held;
    await progress.filledPast(this.stamp.size);
    const algorithm = this.#algorithm;
    const known = this.#digests.get(this.stamp, algorithm) ?? progress.digest(algorithm);
    if (known) return known;
    const digest = await digestOf(algorithm, pieces);
    // Only a cached copy is of a settled version (see load), which a digest may be remembered by.
    if (this.source === "cache") this.#digests.set(this.stamp, algorithm, digest);
    return digest;
  }
}
