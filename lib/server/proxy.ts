/**
 * The PROXY protocol (version 1, the text one haproxy's `send-proxy` writes): a proxy in front of
 * the server starts each connection with one line naming the client it carries, so that the
 * server's limits count that client, not the proxy, and its logs name it. Only connections from
 * addresses the operator trusts (`--trust-proxy`) may start with it (from anyone else the line
 * would be a lie the server believed); one from there without it is the proxy's host itself.
 */

import { ErrorCode, ProtocolError } from "../shared/errors.ts";
import type { Connection } from "./connection.ts";

/** The longest PROXY line (version 1): 107 bytes with its CRLF. */
const MAX_LINE = 107;

/** The client a PROXY line names, or undefined for "UNKNOWN" (a proxy's own health check, say). */
export type Forwarded = { host: string; port: number } | undefined;

/**
 * Reads a PROXY line: the client's address and port; undefined for `PROXY UNKNOWN`. Throws a
 * ProtocolError with one sentence when the line is not one.
 * @example
 * ```ts
 * import { deepEqual, equal, throws } from "node:assert/strict";
 * import { parseProxyLine } from "./proxy.ts";
 * deepEqual(parseProxyLine("PROXY TCP4 192.0.2.7 127.0.0.1 51234 8080"), { host: "192.0.2.7", port: 51234 });
 * deepEqual(parseProxyLine("PROXY TCP6 2001:db8::7 ::1 51234 8080"), { host: "2001:db8::7", port: 51234 });
 * equal(parseProxyLine("PROXY UNKNOWN"), undefined);
 * throws(() => parseProxyLine("GET / HTTP/1.1"), /does not start with a PROXY line/);
 * throws(() => parseProxyLine("PROXY TCP4 999.0.0.1 127.0.0.1 51234 8080"), /PROXY line/);
 * ```
 */
export function parseProxyLine(line: string): Forwarded {
  if (/^PROXY UNKNOWN( |$)/.test(line)) return undefined;
  const match = /^PROXY TCP([46]) (\S+) (\S+) (\d{1,5}) (\d{1,5})$/.exec(line);
  const [, family, client, server, clientPort, serverPort] = match ?? [];
  const valid = match !== null && isAddress(family, client) && isAddress(family, server) &&
    Number(clientPort) <= 65535 && Number(serverPort) <= 65535;
  if (!valid) throw malformed("the connection does not start with a PROXY line");
  return { host: client, port: Number(clientPort) };
}

/** True when `text` is an IP address of `family` ("4" or "6") as a PROXY line writes it. */
function isAddress(family: string, text: string): boolean {
  if (family === "4") {
    const parts = text.split(".");
    return parts.length === 4 && parts.every((part) => /^\d{1,3}$/.test(part) && +part <= 255);
  }
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return false;
  try {
    new URL(`http://[${text}]/`); // the URL parser knows every valid form of an IPv6 address
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads the PROXY line a trusted proxy starts `connection` with, and puts back what followed it
 * for the dialect to read: the client it names, or undefined for none (`PROXY UNKNOWN`, or a
 * connection that does not start with `PROXY `: the proxy's host speaking for itself). Throws a
 * ProtocolError (the peer's fault) when a PROXY line is malformed or cut short.
 */
export async function readProxyLine(connection: Connection): Promise<Forwarded> {
  const buffer = new Uint8Array(MAX_LINE + 1024);
  let filled = 0;
  for (;;) {
    const seen = new TextDecoder().decode(buffer.subarray(0, Math.min(filled, PREFIX.length)));
    if (!PREFIX.startsWith(seen)) {
      connection.unread(buffer.subarray(0, filled));
      return undefined;
    }
    const end = buffer.subarray(0, filled).indexOf(10);
    if (end !== -1) {
      if (end === 0 || buffer[end - 1] !== 13 || end + 1 > MAX_LINE) break;
      connection.unread(buffer.subarray(end + 1, filled));
      return parseProxyLine(new TextDecoder().decode(buffer.subarray(0, end - 1)));
    }
    if (filled >= MAX_LINE) break;
    const n = await connection.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  throw malformed("the connection's PROXY line is malformed or cut short");
}

/** A malformed PROXY line: the peer's fault, counted apart from the server's errors. */
function malformed(message: string): ProtocolError {
  return new ProtocolError(ErrorCode.BadRequest, message);
}

const PREFIX = "PROXY ";
