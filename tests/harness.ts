/**
 * Shared test fixtures: temp data folders, real servers on ephemeral ports (in-process or as a
 * subprocess), the real client as a subprocess, and raw sockets for byte-level cases.
 */

import { dirname, join } from "node:path";
import { FileClient } from "../lib/client/client.ts";
import { Logger, type LogLevel, type LogSink } from "../lib/server/log.ts";
import { isDisconnect } from "../lib/server/errors.ts";
import { FileServer, type ServerOptions } from "../lib/server/server.ts";
import { PAGE_BYTES } from "../lib/server/store/threads/messages.ts";
import { ServerPool } from "../lib/server/workers/pool.ts";
import type { ServerStats } from "../lib/shared/stats.ts";
import { concat, writeAll, type Writer } from "../lib/shared/io.ts";
import { digestOf, SHA256, XXH3_128 } from "../lib/shared/digest.ts";
import { ErrorCode } from "../lib/shared/errors.ts";
import { type DecodedFrame, FrameDecoder } from "../lib/shared/frame_decoder.ts";
import { Frame, HEADER_BYTES, writeHeader } from "../lib/shared/frames.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import { codec, encodeError, MAGIC } from "../lib/shared/protocol.ts";
import {
  type Certificates,
  CHROMIUM_FLAGS,
  CLIENT_COMMAND,
  ended,
  makeCertificates,
  type Output,
  ROOT,
  run,
  TEST_WORKERS,
  type WatchedLines,
  watchLines,
} from "../testing/support.ts";

/**
 * A temp folder filled with `files` (name → contents), written a minute ago by their mtime; removed
 * by the returned dispose.
 */
export async function tempFolder(
  files: Record<string, string | Uint8Array> = {},
): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "fileserver-test-" });
  for (const [name, contents] of Object.entries(files)) {
    const full = join(path, name);
    await Deno.mkdir(dirname(full), { recursive: true });
    if (typeof contents === "string") await Deno.writeTextFile(full, contents);
    else await Deno.writeFile(full, contents);
    // Written a minute ago, as a shared file usually was: a file written this very moment is not
    // cached until its stamp can tell it from a rewrite (VersionFile.settled in version.ts).
    await Deno.utime(full, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  }
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** Certificates for a TLS server on 127.0.0.1 (see makeCertificates), removed by the dispose. */
export async function certificates(): Promise<Certificates & AsyncDisposable> {
  const folder = await tempFolder();
  return Object.assign(await makeCertificates(folder.path), {
    [Symbol.asyncDispose]: () => folder[Symbol.asyncDispose](),
  });
}

/** Log lines a test can inspect. */
export class MemoryLog implements LogSink {
  readonly lines: string[] = [];
  write(bytes: Uint8Array): Promise<number> {
    this.lines.push(...new TextDecoder().decode(bytes).split("\n").filter((l) => l));
    return Promise.resolve(bytes.length);
  }
}

/**
 * The bytes the cache counts for a file of `size` bytes: exactly its size in a server of one
 * thread; with worker threads, the whole pages of shared memory it takes (docs/CACHE.md).
 */
export function cachedBytes(size: number): number {
  return TEST_WORKERS === 1 ? size : Math.ceil(size / PAGE_BYTES) * PAGE_BYTES;
}

/** A server a test started, of one thread or several, as the test sees it. */
export interface TestServer extends AsyncDisposable {
  readonly addr: Deno.NetAddr;
  readonly httpAddr: Deno.NetAddr | undefined;
  /** The whole server's counters. */
  stats(): Promise<ServerStats>;
  close(): Promise<void>;
  /** Its log. */
  log: MemoryLog;
}

/**
 * Starts an in-process server on an ephemeral port, of `workers` threads (TEST_WORKERS unless
 * given), logging at `logLevel` (info by default) to its `log`; close it with `await using`.
 */
export async function startServer(
  folder: string,
  { logLevel, workers = TEST_WORKERS, ...options }:
    & Partial<ServerOptions>
    & { logLevel?: LogLevel; workers?: number } = {},
): Promise<TestServer> {
  const log = new MemoryLog();
  const settings: ServerOptions = {
    host: "127.0.0.1",
    port: 0,
    folder,
    cacheBytes: 64 * 1024 * 1024,
    maxConnections: 1024,
    idleTimeoutMs: 60_000,
    requestTimeoutMs: 10_000,
    shutdownTimeoutMs: 5_000,
    logger: new Logger("text", log, logLevel),
    ...options,
  };
  const server = workers === 1
    ? await FileServer.start(settings)
    : await ServerPool.start(settings, workers);
  return {
    addr: server.addr,
    httpAddr: server.httpAddr,
    stats: async () => await server.stats(),
    close: () => server.close(),
    log,
    [Symbol.asyncDispose]: () => server.close(),
  };
}

/**
 * The page at `url` as headless Chromium leaves it once loaded (its DOM, scripts run), in a fresh
 * profile; `flags` are added to CHROMIUM_FLAGS.
 */
export async function chromiumDom(url: string, flags: string[] = []): Promise<string> {
  await using profile = await tempFolder();
  const chromium = await run("chromium", [
    ...CHROMIUM_FLAGS,
    `--user-data-dir=${profile.path}`,
    ...flags,
    "--dump-dom",
    url,
  ]);
  if (chromium.code !== 0) throw new Error(`chromium failed on ${url}: ${chromium.stderr}`);
  return chromium.stdout;
}

/** `command` running with `args`, its output dropped; stopped (SIGTERM) and awaited on dispose. */
export function spawned(command: string, args: string[]): AsyncDisposable {
  const child = new Deno.Command(command, { args, stdout: "null", stderr: "null" }).spawn();
  return {
    [Symbol.asyncDispose]: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/**
 * `make cluster` as a user runs it (scripts/cluster.ts, in `cwd`) with `args`, on any free ports
 * (`--port 0 --http-port 0`, which `args` may override); what it prints is watched. Stopped with
 * Ctrl-C (SIGINT) and awaited on dispose.
 */
export function startCluster(args: string[], cwd = ROOT): WatchedLines & {
  process: Deno.ChildProcess;
} & AsyncDisposable {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}scripts/cluster.ts`, "--port", "0", "--http-port", "0", ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  return Object.assign(watchLines([process.stdout, process.stderr]), {
    process,
    [Symbol.asyncDispose]: () => ended(process, "SIGINT").then(() => {}),
  });
}

/** A fake server, listening. */
export interface FakeServer extends AsyncDisposable {
  port: number;
  /** Bytes written to clients so far, to tell how far a client let a server go. */
  readonly written: number;
}

/**
 * A fake server, for what a real one never does. On each connection it runs `greet` (by default,
 * it sends the greeting), answers the preamble with a HELLO, and hands each request frame to
 * `answer`; both write what they like and return false to hang up there and then.
 */
export function fakeServer(
  answer: (out: Writer, request: DecodedFrame) => Promise<boolean>,
  greet = async (out: Writer) => {
    await writeAll(out, GREETING);
    return true;
  },
): FakeServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sessions: Promise<void>[] = [];
  let written = 0;
  const serve = async (conn: Deno.Conn) => {
    const out: Writer = {
      async write(bytes) {
        const n = await conn.write(bytes);
        written += n;
        return n;
      },
    };
    if (!await greet(out)) return;
    const decoder = new FrameDecoder({ maxPayload: 4096 });
    const buffer = new Uint8Array(4096);
    let greeted = false;
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      decoder.push(buffer.subarray(0, n));
      if (!greeted && decoder.buffered.length >= MAGIC.length + 1) {
        // A server of protocol version 1, as the first ones were: newer clients fall back to it.
        if (decoder.buffered[MAGIC.length] !== 1) {
          await writeAll(out, encodeError(ErrorCode.Unsupported, "this server speaks version 1"));
          return;
        }
        decoder.skip(MAGIC.length + 1);
        await writeAll(out, codec(1).encodeHello({ server: "fake", digest: SHA256 }));
        greeted = true;
      }
      for (let frame = decoder.next(); greeted && frame; frame = decoder.next()) {
        if (!await answer(out, frame)) return;
      }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      sessions.push(
        serve(conn).catch((error) => {
          if (!isDisconnect(error)) throw error;
        }).finally(() => conn.close()),
      );
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get written() {
      return written;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      await Promise.all(sessions);
    },
  };
}

/**
 * The FILE frame that opens a fake server's answer of protocol version 1: the `size`-byte file from
 * `offset` to its end.
 */
export function fileHeader(size: number, offset = 0, mtimeMs = 0): Uint8Array {
  return codec(1).encodeFileHeader({ size, offset, end: size, mtimeMs, source: "disk" });
}

/**
 * A fake server that answers a GET of `source` (modified at `mtimeMs`) with the first half of its
 * bytes, then, once `stop` settles (at once without one), hangs up: a transfer that breaks, or
 * stalls, mid-file.
 */
export function halfServer(source: Uint8Array, mtimeMs: number, stop?: Promise<void>): FakeServer {
  const half = Math.floor(source.length / 2);
  return fakeServer(async (out, request) => {
    const { offset } = codec(1).readGet(request.payload);
    await writeAll(out, fileHeader(source.length, offset, mtimeMs));
    const frame = new Uint8Array(HEADER_BYTES + half);
    writeHeader(frame, 0, Frame.Data, source.length - offset);
    frame.set(source.subarray(0, half), HEADER_BYTES);
    await writeAll(out, frame);
    await stop;
    return false;
  });
}

/**
 * Writes `bytes` again and again, as a server that never stops talking, until the client hangs up
 * (the write then throws a disconnect, which {@link fakeServer} ignores) or `limit` bytes are out.
 */
export async function keepWriting(out: Writer, bytes: Uint8Array, limit: number): Promise<void> {
  for (let sent = 0; sent < limit; sent += bytes.length) await writeAll(out, bytes);
}

/**
 * Runs the real client (client.ts) as a subprocess with `args`, with the permissions it is built
 * with, in `cwd`; `env` is added to its environment (a key set to undefined is removed).
 */
export function runClient(
  args: string[],
  options: { cwd?: string; env?: Record<string, string | undefined> } = {},
): Promise<Output> {
  return run(Deno.execPath(), [...CLIENT_COMMAND, ...args], options);
}

/**
 * Runs the real client through `sh -c script`, where "$@" is the client's command line: for a
 * redirection or a change of user that runClient cannot make.
 */
export async function runClientIn(script: string, args: string[]): Promise<Output> {
  const output = await new Deno.Command("sh", {
    args: ["-c", script, "sh", Deno.execPath(), ...CLIENT_COMMAND, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    bytes: output.stdout,
  };
}

/** A raw TCP connection to `port` with helpers to read exact byte counts or until close. */
export async function rawConnect(port: number): Promise<RawSocket> {
  return new RawSocket(await Deno.connect({ hostname: "127.0.0.1", port }));
}

/** A socket for byte-level tests. */
export class RawSocket implements Disposable {
  readonly conn: Deno.TcpConn;
  /** Bytes read and not yet taken, in the pieces they came in (joined only when taken). */
  #pending: Uint8Array[] = [];
  #buffered = 0;

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /** Writes all of `bytes` (a string is sent as UTF-8). */
  async write(bytes: Uint8Array | string): Promise<void> {
    await writeAll(this.conn, typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
  }

  /** Reads exactly `count` bytes; throws if the connection closes first. */
  async readExactly(count: number): Promise<Uint8Array> {
    while (this.#buffered < count) {
      if (!await this.#fill()) throw new Error(`closed after ${this.#buffered} of ${count} bytes`);
    }
    const all = concat(this.#pending);
    this.#pending = [all.subarray(count)];
    this.#buffered -= count;
    return all.slice(0, count);
  }

  /** Reads until the server closes the connection. */
  async readToEnd(): Promise<Uint8Array> {
    while (await this.#fill());
    const out = concat(this.#pending);
    this.#pending = [];
    this.#buffered = 0;
    return out;
  }

  async #fill(): Promise<boolean> {
    const buffer = new Uint8Array(256 * 1024);
    let n: number | null;
    try {
      n = await this.conn.read(buffer);
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) return false;
      throw error;
    }
    if (n === null) return false;
    this.#pending.push(buffer.subarray(0, n));
    this.#buffered += n;
    return true;
  }

  [Symbol.dispose](): void {
    try {
      this.conn.close();
    } catch {
      // already closed by the test
    }
  }
}

/** `bytes` read as UTF-8 text. */
export function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** Resolves once `check` holds, polling state the test can see (no fixed sleeps). */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Resolves once `server` has logged a line that matches `pattern`: a worker thread's lines reach
 * the log a moment after it makes them.
 */
export async function logged(server: { log: MemoryLog }, pattern: RegExp): Promise<void> {
  await until(() => server.log.lines.some((line) => pattern.test(line)), `a line like ${pattern}`);
}

/** Downloads `name` (from byte `offset`) with the client library: its bytes, digest and source. */
export async function fetchFile(client: FileClient, name: string, offset = 0) {
  const parts: Uint8Array[] = [];
  let source = "";
  await client.send(client.encodeGet(name, offset));
  const digest = await client.readFile({
    header: (h) => void (source = h.source),
    data: (chunk) => void parts.push(chunk.slice()),
  }, offset);
  return { bytes: concat(parts), digest, source };
}

/** SHA-256 of `bytes`, as the server computes it (protocol version 1, and on request). */
export function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return digestOf(SHA256, bytes);
}

/** XXH3-128 of `bytes`, the digest a client and server of version 2 agree on by default. */
export function xxh3(bytes: Uint8Array): Promise<Uint8Array> {
  return digestOf(XXH3_128, bytes);
}
