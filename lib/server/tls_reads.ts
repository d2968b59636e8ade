/**
 * Stopping and restarting reads from a TLS peer, which is what bounds the memory of a connection
 * the server is not reading (tls.ts). A Node TLS socket's pause() stops only its 'data' events:
 * Deno's TLS wrap (Deno 2.9) goes on reading the TCP socket beneath into the stream's buffer,
 * without bound, even when the stream asks it to stop. So reads stop at that TCP handle, which
 * Deno keeps on an internal field (`_handle._nativeTcpHandle`) that any release may rename or take
 * away. Without it a peer that sends without end would make the server hold all it sends, so its
 * absence is never passed over: the TLS listener checks for it once at start and refuses to start
 * without it, and every connection takes it the same checked way.
 */

import net from "node:net";
import tls from "node:tls";

/** What is used of the TCP handle beneath Deno's TLS wrap. */
interface TcpHandle {
  readStart(): number;
  readStop(): number;
}

/** The reads of one TLS socket from its peer, stopped and restarted at the TCP handle beneath. */
export interface ReadControl {
  stop(): void;
  start(): void;
}

/** Why TLS cannot be served when the handle is not there. */
const MISSING = `this Deno (${Deno.version.deno}) gives no way to stop reading a TLS ` +
  "connection's socket (its TLS wrap has no _nativeTcpHandle with readStop and readStart), so " +
  "a client could make the server hold without bound what it sends: TLS is served only with a " +
  "Deno that has it, such as the one scripts/deno installs";

/** The TCP handle beneath `socket`'s TLS wrap, if it is there. */
function tcpHandleOf(socket: tls.TLSSocket): Partial<TcpHandle> | undefined {
  return (socket as unknown as { _handle?: { _nativeTcpHandle?: Partial<TcpHandle> } })._handle
    ?._nativeTcpHandle ?? undefined;
}

/**
 * The read control of `socket`, a TLS socket over a connected TCP socket; throws an error in one
 * sentence when this Deno has no handle to stop its reads with. Once the socket is closed, the
 * handle is gone, and there is nothing left to stop.
 */
export function readControl(socket: tls.TLSSocket): ReadControl {
  const handle = tcpHandleOf(socket);
  if (typeof handle?.readStop !== "function" || typeof handle.readStart !== "function") {
    throw new Error(MISSING);
  }
  return {
    stop: () => tcpHandleOf(socket)?.readStop?.(),
    start: () => tcpHandleOf(socket)?.readStart?.(),
  };
}

/**
 * Checks once, at start, that TLS connections' reads can be stopped: a TLS socket with `context`
 * over a connection made on loopback must have the handle. Throws readControl's error if not.
 */
export async function checkReadControl(context: tls.SecureContext): Promise<void> {
  const server = net.createServer();
  const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect({ host: "127.0.0.1", port });
  client.on("error", () => {}); // its end is destroyed below; nothing it says matters
  const socket = await accepted;
  const wrapped = new tls.TLSSocket(socket, {
    isServer: true,
    secureContext: context,
  } as tls.TLSSocketOptions);
  try {
    readControl(wrapped);
  } finally {
    wrapped.destroy();
    socket.destroy();
    client.destroy();
    server.close();
  }
}
