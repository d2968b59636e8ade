/**
 * The HTTP port beside nginx on the same files, with the same generator (wrk): 4 KiB requests per
 * second at 1, 16 and 64 connections, and a cached 32 MiB file's throughput with curl, as ratios.
 * Skipped, saying so, when nginx, wrk or curl is missing (Debian: nginx-light wrk curl).
 *
 * Usage: deno run -A bench/http_bench.ts [--quick]
 */

import { accepting, freePort, has, ROOT, SERVER_COMMAND } from "../testing/support.ts";
import { startNginx } from "./services.ts";

const quick = Deno.args.includes("--quick");
const SECONDS = quick ? 2 : 5;
const WORK = `${ROOT}bench/.work/http`;
const DATA = `${WORK}/data`;

/** The output of `command args`, or a thrown error naming it. */
async function output(command: string, args: string[]): Promise<string> {
  const result = await new Deno.Command(command, { args, stderr: "inherit" }).output();
  if (!result.success) throw new Error(`${command} failed`);
  return new TextDecoder().decode(result.stdout);
}

/** Requests per second wrk measures for `url` over `connections` connections. */
async function wrk(url: string, connections: number): Promise<number> {
  const report = await output("wrk", [`-t1`, `-c${connections}`, `-d${SECONDS}s`, url]);
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(report)![1]);
}

/** GB/s of curl downloading `url` to nowhere, the mean of several runs. */
async function curl(url: string): Promise<number> {
  const rates: number[] = [];
  for (let i = 0; i < (quick ? 4 : 12); i++) {
    rates.push(
      Number(await output("curl", ["-s", "-o", "/dev/null", "-w", "%{speed_download}", url])) / 1e9,
    );
  }
  return rates.reduce((a, b) => a + b) / rates.length;
}

if (import.meta.main) {
  if (!(await has("nginx") && await has("wrk") && await has("curl"))) {
    console.log("HTTP benchmark skipped: needs nginx, wrk and curl (Debian: nginx-light wrk curl)");
    Deno.exit(0);
  }
  await Deno.mkdir(DATA, { recursive: true });
  const big = new Uint8Array(32 * 1024 * 1024);
  crypto.getRandomValues(big.subarray(0, 65536));
  for (let at = 65536; at < big.length; at *= 2) big.copyWithin(at, 0, at);
  await Deno.writeFile(`${DATA}/big.bin`, big);
  await Deno.writeFile(`${DATA}/small.bin`, big.subarray(0, 4096));

  const httpPort = freePort();
  const ours = new Deno.Command(Deno.execPath(), {
    args: [
      ...SERVER_COMMAND,
      "--port",
      String(freePort()),
      "--http-port",
      String(httpPort),
      "--data",
      DATA,
      "--max-connections-per-host",
      "1024",
    ],
    stdout: "null",
  }).spawn();
  const nginx = await startNginx(DATA, `${WORK}/nginx`);
  try {
    await accepting(httpPort);
    const urls = { ours: `http://127.0.0.1:${httpPort}`, nginx: `http://127.0.0.1:${nginx.port}` };
    for (const url of Object.values(urls)) await curl(`${url}/big.bin`); // warm both caches
    console.log(`HTTP beside nginx (${quick ? "quick" : "full"}), ${new Date().toISOString()}`);
    const row = (what: string, a: number, b: number, unit: string) =>
      console.log(
        `${what.padEnd(34)} ours ${a.toFixed(a >= 100 ? 0 : 2).padStart(8)} ${unit}` +
          `  nginx ${b.toFixed(b >= 100 ? 0 : 2).padStart(8)} ${unit}  ours/nginx ${
            (a / b * 100).toFixed(0)
          }%`,
      );
    for (const connections of [1, 16, 64]) {
      const [a, b] = [
        await wrk(`${urls.ours}/small.bin`, connections),
        await wrk(`${urls.nginx}/small.bin`, connections),
      ];
      row(`4 KiB, ${connections} connection${connections > 1 ? "s" : ""}`, a, b, "req/s");
    }
    row(
      "cached 32 MiB, curl",
      await curl(`${urls.ours}/big.bin`),
      await curl(`${urls.nginx}/big.bin`),
      "GB/s",
    );
  } finally {
    ours.kill("SIGTERM");
    await ours.status;
    await nginx.stop();
  }
}
