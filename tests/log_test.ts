/** The server's log: one line per event in either format, and bounded while its reader is slow. */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import fc from "fast-check";
import { Logger, type LogSink, MAX_PENDING_LINES } from "../lib/server/log.ts";
import { parseServerArgs } from "../server.ts";
import { MemoryLog, rawConnect, startServer, tempFolder, until } from "./harness.ts";

/**
 * Characters a log viewer could be misled by: C1 controls (NEXT LINE, a terminal's CSI), line and
 * paragraph separators, a bidirectional override and an isolate, zero-width and no-break spaces,
 * the byte-order mark, a tag character and a lone surrogate.
 */
const MISLEADING = [
  "\u0085",
  "\u009b",
  "\u2028",
  "\u2029",
  "\u202e",
  "\u2066",
  "\u200b",
  "\u00a0",
  "\ufeff",
  "\u{e0041}",
  "\ud800",
];

/** True when `line` holds none of the characters a log line must show escaped. */
function clean(line: string): boolean {
  return !/[[\p{C}\p{Z}]--[ ]]/v.test(line);
}

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

  await t.step(
    "text: Unicode line, format and other invisible characters are escaped",
    async () => {
      const sink = new MemoryLog();
      const log = new Logger("text", sink);
      for (const c of MISLEADING) log.event("request", { name: `evil${c}name.txt` });
      await log.flush();
      assertEquals(sink.lines.length, MISLEADING.length);
      for (const [i, line] of sink.lines.entries()) {
        assert(clean(line), JSON.stringify(line));
        const shown = /name=("[^"]*")$/.exec(line)?.[1];
        assert(shown !== undefined, `not quoted: ${line}`);
        assertEquals(JSON.parse(shown), `evil${MISLEADING[i]}name.txt`);
      }
    },
  );

  await t.step("text: any value reads back as itself from one clean line", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "binary" }), async (value) => {
        const sink = new MemoryLog();
        const log = new Logger("text", sink);
        log.event("request", { name: value, next: 1 });
        await log.flush();
        assertEquals(sink.lines.length, 1);
        const line = sink.lines[0];
        assert(clean(line), JSON.stringify(line));
        const shown = / request name=(.*) next=1$/.exec(line)![1];
        assertEquals(shown.startsWith('"') ? JSON.parse(shown) : shown, value);
      }),
    );
  });

  await t.step("json: every value escaped the same way, and still the same JSON", async () => {
    const sink = new MemoryLog();
    const log = new Logger("json", sink);
    const name = MISLEADING.join("");
    log.event("request", { name });
    await log.flush();
    assert(clean(sink.lines[0]), JSON.stringify(sink.lines[0]));
    assertEquals(JSON.parse(sink.lines[0]).name, name);
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

  await t.step("a logger at warning keeps only warnings and errors", async () => {
    const sink = new MemoryLog();
    const log = new Logger("text", sink, "warning");
    log.event("request", { id: 1 });
    log.event("busy", { id: 2 }, "warning");
    log.event("connection-error", { id: 3 }, "error");
    await log.flush();
    assertEquals(sink.lines.map((line) => line.split(" ")[1]), ["busy", "connection-error"]);
  });

  await t.step("the flags: info by default; --log-level and --quiet choose", () => {
    const levelOf = (args: string[]) => {
      const options = parseServerArgs(args);
      assert(options !== "help");
      return options.logger.level;
    };
    assertEquals(levelOf([]), "info");
    assertEquals(levelOf(["--log-level", "debug"]), "debug");
    assertEquals(levelOf(["--log-level", "error"]), "error");
    assertEquals(levelOf(["--quiet"]), "warning");
    throws(() => parseServerArgs(["--log-level", "verbose"]), {
      message: '--log-level takes debug, info, warning, error, not "verbose"',
    });
    throws(() => parseServerArgs(["--quiet", "--log-level", "info"]), {
      message: "give --quiet or --log-level, not both",
    });
  });
});

/** Sends `request` (method and target) with User-Agent `agent`, as no fetch() would; awaits the end. */
async function sendRaw(port: number, request: string, agent: string, more = ""): Promise<void> {
  using socket = await rawConnect(port);
  await socket.write(
    `${request} HTTP/1.1\r\nHost: a\r\nUser-Agent: ${agent}\r\n${more}Connection: close\r\n\r\n`,
  );
  await socket.readToEnd();
}

Deno.test("access log: one line per request, saying who asked for what", async (t) => {
  await using data = await tempFolder({ "a.txt": "hello\n", "docs/b.txt": "b" });
  const agent = 'tool/1.0 "quoted" \\ \x1b[31m';

  await t.step(
    "text: a request's line has its peer, method, target, status and bytes",
    async () => {
      await using server = await startServer(data.path, { httpPort: 0 });
      const base = `http://127.0.0.1:${server.httpAddr!.port}`;
      for (const path of ["/a.txt", "/nope", "/docs/"]) {
        await (await fetch(`${base}${path}`)).body?.cancel();
      }
      await sendRaw(server.httpAddr!.port, "HEAD /a.txt", agent);
      await until(
        () => server.log.lines.filter((l) => l.includes(" request ")).length === 4,
        "lines",
      );
      const lines = server.log.lines.filter((line) => !line.includes(" listening "));
      assertEquals(lines.length, 4, lines.join("\n")); // no open or close lines for usual connections
      const field = (line: string, key: string) =>
        new RegExp(` ${key}=("(?:[^"\\\\]|\\\\.)*"|\\S+)`).exec(line)?.[1];
      assertEquals(
        lines.map((line) => [field(line, "method"), field(line, "target"), field(line, "status")]),
        [["GET", "/a.txt", "200"], ["GET", "/nope", "404"], ["GET", "/docs/", "200"], [
          "HEAD",
          "/a.txt",
          "200",
        ]],
      );
      assertEquals(field(lines[0], "bytes"), "6");
      assert(/^127\.0\.0\.1:\d+$/.test(field(lines[0], "peer")!), lines[0]);
      assert(clean(lines[3]) && lines[3].includes('agent="tool/1.0'), lines[3]);
    },
  );

  await t.step("combined: nginx's format, one line per request, events apart", async () => {
    const sink = new MemoryLog();
    const events = new MemoryLog();
    await using server = await startServer(data.path, {
      httpPort: 0,
      logger: new Logger("combined", sink, "info", { eventSink: events }),
    });
    const base = `http://127.0.0.1:${server.httpAddr!.port}`;
    await sendRaw(server.httpAddr!.port, "GET /a.txt", agent, "Referer: http://x/\r\n");
    await (await fetch(`${base}/a.txt`, { headers: { range: "bytes=99-" } })).body?.cancel();
    await until(() => sink.lines.length === 2, "two lines");
    const combined =
      /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$/;
    const [first, second] = sink.lines.map((line) => combined.exec(line));
    assert(first && second, sink.lines.join("\n"));
    assertEquals(first.slice(1, 5), ["GET /a.txt HTTP/1.1", "200", "6", "http://x/"]);
    assert(clean(first[5]) && first[5].startsWith("tool/1.0 \\x22quoted\\x22 \\x5C"), first[5]);
    assertEquals(second.slice(2, 4), ["416", "39"]);
    assert(events.lines.some((line) => line.includes(" listening ")), events.lines.join("\n"));
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

Deno.test("with gatherMs, the lines of many turns leave in one write, unasked or on flush", async (t) => {
  /** A sink that counts its writes and tells of each. */
  const counting = () => {
    const sink = { writes: 0, lines: [] as string[], written: Promise.withResolvers<void>() };
    return Object.assign(sink, {
      write(bytes: Uint8Array): Promise<number> {
        sink.writes++;
        sink.lines.push(...new TextDecoder().decode(bytes).split("\n").filter((line) => line));
        sink.written.resolve();
        return Promise.resolve(bytes.length);
      },
    });
  };
  /** Logs one line a turn, `turns` of them. */
  const lines = async (log: Logger, turns: number) => {
    for (let i = 0; i < turns; i++) {
      log.event("request", { i });
      await new Promise<void>((resolve) => queueMicrotask(resolve));
    }
  };

  await t.step("without it, each turn's line is written at its end", async () => {
    const sink = counting();
    await lines(new Logger("text", sink), 3);
    assertEquals([sink.writes, sink.lines.length], [3, 3]);
  });

  await t.step("with it, they wait for the time to pass, then leave together", async () => {
    const sink = counting();
    const log = new Logger("text", sink, "info", { gatherMs: 5 });
    await lines(log, 3);
    assertEquals(sink.writes, 0);
    await sink.written.promise;
    assertEquals([sink.writes, sink.lines.length], [1, 3]);
  });

  await t.step("flush writes them at once", async () => {
    const sink = counting();
    const log = new Logger("text", sink, "info", { gatherMs: 60_000 });
    await lines(log, 3);
    await log.flush();
    assertEquals([sink.writes, sink.lines.length], [1, 3]);
  });
});

Deno.test("names with Unicode line and format characters are served and logged escaped", async () => {
  const names = ["next\u0085line.txt", "csi\u009b31m.txt", "sep\u2028arator.txt", "txt.\u202eevil"];
  await using data = await tempFolder(Object.fromEntries(names.map((name) => [name, name])));
  await using server = await startServer(data.path, { httpPort: 0 });
  for (const name of names) {
    const response = await fetch(`http://127.0.0.1:${server.httpAddr!.port}/${encodeURI(name)}`);
    assertEquals(await response.text(), name);
  }
  await server.close();
  const requests = server.log.lines.filter((line) => / request .*status=200/.test(line));
  assertEquals(requests.length, names.length);
  for (const line of server.log.lines) assert(clean(line), JSON.stringify(line));
  for (const name of names) {
    assert(requests.some((line) => line.includes(`name=${printableJson(name)}`)), name);
  }
});

/** `name` quoted as the text log shows it: JSON, with every non-ASCII character escaped. */
function printableJson(name: string): string {
  return JSON.stringify(name).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
