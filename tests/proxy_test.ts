/**
 * Behind a trusted proxy, a client is one host however its PROXY line spells its address: the
 * per-host cap and the log know it by one canonical spelling, and an ambiguous one is refused.
 * The line itself is read in process too: in any split, with what follows it put back.
 */

import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import { parseProxyLine, readProxyLine } from "../lib/server/proxy.ts";
import { logged, rawConnect, startServer, tempFolder, text, until } from "./harness.ts";

Deno.test("a client's address counts as one host however the PROXY line spells it", async (t) => {
  await using data = await tempFolder({ "a.txt": "a" });
  await using server = await startServer(data.path, {
    httpPort: 0,
    maxConnectionsPerHost: 1,
    trustProxies: ["127.0.0.1"],
    idleTimeoutMs: 2_000, // so that a connection served where it should be refused ends soon
  });
  const port = server.httpAddr!.port;
  /** A connection from the proxy carrying `client` of `family`, asking for a.txt, kept open. */
  const carry = async (family: 4 | 6, client: string) => {
    const socket = await rawConnect(port);
    await socket.write(
      `PROXY TCP${family} ${client} ${family === 4 ? "127.0.0.1" : "::1"} 40000 ${port}\r\n` +
        "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    return socket;
  };
  /** Holds one place as `first`, then expects `second` to be refused as the same host, `host`. */
  const sameHost = async (
    first: Parameters<typeof carry>,
    second: Parameters<typeof carry>,
    host: string,
  ) => {
    await until(
      async () => (await server.stats()).connections === 0,
      "the earlier connections to close",
    );
    using held = await carry(...first);
    assert(text(await held.readExactly(15)).startsWith("HTTP/1.1 200 OK"));
    using refused = await carry(...second);
    const answer = text(await refused.readToEnd());
    assert(answer.startsWith("HTTP/1.1 503 ") && answer.includes(`open from ${host}`), answer);
  };

  await t.step("IPv6 in capitals and with its zeros written out", async () => {
    await sameHost([6, "2001:db8::7"], [6, "2001:DB8:0:0:0:0:0:0007"], "2001:db8::7");
    await logged(server, /peer="2001:db8::7:40000 via/);
    assert(!server.log.lines.some((line) => /DB8|0007/.test(line)), "logged as the proxy spelt it");
  });

  await t.step("IPv4, and the same address mapped into IPv6", async () => {
    await sameHost([4, "192.0.2.7"], [6, "::ffff:192.0.2.7"], "192.0.2.7");
  });

  await t.step("IPv4 with leading zeros (octal to some readers) is refused", async () => {
    using socket = await carry(4, "010.000.000.001");
    assertEquals(text(await socket.readToEnd()), "");
    assert(!server.log.lines.some((line) => line.includes("010.000")), "served as a host");
  });
});

Deno.test("the PROXY line, read in process", async (t) => {
  /** Reads a PROXY line from `chunks` (as reads bring them): what it names, and what is put back. */
  const read = async (...chunks: string[]) => {
    const left = chunks.map((chunk) => new TextEncoder().encode(chunk));
    let unread = "";
    const source = {
      read: (buffer: Uint8Array) => {
        const next = left.shift();
        if (next === undefined) return Promise.resolve(null);
        buffer.set(next);
        return Promise.resolve(next.length);
      },
      unread: (bytes: Uint8Array) => unread = text(bytes),
    };
    return { client: await readProxyLine(source), unread };
  };

  await t.step("a line in any split; what follows it is put back for the dialect", async () => {
    const line = "PROXY TCP4 192.0.2.7 127.0.0.1 51234 8080\r\n";
    for (let cut = 1; cut < line.length; cut += 7) {
      assertEquals(await read(line.slice(0, cut), line.slice(cut) + "GET / HTTP/1.1\r\n"), {
        client: { host: "192.0.2.7", port: 51234 },
        unread: "GET / HTTP/1.1\r\n",
      });
    }
  });

  await t.step("UNKNOWN names no client", async () => {
    assertEquals(await read("PROXY UNKNOWN\r\nrest"), { client: undefined, unread: "rest" });
  });

  await t.step("no PROXY line at all: the proxy's host itself, every byte put back", async () => {
    assertEquals(await read("PRO", "GRESS"), { client: undefined, unread: "PROGRESS" });
  });

  await t.step("malformed or cut short: the peer's fault", async () => {
    for (
      const chunks of [["PROXY TCP4 1.2.3.4\r\n"], ["PROXY TCP4 192.0.2.7 127.0.0.1 1 2\n"], [
        "PROXY TCP4 192.0.2.7",
      ], ["PROXY " + "9".repeat(200)]]
    ) {
      await rejects(read(...chunks), { name: "ProtocolError" }, JSON.stringify(chunks));
    }
  });

  await t.step("IPv6 in its one spelling; ports within range", () => {
    assertEquals(parseProxyLine("PROXY TCP6 ::FFFF:c000:0207 ::1 1 2"), {
      host: "192.0.2.7",
      port: 1,
    });
    assertEquals(
      parseProxyLine("PROXY TCP6 2001:db8:0:0:1:0:0:1 ::1 1 2")?.host,
      "2001:db8::1:0:0:1",
    );
    throws(() => parseProxyLine("PROXY TCP4 192.0.2.7 127.0.0.1 65536 80"), /PROXY line/);
    throws(() => parseProxyLine("PROXY TCP6 192.0.2.7 ::1 1 2"), /PROXY line/);
  });
});
