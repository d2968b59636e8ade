/**
 * `fileserver_errors_total` (and `errors` in stats) counts each failure on the server's side once;
 * what a peer got wrong is counted apart, in `fileserver_peer_errors_total`.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { GREETING } from "../lib/shared/greeting.ts";
import { MAGIC } from "../lib/shared/protocol.ts";
import { rawConnect, startServer, tempFolder } from "./harness.ts";

/** The value of the metric `name` on the server's metrics page. */
async function metric(httpPort: number, name: string): Promise<number> {
  const page = await (await fetch(`http://127.0.0.1:${httpPort}/-/metrics`)).text();
  const value = new RegExp(`^${name} (\\d+)$`, "m").exec(page)?.[1];
  assert(value !== undefined, `no ${name} on the metrics page`);
  return Number(value);
}

Deno.test("a file changed during an original-dialect transfer is one error, logged once", async () => {
  await using data = await tempFolder();
  const path = join(data.path, "big.bin");
  // Far more than socket buffers hold, so the server is still reading when the file changes; sparse,
  // so it costs no disk.
  await Deno.writeFile(path, new Uint8Array());
  await Deno.truncate(path, 64 * 1024 * 1024);
  await using server = await startServer(data.path, { cacheBytes: 1024 * 1024, httpPort: 0 });
  using socket = await rawConnect(server.addr.port);
  await socket.readExactly(GREETING.length);
  await socket.write("file@big.bin");
  await socket.readExactly("OK@".length + 1);
  await Deno.utime(path, 1, 1); // a new version of the file, read to its end
  let received = 0;
  const buffer = new Uint8Array(1024 * 1024);
  for (let n; (n = await socket.conn.read(buffer)) !== null;) received += n;
  assert(received < 64 * 1024 * 1024 - 1, "the whole file went out though it changed");

  assertEquals((await server.stats()).errors, 1);
  assertEquals(await metric(server.httpAddr!.port, "fileserver_errors_total"), 1);
  await server.close();
  const failures = server.log.lines.filter((line) => / error=/.test(line));
  assertEquals(failures.length, 1, failures.join("\n"));
  assert(/ request .*op=original-file .*error=changed/.test(failures[0]), failures[0]);
});

Deno.test("a peer's fault is counted apart from the server's errors", async (t) => {
  await using data = await tempFolder({ "a.txt": "a" });
  await using server = await startServer(data.path, { httpPort: 0, trustProxies: ["127.0.0.1"] });
  const counts = async () => ({
    errors: await metric(server.httpAddr!.port, "fileserver_errors_total"),
    peer: await metric(server.httpAddr!.port, "fileserver_peer_errors_total"),
  });

  await t.step("a malformed PROXY line from the trusted proxy", async () => {
    using socket = await rawConnect(server.addr.port);
    await socket.write("PROXY TCP4 not-an-address 127.0.0.1 1234 80\r\n");
    assertEquals((await socket.readToEnd()).length, 0);
    assertEquals((await server.stats()).errors, 0, "counted as the server's error");
    assertEquals(await counts(), { errors: 0, peer: 1 });
  });

  await t.step("an original-dialect request that is none of list, help or file@", async () => {
    using socket = await rawConnect(server.addr.port);
    await socket.write("PROXY UNKNOWN\r\nfetch@a.txt\n");
    assert(new TextDecoder().decode(await socket.readToEnd()).includes("ERR@Unknown request"));
    assertEquals(await counts(), { errors: 0, peer: 2 });
  });

  await t.step("framed bytes against the rules", async () => {
    using socket = await rawConnect(server.addr.port);
    await socket.write(new Uint8Array([...MAGIC, 0])); // there is no protocol version 0
    await socket.readToEnd();
    assertEquals(await counts(), { errors: 0, peer: 3 });
  });

  await server.close();
  const logged = server.log.lines.filter((line) => / protocol-error /.test(line));
  assertEquals(logged.length, 3, server.log.lines.join("\n"));
  assert(
    !server.log.lines.some((line) => / connection-error /.test(line)),
    "counted as the server's",
  );
});
