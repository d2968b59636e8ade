/** The server's log: one line per event in either format, and bounded while its reader is slow. */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { Logger, type LogSink, MAX_PENDING_LINES } from "../lib/server/log.ts";
import { parseServerArgs } from "../server.ts";
import { MemoryLog } from "./harness.ts";

Deno.test("log lines", async (t) => {
  await t.step("text: one line per event; odd values are quoted, never raw", async () => {
    const sink = new MemoryLog();
    const log = new Logger("text", sink);
    log.event("request", { name: "plain.txt", bytes: 3, skipped: undefined });
    log.event("request", { name: "two words", other: "a=b" });
    log.event("request", { name: "\x1b[2J\nforged line", empty: "", escape: "\x1b[2J" });
    await log.flush();
    assertEquals(sink.lines.length, 3);
    assert(sink.lines[0].endsWith(" request name=plain.txt bytes=3"), sink.lines[0]);
    assert(sink.lines[1].endsWith(` request name="two words" other="a=b"`), sink.lines[1]);
    assert(
      sink.lines[2].endsWith(
        ` request name="\\u001b[2J\\nforged line" empty="" escape="\\u001b[2J"`,
      ),
      sink.lines[2],
    );
  });

  await t.step("json: one object per line, with the time and the event", async () => {
    const sink = new MemoryLog();
    const log = new Logger("json", sink);
    log.event("open", { id: 1, peer: "127.0.0.1:5000" });
    await log.flush();
    const line = JSON.parse(sink.lines[0]);
    assertEquals([line.event, line.id, line.peer], ["open", 1, "127.0.0.1:5000"]);
    assert(!Number.isNaN(Date.parse(line.time)), line.time);
  });
});

Deno.test("log levels: debug lines only when asked for; --log-level chooses", async (t) => {
  await t.step("a logger at info leaves debug lines out; one at debug writes both", async () => {
    for (const level of ["info", "debug"] as const) {
      const sink = new MemoryLog();
      const log = new Logger("text", sink, level);
      log.event("open", { id: 1 }, "debug");
      log.event("request", { id: 2 });
      await log.flush();
      const events = sink.lines.map((line) => line.split(" ")[1]);
      assertEquals(events, level === "info" ? ["request"] : ["open", "request"], level);
    }
  });

  await t.step("the flag: info by default, debug on request, nothing else", () => {
    const levelOf = (args: string[]) => {
      const options = parseServerArgs(args);
      assert(options !== "help");
      return options.logger.level;
    };
    assertEquals(levelOf([]), "info");
    assertEquals(levelOf(["--log-level", "debug"]), "debug");
    throws(() => parseServerArgs(["--log-level", "verbose"]), {
      message: '--log-level takes info or debug, not "verbose"',
    });
  });
});

Deno.test("a stalled log reader costs bounded memory; what was dropped is counted", async () => {
  let unblock = () => {};
  const blocked = new Promise<void>((resolve) => unblock = resolve);
  const written: string[] = [];
  const sink: LogSink = {
    async write(bytes) {
      await blocked;
      written.push(...new TextDecoder().decode(bytes).split("\n").filter((line) => line));
      return bytes.length;
    },
  };
  const log = new Logger("text", sink);
  log.event("first");
  await Promise.resolve(); // the first line is now being written, and the sink is stuck
  await Promise.resolve();
  for (let i = 0; i < MAX_PENDING_LINES + 5; i++) log.event("request", { i });
  unblock();
  await log.flush();
  assertEquals(written.length, 1 + MAX_PENDING_LINES + 1);
  assert(written[0].endsWith(" first"), written[0]);
  assert(written.at(-2)!.endsWith(` request i=${MAX_PENDING_LINES - 1}`), written.at(-2));
  assert(written.at(-1)!.endsWith(" log-dropped lines=5"), written.at(-1));
});
