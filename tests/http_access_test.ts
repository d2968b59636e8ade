/**
 * The HTTP port under the server's access rules: HTTPS with the server's certificate, and with
 * tokens, nothing but the health check answered before a valid one (`Authorization: Bearer`, or
 * Basic with the token as password); a wrong one is refused and the connection closed. Driven
 * with curl, as its users drive it.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { Tokens } from "../lib/server/tokens.ts";
import { randomBytes, run } from "../testing/support.ts";
import { certificates, startServer, tempFolder } from "./harness.ts";

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

  await t.step("without a token: 401 with both challenges; the health check answers", async () => {
    const before = server.stats().authFailures;
    for (const path of ["/big.bin", "/docs/", "/-/metrics"]) {
      const { status, text } = await curl(path);
      assertEquals(status, 401, `${path}: ${text}`);
      assert(/www-authenticate: Bearer realm="files", Basic/i.test(text), text);
      assert(!text.includes("alpha"), "a listing leaked");
    }
    assertEquals((await curl("/-/healthy")).status, 200);
    // A request without credentials is how a browser learns to ask for them: not a failure.
    assertEquals(server.stats().authFailures, before);
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
    const before = server.stats().authFailures;
    const { status, text } = await curl("/big.bin", ["-H", "Authorization: Bearer guess"]);
    assertEquals(status, 401);
    assert(/connection: close/i.test(text), text);
    assertEquals(server.stats().authFailures, before + 1);
    assert(!server.log.lines.some((line) => line.includes(TOKEN) || line.includes("guess")));
  });

  await t.step("plain HTTP to the HTTPS port gets nothing served", async () => {
    const plain = await run("curl", [
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      `http://127.0.0.1:${server.httpAddr!.port}/-/healthy`,
    ]);
    assert(plain.stdout === "000", `plain HTTP got ${plain.stdout}`);
  });
});
