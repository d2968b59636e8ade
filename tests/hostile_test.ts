/**
 * The client against a lying or broken server, run as a user runs it: a server that breaks the
 * protocol is named as at fault in one line (exit 3).
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { writeAll } from "../lib/shared/io.ts";
import {
  encodeEnd,
  encodeFileHeader,
  encodeFrame,
  encodeListEnd,
  encodeText,
  Frame,
  type FrameType,
  writeHeader,
} from "../lib/shared/protocol.ts";
import { concat, type FakeServer, fakeServer, runClient, tempFolder } from "./harness.ts";

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

/** A file answer's header, as an honest server sends it. */
function fileHeader(size: number): Uint8Array {
  return encodeFileHeader({ size, offset: 0, mtimeMs: 0, source: "disk" });
}

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
      "a FILE frame's offset is past its size",
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
      "an END frame carries a 32-byte digest",
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
