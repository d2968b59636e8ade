/**
 * Reading frames from a socket: drives the protocol's {@link FrameDecoder} with one reused buffer.
 */

import { ErrorCode, ProtocolError } from "./errors.ts";
import { type DecodedFrame, type DecoderOptions, FrameDecoder } from "./frame_decoder.ts";

/** The reading half of a socket, as {@link FrameReader} needs it. */
export interface Readable {
  read(buffer: Uint8Array): Promise<number | null>;
}

/**
 * Reads frames from a socket through a {@link FrameDecoder}, reusing one buffer. The bytes before
 * the frames (a greeting, a preamble, an original-dialect request) are read with {@link fill} and
 * looked at in {@link buffered}.
 */
export class FrameReader {
  readonly #decoder: FrameDecoder;
  readonly #source: Readable;
  #eof = false;

  constructor(source: Readable, options: DecoderOptions) {
    this.#source = source;
    this.#decoder = new FrameDecoder(options);
  }

  /** Bytes received and not yet taken as frames or skipped; a view valid until the next read. */
  get buffered(): Uint8Array {
    return this.#decoder.buffered;
  }

  /** True when no partial frame is pending: the stream is at a frame boundary. */
  get atBoundary(): boolean {
    return this.#decoder.atBoundary;
  }

  /** Drops `count` buffered bytes that the caller has read itself (a greeting, a preamble). */
  skip(count: number): void {
    this.#decoder.skip(count);
  }

  /** The next frame or piece if it is already buffered, without reading from the socket. */
  take(): DecodedFrame | undefined {
    return this.#decoder.next();
  }

  /** Reads once more from the socket; false at end of stream. */
  async fill(): Promise<boolean> {
    if (this.#eof) return false;
    const n = await this.#source.read(this.#decoder.space());
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#decoder.advance(n);
    return true;
  }

  /**
   * Reads the next bytes of the streamed payload in progress straight into `target`, sparing the
   * copy out of the reader's buffer: at most `target.length`, and at most what is left of the
   * payload once what is buffered is handed out ({@link FrameDecoder.unbuffered}, which must not be
   * 0). Returns how many came, or null at the end of the stream.
   */
  async readStreamed(target: Uint8Array): Promise<number | null> {
    const room = target.subarray(0, Math.min(target.length, this.#decoder.unbuffered));
    if (room.length === 0) throw new RangeError("no streamed bytes are left to read");
    const n = await this.#source.read(room);
    if (n === null) {
      this.#eof = true;
      return null;
    }
    this.#decoder.skipStreamed(n);
    return n;
  }

  /** Streamed payload bytes that {@link readStreamed} may read (see FrameDecoder.unbuffered). */
  get unbuffered(): number {
    return this.#decoder.unbuffered;
  }

  /** The next frame or piece; null at a clean end of stream; throws if the stream ends mid-frame. */
  async next(): Promise<DecodedFrame | null> {
    for (;;) {
      const frame = this.#decoder.next();
      if (frame) return frame;
      if (!await this.fill()) {
        if (this.#decoder.atBoundary) return null;
        throw new ProtocolError(
          ErrorCode.BadRequest,
          "the connection closed in the middle of a frame",
        );
      }
    }
  }
}
