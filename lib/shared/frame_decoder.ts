/**
 * The incremental frame decoder: bytes in, in any split, frames out, correct for every split down
 * to one byte at a time; a frame over the limit is refused from its header alone. The I/O that
 * drives it is frame_reader.ts.
 */

import { ErrorCode, ProtocolError } from "./errors.ts";
import { HEADER_BYTES } from "./frames.ts";

/**
 * A decoded frame, or a piece of one. Frames of a streamed type (DATA) are handed out in pieces as
 * their bytes arrive, so a large body never has to fit in the buffer; `last` marks the final
 * piece. Other frames come whole (`last` is true). The payload is a view into the decoder's
 * buffer, valid until the decoder is next given bytes: copy it to keep it.
 */
export interface DecodedFrame {
  type: number;
  payload: Uint8Array;
  last: boolean;
}

/** Limits and tuning for a {@link FrameDecoder}. */
export interface DecoderOptions {
  /** Largest payload accepted for a frame that is not streamed. */
  maxPayload: number;
  /** Frame types whose payload is handed out in pieces, with no size bound. */
  streamed?: readonly number[];
  /** Initial buffer size; it grows (up to what a whole frame needs) only when a frame needs it. */
  bufferBytes?: number;
}

/**
 * Incremental frame decoder: give it bytes in any split (by {@link push}, or by reading straight
 * into {@link space} and calling {@link advance}), take frames out with {@link next}.
 */
export class FrameDecoder {
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;
  #streamRemaining = 0;
  #streamType = 0;
  readonly #maxPayload: number;
  readonly #streamed: ReadonlySet<number>;

  constructor(options: DecoderOptions) {
    this.#maxPayload = options.maxPayload;
    this.#streamed = new Set(options.streamed ?? []);
    this.#buffer = new Uint8Array(Math.max(HEADER_BYTES, options.bufferBytes ?? 64 * 1024));
  }

  /** Bytes received but not yet handed out as frames. */
  get buffered(): Uint8Array {
    return this.#buffer.subarray(this.#start, this.#end);
  }

  /** True when no partial frame is pending: the stream is at a frame boundary. */
  get atBoundary(): boolean {
    return this.#start === this.#end && this.#streamRemaining === 0;
  }

  /** Drops `count` buffered bytes (a preamble the caller has checked, say). */
  skip(count: number): void {
    if (count > this.#end - this.#start) throw new RangeError("cannot skip bytes not yet buffered");
    this.#start += count;
  }

  /** Copies bytes in. */
  push(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length;) {
      const room = this.space();
      const n = Math.min(room.length, bytes.length - at);
      room.set(bytes.subarray(at, at + n));
      this.advance(n);
      at += n;
    }
  }

  /** Free room at the end of the buffer to read into; never empty. Invalidates earlier payloads. */
  space(): Uint8Array {
    const pending = this.#end - this.#start;
    const free = this.#buffer.length - this.#end;
    if (free < this.#buffer.length / 4 || free === 0) {
      if (this.#start > 0) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#start = 0;
        this.#end = pending;
      }
      if (this.#end === this.#buffer.length) {
        const grown = new Uint8Array(this.#buffer.length * 2);
        grown.set(this.#buffer.subarray(0, this.#end));
        this.#buffer = grown;
      }
    }
    return this.#buffer.subarray(this.#end);
  }

  /** Records that `count` bytes were written into the room {@link space} returned. */
  advance(count: number): void {
    if (count < 0 || this.#end + count > this.#buffer.length) throw new RangeError("bad advance");
    this.#end += count;
  }

  /**
   * Bytes of the streamed payload in progress that are neither handed out nor buffered: the ones
   * a reader may read straight to where they are going, then count with {@link skipStreamed}.
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { FrameDecoder } from "./frame_decoder.ts";
   * import { encodeFrame, Frame } from "./frames.ts";
   * const decoder = new FrameDecoder({ maxPayload: 16, streamed: [Frame.Data] });
   * decoder.push(encodeFrame(Frame.Data, new Uint8Array(100)).subarray(0, 45)); // 40 bytes of 100
   * equal(decoder.next()?.payload.length, 40);
   * equal(decoder.unbuffered, 60);
   * decoder.skipStreamed(60); // read elsewhere
   * equal(decoder.atBoundary, true);
   * ```
   */
  get unbuffered(): number {
    return this.#start === this.#end ? this.#streamRemaining : 0;
  }

  /** Counts `count` bytes of the streamed payload as read elsewhere (see {@link unbuffered}). */
  skipStreamed(count: number): void {
    if (count < 0 || count > this.unbuffered) throw new RangeError("bad skip of streamed bytes");
    this.#streamRemaining -= count;
  }

  /** The next whole frame or streamed piece, or undefined when more bytes are needed. */
  next(): DecodedFrame | undefined {
    const available = this.#end - this.#start;
    if (this.#streamRemaining > 0) {
      if (available === 0) return undefined;
      const n = Math.min(available, this.#streamRemaining);
      const payload = this.#buffer.subarray(this.#start, this.#start + n);
      this.#start += n;
      this.#streamRemaining -= n;
      return { type: this.#streamType, payload, last: this.#streamRemaining === 0 };
    }
    if (available < HEADER_BYTES) return undefined;
    const type = this.#buffer[this.#start];
    const length = new DataView(this.#buffer.buffer, this.#buffer.byteOffset + this.#start + 1, 4)
      .getUint32(0);
    if (this.#streamed.has(type)) {
      this.#start += HEADER_BYTES;
      if (length === 0) return { type, payload: this.#buffer.subarray(0, 0), last: true };
      this.#streamType = type;
      this.#streamRemaining = length;
      return this.next();
    }
    if (length > this.#maxPayload) {
      throw new ProtocolError(
        ErrorCode.TooLarge,
        `a frame of ${length} bytes is over the limit of ${this.#maxPayload}`,
      );
    }
    if (available < HEADER_BYTES + length) return undefined;
    const from = this.#start + HEADER_BYTES;
    this.#start = from + length;
    return { type, payload: this.#buffer.subarray(from, from + length), last: true };
  }
}
