/**
 * The framed protocol's frames (docs/PROTOCOL.md, Frames): a 5-byte header, u8 type and u32
 * big-endian payload length, then the payload; the frame types; and what every payload is read
 * with: 64-bit numbers and text, refused with ProtocolError when they break the rules.
 */

import { ErrorCode, ProtocolError } from "./errors.ts";

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

const encoder = new TextEncoder();
// A leading U+FEFF is a character of the text (a name may start with one), not a byte-order mark.
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

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

/**
 * Reads the u64 at `at` in `bytes`, refusing one over Number.MAX_SAFE_INTEGER.
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { readU64 } from "./frames.ts";
 * equal(readU64(new Uint8Array([0, 0, 0, 0, 0, 0, 1, 0]), 0), 256);
 * throws(() => readU64(new Uint8Array(8).fill(255), 0), { name: "ProtocolError" });
 * ```
 */
export function readU64(bytes: Uint8Array, at: number): number {
  const value = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getBigUint64(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw badFrame("a 64-bit number is too large");
  return Number(value);
}

/** The error for a payload that breaks the protocol's rules, in `message`. */
export function badFrame(message: string): ProtocolError {
  return new ProtocolError(ErrorCode.BadRequest, message);
}
