/**
 * TLS connections with TCP_NODELAY: Node's TLS as Deno provides it (a `node:net` server with
 * `noDelay`, and a server-side `tls.TLSSocket` on each socket it accepts), seen by the rest of the
 * server as a Deno.Listener of Deno.TlsConn. Deno's own server-side TLS connection
 * (Deno.listenTls) has no setNoDelay, so each of its writes smaller than a segment waits for the
 * client's delayed acknowledgement (40 ms) while an earlier one is unacknowledged: a file answer
 * over one TLS record, and each new session, waited that long (docs/PERFORMANCE.md).
 *
 * Memory stays bounded as with a Deno.Conn: a socket stops reading once READ_BYTES are waiting for
 * the server to take them, a write hands Node at most WRITE_BYTES and resolves only once Node has
 * written them, and at most ACCEPT_QUEUE accepted sockets wait for accept().
 *
 * A connection starts TLS only once the peer's first byte shows it speaks TLS: a peer that sends
 * anything else (plain HTTP to an HTTPS port) is answered in the clear with what the port's owner
 * gives, rather than with a TLS alert that curl reads as an answer of HTTP/0.9.
 */

import net from "node:net";
import tls from "node:tls";
import { checkReadControl, type ReadControl, readControl } from "./tls_reads.ts";

/** Bytes received and not yet read above which a socket stops reading from the peer. */
const READ_BYTES = 64 * 1024;

/**
 * The most one write() hands to Node at once. Node's TLS as Deno provides it sends one large write
 * (a cached file, 32 MiB) slower than the same bytes in pieces, and the piece a peer has not yet
 * taken is what its connection holds, in plain text and encrypted: 500 readers taking 4 KiB every
 * half second grew the server by 201 MiB with pieces of 256 KiB, 56 MiB with pieces of this size,
 * and 21 MiB over plain TCP (docs/PERFORMANCE.md).
 */
const WRITE_BYTES = 64 * 1024;

/** The first byte of the record a TLS client's first message (its ClientHello) comes in. */
const HANDSHAKE_RECORD = 0x16;

/**
 * What a peer that does not speak TLS is sent unless the port has its own answer: a TLS alert
 * record (fatal, decode_error, as a TLS library answers; the client reads it as "the server
 * speaks TLS on this port"), then a line for a person trying the port by hand.
 */
const NOT_TLS = new Uint8Array([
  ...[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32],
  ...new TextEncoder().encode("\nThis port speaks TLS only: connect with TLS (client --tls).\n"),
]);

/**
 * Sockets accepted and not yet taken by accept() above which new ones are closed at once, as a
 * full listen backlog would refuse them: Node accepts whether or not anyone asks, and each socket
 * waiting holds a file descriptor that the connection limits (limits.ts) do not count.
 */
const ACCEPT_QUEUE = 128;

/**
 * Listens for TLS on `host`:`port` with `cert` and `key` (PEM, already checked to work together),
 * every connection with TCP_NODELAY. A connection's handshake runs on its own, never in accept.
 * A peer whose first byte cannot start a TLS handshake is sent `plain()` (by default a TLS alert
 * and a line of text), unencrypted, and its handshake fails once it leaves. Refuses, in one
 * sentence, on a Deno whose TLS reads cannot be stopped (tls_reads.ts).
 */
export async function listenNodeTls(
  host: string,
  port: number,
  { cert, key, plain = () => NOT_TLS, reusePort = false }: {
    cert: string;
    key: string;
    plain?: () => Uint8Array;
    reusePort?: boolean;
  },
): Promise<NodeTlsListener> {
  const context = tls.createSecureContext({ cert, key });
  await checkReadControl(context);
  return await new NodeTlsListener(context, plain).listen(host, port, reusePort);
}

/**
 * A TLS listener: a node:net server whose sockets become NodeTlsConns, taken one at a time with
 * accept(); its certificate can be replaced while it listens.
 */
export class NodeTlsListener implements Deno.TlsListener {
  readonly #server: net.Server;
  #context: tls.SecureContext;
  readonly #plain: () => Uint8Array;
  readonly #queue: NodeTlsConn[] = [];
  readonly #waiting: PromiseWithResolvers<Deno.TlsConn>[] = [];
  #addr: Deno.NetAddr | undefined;
  #closed = false;
  /** An accepting error no accept() has taken yet. */
  #error: Error | undefined;

  constructor(context: tls.SecureContext, plain: () => Uint8Array) {
    this.#context = context;
    this.#plain = plain;
    this.#server = net.createServer(
      { noDelay: true, allowHalfOpen: true },
      (socket) => this.#accepted(socket),
    );
  }

  /**
   * Serves connections accepted from now on with `cert` and `key` (PEM, already checked to work
   * together), as when a renewed certificate is reloaded; connections under way keep theirs.
   */
  useCertificate(cert: string, key: string): void {
    this.#context = tls.createSecureContext({ cert, key });
  }

  /** Starts listening; resolves with this listener, or rejects as Deno.listen would. */
  listen(host: string, port: number, reusePort: boolean): Promise<this> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", (error) => reject(denoError(error)));
      // reusePort is in Node's ListenOptions from Node 23; the types here are older.
      this.#server.listen({ host, port, reusePort } as net.ListenOptions, () => {
        const address = this.#server.address() as net.AddressInfo;
        this.#addr = { transport: "tcp", hostname: address.address, port: address.port };
        // An error in accepting (out of descriptors, say) goes to the next accept(), whose caller
        // logs it; Node goes on accepting.
        this.#server.on("error", (error) => this.#failed(denoError(error)));
        resolve(this);
      });
    });
  }

  get addr(): Deno.NetAddr {
    return this.#addr!;
  }

  #failed(error: Error): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter.reject(error);
    else this.#error = error;
  }

  #accepted(socket: net.Socket): void {
    if (this.#closed || this.#queue.length >= ACCEPT_QUEUE) {
      socket.destroy();
      return;
    }
    const conn = new NodeTlsConn(socket, this.#context, this.#addr!, this.#plain);
    const waiter = this.#waiting.shift();
    if (waiter) waiter.resolve(conn);
    else this.#queue.push(conn);
  }

  /** The next connection; rejects with Deno.errors.BadResource once the listener is closed. */
  accept(): Promise<Deno.TlsConn> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("the listener is closed"));
    const error = this.#error;
    this.#error = undefined;
    if (error) return Promise.reject(error);
    const next = this.#queue.shift();
    if (next) return Promise.resolve(next);
    const waiter = Promise.withResolvers<Deno.TlsConn>();
    this.#waiting.push(waiter);
    return waiter.promise;
  }

  /** Stops listening: pending accept() calls reject, and sockets not yet accepted are closed. */
  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("the listener is closed");
    this.#closed = true;
    this.#server.close();
    for (const conn of this.#queue.splice(0)) conn.close();
    for (const waiter of this.#waiting.splice(0)) {
      waiter.reject(new Deno.errors.BadResource("the listener is closed"));
    }
  }

  ref(): void {
    this.#server.ref();
  }

  unref(): void {
    this.#server.unref();
  }

  [Symbol.dispose](): void {
    if (!this.#closed) this.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterableIterator<Deno.TlsConn> {
    for (;;) {
      try {
        yield await this.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource) return;
        throw error;
      }
    }
  }
}

/**
 * One server-side TLS connection over a Node socket, with Deno.Conn's reads and writes: received
 * bytes wait in a short list of Node's chunks until read() copies them out.
 */
class NodeTlsConn implements Deno.TlsConn {
  /** The TCP socket until the peer's first byte shows it speaks TLS, then the TLS socket over it. */
  #socket: net.Socket;
  readonly localAddr: Deno.NetAddr;
  readonly remoteAddr: Deno.NetAddr;
  readonly #chunks: Uint8Array[] = [];
  /** Bytes in #chunks (the first from #offset on). */
  #buffered = 0;
  #offset = 0;
  #paused = false;
  /** How reads from the peer are stopped, once TLS has started. */
  #reads: ReadControl | undefined;
  #ended = false;
  #closed = false;
  #error: Error | undefined;
  /** Resolved when something a waiting read() may want happens (data, end, an error, close). */
  #wake = Promise.withResolvers<void>();
  /** The TLS socket, once started; rejected when it never will be (a plain peer, a close). */
  readonly #started = Promise.withResolvers<tls.TLSSocket>();
  readonly #secure = Promise.withResolvers<void>();
  /** Writes not yet confirmed, rejected if the socket closes first. */
  readonly #writes = new Set<(error: Error) => void>();

  constructor(
    socket: net.Socket,
    context: tls.SecureContext,
    localAddr: Deno.NetAddr,
    plain: () => Uint8Array,
  ) {
    this.localAddr = localAddr;
    this.remoteAddr = {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "",
      port: socket.remotePort ?? 0,
    };
    this.#socket = socket;
    // Also seen by reads and writes, if no one asks for them.
    this.#started.promise.catch(() => {});
    this.#secure.promise.catch(() => {});
    this.#watch(socket, true);
    socket.once("data", (chunk: Uint8Array) => {
      socket.pause();
      if (chunk[0] === HANDSHAKE_RECORD) {
        socket.unshift(chunk);
        this.#startTls(socket, context);
      } else {
        this.#answerPlain(socket, plain());
      }
    });
  }

  /** Starts TLS over `socket`, whose first bytes are back in it to be read again. */
  #startTls(socket: net.Socket, context: tls.SecureContext): void {
    this.#watch(socket, false);
    const tlsSocket = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: context,
      allowHalfOpen: true,
    } as tls.TLSSocketOptions);
    this.#socket = tlsSocket;
    this.#reads = readControl(tlsSocket);
    this.#watch(tlsSocket, true);
    tlsSocket.on("secure", () => this.#secure.resolve());
    tlsSocket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered >= READ_BYTES && !this.#paused) this.#reading(false);
      this.#wakeReaders();
    });
    this.#started.resolve(tlsSocket);
  }

  /**
   * Sends a peer that does not speak TLS `answer` in the clear, and no more. Whatever else it
   * sends is dropped (closing with its bytes unread could reset the connection before it reads
   * the answer); its handshake fails once it leaves, or when the server closes it meanwhile.
   */
  #answerPlain(socket: net.Socket, answer: Uint8Array): void {
    this.#error = new Deno.errors.InvalidData(
      "the peer does not speak TLS (its first byte cannot start a TLS handshake)",
    );
    this.#started.reject(this.#error);
    socket.on("data", () => {});
    socket.resume();
    socket.end(answer);
  }

  /** Listens to (`on`), or stops listening to, the events of `socket` every state cares about. */
  #watch(socket: net.Socket, on: boolean): void {
    for (const [event, listener] of this.#listeners) {
      if (on) socket.on(event, listener);
      else socket.off(event, listener);
    }
  }

  readonly #listeners: [string, (error: Error) => void][] = [
    ["end", () => {
      this.#secure.reject(
        this.#error ?? new Deno.errors.UnexpectedEof("the peer left during the TLS handshake"),
      );
      this.#ended = true;
      this.#wakeReaders();
    }],
    ["error", (error: Error) => {
      this.#error ??= denoError(error);
      this.#fail(this.#error);
    }],
    ["close", () => {
      this.#ended = true;
      this.#fail(this.#error ?? new Deno.errors.UnexpectedEof("the connection closed"));
    }],
  ];

  /** Fails what waits on the connection: its start, its handshake, its writes and reads. */
  #fail(error: Error): void {
    this.#started.reject(error);
    this.#secure.reject(error);
    for (const fail of [...this.#writes]) fail(error);
    this.#wakeReaders();
  }

  /**
   * Resolves once the TLS handshake is complete; rejects when it fails or the peer leaves first.
   * A peer that never completes it keeps it pending until close().
   */
  async handshake(): Promise<Deno.TlsHandshakeInfo> {
    await this.#secure.promise;
    return { alpnProtocol: null };
  }

  /**
   * Copies received bytes into `buffer`, waiting for some if none are here; null at the end of
   * the peer's stream. The socket reads from the peer again once its bytes are taken.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#closed) throw new Deno.errors.BadResource("the connection is closed");
      if (this.#buffered > 0) return this.#take(buffer);
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await this.#wake.promise;
    }
  }

  #take(buffer: Uint8Array): number {
    let n = 0;
    while (n < buffer.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const count = Math.min(buffer.length - n, chunk.length - this.#offset);
      buffer.set(chunk.subarray(this.#offset, this.#offset + count), n);
      n += count;
      this.#offset += count;
      if (this.#offset === chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    this.#buffered -= n;
    if (this.#paused && this.#buffered < READ_BYTES / 2) this.#reading(true);
    return n;
  }

  /**
   * Writes `bytes`, or its first WRITE_BYTES, and resolves with how many once Node has written
   * them (so the caller may reuse the buffer, and a peer that does not read holds up the writer
   * rather than the server's memory).
   */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#error && !this.#closed) return Promise.reject(this.#error);
    const piece = bytes.subarray(0, WRITE_BYTES);
    if (piece.length === 0 && !this.#closed) return Promise.resolve(0);
    return this.#handOver((socket, done) => socket.write(piece, done)).then(() => piece.length);
  }

  /** Says no more will be written (close_notify, then a TCP half-close); reads go on. */
  closeWrite(): Promise<void> {
    return this.#handOver((socket, done) => socket.end(() => done()));
  }

  /**
   * Hands Node something to write once TLS has started (`start` it on the TLS socket, with the
   * callback Node calls when done): resolves once Node is done, rejects with its error, or with
   * the socket's when it closes first.
   */
  #handOver(
    start: (socket: tls.TLSSocket, done: (error?: Error | null) => void) => void,
  ): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BadResource("the connection is closed"));
    }
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        this.#writes.delete(fail);
        reject(error);
      };
      this.#writes.add(fail);
      this.#started.promise.then((socket) => {
        if (!this.#writes.has(fail)) return; // closed meanwhile
        start(socket, (error) => {
          if (!this.#writes.delete(fail)) return;
          if (error) reject(this.#error ?? denoError(error));
          else resolve();
        });
      }, fail);
    });
  }

  /** Closes the socket at once (during a handshake too); pending reads and writes reject. */
  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("the connection is closed");
    this.#closed = true;
    this.#socket.destroy();
    this.#fail(new Deno.errors.BadResource("the connection is closed"));
  }

  /** TCP_NODELAY is always on; this is here for callers that set it. */
  setNoDelay(_noDelay = true): void {}

  ref(): void {
    this.#socket.ref();
  }

  unref(): void {
    this.#socket.unref();
  }

  [Symbol.dispose](): void {
    if (!this.#closed) this.close();
  }

  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    return new ReadableStream({
      type: "bytes",
      pull: async (controller) => {
        const buffer = new Uint8Array(16 * 1024);
        const n = await this.read(buffer);
        if (n === null) controller.close();
        else controller.enqueue(buffer.subarray(0, n));
      },
    });
  }

  get writable(): WritableStream<Uint8Array<ArrayBufferLike>> {
    return new WritableStream({
      write: async (bytes) => void await this.write(bytes),
      close: () => this.closeWrite(),
    });
  }

  /**
   * Stops or restarts reading from the peer: pause() alone stops only the 'data' events, so
   * reading stops at the TCP handle beneath the TLS wrap too (tls_reads.ts).
   */
  #reading(on: boolean): void {
    this.#paused = !on;
    if (on) {
      this.#reads?.start();
      this.#socket.resume();
    } else {
      this.#socket.pause();
      this.#reads?.stop();
    }
  }

  #wakeReaders(): void {
    this.#wake.resolve();
    this.#wake = Promise.withResolvers<void>();
  }
}

/**
 * Node's error codes as the Deno errors for the same failure (those of a peer going away are the
 * ones errors.ts isDisconnect knows), with the words Deno's own sockets would log.
 */
const DENO_ERRORS: Record<
  string,
  [new (message: string, options?: ErrorOptions) => Error, string?]
> = {
  ECONNRESET: [Deno.errors.ConnectionReset, "Connection reset by peer"],
  EPIPE: [Deno.errors.BrokenPipe, "Broken pipe"],
  ECONNABORTED: [Deno.errors.ConnectionAborted, "Software caused connection abort"],
  ENOTCONN: [Deno.errors.NotConnected, "Transport endpoint is not connected"],
  ERR_STREAM_DESTROYED: [Deno.errors.BadResource],
  ERR_SOCKET_CLOSED: [Deno.errors.BadResource],
  ERR_STREAM_WRITE_AFTER_END: [Deno.errors.BrokenPipe],
  EADDRINUSE: [Deno.errors.AddrInUse, "Address already in use"],
  EADDRNOTAVAIL: [Deno.errors.AddrNotAvailable, "Cannot assign requested address"],
  EACCES: [Deno.errors.PermissionDenied, "Permission denied"],
};

/** A Node error as the Deno error for the same failure, when there is one; else as it is. */
function denoError(error: Error): Error {
  const code = (error as { code?: string }).code;
  const mapped = code === undefined ? undefined : DENO_ERRORS[code];
  if (mapped) return new mapped[0](mapped[1] ?? error.message, { cause: error });
  if (/close_notify|unexpected eof/i.test(error.message)) {
    return new Deno.errors.UnexpectedEof(error.message, { cause: error });
  }
  return error;
}
