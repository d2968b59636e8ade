/**
 * The server end to end: real servers on ephemeral ports with temp data, driven by the real
 * client as a subprocess, by the client library, and by raw sockets for byte-level cases.
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { FileClient } from "../lib/client/client.ts";
import { ServerError } from "../lib/client/errors.ts";
import { XXH3_128 } from "../lib/shared/digest.ts";
import { ErrorCode } from "../lib/shared/errors.ts";
import { encodeFrame, Frame, HEADER_BYTES } from "../lib/shared/frames.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import {
  codec,
  encodeSetup,
  preamble,
  readError,
  readHello,
  VERSION,
} from "../lib/shared/protocol.ts";
import {
  fetchFile,
  rawConnect,
  runClient,
  startServer,
  tempFolder,
  text,
  xxh3,
} from "./harness.ts";
import { concat } from "../lib/shared/io.ts";
import { randomBytes } from "../testing/support.ts";

Deno.test("the real client, both forms, against a real server", async (t) => {
  const big = randomBytes(3 * 1024 * 1024 + 17, 3);
  await using data = await tempFolder({
    "hello.txt": "hello, world\n",
    "nested/deep/file.bin": randomBytes(5000, 5),
    "big.bin": big,
  });
  await using out = await tempFolder();
  await using server = await startServer(data.path, { cacheBytes: 1024 * 1024 });
  const port = String(server.addr.port);

  await t.step("list (modern) shows every file with a readable table", async () => {
    const result = await runClient(["--port", port, "list"]);
    assertEquals(result.code, 0, result.stderr);
    for (const name of ["hello.txt", "nested/deep/file.bin", "big.bin"]) {
      assert(result.stdout.includes(name), `list lacks ${name}:\n${result.stdout}`);
    }
    assert(result.stdout.startsWith("      SIZE  MODIFIED          CACHED  NAME\n"), result.stdout);
  });

  await t.step("list --json parses and carries sizes", async () => {
    const result = await runClient(["--port", port, "list", "--json"]);
    assertEquals(result.code, 0, result.stderr);
    const entries = JSON.parse(result.stdout) as { name: string; size: number }[];
    assertEquals(entries.find((e) => e.name === "big.bin")?.size, big.length);
  });

  await t.step("get several files into --output, byte-exact", async () => {
    const result = await runClient([
      "--port",
      port,
      "get",
      "hello.txt",
      "nested/deep/file.bin",
      "big.bin",
      "--output",
      out.path,
    ]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(await Deno.readTextFile(`${out.path}/hello.txt`), "hello, world\n");
    assertEquals(await Deno.readFile(`${out.path}/nested/deep/file.bin`), randomBytes(5000, 5));
    assertEquals(await Deno.readFile(`${out.path}/big.bin`), big);
  });

  await t.step("the original form: HOST PORT file NAME saves into client_data", async () => {
    await using cwd = await tempFolder({ "client_data/.keep": "" });
    const result = await runClient(["127.0.0.1", port, "file", "hello.txt"], { cwd: cwd.path });
    assertEquals(result.code, 0, result.stderr);
    assertEquals(await Deno.readTextFile(`${cwd.path}/client_data/hello.txt`), "hello, world\n");
    const list = await runClient(["127.0.0.1", port, "list"], { cwd: cwd.path });
    assertEquals(list.code, 0, list.stderr);
    assert(list.stdout.includes("hello.txt"));
  });

  await t.step("--output - writes the bytes to stdout", async () => {
    const result = await runClient(["--port", port, "get", "nested/deep/file.bin", "-o", "-"]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.bytes, randomBytes(5000, 5));
  });

  await t.step("a missing file exits 1 with one clear line; others still arrive", async () => {
    const result = await runClient([
      "--port",
      port,
      "get",
      "nope.txt",
      "hello.txt",
      "--output",
      out.path,
    ]);
    assertEquals(result.code, 1);
    assertEquals(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert(result.stderr.includes("nope.txt"), result.stderr);
    assertEquals(await Deno.readTextFile(`${out.path}/hello.txt`), "hello, world\n");
  });

  await t.step("stats --json has the documented names", async () => {
    const result = await runClient(["--port", port, "stats", "--json"]);
    assertEquals(result.code, 0, result.stderr);
    const stats = JSON.parse(result.stdout);
    for (
      const key of [
        "cacheBytes",
        "cacheCapacity",
        "cacheEntries",
        "hits",
        "misses",
        "evictions",
        "bytesSent",
        "connections",
        "uptimeSeconds",
        "policy",
        "hitRatio",
        "byteHitRatio",
      ]
    ) {
      assert(key in stats, `stats lacks ${key}`);
    }
    assertEquals(stats.cacheCapacity, 1024 * 1024);
    assert(stats.cacheBytes <= stats.cacheCapacity);
  });

  await t.step("help prints the server's requests", async () => {
    const result = await runClient(["--port", port, "help"]);
    assertEquals(result.code, 0, result.stderr);
    assert(result.stdout.includes("get NAME"), result.stdout);
  });

  await t.step("usage mistakes exit 2; no server exits 3 with a clear line", async () => {
    assertEquals((await runClient(["--port", port, "fetch"])).code, 2);
    assertEquals((await runClient(["--port", port, "get"])).code, 2);
    assertEquals((await runClient(["--bogus"])).code, 2);
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const unused = (closed.addr as Deno.NetAddr).port;
    closed.close();
    const result = await runClient(["--port", String(unused), "list"]);
    assertEquals(result.code, 3);
    assertEquals(
      result.stderr.trim(),
      `client: cannot connect to 127.0.0.1:${unused}: connection refused; is the server running?`,
    );
  });
});

Deno.test("hits come from the cache, misses from disk, big files are never cached", async (t) => {
  const small = randomBytes(200_000, 7);
  const large = randomBytes(600_000, 8);
  await using data = await tempFolder({ "small.bin": small, "large.bin": large });
  await using server = await startServer(data.path, { cacheBytes: 500_000 });
  const client = await FileClient.connect("127.0.0.1", server.addr.port);
  try {
    await t.step("first get is a miss from disk, second a hit from cache", async () => {
      const first = await fetchFile(client, "small.bin");
      assertEquals(first.source, "disk");
      assertEquals(first.bytes, small);
      assertEquals(first.digest, await xxh3(small));
      const second = await fetchFile(client, "small.bin");
      assertEquals(second.source, "cache");
      assertEquals(second.bytes, small);
      assertEquals(second.digest, await xxh3(small));
    });
    await t.step("a file larger than the cache streams and stays uncached", async () => {
      for (let i = 0; i < 2; i++) {
        const got = await fetchFile(client, "large.bin");
        assertEquals(got.source, "disk");
        assertEquals(got.bytes, large);
        assertEquals(got.digest, await xxh3(large));
      }
      const stats = await server.stats();
      assert(stats.cacheBytes <= stats.cacheCapacity);
      assertEquals(stats.cacheEntries, 1);
    });
    await t.step("a get with an offset sends the rest and the whole file's digest", async () => {
      for (const name of ["small.bin", "large.bin"]) {
        const whole = name === "small.bin" ? small : large;
        const got = await fetchFile(client, name, 12345);
        assertEquals(got.bytes, whole.subarray(12345));
        assertEquals(got.digest, await xxh3(whole));
      }
    });
    await t.step("an offset past the end is a clear bad request", async () => {
      await client.send(client.encodeGet("small.bin", small.length + 1));
      const error = await client.readFile({ header() {}, data() {} }).catch((e) => e);
      assert(error instanceof ServerError);
      assertEquals(error.code, ErrorCode.BadRequest);
    });
  } finally {
    client.close();
  }
});

Deno.test("the original dialect, byte for byte", async (t) => {
  const bytes = randomBytes(300_000, 9);
  // A name of about 1 KiB, near the longest accepted: folders of 200 characters each.
  const longName = [..."wxyz"].map((c) => c.repeat(200)).join("/") + "/long.txt";
  await using data = await tempFolder({
    "cat.jpg": bytes,
    "file1.txt": "one\n",
    [longName]: "deep",
  });
  await using server = await startServer(data.path);
  const port = server.addr.port;

  for (const round of ["miss", "hit"]) {
    await t.step(`file@NAME: OK@ then the exact bytes then close (${round})`, async () => {
      using socket = await rawConnect(port);
      assertEquals(await socket.readExactly(GREETING.length), GREETING);
      await socket.write("file@cat.jpg");
      assertEquals(text(await socket.readExactly(3)), "OK@");
      assertEquals(await socket.readToEnd(), bytes);
    });
  }

  await t.step("a missing file answers FNF and closes", async () => {
    using socket = await rawConnect(port);
    await socket.readExactly(GREETING.length);
    await socket.write("file@missing.txt");
    assertEquals(text(await socket.readToEnd()), "FNF");
  });

  await t.step("a name escaping the folder answers FNF", async () => {
    using socket = await rawConnect(port);
    await socket.readExactly(GREETING.length);
    await socket.write("file@../../etc/passwd");
    assertEquals(text(await socket.readToEnd()), "FNF");
  });

  await t.step("list names the files and the cached ones, with one @", async () => {
    using socket = await rawConnect(port);
    await socket.readExactly(GREETING.length);
    await socket.write("list");
    const answer = text(await socket.readToEnd());
    assert(answer.startsWith("OK@"), answer);
    assertEquals(answer.split("@").length, 2);
    const files = answer.split("\n[FILES IN CACHE]:")[0].split("\n");
    assertEquals(files.slice(0, 2), ["OK@", "[FILES INSIDE THE SERVER DIRECTORY]:"]);
    assert(files.includes("cat.jpg") && files.includes("file1.txt"), answer);
    assert(answer.includes("[FILES IN CACHE]:\ncat.jpg"), answer);
  });

  await t.step("help answers OK@ and the commands", async () => {
    using socket = await rawConnect(port);
    await socket.readExactly(GREETING.length);
    await socket.write("help\n");
    const answer = text(await socket.readToEnd());
    assert(answer.startsWith("OK@[HELP]"), answer);
    assertEquals(answer.split("@").length, 2);
  });

  await t.step("file@ with a name of about 1 KiB is served whole", async () => {
    using socket = await rawConnect(port);
    await socket.readExactly(GREETING.length);
    await socket.write(`file@${longName}`);
    assertEquals(text(await socket.readToEnd()), "OK@deep");
  });

  await t.step("a request over 2 KiB answers ERR@, never a file named by its start", async () => {
    using socket = await rawConnect(port);
    await socket.readExactly(GREETING.length);
    await socket.write(`file@cat.jpg${"x".repeat(2100)}`);
    assert(text(await socket.readToEnd()).startsWith("ERR@"));
  });

  await t.step("a line that ends before a command is whole answers ERR@ at once", async () => {
    for (const request of ["lis\n", "file@\n"]) {
      using socket = await rawConnect(port);
      await socket.readExactly(GREETING.length);
      await socket.write(request);
      assert(text(await socket.readToEnd()).startsWith("ERR@"), JSON.stringify(request));
    }
  });

  await t.step("anything else answers ERR@ and closes", async () => {
    using socket = await rawConnect(port);
    await socket.readExactly(GREETING.length);
    await socket.write("GET / HTTP/1.1\r\n\r\n");
    assert(text(await socket.readToEnd()).startsWith("ERR@"));
  });
});

/** Reads one frame from a raw socket: type and payload. */
async function readFrame(socket: Awaited<ReturnType<typeof rawConnect>>) {
  const header = await socket.readExactly(HEADER_BYTES);
  const length = new DataView(header.buffer).getUint32(1);
  return { type: header[0], payload: await socket.readExactly(length) };
}

Deno.test("framed protocol edge cases on raw sockets", async (t) => {
  await using data = await tempFolder({ "a.txt": "aaa", ".secret": "hidden" });
  await using server = await startServer(data.path);
  const port = server.addr.port;

  async function session() {
    const socket = await rawConnect(port);
    await socket.write(preamble(1));
    assertEquals(await socket.readExactly(GREETING.length), GREETING);
    assertEquals((await readFrame(socket)).type, Frame.Hello);
    return socket;
  }

  await t.step("bad names get an error answer and the connection carries on", async () => {
    using socket = await session();
    const names = ["../a.txt", "/etc/passwd", "a\0.txt", ".secret", "", "a.txt/"];
    await socket.write(new Uint8Array(names.flatMap((n) => [...codec(1).encodeGet({ name: n })])));
    for (const name of names) {
      const frame = await readFrame(socket);
      assertEquals(frame.type, Frame.Error, `no error for ${JSON.stringify(name)}`);
      assertEquals(readError(frame.payload).code, ErrorCode.BadRequest, JSON.stringify(name));
    }
    await socket.write(codec(1).encodeGet({ name: "a.txt" }));
    const file = await readFrame(socket);
    assertEquals(file.type, Frame.File);
    assertEquals(codec(1).readFileHeader(file.payload).size, 3);
  });

  await t.step("pipelined requests are answered in order", async () => {
    using socket = await session();
    await socket.write(
      new Uint8Array([
        ...codec(1).encodeGet({ name: "a.txt" }),
        ...encodeFrame(Frame.Stats),
        ...codec(1).encodeGet({ name: "missing" }),
        ...encodeFrame(Frame.Quit),
      ]),
    );
    const types = [];
    for (;;) {
      const frame = await readFrame(socket);
      types.push(frame.type);
      if (frame.type === Frame.Bye) break;
    }
    assertEquals(types, [
      Frame.File,
      Frame.Data,
      Frame.End,
      Frame.StatsReply,
      Frame.Error,
      Frame.Bye,
    ]);
    assertEquals((await socket.readToEnd()).length, 0);
  });

  await t.step(
    "an oversized frame is refused with TooLarge and the connection closes",
    async () => {
      using socket = await session();
      const header = new Uint8Array(HEADER_BYTES);
      header[0] = Frame.Get;
      new DataView(header.buffer).setUint32(1, 0xffffffff);
      await socket.write(header);
      const frame = await readFrame(socket);
      assertEquals(readError(frame.payload).code, ErrorCode.TooLarge);
      assertEquals((await socket.readToEnd()).length, 0);
    },
  );

  await t.step("an unknown request type is refused and the connection closes", async () => {
    using socket = await session();
    await socket.write(encodeFrame(0x42 as typeof Frame.List));
    const frame = await readFrame(socket);
    assertEquals(readError(frame.payload).code, ErrorCode.BadRequest);
    assertEquals((await socket.readToEnd()).length, 0);
  });

  await t.step("version 0 is refused as unsupported", async () => {
    using socket = await rawConnect(port);
    await socket.write(new Uint8Array([...preamble(1).subarray(0, 4), 0]));
    await socket.readExactly(GREETING.length);
    const frame = await readFrame(socket);
    assertEquals(readError(frame.payload).code, ErrorCode.Unsupported);
  });

  await t.step("a newer version is answered in the newest both speak", async () => {
    using socket = await rawConnect(port);
    const setup = encodeSetup({ digests: [99, XXH3_128.id], token: new Uint8Array(0) });
    await socket.write(concat([preamble(99), setup]));
    await socket.readExactly(GREETING.length);
    const frame = await readFrame(socket);
    strictEqual(frame.type, Frame.Hello);
    const hello = readHello(frame.payload);
    assertEquals([hello.version, hello.digest], [VERSION, XXH3_128]);
  });

  await t.step("a version 2 client that skips SETUP is told so", async () => {
    using socket = await rawConnect(port);
    await socket.write(concat([preamble(2), encodeFrame(Frame.Stats)]));
    await socket.readExactly(GREETING.length);
    const frame = await readFrame(socket);
    assertEquals(readError(frame.payload), {
      code: ErrorCode.BadRequest,
      message: "a version 2 client sends SETUP first",
    });
  });

  await t.step("the server still serves an honest client afterwards", async () => {
    const client = await FileClient.connect("127.0.0.1", port);
    const got = await fetchFile(client, "a.txt");
    client.close();
    assertEquals(text(got.bytes), "aaa");
  });
});

Deno.test("100 clients, 10 files each, byte-exact", async () => {
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < 20; i++) files[`f${i}.bin`] = randomBytes(1000 + i * 7919, i + 1);
  await using data = await tempFolder(files);
  await using server = await startServer(data.path, { cacheBytes: 100_000 });
  const names = Object.keys(files);
  const failures: string[] = [];
  await Promise.all(Array.from({ length: 100 }, async (_, c) => {
    const client = await FileClient.connect("127.0.0.1", server.addr.port);
    try {
      for (let k = 0; k < 10; k++) {
        const name = names[(c * 7 + k * 3) % names.length];
        const got = await fetchFile(client, name);
        if (
          got.bytes.length !== files[name].length ||
          !got.bytes.every((b, i) => b === files[name][i])
        ) {
          failures.push(`client ${c} got wrong bytes for ${name}`);
        }
      }
    } finally {
      client.close();
    }
  }));
  assertEquals(failures, []);
  assertEquals((await server.stats()).requests, 1000);
});

Deno.test("with a 1 MiB cache and 8 busy clients, the cache never exceeds its cap", async () => {
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < 12; i++) files[`f${i}.bin`] = randomBytes(150_000 + i * 20_000, i + 100);
  await using data = await tempFolder(files);
  await using server = await startServer(data.path, { cacheBytes: 1024 * 1024 });
  const names = Object.keys(files);
  let running = true;
  let samples = 0;
  const observer = (async () => {
    const client = await FileClient.connect("127.0.0.1", server.addr.port);
    try {
      while (running) {
        const stats = await client.stats();
        samples++;
        assert(
          (stats.cacheBytes as number) + (stats.cacheReserved as number) <=
            (stats.cacheCapacity as number),
          `over the cap: ${JSON.stringify(stats)}`,
        );
      }
    } finally {
      client.close();
    }
  })();
  await Promise.all(Array.from({ length: 8 }, async (_, c) => {
    const client = await FileClient.connect("127.0.0.1", server.addr.port);
    try {
      for (let k = 0; k < 30; k++) {
        const name = names[(c * 5 + k * 7) % names.length];
        const got = await fetchFile(client, name);
        assertEquals(got.bytes.length, files[name].length);
      }
    } finally {
      client.close();
    }
  }));
  running = false;
  await observer;
  const stats = await server.stats();
  assert(samples > 10, `only ${samples} samples`);
  assert(stats.evictions > 0, "no evictions happened");
  assert(stats.cacheBytes <= stats.cacheCapacity);
});
