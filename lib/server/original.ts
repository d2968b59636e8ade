/**
 * The original text dialect, kept so clients written for the original server work unchanged:
 * after the greeting the client sends `list`, `help` or `file@NAME` and the server answers with
 * `OK@` and text, `OK@` and the file's bytes, or `FNF`, then closes the connection.
 */

import { DEFAULT_PORT } from "../shared/defaults.ts";
import { XXH3_128 } from "../shared/digest.ts";
import { ErrorCode, ProtocolError, type WireError } from "../shared/errors.ts";
import type { FrameReader } from "../shared/frame_reader.ts";
import type { Connection } from "./connection.ts";
import { asWireError } from "./errors.ts";
import type { Exchange } from "./exchange.ts";
import { type Service, untilShutdown } from "./service.ts";
import type { FileBody } from "./store/store.ts";

/**
 * Longest original-dialect request accepted: `file@` and a name, with room for a line ending. The
 * server reads a connection's first bytes into a buffer one byte larger, so a longer request is
 * seen as too long rather than cut short.
 */
export const MAX_ORIGINAL_REQUEST = 2048;

/** An original-dialect request, or what is missing to make one. */
type OriginalRequest =
  | { kind: "list" }
  | { kind: "help" }
  | { kind: "file"; name: string }
  | { kind: "partial" }
  | { kind: "bad" };

const COMMANDS = ["list", "help", "file@"];

// A leading U+FEFF is a character of the request, not a byte-order mark to drop.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Reads an original-dialect request from the bytes received so far. The original client sends its
 * whole request in one write with no terminator, so `file@NAME` is whatever arrived with it; one
 * trailing newline (from a person typing) is allowed. Only the start of a command with no line
 * ending yet is worth waiting for.
 */
function parseOriginal(bytes: Uint8Array): OriginalRequest {
  const received = decoder.decode(bytes);
  const text = received.replace(/\r?\n$/, "");
  if (text === "list" || text === "help") return { kind: text };
  if (text.startsWith("file@") && text.length > 5) return { kind: "file", name: text.slice(5) };
  const ended = /[\r\n]/.test(received);
  if (!ended && COMMANDS.some((command) => command.startsWith(text))) return { kind: "partial" };
  return { kind: "bad" };
}

/** The original server's help text, word for word. */
const HELP = "[HELP]list: List all the files from the server (on cache and on a server local " +
  "directory).\nhelp: List all the commands.\nfile: [HOST](default is localhost) [PORT](default " +
  `is ${DEFAULT_PORT}) file [FILENAME] (to request a file from the server).\n`;

const encoder = new TextEncoder();

/**
 * The pause between the status `OK@` and a file's first byte, so that the original client, which
 * reads its status with one `recv(1024)`, finds `OK@` alone: twice the time the peer took to
 * answer the greeting (how fast it reacts on this machine and network now), at least 10 ms and at
 * most 100 ms. See docs/PROTOCOL.md for how this was chosen and what it costs.
 */
function statusGapMs(connection: Connection): number {
  return Math.min(100, Math.max(10, 2 * (connection.reactionMs ?? 0)));
}

/**
 * What an original-dialect request is answered with: a text (help, or the list, sent as it is
 * read); a file; or a refusal (`FNF`), with the name asked for.
 */
type Answer =
  | { text: Iterable<string> | AsyncIterable<string> }
  | { file: FileBody }
  | { refused: WireError; name: string };

/** Answers one original-dialect request on `connection`, whose first bytes are in `reader`. */
export async function serveOriginal(
  connection: Connection,
  reader: FrameReader,
  service: Service,
): Promise<void> {
  let request = parseOriginal(reader.buffered);
  while (request.kind === "partial") {
    if (!await reader.fill()) return;
    request = parseOriginal(reader.buffered);
  }
  if (request.kind === "bad" || reader.buffered.length > MAX_ORIGINAL_REQUEST) {
    service.violation(
      connection,
      new ProtocolError(ErrorCode.BadRequest, "not list, help or file@NAME"),
    );
    return await sendLast(connection, "ERR@Unknown request; send list, help or file@NAME.");
  }
  using exchange = connection.begin(`original-${request.kind}`);
  try {
    await respond(connection, exchange, answerTo(request, service));
  } catch (error) {
    // A failure (the file changed, a read failed) ends the answer, and the connection with it:
    // this dialect has no way to say more.
    exchange.failed(error);
  }
}

/**
 * Answers an original-dialect request on a server that takes requests only with an access token,
 * which this dialect cannot carry: with its own `ERR@` text, whatever the request.
 */
export function refuseOriginal(connection: Connection): Promise<void> {
  return sendLast(
    connection,
    "ERR@This server needs an access token, which this client cannot send; use a current client.",
  );
}

/** Sends `text`, the connection's last answer. */
async function sendLast(connection: Connection, text: string): Promise<void> {
  await connection.send(encoder.encode(text));
  await connection.flush();
}

/** What to answer `request` with. */
function answerTo(
  request: Exclude<OriginalRequest, { kind: "partial" | "bad" }>,
  service: Service,
): Answer {
  if (request.kind === "help") return { text: [`OK@${HELP}`] };
  if (request.kind === "list") return { text: listText(service) };
  try {
    // This dialect sends no digest, but a file is confirmed unchanged before its last bytes, which
    // can take hashing it: with the fastest digest.
    return { file: service.store.open(request.name, XXH3_128) };
  } catch (error) {
    return { refused: asWireError(error), name: request.name };
  }
}

/**
 * The original's list: the folder's files, then the cached ones, as lines of text, each batch as
 * it is read, until the server shuts down.
 */
async function* listText(service: Service): AsyncGenerator<string> {
  let count = 0;
  for await (const batch of untilShutdown(service.store.list(), service)) {
    const header = count === 0 ? "OK@\n[FILES INSIDE THE SERVER DIRECTORY]:\n" : "\n";
    yield header + batch.map((entry) => entry.name).join("\n");
    count += batch.length;
  }
  if (count === 0) yield "OK@The server directory is empty";
  else yield "\n[FILES IN CACHE]:\n" + [...service.store.cache.keys()].join("\n");
}

/**
 * Sends `answer`, the one way this dialect writes one, and ends `exchange` once it is sent: a text
 * as it is; a file as `OK@` then its bytes; a refusal as `FNF`. The original server sent `FNF@`,
 * but its client compares the status with exactly `FNF` to say "File not found!". A failure
 * part-way is the caller's to end the exchange with.
 */
async function respond(connection: Connection, exchange: Exchange, answer: Answer): Promise<void> {
  if ("text" in answer) {
    for await (const text of answer.text) {
      await connection.send(encoder.encode(text));
      await connection.flush();
    }
    exchange.answered();
  } else if ("file" in answer) {
    using file = answer.file;
    await sendFile(connection, exchange, file);
    exchange.answered();
  } else {
    await sendLast(connection, "FNF");
    exchange.refused(answer.refused, { name: answer.name });
  }
}

/** `OK@`, a pause, then the file's bytes. */
async function sendFile(connection: Connection, exchange: Exchange, file: FileBody): Promise<void> {
  // "OK@" leaves on its own, and the file only after a pause: the original client reads its
  // status with one recv(1024), and bytes of the file read with it would be lost.
  await connection.send(encoder.encode("OK@"));
  await connection.flush();
  await connection.pause(statusGapMs(connection));
  await exchange.send(file, 0, file.stamp.size, (chunk) => connection.send(chunk));
  await connection.flush();
}
