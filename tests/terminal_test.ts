/**
 * What a server says reaches the user's terminal escaped by the same rule as the server's log
 * (lib/shared/printable.ts): not only control characters, but every invisible or misleading one.
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { ErrorCode } from "../lib/shared/errors.ts";
import { writeAll } from "../lib/shared/io.ts";
import { encodeError } from "../lib/shared/protocol.ts";
import { fakeServer, runClient } from "./harness.ts";

Deno.test("format characters and odd spaces from a server are escaped on the terminal", async () => {
  // A zero-width space, an Arabic letter mark, a word joiner, the byte-order mark, a no-break
  // space, a paragraph separator and a tag character: none drives a terminal, each misleads.
  const hostile = "a\u200bb\u061cc\u2060d\ufeffe\u00a0f\u2029g\u{e0041}h";
  const escaped = "a\\u200bb\\u061cc\\u2060d\\ufeffe\\u00a0f\\u2029g\\udb40\\udc41h";
  await using server = fakeServer(async (out) => {
    await writeAll(out, encodeError(ErrorCode.Internal, hostile));
    return false;
  });
  const result = await runClient(["--port", String(server.port), "stats"]);
  assertEquals(result.code, 1);
  assertEquals(result.stderr, `client: ${escaped}\n`);
});
