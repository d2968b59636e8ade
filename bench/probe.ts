/**
 * A new client's view of a loaded server, from a process of its own so that the figures are not
 * the load generator's (whose event loop is busy with the load): every 100 ms it connects, times
 * the TCP connect and then the server's greeting, and closes.
 *
 * Usage: deno run --allow-net bench/probe.ts PORT SECONDS
 * Prints one JSON line: {@link ProbeResult}.
 */

import { GREETING } from "../lib/shared/greeting.ts";
import { quantile } from "./loadgen.ts";

/** What a probe run measured, in milliseconds. */
export interface ProbeResult {
  samples: number;
  /** Connections that failed or were closed before the whole greeting came. */
  failures: number;
  connectP50Ms: number;
  connectMaxMs: number;
  greetingP50Ms: number;
  greetingP99Ms: number;
  greetingMaxMs: number;
}

const INTERVAL_MS = 100;

/** Connects to `port` once: the time to connect and the time from then to the whole greeting. */
async function sample(port: number): Promise<[number, number]> {
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const connected = performance.now();
  try {
    const buffer = new Uint8Array(GREETING.length);
    for (let got = 0; got < GREETING.length;) {
      const n = await conn.read(buffer.subarray(got));
      if (n === null) throw new Error("closed before the greeting");
      got += n;
    }
    return [connected - started, performance.now() - connected];
  } finally {
    conn.close();
  }
}

/** Probes `port` for `seconds`, then waits for the last samples. */
export async function runProbe(port: number, seconds: number): Promise<ProbeResult> {
  const connects: number[] = [];
  const greetings: number[] = [];
  let failures = 0;
  const pending: Promise<void>[] = [];
  for (const end = performance.now() + seconds * 1000; performance.now() < end;) {
    pending.push(
      sample(port).then(([connect, greeting]) => {
        connects.push(connect);
        greetings.push(greeting);
      }, () => {
        failures++;
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
  }
  await Promise.all(pending);
  const at = (values: number[], q: number) => quantile(values.toSorted((a, b) => a - b), q) ?? NaN;
  return {
    samples: connects.length,
    failures,
    connectP50Ms: at(connects, 0.5),
    connectMaxMs: at(connects, 1),
    greetingP50Ms: at(greetings, 0.5),
    greetingP99Ms: at(greetings, 0.99),
    greetingMaxMs: at(greetings, 1),
  };
}

if (import.meta.main) {
  const [port, seconds] = Deno.args.map(Number);
  console.log(JSON.stringify(await runProbe(port, seconds)));
}
