/**
 * Protocol version 2 beside version 1: the digest agreed per connection, ranges, SHA-256 in lists,
 * and clients and servers of either version working with each other.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { FileClient } from "../lib/client/client.ts";
import { ServerError } from "../lib/client/errors.ts";
import { SHA256, XXH3_128 } from "../lib/shared/digest.ts";
import { ErrorCode } from "../lib/shared/errors.ts";
import { Frame } from "../lib/shared/frames.ts";
import { codec, encodeEnd } from "../lib/shared/protocol.ts";
import {
  fakeServer,
  fetchFile,
  fileHeader,
  runClient,
  sha256,
  startServer,
  tempFolder,
  xxh3,
} from "./harness.ts";
import { randomBytes } from "../testing/support.ts";

const MiB = 1024 * 1024;

/** The bytes of `name` from `offset` to `end` over `client`, and the digest its answer ends with. */
async function fetchRange(client: FileClient, name: string, offset: number, end: number) {
  const parts: Uint8Array[] = [];
  await client.send(client.encodeGet(name, offset, end));
  const digest = await client.readFile({
    header() {},
    data: (chunk) => void parts.push(chunk.slice()),
  }, offset);
  const bytes = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  parts.reduce((at, part) => (bytes.set(part, at), at + part.length), 0);
  return { bytes, digest };
}

Deno.test("the digest is agreed per connection: XXH3-128 by default, SHA-256 on request", async (t) => {
  const small = randomBytes(100_000, 1);
  const big = randomBytes(6 * MiB, 2);
  await using data = await tempFolder({ "small.bin": small, "big.bin": big });
  // big.bin is larger than the cache: it streams from disk every time.
  await using server = await startServer(data.path, { cacheBytes: 4 * MiB });
  const port = server.addr.port;

  for (const [algorithm, expected] of [[XXH3_128, xxh3], [SHA256, sha256]] as const) {
    await t.step(`${algorithm.name}: from disk, from the cache and streamed`, async () => {
      const client = await FileClient.connect("127.0.0.1", port, { digests: [algorithm] });
      assertEquals([client.version, client.digest], [2, algorithm]);
      for (const [name, bytes] of [["small.bin", small], ["small.bin", small], ["big.bin", big]]) {
        const got = await fetchFile(client, name as string);
        assertEquals(got.digest, await expected(bytes as Uint8Array));
      }
      client.close();
    });
  }

  await t.step(
    "clients with other digests reading one load at once each get their own",
    async () => {
      await Deno.writeFile(`${data.path}/fresh.bin`, randomBytes(3 * MiB, 3));
      const fresh = await Deno.readFile(`${data.path}/fresh.bin`);
      const [a, b] = await Promise.all(
        [XXH3_128, SHA256].map((algorithm) =>
          FileClient.connect("127.0.0.1", port, { digests: [algorithm] })
        ),
      );
      const [first, second] = await Promise.all([
        fetchFile(a, "fresh.bin"),
        fetchFile(b, "fresh.bin"),
      ]);
      assertEquals([first.digest, second.digest], [await xxh3(fresh), await sha256(fresh)]);
      a.close();
      b.close();
    },
  );

  await t.step(
    "the real client checks with the digest asked for, or says what it knows",
    async () => {
      const out = await Deno.makeTempDir();
      const args = ["--port", String(port), "get", "small.bin", "-o", out, "--digest"];
      assertEquals((await runClient([...args, "sha256"])).code, 0);
      assertEquals(await Deno.readFile(`${out}/small.bin`), small);
      const wrong = await runClient([...args, "md5"]);
      assertEquals([wrong.code, wrong.stderr], [
        2,
        'client: --digest takes xxh3-128 or sha256, not "md5" (see client --help)\n',
      ]);
      await Deno.remove(out, { recursive: true });
    },
  );
});

Deno.test("ranges: any part of a file, cached, loading or streamed, with the whole file's digest", async (t) => {
  const cached = randomBytes(3 * MiB + 17, 4);
  const streamed = randomBytes(9 * MiB + 5, 5);
  await using data = await tempFolder({ "cached.bin": cached, "streamed.bin": streamed });
  await using server = await startServer(data.path, { cacheBytes: 8 * MiB });
  const client = await FileClient.connect("127.0.0.1", server.addr.port);

  for (const [name, whole] of [["cached.bin", cached], ["streamed.bin", streamed]] as const) {
    await t.step(`${name}: parts that join into the file, each with its digest`, async () => {
      const cuts = [0, 1, 1 << 20, whole.length - 3, whole.length];
      const parts = await Promise.all(
        cuts.slice(1).map(async (end, i) => {
          const own = await FileClient.connect("127.0.0.1", server.addr.port);
          try {
            return await fetchRange(own, name, cuts[i], end);
          } finally {
            own.close();
          }
        }),
      );
      for (const part of parts) assertEquals(part.digest, await xxh3(whole));
      const joined = new Uint8Array(whole.length);
      parts.reduce((at, part) => (joined.set(part.bytes, at), at + part.bytes.length), 0);
      assertEquals(joined, whole);
    });
  }

  await t.step("an empty range, and one past the end", async () => {
    assertEquals((await fetchRange(client, "cached.bin", 5, 5)).bytes.length, 0);
    const past = await fetchRange(client, "cached.bin", 10, cached.length + 1).catch((e) => e);
    assert(past instanceof ServerError && past.code === ErrorCode.BadRequest, String(past));
  });
  client.close();
});

Deno.test("list --json --sha256 gives what sha256sum gives", async () => {
  const files = { "a.txt": "alpha\n", "docs/b.bin": randomBytes(70_000, 6) };
  await using data = await tempFolder(files);
  await using server = await startServer(data.path, { cacheBytes: 4 * MiB });
  const listed = await runClient([
    "--port",
    String(server.addr.port),
    "list",
    "--json",
    "--sha256",
  ]);
  assertEquals(listed.code, 0, listed.stderr);
  const hex = (bytes: Uint8Array) =>
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const sums = Object.fromEntries(
    await Promise.all(
      Object.entries(files).map(async ([name, contents]) => [
        name,
        hex(
          await sha256(
            typeof contents === "string" ? new TextEncoder().encode(contents) : contents,
          ),
        ),
      ]),
    ),
  );
  const entries = JSON.parse(listed.stdout) as { name: string; sha256: string }[];
  assertEquals(Object.fromEntries(entries.map((e) => [e.name, e.sha256])), sums);
  assertEquals(
    (await server.stats()).cacheEntries,
    0,
    "listing digests loaded files into the cache",
  );
});

Deno.test("a client meets a server of protocol version 1", async (t) => {
  const body = randomBytes(5000, 7);
  const digest = await sha256(body);
  await using old = fakeServer(async (out, request) => {
    const { offset } = codec(1).readGet(request.payload);
    await out.write(fileHeader(body.length, offset));
    const data = body.subarray(offset);
    const header = new Uint8Array(5);
    header[0] = Frame.Data;
    new DataView(header.buffer).setUint32(1, data.length);
    await out.write(header);
    await out.write(data);
    await out.write(encodeEnd(digest));
    return true;
  });

  await t.step("it speaks version 1 and checks SHA-256", async () => {
    const client = await FileClient.connect("127.0.0.1", old.port);
    assertEquals([client.version, client.digest], [1, SHA256]);
    assertEquals((await fetchFile(client, "x.bin")).digest, digest);
    client.close();
  });

  await t.step("asked for XXH3-128 only, it says the server cannot, in one line", async () => {
    const result = await runClient([
      "--port",
      String(old.port),
      "get",
      "x.bin",
      "--digest",
      "xxh3-128",
    ]);
    assertEquals([result.code, result.stderr], [
      3,
      `client: 127.0.0.1:${old.port} speaks only protocol version 1, whose digest is sha256, not xxh3-128\n`,
    ]);
  });
});
