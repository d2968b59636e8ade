/**
 * The loopback ceiling for a Deno program: sends the same bytes as the file benchmark, with no
 * protocol, from one reused buffer, to one connection. Run as its own process so that sender and
 * receiver each have an event loop, as the server and its client do.
 *
 * Usage: ceiling.ts PORT BYTES ROUNDS — listens on PORT, prints "ready", serves one connection.
 */

import { writeAll } from "../lib/shared/io.ts";

if (import.meta.main) {
  const [port, bytes, rounds] = Deno.args.map(Number);
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  console.log("ready");
  const conn = await listener.accept();
  conn.setNoDelay(true);
  const payload = new Uint8Array(bytes).fill(0x5a); // touched now, not while timed
  for (let r = 0; r < rounds; r++) {
    await writeAll(conn, payload);
  }
  conn.close();
  listener.close();
}
