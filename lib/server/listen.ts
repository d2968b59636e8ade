/**
 * Where a server listens: a plain TCP port, or one that speaks TLS from its first byte with a
 * certificate and key read from PEM files (Node's TLS as Deno provides it, see tls.ts); and
 * whether the address it listens on is open to other machines while nothing protects it.
 */

import { X509Certificate } from "node:crypto";
import { reasonOf } from "../shared/errors.ts";
import { listenNodeTls, NodeTlsListener } from "./tls.ts";

/** The PEM files a TLS port serves with: its certificate (chain) and the certificate's key. */
export interface TlsFiles {
  cert: string;
  key: string;
}

/**
 * Listens on `host`:`port` (0 for any free port): TLS when `tls` names a certificate and key, plain
 * TCP otherwise. A TLS connection's handshake runs by itself once the connection is accepted,
 * never in accept, so one slow peer cannot hold up the others; a peer that does not speak TLS is
 * sent `plain()` in the clear (see tls.ts). With `reusePort`, other listeners (the server's other
 * worker threads) may take the same port, and the kernel spreads connections between them
 * (SO_REUSEPORT). Throws an error in one sentence naming the file when the certificate or key
 * cannot be read or used.
 */
export async function listen(
  host: string,
  port: number,
  tls?: TlsFiles,
  { plain, reusePort = false }: { plain?: () => Uint8Array; reusePort?: boolean } = {},
): Promise<Deno.Listener> {
  if (tls === undefined) return Deno.listen({ hostname: host, port, transport: "tcp", reusePort });
  const pair = await readTlsPair(tls, host);
  return await listenNodeTls(host, port, { ...pair, plain, reusePort });
}

/**
 * Serves the TLS connections `listener` accepts from now on with the certificate and key in the
 * files `tls` names, read again (a certificate renewed in place): true when it is a TLS listener,
 * and so now serves them. Throws, with the old pair still in use, when they cannot be used.
 */
export async function reloadCertificate(listener: Deno.Listener, tls: TlsFiles): Promise<boolean> {
  if (!(listener instanceof NodeTlsListener)) return false;
  const { cert, key } = await readTlsPair(tls, (listener.addr as Deno.NetAddr).hostname);
  listener.useCertificate(cert, key);
  return true;
}

/**
 * The certificate and key in the files `tls` names, checked to work together by a listener on
 * any free port of `host`. Node's TLS takes any text and fails each handshake; Deno's checks the
 * pair when it listens, so this says at once whether they can be used, and why not.
 */
async function readTlsPair(tls: TlsFiles, host: string): Promise<{ cert: string; key: string }> {
  const [cert, key] = await Promise.all([pem(tls.cert, "certificate"), pem(tls.key, "key")]);
  try {
    Deno.listenTls({ hostname: host, port: 0, transport: "tcp", cert, key }).close();
  } catch (error) {
    const mismatch = /KeyMismatch/.test(reasonOf(error));
    if (!mismatch && !(error instanceof Deno.errors.InvalidData)) throw error;
    const why = mismatch ? "the key does not belong to the certificate" : reasonOf(error);
    throw new Error(`the TLS certificate ${tls.cert} and key ${tls.key} cannot be used: ${why}`);
  }
  return { cert, key };
}

/**
 * The warning to give when the certificate in the PEM file `cert` (the first of its chain) is an
 * authority's (CA:TRUE, what `openssl req -x509` makes unless told otherwise): clients that check
 * the chain, the server's own among them, refuse such a certificate as a server's. Undefined when
 * there is nothing to warn of.
 */
export async function certificateWarning(cert: string): Promise<string | undefined> {
  if (!new X509Certificate(await pem(cert, "certificate")).ca) return undefined;
  return `the TLS certificate ${cert} is marked as an authority's (CA:TRUE), which clients ` +
    "(client --tls among them) refuse as a server's: make one with -addext " +
    "basicConstraints=critical,CA:FALSE, as docs/SECURITY.md shows";
}

/** The text of a PEM file, read for `what` (named in the error when it cannot be read). */
async function pem(file: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    throw new Error(`cannot read the TLS ${what} ${file}: ${reasonOf(error)}`);
  }
}

/**
 * True when `address` (an IP address as listeners report it, or a host name) can be reached from
 * this machine only: 127.0.0.0/8, ::1 (also as ::ffff:127.x.x.x), or localhost.
 */
function isLoopback(address: string): boolean {
  return address === "localhost" || address === "::1" ||
    /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(address);
}

/**
 * The warning to give when a server listens where other machines can reach it (`address` is not
 * loopback) with neither TLS nor tokens: then anyone who reaches the port reads the shared folder,
 * and everyone on the way sees it. Undefined when there is nothing to warn of.
 * @example
 * ```ts
 * import { equal, ok } from "node:assert/strict";
 * import { exposureWarning } from "./listen.ts";
 * ok(exposureWarning("0.0.0.0", { tls: false, tokens: false })?.startsWith("listening on 0.0.0.0"));
 * equal(exposureWarning("0.0.0.0", { tls: true, tokens: false }), undefined);
 * equal(exposureWarning("127.0.0.1", { tls: false, tokens: false }), undefined);
 * ```
 */
export function exposureWarning(
  address: string,
  { tls, tokens }: { tls: boolean; tokens: boolean },
): string | undefined {
  if (tls || tokens || isLoopback(address)) return undefined;
  return `listening on ${address}, which other machines may reach, with neither TLS nor tokens: ` +
    "anyone who reaches the port can read every shared file, and anyone on the network path can " +
    "see them; see docs/SECURITY.md";
}
