/**
 * A responder with no work in it, to measure the load generator's own capacity: it speaks just
 * enough of the framed protocol to greet, then answers every request with one canned answer (a
 * FILE, DATA and END for `SIZE` zero bytes), without a name lookup, a cache or a log. Whatever
 * rate the load generator reaches against it is more than it could ever ask of a real server.
 *
 * Usage: canned.ts PORT SIZE — listens on PORT, prints "ready", serves until killed.
 */

import { SHA256 } from "../lib/shared/digest.ts";
import { FrameDecoder } from "../lib/shared/frame_decoder.ts";
import { encodeFrame, Frame } from "../lib/shared/frames.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import { codec, encodeEnd, preamble } from "../lib/shared/protocol.ts";
import { writeAll } from "../lib/shared/io.ts";

/** The bytes of one answer to a GET of a `size`-byte file. */
function cannedAnswer(size: number): Uint8Array {
  const parts = [
    codec(1).encodeFileHeader({ size, offset: 0, end: size, mtimeMs: 0, source: "cache" }),
    encodeFrame(Frame.Data, new Uint8Array(size)),
    encodeEnd(new Uint8Array(32)),
  ];
  const answer = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  parts.reduce((at, part) => (answer.set(part, at), at + part.length), 0);
  return answer;
}

/** Greets one connection, then answers each request it reads with `answer`. */
async function serve(conn: Deno.TcpConn, answer: Uint8Array): Promise<void> {
  conn.setNoDelay(true);
  const write = (bytes: Uint8Array) => writeAll(conn, bytes);
  await write(GREETING);
  const decoder = new FrameDecoder({ maxPayload: 4096 });
  const buffer = new Uint8Array(64 * 1024);
  let greeted = false;
  let out = new Uint8Array(0);
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
    decoder.push(buffer.subarray(0, n));
    if (!greeted) {
      if (decoder.buffered.length < preamble(1).length) continue;
      decoder.skip(preamble(1).length);
      await write(codec(1).encodeHello({ server: "canned", digest: SHA256 }));
      greeted = true;
    }
    let requests = 0;
    while (decoder.next()) requests++;
    if (out.length < requests * answer.length) out = new Uint8Array(requests * answer.length);
    for (let i = 0; i < requests; i++) out.set(answer, i * answer.length);
    await write(out.subarray(0, requests * answer.length));
  }
  conn.close();
}

if (import.meta.main) {
  const [port, size] = Deno.args.map(Number);
  const answer = cannedAnswer(size);
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  console.log("ready");
  for await (const conn of listener) {
    serve(conn, answer).catch((error) => console.error(`canned: ${error}`));
  }
}
