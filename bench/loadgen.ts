/**
 * A load generator for the framed protocol, run as its own process so that it does not share an
 * event loop with the server it measures. Each connection sends `depth` GET requests at a time
 * and waits for their answers; answers are counted by bytes once the first one has been parsed,
 * so the generator does almost no work per request. With CA_FILE, it speaks TLS, trusting the
 * authority in that file.
 *
 * Usage: loadgen.ts PORT NAME CONNECTIONS DEPTH SECONDS [CA_FILE]
 * Prints one JSON line: { requests, seconds, requestsPerSecond, p50Ms, p99Ms }.
 */

import { dial } from "../lib/client/client.ts";
import { writeAll } from "../lib/shared/io.ts";
import { FrameDecoder } from "../lib/shared/frame_decoder.ts";
import { Frame } from "../lib/shared/frames.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import { codec, preamble } from "../lib/shared/protocol.ts";

/** What one run measured. */
export interface LoadResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * Opens a session (over TLS when `caCerts` are given) and measures the size in bytes of one
 * answer to `request`.
 */
async function open(
  port: number,
  request: Uint8Array,
  caCerts?: string[],
): Promise<[Deno.Conn, number]> {
  const conn = await dial("127.0.0.1", port, caCerts && { caCerts });
  await writeAll(conn, preamble(1));
  await writeAll(conn, request);
  const decoder = new FrameDecoder({ maxPayload: 1 << 24, streamed: [Frame.Data] });
  const buffer = new Uint8Array(1 << 16);
  let received = 0;
  let greeted = false;
  let helloEnd = 0;
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("the server closed the connection");
    decoder.push(buffer.subarray(0, n));
    received += n;
    if (!greeted) {
      if (decoder.buffered.length < GREETING.length) continue;
      decoder.skip(GREETING.length);
      greeted = true;
    }
    for (let frame = decoder.next(); frame; frame = decoder.next()) {
      const position = received - decoder.buffered.length;
      if (frame.type === Frame.Hello) helloEnd = position;
      if (frame.type === Frame.Error) throw new Error("the server answered with an error");
      if (frame.type === Frame.End) return [conn, position - helloEnd];
    }
  }
}

/** Runs the load and returns what it measured. */
export async function runLoad(
  port: number,
  name: string,
  connections: number,
  depth: number,
  seconds: number,
  caCerts?: string[],
): Promise<LoadResult> {
  const request = codec(1).encodeGet({ name });
  const batch = new Uint8Array(request.length * depth);
  for (let i = 0; i < depth; i++) batch.set(request, i * request.length);
  const sessions = await Promise.all(
    Array.from({ length: connections }, () => open(port, request, caCerts)),
  );
  const latencies: number[] = [];
  let requests = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(sessions.map(async ([conn, answerBytes]) => {
    const buffer = new Uint8Array(Math.max(1 << 16, answerBytes * depth));
    const want = answerBytes * depth;
    while (performance.now() < deadline) {
      const sent = performance.now();
      await writeAll(conn, batch);
      for (let got = 0; got < want;) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error("the server closed the connection");
        got += n;
      }
      latencies.push(performance.now() - sent);
      requests += depth;
    }
    conn.close();
  }));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests,
    seconds: elapsed,
    requestsPerSecond: requests / elapsed,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
  };
}

/**
 * The value at quantile `q` (0 to 1) of `sorted`, an ascending list, by nearest rank; undefined
 * when the list is empty.
 */
export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

if (import.meta.main) {
  const [port, name, connections, depth, seconds, ca] = Deno.args;
  const result = await runLoad(
    Number(port),
    name,
    Number(connections),
    Number(depth),
    Number(seconds),
    ca === undefined ? undefined : [await Deno.readTextFile(ca)],
  );
  console.log(JSON.stringify(result));
}
