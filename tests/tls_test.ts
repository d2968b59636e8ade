/**
 * TLS as a user meets it: a download over TLS arrives byte for byte and checked, trusting a
 * private authority given with --ca, a self-signed certificate, or the system's authorities; a
 * client and a server that disagree about TLS, and every certificate the client refuses, fail in
 * one line that names why, with exit code 3; a peer that never completes its handshake is closed
 * at the request timeout; and answers never wait for a delayed acknowledgement. The handle TLS
 * reads are stopped with, internal to Deno, is checked for at listen.
 */

import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { FileClient } from "../lib/client/client.ts";
import { listen } from "../lib/server/listen.ts";
import { checkReadControl, readControl } from "../lib/server/tls_reads.ts";
import { writeAll } from "../lib/shared/io.ts";
import {
  certificates,
  fetchFile,
  logged,
  rawConnect,
  runClient,
  startServer,
  tempFolder,
  text,
  until,
  xxh3,
} from "./harness.ts";
import { randomBytes, spawnServer } from "../testing/support.ts";
import { join } from "node:path";

const MiB = 1024 * 1024;

Deno.test("a download over TLS is byte-exact and checked", async (t) => {
  const files = {
    "small.txt": "hello over TLS\n",
    "cached.bin": randomBytes(3 * MiB + 7, 31),
    "streamed.bin": randomBytes(6 * MiB + 5, 32), // larger than the cache: from disk each time
  };
  await using data = await tempFolder(files);
  await using certs = await certificates();
  await using server = await startServer(data.path, {
    cacheBytes: 4 * MiB,
    tls: { cert: certs.cert, key: certs.key },
  });
  const port = String(server.addr.port);
  const names = Object.keys(files);

  await t.step("the startup line says TLS is on", () => {
    const listening = server.log.lines.find((line) => / listening /.test(line))!;
    assert(/ tls=true tokens=0 dialects=framed,original$/.test(listening), listening);
  });

  for (const host of ["127.0.0.1", "localhost"]) {
    await t.step(`the real client with --tls --ca, by ${host}, twice`, async () => {
      for (const round of [1, 2]) {
        await using out = await tempFolder();
        const args = ["--host", host, "--port", port, "--tls", "--ca", certs.ca, "get"];
        const result = await runClient([...args, ...names, "-o", out.path]);
        assertEquals([result.code, result.stderr], [0, ""], `round ${round}`);
        for (const [name, contents] of Object.entries(files)) {
          const expected = typeof contents === "string" ? contents : text(contents);
          assertEquals(text(await Deno.readFile(`${out.path}/${name}`)), expected, name);
        }
      }
    });
  }

  await t.step("the library: each digest is the file's", async () => {
    const caCerts = [await Deno.readTextFile(certs.ca)];
    const client = await FileClient.connect("127.0.0.1", server.addr.port, { tls: { caCerts } });
    for (const name of ["cached.bin", "streamed.bin"]) {
      const got = await fetchFile(client, name);
      assertEquals(got.digest, await xxh3(files[name as "cached.bin"]), name);
      assertEquals(got.bytes, files[name as "cached.bin"], name);
    }
    await client.quit();
  });

  await t.step("--tls alone trusts the system's authorities (SSL_CERT_FILE here)", async () => {
    const args = ["--port", port, "--tls", "get", "small.txt", "-o", "-"];
    const trusted = await runClient(args, { env: { SSL_CERT_FILE: certs.ca } });
    assertEquals([trusted.code, trusted.stdout, trusted.stderr], [0, files["small.txt"], ""]);
  });

  await t.step("the server counted no error of its own", async () => {
    assertEquals((await server.stats()).errors, 0);
  });
});

Deno.test("a self-signed certificate, trusted with --ca", async () => {
  await using data = await tempFolder({ "a.txt": "aaa" });
  await using certs = await certificates();
  await using server = await startServer(data.path, {
    tls: { cert: certs.selfSigned, key: certs.selfSignedKey },
  });
  const args = ["--port", String(server.addr.port), "--ca", certs.selfSigned, "get", "a.txt"];
  const result = await runClient([...args, "-o", "-"]);
  assertEquals([result.code, result.stdout, result.stderr], [0, "aaa", ""]);
});

Deno.test("TLS on one side only, or a certificate refused: one line, exit 3", async (t) => {
  await using data = await tempFolder({ "a.txt": "aaa" });
  await using certs = await certificates();
  await using plain = await startServer(data.path);
  /** What the real client says to a server with `cert` (and the key), run with `args`. */
  const said = async (cert: string | undefined, args: string[]) => {
    const tls = cert === undefined
      ? undefined
      : { cert, key: cert === certs.ca ? certs.caKey : certs.key };
    await using server = tls === undefined ? undefined : await startServer(data.path, { tls });
    const port = (server ?? plain).addr.port;
    const result = await runClient(["--port", String(port), ...args, "list"]);
    assertEquals(result.code, 3, result.stderr);
    assertEquals(result.stdout, "");
    if (server !== undefined) {
      // The peer's trouble, and logged as such: not an error of the server's.
      const failed = () => server.log.lines.some((line) => / tls-error /.test(line));
      await until(failed, "the failed handshake in the log");
      assertEquals((await server.stats()).errors, 0);
    }
    const prefix = `client: cannot connect to 127.0.0.1:${port}: `;
    assert(result.stderr.startsWith(prefix) && result.stderr.endsWith("\n"), result.stderr);
    assertEquals(result.stderr.split("\n").length, 2, result.stderr);
    return result.stderr.slice(prefix.length, -1);
  };
  const ca = ["--tls", "--ca", certs.ca];

  await t.step("a plain client at a TLS port", async () => {
    assertEquals(
      await said(certs.cert, []),
      "the server speaks TLS on this port (connect with --tls)",
    );
  });

  await t.step("a TLS client at a plain port", async () => {
    assertEquals(
      await said(undefined, ca),
      "the server does not speak TLS on this port (connect without --tls)",
    );
  });

  await t.step("an authority the client does not know", async () => {
    assertEquals(
      await said(certs.cert, ["--tls"]),
      "the server's certificate is not signed by an authority this client trusts " +
        "(for a private authority or a self-signed certificate, give it with --ca FILE)",
    );
  });

  await t.step("a certificate for another name", async () => {
    assertEquals(
      await said(certs.otherName, ca),
      "the server's certificate is not for this host name",
    );
  });

  await t.step("an expired certificate", async () => {
    assertEquals(await said(certs.expired, ca), "the server's certificate has expired");
  });

  await t.step("an authority's own certificate used as the server's", async () => {
    assertEquals(
      await said(certs.ca, ca),
      "the server's certificate is an authority's (CA:TRUE), which cannot be a server's; " +
        "see docs/SECURITY.md for how to make one",
    );
  });

  await t.step("a --ca file with no certificate in it is a usage error", async () => {
    const result = await runClient(["--port", String(plain.addr.port), "--ca", certs.key, "list"]);
    assertEquals(
      [result.code, result.stderr],
      [2, `client: --ca ${certs.key} holds no certificate in PEM form\n`],
    );
  });
});

Deno.test("a certificate marked as an authority's is warned of at start, with the fix", async () => {
  await using data = await tempFolder({ "a.txt": "aaa" });
  await using certs = await certificates();
  const warnings = async (cert: string, key: string) => {
    await using server = await startServer(data.path, { tls: { cert, key } });
    return server.log.lines.filter((line) => / warning /.test(line));
  };
  // What `openssl req -x509` makes unless told otherwise: the client refuses it (above).
  const [warning, ...more] = await warnings(certs.ca, certs.caKey);
  assertEquals(more, []);
  assert(
    warning.includes(`certificate ${certs.ca} is marked as an authority's (CA:TRUE)`),
    warning,
  );
  assert(warning.includes("-addext basicConstraints=critical,CA:FALSE"), warning);
  assertEquals(await warnings(certs.cert, certs.key), []);
});

Deno.test("a peer that never completes its TLS handshake is closed at the request timeout", async () => {
  await using data = await tempFolder({ "a.txt": "aaa" });
  await using certs = await certificates();
  await using server = await startServer(data.path, {
    tls: { cert: certs.cert, key: certs.key },
    maxConnectionsPerHost: 1,
    requestTimeoutMs: 200,
  });
  const caCerts = [await Deno.readTextFile(certs.ca)];
  const silent = await rawConnect(server.addr.port);
  await until(async () => (await server.stats()).connections === 1, "the silent peer's place");
  // Its place is the host's only one: held for good, the host could never be served again.
  await until(async () => (await server.stats()).connections === 0, "the silent peer to be closed");
  await logged(server, / close id=1 .*reason=request-timeout/);
  assertEquals(await silent.conn.read(new Uint8Array(1)), null, "its socket was left open");
  silent.conn.close();
  const client = await FileClient.connect("127.0.0.1", server.addr.port, { tls: { caCerts } });
  assertEquals(text((await fetchFile(client, "a.txt")).bytes), "aaa");
  client.close();
});

Deno.test("answers and new sessions over TLS do not wait for a delayed acknowledgement", async () => {
  // With Nagle's algorithm on the server's TLS sockets, an answer of more than one TLS record and
  // each new session waited some 40 ms for the client's delayed acknowledgement. Without it they
  // take a few milliseconds even on a loaded machine; the medians leave room for the load.
  const files = { "20k.bin": randomBytes(20_000, 41), "256k.bin": randomBytes(256 * 1024, 42) };
  await using data = await tempFolder(files);
  await using certs = await certificates();
  await using server = await startServer(data.path, { tls: { cert: certs.cert, key: certs.key } });
  const caCerts = [await Deno.readTextFile(certs.ca)];
  const connect = () => FileClient.connect("127.0.0.1", server.addr.port, { tls: { caCerts } });
  const median = (ms: number[]) => ms.sort((a, b) => a - b)[ms.length >> 1];
  const timed = async (work: () => Promise<void>) => {
    const ms: number[] = [];
    for (let i = 0; i < 9; i++) {
      const started = performance.now();
      await work();
      ms.push(performance.now() - started);
    }
    return ms;
  };

  const client = await connect();
  for (const name of Object.keys(files)) {
    await fetchFile(client, name); // now in the cache
    const ms = await timed(async () => void await fetchFile(client, name));
    assert(median(ms) < 25, `${name} on an open session: ${ms.map(Math.round)} ms`);
  }
  await client.quit();

  const ms = await timed(async () => {
    const fresh = await connect();
    await fetchFile(fresh, "20k.bin");
    await fresh.quit();
  });
  assert(median(ms) < 30, `a new session and one file: ${ms.map(Math.round)} ms`);
});

Deno.test("a TLS connection reads, writes and closes as a Deno.Conn does", async (t) => {
  await using certs = await certificates();
  const listener = await listen("127.0.0.1", 0, { cert: certs.cert, key: certs.key });
  const caCerts = [await Deno.readTextFile(certs.ca)];
  const dial = () =>
    Deno.connectTls({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port, caCerts });

  await t.step("bytes both ways, the peer's end as null, then a half-close", async () => {
    const [client, conn] = await Promise.all([dial(), listener.accept() as Promise<Deno.TlsConn>]);
    await conn.handshake();
    const sent = randomBytes(3 * MiB + 1, 43);
    const received = new Uint8Array(sent.length);
    const reading = (async () => {
      let at = 0;
      for (let n; at < received.length && (n = await conn.read(received.subarray(at))) !== null;) {
        at += n;
      }
      return at;
    })();
    // More than the server buffers: it stops reading until its reader takes the bytes.
    for (let at = 0; at < sent.length;) at += await client.write(sent.subarray(at));
    assertEquals(await reading, sent.length);
    assertEquals(received, sent);
    await client.closeWrite();
    assertEquals(await conn.read(new Uint8Array(16)), null);
    const answer = randomBytes(2 * MiB + 3, 44);
    const answered = (async () => {
      for (let at = 0; at < answer.length;) at += await conn.write(answer.subarray(at));
      await conn.closeWrite();
    })();
    const got = new Uint8Array(answer.length);
    let at = 0;
    for (let n; at < got.length && (n = await client.read(got.subarray(at))) !== null;) at += n;
    await answered;
    assertEquals([at, got], [answer.length, answer]);
    assertEquals(await client.read(new Uint8Array(16)), null); // after close_notify
    conn.close();
    client.close();
  });

  await t.step("a peer that sends while nothing reads is held back, not buffered", async () => {
    const [client, conn] = await Promise.all([dial(), listener.accept() as Promise<Deno.TlsConn>]);
    await conn.handshake();
    // Nothing reads `conn`: once the kernel's buffers are full, the client's writes must wait.
    // Were the server to go on reading into its own memory, all 64 MiB would go at once.
    const chunk = new Uint8Array(MiB);
    let sent = 0;
    for (; sent < 64 * MiB; sent += MiB) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = new Promise<"stalled">((resolve) =>
        timer = setTimeout(resolve, 500, "stalled")
      );
      const wrote = await Promise.race([writeAll(client, chunk).then(() => "wrote"), stalled]);
      clearTimeout(timer);
      if (wrote === "stalled") break;
    }
    assert(sent < 32 * MiB, `${sent / MiB} MiB went to a connection nothing reads`);
    conn.close();
    client.close();
  });

  await t.step("close() ends a read waiting for bytes, and later reads and writes", async () => {
    const [client, conn] = await Promise.all([dial(), listener.accept()]);
    const waiting = conn.read(new Uint8Array(16));
    conn.close();
    await rejects(waiting, Deno.errors.BadResource);
    await rejects(conn.write(new Uint8Array(1)), Deno.errors.BadResource);
    client.close();
  });

  await t.step(
    "a peer that speaks no TLS is told so in the clear, and fails the handshake",
    async () => {
      const raw = await rawConnect((listener.addr as Deno.NetAddr).port);
      const conn = (await listener.accept()) as Deno.TlsConn;
      await raw.write("LIST\n".repeat(100));
      const answer = await raw.readToEnd();
      // A TLS alert first (what the client reads as "the server speaks TLS"), then words.
      assertEquals([...answer.subarray(0, 2)], [0x15, 0x03]);
      assert(
        text(answer).endsWith("\nThis port speaks TLS only: connect with TLS (client --tls).\n"),
      );
      raw.conn.close();
      await rejects(conn.handshake(), { message: /the peer does not speak TLS/ });
      conn.close();
    },
  );

  await t.step("accept() rejects with BadResource once the listener is closed", async () => {
    const pending = listener.accept();
    listener.close();
    await rejects(pending, Deno.errors.BadResource);
    await rejects(listener.accept(), Deno.errors.BadResource);
  });
});

Deno.test("TLS reads stop through a handle internal to Deno, checked once at listen", async (t) => {
  await using certs = await certificates();
  const context = tls.createSecureContext({
    cert: await Deno.readTextFile(certs.cert),
    key: await Deno.readTextFile(certs.key),
  });

  await t.step("this Deno has it: the check passes, and a TLS port listens", async () => {
    await checkReadControl(context);
    using listener = await listen("127.0.0.1", 0, { cert: certs.cert, key: certs.key });
    assert((listener.addr as Deno.NetAddr).port > 0);
  });

  await t.step("without it, TLS is refused in one sentence that says why", () => {
    // A TLS socket over a socket that never connected has no TCP handle beneath it: what a
    // Deno that no longer keeps the handle would give every connection.
    const unconnected = new tls.TLSSocket(new net.Socket(), {
      isServer: true,
      secureContext: context,
    } as tls.TLSSocketOptions);
    try {
      throws(() => readControl(unconnected), (error: Error) => {
        assert(/gives no way to stop reading a TLS connection's socket/.test(error.message));
        assert(!/\.\s/.test(error.message) && !error.message.includes("\n"), error.message);
        return true;
      });
    } finally {
      unconnected.destroy();
    }
  });
});

Deno.test("SIGHUP reloads a renewed certificate; a pair that cannot be used keeps the old", async (t) => {
  await using data = await tempFolder({ "a.txt": "aaa" });
  await using certs = await certificates();
  await using live = await tempFolder();
  const [cert, key] = [join(live.path, "cert.pem"), join(live.path, "key.pem")];
  await Deno.copyFile(certs.selfSigned, cert);
  await Deno.copyFile(certs.selfSignedKey, key);
  await using server = await spawnServer([
    "--data",
    data.path,
    "--http-port",
    "0",
    "--tls-cert",
    cert,
    "--tls-key",
    key,
  ]);
  const caCert = await Deno.readTextFile(certs.ca);
  /** The file over HTTPS, trusting only the authority that signs the renewed certificate. */
  const fetchTrusting = async () => {
    using client = Deno.createHttpClient({ caCerts: [caCert] });
    const response = await fetch(`https://127.0.0.1:${server.httpPort}/a.txt`, { client });
    return await response.text();
  };
  const hangUp = async (event: RegExp) => {
    const seen = server.lines.length;
    server.process.kill("SIGHUP");
    await server.waitFor(event);
    return server.lines.slice(seen).find((line) => event.test(line))!;
  };

  await t.step("before: the self-signed certificate, which that client refuses", async () => {
    await rejects(fetchTrusting());
  });

  await t.step("renewed in place and SIGHUP: new connections get it", async () => {
    await Deno.copyFile(certs.cert, cert);
    await Deno.copyFile(certs.key, key);
    await hangUp(/certificate-reloaded/);
    assertEquals(await fetchTrusting(), "aaa");
  });

  await t.step("a key that does not belong: kept, and the log says why", async () => {
    await Deno.copyFile(certs.selfSignedKey, key);
    const line = await hangUp(/certificate-kept/);
    assert(line.includes("the key does not belong to the certificate"), line);
    assertEquals(await fetchTrusting(), "aaa");
  });
});
