/**
 * The framed protocol on the server's side (docs/PROTOCOL.md): the preamble, HELLO, then requests
 * answered in order until QUIT or the end of the stream. Requests may be pipelined; the next is
 * read only once the previous one is answered, so they wait in the socket, not in our memory.
 */

import { type DigestAlgorithm, digestById, SHA256 } from "../shared/digest.ts";
import { ErrorCode, ProtocolError, WireError } from "../shared/errors.ts";
import type { DecodedFrame } from "../shared/frame_decoder.ts";
import type { FrameReader } from "../shared/frame_reader.ts";
import { encodeFrame, encodeText, Frame, HEADER_BYTES, writeHeader } from "../shared/frames.ts";
import {
  type Codec,
  codec,
  encodeEnd,
  encodeError,
  encodeListEnd,
  encodeListParts,
  type GetRequest,
  MAGIC,
  readSetup,
  SERVER_NAME,
  VERSION,
} from "../shared/protocol.ts";
import { encodeStats } from "../shared/stats.ts";
import type { Connection } from "./connection.ts";
import { asWireError } from "./errors.ts";
import type { Exchange } from "./exchange.ts";
import { type Service, SHUTTING_DOWN, untilShutdown } from "./service.ts";
import type { FileBody, Listing } from "./store/store.ts";

/**
 * What was agreed for one connection: the codec of the protocol version spoken, and the digest
 * answers end with.
 */
interface Terms {
  codec: Codec;
  digest: DigestAlgorithm;
}

/** Largest request frame payload: an 8-byte offset and a name of up to 1 KiB, with room. */
export const MAX_REQUEST_PAYLOAD = 4096;
/** Largest DATA frame the server sends. */
const MAX_DATA_FRAME = 1 << 30;

const HELP_TEXT = [
  "Requests:",
  "  list           every file in the shared folder, with size, modification time and whether cached",
  "  get NAME [AT]  the file NAME (a path relative to the folder), from byte AT (default 0)",
  "  stats          the server's counters",
  "  help           this text",
  "  quit           end the session",
].join("\n");

/** A request decoded from its frame, with the name its exchange is logged under. */
type Asked =
  | { op: "get"; get: GetRequest }
  | { op: "list"; sha256: boolean }
  | { op: "stats" | "help" | "quit" };

/**
 * What a request is answered with: whole frames (STATS, HELP, BYE); a list, sent as it is read
 * until the service shuts down; a part of a file; or a refusal, with the name asked for.
 */
type Answer =
  | { frames: Uint8Array | Promise<Uint8Array> }
  | { list: Listing; service: Service }
  | { file: FileBody; offset: number; end: number }
  | { refused: WireError; name: string };

/**
 * Serves the framed protocol on `connection`, whose first bytes are in `reader`. Bytes that break
 * the protocol, wherever they come, are answered with an ERROR that ends the connection.
 */
export async function serveFramed(
  connection: Connection,
  reader: FrameReader,
  service: Service,
): Promise<void> {
  try {
    const terms = await connection.opening(() => agree(reader));
    if (terms === undefined) return;
    const refusal = await service.access.admit(connection, terms.token);
    if (refusal !== undefined) return await endWith(connection, refusal);
    await connection.send(terms.codec.encodeHello({ server: SERVER_NAME, digest: terms.digest }));
    await serveRequests(connection, reader, service, terms);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    service.violation(connection, error);
    await endWith(connection, error);
  }
}

/** Answers requests in order until QUIT, the end of the stream, or a shutdown. */
async function serveRequests(
  connection: Connection,
  reader: FrameReader,
  service: Service,
  terms: Terms,
): Promise<void> {
  for (;;) {
    if (service.closing()) return await endWith(connection, SHUTTING_DOWN);
    let frame = reader.take() ?? null;
    if (!frame) {
      // Every answer is written before the connection waits: it is idle only then.
      await connection.flush();
      frame = await reader.next();
      if (!frame) return;
    }
    const asked = decode(frame, terms.codec);
    using exchange = connection.begin(asked.op);
    try {
      await respond(connection, exchange, answerTo(asked, service, terms), terms);
    } catch (error) {
      const failure = exchange.failed(error);
      await connection.send(encodeError(failure.code, failure.message));
    }
    if (asked.op === "quit") return;
  }
}

/** The request `frame` carries; throws ProtocolError for one that breaks the protocol. */
function decode(frame: DecodedFrame, codec: Codec): Asked {
  switch (frame.type) {
    case Frame.Get:
      return { op: "get", get: codec.readGet(frame.payload) };
    case Frame.List:
      return { op: "list", sha256: codec.readList(frame.payload).sha256 };
    case Frame.Stats:
      return { op: "stats" };
    case Frame.Help:
      return { op: "help" };
    case Frame.Quit:
      return { op: "quit" };
    default: {
      const type = frame.type.toString(16).padStart(2, "0");
      throw new ProtocolError(ErrorCode.BadRequest, `unknown request type 0x${type}`);
    }
  }
}

/** What to answer `asked` with. */
function answerTo(asked: Asked, service: Service, terms: Terms): Answer {
  switch (asked.op) {
    case "get":
      return openPart(asked.get, service, terms);
    case "list":
      return { list: service.store.list(asked.sha256), service };
    case "stats":
      return { frames: service.stats().then(encodeStats) };
    case "help":
      return { frames: encodeText(Frame.HelpReply, HELP_TEXT) };
    case "quit":
      return { frames: encodeFrame(Frame.Bye) };
  }
}

/** The part of a file a GET asks for, opened to send; or why it cannot be sent. */
function openPart(
  { name, offset, end: asked }: GetRequest,
  service: Service,
  terms: Terms,
): Answer {
  let file: FileBody | undefined;
  try {
    file = service.store.open(name, terms.digest);
    const end = asked === 0 ? file.stamp.size : asked;
    if (offset > end || end > file.stamp.size) {
      throw new WireError(
        ErrorCode.BadRequest,
        `bytes ${offset} to ${end} are past the end of "${file.name}" (${file.stamp.size} bytes)`,
      );
    }
    return { file, offset, end };
  } catch (error) {
    file?.[Symbol.dispose]();
    return { refused: asWireError(error), name };
  }
}

/**
 * Sends `answer`, the one way the framed dialect writes one, and ends `exchange` once it is sent:
 * a file as FILE, DATA frames and END; a list as LIST_PART frames and LIST_END; a refusal as
 * ERROR. A failure part-way is the caller's to end the exchange with.
 */
function respond(
  connection: Connection,
  exchange: Exchange,
  answer: Answer,
  terms: Terms,
): Promise<void> {
  if ("file" in answer) return sendFile(connection, exchange, answer, terms);
  if ("list" in answer) return sendList(connection, exchange, answer);
  return sendWhole(connection, exchange, answer);
}

/** FILE, DATA frames of at most MAX_DATA_FRAME bytes each, then END with the file's digest. */
async function sendFile(
  connection: Connection,
  exchange: Exchange,
  { file, offset, end }: { file: FileBody; offset: number; end: number },
  terms: Terms,
): Promise<void> {
  using _file = file;
  const frameBytes = terms.codec.fileFrameBytes;
  const head = await connection.reserve(frameBytes);
  const { size, mtimeMs } = file.stamp;
  terms.codec.writeFileFrame(head, 0, { size, offset, end, mtimeMs, source: file.source });
  connection.sendReserved(frameBytes);
  await exchange.send(file, offset, end, async (chunk) => {
    for (let at = 0; at < chunk.length; at += MAX_DATA_FRAME) {
      const piece = chunk.subarray(at, at + MAX_DATA_FRAME);
      const header = await connection.reserve(HEADER_BYTES);
      writeHeader(header, 0, Frame.Data, piece.length);
      connection.sendReserved(HEADER_BYTES);
      await connection.send(piece);
    }
  });
  await connection.send(encodeEnd(await file.digest()));
  exchange.answered();
}

/**
 * The list, each batch as it is read: LIST_PART frames, then LIST_END with the count; or, cut
 * short (a failure, the server's shutdown), ERROR after the entries sent. Logged with how many
 * entries were sent, and how many folders were too deep to walk into.
 */
async function sendList(
  connection: Connection,
  exchange: Exchange,
  { list, service }: { list: Listing; service: Service },
): Promise<void> {
  let entries = 0;
  const sent = () => ({ entries, deeper: list.deeper || undefined });
  try {
    for await (const batch of untilShutdown(list, service)) {
      for (const part of encodeListParts(batch)) await connection.send(part);
      // Each batch leaves as it is read, not once the gather buffer is full.
      await connection.flush();
      entries += batch.length;
    }
    await connection.send(encodeListEnd(entries));
  } catch (error) {
    const failure = exchange.failed(error, sent());
    return await connection.send(encodeError(failure.code, failure.message));
  }
  exchange.answered(sent());
}

/** An answer of whole frames (STATS, HELP, BYE), or a refusal's ERROR. */
async function sendWhole(
  connection: Connection,
  exchange: Exchange,
  answer: { frames: Uint8Array | Promise<Uint8Array> } | { refused: WireError; name: string },
): Promise<void> {
  if ("frames" in answer) {
    await connection.send(await answer.frames);
    return exchange.answered();
  }
  const { refused, name } = answer;
  await connection.send(encodeError(refused.code, refused.message));
  exchange.refused(refused, { name });
}

/**
 * Reads the preamble (and, from version 2 on, SETUP) and settles the terms: the version is the
 * newest both sides speak, the digest the client's first choice this server knows. With them, the
 * access token SETUP carries (undefined in version 1, which cannot carry one). Undefined when the
 * client went away first; throws ProtocolError for terms that cannot be met.
 */
async function agree(reader: FrameReader): Promise<Terms & { token?: Uint8Array } | undefined> {
  while (reader.buffered.length < MAGIC.length + 1) {
    if (!await reader.fill()) return undefined;
  }
  const preamble = reader.buffered;
  if (!MAGIC.every((byte, i) => preamble[i] === byte)) {
    throw new ProtocolError(ErrorCode.BadRequest, "bad preamble");
  }
  const asked = preamble[MAGIC.length];
  if (asked === 0) throw new ProtocolError(ErrorCode.Unsupported, "there is no protocol version 0");
  reader.skip(MAGIC.length + 1);
  const version = Math.min(asked, VERSION);
  if (version === 1) return { codec: codec(version), digest: SHA256 };
  const frame = await reader.next();
  if (frame?.type !== Frame.Setup) {
    throw new ProtocolError(ErrorCode.BadRequest, `a version ${version} client sends SETUP first`);
  }
  const setup = readSetup(frame.payload);
  const digest = setup.digests.map(digestById).find((known) => known !== undefined);
  if (digest === undefined) {
    throw new ProtocolError(ErrorCode.Unsupported, "none of the digests offered is known here");
  }
  return { codec: codec(version), digest, token: setup.token };
}

/** Sends `error` as the connection's last answer. */
async function endWith(connection: Connection, error: WireError): Promise<void> {
  await connection.send(encodeError(error.code, error.message));
  await connection.flush();
}
