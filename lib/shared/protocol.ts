/**
 * The framed protocol's messages (docs/PROTOCOL.md), as pure functions of bytes: the preamble, and
 * an encoder and a reader for each message. What differs between protocol versions is declared
 * once, in each version's layout; a connection encodes and reads those messages with the
 * {@link codec} of the version it speaks, so nothing can write a frame of a version the
 * connection does not speak. The frame header is frames.ts, the decoder frame_decoder.ts, the
 * greeting and busy texts greeting.ts, the counters stats.ts.
 */

import { type DigestAlgorithm, digestById, SHA256 } from "./digest.ts";
import type { ErrorCode } from "./errors.ts";
import { concat } from "./io.ts";
import {
  badFrame,
  encodeFrame,
  Frame,
  HEADER_BYTES,
  readText,
  readU64,
  writeHeader,
} from "./frames.ts";

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
export function preamble(version: number): Uint8Array {
  return new Uint8Array([...MAGIC, version]);
}

/** The server's name and version, sent in HELLO. */
export const SERVER_NAME = "fileserver/1.0";

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
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Where a protocol version puts the fields that differ between versions: each one's byte offset in
 * its payload, absent when the version has no such field. The others are where every version has
 * them: a GET's offset at 0; a FILE's size at 0 and offset at 8; a HELLO's version at 0.
 */
interface Layout {
  /** GET: its end (absent: no ranges, always to the end of the file); where its name starts. */
  get: { end?: number; name: number };
  /** HELLO: the digest chosen (absent: SHA-256); where the server's name starts. */
  hello: { digest?: number; name: number };
  /** FILE: its end (absent: the size), modification time and source; its length. */
  file: { end?: number; mtime: number; source: number; bytes: number };
  /** LIST: its flags (absent: its payload is ignored). */
  list: { flags?: number };
}

/** Each version's layout, as docs/PROTOCOL.md draws them. */
const LAYOUTS = new Map<number, Layout>([
  [1, {
    get: { name: 8 },
    hello: { name: 1 },
    file: { mtime: 16, source: 24, bytes: 25 },
    list: {},
  }],
  [2, {
    get: { end: 8, name: 16 },
    hello: { digest: 1, name: 2 },
    file: { end: 16, mtime: 24, source: 32, bytes: 33 },
    list: { flags: 0 },
  }],
]);

/** A LIST's flag asking for each file's SHA-256 (version 2). */
const LIST_SHA256 = 2;

/** The messages whose form depends on the protocol version, in the form of one version. */
export interface Codec {
  readonly version: number;
  /**
   * Encodes a GET request for bytes `offset` (default 0) to `end` of `name` (0 or none: to the end
   * of the file). Throws RangeError for a range in a version without ranges.
   */
  encodeGet(request: { name: string; offset?: number; end?: number }): Uint8Array;
  /** Reads a GET payload; the name must be valid UTF-8. */
  readGet(payload: Uint8Array): GetRequest;
  /**
   * Encodes HELLO, the answer to a preamble (version 1) or to SETUP: this version, and the digest
   * file answers end with (which a version without a digest field has as SHA-256).
   */
  encodeHello(hello: { server: string; digest: DigestAlgorithm }): Uint8Array;
  /** Bytes of a whole FILE frame, for callers that build it in place. */
  readonly fileFrameBytes: number;
  /** Writes a whole FILE frame at `at` in `target`, which has {@link fileFrameBytes} of room. */
  writeFileFrame(target: Uint8Array, at: number, header: FileHeader): void;
  /** Encodes a FILE frame. */
  encodeFileHeader(header: FileHeader): Uint8Array;
  /** Reads a FILE payload. */
  readFileHeader(payload: Uint8Array): FileHeader;
  /**
   * Encodes a LIST request; `sha256` asks for each file's SHA-256 with it (not in version 1: the
   * server reads every file it has no digest of, so it is for those who compare with a published
   * sum, not for every listing).
   */
  encodeList(request: { sha256: boolean }): Uint8Array;
  /** Reads a LIST payload (version 1's is ignored). */
  readList(payload: Uint8Array): { sha256: boolean };
}

/**
 * The codec of protocol `version`, for a connection that speaks it; throws RangeError for a
 * version this code does not speak.
 * @example
 * ```ts
 * import { deepEqual, throws } from "node:assert/strict";
 * import { HEADER_BYTES } from "./frames.ts";
 * import { codec } from "./protocol.ts";
 * const v2 = codec(2);
 * const frame = v2.encodeGet({ name: "a.txt", offset: 10, end: 20 });
 * deepEqual(v2.readGet(frame.subarray(HEADER_BYTES)), { name: "a.txt", offset: 10, end: 20 });
 * throws(() => codec(1).encodeGet({ name: "a.txt", offset: 10, end: 20 }), RangeError);
 * ```
 */
export function codec(version: number): Codec {
  const known = CODECS.get(version);
  if (known === undefined) throw new RangeError(`there is no protocol version ${version} here`);
  return known;
}

/** A version's codec, worked out from its layout. */
class LayoutCodec implements Codec {
  readonly version: number;
  readonly fileFrameBytes: number;
  readonly #layout: Layout;

  constructor(version: number, layout: Layout) {
    this.version = version;
    this.#layout = layout;
    this.fileFrameBytes = HEADER_BYTES + layout.file.bytes;
  }

  encodeGet(
    { name, offset = 0, end = 0 }: { name: string; offset?: number; end?: number },
  ): Uint8Array {
    for (const value of [offset, end]) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`a GET offset or end is a whole number of bytes, not ${value}`);
      }
    }
    const layout = this.#layout.get;
    if (layout.end === undefined && end !== 0) {
      throw new RangeError(`protocol version ${this.version} has no ranges`);
    }
    const nameBytes = encoder.encode(name);
    const payload = new Uint8Array(layout.name + nameBytes.length);
    const view = new DataView(payload.buffer);
    view.setBigUint64(0, BigInt(offset));
    if (layout.end !== undefined) view.setBigUint64(layout.end, BigInt(end));
    payload.set(nameBytes, layout.name);
    return encodeFrame(Frame.Get, payload);
  }

  readGet(payload: Uint8Array): GetRequest {
    const layout = this.#layout.get;
    if (payload.length < layout.name) {
      throw badFrame(`a GET frame needs ${layout.name} bytes before its name`);
    }
    const offset = readU64(payload, 0);
    const end = layout.end === undefined ? 0 : readU64(payload, layout.end);
    if (end !== 0 && end < offset) throw badFrame("a GET frame's end is before its offset");
    return { offset, end, name: readText(payload.subarray(layout.name)) };
  }

  encodeHello({ server, digest }: { server: string; digest: DigestAlgorithm }): Uint8Array {
    const layout = this.#layout.hello;
    if (layout.digest === undefined && digest !== SHA256) {
      throw new RangeError(`protocol version ${this.version} has no digest but SHA-256`);
    }
    const text = encoder.encode(server);
    const payload = new Uint8Array(layout.name + text.length);
    payload[0] = this.version;
    if (layout.digest !== undefined) payload[layout.digest] = digest.id;
    payload.set(text, layout.name);
    return encodeFrame(Frame.Hello, payload);
  }

  writeFileFrame(target: Uint8Array, at: number, header: FileHeader): void {
    const layout = this.#layout.file;
    writeHeader(target, at, Frame.File, layout.bytes);
    const view = new DataView(target.buffer, target.byteOffset + at + HEADER_BYTES);
    view.setBigUint64(0, BigInt(header.size));
    view.setBigUint64(8, BigInt(header.offset));
    if (layout.end !== undefined) view.setBigUint64(layout.end, BigInt(header.end));
    view.setFloat64(layout.mtime, header.mtimeMs);
    view.setUint8(layout.source, header.source === "cache" ? 1 : 0);
  }

  encodeFileHeader(header: FileHeader): Uint8Array {
    const frame = new Uint8Array(this.fileFrameBytes);
    this.writeFileFrame(frame, 0, header);
    return frame;
  }

  readFileHeader(payload: Uint8Array): FileHeader {
    const layout = this.#layout.file;
    if (payload.length !== layout.bytes) {
      throw badFrame(`a FILE frame has ${layout.bytes} payload bytes`);
    }
    const size = readU64(payload, 0);
    const offset = readU64(payload, 8);
    const end = layout.end === undefined ? size : readU64(payload, layout.end);
    if (offset > end || end > size) throw badFrame("a FILE frame's range is not within its size");
    const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
    const source = payload[layout.source] === 1 ? "cache" : "disk";
    return { size, offset, end, mtimeMs: view.getFloat64(layout.mtime), source };
  }

  encodeList({ sha256 }: { sha256: boolean }): Uint8Array {
    if (!sha256) return encodeFrame(Frame.List);
    const at = this.#layout.list.flags;
    if (at === undefined) {
      throw new RangeError(`protocol version ${this.version} has no digests in its lists`);
    }
    const payload = new Uint8Array(at + 1);
    payload[at] = LIST_SHA256;
    return encodeFrame(Frame.List, payload);
  }

  readList(payload: Uint8Array): { sha256: boolean } {
    const at = this.#layout.list.flags;
    return { sha256: at !== undefined && ((payload[at] ?? 0) & LIST_SHA256) !== 0 };
  }
}

/** The codec of every version spoken, made once. */
const CODECS = new Map([...LAYOUTS].map(([version, layout]) => [
  version,
  new LayoutCodec(version, layout),
]));

/**
 * Reads a HELLO payload, which says which version the connection speaks from then on.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { SHA256, XXH3_128 } from "./digest.ts";
 * import { HEADER_BYTES } from "./frames.ts";
 * import { codec, readHello } from "./protocol.ts";
 * const hello = codec(2).encodeHello({ server: "fileserver/2.0", digest: XXH3_128 });
 * equal(readHello(hello.subarray(HEADER_BYTES)).digest.name, "xxh3-128");
 * const old = codec(1).encodeHello({ server: "old", digest: SHA256 });
 * equal(readHello(old.subarray(HEADER_BYTES)).digest.name, "sha256");
 * ```
 */
export function readHello(payload: Uint8Array): Hello {
  if (payload.length < 1) throw badFrame("a HELLO frame needs a version byte");
  const version = payload[0];
  const layout = LAYOUTS.get(version)?.hello;
  if (layout === undefined) throw badFrame(`a HELLO frame names version ${version}, unknown`);
  if (payload.length < layout.name) {
    throw badFrame(`a version ${version} HELLO frame needs a digest byte`);
  }
  const id = layout.digest === undefined ? SHA256.id : payload[layout.digest];
  const digest = digestById(id);
  if (digest === undefined) throw badFrame(`a HELLO frame names digest ${id}, unknown`);
  return { version, server: readText(payload.subarray(layout.name)), digest };
}

/**
 * Encodes SETUP, the first frame of a version 2 client: the digests it takes, best first, and its
 * access token (empty for none).
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { HEADER_BYTES } from "./frames.ts";
 * import { encodeSetup, readSetup } from "./protocol.ts";
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

/** Encodes an END frame carrying the digest of the whole file. */
export function encodeEnd(digest: Uint8Array): Uint8Array {
  return encodeFrame(Frame.End, digest);
}

/** Reads an END payload: the whole file's digest, by `algorithm` (SHA-256 in version 1). */
export function readEnd(payload: Uint8Array, algorithm: DigestAlgorithm): Uint8Array {
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

/** Bytes one list entry takes before its name: flags, mtime, size, name length. */
const ENTRY_FIXED_BYTES = 1 + 8 + 8 + 2;
/** An entry's flags: the file is cached; a SHA-256 follows its name. */
const CACHED = 1;
const WITH_SHA256 = 2;

/** Encodes list entries into LIST_PART frames of at most about `frameBytes` payload each. */
export function encodeListParts(
  entries: readonly ListEntry[],
  frameBytes = 64 * 1024,
): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let parts: Uint8Array[] = [];
  let length = 0;
  const flush = () => {
    frames.push(encodeFrame(Frame.ListPart, concat(parts)));
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
