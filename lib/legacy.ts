/**
 * The original text dialect, kept so clients written for the original server work unchanged:
 * after the greeting the client sends `list`, `help` or `file@NAME` and the server answers with
 * `OK@` and text, `OK@` and the file's bytes, or `FNF@`, then closes the connection.
 */

import type { Connection } from "./connection.ts";
import { asFailure, errorCodeName } from "./errors.ts";
import type { FrameReader } from "./protocol.ts";
import type { FileServer } from "./server.ts";

/**
 * Longest legacy request accepted: `file@` and a name, with room for a line ending. The server
 * reads a connection's first bytes into a buffer one byte larger, so a longer request is seen as
 * too long rather than cut short.
 */
export const MAX_LEGACY_REQUEST = 2048;

/** A legacy request, or what is missing to make one. */
export type LegacyRequest =
  | { kind: "list" }
  | { kind: "help" }
  | { kind: "file"; name: string }
  | { kind: "partial" }
  | { kind: "bad" };

const COMMANDS = ["list", "help", "file@"];

// A leading U+FEFF is a character of the request, not a byte-order mark to drop.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Reads a legacy request from the bytes received so far. The original client sends its whole
 * request in one write with no terminator, so `file@NAME` is whatever arrived with it; one
 * trailing newline (from a person typing) is allowed. Only the start of a command with no line
 * ending yet is worth waiting for.
 */
export function parseLegacy(bytes: Uint8Array): LegacyRequest {
  const received = decoder.decode(bytes);
  const text = received.replace(/\r?\n$/, "");
  if (text === "list" || text === "help") return { kind: text };
  if (text.startsWith("file@") && text.length > 5) return { kind: "file", name: text.slice(5) };
  const ended = /[\r\n]/.test(received);
  if (!ended && COMMANDS.some((command) => command.startsWith(text))) return { kind: "partial" };
  return { kind: "bad" };
}

const HELP = "[HELP]list: List all the files from the server (on cache and on a server local " +
  "directory).\nhelp: List all the commands.\nfile: [HOST](default is localhost) [PORT](default " +
  "is 4457) file [FILENAME] (to request a file from the server).\n";

const encoder = new TextEncoder();

/** Answers one legacy request on `connection`, whose first bytes are in `reader`'s buffer. */
export async function serveLegacy(
  connection: Connection,
  reader: FrameReader,
  server: FileServer,
): Promise<void> {
  let request = parseLegacy(reader.decoder.buffered);
  while (request.kind === "partial") {
    if (!await reader.fill()) return;
    request = parseLegacy(reader.decoder.buffered);
  }
  connection.busy = true;
  const started = performance.now();
  server.counters.requests++;
  if (request.kind === "bad" || reader.decoder.buffered.length > MAX_LEGACY_REQUEST) {
    server.counters.errors++;
    await connection.send(encoder.encode("ERR@Unknown request; send list, help or file@NAME."));
    await connection.flush();
    server.logRequest(connection, { op: "legacy", error: "bad-request" }, started);
    return;
  }
  if (request.kind === "help") {
    await connection.send(encoder.encode("OK@" + HELP));
  } else if (request.kind === "list") {
    await sendList(connection, server);
  } else {
    await sendFile(connection, server, request.name, started);
    return;
  }
  await connection.flush();
  server.logRequest(connection, { op: `legacy-${request.kind}` }, started);
}

/** The original's list: the folder's files, then the cached ones, as lines of text. */
async function sendList(connection: Connection, server: FileServer): Promise<void> {
  let count = 0;
  for await (const batch of server.listBatches()) {
    const header = count === 0 ? "OK@\n[FILES INSIDE THE SERVER DIRECTORY]:\n" : "\n";
    await connection.send(encoder.encode(header + batch.map((entry) => entry.name).join("\n")));
    count += batch.length;
  }
  if (count === 0) {
    await connection.send(encoder.encode("OK@The server directory is empty"));
    return;
  }
  const cached = [...server.store.cache.keys()].join("\n");
  await connection.send(encoder.encode("\n[FILES IN CACHE]:\n" + cached));
}

/** `OK@` then the file's bytes then close; `FNF@` when it cannot be served. */
async function sendFile(
  connection: Connection,
  server: FileServer,
  name: string,
  started: number,
): Promise<void> {
  let opened;
  try {
    opened = server.store.open(name);
  } catch (error) {
    const failure = asFailure(error);
    await connection.send(encoder.encode("FNF@"));
    await connection.flush();
    server.logRequest(connection, {
      op: "legacy-file",
      name,
      error: errorCodeName(failure.code),
    }, started);
    return;
  }
  using body = opened;
  // "OK@" leaves on its own, as the original sent it: its client reads the status separately.
  await connection.send(encoder.encode("OK@"));
  await connection.flush();
  let sent = 0;
  try {
    for await (const chunk of body.chunks(0)) {
      await connection.send(chunk);
      sent += chunk.length;
    }
    await connection.flush();
  } catch (error) {
    server.bodySent(connection, "legacy-file", body, sent, started, error);
    throw error;
  }
  server.bodySent(connection, "legacy-file", body, sent, started);
}
