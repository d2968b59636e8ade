/**
 * Files the cache cannot take, streamed from disk through a few shared big buffers, or a small
 * buffer of the stream's own until a big one is free, so memory stays bounded under any load and
 * no request waits on another.
 */

import { createHasher, type DigestAlgorithm } from "../../shared/digest.ts";
import type { Source } from "../../shared/protocol.ts";
import { type FileBody, readFailure } from "./body.ts";
import type { Digests } from "./digests.ts";
import { changed, type Stamp, VersionFile } from "./version.ts";

/** The buffer a stream from disk keeps for when every pooled one is lent. */
const SMALL_CHUNK_BYTES = 16 * 1024;
/** Small buffers kept for reuse once their streams end. */
const MAX_SPARE_SMALL = 256;

/** A body streamed from disk through pooled buffers. */
export class StreamBody implements FileBody {
  readonly name: string;
  readonly source: Source = "disk";
  readonly stamp: Stamp;
  readonly #path: string;
  readonly #algorithm: DigestAlgorithm;
  readonly #pool: BufferPool;
  readonly #digests: Digests;
  #digest: Uint8Array | undefined;

  constructor(
    name: string,
    path: string,
    stamp: Stamp,
    algorithm: DigestAlgorithm,
    pool: BufferPool,
    digests: Digests,
  ) {
    this.name = name;
    this.stamp = stamp;
    this.#path = path;
    this.#algorithm = algorithm;
    this.#pool = pool;
    this.#digests = digests;
  }

  [Symbol.dispose](): void {} // its buffers go back to the pool as soon as chunks() ends

  /**
   * The bytes from `offset` to `end`. A whole file whose digest is not known yet is hashed as it
   * is read; a part of one is read alone while the whole file is hashed once beside it (however
   * many parts are asked for at once). The last piece comes once the file is confirmed unchanged.
   */
  async *chunks(offset: number, end: number): AsyncGenerator<Uint8Array> {
    const algorithm = this.#algorithm;
    const known = this.#digests.get(this.stamp, algorithm);
    const whole = offset === 0 && end === this.stamp.size;
    const elsewhere = known || whole
      ? undefined
      : this.#digests.of(this.#path, this.stamp, this.name, algorithm);
    elsewhere?.catch(() => {}); // awaited below; a failure then is this stream's to report
    const hasher = known || !whole ? undefined : await createHasher(algorithm);
    let big: Uint8Array | undefined;
    let own: Uint8Array | undefined;
    try {
      await using file = await VersionFile.open(
        this.#path,
        this.stamp,
        this.name,
        this.#digests.hashing,
      );
      const confirm = async () => {
        this.#digest = known ?? hasher?.digest() ?? await elsewhere!;
        await file.confirm(algorithm, this.#digest);
      };
      file.seek(offset);
      if (offset === end) await confirm();
      for (let position = offset; position < end;) {
        big ??= this.#pool.lend(); // a stream that began without one takes one once one is free
        const buffer = big ?? (own ??= this.#pool.small());
        const n = await file.read(buffer.subarray(0, Math.min(buffer.length, end - position)));
        if (n === null) throw changed(this.name);
        hasher?.update(buffer.subarray(0, n));
        position += n;
        if (position === end) await confirm();
        yield buffer.subarray(0, n);
      }
      if (file.settled) this.#digests.set(this.stamp, algorithm, this.#digest!);
    } catch (error) {
      throw readFailure(error, this.name);
    } finally {
      if (big) this.#pool.release(big);
      if (own) this.#pool.release(own);
    }
  }

  digest(): Promise<Uint8Array> {
    if (this.#digest) return Promise.resolve(this.#digest);
    return this.#digests.of(this.#path, this.stamp, this.name, this.#algorithm);
  }
}

/**
 * Buffers for streaming from disk: a few big ones, and small ones for streams that find every big
 * one out (to other streams, slow readers among them). Nothing waits for a buffer, and stream
 * memory stays at most the big ones, a small one per stream and the spare small ones kept.
 */
export class BufferPool {
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
