/**
 * What the in-process tests of the dialects run on: a socket that plays back what a peer sends and
 * keeps what the server writes, a real Connection over it, and a Service over a real FileStore (or
 * a store of the test's own), with the ledger and log a test inspects. No port is opened.
 */

import { Access } from "../lib/server/access.ts";
import { Connection } from "../lib/server/connection.ts";
import { type Ledger, newTally } from "../lib/server/exchange.ts";
import { Logger } from "../lib/server/log.ts";
import type { Protocol } from "../lib/server/metrics.ts";
import type { Service, Store } from "../lib/server/service.ts";
import { FileStore } from "../lib/server/store/store.ts";
import type { Tokens } from "../lib/server/tokens.ts";
import { NotFoundError } from "../lib/server/errors.ts";
import type { FileBody } from "../lib/server/store/store.ts";
import { errorCodeName, type WireError } from "../lib/shared/errors.ts";
import { type DecodedFrame, FrameDecoder } from "../lib/shared/frame_decoder.ts";
import type { ServerStats } from "../lib/shared/stats.ts";
import { MemoryLog } from "./harness.ts";
import { concat } from "../lib/shared/io.ts";

const encoder = new TextEncoder();

/**
 * A socket whose peer sends `input` (then, unless kept open, ends its side) and whose written bytes
 * are kept in {@link written}. More can be sent with {@link send}, and the end with {@link end}.
 */
export class FakeSocket {
  readonly remoteAddr: Deno.NetAddr = { transport: "tcp", hostname: "192.0.2.1", port: 40000 };
  readonly localAddr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 7000 };
  readonly #written: Uint8Array[] = [];
  readonly #input: Uint8Array[] = [];
  #ended = false;
  #closed = false;
  #arrived = Promise.withResolvers<void>();

  constructor(input: (string | Uint8Array)[] = [], { open = false } = {}) {
    for (const bytes of input) this.send(bytes);
    if (!open) this.end();
  }

  /** The peer sends `bytes`. */
  send(bytes: string | Uint8Array): void {
    this.#input.push(typeof bytes === "string" ? encoder.encode(bytes) : bytes.slice());
    this.#wake();
  }

  /** The peer ends its side. */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  /** Everything written so far. */
  get written(): Uint8Array {
    return concat(this.#written);
  }

  /** True once the server closed the socket. */
  get closed(): boolean {
    return this.#closed;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#closed) throw new Deno.errors.BadResource("the socket is closed");
      const next = this.#input[0];
      if (next) {
        const n = Math.min(buffer.length, next.length);
        buffer.set(next.subarray(0, n));
        if (n === next.length) this.#input.shift();
        else this.#input[0] = next.subarray(n);
        return n;
      }
      if (this.#ended) return null;
      await this.#arrived.promise;
    }
  }

  write(bytes: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("the socket is closed"));
    this.#written.push(bytes.slice());
    return Promise.resolve(bytes.length);
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    this.#arrived.resolve();
    this.#arrived = Promise.withResolvers<void>();
  }
}

/** A service over `store`, with the ledger its connections' exchanges count into and the log. */
export interface TestService {
  service: Service;
  ledger: Ledger;
  log: MemoryLog;
  /** A connection of `protocol` over `socket`, numbered 1, counting into the ledger. */
  connect(socket: FakeSocket, protocol: Protocol): Connection;
  /**
   * Serves `socket` with `dialect` on a connection of `protocol`, as the server's session would
   * (finishing the connection once the dialect returns), and waits for the log: what the server
   * wrote.
   */
  run(
    dialect: (connection: Connection, service: Service) => Promise<void>,
    socket: FakeSocket,
    protocol: Protocol,
  ): Promise<Uint8Array>;
  /** Resolves once every line logged so far is in the log. */
  logged(): Promise<void>;
}

/**
 * A service as the server builds one, over `store` (a real FileStore, or the test's own), with
 * `tokens` if given. Its stats are `stats`, its metrics page the text "metrics\n".
 */
export function testService(
  store: Store,
  { tokens, stats = {} as ServerStats }: { tokens?: Tokens; stats?: ServerStats } = {},
): TestService {
  const log = new MemoryLog();
  const logger = new Logger("text", log);
  const ledger = { tally: newTally(), logger };
  const service: Service = {
    store,
    closing: () => false,
    stats: () => Promise.resolve(stats),
    metrics: () => Promise.resolve("metrics\n"),
    violation: (connection, error) => {
      ledger.tally.peerErrors++;
      logger.event("protocol-error", { id: connection.id, code: errorCodeName(error.code) });
    },
    access: new Access(tokens, false, logger),
  };
  const connect = (socket: FakeSocket, protocol: Protocol) =>
    new Connection(1, socket as unknown as Deno.Conn, { protocol, ledger });
  return {
    service,
    ledger,
    log,
    connect,
    logged: () => logger.flush(),
    run: async (dialect, socket, protocol) => {
      const connection = connect(socket, protocol);
      await dialect(connection, service);
      await connection.finish("done");
      await logger.flush();
      return socket.written;
    },
  };
}

/**
 * A store of one file, `name`, whose read fails with `failure` after its first `sent` bytes (a file
 * that changed while it was sent, say), though its digest was known: what a dialect does with a
 * failure part-way.
 */
export function failingStore(
  name: string,
  bytes: Uint8Array,
  sent: number,
  failure: WireError,
): Store {
  const stamp = { size: bytes.length, mtimeMs: 0, ctimeMs: 0, ino: 1, dev: 1 };
  const body: FileBody = {
    name,
    stamp,
    source: "disk",
    async *chunks(offset: number) {
      yield bytes.subarray(offset, sent);
      throw failure;
    },
    digest: () => Promise.resolve(new Uint8Array(32)),
    [Symbol.dispose]() {},
  };
  const open = (asked: string) => {
    if (asked !== name) throw new NotFoundError(`no file "${asked}"`);
    return body;
  };
  return {
    open,
    list: async function* () {},
    folder: () => Promise.resolve(undefined),
  } as unknown as Store;
}

/** A FileStore over the folder `root`, as the server opens one. */
export async function storeOf(root: string): Promise<FileStore> {
  return new FileStore({ root: await Deno.realPath(root), cacheBytes: 1 << 20 });
}

/** Every frame in `bytes` (DATA frames whole), as the client's decoder reads them. */
export function framesOf(bytes: Uint8Array): DecodedFrame[] {
  const decoder = new FrameDecoder({ maxPayload: 1 << 24, bufferBytes: bytes.length + 16 });
  decoder.push(bytes);
  const frames: DecodedFrame[] = [];
  for (let frame; (frame = decoder.next());) {
    frames.push({ ...frame, payload: frame.payload.slice() });
  }
  return frames;
}
