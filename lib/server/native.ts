/**
 * The server's own port: every connection is greeted, and the first byte the client sends picks
 * its dialect, the framed protocol (0x89, the preamble's first byte) or the original text one.
 */

import { FrameReader } from "../shared/frame_reader.ts";
import { GREETING } from "../shared/greeting.ts";
import { MAGIC } from "../shared/protocol.ts";
import type { Connection } from "./connection.ts";
import { MAX_REQUEST_PAYLOAD, serveFramed } from "./framed.ts";
import { MAX_ORIGINAL_REQUEST, refuseOriginal, serveOriginal } from "./original.ts";
import type { Service } from "./service.ts";

/** Greets `connection` and serves it in the dialect its first byte picks. */
export async function serveNative(connection: Connection, service: Service): Promise<void> {
  await connection.send(GREETING);
  await connection.flush();
  // Requests are small, so idle connections cost little memory; the first read can still take a
  // whole original-dialect request, and shows one over the limit as too long.
  const reader = new FrameReader(connection, {
    maxPayload: MAX_REQUEST_PAYLOAD,
    bufferBytes: MAX_ORIGINAL_REQUEST + 1,
  });
  if (!await reader.fill()) return;
  if (reader.buffered[0] === MAGIC[0]) return await serveFramed(connection, reader, service);
  // The one place a protocol is learnt after the first byte: the port's own is the framed one.
  connection.speaks("original");
  if (service.access.originalOpen) return await serveOriginal(connection, reader, service);
  service.access.refuse(connection, "the original dialect cannot carry a token");
  await refuseOriginal(connection);
}
