/**
 * The HTTP port under the server's access rules: HTTPS with the server's certificate, and with
 * tokens, nothing but the health check answered before a valid one (`Authorization: Bearer`, or
 * Basic with the token as password); a wrong one is refused and the connection closed. Driven
 * with curl, as its users drive it.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { Tokens } from "../lib/server/tokens.ts";
import { has, randomBytes, run } from "../testing/support.ts";
import { certificates, chromiumDom, logged, startServer, tempFolder } from "./harness.ts";

const TOKEN = "reader-5e0c71b9d2a4f386";
/** A token beyond ASCII, sent in the header as its UTF-8 bytes. */
const ACCENTED = "lecteur-été-€-7d41aa30";
const MiB = 1024 * 1024;

Deno.test("HTTPS and tokens on the HTTP port, as curl meets them", async (t) => {
  const big = randomBytes(2 * MiB + 3, 7);
  await using data = await tempFolder({ "big.bin": big, "docs/a.txt": "alpha\n" });
  await using secrets = await tempFolder({ "tokens": `# readers\n${TOKEN}\n${ACCENTED}\n` });
  await using certs = await certificates();
  await using server = await startServer(data.path, {
    httpPort: 0,
    tls: { cert: certs.cert, key: certs.key },
    tokens: await Tokens.load(join(secrets.path, "tokens")),
  });
  const base = `https://127.0.0.1:${server.httpAddr!.port}`;
  /** curl's status, headers and body (to `out` when given). */
  const curl = async (path: string, args: string[] = [], out?: string) => {
    const output = await run("curl", [
      "-s",
      "--cacert",
      certs.cert,
      "-D",
      "-",
      ...(out ? ["-o", out] : []),
      ...args,
      `${base}${path}`,
    ]);
    assertEquals(output.code, 0, output.stderr);
    return { status: Number(output.stdout.split(" ")[1]), text: output.stdout };
  };

  await t.step("no token: 401, each challenge in a field; the health check answers", async () => {
    const before = (await server.stats()).authFailures;
    for (const path of ["/big.bin", "/docs/", "/-/metrics"]) {
      const { status, text } = await curl(path);
      assertEquals(status, 401, `${path}: ${text}`);
      // A browser acts on the first challenge of a field only, and prompts only for Basic.
      assertEquals(text.match(/^www-authenticate: .*$/gim), [
        'WWW-Authenticate: Basic realm="files", charset="UTF-8"',
        'WWW-Authenticate: Bearer realm="files"',
      ]);
      assert(!text.includes("alpha"), "a listing leaked");
    }
    assertEquals((await curl("/-/healthy")).status, 200);
    // A request without credentials is how a browser learns to ask for them: not a failure.
    assertEquals((await server.stats()).authFailures, before);
  });

  await t.step("a Bearer token or Basic credentials: byte-exact over HTTPS", async () => {
    const out = join(data.path, "..", `http-access-${server.httpAddr!.port}.bin`);
    try {
      const presented = [
        ["-H", `Authorization: Bearer ${TOKEN}`],
        ["-u", `me:${TOKEN}`],
        ["-H", `Authorization: Bearer ${ACCENTED}`],
        ["-u", `me:${ACCENTED}`],
      ];
      for (const credentials of presented) {
        await Deno.remove(out).catch(() => {});
        assertEquals((await curl("/big.bin", credentials, out)).status, 200);
        assertEquals(await Deno.readFile(out), big);
      }
      const metrics = await curl("/-/metrics", ["-H", `Authorization: Bearer ${TOKEN}`]);
      assert(/fileserver_requests_total\{protocol="http"\}/.test(metrics.text), metrics.text);
    } finally {
      await Deno.remove(out).catch(() => {});
    }
  });

  await t.step("a wrong token: 401, the connection closed, the failure counted", async () => {
    const before = (await server.stats()).authFailures;
    const { status, text } = await curl("/big.bin", ["-H", "Authorization: Bearer guess"]);
    assertEquals(status, 401);
    assert(/connection: close/i.test(text), text);
    assertEquals((await server.stats()).authFailures, before + 1);
    assert(!server.log.lines.some((line) => line.includes(TOKEN) || line.includes("guess")));
  });

  await t.step(
    "plain HTTP to the HTTPS port: a 400 that says to use https, nothing served",
    async () => {
      for (const path of ["/-/healthy", "/docs/a.txt"]) {
        const url = `http://127.0.0.1:${server.httpAddr!.port}${path}`;
        const plain = await run("curl", ["-s", "-i", "-H", `Authorization: Bearer ${TOKEN}`, url]);
        assertEquals(plain.code, 0, plain.stderr); // not "Received HTTP/0.9 when not allowed"
        assert(plain.stdout.startsWith("HTTP/1.1 400 Bad Request\r\n"), plain.stdout);
        assert(/\r\nDate: .* GMT\r\n/.test(plain.stdout), plain.stdout);
        assert(/\r\nConnection: close\r\n/.test(plain.stdout), plain.stdout);
        assert(
          plain.stdout.endsWith("\r\n\r\nThis port speaks HTTPS only: use an https:// address.\n"),
        );
      }
      const wget = await run("wget", [
        "-S",
        "-O",
        "-",
        `http://127.0.0.1:${server.httpAddr!.port}/`,
      ]);
      assert(/HTTP\/1\.1 400 Bad Request/.test(wget.stderr), wget.stderr);
      await logged(server, / tls-error .*does not speak TLS/);
    },
  );
});

Deno.test({
  name: "a browser given https://user:TOKEN@host/ is let in (its login prompt would work)",
  ignore: !await has("chromium"),
  async fn() {
    await using data = await tempFolder({ "docs/a.txt": "alpha\n" });
    await using secrets = await tempFolder({ "tokens": `${TOKEN}\n` });
    await using certs = await certificates();
    await using server = await startServer(data.path, {
      httpPort: 0,
      tls: { cert: certs.cert, key: certs.key },
      tokens: await Tokens.load(join(secrets.path, "tokens")),
    });
    // Credentials in the address are used only as a login prompt's would be: after a 401 whose
    // challenge the browser can answer. The certificate is a private authority's, which this
    // fresh profile does not know: that check is not the point here.
    const url = `https://reader:${TOKEN}@127.0.0.1:${server.httpAddr!.port}/docs/`;
    const page = await chromiumDom(url, ["--ignore-certificate-errors"]);
    assert(page.includes('<h1>Index of <a href="/">/</a><a href="/docs/">docs</a>/</h1>'), page);
    assert(page.includes('<a href="a.txt">a.txt</a>'), page);
    const statuses = server.log.lines.flatMap((line) => / status=(\d+)/.exec(line)?.[1] ?? []);
    assertEquals(statuses.slice(0, 2), ["401", "200"]);
  },
});
