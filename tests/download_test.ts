/**
 * Downloads as a user meets them: verified before they are kept, resumed after the server dies,
 * refused when a server lies, never written outside the output folder, and several files over
 * one connection.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ConnectionError, FileClient } from "../lib/client.ts";
import { downloadFiles, partialPath } from "../lib/download.ts";
import {
  encodeEnd,
  encodeFileHeader,
  encodeFrame,
  encodeHello,
  Frame,
  FrameDecoder,
  GREETING,
  PREAMBLE,
  readGet,
} from "../lib/protocol.ts";
import { randomBytes, runClient, spawnServer, startServer, tempFolder } from "./harness.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, (error) => {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  });
}

Deno.test("resume: kill the server mid-transfer, restart, rerun: the bytes equal the source", async () => {
  const source = randomBytes(50 * 1000 * 1000, 77);
  await using data = await tempFolder({ "movie.bin": source });
  await using out = await tempFolder();
  const options = { output: out.path, verify: true };

  await using first = await spawnServer(["--data", data.path]);
  const client = await FileClient.connect("127.0.0.1", first.port);
  let killed = false;
  const broken = await downloadFiles(client, ["movie.bin"], {
    ...options,
    progress(_name, done, total) {
      if (!killed && done > total / 2) {
        killed = true;
        first.process.kill("SIGKILL");
      }
    },
  }).catch((error) => error);
  client.close();
  assert(broken instanceof ConnectionError, `expected a broken connection, got ${broken}`);
  const kept = (await Deno.stat(partialPath(`${out.path}/movie.bin`))).size;
  assert(kept > 0 && kept < source.length, `kept ${kept} bytes`);
  assert(!await exists(`${out.path}/movie.bin`), "an incomplete download got its final name");

  await using second = await spawnServer(["--data", data.path]);
  const again = await FileClient.connect("127.0.0.1", second.port);
  const [result] = await downloadFiles(again, ["movie.bin"], options);
  again.close();
  assertEquals(result.error, undefined);
  assertEquals(result.resumedFrom, kept);
  assertEquals(result.bytes, source.length - kept);
  assertEquals(await Deno.readFile(`${out.path}/movie.bin`), source);
  assert(!await exists(partialPath(`${out.path}/movie.bin`)), "the temporary file was left");
});

/**
 * A server that answers every GET with `body` and a wrong digest, and every LIST with names that
 * try to leave the output folder.
 */
function lyingServer(body: Uint8Array): { port: number } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sessions: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      sessions.push((async () => {
        await conn.write(GREETING);
        const decoder = new FrameDecoder({ maxPayload: 4096 });
        const buffer = new Uint8Array(4096);
        let greeted = false;
        for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
          decoder.push(buffer.subarray(0, n));
          if (!greeted && decoder.buffered.length >= PREAMBLE.length) {
            decoder.skip(PREAMBLE.length);
            await conn.write(encodeHello("liar"));
            greeted = true;
          }
          for (let frame = decoder.next(); greeted && frame; frame = decoder.next()) {
            if (frame.type !== Frame.Get) continue;
            const { offset } = readGet(frame.payload);
            await conn.write(
              encodeFileHeader({ size: body.length, offset, mtimeMs: 0, source: "disk" }),
            );
            await conn.write(encodeFrame(Frame.Data, body.subarray(offset)));
            await conn.write(encodeEnd(new Uint8Array(32)));
          }
        }
        conn.close();
      })());
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      await Promise.all(sessions);
    },
  };
}

Deno.test("a file whose digest does not match is refused and not kept", async () => {
  await using liar = lyingServer(new TextEncoder().encode("not what you asked for"));
  await using out = await tempFolder();
  const result = await runClient(["--port", String(liar.port), "get", "a.txt", "-o", out.path]);
  assertEquals(result.code, 1);
  assertEquals(
    result.stderr.trim(),
    "client: a.txt: checksum mismatch: the bytes received differ from the server's file; not saved",
  );
  assertEquals([...Deno.readDirSync(out.path)], []);
});

Deno.test("names that would leave the output folder are refused before anything is sent", async () => {
  await using liar = lyingServer(new TextEncoder().encode("x"));
  await using out = await tempFolder();
  const names = ["../escape.txt", "/etc/passwd", "a/../../b", ".hidden"];
  const result = await runClient([
    "--port",
    String(liar.port),
    "get",
    ...names,
    "-o",
    `${out.path}/inner`,
  ]);
  assertEquals(result.code, 1);
  assertEquals(result.stderr.trim().split("\n").length, names.length);
  assertEquals([...Deno.readDirSync(out.path)], []);
});

Deno.test("three files in one command travel over one connection", async () => {
  await using data = await tempFolder({ "a.txt": "a", "b.txt": "bb", "c/d.txt": "ddd" });
  await using out = await tempFolder();
  await using server = await startServer(data.path);
  const result = await runClient([
    "--port",
    String(server.addr.port),
    "get",
    "a.txt",
    "b.txt",
    "c/d.txt",
    "-o",
    out.path,
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(server.stats().totalConnections, 1);
  assertEquals(server.stats().requests, 3);
  assertEquals(await Deno.readTextFile(`${out.path}/c/d.txt`), "ddd");
});

Deno.test("an output folder that cannot be written is one clear line and exit 1", async () => {
  await using data = await tempFolder({ "a.txt": "a" });
  await using server = await startServer(data.path);
  await using out = await tempFolder({ "file-not-folder": "x" });
  const result = await runClient([
    "--port",
    String(server.addr.port),
    "get",
    "a.txt",
    "-o",
    `${out.path}/file-not-folder`,
  ]);
  assertEquals(result.code, 1);
  assertEquals(result.stderr.trim().split("\n").length, 1, result.stderr);
  assert(result.stderr.startsWith("client: a.txt: cannot write"), result.stderr);
});
