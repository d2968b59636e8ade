/**
 * A TLS port under the attacks that cost nothing to make: one address opening silent connections
 * (no ClientHello ever) faster than the server gives up on them cannot lock other addresses out,
 * and readers that stall mid-file hold little of the server's memory each, as over plain TCP.
 * The attackers are small Python programs: Deno can neither choose a socket's source address nor
 * shrink its receive buffer. Skipped, saying so, where python3 is not installed.
 */

import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { FileClient } from "../lib/client/client.ts";
import { has, randomBytes, run, spawnServer } from "../testing/support.ts";
import { certificates, fetchFile, startServer, tempFolder, text } from "./harness.ts";

const installed = await has("python3");
const MiB = 1024 * 1024;

/** Opens COUNT connections to 127.0.0.1:PORT from 127.0.0.2 that never send a byte. */
const SILENT_FLOOD = `
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(count):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    held.append(s)
print("ready", flush=True)
sys.stdin.read()
`;

/**
 * Opens COUNT HTTPS connections to 127.0.0.1:PORT, each with a receive buffer of 4 KiB, asks each
 * for PATH, and never reads the answers.
 */
const STALLED_READERS = `
import socket, ssl, sys
port, count, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
held = []
for _ in range(count):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s = context.wrap_socket(s)
    s.sendall(f"GET {path} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode())
    held.append(s)
print("ready", flush=True)
sys.stdin.read()
`;

/**
 * Runs a Python `program` with `args` until it prints "ready"; it holds its connections until
 * disposed (its standard input closes, then it is stopped).
 */
async function python(program: string, args: (string | number)[]): Promise<AsyncDisposable> {
  const child = new Deno.Command("python3", {
    args: ["-c", program, ...args.map(String)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stop = async () => {
    await child.stdin.close().catch(() => {});
    child.kill("SIGKILL");
    await child.status;
  };
  const said = text((await child.stdout.getReader().read()).value ?? new Uint8Array());
  if (said.trim() !== "ready") {
    const error = text((await child.stderr.getReader().read()).value ?? new Uint8Array());
    await stop();
    throw new Error(`python3 did not start its connections: ${error}`);
  }
  child.stderr.cancel();
  return { [Symbol.asyncDispose]: stop };
}

Deno.test({
  name: "silent connections from one address cannot lock another out of a TLS port",
  ignore: !installed,
  async fn(t) {
    await using data = await tempFolder({ "a.txt": "aaa" });
    await using certs = await certificates();
    const caCerts = [await Deno.readTextFile(certs.ca)];
    const tls = { cert: certs.cert, key: certs.key };

    await t.step(
      "past its share, one address's connections are cut; others are served",
      async () => {
        await using server = await startServer(data.path, { tls, maxConnectionsPerHost: 4 });
        // Its four places, then far more than the server refuses at once (128, limits.ts), each
        // refusal waiting for a handshake that never comes.
        await using _flood = await python(SILENT_FLOOD, [server.addr.port, 4 + 300]);
        for (let i = 0; i < 10; i++) {
          const client = await FileClient.connect("127.0.0.1", server.addr.port, {
            tls: { caCerts },
          });
          assertEquals(text((await fetchFile(client, "a.txt")).bytes), "aaa");
          await client.quit();
        }
      },
    );

    await t.step("a full server still tells another address it is busy", async () => {
      await using server = await startServer(data.path, { tls, maxConnections: 1 });
      await using _flood = await python(SILENT_FLOOD, [server.addr.port, 1 + 160]);
      await rejects(
        FileClient.connect("127.0.0.1", server.addr.port, { tls: { caCerts }, timeoutMs: 8000 }),
        { message: /is busy: 1 connection is open; try again later\.$/ },
      );
    });
  },
});

/** The resident memory of process `pid`, in bytes. */
async function residentBytes(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) * 1024;
}

/**
 * The resident memory of process `pid` once it has settled: grown by less than 256 KiB in a
 * second (a process at rest still grows a few KiB a second), polled meanwhile.
 */
async function settledResidentBytes(pid: number): Promise<number> {
  const deadline = Date.now() + 20_000;
  const samples = [await residentBytes(pid)];
  while (samples.length < 11 || samples.at(-1)! - samples.at(-11)! >= 256 * 1024) {
    if (Date.now() > deadline) throw new Error("the server's memory never settled");
    await new Promise((resolve) => setTimeout(resolve, 100));
    samples.push(await residentBytes(pid));
  }
  return samples.at(-1)!;
}

Deno.test({
  name: "readers that stall over TLS hold little of the server's memory each",
  ignore: !installed,
  async fn() {
    // Here a stalled reader costs some 100 KiB over plain TCP (its connection, its request), 190
    // over TLS; with pieces of 256 KiB handed to TLS at once, it cost 490.
    const readers = 64;
    const perReader = 320 * 1024;
    await using data = await tempFolder({ "big.bin": randomBytes(8 * MiB, 9) });
    await using certs = await certificates();
    const tls = ["--tls-cert", certs.cert, "--tls-key", certs.key];
    await using server = await spawnServer(["--data", data.path, "--http-port", "0", ...tls]);
    const port = Number(/ http=[^ ]*:(\d+)/.exec(await server.waitFor(/listening/))![1]);
    const url = `https://127.0.0.1:${port}/big.bin`;
    const warm = await run("curl", ["-sf", "--cacert", certs.ca, "-o", "/dev/null", url]);
    assertEquals(warm.code, 0, warm.stderr); // now in the cache: no disk reads meanwhile
    const pid = server.process.pid;
    // A few readers stall first, so that what the first of them costs once (the code compiled
    // for their path, buffers made on first use) is not counted as each reader's.
    await using _first = await python(STALLED_READERS, [port, 8, "/big.bin"]);
    const before = await settledResidentBytes(pid);
    await using _readers = await python(STALLED_READERS, [port, readers, "/big.bin"]);
    // Each answer goes out until the sockets' buffers are full; then nothing more moves.
    const grown = await settledResidentBytes(pid) - before;
    assert(
      grown < readers * perReader,
      `the server grew by ${Math.round(grown / readers / 1024)} KiB for each stalled reader`,
    );
  },
});
