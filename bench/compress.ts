/**
 * Compressed answers beside nginx with `gzip on` at the same level (6), on the same text files
 * (this repository's own docs and sources): bytes on the wire per coding, then requests per second
 * for the largest file with wrk asking for gzip, and each server's CPU time per request (from /proc:
 * utime+stime over requests served; nginx runs one worker, as ours is one thread). Every answer is
 * first checked to decompress to the file's bytes. What needs a missing tool is skipped, saying so
 * (Debian: nginx-light wrk).
 *
 * Usage: deno run -A bench/compress.ts [--quick | --smoke]
 */

import { Buffer } from "node:buffer";
import http from "node:http";
import zlib from "node:zlib";
import { accepting, freePort, has, ROOT, SERVER_COMMAND } from "../testing/support.ts";
import { lengthOf } from "./length.ts";
import { cpuSeconds, type Service, startNginx } from "./services.ts";

const length = lengthOf(Deno.args);
/** Seconds of each wrk run, and the connections of each. */
const RUN = {
  full: { seconds: 5, connections: [1, 16, 64] },
  quick: { seconds: 2, connections: [16] },
  smoke: { seconds: 1, connections: [16] },
}[length];
const WORK = `${ROOT}bench/.work/compress`;
const DATA = `${WORK}/data`;

/** The text files both servers serve: the docs and the server's sources, as a site's text is. */
async function writeData(): Promise<Map<string, Uint8Array>> {
  await Deno.mkdir(DATA, { recursive: true });
  const files = new Map<string, Uint8Array>();
  for (const folder of ["docs", "lib/server", "lib/server/http"]) {
    for (const entry of Deno.readDirSync(`${ROOT}${folder}`)) {
      if (!entry.isFile) continue;
      const bytes = await Deno.readFile(`${ROOT}${folder}/${entry.name}`);
      // Sources as JavaScript, which both servers know to compress (.ts is a video type to some).
      const name = `${folder.replaceAll("/", "-")}-${entry.name.replace(/\.ts$/, ".js")}`;
      await Deno.writeFile(`${DATA}/${name}`, bytes);
      files.set(name, bytes);
    }
  }
  return files;
}

const DECODE: Record<string, (bytes: Uint8Array) => Uint8Array> = {
  gzip: (bytes) => zlib.gunzipSync(bytes),
  br: (bytes) => zlib.brotliDecompressSync(bytes),
  zstd: (bytes) => zlib.zstdDecompressSync(bytes),
};

/** The bytes `url` sends when asked for `coding`, checked to decode to `expected`. */
function wireBytes(url: string, coding: string, expected: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) => {
    // node:http leaves the body as sent, where fetch() would decompress it.
    http.get(url, { headers: { "accept-encoding": coding }, agent: false }, (response) => {
      const chunks: Uint8Array[] = [];
      response.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      response.on("end", () => {
        const body = new Uint8Array(Buffer.concat(chunks));
        const sent = response.headers["content-encoding"];
        const decoded = sent === undefined ? body : DECODE[sent](body);
        const same = decoded.length === expected.length &&
          decoded.every((b, i) => b === expected[i]);
        if (same) resolve(body.length);
        else reject(new Error(`${url} (${coding}) did not decode to the file`));
      });
    }).on("error", reject);
  });
}

/** Requests per second wrk measures for `url` asking for gzip, and the server's CPU per request. */
async function wrk(url: string, connections: number, pid: number): Promise<[number, number]> {
  const before = cpuSeconds(pid);
  const result = await new Deno.Command("wrk", {
    args: ["-t1", `-c${connections}`, `-d${RUN.seconds}s`, "-H", "Accept-Encoding: gzip", url],
  }).output();
  const report = new TextDecoder().decode(result.stdout);
  const cpu = cpuSeconds(pid) - before;
  const requests = Number(/(\d+) requests in/.exec(report)![1]);
  return [Number(/Requests\/sec:\s+([\d.]+)/.exec(report)![1]), cpu / requests * 1e6];
}

/**
 * Prints the bytes each coding puts on the wire for all the files, ours beside nginx's gzip when
 * nginx runs.
 */
async function bytesOnWire(
  ours: string,
  nginx: string | undefined,
  files: Map<string, Uint8Array>,
): Promise<void> {
  const total = [...files.values()].reduce((n, b) => n + b.length, 0);
  const sum = async (url: string, coding: string) => {
    let bytes = 0;
    for (const [name, expected] of files) {
      bytes += await wireBytes(`${url}/${name}`, coding, expected);
    }
    return bytes;
  };
  const nginxGzip = nginx === undefined ? undefined : await sum(nginx, "gzip");
  console.log(`${files.size} text files, ${total} bytes as they are, each checked once decoded`);
  if (nginxGzip) console.log(`  nginx gzip (level 6)      ${String(nginxGzip).padStart(8)} bytes`);
  for (const coding of ["gzip", "br", "zstd"]) {
    const ourBytes = await sum(ours, coding);
    const ratio = nginxGzip ? `, ${(ourBytes / nginxGzip * 100).toFixed(0)}% of nginx's` : "";
    console.log(`  ours ${coding.padEnd(20)} ${String(ourBytes).padStart(8)} bytes${ratio}`);
  }
}

/** Prints requests/s and CPU-µs per request for `name`, ours beside nginx, asking for gzip. */
async function rates(ours: Server, nginx: Server, name: string) {
  console.log(`${name} asked for with Accept-Encoding: gzip (wrk, one thread)`);
  for (const connections of RUN.connections) {
    const [a, aCpu] = await wrk(`${ours.url}/${name}`, connections, ours.pid);
    const [b, bCpu] = await wrk(`${nginx.url}/${name}`, connections, nginx.pid);
    console.log(
      `  ${String(connections).padStart(2)} connections: ours ${a.toFixed(0).padStart(6)} req/s ` +
        `${aCpu.toFixed(1).padStart(6)} µs CPU/req; nginx ${b.toFixed(0).padStart(6)} req/s ` +
        `${bCpu.toFixed(1).padStart(6)} µs CPU/req; ours/nginx ${
          (a / b * 100).toFixed(0)
        }% req/s, ` +
        `${(aCpu / bCpu * 100).toFixed(0)}% CPU/req`,
    );
  }
}

/** A server measured: its address, and the process whose CPU time it spends (with its children). */
interface Server {
  url: string;
  pid: number;
}

if (import.meta.main) {
  const files = await writeData();
  const httpPort = freePort();
  const ours = new Deno.Command(Deno.execPath(), {
    args: [...SERVER_COMMAND, "--port", String(freePort()), "--http-port", String(httpPort)]
      .concat(["--data", DATA, "--max-connections-per-host", "1024", "--log-level", "warning"])
      .concat(["--workers", "1"]), // one thread beside one nginx worker
    stdout: "null",
  }).spawn();
  let nginx: Service | undefined;
  try {
    await accepting(httpPort);
    const url = `http://127.0.0.1:${httpPort}`;
    console.log(`compression (${length}), ${new Date().toISOString()}`);
    if (!await has("wrk") || !await has("nginx")) {
      console.log(
        "compression beside nginx skipped: needs nginx and wrk (Debian: nginx-light wrk)",
      );
      await bytesOnWire(url, undefined, files);
    } else {
      nginx = await startNginx(DATA, `${WORK}/nginx`, {
        workers: 1,
        http: "gzip on; gzip_comp_level 6; gzip_min_length 256; gzip_vary on; " +
          "gzip_types text/plain text/markdown application/javascript text/css;",
      });
      const other = `http://127.0.0.1:${nginx.port}`;
      await bytesOnWire(url, other, files);
      const largest = [...files].sort((a, b) => b[1].length - a[1].length)[0][0];
      await rates({ url, pid: ours.pid }, { url: other, pid: nginx.process.pid }, largest);
    }
  } finally {
    ours.kill("SIGTERM");
    await ours.status;
    await nginx?.stop();
  }
}
