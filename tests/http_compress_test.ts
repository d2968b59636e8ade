/**
 * Compressed answers of the HTTP port: negotiated by Accept-Encoding for the types that compress,
 * byte-exact once decompressed (by curl --compressed, as users fetch), each coding with its own
 * ETag and digests, made once and cached within the cache's cap, never stale, precompressed
 * siblings sent as they are, and none of it with `--compress off`.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import zlib from "node:zlib";
import { has, randomBytes, run } from "../testing/support.ts";
import http from "node:http";
import { sha256, startServer, tempFolder, text } from "./harness.ts";
import { concat } from "../lib/shared/io.ts";

/** Text that compresses as source code and prose do: words repeated in varied order. */
function prose(bytes: number, seed = 1): string {
  const words = ["cache", "server", "file", "bytes", "request", "answer", "the", "of", "a", "is"];
  let text = "";
  let state = seed;
  while (text.length < bytes) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    text += words[state % words.length] + (state % 7 === 0 ? ".\n" : " ");
  }
  return text.slice(0, bytes);
}

/** An answer as it came over the wire (fetch() would decompress it): status, fields, bytes. */
interface RawAnswer {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** GETs `url` with `headers` through node:http, which leaves the body as it is sent. */
function rawGet(url: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, (response) => {
      const chunks: Uint8Array[] = [];
      response.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      response.on("end", () => {
        const fields = new Headers();
        for (const [name, value] of Object.entries(response.headers)) {
          if (typeof value === "string") fields.set(name, value);
        }
        resolve({ status: response.statusCode!, headers: fields, body: concat(chunks) });
      });
      response.on("error", reject);
    }).on("error", reject);
  });
}

const DECODE: Record<string, (bytes: Uint8Array) => Uint8Array> = {
  br: (bytes) => zlib.brotliDecompressSync(bytes),
  zstd: (bytes) => zlib.zstdDecompressSync(bytes),
  gzip: (bytes) => zlib.gunzipSync(bytes),
};

Deno.test("compressed answers: negotiated, exact, cached once, never stale", async (t) => {
  const files = {
    "app.js": prose(200_000),
    "style.css": prose(30_000, 2),
    "tiny.txt": "short",
    "photo.png": randomBytes(50_000, 3),
    "docs/guide.html": prose(20_000, 4),
  };
  await using data = await tempFolder(files);
  await using server = await startServer(data.path, { httpPort: 0 });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const response = await rawGet(`${base}${path}`, headers);
    return { response, body: response.body };
  };
  const tags = new Map<string, string>();

  for (const coding of ["br", "zstd", "gzip"]) {
    await t.step(
      `${coding}: smaller, exact once decoded, with digests of what is sent`,
      async () => {
        const { response, body } = await get("/app.js", { "accept-encoding": coding });
        assertEquals(response.headers.get("content-encoding"), coding);
        assertEquals(response.headers.get("vary"), "Accept-Encoding");
        assertEquals(Number(response.headers.get("content-length")), body.length);
        assert(body.length < files["app.js"].length / 2, `${body.length}`);
        assertEquals(new TextDecoder().decode(DECODE[coding](body)), files["app.js"]);
        const digest = (await sha256(body)).toBase64();
        assertEquals(response.headers.get("repr-digest"), `sha-256=:${digest}:`);
        tags.set(coding, response.headers.get("etag")!);
      },
    );
  }

  await t.step(
    "each coding has its ETag; a 304 only for the tag of what would be sent",
    async () => {
      const plain = await get("/app.js");
      assertEquals(plain.response.headers.get("content-encoding"), null);
      assertEquals(new Set([...tags.values(), plain.response.headers.get("etag")]).size, 4);
      const revalidate = (coding: string, tag: string) =>
        fetch(`${base}/app.js`, { headers: { "accept-encoding": coding, "if-none-match": tag } });
      const same = await revalidate("gzip", tags.get("gzip")!);
      assertEquals(same.status, 304);
      const other = await revalidate("br", tags.get("gzip")!);
      assertEquals([other.status, other.headers.get("content-encoding")], [200, "br"]);
      await other.body?.cancel();
    },
  );

  await t.step("the client's preference, then the best: br before zstd before gzip", async () => {
    const coding = async (accept: string) =>
      (await get("/style.css", { "accept-encoding": accept })).response.headers.get(
        "content-encoding",
      );
    assertEquals(await coding("gzip, deflate, br, zstd"), "br"); // what Chromium sends
    assertEquals(await coding("gzip;q=1, br;q=0.5"), "gzip");
    assertEquals(await coding("identity"), null);
  });

  await t.step("as they are: images, tiny files, ranges", async () => {
    const accept = { "accept-encoding": "gzip, br, zstd" };
    const png = await get("/photo.png", accept);
    assertEquals([png.response.headers.get("content-encoding"), png.response.headers.get("vary")], [
      null,
      null,
    ]);
    assertEquals((await get("/tiny.txt", accept)).response.headers.get("content-encoding"), null);
    const range = await get("/app.js", { ...accept, range: "bytes=0-9" });
    assertEquals([range.response.status, range.response.headers.get("content-encoding")], [
      206,
      null,
    ]);
    assertEquals(new TextDecoder().decode(range.body), files["app.js"].slice(0, 10));
  });

  await t.step("a copy is made once, then served from the cache", async () => {
    const before = await server.stats();
    for (let i = 0; i < 5; i++) await get("/docs/guide.html", { "accept-encoding": "br" });
    const after = await server.stats();
    // The file missed once, its copy once (each worker thread that has not made the copy itself
    // compresses once more, and finds it cached): both then found in the cache, held once.
    assertEquals(after.misses - before.misses, 2);
    assertEquals(after.cacheEntries - before.cacheEntries, 2);
  });

  await t.step("a file changed on disk is compressed again, never served stale", async () => {
    const changed = prose(25_000, 9);
    await Deno.writeTextFile(join(data.path, "style.css"), changed);
    const { body } = await get("/style.css", { "accept-encoding": "br" });
    assertEquals(new TextDecoder().decode(DECODE.br(body)), changed);
  });
});

Deno.test("curl --compressed, wget and aria2 asking for gzip get the file itself", async (t) => {
  const text = prose(100_000, 5);
  await using data = await tempFolder({ "notes.txt": text });
  await using server = await startServer(data.path, { httpPort: 0 });
  const url = `http://127.0.0.1:${server.httpAddr!.port}/notes.txt`;
  await using out = await tempFolder();
  const tools = [
    ["curl", ["-sf", "--compressed", "-o", join(out.path, "curl.txt"), url]],
    ["wget", ["-q", "--compression=auto", "-O", join(out.path, "wget.txt"), url]],
    // aria2 checks a Digest field against the bytes it decoded: a compressed answer has none.
    ["aria2c", ["-q", "--http-accept-gzip=true", "-d", out.path, "-o", "aria2c.txt", url]],
  ] as const;
  for (const [tool, args] of tools) {
    await t.step({
      name: tool,
      ignore: !await has(tool),
      fn: async () => {
        const result = await run(tool, [...args]);
        assertEquals(result.code, 0, result.stderr);
        assertEquals(await Deno.readTextFile(join(out.path, `${tool}.txt`)), text);
      },
    });
  }
});

Deno.test("the cache's cap holds with compressed copies in it", async () => {
  const names = Array.from({ length: 30 }, (_, i) => `f${i}.txt`);
  await using data = await tempFolder(
    Object.fromEntries(names.map((name, i) => [name, prose(20_000, i + 1)])),
  );
  const cap = 64 * 1024;
  await using server = await startServer(data.path, { httpPort: 0, cacheBytes: cap });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  for (const coding of ["br", "gzip", "zstd", "br"]) {
    await Promise.all(names.map(async (name) => {
      const response = await rawGet(`${base}/${name}`, { "accept-encoding": coding });
      const body = response.body;
      assertEquals(response.headers.get("content-encoding"), coding);
      assertEquals(DECODE[coding](body).length, 20_000);
      const { cacheBytes, cacheCapacity } = await server.stats();
      assert(cacheBytes <= cacheCapacity, `${cacheBytes} > ${cacheCapacity}`);
    }));
  }
  assert((await server.stats()).evictions > 0, "the copies were evicted as files are");
});

Deno.test("precompressed siblings go as they are while current; --compress off sends none", async (t) => {
  const text = prose(10_000, 6);
  const gz = new Uint8Array(zlib.gzipSync(new TextEncoder().encode(text), { level: 9 }));
  await using data = await tempFolder({ "site.css": text, "site.css.gz": gz });
  const old = new Date(Date.now() - 3_600_000); // older than the file, whatever its time
  // Every request checks the disk, so the sibling made older is seen so at once.
  await using server = await startServer(data.path, { httpPort: 0, revalidateMs: 0 });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  const get = async (url: string, accept: string) => {
    const response = await rawGet(url, { "accept-encoding": accept });
    return { response, body: response.body };
  };

  await t.step("NAME.gz, as new as NAME, is sent for gzip, byte for byte", async () => {
    const { response, body } = await get(`${base}/site.css`, "gzip");
    assertEquals(response.headers.get("content-encoding"), "gzip");
    assertEquals(response.headers.get("content-type"), "text/css; charset=utf-8");
    assertEquals(body, gz);
  });

  await t.step("older than NAME, it is not", async () => {
    await Deno.utime(join(data.path, "site.css.gz"), old, old);
    const { body } = await get(`${base}/site.css`, "gzip");
    assert(!body.every((byte, i) => byte === gz[i]) || body.length !== gz.length);
    assertEquals(new TextDecoder().decode(zlib.gunzipSync(body)), text);
  });

  await t.step("--compress off: the file as it is, whatever is accepted", async () => {
    await using off = await startServer(data.path, { httpPort: 0, compress: false });
    const { response, body } = await get(
      `http://127.0.0.1:${off.httpAddr!.port}/site.css`,
      "gzip, br, zstd",
    );
    assertEquals([response.headers.get("content-encoding"), response.headers.get("vary")], [
      null,
      null,
    ]);
    assertEquals(new TextDecoder().decode(body), text);
  });
});

Deno.test("folder pages and their JSON go compressed as they are made", async () => {
  const files = Object.fromEntries(
    Array.from({ length: 2000 }, (_, i) => [`reports/report ${i}.txt`, `${i}`]),
  );
  await using data = await tempFolder(files);
  await using server = await startServer(data.path, { httpPort: 0 });
  const url = `http://127.0.0.1:${server.httpAddr!.port}/reports/`;
  for (const accept of ["text/html", "application/json"]) {
    const plain = await rawGet(url, { accept });
    assertEquals(plain.headers.get("content-encoding"), null);
    for (const coding of ["br", "zstd", "gzip"]) {
      const packed = await rawGet(url, { accept, "accept-encoding": coding });
      assertEquals(packed.headers.get("content-encoding"), coding);
      assertEquals(packed.headers.get("transfer-encoding"), "chunked");
      assertEquals(packed.headers.get("vary"), "Accept, Accept-Encoding");
      assertEquals(new TextDecoder().decode(DECODE[coding](packed.body)), text(plain.body));
      assert(packed.body.length < plain.body.length / 5, `${coding} ${accept}`);
    }
  }
});
