/**
 * The server's limits as a peer meets them: a thousand idle connections cost an honest client
 * (almost) nothing, requests are bounded in both dialects, a name over its limit is an error
 * answer on a connection that carries on, not a dropped connection, and readers that stop
 * reading cannot make the server hold file copies beyond its cache's cap.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { FileClient } from "../lib/client/client.ts";
import { ConnectionError, ServerError } from "../lib/client/errors.ts";
import { MAX_REQUEST_PAYLOAD } from "../lib/server/framed.ts";
import { ErrorCode } from "../lib/shared/errors.ts";
import { MAX_NAME_BYTES } from "../lib/shared/names.ts";
import { encodeFrame, Frame, HEADER_BYTES } from "../lib/shared/frames.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import { codec, preamble } from "../lib/shared/protocol.ts";
import {
  fetchFile,
  rawConnect,
  RawSocket,
  startServer,
  tempFolder,
  text,
  xxh3,
} from "./harness.ts";
import { randomBytes, spawnServer } from "../testing/support.ts";

const IDLE = 1000;
const GETS = 50;
const ROUNDS = 5;
/** Rounds run and not counted: a fresh server takes some 500 requests to reach its speed. */
const WARM_UP_ROUNDS = 20;
/** The slowdown an honest client may see with the idle connections open. */
const MAX_SLOWDOWN = 3;

/** The soft limit on open files of this process (the server it spawns inherits it). */
async function openFileLimit(): Promise<number> {
  const limits = await Deno.readTextFile("/proc/self/limits");
  const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1];
  return soft === undefined || soft === "unlimited" ? Infinity : Number(soft);
}

/** The median time in ms of ROUNDS rounds of GETS sequential GETs of a small file. */
async function honestGets(port: number, small: Uint8Array, digest: Uint8Array): Promise<number> {
  const client = await FileClient.connect("127.0.0.1", port);
  const rounds: number[] = [];
  try {
    for (let round = -WARM_UP_ROUNDS; round < ROUNDS; round++) { // the first rounds warm up
      const started = performance.now();
      for (let i = 0; i < GETS; i++) {
        const got = await fetchFile(client, "small.bin");
        assertEquals(got.bytes.length, small.length);
        assertEquals(got.digest, digest);
      }
      if (round >= 0) rounds.push(performance.now() - started);
    }
  } finally {
    client.close();
  }
  return rounds.sort((a, b) => a - b)[ROUNDS >> 1];
}

/** Opens one idle peer: framed ones send the preamble and get HELLO, the others stay silent. */
async function idlePeer(port: number, framed: boolean): Promise<RawSocket> {
  const socket = await rawConnect(port);
  if (framed) await socket.write(preamble(1));
  assertEquals(await socket.readExactly(GREETING.length), GREETING);
  if (framed) {
    const hello = await socket.readExactly(HEADER_BYTES);
    assertEquals(hello[0], Frame.Hello);
    await socket.readExactly(new DataView(hello.buffer).getUint32(1));
  }
  return socket;
}

const fileLimit = await openFileLimit();
const enoughFiles = fileLimit >= IDLE + 200;
if (!enoughFiles) {
  console.log(
    `skipping the idle-connections test: the open-file limit (ulimit -n) is ${fileLimit}, ` +
      `it needs ${IDLE + 200}`,
  );
}

Deno.test({
  name: "1,000 idle connections do not slow an honest client",
  ignore: !enoughFiles,
}, async () => {
  const small = randomBytes(4096, 11);
  const digest = await xxh3(small);
  await using data = await tempFolder({ "small.bin": small });
  // The idle crowd and the honest client share one address here.
  await using server = await spawnServer([
    "--data",
    data.path,
    "--max-connections-per-host",
    "1024",
  ]);
  const port = server.port;

  const quiet = await honestGets(port, small, digest);
  const idle: RawSocket[] = [];
  try {
    for (let opened = 0; opened < IDLE; opened += 50) {
      idle.push(
        ...await Promise.all(
          Array.from({ length: 50 }, (_, i) => idlePeer(port, (opened + i) % 2 === 0)),
        ),
      );
    }
    const busy = await honestGets(port, small, digest);
    const client = await FileClient.connect("127.0.0.1", port);
    const stats = await client.stats();
    client.close();
    assertEquals(stats.connections, IDLE + 1, "the idle connections are not all open");
    const ratio = busy / quiet;
    console.log(
      `${GETS} GETs of 4 KiB, median of ${ROUNDS} rounds: ${quiet.toFixed(1)} ms alone, ` +
        `${busy.toFixed(1)} ms beside ${IDLE} idle connections (x${ratio.toFixed(2)})`,
    );
    assert(ratio < MAX_SLOWDOWN, `an honest client is ${ratio.toFixed(2)}x slower`);
  } finally {
    for (const socket of idle) socket[Symbol.dispose]();
  }
});

Deno.test("requests are bounded in both dialects, and a name at the limit still works", async (t) => {
  // A name of exactly MAX_NAME_BYTES: folders of 200 bytes, then a file to make up the rest.
  const folders = Array.from({ length: 4 }, (_, i) => String(i).repeat(200)).join("/") + "/";
  const longest = folders + "l".repeat(MAX_NAME_BYTES - folders.length);
  // A name of 1019 bytes: with "file@" in front, exactly 1 KiB.
  const cut = folders + "c".repeat(1019 - folders.length);
  await using data = await tempFolder({
    "a.txt": "aaa",
    [longest]: "the longest name",
    [cut]: "not the file that was asked for",
  });
  await using server = await startServer(data.path);
  const port = server.addr.port;

  async function legacy(request: string): Promise<string> {
    using socket = await rawConnect(port);
    await socket.readExactly(GREETING.length);
    await socket.write(request);
    return text(await socket.readToEnd());
  }

  await t.step("a legacy file@ with a name of the longest length is served", async () => {
    // "file@" and the name are 1029 bytes: more than a first read of 1 KiB would take.
    assertEquals(longest.length, MAX_NAME_BYTES);
    assertEquals(await legacy(`file@${longest}`), "OK@the longest name");
  });

  await t.step(
    "a legacy name within the limit is never cut short to another file's name",
    async () => {
      // A good name (within the limit) whose first 1019 bytes name another file.
      const asked = cut + "xyz";
      assert(new TextEncoder().encode(asked).length <= MAX_NAME_BYTES);
      assertEquals(await legacy(`file@${asked}`), "FNF");
    },
  );

  await t.step("a framed request over MAX_REQUEST_PAYLOAD is TooLarge and closes", async () => {
    const client = await FileClient.connect("127.0.0.1", port);
    try {
      await client.send(encodeFrame(Frame.Stats, new Uint8Array(MAX_REQUEST_PAYLOAD + 1)));
      const refused = await client.help().catch((error) => error);
      assert(refused instanceof ServerError, String(refused));
      assertEquals(refused.code, ErrorCode.TooLarge);
      const after = await client.help().catch((error) => error);
      assert(after instanceof ConnectionError, `the connection carried on: ${after}`);
    } finally {
      client.close();
    }
  });

  await t.step("names over the limit are BadRequest, and the connection carries on", async () => {
    const client = await FileClient.connect("127.0.0.1", port);
    try {
      const tooLong = [
        longest + "x", // one byte over the name limit
        "é".repeat(MAX_NAME_BYTES / 2 + 1), // over it in UTF-8 bytes, not in characters
        "a".repeat(MAX_REQUEST_PAYLOAD - 16), // the largest version 2 GET frame the server reads
      ];
      for (const name of tooLong) {
        const refused = await fetchFile(client, name).catch((error) => error);
        assert(refused instanceof ServerError, `${name.length} chars: ${refused}`);
        assertEquals(refused.code, ErrorCode.BadRequest);
        assert(/at most 1024 bytes/.test(refused.message), refused.message);
      }
      assertEquals(text((await fetchFile(client, longest)).bytes), "the longest name");
      assertEquals(text((await fetchFile(client, "a.txt")).bytes), "aaa");
    } finally {
      client.close();
    }
  });
});

Deno.test("slow readers cannot make the server hold copies of files beyond the cache's cap", async () => {
  // Two files that each fit the cache but not together, asked for in turn by readers that stop
  // reading: every load evicts the other file, whose readers still hold its bytes. Those bytes
  // must stay counted against the cap (or be streamed from disk instead) until the readers go,
  // so memory grows with the cap, not with the number of stalled readers.
  const cacheBytes = 16 * 1024 * 1024;
  const size = 12 * 1024 * 1024;
  const readers = 40;
  await using data = await tempFolder({
    "a.bin": randomBytes(size, 1),
    "b.bin": randomBytes(size, 2),
  });
  await using server = await spawnServer(["--data", data.path, "--cache-size", String(cacheBytes)]);
  const rss = async () => {
    const status = await Deno.readTextFile(`/proc/${server.process.pid}/status`);
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
  };
  const before = await rss();
  const stalled: RawSocket[] = [];
  try {
    for (let i = 0; i < readers; i++) {
      const socket = await rawConnect(server.port);
      stalled.push(socket);
      await socket.write(
        new Uint8Array([
          ...preamble(1),
          ...codec(1).encodeGet({ name: i % 2 ? "b.bin" : "a.bin" }),
        ]),
      );
      await socket.readExactly(GREETING.length + 64 * 1024); // then it stops reading
    }
    // Every load has finished once nothing is reserved.
    const client = await FileClient.connect("127.0.0.1", server.port);
    const deadline = Date.now() + 10_000;
    while ((await client.stats()).cacheReserved !== 0) {
      assert(Date.now() < deadline, "the loads did not finish");
    }
    client.close();
    const grown = await rss() - before;
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
    console.log(
      `${readers} stalled readers: server RSS grew by ${mib(grown)} (cache cap ${mib(cacheBytes)})`,
    );
    // The cap, the pool of buffers for streaming from disk (16 MiB), and room for the rest.
    assert(
      grown < cacheBytes + 48 * 2 ** 20,
      `the server holds ${mib(grown)} for ${readers} readers`,
    );
  } finally {
    for (const socket of stalled) socket[Symbol.dispose]();
  }
});

Deno.test("under a low open-file limit, every client gets the greeting or the busy text", async () => {
  await using data = await tempFolder({ "a.txt": "a" });
  const args = ["--data", data.path, "--max-connections-per-host", "1024"];
  await using server = await spawnServer(args, { openFiles: 256 });
  const listening = await server.waitFor(/listening/);
  const max = Number(/ maxConnections=(\d+)/.exec(listening)?.[1]);
  assert(max < 128 && / lowered=/.test(listening), listening);

  const clients = 300;
  const sockets = await Promise.all(Array.from({ length: clients }, () => rawConnect(server.port)));
  try {
    const heard = await Promise.all(sockets.map(async (socket) => {
      const first = await within(10_000, socket.readExactly(GREETING.length)).catch(() => null);
      if (first === null) return "nothing";
      return text(first) === text(GREETING) ? "greeting" : text(first).split("@")[0];
    }));
    const count = (what: string) => heard.filter((h) => h === what).length;
    assertEquals([count("greeting"), count("DISCONNECTED"), count("nothing")], [
      max,
      clients - max,
      0,
    ]);
  } finally {
    for (const socket of sockets) socket[Symbol.dispose]();
  }
});

/** `promise`, or a rejection if it takes longer than `ms`. */
function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error("late")), ms)
  );
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
