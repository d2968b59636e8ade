/**
 * The exchange, the one way a request is counted and logged: it ends in exactly one outcome, a
 * dialect that forgets to end one is caught (logged as abandoned, counted as an error), and the
 * connection's request state (answering, the request clock, the protocol) follows its exchanges.
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import type { Connection } from "../lib/server/connection.ts";
import type { Service } from "../lib/server/service.ts";
import { ErrorCode, WireError } from "../lib/shared/errors.ts";
import { FakeSocket, testService } from "./fakes.ts";

const NO_STORE = {} as Service["store"];

/** A dialect with a bug: it answers, and forgets to end the request's exchange. */
async function forgetful(connection: Connection): Promise<void> {
  await connection.read(new Uint8Array(64));
  using _exchange = connection.begin("get");
  await connection.send(new TextEncoder().encode("an answer"));
}

Deno.test("a dialect that forgets to end an exchange is caught", async (t) => {
  const { run, log, ledger } = testService(NO_STORE);
  const socket = new FakeSocket(["a request"]);
  const connection = { current: undefined as Connection | undefined };
  await run((served) => forgetful(connection.current = served), socket, "framed");

  await t.step("the request is logged as abandoned, once", () => {
    const lines = log.lines.filter((line) => / request /.test(line));
    assertEquals(lines.length, 1);
    assert(/ request id=1 peer=\S+ op=get error=abandoned ms=/.test(lines[0]), lines[0]);
  });

  await t.step("and counted as an error of the server's", () => {
    assertEquals(ledger.tally.errors, 1);
    assertEquals(ledger.tally.requests.framed, 1);
  });

  await t.step("the connection is no longer answering: a shutdown may close it", () => {
    assertEquals(connection.current?.answering, false);
  });
});

Deno.test("an exchange dropped without `using` is abandoned when its connection finishes", async () => {
  const { run, log, ledger } = testService(NO_STORE);
  await run(
    (connection) => {
      connection.begin("list"); // neither ended nor disposed
      return Promise.resolve();
    },
    new FakeSocket(),
    "framed",
  );
  assert(log.lines.some((line) => / request id=1 peer=\S+ op=list error=abandoned /.test(line)));
  assertEquals(ledger.tally.errors, 1);
});

Deno.test("an exchange ends in exactly one outcome", async (t) => {
  const { connect, log, ledger, logged } = testService(NO_STORE);
  const connection = connect(new FakeSocket(), "http");

  await t.step("a second ending is a mistake, thrown", () => {
    using exchange = connection.begin("http-get");
    exchange.answered({ status: 200 });
    throws(() => exchange.answered(), /has ended already/);
    throws(() => exchange.failed(new WireError(ErrorCode.Changed, "x")), /has ended already/);
  });

  await t.step("one exchange at a time on a connection", () => {
    using _first = connection.begin("http-get");
    throws(() => connection.begin("http-get"), /under way/);
    _first.answered();
  });

  await t.step("a refusal is not an error; a failure told to the peer is, once", () => {
    using refused = connection.begin("http-get");
    refused.refused(new WireError(ErrorCode.NotFound, "no such file"), { name: "a" });
    using failed = connection.begin("http-get");
    const failure = new WireError(ErrorCode.Changed, "it changed");
    assertEquals(failed.failed(failure), failure);
    assertEquals(ledger.tally.errors, 1);
  });

  await t.step("any other failure is logged and thrown on, for the server to count", () => {
    using exchange = connection.begin("http-get");
    const gone = new Deno.errors.ConnectionReset("Connection reset by peer");
    throws(() => exchange.failed(gone), gone);
    assertEquals(ledger.tally.errors, 1);
  });

  await t.step("each exchange is one line, counted under the connection's protocol", async () => {
    await logged();
    const lines = log.lines.filter((line) => / request /.test(line)).map((line) =>
      line.replace(/^\S+ /, "").replace(/ ms=\S+$/, "").replace(/ peer=\S+/, "")
    );
    assertEquals(lines, [
      "request id=1 op=http-get status=200",
      "request id=1 op=http-get",
      "request id=1 op=http-get name=a error=not-found",
      "request id=1 op=http-get error=changed",
      'request id=1 op=http-get error="Connection reset by peer"',
    ]);
    assertEquals(ledger.tally.requests, { framed: 0, original: 0, http: 5 });
    assertEquals(ledger.tally.durations.count, 5);
  });
});

Deno.test("a connection's request state follows its exchanges", async (t) => {
  const { connect } = testService(NO_STORE);
  const socket = new FakeSocket(["GET", " / HTTP/1.1"], { open: true });
  const connection = connect(socket, "framed");

  await t.step("a read that brings bytes starts the request clock", async () => {
    assertEquals(connection.requestSince, undefined);
    await connection.read(new Uint8Array(64));
    const since = connection.requestSince;
    assert(since !== undefined);
    await connection.read(new Uint8Array(64)); // more of the same request: the clock runs on
    assertEquals(connection.requestSince, since);
    assertEquals(connection.answering, false);
  });

  await t.step(
    "beginning an exchange stops it; the connection answers until it is written",
    async () => {
      const exchange = connection.begin("get");
      assertEquals(connection.requestSince, undefined);
      assertEquals(connection.answering, true);
      await connection.send(new TextEncoder().encode("the answer"));
      exchange.answered();
      assertEquals(connection.answering, true, "gathered, not yet written");
      await connection.flush();
      assertEquals(connection.answering, false);
    },
  );

  await t.step("the protocol is learnt only before the first exchange", () => {
    throws(() => connection.speaks("original"), /before its requests/);
    const fresh = connect(new FakeSocket(), "framed");
    fresh.speaks("original");
    assertEquals(fresh.protocol, "original");
  });

  await t.step("a step of the opening runs on the request clock, due at once", async () => {
    let during: number | undefined;
    await connection.opening(() => Promise.resolve(during = connection.requestSince));
    assert(during !== undefined);
    assertEquals(connection.requestSince, undefined);
  });
});
