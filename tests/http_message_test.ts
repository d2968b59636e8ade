/**
 * The HTTP message parser and the Range header, in process: what a request head means, what is
 * refused and with which status, and ranges that always lie within the file.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import {
  blankLines,
  headEnd,
  HttpError,
  keepsAlive,
  parseRequestHead,
  presentedToken,
} from "../lib/server/http/message.ts";
import { parseRange } from "../lib/server/http/ranges.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const parse = (head: string) => parseRequestHead(bytes(head));

/** The status a head is refused with. */
function refusal(head: string): number {
  try {
    parse(head);
  } catch (error) {
    if (error instanceof HttpError) return error.status;
    throw error;
  }
  throw new Error(`accepted: ${JSON.stringify(head)}`);
}

Deno.test("request heads", async (t) => {
  await t.step("fields by lowercase name, repeated ones joined; the path decoded", () => {
    const head = parse(
      "GET /a%20b/caf%C3%A9?q=1#x HTTP/1.1\r\nHost: x\r\nAccept: a\r\naccept:  b \r\n\r\n",
    );
    assertEquals(head.method, "GET");
    assertEquals(head.path, "/a b/café");
    assertEquals(head.headers.get("accept"), "a, b");
    assertEquals(head.contentLength, 0);
  });

  await t.step("a target as sent to a proxy, and one that is not a path", () => {
    assertEquals(parse("GET http://example.org/a.txt HTTP/1.1\r\nHost: x\r\n\r\n").path, "/a.txt");
    assertEquals(parse("GET http://example.org HTTP/1.1\r\nHost: x\r\n\r\n").path, "/");
    assertEquals(parse("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n").path, undefined);
    assertEquals(parse("GET a.txt HTTP/1.1\r\nHost: x\r\n\r\n").path, undefined);
  });

  await t.step("bytes outside ASCII in a target are UTF-8 the client did not encode", () => {
    const head = new Uint8Array([
      ...bytes("GET /caf"),
      0xc3,
      0xa9,
      ...bytes(" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]);
    assertEquals(parseRequestHead(head).path, "/café");
  });

  await t.step("what is refused, and with which status", () => {
    assertEquals(refusal("GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n"), 400);
    assertEquals(refusal("get / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    assertEquals(refusal("GET / HTTP/1.1\r\nHost: x\rEvil: y\r\n\r\n"), 400);
    assertEquals(refusal("GET / HTTP/1.1\r\nHost: x\0\r\n\r\n"), 400);
    assertEquals(refusal("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
    assertEquals(refusal("GET / HTTP/1.1\r\nBad Name: x\r\nHost: x\r\n\r\n"), 400);
    assertEquals(refusal("GET / HTTP/1.1\r\n\r\n"), 400); // HTTP/1.1 needs a Host
    assertEquals(refusal("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"), 400);
    assertEquals(refusal("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"), 413);
    assertEquals(refusal("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
    assertEquals(
      refusal(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      ),
      400,
    );
    assertEquals(refusal("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 400);
  });

  await t.step("content: its length, or unknown behind a transfer coding", () => {
    assertEquals(
      parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n").contentLength,
      12,
    );
    const chunked = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    assertEquals(chunked.contentLength, undefined);
  });

  await t.step("HTTP/1.0 needs no Host, and keeps the connection only when it asks", () => {
    assertEquals(keepsAlive(parse("GET / HTTP/1.0\r\n\r\n")), false);
    assertEquals(keepsAlive(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")), true);
    assertEquals(keepsAlive(parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), true);
    assertEquals(
      keepsAlive(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
      false,
    );
  });

  await t.step("where a head ends, in any split, with bare LFs too", () => {
    const whole = bytes("GET / HTTP/1.1\nHost: x\n\nGET");
    assertEquals(headEnd(whole), 24);
    for (let cut = 0; cut < 24; cut++) assertEquals(headEnd(whole.subarray(0, cut)), -1);
    assertEquals(blankLines(bytes("\r\n\n\r\nGET")), 5);
  });

  await t.step("a token: Bearer, or Basic's password; nothing otherwise", () => {
    const token = (field?: string) => new TextDecoder().decode(presentedToken(field));
    assertEquals(token("bearer abc"), "abc");
    assertEquals(token(`Basic ${btoa("me:pa:ss")}`), "pa:ss");
    assertEquals(token(`Basic ${btoa("nocolon")}`), "nocolon");
    assertEquals(token("Basic !!!"), "");
    assertEquals(token("Digest abc"), "");
  });
});

Deno.test("a field's value reads as its bytes one character each, short or long, ASCII or not", () => {
  const latin1 = new TextDecoder("latin1");
  // Bytes of a field value: visible ASCII and spaces, and at times bytes past ASCII.
  const value = fc.uint8Array({ maxLength: 600 }).map((raw) =>
    raw.map((byte) => byte < 0x80 ? 0x20 + (byte % 0x5f) : byte)
  );
  fc.assert(fc.property(value, (raw) => {
    const head = new Uint8Array([
      ...bytes("GET /f HTTP/1.1\r\nHost: a\r\nX-Value: "),
      ...raw,
      ...bytes("\r\n\r\n"),
    ]);
    assertEquals(parseRequestHead(head).headers.get("x-value"), latin1.decode(raw).trim());
  }));
});

Deno.test("ranges always lie within the file, or are unsatisfiable, or absent", () => {
  const header = fc.oneof(
    fc.tuple(fc.option(fc.nat(2000)), fc.option(fc.nat(2000))).map(([first, last]) =>
      `bytes=${first ?? ""}-${last ?? ""}`
    ),
    fc.string(),
  );
  fc.assert(fc.property(header, fc.nat(1500), (text, size) => {
    const range = parseRange(text, size);
    if (range === undefined || range === "unsatisfiable") return;
    assert(0 <= range.start && range.start < range.end && range.end <= size, `${text} of ${size}`);
    const [, first, last] = /^bytes=(\d*)-(\d*)$/.exec(text)!;
    if (first === "") assertEquals(range, { start: Math.max(0, size - Number(last)), end: size });
    else assertEquals(range.start, Number(first));
  }));
  assertEquals(parseRange("Bytes = 2 - 4", 10), { start: 2, end: 5 });
});
