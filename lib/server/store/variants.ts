/**
 * Files compressed for sending (HTTP's content codings), kept in the cache beside the files
 * themselves: a compressed copy is an entry of its own, under the file's key and the coding, of the
 * file's version but its own size, counted in the same byte budget and evicted like any other. So a
 * hot text file is compressed once, and the cap holds with copies in it.
 */

import { promisify } from "node:util";
import zlib from "node:zlib";
import { digestOf, SHA256 } from "../../shared/digest.ts";
import type { CacheBackend } from "./backend.ts";
import { type FileBody, readWhole } from "./body.ts";
import type { Digests } from "./digests.ts";
import { type Held, LocalProgress, MemoryBody } from "./load.ts";
import { sameStamp, type Stamp } from "./version.ts";

/**
 * The content codings the server compresses with, best first (the smallest text, at the levels
 * below), for a client that takes several alike.
 */
export const CODINGS = ["br", "zstd", "gzip"] as const;

/** One of {@link CODINGS}. */
export type Coding = typeof CODINGS[number];

// Levels that compress text well and fast (measured in docs/PERFORMANCE.md): each copy is made once
// and served many times, but the first request waits for it.
const { constants } = zlib;
const COMPRESS: Record<Coding, (bytes: Uint8Array) => Promise<Uint8Array>> = {
  zstd: (bytes) =>
    promisify(zlib.zstdCompress)(bytes, { params: { [constants.ZSTD_c_compressionLevel]: 9 } }),
  br: (bytes) =>
    promisify(zlib.brotliCompress)(bytes, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 5,
        [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
      },
    }),
  gzip: (bytes) => promisify(zlib.gzip)(bytes, { level: 6 }),
};

/** Compressions under way at once: each holds a file and its copy in memory while it runs. */
const MAX_AT_ONCE = 2;

/** The compressed copies of files, made on demand and cached. */
export class Variants {
  readonly #cache: CacheBackend;
  readonly #digests: Digests;
  /** The size of each copy made, by its key and the version of the file it was made from. */
  readonly #sizes = new Map<string, { stamp: Stamp; size: number }>();
  /** Copies being made, so that requests arriving meanwhile wait for one rather than make more. */
  readonly #making = new Map<string, Promise<Uint8Array>>();
  #running = 0;
  readonly #queue: (() => void)[] = [];

  constructor(cache: CacheBackend, digests: Digests) {
    this.#cache = cache;
    this.#digests = digests;
  }

  /**
   * `file` (of the cache key `key`) compressed by `coding`: from the cache when a copy of its
   * version is there, else made now (and cached when it fits); undefined when compressing does not
   * make it smaller. The caller still owns `file`.
   */
  async open(key: string, file: FileBody, coding: Coding): Promise<FileBody | undefined> {
    const variantKey = `${key}\0${coding}`;
    const known = this.#sizes.get(variantKey);
    if (known && sameStamp(known.stamp, file.stamp)) {
      if (known.size >= file.stamp.size) return undefined;
      const held = await this.#cache.peek(variantKey, { ...file.stamp, size: known.size });
      if (held) return this.#body(file, known.size, held);
    }
    const bytes = await this.#make(variantKey, file, coding);
    this.#remember(variantKey, file.stamp, bytes.length);
    if (bytes.length >= file.stamp.size) return undefined;
    return await this.#store(variantKey, file, bytes);
  }

  /** A body of the copy of `file`, `size` bytes, held in the cache. */
  #body(file: FileBody, size: number, held: Held): FileBody {
    return new MemoryBody("cache", file.name, { ...file.stamp, size }, held, SHA256, this.#digests);
  }

  /** The copy `bytes` of `file`, cached under `variantKey` if it fits, as a body. */
  async #store(variantKey: string, file: FileBody, bytes: Uint8Array): Promise<FileBody> {
    const stamp = { ...file.stamp, size: bytes.length };
    const found = await this.#cache.find(variantKey, stamp);
    if (found.kind === "hit" || found.kind === "join") {
      return this.#body(file, bytes.length, found.held);
    }
    const digest = await digestOf(SHA256, [bytes]);
    if (found.kind === "load") {
      let at = 0;
      for (const piece of found.held.pieces) {
        piece.set(bytes.subarray(at, at + piece.length));
        at += piece.length;
      }
      found.held.progress.finish(SHA256, digest);
      found.settle(true);
      return this.#body(file, bytes.length, found.held);
    }
    // No room in the cache: served from the copy made, which goes once the answer is sent.
    const progress = new LocalProgress();
    progress.finish(SHA256, digest);
    const held = { pieces: [bytes], progress, release: () => {} };
    return new MemoryBody("disk", file.name, stamp, held, SHA256, this.#digests);
  }

  /** The copy of `file` by `coding`, made once however many requests want it meanwhile. */
  #make(variantKey: string, file: FileBody, coding: Coding): Promise<Uint8Array> {
    const making = `${variantKey}\0${file.stamp.mtimeMs}\0${file.stamp.size}`;
    let copy = this.#making.get(making);
    if (!copy) {
      copy = this.#inTurn(async () => COMPRESS[coding](await readWhole(file)));
      this.#making.set(making, copy);
      copy.finally(() => this.#making.delete(making)).catch(() => {});
    }
    return copy;
  }

  /** Runs `work` once fewer than MAX_AT_ONCE compressions run. */
  async #inTurn<T>(work: () => Promise<T>): Promise<T> {
    if (this.#running >= MAX_AT_ONCE) await new Promise<void>((go) => this.#queue.push(go));
    this.#running++;
    try {
      return await work();
    } finally {
      this.#running--;
      this.#queue.shift()?.();
    }
  }

  #remember(variantKey: string, stamp: Stamp, size: number): void {
    this.#sizes.delete(variantKey);
    this.#sizes.set(variantKey, { stamp, size });
    // The oldest goes first: a forgotten size costs one compression, which finds its copy cached.
    if (this.#sizes.size > MAX_SIZES) this.#sizes.delete(this.#sizes.keys().next().value!);
  }
}

/** Copies whose size is remembered: a few hundred KiB of bookkeeping at most. */
const MAX_SIZES = 4096;
