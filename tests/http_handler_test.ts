/**
 * The HTTP port's decisions, in process: handle() takes a parsed request and gives the reply as a
 * value (status, fields, body, how the exchange ends), which nothing has sent yet, as std's
 * serveDir is tested with a Request and its Response.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import type { Peer } from "../lib/server/access.ts";
import { handle } from "../lib/server/http/handler.ts";
import type { HttpOptions, Reply } from "../lib/server/http/reply.ts";
import { parseRequestHead } from "../lib/server/http/message.ts";
import type { Service } from "../lib/server/service.ts";
import { Tokens } from "../lib/server/tokens.ts";
import { SHA256 } from "../lib/shared/digest.ts";
import { ErrorCode, WireError } from "../lib/shared/errors.ts";
import { failingStore, storeOf, testService } from "./fakes.ts";
import { tempFolder } from "./harness.ts";

const peer: Peer = {
  id: 1,
  host: "192.0.2.1",
  peer: "192.0.2.1:40000",
  pause: () => Promise.resolve(),
};

/** The reply `service` gives to `request` (a request line), with `headers` and options. */
function ask(
  service: Service,
  request: string,
  headers: Record<string, string> = {},
  { contentKept = false, ...options }: HttpOptions & { contentKept?: boolean } = {},
): Promise<Reply> {
  const lines = Object.entries({ Host: "x", ...headers }).map(([name, value]) =>
    `${name}: ${value}`
  );
  const bytes = new TextEncoder().encode([request, ...lines, "", ""].join("\r\n"));
  return handle({ head: parseRequestHead(bytes), contentKept }, service, peer, options);
}

/** A reply's field `name`, every value of it. */
function field(reply: Reply, name: string): string[] {
  return reply.fields.filter(([key]) => key === name).map(([, value]) => value);
}

/** The part of a file a reply sends (disposing of it), or its text (a folder's page, read). */
async function body(
  reply: Reply,
): Promise<string | { name: string; start: number; end: number } | undefined> {
  if (typeof reply.body !== "object") return reply.body;
  if ("page" in reply.body) {
    return (await Array.fromAsync(reply.body.page)).map((part) => part.data).join("");
  }
  using file = reply.body.file;
  return { name: file.name, start: reply.body.start, end: reply.body.end };
}

Deno.test("HTTP replies, decided in process", async (t) => {
  await using data = await tempFolder({
    "a.txt": "hello",
    "page.html": "<p>hi</p>",
    "docs/b.txt": "bee",
  });
  const { service } = testService(await storeOf(data.path));

  await t.step("a file: whole, a range, current, or a range not in it", async () => {
    const whole = await ask(service, "GET /a.txt HTTP/1.1");
    assertEquals([whole.status, await body(whole)], [200, { name: "a.txt", start: 0, end: 5 }]);
    const [etag] = field(whole, "ETag");
    assertEquals(field(whole, "Content-Type"), ["text/plain; charset=utf-8"]);
    const part = await ask(service, "GET /a.txt HTTP/1.1", { Range: "bytes=1-2" });
    assertEquals([part.status, await body(part)], [206, { name: "a.txt", start: 1, end: 3 }]);
    assertEquals(field(part, "Content-Range"), ["bytes 1-2/5"]);
    const current = await ask(service, "GET /a.txt HTTP/1.1", { "If-None-Match": etag });
    assertEquals([current.status, current.body], [304, undefined]);
    const outside = await ask(service, "GET /a.txt HTTP/1.1", { Range: "bytes=9-" });
    assertEquals([outside.status, field(outside, "Content-Range")], [416, ["bytes */5"]]);
    const stale = await ask(service, "GET /a.txt HTTP/1.1", {
      Range: "bytes=1-2",
      "If-Range": '"x"',
    });
    assertEquals([stale.status, await body(stale)], [200, { name: "a.txt", start: 0, end: 5 }]);
  });

  await t.step("folders: a page, JSON, a redirect to one, none", async () => {
    const page = await ask(service, "GET /docs/ HTTP/1.1");
    assertEquals(page.status, 200);
    assert((await body(page) as string).includes("b.txt"));
    const json = await ask(service, "GET /docs/ HTTP/1.1", { Accept: "application/json" });
    assertEquals(JSON.parse(await body(json) as string)[0].name, "b.txt");
    const moved = await ask(service, "GET /docs HTTP/1.1");
    assertEquals([moved.status, field(moved, "Location"), moved.refused], [
      301,
      ["/docs/"],
      undefined,
    ]);
    assertEquals((await ask(service, "GET /nowhere/ HTTP/1.1")).status, 404);
  });

  await t.step("a missing file is refused, not failed", async () => {
    const missing = await ask(service, "HEAD /missing.txt HTTP/1.1");
    assertEquals([missing.status, missing.refused?.code, missing.failed], [
      404,
      ErrorCode.NotFound,
      undefined,
    ]);
    assertEquals(missing.name, "missing.txt");
    assertEquals((await ask(service, "GET /../a.txt HTTP/1.1")).status, 400);
  });

  await t.step("methods, targets and the server's own pages", async () => {
    const post = await ask(service, "POST /a.txt HTTP/1.1");
    assertEquals([post.status, field(post, "Allow"), post.close], [405, ["GET, HEAD"], false]);
    const kept = await ask(service, "PUT /a.txt HTTP/1.1", {}, { contentKept: true });
    assertEquals([kept.status, kept.close], [405, true]);
    assertEquals((await ask(service, "GET /%zz HTTP/1.1")).status, 400);
    assertEquals((await ask(service, "GET /-/healthy HTTP/1.1")).body, "OK\n");
    assertEquals((await ask(service, "GET /-/metrics HTTP/1.1")).body, "metrics\n");
    assertEquals((await ask(service, "GET /-/other HTTP/1.1")).status, 404);
  });

  await t.step("--html-sandbox: pages that run scripts are sandboxed", async () => {
    const sandboxed = await ask(service, "GET /page.html HTTP/1.1", {}, { htmlSandbox: true });
    assertEquals(field(sandboxed, "Content-Security-Policy"), ["sandbox"]);
    const plain = await ask(service, "GET /page.html HTTP/1.1");
    assertEquals(field(plain, "Content-Security-Policy"), []);
    await body(sandboxed);
    await body(plain);
  });

  await t.step("a digest that cannot be worked out is a failure, a 500", async () => {
    const failure = new WireError(ErrorCode.Internal, 'cannot read "x.bin": Input/output error');
    const store = failingStore("x.bin", new Uint8Array(8), 0, failure);
    const broken = {
      ...store,
      open: (name: string) => ({
        ...store.open(name, SHA256),
        digest: () => Promise.reject(failure),
      }),
    };
    const reply = await ask(testService(broken).service, "GET /x.bin HTTP/1.1");
    assertEquals([reply.status, reply.failed, reply.body], [500, failure, `${failure.message}\n`]);
  });
});

Deno.test("HTTP replies with tokens, in process", async (t) => {
  await using data = await tempFolder({ "a.txt": "hello" });
  await using secrets = await tempFolder({ tokens: "s3cret-token-of-some-length\n" });
  const tokens = await Tokens.load(join(secrets.path, "tokens"));
  const { service } = testService(await storeOf(data.path), { tokens });

  await t.step(
    "none: a 401 with both challenges, Basic first; the connection goes on",
    async () => {
      const none = await ask(service, "GET /a.txt HTTP/1.1");
      assertEquals(none.status, 401);
      assertEquals(field(none, "WWW-Authenticate"), [
        'Basic realm="files", charset="UTF-8"',
        'Bearer realm="files"',
      ]);
      assertEquals(none.close, false);
    },
  );

  await t.step("a wrong one: a 401 that ends the connection", async () => {
    const wrong = await ask(service, "GET /a.txt HTTP/1.1", { Authorization: "Bearer nope" });
    assertEquals([wrong.status, wrong.close], [401, true]);
  });

  await t.step("the right one, Bearer or Basic; the health check needs none", async () => {
    const bearer = await ask(service, "GET /a.txt HTTP/1.1", {
      Authorization: "Bearer s3cret-token-of-some-length",
    });
    assertEquals(await body(bearer), { name: "a.txt", start: 0, end: 5 });
    const basic = await ask(service, "HEAD /a.txt HTTP/1.1", {
      Authorization: `Basic ${btoa("anyone:s3cret-token-of-some-length")}`,
    });
    assertEquals(basic.status, 200);
    await body(basic);
    assertEquals((await ask(service, "GET /-/healthy HTTP/1.1")).status, 200);
  });
});
