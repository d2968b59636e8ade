/**
 * The server under abuse and faults: connection limits, idle and stalled peers, clients that
 * vanish mid-transfer, files that change under a transfer, and graceful shutdown.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import net from "node:net";
import { FileClient } from "../lib/client/client.ts";
import { ServerError } from "../lib/client/errors.ts";
import { ErrorCode } from "../lib/shared/errors.ts";
import { FrameDecoder } from "../lib/shared/frame_decoder.ts";
import { Frame } from "../lib/shared/frames.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import { codec, preamble, readError } from "../lib/shared/protocol.ts";
import {
  logged,
  rawConnect,
  runClient,
  startServer,
  tempFolder,
  text,
  until,
  xxh3,
} from "./harness.ts";
import { concat } from "../lib/shared/io.ts";
import { randomBytes, spawnServer } from "../testing/support.ts";

Deno.test("the connection limit: the next client is told the server is busy", async (t) => {
  await using data = await tempFolder({ "a.txt": "a" });
  await using server = await startServer(data.path, {
    maxConnections: 2,
    maxConnectionsPerHost: 2,
  });
  const port = server.addr.port;
  const held = [await rawConnect(port), await rawConnect(port)];
  for (const socket of held) await socket.readExactly(GREETING.length);

  await t.step("the original dialect sees DISCONNECTED@ with a reason", async () => {
    using socket = await rawConnect(port);
    const answer = text(await socket.readToEnd());
    assert(answer.startsWith("DISCONNECTED@Server busy"), answer);
  });

  await t.step("our client exits 3 with one line saying the server is busy", async () => {
    const result = await runClient(["--port", String(port), "list"]);
    assertEquals(result.code, 3);
    assert(/busy/.test(result.stderr), result.stderr);
    assertEquals(result.stderr.trim().split("\n").length, 1);
  });

  await t.step("once a connection closes, a new client is served", async () => {
    held.pop()![Symbol.dispose]();
    await until(async () => (await server.stats()).connections < 2, "the connection to close");
    const client = await FileClient.connect("127.0.0.1", port);
    assertEquals((await client.list()).length, 1);
    client.close();
  });
  for (const socket of held) socket[Symbol.dispose]();
});

Deno.test("idle and stalled connections are closed, and cost nothing after", async (t) => {
  const big = randomBytes(24 * 1024 * 1024, 4); // more than socket buffers hold
  await using data = await tempFolder({ "big.bin": big, "a.txt": "a" });
  await using server = await startServer(data.path, { idleTimeoutMs: 300 });
  const port = server.addr.port;

  await t.step("a framed client that sends nothing is closed after the idle timeout", async () => {
    using socket = await rawConnect(port);
    await socket.write(preamble(1));
    await socket.readToEnd();
    await logged(server, / reason=idle/);
  });

  await t.step("an original-dialect client that never sends its request is closed", async () => {
    using socket = await rawConnect(port);
    assertEquals(text(await socket.readToEnd()), text(GREETING));
  });

  await t.step("a reader that stops reading mid-transfer is dropped", async () => {
    using socket = await rawConnect(port);
    await socket.write(
      new Uint8Array([...preamble(1), ...codec(1).encodeGet({ name: "big.bin" })]),
    );
    await until(() => server.log.lines.some((l) => / reason=stalled/.test(l)), "a stall");
    await until(
      async () => (await server.stats()).connections === 0,
      "the stalled connection to go",
    );
  });

  await t.step("the server still serves an honest client", async () => {
    const client = await FileClient.connect("127.0.0.1", port);
    await client.send(client.encodeGet("a.txt"));
    const digest = await client.readFile({ header() {}, data() {} });
    client.close();
    assertEquals(digest, await xxh3(new TextEncoder().encode("a")));
  });
});

Deno.test("an answer may take longer than the request timeout while the next request waits", async () => {
  const big = randomBytes(16 * 1024 * 1024, 5); // more than socket buffers hold
  await using data = await tempFolder({ "big.bin": big });
  await using server = await startServer(data.path, { requestTimeoutMs: 200 });
  const client = await FileClient.connect("127.0.0.1", server.addr.port);
  try {
    // Both requests at once, as the client sends them on one connection: the second is whole
    // in the server's buffer while the first is answered to a reader slower than the timeout.
    await client.send(client.encodeGet("big.bin"), client.encodeGet("big.bin"));
    // A millisecond for every 16 KiB: a second for the file.
    const slowly = {
      header() {},
      data: (chunk: Uint8Array) =>
        new Promise<void>((done) => setTimeout(done, chunk.length >> 14)),
    };
    const started = Date.now();
    assertEquals(await client.readFile(slowly), await xxh3(big));
    assert(Date.now() - started > 200, "the answer was read faster than the request timeout");
    assertEquals(await client.readFile({ header() {}, data() {} }), await xxh3(big));
  } finally {
    client.close();
  }
  assertEquals(server.log.lines.filter((line) => / reason=request-timeout/.test(line)), []);
});

Deno.test("clients that vanish mid-transfer cost only their sockets", async () => {
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < 6; i++) files[`f${i}.bin`] = randomBytes(2 * 1024 * 1024 + i, 20 + i);
  await using data = await tempFolder(files);
  await using server = await startServer(data.path, { cacheBytes: 5 * 1024 * 1024 });
  const port = server.addr.port;
  for (let round = 0; round < 3; round++) {
    await Promise.all(
      Object.keys(files).map(async (name) => {
        const socket = await rawConnect(port);
        await socket.write(new Uint8Array([...preamble(1), ...codec(1).encodeGet({ name })]));
        await socket.readExactly(GREETING.length + 64 * 1024);
        socket[Symbol.dispose]();
      }),
    );
  }
  await until(
    async () => (await server.stats()).connections === 0,
    "the vanished connections to close",
  );
  await until(
    async () => (await server.stats()).cacheReserved === 0,
    "reservations to be released",
  );
  const stats = await server.stats();
  assert(stats.cacheBytes <= stats.cacheCapacity);
  const client = await FileClient.connect("127.0.0.1", port);
  for (const [name, bytes] of Object.entries(files)) {
    await client.send(client.encodeGet(name));
    let length = 0;
    const digest = await client.readFile({ header() {}, data: (c) => void (length += c.length) });
    assertEquals(length, bytes.length);
    assertEquals(digest, await xxh3(bytes), `wrong digest for ${name}`);
  }
  client.close();
});

Deno.test("a file that changes during a transfer is never presented as right", async (t) => {
  const size = 24 * 1024 * 1024;
  await using data = await tempFolder({ "grow.bin": randomBytes(size, 30) });
  for (const [label, cacheBytes] of [["loading into the cache", 64 << 20], ["uncached", 1 << 20]]) {
    await t.step(`truncated while ${label}: the client gets Changed, not an END`, async () => {
      await Deno.writeFile(`${data.path}/grow.bin`, randomBytes(size, 30));
      await using server = await startServer(data.path, { cacheBytes: cacheBytes as number });
      const client = await FileClient.connect("127.0.0.1", server.addr.port);
      await client.send(client.encodeGet("grow.bin"));
      let received = 0;
      const outcome = await client.readFile({
        header() {},
        async data(chunk) {
          if (received === 0) await Deno.truncate(`${data.path}/grow.bin`, 1000);
          received += chunk.length;
        },
      }).catch((error) => error);
      client.close();
      assert(outcome instanceof ServerError, `expected an error, got ${outcome}`);
      assertEquals(outcome.code, ErrorCode.Changed);
      assertEquals((await server.stats()).cacheEntries, 0);
    });
  }

  await t.step("a replaced file is reloaded; a deleted one is not served", async () => {
    await Deno.writeTextFile(`${data.path}/grow.bin`, "first version");
    await using server = await startServer(data.path);
    const client = await FileClient.connect("127.0.0.1", server.addr.port);
    const get = async () => {
      const parts: string[] = [];
      await client.send(client.encodeGet("grow.bin"));
      await client.readFile({ header() {}, data: (c) => void parts.push(text(c)) });
      return parts.join("");
    };
    assertEquals(await get(), "first version");
    assertEquals(await get(), "first version");
    await Deno.writeTextFile(`${data.path}/grow.bin.new`, "second, longer version");
    await Deno.rename(`${data.path}/grow.bin.new`, `${data.path}/grow.bin`);
    assertEquals(await get(), "second, longer version");
    await Deno.remove(`${data.path}/grow.bin`);
    const gone = await get().catch((error) => error);
    assert(gone instanceof ServerError && gone.code === ErrorCode.NotFound, String(gone));
    assertEquals((await server.stats()).cacheEntries, 0);
    client.close();
  });
});

Deno.test("SIGTERM: stops accepting, finishes transfers in flight, exits 0", async () => {
  const big = randomBytes(40 * 1024 * 1024, 50);
  await using data = await tempFolder({ "big.bin": big });
  await using server = await spawnServer(["--data", data.path]);
  const client = await FileClient.connect("127.0.0.1", server.port);
  await client.send(client.encodeGet("big.bin"));
  let received = 0;
  let signalled = false;
  const digest = await client.readFile({
    header() {},
    async data(chunk) {
      received += chunk.length;
      if (!signalled) {
        signalled = true;
        server.process.kill("SIGTERM");
        await server.waitFor(/shutdown/);
      }
    },
  });
  client.close();
  assertEquals(received, big.length);
  assertEquals(digest, await xxh3(big));
  assertEquals((await server.process.status).code, 0);
  assert(server.lines.some((line) => /stopped/.test(line)), "no summary logged");
});

Deno.test("a shutdown never cuts an answer short, even one waiting on a slow reader", async () => {
  const file = randomBytes(4096, 60);
  await using data = await tempFolder({ "small.bin": file });
  const server = await startServer(data.path);
  using socket = await rawConnect(server.addr.port);
  // Far more answers than socket buffers hold, and no reading: the server ends up waiting to
  // write, in the middle of an answer or between two.
  const requests = 3000;
  const get = codec(1).encodeGet({ name: "small.bin" });
  const batch = new Uint8Array(preamble(1).length + get.length * requests);
  batch.set(preamble(1));
  for (let i = 0; i < requests; i++) batch.set(get, preamble(1).length + i * get.length);
  const sending = socket.write(batch);
  await until(async () => (await server.stats()).requests > 100, "the server to answer");
  const closing = server.close();
  const bytes = await socket.readToEnd();
  socket[Symbol.dispose]();
  await closing;
  await sending.catch(() => {}); // the server stops reading once it shuts down
  const decoder = new FrameDecoder({ maxPayload: 1 << 20 });
  decoder.push(bytes.subarray(GREETING.length));
  const types: number[] = [];
  for (let frame = decoder.next(); frame; frame = decoder.next()) {
    types.push(frame.type);
    if (frame.type === Frame.File) {
      assertEquals(codec(1).readFileHeader(frame.payload).size, file.length);
    }
    if (frame.type === Frame.Data) assertEquals(frame.payload, file);
    if (frame.type === Frame.Error) {
      assertEquals(readError(frame.payload).code, ErrorCode.ShuttingDown);
    }
  }
  assert(decoder.atBoundary, "the connection closed in the middle of a frame");
  const answers = types.filter((type) => type === Frame.End).length;
  assert(answers > 0 && answers < requests, `${answers} answers`);
  const expected: number[] = [Frame.Hello];
  for (let i = 0; i < answers; i++) expected.push(Frame.File, Frame.Data, Frame.End);
  expected.push(Frame.Error);
  assertEquals(types, expected, "whole answers, then the shutdown notice");
});

/**
 * A connection from `from` (another loopback address, playing another host) that sends `request`
 * one byte every `everyMs`; resolves, once the server closes it, to all the server sent.
 */
function slowSender(port: number, from: string, request: Uint8Array, everyMs: number) {
  const socket = net.connect({ host: "127.0.0.1", port, localAddress: from });
  const received: Uint8Array[] = [];
  let sent = 0;
  const timer = setInterval(() => {
    if (sent < request.length) socket.write(request.subarray(sent, ++sent));
  }, everyMs);
  socket.on("data", (chunk: Uint8Array) => received.push(chunk));
  socket.on("error", () => {}); // a reset is a close too; what arrived before it is kept
  return new Promise<string>((resolve) => {
    socket.on("close", () => {
      clearInterval(timer);
      resolve(text(concat(received)));
    });
  });
}

Deno.test("slow senders from one host cannot lock other hosts out", async (t) => {
  const file = randomBytes(50_000, 12);
  await using data = await tempFolder({ "a.bin": file });
  await using server = await startServer(data.path, { maxConnections: 8, requestTimeoutMs: 1000 });
  const port = server.addr.port;
  const get = new Uint8Array([...preamble(1), ...codec(1).encodeGet({ name: "a".repeat(1000) })]);

  await t.step(
    "one address gets a quarter of the places; the rest are told which limit",
    async () => {
      const senders = Array.from({ length: 8 }, () => slowSender(port, "127.0.0.2", get, 100));
      const refusals = () => server.log.lines.filter((line) => / busy /.test(line)).length;
      await until(
        async () => refusals() === 6 && (await server.stats()).connections === 2,
        "the senders' places",
      );
      const honest = await FileClient.connect("127.0.0.1", port);
      await honest.send(honest.encodeGet("a.bin"));
      assertEquals(await honest.readFile({ header() {}, data() {} }), await xxh3(file));
      honest.close();
      const heard = await Promise.all(senders);
      const busy = heard.filter((said) => said.startsWith("DISCONNECTED@"));
      assertEquals(busy.length, 6);
      assert(busy[0].includes("open from 127.0.0.2"), busy[0]);
      assertEquals(heard.filter((said) => said.startsWith(text(GREETING))).length, 2);
    },
  );

  await t.step(
    "a request that trickles in is cut at the request timeout, in both dialects",
    async () => {
      const started = Date.now();
      const framed = slowSender(port, "127.0.0.3", get, 100);
      const original = slowSender(port, "127.0.0.3", new TextEncoder().encode("file@a.bin"), 300);
      assertEquals(await original, text(GREETING));
      assert(Date.now() - started < 5000, "a slow sender held its place past the request timeout");
      assert((await framed).startsWith(text(GREETING)));
      // With worker threads, their lines reach the log a moment after they are made.
      const timedOut = () => server.log.lines.filter((l) => / reason=request-timeout/.test(l));
      await until(() => timedOut().length >= 4, "four request timeouts logged");
      assertEquals(timedOut().length, 4);
    },
  );
});
