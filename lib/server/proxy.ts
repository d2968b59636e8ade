/**
 * The PROXY protocol (version 1, the text one haproxy's `send-proxy` writes): a proxy in front of
 * the server starts each connection with one line naming the client it carries, so that the
 * server's limits count that client, not the proxy, and its logs name it. Only connections from
 * addresses the operator trusts (`--trust-proxy`) may start with it (from anyone else the line
 * would be a lie the server believed); one from there without it is the proxy's host itself.
 */

import { ErrorCode, ProtocolError } from "../shared/errors.ts";

/** The longest PROXY line (version 1): 107 bytes with its CRLF. */
const MAX_LINE = 107;

/** The client a PROXY line names, or undefined for "UNKNOWN" (a proxy's own health check, say). */
export type Forwarded = { host: string; port: number } | undefined;

/**
 * Reads a PROXY line: the client's address, in its one canonical spelling (see
 * {@link canonicalAddress}), and port; undefined for `PROXY UNKNOWN`. Throws a ProtocolError with
 * one sentence when the line is not one.
 * @example
 * ```ts
 * import { deepEqual, equal, throws } from "node:assert/strict";
 * import { parseProxyLine } from "./proxy.ts";
 * deepEqual(parseProxyLine("PROXY TCP4 192.0.2.7 127.0.0.1 51234 8080"), { host: "192.0.2.7", port: 51234 });
 * deepEqual(parseProxyLine("PROXY TCP6 2001:DB8:0::0007 ::1 51234 8080"), { host: "2001:db8::7", port: 51234 });
 * deepEqual(parseProxyLine("PROXY TCP6 ::ffff:192.0.2.7 ::1 51234 8080"), { host: "192.0.2.7", port: 51234 });
 * equal(parseProxyLine("PROXY UNKNOWN"), undefined);
 * throws(() => parseProxyLine("GET / HTTP/1.1"), /does not start with a PROXY line/);
 * throws(() => parseProxyLine("PROXY TCP4 999.0.0.1 127.0.0.1 51234 8080"), /PROXY line/);
 * throws(() => parseProxyLine("PROXY TCP4 010.000.000.001 127.0.0.1 51234 8080"), /PROXY line/);
 * ```
 */
export function parseProxyLine(line: string): Forwarded {
  if (/^PROXY UNKNOWN( |$)/.test(line)) return undefined;
  const match = /^PROXY TCP([46]) (\S+) (\S+) (\d{1,5}) (\d{1,5})$/.exec(line);
  const [, family, client, server, clientPort, serverPort] = match ?? [];
  const host = match === null ? undefined : canonicalAddress(family, client);
  const valid = host !== undefined && canonicalAddress(family, server) !== undefined &&
    Number(clientPort) <= 65535 && Number(serverPort) <= 65535;
  if (!valid) throw malformed("the connection does not start with a PROXY line");
  return { host, port: Number(clientPort) };
}

/** One number of a dotted-decimal IPv4 address: 0 to 255, with no leading zero. */
const OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const IPV4 = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);

/**
 * `text`, an IP address of `family` ("4" or "6") as a PROXY line writes it, in the one spelling
 * the per-host limits and the log know that host by; undefined when it is no such address. An
 * IPv4 address must already be canonical: the PROXY protocol forbids leading zeros, and
 * `010.000.000.001` is 10.0.0.1 to some readers and 8.0.0.1 (octal) to others, so it is refused
 * rather than guessed at. An IPv6 address has many valid spellings (upper or lower case, zeros
 * written or left out), so it is rewritten in RFC 5952's, and an IPv4-mapped one
 * (`::ffff:192.0.2.7`) as the IPv4 address it is.
 */
function canonicalAddress(family: string, text: string): string | undefined {
  if (family === "4") return IPV4.test(text) ? text : undefined;
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return undefined;
  let host;
  try {
    // The URL parser knows every valid form of an IPv6 address, and writes it as RFC 5952 does.
    host = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped === null) return host;
  const [high, low] = [parseInt(mapped[1], 16), parseInt(mapped[2], 16)];
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/** What a PROXY line is read from: a connection's reads, and a way to put back what follows. */
export interface LineSource {
  read(buffer: Uint8Array): Promise<number | null>;
  unread(bytes: Uint8Array): void;
}

/**
 * Reads the PROXY line a trusted proxy starts `connection` with, and puts back what followed it
 * for the dialect to read: the client it names, or undefined for none (`PROXY UNKNOWN`, or a
 * connection that does not start with `PROXY `: the proxy's host speaking for itself). Throws a
 * ProtocolError (the peer's fault) when a PROXY line is malformed or cut short.
 */
export async function readProxyLine(connection: LineSource): Promise<Forwarded> {
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
