/**
 * Where a server listens: a plain TCP port, or one that speaks TLS from its first byte with a
 * certificate and key read from PEM files (Deno's own TLS).
 */

import { reasonOf } from "../shared/errors.ts";

/** The PEM files a TLS port serves with: its certificate (chain) and the certificate's key. */
export interface TlsFiles {
  cert: string;
  key: string;
}

/**
 * Listens on `host`:`port` (0 for any free port): TLS when `tls` names a certificate and key, plain
 * TCP otherwise. A TLS connection's handshake happens on its first read or write, or when it is
 * asked for, never in accept, so one slow peer cannot hold up the others. Throws an error in one
 * sentence naming the file when the certificate or key cannot be read or used.
 */
export async function listen(host: string, port: number, tls?: TlsFiles): Promise<Deno.Listener> {
  if (tls === undefined) return Deno.listen({ hostname: host, port, transport: "tcp" });
  const [cert, key] = await Promise.all([pem(tls.cert, "certificate"), pem(tls.key, "key")]);
  try {
    return Deno.listenTls({ hostname: host, port, transport: "tcp", cert, key });
  } catch (error) {
    const mismatch = /KeyMismatch/.test(reasonOf(error));
    if (!mismatch && !(error instanceof Deno.errors.InvalidData)) throw error;
    const why = mismatch ? "the key does not belong to the certificate" : reasonOf(error);
    throw new Error(`the TLS certificate ${tls.cert} and key ${tls.key} cannot be used: ${why}`);
  }
}

/** The text of a PEM file, read for `what` (named in the error when it cannot be read). */
async function pem(file: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    throw new Error(`cannot read the TLS ${what} ${file}: ${reasonOf(error)}`);
  }
}
