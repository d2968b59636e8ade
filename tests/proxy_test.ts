/**
 * Behind a trusted proxy, a client is one host however its PROXY line spells its address: the
 * per-host cap and the log know it by one canonical spelling, and an ambiguous one is refused.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { rawConnect, startServer, tempFolder, text, until } from "./harness.ts";

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
    await until(() => server.stats().connections === 0, "the earlier connections to close");
    using held = await carry(...first);
    assert(text(await held.readExactly(15)).startsWith("HTTP/1.1 200 OK"));
    using refused = await carry(...second);
    const answer = text(await refused.readToEnd());
    assert(answer.startsWith("HTTP/1.1 503 ") && answer.includes(`open from ${host}`), answer);
  };

  await t.step("IPv6 in capitals and with its zeros written out", async () => {
    await sameHost([6, "2001:db8::7"], [6, "2001:DB8:0:0:0:0:0:0007"], "2001:db8::7");
    assert(server.log.lines.some((line) => line.includes('peer="2001:db8::7:40000 via')));
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
