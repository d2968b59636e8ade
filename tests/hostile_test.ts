/**
 * The client against a lying or broken server, run as a user runs it: what the server says
 * cannot drive the terminal, a server that breaks the protocol is named as at fault in one line
 * (exit 3), and one that never stops talking cannot make the client hold all it says.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ErrorCode } from "../lib/shared/errors.ts";
import { writeAll } from "../lib/shared/io.ts";
import {
  encodeFrame,
  encodeText,
  Frame,
  type FrameType,
  writeHeader,
} from "../lib/shared/frames.ts";
import {
  encodeEnd,
  encodeError,
  encodeListEnd,
  encodeListParts,
  type ListEntry,
} from "../lib/shared/protocol.ts";
import {
  type FakeServer,
  fakeServer,
  fileHeader,
  keepWriting,
  runClient,
  runClientIn,
  tempFolder,
} from "./harness.ts";
import { concat } from "../lib/shared/io.ts";

/** A fake server that answers the first request with `frames`, then hangs up. */
function answering(...frames: Uint8Array[]): FakeServer {
  return fakeServer(async (out) => {
    await writeAll(out, concat(frames));
    return false;
  });
}

/** A FILE frame with any 64-bit size and offset, as a broken server might send. */
function fileFrame(size: bigint, offset: bigint): Uint8Array {
  const payload = new Uint8Array(25);
  const view = new DataView(payload.buffer);
  view.setBigUint64(0, size);
  view.setBigUint64(8, offset);
  return encodeFrame(Frame.File, payload);
}

Deno.test("what a server says reaches the terminal with its control characters escaped", async (t) => {
  const hostile = "no\x1b]0;pwned\x07\n\x1b[2Jway\u202e\u009b31m\x7f";
  const escaped = "no\\u001b]0;pwned\\u0007\\u000a\\u001b[2Jway\\u202e\\u009b31m\\u007f";
  // JSON.stringify writes the newline as \n; the rest is escaped as on a line.
  const inJson = escaped.replace("\\u000a", "\\n");

  await t.step("an error for a download is one line", async () => {
    await using out = await tempFolder();
    await using server = answering(encodeError(ErrorCode.NotFound, hostile));
    const result = await runClient(["--port", String(server.port), "get", "a.txt", "-o", out.path]);
    assertEquals(result.code, 1);
    assertEquals(result.stderr, `client: a.txt: ${escaped}\n`);
  });

  await t.step("an error for a request is one line", async () => {
    await using server = answering(encodeError(ErrorCode.Internal, hostile));
    const result = await runClient(["--port", String(server.port), "stats"]);
    assertEquals(result.code, 1);
    assertEquals(result.stderr, `client: ${escaped}\n`);
  });

  await t.step("the busy text is one line", async () => {
    await using server = fakeServer(() => Promise.resolve(false), async (out) => {
      await writeAll(out, new TextEncoder().encode(`DISCONNECTED@Server busy: ${hostile}`));
      return false;
    });
    const result = await runClient(["--port", String(server.port), "list"]);
    assertEquals(result.code, 3);
    assertEquals(result.stderr, `client: 127.0.0.1:${server.port} is busy: ${escaped}\n`);
  });

  await t.step("the help text keeps its lines, and only them", async () => {
    await using server = answering(encodeText(Frame.HelpReply, `list\n${hostile}`));
    const result = await runClient(["--port", String(server.port), "help"]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stdout, `list\n${escaped.replace("\\u000a", "\n")}\n`);
  });

  await t.step("names in the list, as a table and as JSON", async () => {
    const list = [{ name: hostile, size: 1, mtimeMs: 0, cached: false }];
    await using server = fakeServer(async (out) => {
      await writeAll(out, concat([...encodeListParts(list), encodeListEnd(list.length)]));
      return true;
    });
    const table = await runClient(["--port", String(server.port), "list"]);
    assertEquals(table.code, 0, table.stderr);
    // The name is the last column, after size, time and cached (38 characters).
    assertEquals(table.stdout.split("\n")[1].slice(38), escaped);
    const json = await runClient(["--port", String(server.port), "list", "--json"]);
    assert(json.stdout.includes(inJson), json.stdout);
    assertEquals(JSON.parse(json.stdout)[0].name, hostile);
  });

  await t.step("the counters' names and values, as a table and as JSON", async () => {
    const stats = { [hostile]: hostile, requests: 3 };
    await using server = fakeServer(async (out) => {
      await writeAll(out, encodeText(Frame.StatsReply, JSON.stringify(stats)));
      return true;
    });
    const table = await runClient(["--port", String(server.port), "stats"]);
    assertEquals(table.code, 0, table.stderr);
    // The statistics the client knows first, in their order; then the others, as they came.
    assertEquals(table.stdout, `${"requests".padEnd(escaped.length)}  3\n${escaped}  ${escaped}\n`);
    const json = await runClient(["--port", String(server.port), "stats", "--json"]);
    assert(json.stdout.includes(inJson), json.stdout);
    assertEquals(JSON.parse(json.stdout), stats);
  });
});

Deno.test("a server that breaks the protocol is named as at fault: exit 3, one line", async (t) => {
  await using out = await tempFolder();
  const get = ["get", "a.txt", "-o", out.path];
  const tooLarge = new Uint8Array(5);
  writeHeader(tooLarge, 0, Frame.ListPart, 2 ** 32 - 1);
  const cases: [string, string[], Uint8Array[], string][] = [
    [
      "a STATS_REPLY that is not JSON",
      ["stats"],
      [encodeText(Frame.StatsReply, "not json")],
      "a STATS_REPLY frame is not JSON",
    ],
    [
      "a file of 2^64 - 1 bytes",
      get,
      [fileFrame(2n ** 64n - 1n, 0n)],
      "a 64-bit number is too large",
    ],
    [
      "an offset past the size",
      get,
      [fileFrame(5n, 10n)],
      "a FILE frame's range is not within its size",
    ],
    [
      "an answer from another offset than asked",
      get,
      [fileFrame(5n, 3n)],
      "it answered from byte 3, not byte 0 as asked",
    ],
    [
      "an END shorter than a digest",
      get,
      [fileHeader(0), encodeFrame(Frame.End, new Uint8Array(31))],
      "an END frame carries a 32-byte sha256 digest",
    ],
    [
      "DATA beyond the size",
      get,
      [fileHeader(1), encodeFrame(Frame.Data, new Uint8Array(2))],
      "it sent more bytes than the file's size (1)",
    ],
    [
      "an END before all the DATA",
      get,
      [fileHeader(3), encodeEnd(new Uint8Array(32))],
      "it ended the file with 3 of its 3 bytes missing",
    ],
    [
      "a frame of an unknown type",
      get,
      [encodeFrame(0x42 as FrameType)],
      "unexpected answer of type 0x42",
    ],
    [
      "a frame over the client's limit",
      ["list"],
      [tooLarge],
      "a frame of 4294967295 bytes is over the limit of 16777216",
    ],
    [
      "a list whose count is wrong",
      ["list"],
      [encodeListEnd(2)],
      "its list's end counts 2, but the list held 0",
    ],
  ];
  for (const [what, args, frames, reason] of cases) {
    await t.step(what, async () => {
      await using server = answering(...frames);
      const result = await runClient(["--port", String(server.port), ...args]);
      assertEquals(result.code, 3, result.stderr);
      assertEquals(
        result.stderr,
        `client: connection to 127.0.0.1:${server.port} broke: the server broke the protocol: ` +
          `${reason}\n`,
      );
      assertEquals([...Deno.readDirSync(out.path)], [], "a file was left in the output folder");
    });
  }
});

const MiB = 1024 * 1024;

/** `count` list entries named `name`. */
function entries(count: number, name: string): ListEntry[] {
  return Array.from({ length: count }, () => ({ name, size: 1, mtimeMs: 0, cached: false }));
}

Deno.test("a busy text that never ends: the client reads 1 KiB of it", async () => {
  /** What the fake writes at most; one that got this far was never stopped. */
  const LIMIT = 128 * MiB;
  /** What loopback sockets hold between the two (send and receive buffers), beyond what is read. */
  const SOCKETS = 40 * MiB;
  const busy = new TextEncoder().encode("DISCONNECTED@Server busy: ");
  await using server = fakeServer(() => Promise.resolve(false), async (out) => {
    await writeAll(out, busy);
    await keepWriting(out, new Uint8Array(64 * 1024).fill(0x78), LIMIT);
    return false;
  });
  const result = await runClient(["--port", String(server.port), "list"]);
  assertEquals(result.code, 3);
  assertEquals(result.stderr.split("\n").length, 2, "one line");
  assert(result.stderr.endsWith(`is busy: ${"x".repeat(1024 - busy.length)}\n`), result.stderr);
  assert(server.written < MiB + SOCKETS, `the client let the server write ${server.written} B`);
});

Deno.test("a list without end is printed as it comes, in bounded memory", async (t) => {
  const cases: [string, string, number][] = [
    ["short names: 1.6 million entries", "a", 32 * MiB],
    ["long names: more bytes than a list held whole may take", "n".repeat(1000), 96 * MiB],
  ];
  for (const [what, name, limit] of cases) {
    await t.step(what, async () => {
      const part = concat(encodeListParts(entries(10_000, name)));
      await using server = fakeServer(async (out) => {
        await keepWriting(out, part, limit);
        return false; // hangs up, the list unended
      });
      const result = await runClientIn('/usr/bin/time -f "%M" "$@" | wc -l', [
        "--port",
        String(server.port),
        "list",
      ]);
      assertEquals(result.code, 0, result.stderr); // the pipeline's, wc's
      // The client's one line, then time's: the exit status and the peak.
      const lines = result.stderr.trim().split("\n");
      const peakKiB = lines.at(-1);
      assertEquals(lines.filter((line) => line.startsWith("client: ")).length, 1, result.stderr);
      assert(/Command exited with non-zero status 3/.test(result.stderr), result.stderr);
      assert(Number(result.stdout) > limit / part.length * 10_000, `${result.stdout} lines`);
      assert(Number(peakKiB) * 1024 < 150 * MiB, `the client held ${peakKiB} KiB at its peak`);
    });
  }
});

Deno.test("a list of 200,000 entries in one frame is read whole", async () => {
  const [part] = encodeListParts(entries(200_000, ""), 16 * MiB);
  await using server = fakeServer(async (out) => {
    await writeAll(out, concat([part, encodeListEnd(200_000)]));
    return true;
  });
  const result = await runClient(["--port", String(server.port), "list", "--json"]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(JSON.parse(result.stdout).length, 200_000);
});
