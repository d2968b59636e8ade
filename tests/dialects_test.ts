/**
 * Each dialect in process, against a socket that plays the peer and a store over a real folder (or
 * one that fails on purpose): every request answered and logged once, refusals apart from
 * failures, a failure part-way counted once, a peer's broken bytes counted as the peer's. The
 * bytes are checked as a client reads them.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { serveNative } from "../lib/server/native.ts";
import { serveHttp } from "../lib/server/http/serve.ts";
import type { Store } from "../lib/server/service.ts";
import { digestOf, SHA256 } from "../lib/shared/digest.ts";
import { ErrorCode, WireError } from "../lib/shared/errors.ts";
import { encodeFrame, Frame, readText } from "../lib/shared/frames.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import {
  codec,
  encodeSetup,
  preamble,
  readEnd,
  readError,
  readListPart,
} from "../lib/shared/protocol.ts";
import {
  failingStore,
  FakeSocket,
  type FakeSocket as Socket,
  framesOf,
  storeOf,
  testService,
} from "./fakes.ts";
import { tempFolder, text } from "./harness.ts";

const v2 = codec(2);
/** What a version 2 client sends first: its preamble, and SETUP taking SHA-256 and no token. */
const OPENING = [preamble(2), encodeSetup({ digests: [SHA256.id], token: new Uint8Array(0) })];
const CHANGED = new WireError(
  ErrorCode.Changed,
  '"big.bin" changed on disk while it was being read',
);

/** The frames after the greeting in what the native port wrote. */
function framesAfterGreeting(written: Uint8Array) {
  assertEquals(text(written.subarray(0, GREETING.length)), text(GREETING));
  return framesOf(written.subarray(GREETING.length));
}

/** The types of `frames`, by their names, in one line. */
function kinds(frames: { type: number }[]): string {
  const names = new Map(Object.entries(Frame).map(([name, type]) => [type as number, name]));
  return frames.map((frame) => names.get(frame.type)).join(" ");
}

/** The request lines of a log, without their times and durations. */
function requests(lines: string[]): string[] {
  return lines.filter((line) => / request /.test(line)).map((line) =>
    line.replace(/^\S+ /, "").replace(/ ms=\S+$/, "").replace(/ peer=\S+/, "")
  );
}

Deno.test("the framed dialect in process", async (t) => {
  await using data = await tempFolder({ "a.txt": "hello", "docs/b.txt": "bee" });
  const store = await storeOf(data.path);
  const serve = (socket: Socket, fake: Store = store) => {
    const served = testService(fake);
    return { ...served, done: served.run(serveNative, socket, "framed") };
  };

  await t.step("each request of a session is answered in order and logged once", async () => {
    const { done, log, ledger } = serve(
      new FakeSocket([
        ...OPENING,
        v2.encodeGet({ name: "a.txt" }),
        v2.encodeList({ sha256: false }),
        encodeFrame(Frame.Stats),
        encodeFrame(Frame.Help),
        encodeFrame(Frame.Quit),
      ]),
    );
    const frames = framesAfterGreeting(await done);
    assertEquals(kinds(frames), "Hello File Data End ListPart ListEnd StatsReply HelpReply Bye");
    assertEquals(text(frames[2].payload), "hello");
    assertEquals(
      readEnd(frames[3].payload, SHA256),
      await digestOf(SHA256, new TextEncoder().encode("hello")),
    );
    // In the order the disk gives, as find lists them.
    assertEquals(readListPart(frames[4].payload).map((entry) => entry.name).sort(), [
      "a.txt",
      "docs/b.txt",
    ]);
    assert(readText(frames[7].payload).startsWith("Requests:"));
    assertEquals(requests(log.lines), [
      "request id=1 op=get name=a.txt bytes=5 source=miss",
      "request id=1 op=list entries=2",
      "request id=1 op=stats",
      "request id=1 op=help",
      "request id=1 op=quit",
    ]);
    assertEquals(ledger.tally.requests, { framed: 5, original: 0, http: 0 });
    assertEquals(ledger.tally.errors, 0);
  });

  await t.step("a list the shutdown cuts short ends in ERROR after its entries", async () => {
    let shuttingDown = false;
    async function* batches() {
      yield [{ name: "a.txt", size: 5, mtimeMs: 0, cached: false }];
      shuttingDown = true; // as a signal would, while the list is sent
      yield [{ name: "b.txt", size: 5, mtimeMs: 0, cached: false }];
    }
    // The real store, but for its list.
    const listing: Store = Object.assign(Object.create(store), {
      list: () => Object.assign(batches(), { deeper: 0 }),
    });
    const served = testService(listing);
    const socket = new FakeSocket([...OPENING, v2.encodeList({ sha256: false })]);
    const connection = served.connect(socket, "framed");
    await serveNative(connection, { ...served.service, closing: () => shuttingDown });
    await connection.finish("done");
    await served.logged();
    const frames = framesAfterGreeting(socket.written);
    // The list's end, then the connection's, as every connection ends at a shutdown.
    assertEquals(kinds(frames), "Hello ListPart Error Error");
    assertEquals(readListPart(frames[1].payload).map((entry) => entry.name), ["a.txt"]);
    assertEquals(readError(frames[2].payload).code, ErrorCode.ShuttingDown);
    assertEquals(requests(served.log.lines), [
      "request id=1 op=list entries=1 error=shutting-down",
    ]);
    assertEquals(served.ledger.tally.errors, 0, "a shutdown is no failure of the server's");
  });

  await t.step("a refusal is an answer, not an error of the server's", async () => {
    const { done, log, ledger } = serve(
      new FakeSocket([
        ...OPENING,
        v2.encodeGet({ name: "missing.txt" }),
        v2.encodeGet({ name: "a.txt", offset: 2, end: 9 }),
      ]),
    );
    const frames = framesAfterGreeting(await done);
    assertEquals(frames.map((frame) => readError(frame.payload).code).slice(1), [
      ErrorCode.NotFound,
      ErrorCode.BadRequest,
    ]);
    assertEquals(requests(log.lines), [
      "request id=1 op=get name=missing.txt error=not-found",
      "request id=1 op=get name=a.txt error=bad-request",
    ]);
    assertEquals(ledger.tally.errors, 0);
  });

  await t.step(
    "a file that fails part-way gets an ERROR, counted once, and the session goes on",
    async () => {
      const bytes = new Uint8Array(100).fill(7);
      const { done, log, ledger } = serve(
        new FakeSocket([...OPENING, v2.encodeGet({ name: "big.bin" }), encodeFrame(Frame.Help)]),
        failingStore("big.bin", bytes, 40, CHANGED),
      );
      const frames = framesAfterGreeting(await done);
      assertEquals(kinds(frames), "Hello File Data Error HelpReply");
      assertEquals(frames[2].payload.length, 40);
      assertEquals(readError(frames[3].payload).code, ErrorCode.Changed);
      assertEquals(requests(log.lines), [
        "request id=1 op=get name=big.bin bytes=40 error=changed",
        "request id=1 op=help",
      ]);
      assertEquals(ledger.tally.errors, 1);
    },
  );

  await t.step("bytes that break the protocol end the session, the peer's fault", async () => {
    const { done, log, ledger } = serve(
      new FakeSocket([...OPENING, Uint8Array.of(0x7f, 0, 0, 0, 0), encodeFrame(Frame.Help)]),
    );
    const frames = framesAfterGreeting(await done);
    assertEquals(kinds(frames), "Hello Error");
    assertEquals(readError(frames[1].payload), {
      code: ErrorCode.BadRequest,
      message: "unknown request type 0x7f",
    });
    assertEquals(ledger.tally.peerErrors, 1);
    assertEquals(ledger.tally.errors, 0);
    assertEquals(requests(log.lines), []);
  });
});

Deno.test("the original dialect in process", async (t) => {
  await using data = await tempFolder({ "a.txt": "hello", "docs/b.txt": "bee" });
  const store = await storeOf(data.path);
  /** What the server answers to `request` after the greeting, and the rest of the service. */
  const ask = async (request: string, fake: Store = store) => {
    const served = testService(fake);
    const written = await served.run(serveNative, new FakeSocket([request]), "framed");
    assertEquals(text(written.subarray(0, GREETING.length)), text(GREETING));
    return { ...served, answer: text(written.subarray(GREETING.length)) };
  };

  await t.step("help, list and a file, each counted as the original protocol's", async () => {
    const help = await ask("help");
    assert(help.answer.startsWith("OK@[HELP]list: "), help.answer);
    const list = await ask("list\n");
    const [files, cached] = list.answer.split("\n[FILES IN CACHE]:\n");
    assertEquals(cached, "");
    const [head, ...names] = files.split("\n");
    assertEquals([head, names.sort()], [
      "OK@",
      ["[FILES INSIDE THE SERVER DIRECTORY]:", "a.txt", "docs/b.txt"],
    ]);
    const file = await ask("file@a.txt");
    assertEquals(file.answer, "OK@hello");
    assertEquals(requests([...help.log.lines, ...list.log.lines, ...file.log.lines]), [
      "request id=1 op=original-help",
      "request id=1 op=original-list",
      "request id=1 op=original-file name=a.txt bytes=5 source=miss",
    ]);
    assertEquals(file.ledger.tally.requests, { framed: 0, original: 1, http: 0 });
  });

  await t.step("a missing file is FNF, a refusal", async () => {
    const { answer, log, ledger } = await ask("file@missing.txt");
    assertEquals(answer, "FNF");
    assertEquals(requests(log.lines), [
      "request id=1 op=original-file name=missing.txt error=not-found",
    ]);
    assertEquals(ledger.tally.errors, 0);
  });

  await t.step("a failure part-way ends the answer short, counted once", async () => {
    const bytes = new Uint8Array(100).fill(97);
    const { answer, ledger } = await ask(
      "file@big.bin",
      failingStore("big.bin", bytes, 40, CHANGED),
    );
    assertEquals(answer, "OK@" + "a".repeat(40));
    assertEquals(ledger.tally.errors, 1);
  });

  await t.step("anything else is the peer's fault, and no request", async () => {
    const { answer, log, ledger } = await ask("gimme");
    assertEquals(answer, "ERR@Unknown request; send list, help or file@NAME.");
    assertEquals(ledger.tally.peerErrors, 1);
    assertEquals(requests(log.lines), []);
  });
});

Deno.test("the HTTP port's writer in process", async (t) => {
  await using data = await tempFolder({ "a.txt": "hello" });
  const store = await storeOf(data.path);

  await t.step("HEAD gets GET's head, without the body; each request logged once", async () => {
    const { run, log, ledger } = testService(store);
    const socket = new FakeSocket([
      "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\n" +
      "HEAD /nothing.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    ]);
    const answers = text(await run(serveHttp, socket, "http")).split(/(?=HTTP\/1\.1 )/);
    assertEquals(answers.length, 3);
    const [get, head, missing] = answers.map((answer) => answer.split("\r\n\r\n"));
    const length = (lines: string) => /\r\nContent-Length: (\d+)\r\n/.exec(lines + "\r\n")?.[1];
    assertEquals([get[1], length(get[0])], ["hello", "5"]);
    assertEquals([head[1], length(head[0])], ["", "5"]);
    assert(missing[0].startsWith("HTTP/1.1 404 "), missing[0]);
    assertEquals(missing[1], "");
    assertEquals(requests(log.lines), [
      "request id=1 op=http-get name=a.txt bytes=5 method=GET target=/a.txt version=HTTP/1.1 status=200 source=miss",
      "request id=1 op=http-head method=HEAD target=/a.txt version=HTTP/1.1 status=200 name=a.txt",
      "request id=1 op=http-head method=HEAD target=/nothing.txt version=HTTP/1.1 status=404 name=nothing.txt error=not-found",
    ]);
    assertEquals(ledger.tally.requests.http, 3);
  });

  await t.step("a body that fails part-way ends the connection short, counted once", async () => {
    const bytes = new Uint8Array(100).fill(97);
    const { run, ledger, log } = testService(failingStore("big.bin", bytes, 40, CHANGED));
    // Another request waits behind it, and is never answered: the connection ends.
    const socket = new FakeSocket([
      "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    ]);
    const [head, body] = text(await run(serveHttp, socket, "http")).split("\r\n\r\n");
    assert(head.startsWith("HTTP/1.1 200 ") && head.includes("\r\nContent-Length: 100"), head);
    assertEquals(body, "a".repeat(40));
    assertEquals(requests(log.lines), [
      "request id=1 op=http-get name=big.bin bytes=40 method=GET target=/big.bin version=HTTP/1.1 status=200 error=changed",
    ]);
    assertEquals(ledger.tally.errors, 1);
  });
});
