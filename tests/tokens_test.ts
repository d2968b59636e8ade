/**
 * Access tokens: the token file's rules, the check, the delay a wrong token earns, and a server
 * that answers nothing before a valid token: not a pipelined request, not a client of protocol
 * version 1, not the original dialect (unless the operator allows it). The real client presents a
 * token from a file or FILESERVER_TOKEN, and a token removed from the file and reloaded on SIGHUP
 * is refused from then on, while open connections carry on.
 */

import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import { FileClient } from "../lib/client/client.ts";
import { ConnectionError } from "../lib/client/errors.ts";
import { FailureDelay } from "../lib/server/delay.ts";
import { parseTokens, Tokens } from "../lib/server/tokens.ts";
import { ErrorCode } from "../lib/shared/errors.ts";
import { parseServerArgs } from "../server.ts";
import { encodeFrame, Frame } from "../lib/shared/frames.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import { codec, encodeError, encodeSetup, preamble } from "../lib/shared/protocol.ts";
import {
  fetchFile,
  rawConnect,
  runClient,
  startServer,
  tempFolder,
  text,
  until,
} from "./harness.ts";
import { concat } from "../lib/shared/io.ts";
import { spawnServer } from "../testing/support.ts";

const encoder = new TextEncoder();
const ALICE = "alice-3f9c2a7e51d04b8e";
const BACKUP = "backup-9b1d7c02e6a84f35";
const TOKEN_FILE = `# who holds which token\n${ALICE}\n\n   # the nightly backup\n${BACKUP}\n`;

Deno.test("the token file: one token a line, comments and blank lines skipped", () => {
  assertEquals(parseTokens(TOKEN_FILE, "tokens.txt").length, 2);
  assertEquals(parseTokens("a\r\nb\r\n", "tokens.txt").length, 2, "CRLF line endings");
  const refused: [string, string][] = [
    [
      `${ALICE} # alice\n`,
      "tokens.txt line 1: a token holds no spaces; put a comment on a line of its own, after #",
    ],
    [`# none\n\n${"x".repeat(1025)}\n`, "tokens.txt line 3: a token is at most 1024 bytes"],
    ["# no tokens yet\n", "tokens.txt holds no token"],
  ];
  for (const [file, message] of refused) {
    let error: Error | undefined;
    try {
      parseTokens(file, "tokens.txt");
    } catch (thrown) {
      error = thrown as Error;
    }
    assertEquals(error?.message, message);
    assert(!error.message.includes(ALICE), "an error shows the token");
  }
});

Deno.test("a token is checked against digests, and a bad reload keeps the tokens", async () => {
  await using folder = await tempFolder({ "tokens.txt": TOKEN_FILE });
  const file = `${folder.path}/tokens.txt`;
  const tokens = await Tokens.load(file);
  assertEquals(tokens.count, 2);
  assert(tokens.verify(encoder.encode(ALICE)));
  assert(tokens.verify(encoder.encode(BACKUP)));
  for (const wrong of ["", ALICE.slice(0, -1), `${ALICE}0`, ALICE.toUpperCase()]) {
    assert(!tokens.verify(encoder.encode(wrong)), `${JSON.stringify(wrong)} was accepted`);
  }

  await Deno.writeTextFile(file, `${BACKUP}\n`);
  assertEquals(await tokens.reload(), 1);
  assert(!tokens.verify(encoder.encode(ALICE)), "a removed token is still accepted");
  await Deno.writeTextFile(file, `${BACKUP} ${ALICE}\n`);
  await rejects(tokens.reload(), {
    message: `${file} line 1: a token holds no spaces; ` +
      "put a comment on a line of its own, after #",
  });
  await Deno.remove(file);
  await rejects(tokens.reload(), {
    message: `cannot read the token file ${file}: No such file or directory`,
  });
  assert(tokens.verify(encoder.encode(BACKUP)), "a failed reload lost the tokens");
});

Deno.test("the failure delay forgets hosts, and remembers at most 10,000", () => {
  let now = 0;
  const delay = new FailureDelay(() => now);
  assertEquals([delay.fail("10.0.0.1"), delay.fail("10.0.0.1")], [200, 400]);
  now += 9 * 60 * 1000;
  assertEquals(delay.fail("10.0.0.1"), 800, "forgotten before ten quiet minutes");
  for (let i = 0; i < 10_000; i++) delay.fail(`10.1.${i >> 8}.${i & 255}`);
  assertEquals(delay.fail("10.0.0.1"), 200, "the oldest host stayed past the bound");
  assertEquals(delay.fail("10.1.39.15"), 400, "a recent host was forgotten");
});

/** What a raw session that sends `bytes` at once hears after the greeting, and how long it took. */
async function answerTo(port: number, bytes: Uint8Array) {
  using socket = await rawConnect(port);
  const started = performance.now();
  await socket.write(bytes);
  assertEquals(await socket.readExactly(GREETING.length), GREETING);
  const rest = await socket.readToEnd();
  return { rest, ms: performance.now() - started };
}

/** QUIT: without it, a server that answered the request would wait for the next one. */
const QUIT = encodeFrame(Frame.Quit);

/** SETUP offering XXH3-128 and SHA-256, with `token`. */
function setup(token: string): Uint8Array {
  return encodeSetup({ digests: [2, 1], token: encoder.encode(token) });
}

Deno.test("with tokens, nothing is answered before a valid one", async (t) => {
  await using data = await tempFolder({ "a.txt": "aaa", "tokens.txt": TOKEN_FILE });
  const tokens = await Tokens.load(`${data.path}/tokens.txt`);
  await using server = await startServer(data.path, { tokens });
  const port = server.addr.port;
  const unauthorized = (message: string) => encodeError(ErrorCode.Unauthorized, message);

  await t.step("the startup line counts the tokens and names the one dialect open", () => {
    const listening = server.log.lines.find((line) => / listening /.test(line))!;
    assert(/ tls=false tokens=2 dialects=framed$/.test(listening), listening);
  });

  await t.step("a valid token is served", async () => {
    const client = await FileClient.connect("127.0.0.1", port, { token: encoder.encode(BACKUP) });
    assertEquals(text((await fetchFile(client, "a.txt")).bytes), "aaa");
    client.close();
  });

  await t.step(
    "a wrong token gets one error after a delay that grows; a request sent with it, nothing",
    async () => {
      const wrong = concat([
        preamble(2),
        setup(`${ALICE}x`),
        codec(2).encodeGet({ name: "a.txt" }),
        QUIT,
      ]);
      const first = await answerTo(port, wrong);
      assertEquals(first.rest, unauthorized("the access token was not accepted"));
      const second = await answerTo(port, wrong);
      assertEquals(second.rest, first.rest);
      assert(first.ms >= 200 && second.ms >= 400, `${first.ms} then ${second.ms} ms`);
    },
  );

  await t.step("no token, or protocol version 1, which cannot carry one: one error", async () => {
    const none = await answerTo(
      port,
      concat([preamble(2), setup(""), codec(2).encodeGet({ name: "a.txt" }), QUIT]),
    );
    assertEquals(none.rest, unauthorized("this server needs an access token; none was given"));
    const v1 = await answerTo(
      port,
      concat([preamble(1), codec(1).encodeGet({ name: "a.txt" }), QUIT]),
    );
    assertEquals(
      v1.rest,
      unauthorized("this server needs an access token, which takes protocol version 2"),
    );
  });

  await t.step("the original dialect is refused with its own ERR@ text", async () => {
    const original = await answerTo(port, encoder.encode("file@a.txt"));
    assertEquals(
      text(original.rest),
      "ERR@This server needs an access token, which this client cannot send; use a current client.",
    );
  });

  await t.step("the library's client says the server refused access", async () => {
    await rejects(
      FileClient.connect("127.0.0.1", port, { token: encoder.encode("guess") }),
      new ConnectionError(
        `cannot connect to 127.0.0.1:${port}: the server refused access: ` +
          "the access token was not accepted",
      ),
    );
  });

  await t.step("failures are counted, and logged without the token", async () => {
    assertEquals((await server.stats()).authFailures, 6);
    assertEquals((await server.stats()).errors, 0);
    const why = () =>
      server.log.lines.flatMap((line) => / unauthorized /.test(line) ? [line] : [])
        .map((line) => /why=(.*)$/.exec(line)![1]);
    // Worker threads' lines reach the log a moment late, and in the order each worker sent them.
    await until(() => why().length >= 6, "six refusals logged");
    assertEquals(why().sort(), [
      '"no token"',
      '"protocol version 1 cannot carry a token"',
      '"the original dialect cannot carry a token"',
      '"wrong token"',
      '"wrong token"',
      '"wrong token"',
    ]);
    for (const token of [ALICE, BACKUP, "guess"]) {
      assert(!server.log.lines.some((line) => line.includes(token)), `${token} was logged`);
    }
  });
});

Deno.test("the original dialect with tokens, when the operator allows it", async () => {
  await using data = await tempFolder({ "a.txt": "aaa", "tokens.txt": TOKEN_FILE });
  const tokens = await Tokens.load(`${data.path}/tokens.txt`);
  await using server = await startServer(data.path, { tokens, originalWithoutToken: true });
  const listening = server.log.lines.find((line) => / listening /.test(line))!;
  assert(/ dialects=framed,original$/.test(listening), listening);
  using socket = await rawConnect(server.addr.port);
  await socket.write("file@a.txt");
  assertEquals(text(await socket.readToEnd()), `${text(GREETING)}OK@aaa`);
});

Deno.test("the real client presents a token from --token-file or FILESERVER_TOKEN", async (t) => {
  await using data = await tempFolder({
    "a.txt": "aaa",
    "tokens.txt": TOKEN_FILE,
    "alice.token": `${ALICE}\n`,
    "two.token": `${ALICE}\n${BACKUP}\n`,
  });
  const tokens = await Tokens.load(`${data.path}/tokens.txt`);
  await using server = await startServer(data.path, { tokens });
  const port = String(server.addr.port);
  const get = ["--port", port, "get", "a.txt", "-o", "-"];
  const refused = `client: cannot connect to 127.0.0.1:${port}: the server refused access: `;

  await t.step("from the environment, or from a file, which wins over it", async () => {
    const fromEnv = await runClient(get, { env: { FILESERVER_TOKEN: BACKUP } });
    assertEquals([fromEnv.code, fromEnv.stdout, fromEnv.stderr], [0, "aaa", ""]);
    const both = await runClient([...get, "--token-file", `${data.path}/alice.token`], {
      env: { FILESERVER_TOKEN: "wrong" },
    });
    assertEquals([both.code, both.stdout, both.stderr], [0, "aaa", ""]);
  });

  await t.step("none, or a wrong one: one line, exit 3", async () => {
    const none = await runClient(get, { env: { FILESERVER_TOKEN: undefined } });
    assertEquals(
      [none.code, none.stderr],
      [3, `${refused}this server needs an access token; none was given\n`],
    );
    const wrong = await runClient(get, { env: { FILESERVER_TOKEN: "guess" } });
    assertEquals([wrong.code, wrong.stderr], [3, `${refused}the access token was not accepted\n`]);
  });

  await t.step("a token file that cannot be used: one line, exit 2", async () => {
    const cases: [string, string][] = [
      [`${data.path}/missing.token`, "cannot read --token-file X: No such file or directory"],
      [`${data.path}/two.token`, "--token-file X holds more than one token"],
    ];
    for (const [file, message] of cases) {
      const result = await runClient([...get, "--token-file", file]);
      assertEquals([result.code, result.stderr], [2, `client: ${message.replace("X", file)}\n`]);
    }
  });

  await t.step("a token is never taken from the command line", async () => {
    const result = await runClient([...get, "--token", ALICE]);
    assertEquals(result.code, 2);
    assert(!result.stderr.includes(ALICE), result.stderr);
  });
});

Deno.test("the server's flags: --tokens FILE, and the original dialect only with it", () => {
  const options = parseServerArgs(["--tokens", "tokens.txt", "--allow-original-without-token"]);
  assert(options !== "help");
  assertEquals([options.tokenFile, options.originalWithoutToken], ["tokens.txt", true]);
  throws(() => parseServerArgs(["--allow-original-without-token"]), {
    name: "UsageError",
    message: "--allow-original-without-token goes with --tokens",
  });
});

Deno.test("a token removed from the file is refused after SIGHUP; connections carry on", async () => {
  await using data = await tempFolder({ "a.txt": "aaa", "tokens.txt": TOKEN_FILE });
  const file = `${data.path}/tokens.txt`;
  await using server = await spawnServer(["--data", data.path, "--tokens", file]);
  const connect = (token: string) =>
    FileClient.connect("127.0.0.1", server.port, { token: encoder.encode(token) });
  const open = await connect(ALICE);

  await Deno.writeTextFile(file, `${BACKUP}\n`);
  server.process.kill("SIGHUP");
  await server.waitFor(/ tokens-reloaded tokens=1$/);
  await rejects(connect(ALICE), { message: /the access token was not accepted$/ });
  assertEquals(text((await fetchFile(open, "a.txt")).bytes), "aaa", "the open connection");
  open.close();

  await Deno.writeTextFile(file, "# all revoked?\n");
  server.process.kill("SIGHUP");
  const kept = await server.waitFor(/ tokens-kept /);
  assert(kept.endsWith(` tokens=1 error="${file} holds no token"`), kept);
  const backup = await connect(BACKUP);
  assertEquals(text((await fetchFile(backup, "a.txt")).bytes), "aaa");
  backup.close();
});

Deno.test("a token file line that is not UTF-8 is refused, naming the line", async () => {
  await using folder = await tempFolder();
  const file = `${folder.path}/tokens.txt`;
  // "caf\xe9" in Latin-1: read as UTF-8 it would be "caf\ufffd", a token no one holds.
  const latin1 = concat([encoder.encode(`${ALICE}\n# the café\n`), new Uint8Array([0x63, 0xe9])]);
  await Deno.writeFile(file, latin1);
  await rejects(Tokens.load(file), {
    message: `${file} line 3: not UTF-8 text; a token file is UTF-8 text`,
  });
  await Deno.writeTextFile(file, `${ALICE}\n`);
  const tokens = await Tokens.load(file);
  await Deno.writeFile(file, concat([new Uint8Array([0xff, 0x0a]), encoder.encode(BACKUP)]));
  await rejects(tokens.reload(), {
    message: `${file} line 1: not UTF-8 text; a token file is UTF-8 text`,
  });
  assert(tokens.verify(encoder.encode(ALICE)), "a failed reload lost the tokens");
});

Deno.test("SIGHUP with a FIFO in place of the token file: refused at once, tokens kept", async () => {
  await using data = await tempFolder({ "a.txt": "aaa", "tokens.txt": TOKEN_FILE });
  const file = `${data.path}/tokens.txt`;
  await using server = await spawnServer(["--data", data.path, "--tokens", file]);
  await Deno.remove(file);
  const made = await new Deno.Command("mkfifo", { args: [file] }).output();
  assertEquals(made.code, 0, new TextDecoder().decode(made.stderr));
  server.process.kill("SIGHUP");
  const kept = await server.waitFor(/ tokens-kept /, 5_000);
  assert(
    kept.endsWith(` tokens=2 error="cannot read the token file ${file}: it is not a regular file"`),
    kept,
  );
  // Nothing is held up: a later reload of a good file takes.
  await Deno.remove(file);
  await Deno.writeTextFile(file, `${BACKUP}\n`);
  server.process.kill("SIGHUP");
  await server.waitFor(/ tokens-reloaded tokens=1$/, 5_000);
  const client = await FileClient.connect("127.0.0.1", server.port, {
    token: encoder.encode(BACKUP),
  });
  assertEquals(text((await fetchFile(client, "a.txt")).bytes), "aaa");
  client.close();
});
