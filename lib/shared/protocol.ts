/**
 * The wire protocol (docs/PROTOCOL.md), as pure functions of bytes: the greeting and busy texts
 * both dialects share, the framed protocol's preamble and frame types, one encoder and one reader
 * per message kind, and an incremental decoder that is correct for any split of the bytes. The
 * I/O that drives the decoder is apart, in frame_reader.ts.
 */

import { type DigestAlgorithm, digestById, SHA256 } from "./digest.ts";
import { ErrorCode, ProtocolError } from "./errors.ts";

/** What a client sends first: four magic bytes then the protocol version. */
export const MAGIC = new Uint8Array([0x89, 0x46, 0x53, 0x50]); // "\x89FSP"
/**
 * The newest protocol version this code speaks. Version 2 adds SETUP (digest and token), ranges
 * in GET and FILE, and digests other than SHA-256; version 1 is still spoken in full.
 */
export const VERSION = 2;

/**
 * The preamble a client of protocol `version` sends: magic, then the version.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { preamble } from "./protocol.ts";
 * deepEqual([...preamble(1)], [0x89, 0x46, 0x53, 0x50, 1]);
 * ```
 */
export function preamble(version = VERSION): Uint8Array {
  return new Uint8Array([...MAGIC, version]);
}
/** The greeting the server sends on every connection, in both dialects (30 bytes). */
export const GREETING = new TextEncoder().encode("OK@Welcome to the File Server.");
/** What the busy text, sent instead of the greeting, starts with; the original client prints it. */
const BUSY_PREFIX = "DISCONNECTED@";
/** The server's name and version, sent in HELLO. */
export const SERVER_NAME = "fileserver/1.0";
/** Bytes of a frame header: u8 type, u32 big-endian payload length. */
export const HEADER_BYTES = 5;

/** Frame types. Requests have the high bit clear; answers have it set. */
export const Frame = {
  List: 0x01,
  Get: 0x02,
  Stats: 0x03,
  Help: 0x04,
  Quit: 0x05,
  Setup: 0x06,
  Hello: 0x81,
  ListPart: 0x82,
  ListEnd: 0x83,
  File: 0x84,
  Data: 0x85,
  End: 0x86,
  StatsReply: 0x87,
  HelpReply: 0x88,
  Bye: 0x89,
  Error: 0xff,
} as const;

/** One of the frame type codes. */
export type FrameType = typeof Frame[keyof typeof Frame];

/** Where the bytes of a file answer come from. */
export type Source = "cache" | "disk";

/** The metadata frame that opens a file answer; DATA frames with `end - offset` bytes follow. */
export interface FileHeader {
  size: number;
  offset: number;
  /** Where the bytes sent stop (exclusive): the size, unless a range was asked for. */
  end: number;
  mtimeMs: number;
  source: Source;
}

/** One file in a list answer. */
export interface ListEntry {
  name: string;
  size: number;
  mtimeMs: number;
  cached: boolean;
  /** The file's SHA-256, when the list was asked with digests. */
  sha256?: Uint8Array;
}

/** A decoded GET request: the bytes of `name` from `offset` to `end` (0: to the end of the file). */
export interface GetRequest {
  name: string;
  offset: number;
  end: number;
}

/** A decoded SETUP request: the digests the client takes, best first, and its access token. */
export interface Setup {
  digests: number[];
  token: Uint8Array;
}

/**
 * The longest access token, in bytes of UTF-8: a server refuses a longer one in its token file and
 * a client one it is given, so that any token fits in a SETUP frame within the server's limit.
 */
export const MAX_TOKEN_BYTES = 1024;

/** A decoded HELLO answer. */
export interface Hello {
  version: number;
  server: string;
  /** The digest file answers end with (always SHA-256 in version 1). */
  digest: DigestAlgorithm;
}

/** A decoded ERROR frame. */
export interface ErrorReply {
  code: number;
  message: string;
}

const encoder = new TextEncoder();
// A leading U+FEFF is a character of the text (a name may start with one), not a byte-order mark.
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** Writes a frame header for `type` with `length` payload bytes at `at` in `target`. */
export function writeHeader(target: Uint8Array, at: number, type: number, length: number): void {
  target[at] = type;
  new DataView(target.buffer, target.byteOffset + at, 4 + 1).setUint32(1, length);
}

/** Encodes one whole frame. */
export function encodeFrame(type: FrameType, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const frame = new Uint8Array(HEADER_BYTES + payload.length);
  writeHeader(frame, 0, type, payload.length);
  frame.set(payload, HEADER_BYTES);
  return frame;
}

/**
 * Encodes a GET request for `name`, bytes `offset` to `end` (0: to the end of the file), in the
 * form of protocol `version` (1 has no end: always to the end of the file).
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { encodeGet, HEADER_BYTES, readGet } from "./protocol.ts";
 * const frame = encodeGet("a.txt", 10, 2, 20);
 * deepEqual(readGet(frame.subarray(HEADER_BYTES), 2), { name: "a.txt", offset: 10, end: 20 });
 * ```
 */
export function encodeGet(name: string, offset = 0, version = 1, end = 0): Uint8Array {
  for (const value of [offset, end]) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`a GET offset or end is a whole number of bytes, not ${value}`);
    }
  }
  if (version === 1 && end !== 0) throw new RangeError("protocol version 1 has no ranges");
  const fixed = version === 1 ? 8 : 16;
  const nameBytes = encoder.encode(name);
  const payload = new Uint8Array(fixed + nameBytes.length);
  const view = new DataView(payload.buffer);
  view.setBigUint64(0, BigInt(offset));
  if (version > 1) view.setBigUint64(8, BigInt(end));
  payload.set(nameBytes, fixed);
  return encodeFrame(Frame.Get, payload);
}

/** Reads a GET payload of protocol `version`; the name must be valid UTF-8. */
export function readGet(payload: Uint8Array, version = 1): GetRequest {
  const fixed = version === 1 ? 8 : 16;
  if (payload.length < fixed) throw badFrame(`a GET frame needs ${fixed} bytes before its name`);
  const offset = readU64(payload, 0);
  const end = version === 1 ? 0 : readU64(payload, 8);
  if (end !== 0 && end < offset) throw badFrame("a GET frame's end is before its offset");
  return { offset, end, name: readText(payload.subarray(fixed)) };
}

/**
 * Encodes SETUP, the first frame of a version 2 client: the digests it takes, best first, and its
 * access token (empty for none).
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { encodeSetup, HEADER_BYTES, readSetup } from "./protocol.ts";
 * const token = new TextEncoder().encode("secret");
 * const frame = encodeSetup({ digests: [2, 1], token });
 * deepEqual(readSetup(frame.subarray(HEADER_BYTES)), { digests: [2, 1], token });
 * ```
 */
export function encodeSetup(setup: Setup): Uint8Array {
  if (setup.digests.length > 255 || setup.token.length > 0xffff) {
    throw new RangeError("a SETUP frame takes at most 255 digests and a 65535-byte token");
  }
  const payload = new Uint8Array(1 + setup.digests.length + 2 + setup.token.length);
  payload[0] = setup.digests.length;
  payload.set(setup.digests, 1);
  const at = 1 + setup.digests.length;
  new DataView(payload.buffer).setUint16(at, setup.token.length);
  payload.set(setup.token, at + 2);
  return encodeFrame(Frame.Setup, payload);
}

/** Reads a SETUP payload. */
export function readSetup(payload: Uint8Array): Setup {
  const count = payload[0] ?? 0;
  const at = 1 + count;
  if (payload.length < at + 2) throw badFrame("a SETUP frame is cut short");
  const length = new DataView(payload.buffer, payload.byteOffset).getUint16(at);
  if (payload.length !== at + 2 + length) throw badFrame("a SETUP frame's token is cut short");
  return { digests: [...payload.subarray(1, at)], token: payload.slice(at + 2) };
}

/**
 * Encodes HELLO, the answer to a preamble (version 1) or to SETUP (version 2): the version spoken
 * from here on, the digest file answers end with (version 2 only: version 1's is SHA-256), and
 * the server's name.
 */
export function encodeHello(serverName: string, version = 1, digest = SHA256): Uint8Array {
  const text = encoder.encode(serverName);
  const fixed = version === 1 ? 1 : 2;
  const payload = new Uint8Array(fixed + text.length);
  payload[0] = version;
  if (version > 1) payload[1] = digest.id;
  payload.set(text, fixed);
  return encodeFrame(Frame.Hello, payload);
}

/**
 * Reads a HELLO payload.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { XXH3_128 } from "./digest.ts";
 * import { encodeHello, HEADER_BYTES, readHello } from "./protocol.ts";
 * const hello = readHello(encodeHello("fileserver/2.0", 2, XXH3_128).subarray(HEADER_BYTES));
 * equal(hello.digest.name, "xxh3-128");
 * equal(readHello(encodeHello("old").subarray(HEADER_BYTES)).digest.name, "sha256");
 * ```
 */
export function readHello(payload: Uint8Array): Hello {
  if (payload.length < 1) throw badFrame("a HELLO frame needs a version byte");
  const version = payload[0];
  if (version === 1) return { version, server: readText(payload.subarray(1)), digest: SHA256 };
  if (payload.length < 2) throw badFrame("a version 2 HELLO frame needs a digest byte");
  const digest = digestById(payload[1]);
  if (digest === undefined) throw badFrame(`a HELLO frame names digest ${payload[1]}, unknown`);
  return { version, server: readText(payload.subarray(2)), digest };
}

/** Bytes of a whole FILE frame of protocol `version`, for callers that build it in place. */
export function fileFrameBytes(version = 1): number {
  return HEADER_BYTES + filePayloadBytes(version);
}

function filePayloadBytes(version: number): number {
  return version === 1 ? 25 : 33;
}

/** Writes a whole FILE frame of protocol `version` at `at` in `target` (with fileFrameBytes room). */
export function writeFileFrame(
  target: Uint8Array,
  at: number,
  header: FileHeader,
  version = 1,
): void {
  writeHeader(target, at, Frame.File, filePayloadBytes(version));
  const view = new DataView(target.buffer, target.byteOffset + at + HEADER_BYTES);
  view.setBigUint64(0, BigInt(header.size));
  view.setBigUint64(8, BigInt(header.offset));
  const more = version === 1 ? 0 : 8;
  if (version > 1) view.setBigUint64(16, BigInt(header.end));
  view.setFloat64(16 + more, header.mtimeMs);
  view.setUint8(24 + more, header.source === "cache" ? 1 : 0);
}

/** Encodes a FILE frame of protocol `version`. */
export function encodeFileHeader(header: FileHeader, version = 1): Uint8Array {
  const frame = new Uint8Array(fileFrameBytes(version));
  writeFileFrame(frame, 0, header, version);
  return frame;
}

/** Reads a FILE payload of protocol `version`. */
export function readFileHeader(payload: Uint8Array, version = 1): FileHeader {
  const bytes = filePayloadBytes(version);
  if (payload.length !== bytes) throw badFrame(`a FILE frame has ${bytes} payload bytes`);
  const size = readU64(payload, 0);
  const offset = readU64(payload, 8);
  const more = version === 1 ? 0 : 8;
  const end = version === 1 ? size : readU64(payload, 16);
  if (offset > end || end > size) throw badFrame("a FILE frame's range is not within its size");
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const source = payload[24 + more] === 1 ? "cache" : "disk";
  return { size, offset, end, mtimeMs: view.getFloat64(16 + more), source };
}

/** Encodes an END frame carrying the digest of the whole file. */
export function encodeEnd(digest: Uint8Array): Uint8Array {
  return encodeFrame(Frame.End, digest);
}

/** Reads an END payload: the whole file's digest, by `algorithm` (SHA-256 in version 1). */
export function readEnd(payload: Uint8Array, algorithm = SHA256): Uint8Array {
  if (payload.length !== algorithm.bytes) {
    throw badFrame(`an END frame carries a ${algorithm.bytes}-byte ${algorithm.name} digest`);
  }
  return payload.slice();
}

/** Encodes an ERROR frame. Messages are one sentence; they are cut to 1 KiB. */
export function encodeError(code: ErrorCode, message: string): Uint8Array {
  const text = encoder.encode(message).subarray(0, 1024);
  const payload = new Uint8Array(2 + text.length);
  new DataView(payload.buffer).setUint16(0, code);
  payload.set(text, 2);
  return encodeFrame(Frame.Error, payload);
}

/** Reads an ERROR payload. A message cut inside a character is decoded leniently. */
export function readError(payload: Uint8Array): ErrorReply {
  if (payload.length < 2) throw badFrame("an ERROR frame needs a 2-byte code");
  const code = new DataView(payload.buffer, payload.byteOffset).getUint16(0);
  return { code, message: lenientDecoder.decode(payload.subarray(2)) };
}

/** Encodes a frame whose payload is UTF-8 text (HELP and STATS answers). */
export function encodeText(type: FrameType, text: string): Uint8Array {
  return encodeFrame(type, encoder.encode(text));
}

/** Reads a UTF-8 text payload, refusing invalid UTF-8. */
export function readText(payload: Uint8Array): string {
  try {
    return strictDecoder.decode(payload);
  } catch {
    throw badFrame("text in a frame is not valid UTF-8");
  }
}

/** Bytes one list entry takes before its name: flags, mtime, size, name length. */
const ENTRY_FIXED_BYTES = 1 + 8 + 8 + 2;
/** An entry's flags: the file is cached; a SHA-256 follows its name. */
const CACHED = 1;
const WITH_SHA256 = 2;

/**
 * Encodes a LIST request; `sha256` asks for each file's SHA-256 with it (protocol version 2 only:
 * the server reads every file it has no digest of, so it is for those who compare with a
 * published sum, not for every listing).
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { encodeList, HEADER_BYTES, readList } from "./protocol.ts";
 * equal(readList(encodeList(true).subarray(HEADER_BYTES), 2).sha256, true);
 * equal(readList(encodeList().subarray(HEADER_BYTES), 1).sha256, false);
 * ```
 */
export function encodeList(sha256 = false): Uint8Array {
  return encodeFrame(Frame.List, sha256 ? new Uint8Array([WITH_SHA256]) : new Uint8Array(0));
}

/** Reads a LIST payload of protocol `version` (version 1's payload is ignored). */
export function readList(payload: Uint8Array, version = 1): { sha256: boolean } {
  return { sha256: version > 1 && ((payload[0] ?? 0) & WITH_SHA256) !== 0 };
}

/** Encodes list entries into LIST_PART frames of at most about `frameBytes` payload each. */
export function encodeListParts(
  entries: readonly ListEntry[],
  frameBytes = 64 * 1024,
): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let parts: Uint8Array[] = [];
  let length = 0;
  const flush = () => {
    const payload = new Uint8Array(length);
    let at = 0;
    for (const part of parts) {
      payload.set(part, at);
      at += part.length;
    }
    frames.push(encodeFrame(Frame.ListPart, payload));
    parts = [];
    length = 0;
  };
  for (const entry of entries) {
    const name = encoder.encode(entry.name);
    if (name.length > 0xffff) throw new RangeError("a list entry's name is over 65535 bytes");
    const digest = entry.sha256 ?? new Uint8Array(0);
    const part = new Uint8Array(ENTRY_FIXED_BYTES + name.length + digest.length);
    const view = new DataView(part.buffer);
    view.setUint8(0, (entry.cached ? CACHED : 0) | (entry.sha256 ? WITH_SHA256 : 0));
    view.setFloat64(1, entry.mtimeMs);
    view.setBigUint64(9, BigInt(entry.size));
    view.setUint16(17, name.length);
    part.set(name, ENTRY_FIXED_BYTES);
    part.set(digest, ENTRY_FIXED_BYTES + name.length);
    if (length > 0 && length + part.length > frameBytes) flush();
    parts.push(part);
    length += part.length;
  }
  if (length > 0) flush();
  return frames;
}

/** Reads a LIST_PART payload into its entries. */
export function readListPart(payload: Uint8Array): ListEntry[] {
  const entries: ListEntry[] = [];
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  for (let at = 0; at < payload.length;) {
    if (at + ENTRY_FIXED_BYTES > payload.length) throw badFrame("a list entry is cut short");
    const flags = view.getUint8(at);
    const nameEnd = at + ENTRY_FIXED_BYTES + view.getUint16(at + 17);
    const end = nameEnd + (flags & WITH_SHA256 ? SHA256.bytes : 0);
    if (end > payload.length) throw badFrame("a list entry's name is cut short");
    const entry: ListEntry = {
      cached: (flags & CACHED) !== 0,
      mtimeMs: view.getFloat64(at + 1),
      size: readU64(payload, at + 9),
      name: readText(payload.subarray(at + ENTRY_FIXED_BYTES, nameEnd)),
    };
    if (flags & WITH_SHA256) entry.sha256 = payload.slice(nameEnd, end);
    entries.push(entry);
    at = end;
  }
  return entries;
}

/** Encodes the LIST_END frame with the number of entries sent. */
export function encodeListEnd(count: number): Uint8Array {
  const payload = new Uint8Array(8);
  new DataView(payload.buffer).setBigUint64(0, BigInt(count));
  return encodeFrame(Frame.ListEnd, payload);
}

/** Reads a LIST_END payload: the number of entries the answer carried. */
export function readListEnd(payload: Uint8Array): number {
  if (payload.length !== 8) throw badFrame("a LIST_END frame carries an 8-byte count");
  return readU64(payload, 0);
}

function readU64(bytes: Uint8Array, at: number): number {
  const value = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getBigUint64(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw badFrame("a 64-bit number is too large");
  return Number(value);
}

function badFrame(message: string): ProtocolError {
  return new ProtocolError(ErrorCode.BadRequest, message);
}

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
   * import { encodeFrame, Frame, FrameDecoder } from "./protocol.ts";
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

/**
 * The text a server at one of its limits sends instead of the greeting, in words both dialects'
 * clients understand; `why` says which limit.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { encodeBusy, readBusy } from "./protocol.ts";
 * const text = encodeBusy("2 connections are open");
 * equal(new TextDecoder().decode(text), "DISCONNECTED@Server busy: 2 connections are open; try again later.");
 * equal(readBusy(text), "2 connections are open; try again later.");
 * ```
 */
export function encodeBusy(why: string): Uint8Array {
  return encoder.encode(`${BUSY_PREFIX}Server busy: ${why}; try again later.`);
}

/** The reason in a busy text (what follows "Server busy: "), or undefined if `bytes` is none. */
export function readBusy(bytes: Uint8Array): string | undefined {
  const text = lenientDecoder.decode(bytes);
  if (!text.startsWith(BUSY_PREFIX)) return undefined;
  return text.slice(BUSY_PREFIX.length).replace(/^Server busy: /, "").trim();
}

/** The counters a STATS answer carries, as a JSON object; scripts rely on these names. */
export interface ServerStats {
  policy: string;
  requests: number;
  hits: number;
  misses: number;
  hitRatio: number;
  byteHitRatio: number;
  evictions: number;
  bytesSent: number;
  cacheBytes: number;
  cacheReserved: number;
  /** Bytes evicted from the cache but still being sent to slow readers; they count against the cap. */
  cachePinned: number;
  cacheCapacity: number;
  cacheEntries: number;
  diskReads: number;
  connections: number;
  totalConnections: number;
  errors: number;
  /** Peers turned away for want of a valid access token. */
  authFailures: number;
  uptimeSeconds: number;
}

/** Encodes a STATS_REPLY frame. */
export function encodeStats(stats: ServerStats): Uint8Array {
  return encodeText(Frame.StatsReply, JSON.stringify(stats));
}

/**
 * Reads a STATS_REPLY payload: a JSON object whose values are numbers or strings. Anything else is
 * a ProtocolError, so a broken server cannot make a reader print whatever it sent.
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { encodeText, Frame, HEADER_BYTES, readStats } from "./protocol.ts";
 * const payload = (text: string) => encodeText(Frame.StatsReply, text).subarray(HEADER_BYTES);
 * equal(readStats(payload('{"requests":3}')).requests, 3);
 * throws(() => readStats(payload("not json")), { name: "ProtocolError" });
 * ```
 */
export function readStats(payload: Uint8Array): ServerStats {
  let stats: unknown;
  try {
    stats = JSON.parse(readText(payload));
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw badFrame("a STATS_REPLY frame is not JSON");
  }
  if (typeof stats !== "object" || stats === null || Array.isArray(stats)) {
    throw badFrame("a STATS_REPLY frame is not a JSON object");
  }
  for (const value of Object.values(stats)) {
    if (typeof value !== "number" && typeof value !== "string") {
      throw badFrame("a STATS_REPLY frame holds a value that is neither a number nor text");
    }
  }
  return stats as ServerStats;
}
