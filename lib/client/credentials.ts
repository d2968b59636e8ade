/**
 * What the client presents beyond an address: TLS with the authorities it trusts, and the access
 * token, from a file or the environment, never from the command line (where `ps` shows it).
 */

import { UsageError } from "../shared/cli.ts";
import { reasonOf } from "../shared/errors.ts";
import { MAX_TOKEN_BYTES } from "../shared/protocol.ts";
import type { ConnectOptions } from "./client.ts";

/** The environment variable a token may come from. */
export const TOKEN_VARIABLE = "FILESERVER_TOKEN";

/**
 * What connecting takes beyond an address: TLS when `tls` is given, with the certificate authority
 * in its `ca` file trusted too, and the access token to present (from `tokenFile`, or else the
 * environment). Throws UsageError, naming the flag, for a file that cannot be used.
 */
export async function credentials(
  tls: { ca?: string } | undefined,
  tokenFile: string | undefined,
): Promise<Pick<ConnectOptions, "tls" | "token">> {
  let caCerts: string[] | undefined;
  const ca = tls?.ca;
  if (ca !== undefined) {
    const pem = await readFor("--ca", ca);
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
      throw new UsageError(`--ca ${ca} holds no certificate in PEM form`);
    }
    caCerts = [pem];
  }
  return { tls: tls && { caCerts }, token: await accessToken(tokenFile) };
}

/**
 * The access token in `file` (its one line), or else in FILESERVER_TOKEN: a file named on the
 * command line is the one meant. Undefined when there is none (an empty variable is none, and so
 * is one this process may not read: run without --allow-env, it has no token to give).
 */
async function accessToken(file: string | undefined): Promise<Uint8Array | undefined> {
  const source = file === undefined ? TOKEN_VARIABLE : `--token-file ${file}`;
  const text = file === undefined
    ? (mayRead(TOKEN_VARIABLE) && Deno.env.get(TOKEN_VARIABLE)?.trim()) || ""
    : (await readFor("--token-file", file)).trim();
  if (file !== undefined && text === "") throw new UsageError(`${source} is empty`);
  if (/\s/.test(text)) throw new UsageError(`${source} holds more than one token`);
  const token = new TextEncoder().encode(text);
  if (token.length > MAX_TOKEN_BYTES) {
    throw new UsageError(`${source} holds a token over ${MAX_TOKEN_BYTES} bytes`);
  }
  return token.length > 0 ? token : undefined;
}

/** True when this process may read the environment variable `name` without asking. */
function mayRead(name: string): boolean {
  return Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
}

/** The text of `file`, given with `flag`; throws UsageError when it cannot be read. */
async function readFor(flag: string, file: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    throw new UsageError(`cannot read ${flag} ${file}: ${reasonOf(error)}`);
  }
}
