/**
 * Downloads as a user meets them: verified before they are kept, resumed after the server dies,
 * refused when a server lies, never written outside the output folder, and several files over
 * one connection.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { FileClient } from "../lib/client/client.ts";
import { downloadFiles } from "../lib/client/download.ts";
import { partialPath } from "../lib/client/plan.ts";
import { PieceRecord, SavedRecord } from "../lib/client/pieces.ts";
import { ConnectionError } from "../lib/client/errors.ts";
import { writeAll } from "../lib/shared/io.ts";
import { encodeFrame, Frame } from "../lib/shared/frames.ts";
import { codec, encodeEnd, encodeListEnd, encodeListParts } from "../lib/shared/protocol.ts";
import {
  type FakeServer,
  fakeServer,
  fileHeader,
  halfServer,
  runClient,
  runClientIn,
  startServer,
  tempFolder,
} from "./harness.ts";
import { randomBytes, spawnServer } from "../testing/support.ts";

const MiB = 1024 * 1024;

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
  const broken = await Array.fromAsync(downloadFiles([client], ["movie.bin"], {
    ...options,
    progress(_name, done, total) {
      if (!killed && done > total / 2) {
        killed = true;
        first.process.kill("SIGKILL");
      }
    },
  })).catch((error) => error);
  client.close();
  assert(broken instanceof ConnectionError, `expected a broken connection, got ${broken}`);
  const kept = (await Deno.stat(partialPath(`${out.path}/movie.bin`))).size;
  assert(kept > 0 && kept < source.length, `kept ${kept} bytes`);
  assert(!await exists(`${out.path}/movie.bin`), "an incomplete download got its final name");

  await using second = await spawnServer(["--data", data.path]);
  const again = await FileClient.connect("127.0.0.1", second.port);
  const [result] = await Array.fromAsync(downloadFiles([again], ["movie.bin"], options));
  again.close();
  assertEquals(result.error, undefined);
  assertEquals(result.resumedFrom, kept);
  assertEquals(result.bytes, source.length - kept);
  assertEquals(await Deno.readFile(`${out.path}/movie.bin`), source);
  assert(!await exists(partialPath(`${out.path}/movie.bin`)), "the temporary file was left");
});

/** A fake server that answers every request as a GET of `body`, with a digest of zeros. */
function lyingServer(body: Uint8Array): FakeServer {
  return fakeServer(async (out, request) => {
    const { offset } = codec(1).readGet(request.payload);
    await writeAll(out, fileHeader(body.length, offset));
    await writeAll(out, encodeFrame(Frame.Data, body.subarray(offset)));
    await writeAll(out, encodeEnd(new Uint8Array(32)));
    return true;
  });
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
  assertEquals((await server.stats()).totalConnections, 1);
  assertEquals((await server.stats()).requests, 3);
  assertEquals(await Deno.readTextFile(`${out.path}/c/d.txt`), "ddd");
});

Deno.test("a file that cannot be written is one line and exit 1; the next still arrives", async () => {
  const big = randomBytes(3 * MiB, 4);
  await using data = await tempFolder({ "sub/a.bin": big, "b.txt": "b" });
  await using server = await startServer(data.path);
  await using out = await tempFolder({ "sub": "a file where a folder should be" });
  const result = await runClient([
    "--port",
    String(server.addr.port),
    "get",
    "sub/a.bin",
    "b.txt",
    "-o",
    out.path,
  ]);
  assertEquals(result.code, 1);
  assertEquals(result.stderr.trim().split("\n").length, 1, result.stderr);
  assert(result.stderr.startsWith(`client: sub/a.bin: cannot write ${out.path}/sub/a.bin`));
  assertEquals(await Deno.readTextFile(`${out.path}/b.txt`), "b");
});

/** Body bytes the server's log says it sent for `name`. */
function served(server: { log: { lines: string[] } }, name: string): number {
  return server.log.lines.filter((line) => line.includes(` op=get name=${name} `))
    .reduce((sum, line) => sum + Number(/ bytes=(\d+) /.exec(line)?.[1] ?? 0), 0);
}

Deno.test("the connection breaks mid-file: exit 3, the part is kept, the same command resumes", async () => {
  const source = randomBytes(3 * MiB + 5, 9);
  const half = Math.floor(source.length / 2);
  await using data = await tempFolder({ "movie.bin": source });
  await using out = await tempFolder();
  const target = `${out.path}/movie.bin`;
  const { mtime } = await Deno.stat(`${data.path}/movie.bin`);

  await using dying = halfServer(source, mtime!.getTime());
  const first = await runClient(["--port", String(dying.port), "get", "movie.bin", "-o", out.path]);
  assertEquals(first.code, 3);
  assertEquals(
    first.stderr,
    `client: connection to 127.0.0.1:${dying.port} broke: the connection closed in the middle ` +
      "of a frame; movie.bin is partly saved: run the same command again to resume\n",
  );
  assertEquals(await Deno.readFile(partialPath(target)), source.subarray(0, half));
  assert(!await exists(target), "an incomplete download got its final name");

  await using server = await startServer(data.path);
  const again = await runClient([
    "--port",
    String(server.addr.port),
    "get",
    "movie.bin",
    "-o",
    out.path,
  ]);
  assertEquals(again.code, 0, again.stderr);
  assertEquals(again.stdout, `saved ${target} (3.0 MiB, resumed from byte ${half})\n`);
  assertEquals(
    served(server, "movie.bin"),
    source.length - half + 1,
    "only the rest travelled, and the byte that told the file's version",
  );
  assertEquals(await Deno.readFile(target), source);
  assert(!await exists(partialPath(target)), "the temporary file was left");
});

Deno.test("a resume after the file changed on the server fetches it from the start at once, in one run", async () => {
  const old = randomBytes(8 * MiB, 31);
  const changed = randomBytes(8 * MiB, 32);
  await using data = await tempFolder({ "movie.bin": changed });
  await using out = await tempFolder();
  const target = `${out.path}/movie.bin`;
  await using dying = halfServer(old, Date.UTC(2024, 0, 1));
  const first = await runClient(["--port", String(dying.port), "get", "movie.bin", "-o", out.path]);
  assertEquals(first.code, 3, first.stderr);

  await using server = await startServer(data.path);
  const command = ["--port", String(server.addr.port), "get", "movie.bin", "-o", out.path];
  const again = await runClient(command);
  assertEquals([again.code, again.stderr], [0, ""]);
  assertEquals(
    again.stdout,
    `saved ${target} (8.0 MiB, from the start: ` +
      "the file changed on the server since the interrupted run)\n",
  );
  assertEquals(await Deno.readFile(target), changed);
  assertEquals(
    served(server, "movie.bin"),
    changed.length + 1,
    "the new file once, and the byte that told its version: none of the rest of the old",
  );
  assertEquals([...Deno.readDirSync(out.path)].map((entry) => entry.name), ["movie.bin"]);
});

Deno.test("a partial download that cannot be resumed is fetched from the start", async (t) => {
  const source = randomBytes(100_000, 21);
  await using data = await tempFolder({ "f.bin": source });
  await using out = await tempFolder();
  await using server = await startServer(data.path);
  const target = `${out.path}/f.bin`;
  const record = `${partialPath(target)}.ranges`;
  const command = ["--port", String(server.addr.port), "get", "f.bin", "-o", out.path];
  const { mtime } = await Deno.stat(`${data.path}/f.bin`);
  const version = { size: source.length, mtimeMs: mtime!.getTime() };
  const cases = {
    "no record of its version, longer than the file": [randomBytes(source.length + 10, 22)],
    "no record of its version, other bytes": [randomBytes(source.length / 2, 24)],
    "recorded as another version": [source.subarray(0, 500), { ...version, mtimeMs: 0 }],
    "recorded as a longer version": [randomBytes(source.length + 10, 22), {
      ...version,
      size: 1e6,
    }],
  } as const;
  for (const [what, [part, saved]] of Object.entries(cases)) {
    await t.step(what, async () => {
      await Deno.writeFile(partialPath(target), part);
      if (saved) await Deno.writeTextFile(record, JSON.stringify(saved));
      const result = await runClient(command);
      assertEquals([result.code, result.stderr], [0, ""]);
      assert(result.stdout.startsWith(`saved ${target} (97.7 KiB`), result.stdout);
      assertEquals(await Deno.readFile(target), source);
      assertEquals([...Deno.readDirSync(out.path)].map((entry) => entry.name), ["f.bin"]);
      await Deno.remove(target);
    });
  }

  await t.step(
    "recorded as this version, other bytes: refused and deleted; a rerun is whole",
    async () => {
      await Deno.writeFile(partialPath(target), randomBytes(source.length / 2, 25));
      await Deno.writeTextFile(record, JSON.stringify(version));
      const refused = await runClient(command);
      assertEquals([refused.code, refused.stderr], [
        1,
        "client: f.bin: checksum mismatch: the file changed on the server since the interrupted " +
        "download; deleted the partial download, run again to start afresh\n",
      ]);
      assertEquals([...Deno.readDirSync(out.path)], [], "the partial download was kept");
      const rerun = await runClient(command);
      assertEquals(rerun.stdout, `saved ${target} (97.7 KiB)\n`);
      assertEquals(await Deno.readFile(target), source);
    },
  );
});

Deno.test("--no-verify keeps what arrives unchecked, a resumed prefix included", async () => {
  const body = new TextEncoder().encode("the liar's bytes");
  await using liar = lyingServer(body);
  const record = JSON.stringify({ size: body.length, mtimeMs: 0 });
  await using out = await tempFolder({ ".a.txt.part": "XYZ", ".a.txt.part.ranges": record });
  const result = await runClient([
    "--port",
    String(liar.port),
    "get",
    "a.txt",
    "--no-verify",
    "-o",
    out.path,
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(await Deno.readTextFile(`${out.path}/a.txt`), "XYZ liar's bytes");
});

Deno.test("a server of protocol version 1 with another version of the file: fetched from the start in the same run", async () => {
  const body = new TextEncoder().encode("the liar's bytes");
  await using liar = lyingServer(body); // it speaks version 1: its version is known at its answer
  const record = JSON.stringify({ size: body.length, mtimeMs: 1 });
  await using out = await tempFolder({ ".a.txt.part": "XYZ", ".a.txt.part.ranges": record });
  const args = ["--port", String(liar.port), "get", "a.txt", "--no-verify", "-o", out.path];
  const result = await runClient(args);
  assertEquals([result.code, result.stderr], [0, ""]);
  assertEquals(
    result.stdout,
    `saved ${out.path}/a.txt (16 B, from the start: ` +
      "the file changed on the server since the interrupted run)\n",
  );
  assertEquals(await Deno.readTextFile(`${out.path}/a.txt`), "the liar's bytes");
  assertEquals([...Deno.readDirSync(out.path)].map((entry) => entry.name), ["a.txt"]);
});

Deno.test("a download in pieces resumed from a server of protocol version 1 keeps what precedes its first gap", async () => {
  const body = new TextEncoder().encode("the liar's bytes");
  await using liar = lyingServer(body); // it speaks version 1: no ranges
  await using out = await tempFolder({ ".a.txt.part": "XYZ-----" + "?".repeat(8) });
  const record = { size: body.length, mtimeMs: 0, done: [[0, 3], [8, 12]] };
  await Deno.writeTextFile(`${out.path}/.a.txt.part.ranges`, JSON.stringify(record));
  const result = await runClient([
    "--port",
    String(liar.port),
    "get",
    "a.txt",
    "--no-verify",
    "-o",
    out.path,
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(await Deno.readTextFile(`${out.path}/a.txt`), "XYZ liar's bytes");
  assertEquals([...Deno.readDirSync(out.path)].map((entry) => entry.name), ["a.txt"]);
});

Deno.test("a hostile server's names are shown escaped and never used as paths", async () => {
  const names = ["../../outside.txt", "/etc/passwd", "evil\x1b[2Jname", "ok.txt"];
  const list = names.map((name) => ({ name, size: 1, mtimeMs: 0, cached: false }));
  await using liar = fakeServer(async (out) => {
    for (const part of encodeListParts(list)) await writeAll(out, part);
    await writeAll(out, encodeListEnd(list.length));
    return true;
  });
  const table = await runClient(["--port", String(liar.port), "list"]);
  assertEquals(table.code, 0, table.stderr);
  assert(!table.stdout.includes("\x1b"), "a control character reached the terminal");
  assertEquals(
    // The name is the last column, after size, time and cached (38 characters).
    table.stdout.split("\n").slice(1, -1).map((line) => line.slice(38)),
    ["../../outside.txt", "/etc/passwd", "evil\\u001b[2Jname", "ok.txt"],
  );
  const json = await runClient(["--port", String(liar.port), "list", "--json"]);
  assertEquals(JSON.parse(json.stdout).map((e: { name: string }) => e.name), names);
});

Deno.test("a full disk is one line per file and exit 1", async (t) => {
  if (!await exists("/dev/full")) {
    console.log("skipped: there is no /dev/full to stand for a full disk on this system");
    return;
  }
  await using data = await tempFolder({ "a.bin": randomBytes(2 * MiB, 6), "b.txt": "b" });
  await using server = await startServer(data.path);
  const port = String(server.addr.port);
  await t.step("writing to standard output", async () => {
    const result = await runClientIn('"$@" > /dev/full', [
      "--port",
      port,
      "get",
      "a.bin",
      "b.txt",
      "-o",
      "-",
    ]);
    assertEquals(result.code, 1);
    assertEquals(
      result.stderr,
      "client: a.bin: the disk is full while writing standard output\n" +
        "client: b.txt: the disk is full while writing standard output\n",
    );
  });
  await t.step("printing the list", async () => {
    const result = await runClientIn('"$@" > /dev/full', ["--port", port, "list"]);
    assertEquals(result.code, 1);
    assertEquals(result.stderr, "client: the disk is full while writing standard output\n");
  });
});

Deno.test("a write that fails mid-file is one line and exit 1; what was written stays; the next file arrives", async () => {
  const big = randomBytes(3 * MiB, 8);
  await using data = await tempFolder({ "a.bin": big, "b.txt": "b" });
  await using server = await startServer(data.path);
  await using out = await tempFolder();
  // Files may grow to 1 MiB (ulimit -f counts 512-byte blocks); past that a write fails with
  // EFBIG, SIGXFSZ being ignored as it is inherited.
  const result = await runClientIn('trap "" XFSZ; ulimit -f 2048; exec "$@"', [
    "--port",
    String(server.addr.port),
    "get",
    "a.bin",
    "b.txt",
    "-o",
    out.path,
  ]);
  assertEquals(result.code, 1, result.stderr);
  assertEquals(result.stderr, `client: a.bin: cannot write ${out.path}/a.bin: File too large\n`);
  assertEquals(result.stdout, `saved ${out.path}/b.txt (1 B)\n`);
  assertEquals(await Deno.readFile(partialPath(`${out.path}/a.bin`)), big.subarray(0, MiB));
  assert(!await exists(`${out.path}/a.bin`), "a file that failed got its final name");
});

Deno.test("no permission to write the output folder is one line and exit 1", async () => {
  await using data = await tempFolder({ "a.txt": "a" });
  await using server = await startServer(data.path);
  await using out = await tempFolder();
  await Deno.mkdir(`${out.path}/locked`, { mode: 0o555 });
  const args = ["--port", String(server.addr.port), "get", "a.txt", "-o", `${out.path}/locked`];
  // File permissions do not bind root, so as root the client runs without the capabilities that
  // bypass them. It stays root, as another user could not read a checkout in a private folder.
  const caps = "-dac_override,-dac_read_search";
  const drop = `setpriv --bounding-set=${caps} --inh-caps=${caps}`;
  const script = Deno.uid() === 0
    ? `${drop} true 2> /dev/null || exit 99; exec ${drop} -- "$@"`
    : '"$@"';
  const result = await runClientIn(script, args);
  if (result.code === 99) {
    console.log("skipped: running as root, and setpriv is missing or cannot drop CAP_DAC_OVERRIDE");
    return;
  }
  assertEquals(result.code, 1, result.stderr);
  assertEquals(result.stderr, `client: a.txt: no permission to write ${out.path}/locked/a.txt\n`);
  assertEquals([...Deno.readDirSync(`${out.path}/locked`)], []);
});

Deno.test("a record deleted once its saves have settled stays deleted", async () => {
  await using folder = await tempFolder();
  const path = `${folder.path}/.big.bin.part.ranges`;
  const saved = new SavedRecord(new PieceRecord(100, 0, []), path);
  saved.add(0, 10); // the first bytes recorded start a save at once
  await saved.settled();
  assert(await exists(path), "settled() waited for the save under way");
  await Deno.remove(path);
  assert(!await exists(path), "no save still under way could bring the record back");
});
