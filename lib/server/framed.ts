/**
 * The framed protocol on the server's side (docs/PROTOCOL.md): the preamble, HELLO, then requests
 * answered in order until QUIT or the end of the stream. Requests may be pipelined; the next is
 * read only once the previous one is answered, so they wait in the socket, not in our memory.
 */

import { type DigestAlgorithm, digestById, SHA256 } from "../shared/digest.ts";
import { ErrorCode, ProtocolError, WireError } from "../shared/errors.ts";
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
import type { Service } from "./service.ts";
import type { FileBody } from "./store/store.ts";

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

/** Serves the framed protocol on `connection`, whose first bytes are in `reader`. */
export async function serveFramed(
  connection: Connection,
  reader: FrameReader,
  service: Service,
): Promise<void> {
  let agreed;
  try {
    agreed = await agree(connection, reader);
  } catch (error) {
    if (error instanceof ProtocolError) return fatal(connection, service, error);
    throw error;
  }
  if (agreed === undefined) return;
  const { token, ...terms } = agreed;
  const refusal = await service.access.admit(connection, token);
  if (refusal !== undefined) return endWith(connection, refusal);
  await connection.send(terms.codec.encodeHello({ server: SERVER_NAME, digest: terms.digest }));
  for (;;) {
    if (service.closing()) {
      return endWith(
        connection,
        new WireError(ErrorCode.ShuttingDown, "the server is shutting down"),
      );
    }
    let frame;
    try {
      frame = reader.take();
      if (!frame) {
        await connection.flush();
        // Only now, with every answer written, is the connection idle: a shutdown may close it.
        connection.busy = false;
        frame = await reader.next();
        if (!frame) return;
      }
    } catch (error) {
      if (error instanceof ProtocolError) return fatal(connection, service, error);
      throw error;
    }
    connection.busy = true;
    connection.requestDone(reader.buffered.length > 0);
    switch (frame.type) {
      case Frame.Get: {
        let request;
        try {
          request = terms.codec.readGet(frame.payload);
        } catch (error) {
          return fatal(connection, service, error as ProtocolError);
        }
        await answerGet(connection, service, request, terms);
        break;
      }
      case Frame.List: {
        const record = service.begin(connection, "list");
        const { sha256 } = terms.codec.readList(frame.payload);
        let count = 0;
        for await (const batch of service.store.list(sha256)) {
          for (const part of encodeListParts(batch)) await connection.send(part);
          count += batch.length;
        }
        await connection.send(encodeListEnd(count));
        record.done({ entries: count });
        break;
      }
      case Frame.Stats: {
        const record = service.begin(connection, "stats");
        await connection.send(encodeStats(service.stats()));
        record.done();
        break;
      }
      case Frame.Help: {
        const record = service.begin(connection, "help");
        await connection.send(encodeText(Frame.HelpReply, HELP_TEXT));
        record.done();
        break;
      }
      case Frame.Quit: {
        const record = service.begin(connection, "quit");
        await connection.send(encodeFrame(Frame.Bye));
        await connection.flush();
        record.done();
        return;
      }
      default: {
        const message = `unknown request type 0x${frame.type.toString(16).padStart(2, "0")}`;
        return fatal(connection, service, new ProtocolError(ErrorCode.BadRequest, message));
      }
    }
  }
}

/**
 * Reads the preamble (and, from version 2 on, SETUP) and settles the terms: the version is the
 * newest both sides speak, the digest the client's first choice this server knows. With them, the
 * access token SETUP carries (undefined in version 1, which cannot carry one). Undefined when the
 * client went away first; throws ProtocolError for terms that cannot be met.
 */
async function agree(
  connection: Connection,
  reader: FrameReader,
): Promise<Terms & { token?: Uint8Array } | undefined> {
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
  if (version === 1) {
    connection.requestDone(reader.buffered.length > 0);
    return { codec: codec(version), digest: SHA256 };
  }
  const frame = await reader.next();
  connection.requestDone(reader.buffered.length > 0);
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

/** Sends an error for a protocol violation; the connection ends after it. */
function fatal(connection: Connection, service: Service, error: WireError): Promise<void> {
  service.violation(connection, error);
  return endWith(connection, error);
}

/** Sends `error` as the connection's last answer. */
async function endWith(connection: Connection, error: WireError): Promise<void> {
  await connection.send(encodeError(error.code, error.message));
  await connection.flush();
}

/** FILE, DATA…, END; or ERROR when the file cannot be served or fails part-way. */
async function answerGet(
  connection: Connection,
  service: Service,
  { name, offset, end: asked }: GetRequest,
  terms: Terms,
): Promise<void> {
  const record = service.begin(connection, "get");
  let opened: FileBody | undefined;
  let end;
  try {
    opened = service.store.open(name, terms.digest);
    end = asked === 0 ? opened.stamp.size : asked;
    if (offset > end || end > opened.stamp.size) {
      throw new WireError(
        ErrorCode.BadRequest,
        `bytes ${offset} to ${end} are past the end of "${opened.name}" (${opened.stamp.size} bytes)`,
      );
    }
  } catch (error) {
    opened?.[Symbol.dispose]();
    const failure = record.refused(error, { name });
    await connection.send(encodeError(failure.code, failure.message));
    return;
  }
  using body = opened;
  const frameBytes = terms.codec.fileFrameBytes;
  const head = await connection.reserve(frameBytes);
  const { size, mtimeMs } = body.stamp;
  terms.codec.writeFileFrame(head, 0, { size, offset, end, mtimeMs, source: body.source });
  connection.sendReserved(frameBytes);
  try {
    await record.send(body, offset, end, async (chunk) => {
      for (let at = 0; at < chunk.length; at += MAX_DATA_FRAME) {
        const piece = chunk.subarray(at, at + MAX_DATA_FRAME);
        const header = await connection.reserve(HEADER_BYTES);
        writeHeader(header, 0, Frame.Data, piece.length);
        connection.sendReserved(HEADER_BYTES);
        await connection.send(piece);
      }
    });
    await connection.send(encodeEnd(await body.digest()));
  } catch (error) {
    const failure = record.failed(error);
    if (failure === undefined) throw error;
    await connection.send(encodeError(failure.code, failure.message));
    return;
  }
  record.done();
}
