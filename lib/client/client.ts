/**
 * The client side of the framed protocol: connects (over plain TCP or TLS), sends the preamble
 * and SETUP (with the access token, if any) without waiting for the greeting, and reads answers in
 * order. Requests may be pipelined: send several, then read their answers one by one.
 */

import { type DigestAlgorithm, DIGESTS, SHA256 } from "../shared/digest.ts";
import { ErrorCode, ProtocolError } from "../shared/errors.ts";
import type { DecodedFrame } from "../shared/frame_decoder.ts";
import { FrameReader } from "../shared/frame_reader.ts";
import { encodeFrame, Frame, readText } from "../shared/frames.ts";
import { GREETING, readBusy } from "../shared/greeting.ts";
import { writeAll } from "../shared/io.ts";
import {
  type Codec,
  codec,
  encodeSetup,
  type FileHeader,
  type ListEntry,
  preamble,
  readEnd,
  readError,
  readHello,
  readListEnd,
  readListPart,
  VERSION,
} from "../shared/protocol.ts";
import { readStats, type ServerStats } from "../shared/stats.ts";
import { formatBytes } from "../shared/units.ts";
import { ConnectionError, ServerError, socketReason } from "./errors.ts";

/** Largest non-DATA frame the client accepts (list parts, stats, help, errors). */
const MAX_ANSWER_PAYLOAD = 16 * 1024 * 1024;
/** The most of a busy text the client reads: the server's is one short sentence. */
const MAX_BUSY_BYTES = 1024;
/** The most entries a list answer may hold; with the byte bound, what bounds its memory. */
const MAX_LIST_ENTRIES = 1_000_000;
/** The most bytes of entries (as sent) a list answer may hold. */
const MAX_LIST_BYTES = 64 * 1024 * 1024;
/** The client's read buffer: big reads are what make loopback fast. */
const READ_BUFFER_BYTES = 1024 * 1024;

/** How {@link FileClient.connect} connects. */
export interface ConnectOptions {
  /** Give up on a server that sends nothing for this long. */
  timeoutMs?: number;
  /** The digests to offer, best first (default: every one known, XXH3-128 first). */
  digests?: readonly DigestAlgorithm[];
  /**
   * Speak TLS, trusting the system's certificate authorities and those in `caCerts` (PEM), such
   * as a private authority's or a self-signed server certificate.
   */
  tls?: { caCerts?: string[] };
  /** The access token to present, for a server that takes requests only with one. */
  token?: Uint8Array;
}

/** What to do with the parts of a file answer as they arrive. */
export interface FileHandler {
  /** The file's metadata, before any byte. */
  header(header: FileHeader): Promise<void> | void;
  /** The next piece of the body; the view is only valid during the call. */
  data(chunk: Uint8Array): Promise<void> | void;
  /**
   * Where the client may read the next body bytes straight from the socket, sparing a copy; the
   * bytes that come are then handed to {@link data} as a view at the start of this room.
   */
  room?(): Promise<Uint8Array> | Uint8Array;
}

/** A connection to a file server speaking the framed protocol. */
export class FileClient {
  readonly host: string;
  readonly port: number;
  /** The server's name from its HELLO. */
  server = "";
  readonly #socket: Deno.Conn;
  readonly #reader: FrameReader;
  readonly #timeoutMs: number | undefined;

  /** The codec of the protocol version spoken, and the digest answers end with, as HELLO settled. */
  #codec: Codec = codec(1);
  digest: DigestAlgorithm = SHA256;

  /** The protocol version spoken. */
  get version(): number {
    return this.#codec.version;
  }

  private constructor(host: string, port: number, socket: Deno.Conn, timeoutMs?: number) {
    this.host = host;
    this.port = port;
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    this.#reader = new FrameReader(socket, {
      maxPayload: MAX_ANSWER_PAYLOAD,
      streamed: [Frame.Data],
      bufferBytes: READ_BUFFER_BYTES,
    });
  }

  /**
   * Connects, greets and checks the server's HELLO; throws ConnectionError with a clear line.
   * It speaks protocol version 2, offering `digests` (best first; by default every one known,
   * XXH3-128 first), and speaks version 1 instead to a server that knows no other (its digest is
   * SHA-256, so that takes SHA-256 among the digests offered). With `timeoutMs`, a server that
   * sends nothing for that long (one that hangs, or a service that is not a file server and waits
   * for its own kind of request) breaks the connection instead of leaving the client waiting.
   * With `tls`, the TLS handshake is part of connecting: a certificate refused, or a server that
   * does not speak TLS, is a ConnectionError saying which; so is a server that refuses the token.
   */
  static async connect(
    host: string,
    port: number,
    options: ConnectOptions = {},
  ): Promise<FileClient> {
    const digests = options.digests ?? DIGESTS;
    try {
      return await FileClient.#open(host, port, options, VERSION, digests);
    } catch (error) {
      if (!(error instanceof ServerError && error.code === ErrorCode.Unsupported)) throw error;
      if (!digests.includes(SHA256)) {
        throw new ConnectionError(
          `${host}:${port} speaks only protocol version 1, whose digest is sha256, not ` +
            digests.map((digest) => digest.name).join(" or "),
        );
      }
      return await FileClient.#open(host, port, options, 1, [SHA256]);
    }
  }

  static async #open(
    host: string,
    port: number,
    options: ConnectOptions,
    version: number,
    digests: readonly DigestAlgorithm[],
  ): Promise<FileClient> {
    const address = `${host}:${port}`;
    let socket: Deno.Conn;
    try {
      socket = await dial(host, port, options.tls);
    } catch (error) {
      throw unreachable(address, socketReason(error), error);
    }
    const client = new FileClient(host, port, socket, options.timeoutMs);
    try {
      if ("handshake" in socket) {
        const tls = socket as Deno.TlsConn;
        await client.#read(
          () => tls.handshake(),
          (reason, cause) => unreachable(address, reason, cause),
        );
      }
      const setup = encodeSetup({
        digests: digests.map((d) => d.id),
        token: options.token ?? new Uint8Array(0),
      });
      await client.send(...(version === 1 ? [preamble(1)] : [preamble(version), setup]));
      await client.#readGreeting();
      const hello = client.#decode(readHello, await client.#expect(Frame.Hello));
      if (!digests.includes(hello.digest)) {
        throw client.#violation(`it chose the digest ${hello.digest.name}, which was not offered`);
      }
      client.server = hello.server;
      client.#codec = codec(hello.version);
      client.digest = hello.digest;
      return client;
    } catch (error) {
      client.close();
      if (error instanceof ServerError && error.code === ErrorCode.Unauthorized) {
        throw unreachable(address, `the server refused access: ${error.message}`, error);
      }
      throw error;
    }
  }

  /** Sends requests without waiting; read each answer with the matching read method, in order. */
  async send(...frames: Uint8Array[]): Promise<void> {
    let length = 0;
    for (const frame of frames) length += frame.length;
    const all = new Uint8Array(length);
    let at = 0;
    for (const frame of frames) {
      all.set(frame, at);
      at += frame.length;
    }
    await this.#write(all);
  }

  /**
   * Asks for the list of files; with `sha256`, each file's SHA-256 too. Its entries come a frame's
   * worth at a time, as the server sends them, so a list of any length is read in bounded memory.
   * Its end is checked against the count the server gives; an ERROR (a list the server cut short)
   * is thrown as ServerError, after the entries before it.
   */
  async *entries(sha256 = false): AsyncGenerator<ListEntry[]> {
    if (sha256 && this.version < 2) {
      throw new ConnectionError(
        `${this.#address()} speaks protocol version 1, which has no digests in its lists`,
      );
    }
    await this.send(this.#codec.encodeList({ sha256 }));
    let received = 0;
    for (;;) {
      const frame = await this.#next();
      if (frame.type === Frame.ListPart) {
        const part = this.#decode(readListPart, frame.payload);
        received += part.length;
        yield part;
      } else if (frame.type === Frame.ListEnd) {
        const count = this.#decode(readListEnd, frame.payload);
        if (count !== received) {
          throw this.#violation(`its list's end counts ${count}, but the list held ${received}`);
        }
        return;
      } else this.#unexpected(frame.type, frame.payload);
    }
  }

  /**
   * The list of files whole (see {@link entries}), to merge with other servers' lists. One longer
   * than MAX_LIST_ENTRIES or MAX_LIST_BYTES breaks the connection: a server that sends entries
   * forever cannot make the client hold them all.
   */
  async list(sha256 = false): Promise<ListEntry[]> {
    const entries: ListEntry[] = [];
    let bytes = 0;
    for await (const part of this.entries(sha256)) {
      // About what the entries took on the wire: the fixed part and the name (and a digest).
      for (const entry of part) bytes += 19 + entry.name.length + (entry.sha256?.length ?? 0);
      if (bytes > MAX_LIST_BYTES) throw this.#tooLong(formatBytes(MAX_LIST_BYTES));
      if (entries.length + part.length > MAX_LIST_ENTRIES) {
        throw this.#tooLong(`${MAX_LIST_ENTRIES.toLocaleString("en-US")} entries`);
      }
      // One by one: spreading a frame's worth of entries as arguments overflows the stack.
      for (const entry of part) entries.push(entry);
    }
    return entries;
  }

  /** Asks for the server's counters. */
  async stats(): Promise<ServerStats> {
    await this.send(encodeFrame(Frame.Stats));
    return this.#decode(readStats, await this.#expect(Frame.StatsReply));
  }

  /** Asks for the server's help text. */
  async help(): Promise<string> {
    await this.send(encodeFrame(Frame.Help));
    return this.#decode(readText, await this.#expect(Frame.HelpReply));
  }

  /**
   * Encodes a GET request for bytes `offset` to `end` of `name` (`end` 0: to the end of the file)
   * in the form of the version spoken, for {@link send}. Ranges need protocol version 2.
   */
  encodeGet(name: string, offset = 0, end = 0): Uint8Array {
    return this.#codec.encodeGet({ name, offset, end });
  }

  /**
   * Reads one file answer to a GET from byte `offset`, handing its parts to `handler`; returns the
   * whole file's digest by the algorithm HELLO settled ({@link digest}, not always SHA-256).
   * Throws ServerError when the server refuses or aborts it (a partial body must then be
   * discarded), ConnectionError when the connection breaks or the answer breaks the protocol (the
   * wrong offset, more or fewer bytes than the size says).
   */
  async readFile(handler: FileHandler, offset = 0): Promise<Uint8Array> {
    const header = this.#decode(
      (payload: Uint8Array) => this.#codec.readFileHeader(payload),
      await this.#expect(Frame.File),
    );
    if (header.offset !== offset) {
      throw this.#violation(`it answered from byte ${header.offset}, not byte ${offset} as asked`);
    }
    await handler.header(header);
    let remaining = header.end - header.offset;
    const take = async (chunk: Uint8Array) => {
      if (chunk.length > remaining) {
        throw this.#violation(`it sent more bytes than the file's size (${header.size})`);
      }
      remaining -= chunk.length;
      await handler.data(chunk);
    };
    for (;;) {
      const frame = await this.#next();
      if (frame.type === Frame.Data) {
        await take(frame.payload);
        while (handler.room && this.#reader.unbuffered > 0) {
          const room = await handler.room();
          const n = await this.#read(() => this.#reader.readStreamed(room));
          if (n === null) throw this.#broken("the connection closed in the middle of a frame");
          await take(room.subarray(0, n));
        }
      } else if (frame.type === Frame.End) {
        if (remaining !== 0) {
          throw this.#violation(
            `it ended the file with ${remaining} of its ${header.size} bytes missing`,
          );
        }
        return this.#decode((payload: Uint8Array) => readEnd(payload, this.digest), frame.payload);
      } else this.#unexpected(frame.type, frame.payload);
    }
  }

  /** Ends the session politely (QUIT, then BYE) and closes. */
  async quit(): Promise<void> {
    try {
      await this.send(encodeFrame(Frame.Quit));
      await this.#expect(Frame.Bye);
    } finally {
      this.close();
    }
  }

  /** Closes the connection. */
  close(): void {
    try {
      this.#socket.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  async #write(bytes: Uint8Array): Promise<void> {
    try {
      await writeAll(this.#socket, bytes);
    } catch (error) {
      throw this.#broken(socketReason(error), error);
    }
  }

  /** Reads `input` with `read`; bytes that break the protocol's rules are the server's fault. */
  #decode<A, T>(read: (input: A) => T, input: A): T {
    try {
      return read(input);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      throw this.#violation(error.message, error);
    }
  }

  /**
   * Reads the greeting, or the busy notice a full server sends instead. A server that speaks TLS
   * answers a plain client's first bytes with a TLS alert: the client says so.
   */
  async #readGreeting(): Promise<void> {
    const reader = this.#reader;
    const waiting = () =>
      reader.buffered.length < GREETING.length && readBusy(reader.buffered) === undefined &&
      !isTlsRecord(reader.buffered);
    while (waiting() && await this.#fill());
    if (isTlsRecord(reader.buffered)) {
      throw unreachable(this.#address(), "the server speaks TLS on this port (connect with --tls)");
    }
    if (waiting()) throw this.#broken("the server closed the connection at once");
    if (readBusy(reader.buffered) !== undefined) {
      // The text runs to the close, but a server that never closes cannot make us hold it all.
      while (reader.buffered.length < MAX_BUSY_BYTES && await this.#fill());
      const why = readBusy(reader.buffered.subarray(0, MAX_BUSY_BYTES));
      throw new ConnectionError(`${this.#address()} is busy: ${why}`);
    }
    if (!GREETING.every((byte, i) => reader.buffered[i] === byte)) {
      throw this.#broken("this is not a file server (unexpected greeting)");
    }
    reader.skip(GREETING.length);
  }

  #fill(): Promise<boolean> {
    return this.#read(() => this.#reader.fill());
  }

  /**
   * The next frame, or piece of a DATA frame. The timeout is for each read, so a long answer that
   * keeps coming is never cut short.
   */
  async #next(): Promise<DecodedFrame> {
    for (;;) {
      const frame = this.#decode((reader) => reader.take(), this.#reader);
      if (frame) return frame;
      if (!await this.#fill()) {
        throw this.#broken(
          this.#reader.atBoundary
            ? "the server closed the connection"
            : "the connection closed in the middle of a frame",
        );
      }
    }
  }

  /**
   * Runs one read from the socket (or the TLS handshake), within the timeout if there is one; a
   * failure is put into words by `fail` (by default, the connection broke).
   */
  async #read<T>(
    read: () => Promise<T>,
    fail = (reason: string, cause?: unknown) => this.#broken(reason, cause),
  ): Promise<T> {
    let timedOut = false;
    const timer = this.#timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      this.close();
    }, this.#timeoutMs);
    try {
      const result = await read();
      if (!timedOut) return result;
    } catch (error) {
      if (!timedOut) throw fail(socketReason(error), error);
    } finally {
      clearTimeout(timer);
    }
    throw fail(`the server sent nothing for ${this.#timeoutMs! / 1000}s`);
  }

  /** The next frame, which must be of `type` (or an ERROR, thrown as ServerError). */
  async #expect(type: number): Promise<Uint8Array> {
    const frame = await this.#next();
    if (frame.type !== type) this.#unexpected(frame.type, frame.payload);
    return frame.payload;
  }

  #unexpected(type: number, payload: Uint8Array): never {
    if (type === Frame.Error) {
      const { code, message } = this.#decode(readError, payload);
      throw new ServerError(code, message);
    }
    throw this.#violation(`unexpected answer of type 0x${type.toString(16)}`);
  }

  #address(): string {
    return `${this.host}:${this.port}`;
  }

  #broken(message: string, cause?: unknown): ConnectionError {
    if (cause instanceof ConnectionError) return cause;
    return new ConnectionError(`connection to ${this.#address()} broke: ${message}`, { cause });
  }

  /** A list answer over one of the client's bounds, `bound`. */
  #tooLong(bound: string): ConnectionError {
    return this.#broken(`the server's list is over ${bound}, the most this client takes`);
  }

  /** The server broke the protocol's rules: its fault, and the session cannot go on. */
  #violation(message: string, cause?: unknown): ConnectionError {
    return this.#broken(`the server broke the protocol: ${message}`, cause);
  }
}

/**
 * Connects to `host`:`port` with small writes sent at once (TCP_NODELAY): over TLS when `tls` is
 * given, trusting the system's authorities and those in `tls.caCerts`. Deno.connectTls has no way
 * to set TCP_NODELAY, and without it a request written while the handshake's last bytes are
 * unacknowledged waits for the server's delayed acknowledgement (40 ms; docs/PERFORMANCE.md); so
 * TLS is started on a TCP connection that has it.
 */
export async function dial(
  host: string,
  port: number,
  tls?: { caCerts?: string[] },
): Promise<Deno.Conn> {
  const tcp = await Deno.connect({ hostname: host, port, transport: "tcp" });
  tcp.setNoDelay(true);
  if (tls === undefined) return tcp;
  return await Deno.startTls(tcp, { hostname: host, caCerts: tls.caCerts });
}

/** The client could not open a session with the server at `address`, for `reason`. */
function unreachable(address: string, reason: string, cause?: unknown): ConnectionError {
  return new ConnectionError(`cannot connect to ${address}: ${reason}`, { cause });
}

/**
 * True when `bytes` start like a TLS record (an alert or a handshake, TLS 1.0 to 1.3), as a TLS
 * server's answer to a client that spoke to it in the clear does. The greeting starts `OK`, the
 * busy text `DI`.
 */
function isTlsRecord(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && (bytes[0] === 0x15 || bytes[0] === 0x16) && bytes[1] === 0x03;
}
