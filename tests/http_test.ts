/**
 * The HTTP port, driven as its users drive it: with fetch, and with curl (on every Debian
 * machine). Bytes and digest headers, ranges and resumption, validators, folder pages, the
 * metrics page, the name rules, and the limits the native port has.
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  cachedBytes,
  chromiumDom,
  logged,
  rawConnect,
  sha256,
  startServer,
  tempFolder,
  text,
  until,
} from "./harness.ts";
import { parseServerArgs } from "../server.ts";
import { has, randomBytes, run } from "../testing/support.ts";

const MiB = 1024 * 1024;

Deno.test("files over HTTP: bytes, validators, digests and ranges", async (t) => {
  const big = randomBytes(3 * MiB + 11, 1);
  const files = { "a.txt": "hello\n", "docs/big.bin": big, "docs/café au lait.txt": "☕\n" };
  await using data = await tempFolder(files);
  await using server = await startServer(data.path, { httpPort: 0 });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  const digest = (await sha256(big)).toBase64();

  await t.step(
    "GET: the bytes, their length, type, dates, ETag and both digest headers",
    async () => {
      const response = await fetch(`${base}/docs/big.bin`);
      assertEquals(response.status, 200);
      assertEquals(new Uint8Array(await response.arrayBuffer()), big);
      const headers = Object.fromEntries(response.headers);
      assertEquals(headers["content-length"], String(big.length));
      assertEquals(headers["content-type"], "application/octet-stream");
      assertEquals(headers["accept-ranges"], "bytes");
      assertEquals(headers["repr-digest"], `sha-256=:${digest}:`);
      assertEquals(headers["digest"], `SHA-256=${digest}`);
      assert(/^"[\w-]{43}"$/.test(headers["etag"]), headers["etag"]);
      const { mtime } = await Deno.stat(join(data.path, "docs/big.bin"));
      assertEquals(headers["last-modified"], mtime!.toUTCString());
    },
  );

  await t.step("HEAD: the same head, no body", async () => {
    const response = await fetch(`${base}/a.txt`, { method: "HEAD" });
    assertEquals([response.status, response.headers.get("content-length")], [200, "6"]);
    assertEquals(await response.text(), "");
  });

  await t.step(
    "HEAD never carries a body: a redirect, a 416, a 404, then the next answer",
    async () => {
      using socket = await rawConnect(server.httpAddr!.port);
      const head = (target: string, more = "") =>
        `HEAD ${target} HTTP/1.1\r\nHost: x\r\n${more}\r\n`;
      await socket.write(
        head("/docs") + head("/a.txt", "Range: bytes=99-\r\n") + head("/missing.txt") +
          "GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      );
      const answers = text(await socket.readToEnd()).split(/(?=HTTP\/1\.1 )/);
      assertEquals(answers.map((a) => a.slice(9, 12)), ["301", "416", "404", "200"]);
      for (const answer of answers.slice(0, 3)) assert(answer.endsWith("\r\n\r\n"), answer);
      assert(answers[3].endsWith("\r\n\r\nhello\n"), answers[3]);
    },
  );

  await t.step("an HTTP/1.1 request without a Host field, or with two, is refused", async () => {
    for (const fields of ["", "Host: a\r\nHost: b\r\n"]) {
      using socket = await rawConnect(server.httpAddr!.port);
      await socket.write(`GET /a.txt HTTP/1.1\r\n${fields}\r\n`);
      assert(text(await socket.readToEnd()).startsWith("HTTP/1.1 400 "), JSON.stringify(fields));
    }
  });

  await t.step("a name sent as raw UTF-8 bytes, as some clients do", async () => {
    using socket = await rawConnect(server.httpAddr!.port);
    // "é" is C3 A9; "€" (E2 82 AC) holds a byte that windows-1252 reads as another character.
    await Deno.writeTextFile(join(data.path, "docs/€5.txt"), "five euros\n");
    await socket.write("GET /docs/€5.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const answer = text(await socket.readToEnd());
    assert(answer.startsWith("HTTP/1.1 200 ") && answer.endsWith("five euros\n"), answer);
  });

  await t.step("names with spaces and accents, percent-encoded", async () => {
    const response = await fetch(`${base}/docs/caf%C3%A9%20au%20lait.txt`);
    assertEquals([response.status, await response.text()], [200, "☕\n"]);
  });

  await t.step("Range: a part (206), a suffix, and one past the end (416)", async () => {
    const part = await fetch(`${base}/docs/big.bin`, { headers: { Range: "bytes=100-199" } });
    assertEquals(part.status, 206);
    assertEquals(part.headers.get("content-range"), `bytes 100-199/${big.length}`);
    assertEquals(new Uint8Array(await part.arrayBuffer()), big.subarray(100, 200));
    const tail = await fetch(`${base}/docs/big.bin`, { headers: { Range: "bytes=-10" } });
    assertEquals(new Uint8Array(await tail.arrayBuffer()), big.subarray(big.length - 10));
    const past = await fetch(`${base}/docs/big.bin`, {
      headers: { Range: `bytes=${big.length}-` },
    });
    assertEquals([past.status, past.headers.get("content-range")], [416, `bytes */${big.length}`]);
    await past.body?.cancel();
  });

  await t.step("If-Range with another ETag gets the whole file", async () => {
    const response = await fetch(`${base}/docs/big.bin`, {
      headers: { Range: "bytes=0-9", "If-Range": '"not-this-one"' },
    });
    assertEquals([response.status, (await response.arrayBuffer()).byteLength], [200, big.length]);
  });

  await t.step("If-None-Match and If-Modified-Since: 304 while current", async () => {
    const first = await fetch(`${base}/a.txt`);
    await first.body?.cancel();
    const etag = first.headers.get("etag")!;
    const byTag = await fetch(`${base}/a.txt`, { headers: { "If-None-Match": etag } });
    assertEquals(byTag.status, 304);
    const lastModified = first.headers.get("last-modified")!;
    const byDate = await fetch(`${base}/a.txt`, { headers: { "If-Modified-Since": lastModified } });
    assertEquals(byDate.status, 304);
    const other = await fetch(`${base}/a.txt`, { headers: { "If-None-Match": '"x"' } });
    assertEquals([other.status, await other.text()], [200, "hello\n"]);
  });

  await t.step("curl -C - resumes a partial download to the exact bytes", async () => {
    const out = join(data.path, "..", `curl-${server.httpAddr!.port}.bin`);
    await Deno.writeFile(out, big.subarray(0, 1_000_000));
    const curl = await run("curl", ["-sf", "-C", "-", "-o", out, `${base}/docs/big.bin`]);
    assertEquals(curl.code, 0, curl.stderr);
    assertEquals(await Deno.readFile(out), big);
    await Deno.remove(out);
  });

  await t.step("hidden files, escapes and other methods are refused", async () => {
    await Deno.writeTextFile(join(data.path, ".env"), "SECRET=1");
    assertEquals((await fetch(`${base}/.env`).then(drain)).status, 400);
    using socket = await rawConnect(server.httpAddr!.port);
    await socket.write(
      "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert(text(await socket.readToEnd()).startsWith("HTTP/1.1 400 "));
    const post = await fetch(`${base}/a.txt`, { method: "DELETE" }).then(drain);
    assertEquals([post.status, post.headers.get("allow")], [405, "GET, HEAD"]);
    assertEquals((await fetch(`${base}/missing.txt`).then(drain)).status, 404);
  });
});

Deno.test("folders over HTTP: an HTML page, or JSON when asked", async (t) => {
  await using data = await tempFolder({ "a.txt": "a", "docs/<b>.txt": "bb", ".hidden": "h" });
  await using server = await startServer(data.path, { httpPort: 0 });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;

  await t.step(
    "the root page links the folder and the files, escaped, and no hidden file",
    async () => {
      const response = await fetch(`${base}/`);
      assertEquals(response.headers.get("content-type"), "text/html; charset=utf-8");
      const page = await response.text();
      assert(page.includes('<a href="docs/">docs/</a>'), page);
      assert(page.includes('<a href="a.txt">a.txt</a>'), page);
      assert(!page.includes("hidden"), "a hidden file is listed");
    },
  );

  await t.step("JSON for Accept: application/json", async () => {
    const response = await fetch(`${base}/docs/`, { headers: { Accept: "application/json" } });
    const listed = await response.json();
    assertEquals(listed.map((e: { name: string; size: number }) => [e.name, e.size]), [[
      "<b>.txt",
      2,
    ]]);
  });

  await t.step("a page goes chunked to HTTP/1.1, and to HTTP/1.0 ends with the close", async () => {
    const eleven = await run("curl", ["-si", `${base}/`]);
    assert(/\r\ntransfer-encoding: chunked\r\n/i.test(eleven.stdout), eleven.stdout);
    assert(eleven.stdout.endsWith("</html>\n"), eleven.stdout);
    const ten = await run("curl", ["-si", "--http1.0", `${base}/`]);
    assertEquals(ten.code, 0, ten.stderr);
    assert(/\r\nconnection: close\r\n/i.test(ten.stdout), ten.stdout);
    assert(!/transfer-encoding/i.test(ten.stdout), ten.stdout);
    assert(ten.stdout.endsWith("</html>\n"), ten.stdout);
  });

  await t.step("a folder's URL without its slash is redirected; a missing one is 404", async () => {
    const moved = await fetch(`${base}/docs`, { redirect: "manual" }).then(drain);
    assertEquals([moved.status, moved.headers.get("location")], [301, "/docs/"]);
    assertEquals((await fetch(`${base}/nope/`).then(drain)).status, 404);
  });
});

Deno.test("/-/metrics is the Prometheus text format and moves with requests; /-/healthy", async () => {
  await using data = await tempFolder({ "a.txt": "a" });
  await using server = await startServer(data.path, { httpPort: 0 });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  const scrape = async () => {
    const response = await fetch(`${base}/-/metrics`);
    assertEquals(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const samples = new Map<string, number>();
    for (const line of (await response.text()).trimEnd().split("\n")) {
      if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
      const match = /^([a-z_]+(?:\{[a-z]+="[^"]*"\})?) (-?[\d.e+-]+|\+Inf)$/.exec(line);
      assert(match, `not a sample line: ${line}`);
      samples.set(match[1], Number(match[2]));
    }
    return samples;
  };
  const before = await scrape();
  assertEquals(await (await fetch(`${base}/a.txt`)).text(), "a");
  assertEquals(await (await fetch(`${base}/a.txt`)).text(), "a");
  const after = await scrape();
  const moved = (name: string) => after.get(name)! - before.get(name)!;
  assertEquals(moved('fileserver_requests_total{protocol="http"}'), 3); // two files, one scrape
  assertEquals([moved("fileserver_cache_misses_total"), moved("fileserver_cache_hits_total")], [
    1,
    1,
  ]);
  assertEquals(after.get("fileserver_cache_bytes"), cachedBytes(1));
  assertEquals(after.get("fileserver_cache_capacity_bytes"), (await server.stats()).cacheCapacity);
  assertEquals(moved("fileserver_request_duration_seconds_count"), 3);
  assertEquals(
    after.get('fileserver_request_duration_seconds_bucket{le="+Inf"}'),
    after.get("fileserver_request_duration_seconds_count"),
  );
  const healthy = await fetch(`${base}/-/healthy`);
  assertEquals([healthy.status, await healthy.text()], [200, "OK\n"]);

  await (await fetch(`${base}/missing.txt`)).body?.cancel();
  const classes = await scrape();
  const movedSince = (name: string) => classes.get(name)! - after.get(name)!;
  assertEquals(
    ["2xx", "4xx", "5xx"].map((c) => movedSince(`fileserver_http_responses_total{class="${c}"}`)),
    [2, 1, 0], // the health check and the last scrape; the missing file
  );
  const rss = classes.get("process_resident_memory_bytes")!;
  assert(rss > 10 * MiB && rss < 4096 * MiB, `${rss}`);
  assert(classes.get("process_cpu_seconds_total")! > 0);
  const started = classes.get("process_start_time_seconds")!;
  assert(Math.abs(started - Date.now() / 1000) < 3600, `${started}`);
});

Deno.test({
  name: "promtool finds the metrics page well formed",
  ignore: !await has("promtool"),
  async fn() {
    await using data = await tempFolder({ "a.txt": "a" });
    await using server = await startServer(data.path, { httpPort: 0 });
    const base = `http://127.0.0.1:${server.httpAddr!.port}`;
    await (await fetch(`${base}/a.txt`)).body?.cancel();
    await using out = await tempFolder({
      "metrics.txt": await (await fetch(`${base}/-/metrics`)).text(),
    });
    const check = await run("sh", [
      "-c",
      `promtool check metrics < ${join(out.path, "metrics.txt")}`,
    ]);
    assertEquals([check.code, check.stdout + check.stderr], [0, ""]);
  },
});

Deno.test("HTTP holds the native port's limits and never completes a changed file", async (t) => {
  const big = randomBytes(96 * MiB, 3);
  await using data = await tempFolder({ "a.txt": "a", "big.bin": big });
  await using server = await startServer(data.path, {
    httpPort: 0,
    maxConnections: 8,
    requestTimeoutMs: 500,
    cacheBytes: 8 * MiB,
  });
  const port = server.httpAddr!.port;

  await t.step("a request head that trickles in is cut at the request timeout", async () => {
    using socket = await rawConnect(port);
    await socket.write("GET /a.txt HTTP/1.1\r\n");
    await until(() => server.log.lines.some((l) => / reason=request-timeout/.test(l)), "the cut");
  });

  await t.step("one address holds a quarter of the places; the next hears 503", async () => {
    const held = await Promise.all([1, 2].map(() => rawConnect(port)));
    await until(async () => (await server.stats()).connections === 2, "two connections");
    using refused = await rawConnect(port);
    const answer = text(await refused.readToEnd());
    assert(answer.startsWith("HTTP/1.1 503 Service Unavailable\r\n"), answer);
    assert(answer.includes("2 connections are open from 127.0.0.1"), answer);
    for (const socket of held) socket[Symbol.dispose]();
  });

  await t.step("a file rewritten mid-answer ends short, never whole", async () => {
    await until(
      async () => (await server.stats()).connections === 0,
      "the earlier connections to close",
    );
    using socket = await rawConnect(port);
    await socket.write("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    const head = text(await socket.readExactly(512));
    assert(head.startsWith("HTTP/1.1 200 OK\r\n"), head);
    await socket.readExactly(30 * MiB);
    const path = join(data.path, "big.bin");
    const { mtime, atime } = await Deno.stat(path);
    await using file = await Deno.open(path, { write: true });
    await file.write(randomBytes(MiB, 4));
    await Deno.utime(path, atime!, mtime!);
    const rest = await socket.readToEnd();
    const body = 512 - (head.indexOf("\r\n\r\n") + 4) + 30 * MiB + rest.length;
    assert(body < big.length, "the whole length came, as if the file were unchanged");
  });
});

/** A response with its body read and dropped, so the connection is free again. */
async function drain(response: Response): Promise<Response> {
  await response.body?.cancel();
  return response;
}

Deno.test("a trusted proxy's connections count towards the total until they name a client", async () => {
  await using data = await tempFolder({ "a.txt": "a" });
  await using server = await startServer(data.path, {
    httpPort: 0,
    maxConnections: 4,
    requestTimeoutMs: 300,
    trustProxies: ["127.0.0.1"],
  });
  const port = server.httpAddr!.port;
  // Silent, from the proxy's address: none names a client, yet each holds a socket.
  const silent = await Promise.all([1, 2, 3, 4].map(() => rawConnect(port)));
  await until(async () => (await server.stats()).connections === 4, "four silent connections");
  using refused = await rawConnect(port);
  assert(text(await refused.readToEnd()).startsWith("HTTP/1.1 503 "), "a fifth was let in");
  // A PROXY line is due at once: silence is cut at the request timeout, as a request would be.
  await until(
    async () => (await server.stats()).connections === 0,
    "the silent connections to be closed",
  );
  for (const socket of silent) socket[Symbol.dispose]();
});

Deno.test("behind a trusted proxy, the per-host cap counts the clients it names", async (t) => {
  await using data = await tempFolder({ "a.txt": "a" });
  await using server = await startServer(data.path, {
    httpPort: 0,
    maxConnections: 8,
    trustProxies: ["127.0.0.1"],
  });
  const port = server.httpAddr!.port;
  /** A connection from the proxy, carrying `client`, asking for a.txt and keeping the line open. */
  const carry = async (client: string) => {
    const socket = await rawConnect(port);
    await socket.write(
      `PROXY TCP4 ${client} 127.0.0.1 40000 ${port}\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    return socket;
  };

  await t.step("three clients through one proxy are all served", async () => {
    const sockets = await Promise.all(["192.0.2.1", "192.0.2.2", "192.0.2.3"].map(carry));
    for (const socket of sockets) {
      assert(text(await socket.readExactly(15)).startsWith("HTTP/1.1 200 OK"));
      socket[Symbol.dispose]();
    }
    await logged(server, /peer="192\.0\.2\.1:40000 via 127\.0\.0\.1:\d+"/);
  });

  await t.step("a third connection of one client is refused, naming that client", async () => {
    await until(
      async () => (await server.stats()).connections === 0,
      "the earlier connections to close",
    );
    const held = [await carry("192.0.2.9"), await carry("192.0.2.9")];
    // Admitted once the PROXY line named the client: then, and not before, each request is
    // answered and logged under that client.
    const answered = () =>
      server.log.lines.filter((l) => / request id=\d+ peer="192\.0\.2\.9:/.test(l));
    await until(() => answered().length === 2, "two connections of one client");
    using third = await carry("192.0.2.9");
    const answer = text(await third.readToEnd());
    assert(answer.startsWith("HTTP/1.1 503 ") && answer.includes("open from 192.0.2.9"), answer);
    for (const socket of held) socket[Symbol.dispose]();
  });

  await t.step(
    "the proxy's host speaking for itself, without a PROXY line, is served",
    async () => {
      using socket = await rawConnect(port);
      await socket.write("GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      assert(text(await socket.readToEnd()).startsWith("HTTP/1.1 200 OK"));
    },
  );

  await t.step("a malformed PROXY line closes the connection unanswered", async () => {
    using socket = await rawConnect(port);
    await socket.write("PROXY TCP4 nonsense\r\nGET /a.txt HTTP/1.1\r\n\r\n");
    assertEquals(text(await socket.readToEnd()), "");
  });
});

/** The answers `request` gets on a connection of its own, each as text, read until the close. */
async function exchange(port: number, request: string): Promise<string[]> {
  using socket = await rawConnect(port);
  await socket.write(request);
  return text(await socket.readToEnd()).split(/(?=^HTTP\/1\.1 \d{3} )/m);
}

/** The value of the field `name` in the answer `answer` (its first, if repeated). */
function field(answer: string, name: string): string | undefined {
  return new RegExp(`\r\n${name}: ([^\r]*)\r\n`, "i").exec(answer.split("\r\n\r\n")[0] + "\r\n")
    ?.[1];
}

const GET = (path: string, more = "") => `GET ${path} HTTP/1.1\r\nHost: x\r\n${more}\r\n`;
const LAST = (path: string) => GET(path, "Connection: close\r\n");

Deno.test("HTTP as the RFCs and browsers want it: dates, methods, heads", async (t) => {
  await using data = await tempFolder({ "a.txt": "hello\n", "docs/b.txt": "b" });
  await using server = await startServer(data.path, { httpPort: 0 });
  const port = server.httpAddr!.port;

  await t.step("every answer carries the Date (now) and X-Content-Type-Options", async () => {
    const answers = await exchange(
      port,
      GET("/a.txt") + GET("/missing.txt") + GET("/docs") + GET("/a.txt", "Range: bytes=99-\r\n") +
        GET("/a.txt", "If-None-Match: *\r\n") + GET("/") + GET("/.env") +
        "DELETE /a.txt HTTP/1.1\r\nHost: x\r\n\r\n" + LAST("/-/healthy"),
    );
    const statuses = answers.map((answer) => answer.slice(9, 12));
    assertEquals(statuses, ["200", "404", "301", "416", "304", "200", "400", "405", "200"]);
    for (const answer of answers) {
      const date = field(answer, "Date");
      assert(/^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/.test(date ?? ""), answer);
      assert(Math.abs(Date.parse(date!) - Date.now()) < 5000, `${date} is not now`);
      assertEquals(field(answer, "X-Content-Type-Options"), "nosniff", answer);
    }
  });

  await t.step(
    "POST, PUT and DELETE get 405 with Allow, content or not; the line carries on",
    async () => {
      const long = "x".repeat(40_000); // more than one read: dropped as it comes
      const answers = await exchange(
        port,
        "POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
          "PUT /a.txt HTTP/1.1\r\nHost: x\r\n\r\n" +
          `POST /docs/ HTTP/1.1\r\nHost: x\r\nContent-Length: ${long.length}\r\n\r\n${long}` +
          "\r\n" + // a blank line after content, as old browsers sent: ignored
          "DELETE /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + LAST("/a.txt"),
      );
      assertEquals(answers.map((answer) => answer.slice(9, 12)), [
        "405",
        "405",
        "405",
        "405",
        "200",
      ]);
      for (const answer of answers.slice(0, 4)) assertEquals(field(answer, "Allow"), "GET, HEAD");
      assert(answers[4].endsWith("\r\n\r\nhello\n"), answers[4]);
      const curl = await run("curl", [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-d",
        "a=1",
        `http://127.0.0.1:${port}/a.txt`,
      ]);
      assertEquals(curl.stdout, "405");
    },
  );

  await t.step("content too long to drop, or chunked: 405, and the connection closes", async () => {
    for (
      const head of [
        `Content-Length: ${10 * MiB}\r\n`,
        "Transfer-Encoding: chunked\r\n",
      ]
    ) {
      const answers = await exchange(
        port,
        `POST /a.txt HTTP/1.1\r\nHost: x\r\n${head}\r\n` + GET("/a.txt"),
      );
      assertEquals(answers.length, 1, answers.join(""));
      assertEquals([answers[0].slice(9, 12), field(answers[0], "Connection")], ["405", "close"]);
    }
  });

  await t.step("content whose length cannot be trusted is refused", async () => {
    for (
      const head of [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: -1\r\n",
      ]
    ) {
      const answers = await exchange(port, `POST /a.txt HTTP/1.1\r\nHost: x\r\n${head}\r\nhello`);
      assertEquals(answers.map((answer) => answer.slice(9, 12)), ["400"], head);
    }
  });

  await t.step("blank lines before a request line are ignored (RFC 9112 §2.2)", async () => {
    const answers = await exchange(port, "\r\n\r\n" + GET("/a.txt") + "\r\n" + LAST("/a.txt"));
    assertEquals(answers.map((answer) => answer.slice(9, 12)), ["200", "200"]);
  });

  await t.step("a NUL or a bare CR in a header line is refused (RFC 9110 §5.5)", async () => {
    for (const bad of ["X-Note: a\0b\r\n", "X-Note: a\rb\r\n", "X-No\rte: a\r\n"]) {
      const answers = await exchange(port, GET("/a.txt", bad));
      assertEquals(answers.map((answer) => answer.slice(9, 12)), ["400"], JSON.stringify(bad));
    }
  });

  await t.step("HTTP/1.0 with keep-alive is told the connection stays open", async () => {
    const answers = await exchange(
      port,
      "GET /missing.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
        "GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + "GET /a.txt HTTP/1.0\r\n\r\n",
    );
    assertEquals(answers.map((answer) => answer.slice(9, 12)), ["404", "200", "200"]);
    assertEquals(answers.map((answer) => field(answer, "Connection")), [
      "keep-alive",
      "keep-alive",
      undefined, // and then the server closes, as HTTP/1.0 expects
    ]);
  });

  await t.step("a request line too long is 414; a head too large otherwise, 431", async () => {
    const line = await exchange(port, GET(`/${"a".repeat(20_000)}`));
    assertEquals(line.map((answer) => answer.slice(9, 12)), ["414"]);
    const head = await exchange(port, GET("/a.txt", `X-Long: ${"a".repeat(20_000)}\r\n`));
    assertEquals(head.map((answer) => answer.slice(9, 12)), ["431"]);
  });
});

Deno.test("the server's own pages run nothing; shared HTML is sandboxed on request", async (t) => {
  const files = {
    "page.html": "<script>document.title = 'ran'</script>",
    "logo.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
    "a.txt": "a",
  };
  await using data = await tempFolder(files);
  await using plain = await startServer(data.path, { httpPort: 0 });
  await using sandboxed = await startServer(data.path, { httpPort: 0, htmlSandbox: true });
  const policy = async (server: typeof plain, path: string) => {
    const response = await fetch(`http://127.0.0.1:${server.httpAddr!.port}${path}`);
    return { policy: response.headers.get("content-security-policy"), body: await response.text() };
  };

  await t.step(
    "folder pages and error texts: a strict policy; only the page's style applies",
    async () => {
      const page = await policy(plain, "/");
      const style = /<style>([^<]*)<\/style>/.exec(page.body)![1];
      const digest = createHash("sha256").update(style).digest("base64");
      assertEquals(
        page.policy,
        `default-src 'none'; style-src 'sha256-${digest}'; base-uri 'none'; form-action 'none'; ` +
          "frame-ancestors 'none'",
      );
      assertEquals((await policy(plain, "/missing.txt")).policy, page.policy);
    },
  );

  await t.step("shared files go as they are, without --html-sandbox", async () => {
    for (const name of Object.keys(files)) {
      assertEquals(await policy(plain, `/${name}`), { policy: null, body: files[name as "a.txt"] });
    }
  });

  await t.step("--html-sandbox goes with --http-port", () => {
    const options = parseServerArgs(["--http-port", "0", "--html-sandbox"]);
    assert(options !== "help");
    assertEquals(options.htmlSandbox, true);
    throws(() => parseServerArgs(["--html-sandbox"]), {
      name: "UsageError",
      message: "--html-sandbox goes with --http-port",
    });
  });

  await t.step(
    "with --html-sandbox, HTML and SVG come sandboxed; other files as they are",
    async () => {
      assertEquals((await policy(sandboxed, "/page.html")).policy, "sandbox");
      assertEquals((await policy(sandboxed, "/logo.svg")).policy, "sandbox");
      assertEquals((await policy(sandboxed, "/a.txt")).policy, null);
    },
  );
});

Deno.test({
  name: "in Chromium, a shared page's script runs, and with --html-sandbox it does not",
  ignore: !await has("chromium"),
  async fn() {
    const page = "<title>static</title><script>document.title = 'ran'</script>";
    await using data = await tempFolder({ "page.html": page });
    for (const htmlSandbox of [false, true]) {
      await using server = await startServer(data.path, { httpPort: 0, htmlSandbox });
      const dom = await chromiumDom(`http://127.0.0.1:${server.httpAddr!.port}/page.html`);
      const title = /<title>([^<]*)<\/title>/.exec(dom)?.[1];
      assertEquals(title, htmlSandbox ? "static" : "ran", `htmlSandbox: ${htmlSandbox}`);
    }
  },
});

Deno.test("If-Range with a date keeps the range only while the date names one version", async (t) => {
  const first = randomBytes(2048, 5);
  const second = randomBytes(2048, 6);
  await using data = await tempFolder({ "v.bin": first, "old.bin": first });
  await using server = await startServer(data.path, { httpPort: 0 });
  const url = (name: string) => `http://127.0.0.1:${server.httpAddr!.port}/${name}`;
  const path = join(data.path, "v.bin");

  await t.step(
    "a file rewritten within the second of its Last-Modified: the whole new file",
    async () => {
      // Its modification time is the current second, a little ahead so that no test run, however
      // slow, reaches the next: to a date, both versions look the same.
      const mtime = new Date(Date.now() + 3000);
      await Deno.utime(path, mtime, mtime);
      const start = await fetch(url("v.bin"), { headers: { Range: "bytes=0-1023" } });
      assertEquals(new Uint8Array(await start.arrayBuffer()), first.subarray(0, 1024));
      const lastModified = start.headers.get("last-modified")!;
      // Replaced as editors and rsync replace a file: written beside it, then renamed over it.
      await Deno.writeFile(`${path}.new`, second);
      await Deno.utime(`${path}.new`, mtime, mtime);
      await Deno.rename(`${path}.new`, path);
      const rest = await fetch(url("v.bin"), {
        headers: { Range: "bytes=1024-", "If-Range": lastModified },
      });
      assertEquals(rest.status, 200);
      assertEquals(new Uint8Array(await rest.arrayBuffer()), second);
    },
  );

  await t.step("a file a second or more older than now: the date keeps the range", async () => {
    const hourAgo = new Date(Date.now() - 3600_000);
    await Deno.utime(join(data.path, "old.bin"), hourAgo, hourAgo);
    const lastModified = hourAgo.toUTCString();
    const rest = await fetch(url("old.bin"), {
      headers: { Range: "bytes=1024-", "If-Range": lastModified },
    });
    assertEquals(rest.status, 206);
    assertEquals(new Uint8Array(await rest.arrayBuffer()), first.subarray(1024));
  });
});
