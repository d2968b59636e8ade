/**
 * The server against hostile bytes: seeded random streams and mutated valid frame sequences, sent
 * over raw sockets in random splits. Whatever arrives, the server answers within a deadline with
 * a well-formed answer (an error, or correct bytes) or closes, never crashes, and serves the next
 * honest client correctly. Set FUZZ_SEED to replay a failing run.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import { FileClient } from "../lib/client/client.ts";
import { isDisconnect } from "../lib/server/errors.ts";
import { MAX_REQUEST_PAYLOAD } from "../lib/server/framed.ts";
import { ErrorCode } from "../lib/shared/errors.ts";
import { FrameDecoder } from "../lib/shared/frame_decoder.ts";
import { encodeFrame, Frame, readText } from "../lib/shared/frames.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import {
  codec,
  MAGIC,
  preamble,
  readError,
  readListEnd,
  readListPart,
} from "../lib/shared/protocol.ts";
import { sha256, startServer, tempFolder, text, until, xxh3 } from "./harness.ts";
import { concat } from "../lib/shared/io.ts";
import { randomBytes } from "../testing/support.ts";

const encoder = new TextEncoder();
const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

/** The shared files: tiny, empty, cached, and one larger than the cache (streamed from disk). */
const FILES: Record<string, Uint8Array> = {
  "a.txt": encoder.encode("hello, world\n"),
  "empty.txt": new Uint8Array(0),
  "dir/b.bin": randomBytes(64 * 1024, 7),
  "c.bin": randomBytes(200 * 1024, 8),
};
const NAMES = Object.keys(FILES).sort();
const CACHE_BYTES = 128 * 1024;
/** How long the server may take to finish with a peer that has sent everything. */
const ANSWER_DEADLINE_MS = 5_000;
/** Wall-clock budget for generating and running cases (checks afterwards come on top). */
const TIME_BUDGET_MS = 9_000;

const LEGACY_ERROR = "ERR@Unknown request; send list, help or file@NAME.";
const ERROR_CODES = new Set<number>(Object.values(ErrorCode));

// ---------------------------------------------------------------------------------------------
// Generators

const names = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...Object.keys(FILES)) },
  fc.constantFrom(
    "missing.txt",
    "dir",
    "dir/",
    "",
    "../a.txt",
    "dir/../a.txt",
    "./a.txt",
    "/etc/passwd",
    "a.txt\0",
    "a\0.txt",
    ".hidden",
    "dir//b.bin",
    "dir\\b.bin",
    "a".repeat(1024),
    "a".repeat(1025),
    "é".repeat(600),
    "a".repeat(MAX_REQUEST_PAYLOAD - 8),
    "a".repeat(MAX_REQUEST_PAYLOAD),
  ),
  fc.array(fc.constantFrom("..", ".", "", "dir", "a.txt", "b.bin", "\0", "\n", "x"), {
    maxLength: 6,
  }).map((parts) => parts.join("/")),
  fc.string({ unit: "binary", maxLength: 40 }),
);

/** GET offsets, including ones past any file and past what a safe integer holds. */
const offsets = fc.oneof(
  { weight: 4, arbitrary: fc.constant(0n) },
  fc.nat(210 * 1024).map(BigInt),
  fc.constantFrom(BigInt(Number.MAX_SAFE_INTEGER), 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n),
);

/** A GET frame as a peer may send it: any 64-bit offset (encodeGet refuses unsafe ones). */
function rawGet(name: string, offset: bigint): Uint8Array {
  const nameBytes = encoder.encode(name);
  const payload = new Uint8Array(8 + nameBytes.length);
  new DataView(payload.buffer).setBigUint64(0, offset);
  payload.set(nameBytes, 8);
  return encodeFrame(Frame.Get, payload);
}

const requests = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(names, offsets).map(([name, at]) => rawGet(name, at)) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(Frame.List, Frame.Stats, Frame.Help, Frame.Quit).map((type) =>
      encodeFrame(type)
    ),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 64 }))
      .map(([type, payload]) => encodeFrame(type as typeof Frame.List, payload)),
  },
);

/** `arbitrary` about once in `every` draws, null otherwise. */
function sometimes<T>(arbitrary: fc.Arbitrary<T>, every: number): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: every - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });
}

/** A new type byte and/or length for a frame's header. */
const headerChanges = fc.record({
  type: fc.option(fc.integer({ min: 0, max: 255 })),
  length: fc.option(
    fc.oneof(
      fc.nat(MAX_REQUEST_PAYLOAD + 16),
      fc.constantFrom(MAX_REQUEST_PAYLOAD + 1, 0x7fffffff, 0xffffffff),
    ),
  ),
});

const framedSequences = fc.record({
  preamble: fc.oneof(
    { weight: 8, arbitrary: fc.constant(preamble(1)) },
    { weight: 1, arbitrary: fc.constant(new Uint8Array([...MAGIC, 2])) },
    { weight: 1, arbitrary: fc.constant(MAGIC.subarray(0, 1)) },
  ),
  frames: fc.array(fc.tuple(requests, sometimes(headerChanges, 8)), { minLength: 1, maxLength: 8 }),
}).map(({ preamble, frames }) =>
  concat([
    preamble,
    ...frames.map(([frame, change]) => {
      const copy = frame.slice();
      if (change?.type != null) copy[0] = change.type;
      if (change?.length != null) new DataView(copy.buffer).setUint32(1, change.length);
      return copy;
    }),
  ])
);

const legacyRequests = fc.tuple(
  fc.oneof(
    fc.constantFrom("list", "help", "lis", "file@", "LIST"),
    names.map((name) => `file@${name}`),
  ),
  fc.constantFrom("", "\n", "\r\n", "\n\n", " ", "list"),
).map(([request, tail]) => encoder.encode(request + tail));

const rawStreams = fc.tuple(
  fc.constantFrom(
    new Uint8Array(0),
    preamble(1),
    MAGIC,
    MAGIC.subarray(0, 1),
    encoder.encode("file@"),
    encoder.encode("list"),
    encoder.encode("help"),
  ),
  fc.noBias(fc.integer({ min: 1, max: 3000 })).chain((length) =>
    fc.uint8Array({ minLength: length, maxLength: length })
  ),
).map(([prefix, rest]) => concat([prefix, rest]));

/** A relative position in a stream in [0, 1), drawn evenly (not biased to the start). */
const position = fc.noBias(fc.integer({ min: 0, max: 9999 })).map((n) => n / 10_000);

/** Byte-level damage: flips, cuts, insertions, deletions at relative positions. */
const damage = fc.array(
  fc.oneof(
    fc.record({
      kind: fc.constant("flip" as const),
      at: position,
      value: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({
      kind: fc.constant("truncate" as const),
      at: position,
    }),
    fc.record({
      kind: fc.constant("insert" as const),
      at: position,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
    fc.record({
      kind: fc.constant("delete" as const),
      at: position,
      count: fc.integer({ min: 1, max: 16 }),
    }),
  ),
  { minLength: 1, maxLength: 3 },
);
const mutations = sometimes(damage, 2).map((changes) => changes ?? []);

type Mutation = typeof damage extends fc.Arbitrary<(infer M)[]> ? M : never;

function mutate(bytes: Uint8Array, changes: Mutation[]): Uint8Array {
  let out = bytes;
  for (const change of changes) {
    const at = Math.floor(change.at * out.length);
    if (change.kind === "flip" && out.length > 0) {
      out = out.slice();
      out[Math.min(at, out.length - 1)] = change.value;
    } else if (change.kind === "truncate") out = out.subarray(0, at);
    else if (change.kind === "insert") {
      out = concat([out.subarray(0, at), change.bytes, out.subarray(at)]);
    } else if (change.kind === "delete") {
      out = concat([out.subarray(0, at), out.subarray(at + change.count)]);
    }
  }
  return out;
}

/** One hostile peer: the bytes it sends and where the stream is cut into separate writes. */
const cases = fc.record({
  bytes: fc.oneof(
    { weight: 2, arbitrary: fc.tuple(framedSequences, mutations).map(([b, m]) => mutate(b, m)) },
    { weight: 1, arbitrary: fc.tuple(legacyRequests, mutations).map(([b, m]) => mutate(b, m)) },
    { weight: 1, arbitrary: rawStreams },
  ),
  cuts: fc.array(position, { maxLength: 5 }),
});

type Case = typeof cases extends fc.Arbitrary<infer C> ? C : never;

// ---------------------------------------------------------------------------------------------
// Driving one peer and judging the answer

/** What the server sent back, and whether it ended with a reset rather than a clean close. */
interface Exchange {
  answer: Uint8Array;
  reset: boolean;
}

/** Sends `bytes` in pieces (reading all the while), half-closes, and reads until the server closes. */
async function exchange(port: number, { bytes, cuts }: Case): Promise<Exchange> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const parts: Uint8Array[] = [];
  let reset = false;
  const reading = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        parts.push(buffer.slice(0, n));
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
      reset = true;
    }
  })();
  const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
  try {
    let from = 0;
    for (const to of [...points, bytes.length]) {
      for (let at = from; at < to;) at += await conn.write(bytes.subarray(at, to));
      from = Math.max(from, to);
    }
    await conn.closeWrite();
  } catch (error) {
    if (!isDisconnect(error)) throw error;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new Error(`no close within ${ANSWER_DEADLINE_MS} ms after sending ${describe(bytes)}`),
      );
    }, ANSWER_DEADLINE_MS);
  });
  try {
    await Promise.race([reading, late]);
  } finally {
    clearTimeout(timer);
    conn.close();
  }
  return { answer: concat(parts), reset };
}

function describe(bytes: Uint8Array): string {
  const head = hex(bytes.subarray(0, 48));
  return `${bytes.length} bytes: ${head}${bytes.length > 48 ? "…" : ""}`;
}

/** The known files by the hex of their SHA-256 digest. */
type Digests = Map<string, Uint8Array>;

/**
 * Problems with a framed answer (after the greeting): every frame must be an answer type, decode
 * correctly, and any file body must be byte-exact with its digest. A reset may cut the last frame.
 */
function checkFramed(sent: Uint8Array, answer: Uint8Array, reset: boolean, digests: Digests) {
  const problems: string[] = [];
  const decoder = new FrameDecoder({ maxPayload: 1 << 24, streamed: [Frame.Data] });
  decoder.push(answer);
  let state: "start" | "ready" | "body" | "list" | "closed" = "start";
  let file: { size: number; offset: number; parts: Uint8Array[] } | undefined;
  let listed: string[] = [];
  const listPart = (type: number, payload: Uint8Array) => {
    if (type === Frame.ListPart) listed.push(...readListPart(payload).map((entry) => entry.name));
    else if (type === Frame.ListEnd) {
      if (readListEnd(payload) !== listed.length) problems.push("a list answer lost entries");
      if (listed.sort().join("\n") !== NAMES.join("\n")) problems.push(`wrong list: ${listed}`);
      state = "ready";
    } else problems.push(`type ${type} inside a list answer`);
  };
  for (let frame = decoder.next(); frame; frame = decoder.next()) {
    const { type, payload } = frame;
    try {
      if (state === "closed") problems.push(`a frame of type ${type} after the last answer`);
      else if (state === "start") {
        if (type === Frame.Hello) state = "ready";
        else if (type === Frame.Error) {
          checkError(payload, problems);
          state = "closed";
        } else problems.push(`the first frame is of type ${type}, not HELLO or ERROR`);
      } else if (state === "body") {
        if (type === Frame.Data) file!.parts.push(payload.slice());
        else if (type === Frame.End) {
          const known = digests.get(hex(payload));
          const body = concat(file!.parts);
          if (!known) problems.push("a file answer ends with an unknown digest");
          else if (known.length !== file!.size) problems.push("a file's size and digest disagree");
          else if (!equal(body, known.subarray(file!.offset))) {
            problems.push(`wrong bytes for a file of ${file!.size} bytes from ${file!.offset}`);
          }
          state = "ready";
        } else problems.push(`type ${type} inside a file body (the files do not change here)`);
      } else if (state === "list") {
        listPart(type, payload);
      } else if (type === Frame.File) {
        const header = codec(1).readFileHeader(payload);
        file = { ...header, parts: [] };
        state = "body";
      } else if (type === Frame.ListPart || type === Frame.ListEnd) {
        listed = [];
        state = "list";
        listPart(type, payload);
      } else if (type === Frame.StatsReply) JSON.parse(readText(payload));
      else if (type === Frame.HelpReply) readText(payload);
      else if (type === Frame.Bye) state = "closed";
      else if (type === Frame.Error) checkError(payload, problems);
      else problems.push(`an answer of unknown type ${type}`);
    } catch (error) {
      problems.push(`a frame of type ${type} does not decode: ${error}`);
    }
  }
  if (!reset && !decoder.atBoundary) problems.push("the answer ends in the middle of a frame");
  if (!reset && state === "start" && greetingDue(sent)) {
    problems.push("a whole preamble got neither HELLO nor an error");
  }
  if (!reset && (state === "body" || state === "list")) problems.push("an answer was cut short");
  return problems;
}

/**
 * Whether `sent` calls for HELLO or an error: a whole preamble does, except that from version 2 on
 * HELLO waits for the frame that follows it (SETUP), so a stream that ends before that frame is
 * whole rightly gets nothing.
 */
function greetingDue(sent: Uint8Array): boolean {
  const at = MAGIC.length + 1;
  if (sent.length < at) return false;
  const magic = MAGIC.every((byte, i) => sent[i] === byte);
  if (!magic || sent[MAGIC.length] < 2) return true;
  if (sent.length < at + 5) return false;
  const length = new DataView(sent.buffer, sent.byteOffset + at + 1, 4).getUint32(0);
  return sent.length >= at + 5 + length;
}

function checkError(payload: Uint8Array, problems: string[]): void {
  const { code, message } = readError(payload);
  if (!ERROR_CODES.has(code)) problems.push(`unknown error code ${code}`);
  if (message.length === 0) problems.push(`error ${code} has no message`);
}

/** Problems with an answer in the original dialect (after the greeting). */
function checkLegacy(answer: Uint8Array, reset: boolean, files: Uint8Array[]): string[] {
  const said = text(answer);
  const prefixOf = (whole: string) => reset ? whole.startsWith(said) : whole === said;
  if (said === "" || prefixOf(LEGACY_ERROR) || prefixOf("FNF")) return [];
  if (said.startsWith("OK@[HELP]") || said.startsWith("OK@\n[FILES INSIDE THE SERVER DIRECTORY]")) {
    return [];
  }
  if (said.startsWith("OK@")) {
    const body = answer.subarray(3);
    const match = files.some((file) =>
      reset ? equal(body, file.subarray(0, body.length)) : equal(body, file)
    );
    return match ? [] : [`OK@ then ${body.length} bytes that are no shared file`];
  }
  return reset && "OK@".startsWith(said)
    ? []
    : [`an unexpected answer: ${JSON.stringify(said.slice(0, 80))}`];
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

// ---------------------------------------------------------------------------------------------

Deno.test("fuzz: hostile bytes get errors or a close, and honest clients are still served", async () => {
  await using data = await tempFolder(FILES);
  await using server = await startServer(data.path, { cacheBytes: CACHE_BYTES });
  const port = server.addr.port;
  const digests: Digests = new Map();
  for (const bytes of Object.values(FILES)) digests.set(hex(await sha256(bytes)), bytes);
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  let peers = 0;
  let batches = 0;

  const property = fc.asyncProperty(
    fc.array(cases, { minLength: 1, maxLength: 8 }),
    async (batch) => {
      await Promise.all(batch.map(async (peer) => {
        const { answer, reset } = await exchange(port, peer);
        const greeting = answer.subarray(0, GREETING.length);
        assertEquals(greeting, GREETING, `no greeting for ${describe(peer.bytes)}`);
        const rest = answer.subarray(GREETING.length);
        const problems = peer.bytes[0] === MAGIC[0]
          ? checkFramed(peer.bytes, rest, reset, digests)
          : checkLegacy(rest, reset, Object.values(FILES));
        assertEquals(problems, [], `after sending ${describe(peer.bytes)}`);
        peers++;
      }));
      const client = await FileClient.connect("127.0.0.1", port);
      try {
        for (const [name, bytes] of Object.entries(FILES)) {
          const parts: Uint8Array[] = [];
          await client.send(client.encodeGet(name));
          const digest = await client.readFile({
            header() {},
            data: (chunk) => void parts.push(chunk.slice()),
          });
          assert(equal(concat(parts), bytes), `an honest client got wrong bytes for ${name}`);
          assertEquals(digest, await xxh3(bytes), `an honest client got a wrong digest`);
        }
      } finally {
        client.close();
      }
      batches++;
    },
  );
  try {
    await fc.assert(property, { seed, numRuns: 2000, interruptAfterTimeLimit: TIME_BUDGET_MS });
  } catch (error) {
    console.error(`fuzz failed; replay with FUZZ_SEED=${seed}`);
    throw error;
  }
  console.log(`fuzz: seed ${seed}, ${batches} batches, ${peers} hostile peers`);
  assert(batches >= 10, `only ${batches} batches ran in the time budget`);

  await until(async () => (await server.stats()).connections === 0, "every connection to close");
  const stats = await server.stats();
  assert(stats.cacheBytes <= stats.cacheCapacity, `cache over its cap: ${stats.cacheBytes}`);
  assertEquals(stats.cacheReserved, 0);
  const failures = server.log.lines.filter((line) => / (connection|accept)-error /.test(line));
  assertEquals(failures, [], "the server hit unexpected errors");
});
