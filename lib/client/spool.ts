/**
 * Receiving, hashing and writing at once. The bytes of a file answer are gathered into a few large
 * buffers; each full buffer's write is started and the buffer hashed while it is written, as the
 * next buffer fills. Receiving waits only when every buffer is still waiting to be written.
 * On loopback this took ten verified 32 MiB files saved to a tmpfs from 575-705 ms, when each chunk
 * was received, hashed and written in turn, to 447-519 ms (docs/PERFORMANCE.md).
 */

import type { Hasher } from "../shared/digest.ts";
import { writeAll, type Writer } from "../shared/io.ts";

/** Bytes per buffer: writes of 4 MiB were the fastest measured, to new files and to old. */
const BUFFER_BYTES = 4 * 1024 * 1024;
/** Buffers per spool: one filling, the rest written in turn. */
const BUFFERS = 4;

/**
 * Where the body of an answer that cannot be saved goes: it is read to its end all the same, so
 * the answers after it on the connection still arrive.
 */
export const discard: Writer = { write: (bytes) => Promise.resolve(bytes.length) };

/** Where one file's bytes go, and what is told of them. */
export interface SpoolTarget {
  sink: Writer;
  /** Fed every byte, in order, before it is written. */
  hasher?: Hasher;
  /**
   * Shown the bytes of each write once it is done (to record what is on disk); the buffer is
   * reused once what this returns settles (so the bytes can wait there for their turn to be
   * hashed).
   */
  written?: (bytes: Uint8Array) => Promise<void> | void;
}

/** The file being spooled, and its first write failure. */
interface Spooled {
  target: SpoolTarget;
  failure?: unknown;
}

/**
 * One file at a time: {@link begin}, {@link push} its bytes, {@link end}; the next file may begin
 * while the last one's writes finish. A buffer is made only when every one made so far is still
 * being written, up to {@link BUFFERS}, and they are kept for the next file: each new buffer's
 * pages cost the kernel a fault and a page of zeros on first use, so where writes keep up (to a
 * pipe read at once, say) one or two are all that is ever paid for.
 */
export class Spool {
  /** Buffers free to fill, and how many were made. */
  readonly #free: Uint8Array[] = [];
  #made = 0;
  /** Resolves the next wait for a free buffer. */
  #freed: (() => void) | undefined;
  #file: Spooled | undefined;
  #buffer: Uint8Array | undefined;
  #filled = 0;
  #chain: Promise<void> = Promise.resolve();

  /** Starts a file: what is pushed from now on goes to `target`. */
  begin(target: SpoolTarget): void {
    this.#file = { target };
  }

  /**
   * Takes `chunk`: bytes placed in the {@link room} as it is, any other a copy (it may be a view
   * into a buffer about to be reused). Waits only when no buffer is free. Once a write has failed,
   * the rest of the file is dropped: the answer can still be read to its end.
   */
  async push(chunk: Uint8Array): Promise<void> {
    for (let at = 0; at < chunk.length;) {
      const room = await this.room();
      const n = Math.min(room.length, chunk.length - at);
      const piece = chunk.subarray(at, at + n);
      if (piece.buffer !== room.buffer || piece.byteOffset !== room.byteOffset) room.set(piece);
      this.#filled += n;
      at += n;
      if (this.#filled === this.#buffer!.length) this.#submit();
    }
  }

  /** The free part of the buffer being filled, to read bytes straight into before {@link push}. */
  async room(): Promise<Uint8Array> {
    const buffer = this.#buffer ??= await this.#take();
    return buffer.subarray(this.#filled);
  }

  /**
   * Ends the file: its last bytes are queued, and the promise returned settles once all its writes
   * are done, with its first write failure (undefined when every byte was written). The next file
   * may begin at once.
   */
  end(): Promise<unknown> {
    if (this.#filled > 0) this.#submit();
    const file = this.#file!;
    this.#file = undefined;
    return this.#chain.then(() => file.failure);
  }

  /** A free buffer: one written out, a new one while fewer than BUFFERS exist, or the next freed. */
  async #take(): Promise<Uint8Array> {
    while (this.#free.length === 0 && this.#made === BUFFERS) {
      await new Promise<void>((resolve) => this.#freed = resolve);
    }
    if (this.#free.length > 0) return this.#free.pop()!;
    this.#made++;
    return new Uint8Array(BUFFER_BYTES);
  }

  /** Hashes the current buffer's bytes and queues their write behind the ones before. */
  #submit(): void {
    const buffer = this.#buffer!;
    const bytes = buffer.subarray(0, this.#filled);
    const file = this.#file!;
    this.#buffer = undefined;
    this.#filled = 0;
    this.#chain = this.#chain.then(async () => {
      try {
        if (file.failure === undefined) {
          // The write is under way on another thread while these bytes are hashed here.
          const writing = writeAll(file.target.sink, bytes);
          file.target.hasher?.update(bytes);
          await writing;
          await file.target.written?.(bytes);
        } else file.target.hasher?.update(bytes);
      } catch (error) {
        file.failure = error;
      } finally {
        this.#free.push(buffer);
        this.#freed?.();
        this.#freed = undefined;
      }
    });
  }
}
