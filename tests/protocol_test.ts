/**
 * The wire codec alone (lib/shared/frames.ts, protocol.ts, frame_decoder.ts; docs/PROTOCOL.md):
 * every encoder and its reader round trip, the incremental decoder is correct for any split of the
 * bytes, limits hold before a payload is buffered, malformed input is refused with ProtocolError,
 * and garbage can only ever produce frames or a ProtocolError.
 */

import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import fc from "fast-check";
import { SHA256, XXH3_128 } from "../lib/shared/digest.ts";
import { ErrorCode, ProtocolError } from "../lib/shared/errors.ts";
import { FrameReader, type Readable } from "../lib/shared/frame_reader.ts";
import {
  type DecodedFrame,
  type DecoderOptions,
  FrameDecoder,
} from "../lib/shared/frame_decoder.ts";
import {
  encodeFrame,
  encodeText,
  Frame,
  HEADER_BYTES,
  readText,
  writeHeader,
} from "../lib/shared/frames.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import {
  codec,
  encodeEnd,
  encodeError,
  encodeListEnd,
  encodeListParts,
  encodeSetup,
  type FileHeader,
  type ListEntry,
  preamble,
  readEnd,
  readError,
  readHello,
  readListEnd,
  readListPart,
  readSetup,
  VERSION,
} from "../lib/shared/protocol.ts";
import { concat } from "../lib/shared/io.ts";

const utf8 = new TextEncoder();
const BadRequest = ErrorCode.BadRequest;

/** Any well-formed text, a leading U+FEFF (byte-order mark) included. */
function anyText(maxLength = 40): fc.Arbitrary<string> {
  return fc.string({ unit: "binary", maxLength, size: "max" });
}

/** fc.record makes objects without a prototype; readers return plain ones. */
function plain<T extends object>(record: T): T {
  return { ...record };
}

/** FILE headers of protocol `version`: version 1's always run to the end of the file. */
const fileHeaders = (version: number): fc.Arbitrary<FileHeader> =>
  fc.maxSafeNat().chain((size) =>
    fc.integer({ min: 0, max: size }).chain((end) =>
      fc.record({
        size: fc.constant(size),
        offset: fc.integer({ min: 0, max: version === 1 ? size : end }),
        end: fc.constant(version === 1 ? size : end),
        mtimeMs: fc.double(),
        source: fc.constantFrom("cache" as const, "disk" as const),
      }).map(plain)
    )
  );

const listEntries: fc.Arbitrary<ListEntry> = fc.record({
  name: anyText(60),
  size: fc.maxSafeNat(),
  mtimeMs: fc.double(),
  cached: fc.boolean(),
  sha256: fc.uint8Array({ minLength: 32, maxLength: 32 }),
}, { requiredKeys: ["name", "size", "mtimeMs", "cached"] }).map(plain);

const errorCodes = fc.constantFrom(...Object.values(ErrorCode));

/** Splits a whole frame into its type and payload, checking the header's length is exact. */
function unframe(frame: Uint8Array): { type: number; payload: Uint8Array } {
  assert(frame.length >= HEADER_BYTES, "a frame has a 5-byte header");
  const length = new DataView(frame.buffer, frame.byteOffset, frame.length).getUint32(1);
  strictEqual(frame.length, HEADER_BYTES + length, "the header's length is the payload's");
  return { type: frame[0], payload: frame.subarray(HEADER_BYTES) };
}

/** A header claiming `length` payload bytes of `type`. */
function header(type: number, length: number): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES);
  writeHeader(bytes, 0, type, length);
  return bytes;
}

/** Asserts that `run` throws a ProtocolError with `code`. */
function throwsProtocol(run: () => unknown, code: ErrorCode): void {
  throws(run, (error) => error instanceof ProtocolError && error.code === code);
}

/** Whole frames of every kind, as the encoders make them. */
const sampleFrames: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.tuple(anyText(), fc.maxSafeNat()).map(([name, offset]) =>
    codec(1).encodeGet({ name, offset })
  ),
  anyText().map((name) => codec(1).encodeHello({ server: name, digest: SHA256 })),
  fileHeaders(1).map((header) => codec(1).encodeFileHeader(header)),
  fc.uint8Array({ minLength: SHA256.bytes, maxLength: SHA256.bytes }).map(encodeEnd),
  fc.tuple(errorCodes, anyText()).map(([code, message]) => encodeError(code, message)),
  fc.maxSafeNat().map(encodeListEnd),
  fc.array(listEntries, { minLength: 1, maxLength: 4, size: "max" }).map((entries) =>
    encodeListParts(entries)[0]
  ),
  anyText(200).map((text) => encodeText(Frame.HelpReply, text)),
  fc.constantFrom(Frame.List, Frame.Stats, Frame.Help, Frame.Quit, Frame.Bye)
    .map((type) => encodeFrame(type)),
  fc.uint8Array({ maxLength: 300, size: "max" }).map((bytes) => encodeFrame(Frame.Data, bytes)),
);

/** A stream of several frames and the positions where it is cut into reads. */
const splitStreams = fc.array(sampleFrames, { minLength: 1, maxLength: 25, size: "max" }).chain(
  (frames) => {
    const length = frames.reduce((n, frame) => n + frame.length, 0);
    return fc.record({
      frames: fc.constant(frames),
      cuts: fc.uniqueArray(fc.integer({ min: 1, max: length - 1 }), { maxLength: 40, size: "max" }),
      bufferBytes: fc.integer({ min: 1, max: 256 }),
      feed: fc.constantFrom("push" as const, "space" as const),
    });
  },
);

/** Stream properties are cheap: run them more than the default 100 times. */
const streamRuns = { numRuns: 300 };

/** Decoder options that stream DATA (as the client's) with a limit every sample frame fits. */
function clientLike(bufferBytes?: number): DecoderOptions {
  return { maxPayload: 64 * 1024, streamed: [Frame.Data], bufferBytes };
}

/** What came out of a decoder: whole frames, streamed frames as their pieces. */
class Collected {
  readonly frames: { type: number; pieces: Uint8Array[]; lasts: boolean[] }[] = [];

  /** Records one frame or piece (copied: the decoder's view does not last). */
  add(frame: DecodedFrame): void {
    const open = this.frames.at(-1);
    if (open && !open.lasts.at(-1)) {
      strictEqual(frame.type, open.type, "a streamed frame's pieces keep its type");
      open.pieces.push(frame.payload.slice());
      open.lasts.push(frame.last);
    } else {
      this.frames.push({ type: frame.type, pieces: [frame.payload.slice()], lasts: [frame.last] });
    }
  }

  /** Asserts these are exactly `frames`, with DATA in non-empty pieces and `last` on the final. */
  assertMatches(frames: readonly Uint8Array[]): void {
    strictEqual(this.frames.length, frames.length, "as many frames out as in");
    frames.forEach((bytes, i) => {
      const { type, payload } = unframe(bytes);
      const got = this.frames[i];
      strictEqual(got.type, type);
      assertEquals(concat(got.pieces), payload, `frame ${i} (type 0x${type.toString(16)})`);
      assertEquals(got.lasts, got.pieces.map((_, k) => k === got.pieces.length - 1));
      if (type !== Frame.Data) strictEqual(got.pieces.length, 1, "only DATA comes in pieces");
      if (payload.length > 0) assert(got.pieces.every((piece) => piece.length > 0));
    });
  }
}

/** Takes every frame or piece the decoder has ready. */
function drain(decoder: FrameDecoder, into: Collected): void {
  for (let frame = decoder.next(); frame; frame = decoder.next()) into.add(frame);
}

/** Gives `bytes` to the decoder by push(), or by writing into space() and calling advance(). */
function feed(decoder: FrameDecoder, bytes: Uint8Array, how: "push" | "space", into: Collected) {
  if (how === "push") {
    decoder.push(bytes);
    return drain(decoder, into);
  }
  for (let at = 0; at < bytes.length;) {
    const room = decoder.space();
    assert(room.length > 0, "space() is never empty");
    const n = Math.min(room.length, bytes.length - at);
    room.set(bytes.subarray(at, at + n));
    decoder.advance(n);
    at += n;
    drain(decoder, into);
  }
}

/** Positions in a stream of `frames` where one frame ends and the next begins. */
function boundaries(frames: readonly Uint8Array[]): Set<number> {
  const ends = new Set([0]);
  let at = 0;
  for (const frame of frames) ends.add(at += frame.length);
  return ends;
}

/**
 * Decodes `frames` cut at `cuts`, asserting after each read that `atBoundary` is true exactly at
 * frame boundaries, and that everything comes out intact.
 */
function decodeSplit(
  frames: readonly Uint8Array[],
  cuts: readonly number[],
  how: "push" | "space",
  bufferBytes?: number,
): void {
  const stream = concat(frames);
  const ends = boundaries(frames);
  const decoder = new FrameDecoder(clientLike(bufferBytes));
  const collected = new Collected();
  let from = 0;
  for (const to of [...[...cuts].sort((a, b) => a - b), stream.length]) {
    feed(decoder, stream.subarray(from, to), how, collected);
    strictEqual(decoder.atBoundary, ends.has(to), `atBoundary after ${to} of ${stream.length}`);
    from = to;
  }
  collected.assertMatches(frames);
  strictEqual(decoder.buffered.length, 0);
}

/** A socket stand-in: hands out `stream` in the given pieces (cut to the room offered), then EOF. */
class FakeSocket implements Readable {
  readonly #pieces: Uint8Array[];

  constructor(stream: Uint8Array, cuts: readonly number[] = []) {
    const points = [0, ...[...cuts].sort((a, b) => a - b), stream.length];
    this.#pieces = points.slice(1).map((to, i) => stream.subarray(points[i], to))
      .filter((piece) => piece.length > 0);
  }

  read(buffer: Uint8Array): Promise<number | null> {
    const piece = this.#pieces.shift();
    if (piece === undefined) return Promise.resolve(null);
    const n = Math.min(buffer.length, piece.length);
    buffer.set(piece.subarray(0, n));
    if (n < piece.length) this.#pieces.unshift(piece.subarray(n));
    return Promise.resolve(n);
  }
}

/** Reads frames from `reader` until it returns null. */
async function readAll(reader: FrameReader, into: Collected): Promise<void> {
  for (let frame = await reader.next(); frame; frame = await reader.next()) into.add(frame);
}

Deno.test("encoders and readers round trip", async (t) => {
  await t.step("wire constants: preamble, greeting, header size", () => {
    assertEquals([...preamble(1)], [0x89, 0x46, 0x53, 0x50, 0x01]);
    assertEquals([...preamble(VERSION)], [0x89, 0x46, 0x53, 0x50, 0x02]);
    strictEqual(VERSION, 2);
    assertEquals(GREETING, utf8.encode("OK@Welcome to the File Server."));
    strictEqual(GREETING.length, 30);
    strictEqual(HEADER_BYTES, 5);
    strictEqual(codec(1).fileFrameBytes, HEADER_BYTES + 25);
    strictEqual(codec(2).fileFrameBytes, HEADER_BYTES + 33);
  });

  await t.step("a header is a type byte and a big-endian u32 length, written in place", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.nat(16),
        (type, length, at) => {
          const target = new Uint8Array(at + HEADER_BYTES + 3).subarray(2);
          writeHeader(target, at, type, length);
          const expected = [type, length >>> 24, (length >>> 16) & 255, (length >>> 8) & 255];
          assertEquals([...target.subarray(at, at + HEADER_BYTES)], [...expected, length & 255]);
          assert(target.subarray(0, at).every((byte) => byte === 0), "nothing written before");
        },
      ),
    );
  });

  await t.step("GET: any name, any offset up to Number.MAX_SAFE_INTEGER", () => {
    const offsets = fc.oneof(fc.maxSafeNat(), fc.constantFrom(0, Number.MAX_SAFE_INTEGER));
    fc.assert(
      fc.property(anyText(300), offsets, (name, offset) => {
        const { type, payload } = unframe(codec(1).encodeGet({ name, offset }));
        strictEqual(type, Frame.Get);
        strictEqual(payload.length, 8 + utf8.encode(name).length);
        assertEquals(codec(1).readGet(payload), { name, offset, end: 0 });
      }),
    );
    assertEquals(
      codec(1).readGet(unframe(codec(1).encodeGet({ name: "déjà vu/naïve 文件 🎉.txt" })).payload),
      {
        name: "déjà vu/naïve 文件 🎉.txt",
        offset: 0,
        end: 0,
      },
    );
  });

  await t.step("GET in version 2: a range, offset to end (0 for the end of the file)", () => {
    fc.assert(
      fc.property(anyText(300), fc.maxSafeNat(), fc.maxSafeNat(), (name, a, b) => {
        const [offset, end] = a <= b ? [a, b] : [b, a];
        const { type, payload } = unframe(codec(2).encodeGet({ name, offset, end }));
        strictEqual(type, Frame.Get);
        strictEqual(payload.length, 16 + utf8.encode(name).length);
        assertEquals(codec(2).readGet(payload), { name, offset, end });
      }),
    );
    throws(() => codec(1).encodeGet({ name: "a", end: 10 }), RangeError);
  });

  await t.step("SETUP: digests offered and a token of any bytes", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 255 }),
        fc.uint8Array({ maxLength: 300 }),
        (digests, token) => {
          const { type, payload } = unframe(encodeSetup({ digests, token }));
          strictEqual(type, Frame.Setup);
          assertEquals(readSetup(payload), { digests, token });
        },
      ),
    );
  });

  await t.step("HELLO: version and server name", () => {
    fc.assert(
      fc.property(anyText(), (server) => {
        for (const [version, digest] of [[1, SHA256], [2, XXH3_128], [2, SHA256]] as const) {
          const { type, payload } = unframe(codec(version).encodeHello({ server, digest }));
          strictEqual(type, Frame.Hello);
          assertEquals(readHello(payload), { version, server, digest });
        }
      }),
    );
  });

  await t.step("LIST: the flag asking for SHA-256s, in version 2 only", () => {
    assertEquals([...codec(2).encodeList({ sha256: true })], [Frame.List, 0, 0, 0, 1, 2]);
    for (const version of [1, 2]) {
      assertEquals(codec(version).encodeList({ sha256: false }), encodeFrame(Frame.List));
    }
    assertEquals(codec(2).readList(new Uint8Array([2])), { sha256: true });
    assertEquals(codec(2).readList(new Uint8Array(0)), { sha256: false });
    assertEquals(codec(1).readList(new Uint8Array([2])), { sha256: false }, "ignored in version 1");
    throws(() => codec(1).encodeList({ sha256: true }), RangeError);
  });

  await t.step(
    "a codec writes only what its version has, and only versions spoken have one",
    () => {
      throws(() => codec(1).encodeHello({ server: "s", digest: XXH3_128 }), RangeError);
      for (const version of [0, VERSION + 1]) {
        throws(() => codec(version), RangeError);
        throwsProtocol(() => readHello(new Uint8Array([version, 1])), BadRequest);
      }
    },
  );

  for (const version of [1, 2]) {
    await t.step(`FILE (version ${version}): size, range, mtime, source; in place the same`, () => {
      fc.assert(
        fc.property(fileHeaders(version), fc.nat(40), (file, at) => {
          const frame = codec(version).encodeFileHeader(file);
          const { type, payload } = unframe(frame);
          strictEqual(type, Frame.File);
          assertEquals(codec(version).readFileHeader(payload), file);
          const bytes = codec(version).fileFrameBytes;
          const target = new Uint8Array(at + bytes + 7).subarray(3);
          codec(version).writeFileFrame(target, at, file);
          assertEquals(target.subarray(at, at + bytes), frame);
        }),
      );
    });
  }

  await t.step("END: the digest, of the length its algorithm gives, returned as a copy", () => {
    for (const algorithm of [SHA256, XXH3_128]) {
      const digests = fc.uint8Array({ minLength: algorithm.bytes, maxLength: algorithm.bytes });
      fc.assert(
        fc.property(digests, (digest) => {
          const { type, payload } = unframe(encodeEnd(digest));
          strictEqual(type, Frame.End);
          const read = readEnd(payload, algorithm);
          assertEquals(read, digest);
          payload.fill(0);
          assertEquals(read, digest, "the digest does not change when the buffer is reused");
        }),
      );
    }
  });

  await t.step("ERROR: code and message; a message over 1 KiB is cut, even mid-character", () => {
    const messages = fc.oneof(
      anyText(600),
      // Cut inside the multi-byte character at 1021..1024 bytes.
      fc.tuple(fc.integer({ min: 1018, max: 1023 }), fc.constantFrom("é", "€", "🎉"))
        .map(([n, char]) => "a".repeat(n) + char.repeat(3)),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), messages, (code, message) => {
        const { type, payload } = unframe(encodeError(code as ErrorCode, message));
        strictEqual(type, Frame.Error);
        const bytes = utf8.encode(message).length;
        strictEqual(payload.length, 2 + Math.min(bytes, 1024));
        const read = readError(payload);
        strictEqual(read.code, code);
        if (bytes <= 1024) return strictEqual(read.message, message);
        // The whole characters that fit, then one U+FFFD if a character was cut.
        let kept = "";
        for (const char of message) {
          if (utf8.encode(kept + char).length > 1024) break;
          kept += char;
        }
        const cut = utf8.encode(kept).length < 1024;
        strictEqual(read.message, cut ? kept + "\uFFFD" : kept);
      }),
    );
    const cut = unframe(encodeError(ErrorCode.Internal, "a".repeat(1023) + "€")).payload;
    strictEqual(readError(cut).message, "a".repeat(1023) + "\uFFFD");
  });

  await t.step("text frames (HELP and STATS answers)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(Frame.HelpReply, Frame.StatsReply),
        anyText(500),
        (kind, text) => {
          const { type, payload } = unframe(encodeText(kind, text));
          strictEqual(type, kind);
          strictEqual(readText(payload), text);
        },
      ),
    );
  });

  await t.step("LIST_PART batches hold every entry, split greedily at frameBytes", () => {
    const entryBytes = (entry: ListEntry) =>
      19 + utf8.encode(entry.name).length + (entry.sha256?.length ?? 0);
    fc.assert(
      fc.property(
        fc.array(listEntries, { maxLength: 60, size: "max" }),
        fc.integer({ min: 1, max: 1500 }),
        (entries, frameBytes) => {
          const frames = encodeListParts(entries, frameBytes).map(unframe);
          assert(frames.every((frame) => frame.type === Frame.ListPart));
          const batches = frames.map((frame) => readListPart(frame.payload));
          assertEquals(batches.flat(), entries);
          strictEqual(frames.length === 0, entries.length === 0, "no frame only for no entries");
          batches.forEach((batch, i) => {
            strictEqual(frames[i].payload.length, batch.reduce((n, e) => n + entryBytes(e), 0));
            assert(batch.length > 0, "no empty LIST_PART");
            // Over frameBytes only for a single entry that is itself bigger.
            assert(frames[i].payload.length <= frameBytes || batch.length === 1);
            // Greedy: the next batch's first entry did not fit in this one.
            const next = batches[i + 1]?.[0];
            if (next) assert(frames[i].payload.length + entryBytes(next) > frameBytes);
          });
        },
      ),
    );
    assertEquals(encodeListParts([]), []);
    const long = { name: "x".repeat(0x10000), size: 0, mtimeMs: 0, cached: false };
    throws(() => encodeListParts([long]), RangeError);
  });

  await t.step("LIST_END: the entry count", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (count) => {
        const { type, payload } = unframe(encodeListEnd(count));
        strictEqual(type, Frame.ListEnd);
        strictEqual(readListEnd(payload), count);
      }),
    );
  });

  await t.step("a leading U+FEFF is part of the text, not dropped as a byte-order mark", () => {
    const name = "\uFEFFnotes.txt";
    strictEqual(codec(1).readGet(unframe(codec(1).encodeGet({ name })).payload).name, name);
    strictEqual(
      readHello(unframe(codec(1).encodeHello({ server: name, digest: SHA256 })).payload).server,
      name,
    );
    strictEqual(readText(unframe(encodeText(Frame.HelpReply, name)).payload), name);
    strictEqual(readError(unframe(encodeError(1, name)).payload).message, name);
    const entry = { name, size: 1, mtimeMs: 0, cached: false };
    assertEquals(readListPart(unframe(encodeListParts([entry])[0]).payload), [entry]);
  });
});

Deno.test("readers refuse malformed payloads with BadRequest", async (t) => {
  const tooBig = (at: number, length: number) => {
    const payload = new Uint8Array(length);
    new DataView(payload.buffer).setBigUint64(at, BigInt(Number.MAX_SAFE_INTEGER) + 1n);
    return payload;
  };
  /** Valid UTF-8 around one invalid sequence: bad bytes, a stray continuation, a cut or overlong
   * sequence, an encoded surrogate, a code point past U+10FFFF. */
  const invalidUtf8 = fc.tuple(
    anyText(10),
    fc.constantFrom([0xff], [0x80], [0xe2, 0x82], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [
      0xf4,
      0x90,
      0x80,
      0x80,
    ]),
    anyText(10),
  ).map(([before, bad, after]) =>
    concat([utf8.encode(before), new Uint8Array(bad), utf8.encode(after)])
  );

  await t.step("GET shorter than its 8-byte offset", () => {
    for (let n = 0; n < 8; n++) {
      throwsProtocol(() => codec(1).readGet(new Uint8Array(n)), BadRequest);
    }
  });

  await t.step("FILE, END and LIST_END of the wrong size", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64, size: "max" }), (payload) => {
        if (payload.length !== 25) {
          throwsProtocol(() => codec(1).readFileHeader(payload), BadRequest);
        }
        if (payload.length !== 32) throwsProtocol(() => readEnd(payload, SHA256), BadRequest);
        if (payload.length !== 8) throwsProtocol(() => readListEnd(payload), BadRequest);
      }),
    );
  });

  await t.step("HELLO without its version byte, ERROR without its 2-byte code", () => {
    throwsProtocol(() => readHello(new Uint8Array(0)), BadRequest);
    throwsProtocol(() => readError(new Uint8Array(0)), BadRequest);
    throwsProtocol(() => readError(new Uint8Array(1)), BadRequest);
  });

  await t.step("FILE whose offset is past its size", () => {
    fc.assert(
      fc.property(fileHeaders(1).filter((h) => h.size < Number.MAX_SAFE_INTEGER), (file) => {
        const payload = unframe(codec(1).encodeFileHeader(file)).payload;
        new DataView(payload.buffer, payload.byteOffset).setBigUint64(8, BigInt(file.size + 1));
        throwsProtocol(() => codec(1).readFileHeader(payload), BadRequest);
      }),
    );
  });

  await t.step("64-bit numbers over Number.MAX_SAFE_INTEGER", () => {
    throwsProtocol(() => codec(1).readGet(tooBig(0, 8)), BadRequest);
    throwsProtocol(() => codec(1).readFileHeader(tooBig(0, 25)), BadRequest);
    throwsProtocol(() => codec(1).readFileHeader(tooBig(8, 25)), BadRequest);
    throwsProtocol(() => readListEnd(tooBig(0, 8)), BadRequest);
    const entry = unframe(encodeListParts([{ name: "a", size: 0, mtimeMs: 0, cached: true }])[0]);
    new DataView(entry.payload.buffer, entry.payload.byteOffset).setBigUint64(
      9,
      0xffffffffffffffffn,
    );
    throwsProtocol(() => readListPart(entry.payload), BadRequest);
  });

  await t.step("invalid UTF-8 in a GET name, a HELLO, a text frame or a list name", () => {
    fc.assert(
      fc.property(invalidUtf8, (bad) => {
        throwsProtocol(() => codec(1).readGet(concat([new Uint8Array(8), bad])), BadRequest);
        throwsProtocol(() => readHello(concat([new Uint8Array([VERSION]), bad])), BadRequest);
        throwsProtocol(() => readText(bad), BadRequest);
        const entry = new Uint8Array(19 + bad.length);
        new DataView(entry.buffer).setUint16(17, bad.length);
        entry.set(bad, 19);
        throwsProtocol(() => readListPart(entry), BadRequest);
      }),
    );
  });

  await t.step("a LIST_PART cut inside an entry", () => {
    fc.assert(
      fc.property(
        fc.array(listEntries, { minLength: 1, maxLength: 5, size: "max" }),
        fc.nat(),
        (list, n) => {
          const payload = unframe(encodeListParts(list)[0]).payload;
          const ends = new Set<number>();
          let at = 0;
          for (const entry of list) {
            ends.add(at += 19 + utf8.encode(entry.name).length + (entry.sha256?.length ?? 0));
          }
          const cut = 1 + n % (payload.length - 1);
          if (ends.has(cut)) return;
          throwsProtocol(() => readListPart(payload.subarray(0, cut)), BadRequest);
        },
      ),
    );
  });
});

Deno.test("FrameDecoder: any split of the bytes", async (t) => {
  await t.step("arbitrary reads, by push() and by space()/advance(), any buffer size", () => {
    fc.assert(
      fc.property(splitStreams, ({ frames, cuts, bufferBytes, feed: how }) => {
        decodeSplit(frames, cuts, how, bufferBytes);
      }),
      streamRuns,
    );
  });

  await t.step("one byte at a time", () => {
    fc.assert(
      fc.property(
        fc.array(sampleFrames, { minLength: 1, maxLength: 8, size: "max" }),
        fc.constantFrom("push" as const, "space" as const),
        (frames, how) => {
          const length = frames.reduce((n, frame) => n + frame.length, 0);
          const everywhere = Array.from({ length: length - 1 }, (_, i) => i + 1);
          decodeSplit(frames, everywhere, how, 8);
        },
      ),
      { numRuns: 50 },
    );
  });

  await t.step("DATA comes out in pieces as it arrives; other types wait for the whole", () => {
    const decoder = new FrameDecoder(clientLike());
    const body = Uint8Array.from({ length: 100 }, (_, i) => i);
    decoder.push(concat([header(Frame.Data, 100), body.subarray(0, 40)]));
    const first = decoder.next()!;
    assertEquals(first, { type: Frame.Data, payload: body.subarray(0, 40), last: false });
    strictEqual(decoder.next(), undefined);
    strictEqual(decoder.atBoundary, false, "mid-DATA is not a boundary, though nothing buffered");
    decoder.push(concat([body.subarray(40), encodeText(Frame.HelpReply, "hi").subarray(0, 6)]));
    assertEquals(decoder.next(), { type: Frame.Data, payload: body.subarray(40), last: true });
    strictEqual(decoder.next(), undefined, "a HELP answer is handed out only when whole");
    decoder.push(utf8.encode("i"));
    assertEquals(decoder.next(), { type: Frame.HelpReply, payload: utf8.encode("hi"), last: true });
    decoder.push(header(Frame.Data, 0));
    assertEquals(decoder.next(), { type: Frame.Data, payload: new Uint8Array(0), last: true });
    strictEqual(decoder.atBoundary, true);
  });

  await t.step("skip() drops a checked preamble; never more than is buffered", () => {
    const decoder = new FrameDecoder({ maxPayload: 4096 });
    decoder.push(concat([preamble(1), encodeFrame(Frame.List)]));
    throws(() => decoder.skip(preamble(1).length + HEADER_BYTES + 1), RangeError);
    assertEquals(decoder.buffered.subarray(0, preamble(1).length), preamble(1));
    decoder.skip(preamble(1).length);
    assertEquals(decoder.next(), { type: Frame.List, payload: new Uint8Array(0), last: true });
    strictEqual(decoder.atBoundary, true);
  });
});

Deno.test("FrameDecoder: limits", async (t) => {
  const unstreamed = fc.integer({ min: 0, max: 255 }).filter((type) => type !== Frame.Data);

  await t.step("a frame over maxPayload is refused as soon as its header is complete", () => {
    fc.assert(
      fc.property(
        fc.nat(10_000),
        unstreamed,
        fc.nat(),
        fc.constantFrom("push" as const, "space" as const),
        (maxPayload, type, over, how) => {
          const length = Math.min(0xffffffff, maxPayload + 1 + over);
          const decoder = new FrameDecoder({ ...clientLike(16), maxPayload });
          const head = header(type, length);
          for (let i = 0; i < HEADER_BYTES - 1; i++) {
            feed(decoder, head.subarray(i, i + 1), how, new Collected());
          }
          decoder.push(head.subarray(HEADER_BYTES - 1));
          throwsProtocol(() => decoder.next(), ErrorCode.TooLarge);
          strictEqual(decoder.buffered.length, HEADER_BYTES, "no payload byte was waited for");
        },
      ),
    );
  });

  await t.step("a frame of exactly maxPayload is accepted", () => {
    fc.assert(
      fc.property(fc.nat(3000), unstreamed, (maxPayload, type) => {
        const payload = new Uint8Array(maxPayload).fill(7);
        const decoder = new FrameDecoder({ maxPayload, bufferBytes: 64 });
        decoder.push(concat([header(type, maxPayload), payload]));
        assertEquals(decoder.next(), { type, payload, last: true });
      }),
    );
  });

  await t.step(
    "a long stream decodes in a buffer sized by its largest frame, not its length",
    () => {
      const initial = 64;
      const read = 37;
      const frames = Array.from(
        { length: 20_000 },
        (_, i) => codec(1).encodeGet({ name: `folder/file-${i}.txt`, offset: i }),
      );
      const largest = Math.max(...frames.map((frame) => frame.length));
      const stream = concat(frames);
      const decoder = new FrameDecoder({ maxPayload: 4096, bufferBytes: initial });
      let decoded = 0;
      for (let at = 0; at < stream.length; at += read) {
        decoder.push(stream.subarray(at, at + read));
        for (let frame = decoder.next(); frame; frame = decoder.next()) {
          strictEqual(codec(1).readGet(frame.payload).offset, decoded++);
        }
        const capacity = decoder.buffered.length + decoder.space().length;
        assert(capacity <= Math.max(initial, 2 * (largest + read)), `${capacity} bytes at ${at}`);
      }
      strictEqual(decoded, frames.length);
    },
  );

  await t.step("a streamed type has no size bound and is never buffered whole", () => {
    const decoder = new FrameDecoder({ ...clientLike(1024), maxPayload: 16 });
    decoder.push(header(Frame.Data, 0xffffffff));
    let received = 0;
    for (let i = 0; i < 100; i++) {
      decoder.push(new Uint8Array(1000));
      const collected = new Collected();
      drain(decoder, collected);
      received += collected.frames[0].pieces[0].length;
      strictEqual(decoder.buffered.length, 0);
      strictEqual(decoder.atBoundary, false);
    }
    strictEqual(received, 100_000);
  });
});

Deno.test("FrameDecoder: garbage yields frames or a ProtocolError, in bounded memory", () => {
  const maxPayload = 256;
  const initial = 16;
  const maxRead = 97;
  const readers: Record<number, (payload: Uint8Array) => unknown> = {
    [Frame.Get]: (payload) => codec(1).readGet(payload),
    [Frame.Hello]: readHello,
    [Frame.File]: (payload) => codec(1).readFileHeader(payload),
    [Frame.End]: (payload) => readEnd(payload, SHA256),
    [Frame.Error]: readError,
    [Frame.ListPart]: readListPart,
    [Frame.ListEnd]: readListEnd,
    [Frame.HelpReply]: readText,
    [Frame.StatsReply]: readText,
  };
  const knownTypes = Object.values(Frame);
  // Random bytes mostly claim huge lengths; plausible headers with random bodies reach the readers.
  const plausible = fc.record({
    type: fc.oneof(fc.constantFrom(...knownTypes), fc.integer({ min: 0, max: 255 })),
    length: fc.nat(maxPayload + 16),
    body: fc.uint8Array({ maxLength: maxPayload + 16, size: "max" }),
  }).map(({ type, length, body }) => concat([header(type, length), body]));
  const garbage = fc.array(fc.oneof(fc.uint8Array({ maxLength: 64, size: "max" }), plausible), {
    maxLength: 20,
    size: "max",
  });
  const reads = fc.array(fc.integer({ min: 1, max: maxRead }), {
    minLength: 1,
    maxLength: 30,
    size: "max",
  });
  let yielded = 0;
  fc.assert(
    fc.property(garbage, reads, fc.boolean(), (pieces, sizes, streamData) => {
      const stream = concat(pieces);
      const decoder = new FrameDecoder({
        maxPayload,
        streamed: streamData ? [Frame.Data] : [],
        bufferBytes: initial,
      });
      let refused = false;
      const next = () => {
        try {
          return decoder.next();
        } catch (error) {
          assert(error instanceof ProtocolError, `decoder threw ${error}`);
          strictEqual(error.code, ErrorCode.TooLarge);
          refused = true;
        }
      };
      for (let at = 0, i = 0; at < stream.length && !refused; i++) {
        decoder.push(stream.subarray(at, at += sizes[i % sizes.length]));
        for (let frame = next(); frame; frame = next()) {
          yielded++;
          try {
            readers[frame.type]?.(frame.payload);
          } catch (error) {
            assert(error instanceof ProtocolError, `reader threw ${error}`);
            strictEqual(error.code, ErrorCode.BadRequest);
          }
        }
        if (refused) break;
        assert(decoder.buffered.length < maxPayload + HEADER_BYTES, "buffered too much");
        const capacity = decoder.buffered.length + decoder.space().length;
        assert(capacity <= Math.max(initial, 2 * (maxPayload + HEADER_BYTES + maxRead)));
      }
    }),
    streamRuns,
  );
  assert(yielded > 0, "the garbage produced some frames, so the readers were tried");
});

Deno.test("FrameReader over a socket", async (t) => {
  await t.step("reads every frame for any split, then null at a clean end", async () => {
    await fc.assert(
      fc.asyncProperty(splitStreams, async ({ frames, cuts, bufferBytes }) => {
        const reader = new FrameReader(
          new FakeSocket(concat(frames), cuts),
          clientLike(bufferBytes),
        );
        const collected = new Collected();
        await readAll(reader, collected);
        collected.assertMatches(frames);
        strictEqual(await reader.next(), null, "the end stays the end");
        strictEqual(await reader.fill(), false);
      }),
      streamRuns,
    );
  });

  await t.step("a stream with no bytes ends cleanly", async () => {
    strictEqual(
      await new FrameReader(new FakeSocket(new Uint8Array(0)), clientLike()).next(),
      null,
    );
  });

  await t.step("an end in the middle of a frame is a BadRequest ProtocolError", async () => {
    await fc.assert(
      fc.asyncProperty(splitStreams, fc.nat(), async ({ frames, cuts }, n) => {
        const stream = concat(frames);
        const ends = boundaries(frames);
        const stop = n % stream.length;
        if (ends.has(stop)) return;
        const whole = frames.slice(0, [...ends].filter((end) => end > 0 && end < stop).length);
        const socket = new FakeSocket(stream.subarray(0, stop), cuts.filter((c) => c < stop));
        const reader = new FrameReader(socket, clientLike(64));
        const collected = new Collected();
        await rejects(
          readAll(reader, collected),
          (error) => error instanceof ProtocolError && error.code === ErrorCode.BadRequest,
        );
        // Every frame before the cut came out whole; of the cut frame, only DATA shows, in part.
        const partial = collected.frames.splice(whole.length);
        collected.assertMatches(whole);
        if (partial.length === 0) return;
        strictEqual(partial.length, 1);
        const { type, payload } = unframe(frames[whole.length]);
        strictEqual(type, Frame.Data);
        const got = concat(partial[0].pieces);
        assertEquals(got, payload.subarray(0, got.length));
        assert(partial[0].lasts.every((last) => !last));
      }),
      streamRuns,
    );
  });
});
