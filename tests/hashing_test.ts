/**
 * Hashing files the cache does not hold draws on a few buffers lent in turn: however many clients
 * ask for digests of different files at once (HTTP's headers, a part of a file over the framed
 * protocol), the server's memory does not grow with them.
 */

import { ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { FileClient } from "../lib/client/client.ts";
import { tempFolder } from "./harness.ts";
import { spawnServer } from "../testing/support.ts";

/** Files asked for at once, each hashed on its own. */
const FILES = 200;
/** Each larger than the cache, so none is cached and each must be hashed from disk. */
const FILE_BYTES = 2 * 1024 * 1024;
const CACHE_BYTES = 1024 * 1024;
/**
 * What the server may grow by: the hashing buffers (4 MiB), the pool for streams from disk
 * (16 MiB) and a small buffer per stream, and room for 200 connections. A fresh 1 MiB buffer per
 * hash would grow it by about 200 MiB.
 */
const ALLOWED_GROWTH = 64 * 1024 * 1024;

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** The server process's resident memory now and at its peak, from /proc. */
async function memory(pid: number): Promise<{ now: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
  return { now: kib("VmRSS") * 1024, peak: kib("VmHWM") * 1024 };
}

Deno.test("digests of many uncached files at once cost bounded memory", async (t) => {
  await using data = await tempFolder();
  const names = Array.from({ length: FILES }, (_, i) => `f${i}.bin`);
  for (const name of names) {
    // Sparse: the server reads (and hashes) 2 MiB of zeros from each, with nothing on disk.
    await Deno.writeFile(join(data.path, name), new Uint8Array());
    await Deno.truncate(join(data.path, name), FILE_BYTES);
  }
  const args = [
    "--data",
    data.path,
    "--cache-size",
    String(CACHE_BYTES),
    "--max-connections-per-host",
    String(FILES + 8),
  ];

  /** Runs `ask` on a fresh server and checks how far its peak memory rose above the start. */
  const bounded = async (what: string, ask: (port: number, httpPort: number) => Promise<void>) => {
    await using server = await spawnServer([...args, "--http-port", "0"]);
    const listening = await server.waitFor(/listening/);
    const http = Number(/ http=[^ ]*:(\d+)/.exec(listening)![1]);
    const before = await memory(server.process.pid);
    await ask(server.port, http);
    const grown = (await memory(server.process.pid)).peak - before.now;
    console.log(`${what}: the server's peak memory rose by ${mib(grown)}`);
    assert(grown < ALLOWED_GROWTH, `${what}: the server grew by ${mib(grown)}`);
  };

  await t.step(`${FILES} HEAD requests over HTTP, each needing a digest`, async () => {
    await bounded("HEAD", async (_, http) => {
      await Promise.all(names.map(async (name) => {
        const response = await fetch(`http://127.0.0.1:${http}/${name}`, { method: "HEAD" });
        await response.body?.cancel();
        assert(response.ok, `${name}: ${response.status}`);
        assert(response.headers.has("repr-digest"));
      }));
    });
  });

  await t.step(
    `${FILES} framed requests for the first byte, each ending with a digest`,
    async () => {
      await bounded("GET byte 0", async (port) => {
        await Promise.all(names.map(async (name) => {
          const client = await FileClient.connect("127.0.0.1", port);
          try {
            await client.send(client.encodeGet(name, 0, 1));
            await client.readFile({ header() {}, data() {} });
          } finally {
            client.close();
          }
        }));
      });
    },
  );
});
