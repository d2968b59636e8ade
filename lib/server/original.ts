/**
 * The original text dialect, kept so clients written for the original server work unchanged:
 * after the greeting the client sends `list`, `help` or `file@NAME` and the server answers with
 * `OK@` and text, `OK@` and the file's bytes, or `FNF`, then closes the connection.
 */

import { DEFAULT_PORT } from "../shared/defaults.ts";
import { XXH3_128 } from "../shared/digest.ts";
import { ErrorCode, ProtocolError } from "../shared/errors.ts";
import type { FrameReader } from "../shared/frame_reader.ts";
import type { Connection } from "./connection.ts";
import type { Service } from "./service.ts";

/**
 * Longest original-dialect request accepted: `file@` and a name, with room for a line ending. The server
 * reads a connection's first bytes into a buffer one byte larger, so a longer request is seen as
 * too long rather than cut short.
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
 * Reads an original-dialect request from the bytes received so far. The original client sends its whole
 * request in one write with no terminator, so `file@NAME` is whatever arrived with it; one
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
  connection.busy = true;
  connection.requestDone(false);
  if (request.kind === "bad" || reader.buffered.length > MAX_ORIGINAL_REQUEST) {
    service.violation(
      connection,
      new ProtocolError(ErrorCode.BadRequest, "not list, help or file@NAME"),
    );
    await connection.send(encoder.encode("ERR@Unknown request; send list, help or file@NAME."));
    await connection.flush();
    return;
  }
  if (request.kind === "file") return await sendFile(connection, service, request.name);
  const record = service.begin(connection, `legacy-${request.kind}`);
  if (request.kind === "help") await connection.send(encoder.encode("OK@" + HELP));
  else await sendList(connection, service);
  await connection.flush();
  record.done();
}

/**
 * Answers an original-dialect request on a server that takes requests only with an access token,
 * which this dialect cannot carry: with its own `ERR@` text, whatever the request.
 */
export async function refuseOriginal(connection: Connection): Promise<void> {
  connection.requestDone(false);
  await connection.send(
    encoder.encode(
      "ERR@This server needs an access token, which this client cannot send; use a current client.",
    ),
  );
  await connection.flush();
}

/** The original's list: the folder's files, then the cached ones, as lines of text. */
async function sendList(connection: Connection, service: Service): Promise<void> {
  let count = 0;
  for await (const batch of service.store.list()) {
    const header = count === 0 ? "OK@\n[FILES INSIDE THE SERVER DIRECTORY]:\n" : "\n";
    await connection.send(encoder.encode(header + batch.map((entry) => entry.name).join("\n")));
    count += batch.length;
  }
  if (count === 0) {
    await connection.send(encoder.encode("OK@The server directory is empty"));
    return;
  }
  const cached = [...service.store.cache.keys()].join("\n");
  await connection.send(encoder.encode("\n[FILES IN CACHE]:\n" + cached));
}

/**
 * `OK@` then the file's bytes then close; `FNF` when it cannot be served. The original server sent
 * `FNF@`, but its client compares the status with exactly `FNF` to say "File not found!".
 */
async function sendFile(connection: Connection, service: Service, name: string): Promise<void> {
  const record = service.begin(connection, "legacy-file");
  let opened;
  try {
    // This dialect sends no digest, but a file is confirmed unchanged before its last bytes, which
    // can take hashing it: with the fastest digest.
    opened = service.store.open(name, XXH3_128);
  } catch (error) {
    record.refused(error, { name });
    await connection.send(encoder.encode("FNF"));
    await connection.flush();
    return;
  }
  using body = opened;
  // "OK@" leaves on its own, and the file only after a pause: the original client reads its
  // status with one recv(1024), and bytes of the file read with it would be lost.
  await connection.send(encoder.encode("OK@"));
  await connection.flush();
  await connection.pause(statusGapMs(connection));
  try {
    await record.send(body, 0, body.stamp.size, (chunk) => connection.send(chunk));
    await connection.flush();
  } catch (error) {
    // A failure counted here (the file changed, a read failed) ends the answer and the connection
    // with it: this dialect has no way to say more. Thrown on, it would be counted again.
    if (record.failed(error) === undefined) throw error;
    return;
  }
  record.done();
}
