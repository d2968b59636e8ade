/**
 * Where the server listens: the warning for an address other machines can reach with nothing
 * protecting it (decided as a unit: tests never listen beyond loopback), and the TLS files and
 * flags, each mistake told in one line; a port that cannot be had, named.
 */

import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import { exposureWarning, listen } from "../lib/server/listen.ts";
import { UsageError } from "../lib/shared/cli.ts";
import { parseServerArgs } from "../server.ts";
import { certificates, startServer, tempFolder } from "./harness.ts";
import { freePort, run, SERVER_COMMAND } from "../testing/support.ts";

Deno.test("the warning for an exposed address", async (t) => {
  const unprotected = (address: string) => exposureWarning(address, { tls: false, tokens: false });

  await t.step("none on loopback: 127.0.0.0/8, ::1 (also IPv4-mapped), localhost", () => {
    for (const address of ["127.0.0.1", "127.45.3.2", "::1", "::ffff:127.0.0.1", "localhost"]) {
      assertEquals(unprotected(address), undefined, address);
    }
    for (const address of ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "fe80::1", "128.0.0.1"]) {
      assert(unprotected(address) !== undefined, address);
    }
  });

  await t.step("given on any other address unless TLS or tokens protect it", () => {
    for (const address of ["0.0.0.0", "::", "192.168.1.20"]) {
      const warning = exposureWarning(address, { tls: false, tokens: false });
      assert(warning?.startsWith(`listening on ${address}, which other machines`), warning);
      assert(warning?.endsWith("; see docs/SECURITY.md"), warning);
      assertEquals(exposureWarning(address, { tls: true, tokens: false }), undefined);
      assertEquals(exposureWarning(address, { tls: false, tokens: true }), undefined);
    }
    for (const address of ["127.0.0.1", "::1", "localhost"]) {
      assertEquals(exposureWarning(address, { tls: false, tokens: false }), undefined, address);
    }
  });
});

Deno.test("the TLS files: both or neither, and a file that cannot be used is one line", async (t) => {
  await using certs = await certificates();
  await using notes = await tempFolder({ "notes.txt": "not a certificate\n" });

  await t.step("the flags", () => {
    const options = parseServerArgs(["--tls-cert", "c.pem", "--tls-key", "k.pem"]);
    assert(options !== "help");
    assertEquals(options.tls, { cert: "c.pem", key: "k.pem" });
    const mistakes: [string[], string][] = [
      [["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"],
      [["--tls-key", "k.pem"], "--tls-cert and --tls-key go together"],
      [
        ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--trust-proxy", "127.0.0.1"],
        "--trust-proxy cannot go with --tls-cert",
      ],
    ];
    for (const [args, message] of mistakes) {
      throws(() => parseServerArgs(args), (error) => {
        assert(error instanceof UsageError);
        assert(error.message.startsWith(message), error.message);
        return true;
      });
    }
  });

  await t.step("listen() names the file and what is wrong with it", async () => {
    const cases: [string, string, string][] = [
      [
        `${notes.path}/missing.pem`,
        certs.key,
        `cannot read the TLS certificate ${notes.path}/missing.pem: No such file or directory`,
      ],
      [
        certs.cert,
        certs.caKey,
        `the TLS certificate ${certs.cert} and key ${certs.caKey} cannot be used: ` +
        "the key does not belong to the certificate",
      ],
      [
        `${notes.path}/notes.txt`,
        certs.key,
        `the TLS certificate ${notes.path}/notes.txt and key ${certs.key} cannot be used: ` +
        "No certificates found in certificate data",
      ],
    ];
    for (const [cert, key, message] of cases) {
      await rejects(listen("127.0.0.1", 0, { cert, key }), { message });
    }
  });

  await t.step("the server says so in one line and exits 1", async () => {
    const args = ["--port", "0", "--tls-cert", certs.cert, "--tls-key", certs.caKey];
    const result = await run(Deno.execPath(), [...SERVER_COMMAND, ...args]);
    assertEquals([result.code, result.stdout], [1, ""]);
    assertEquals(
      result.stderr,
      `server: cannot start: the TLS certificate ${certs.cert} and key ${certs.caKey} ` +
        "cannot be used: the key does not belong to the certificate\n",
    );
  });
});

Deno.test("a port that cannot be had is named, with its address and which port it is", async (t) => {
  const serve = (...args: string[]) => run(Deno.execPath(), [...SERVER_COMMAND, ...args]);

  await t.step("the same port for both: the HTTP port is the one refused", async () => {
    const port = String(freePort());
    const result = await serve("--port", port, "--http-port", port);
    assertEquals([result.code, result.stdout], [1, ""]);
    assertEquals(
      result.stderr,
      `server: cannot start: cannot listen on 127.0.0.1:${port}, the HTTP port (--http-port): ` +
        "Address already in use\n",
    );
  });

  await t.step("a port another program holds", async () => {
    using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = other.addr.port;
    const native = await serve("--port", String(port));
    assertEquals(
      [native.code, native.stderr],
      [
        1,
        `server: cannot start: cannot listen on 127.0.0.1:${port}, the native port (--port): Address already in use\n`,
      ],
    );
    const http = await serve("--port", "0", "--http-port", String(port));
    assertEquals(
      [http.code, http.stderr],
      [
        1,
        `server: cannot start: cannot listen on 127.0.0.1:${port}, the HTTP port (--http-port): Address already in use\n`,
      ],
    );
  });

  await t.step("in process, the port listened on first is let go", async () => {
    await using data = await tempFolder();
    using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const native = freePort();
    await rejects(startServer(data.path, { port: native, httpPort: other.addr.port }), {
      message: `cannot listen on 127.0.0.1:${other.addr.port}, the HTTP port (--http-port): ` +
        "Address already in use",
    });
    Deno.listen({ hostname: "127.0.0.1", port: native }).close();
  });
});
