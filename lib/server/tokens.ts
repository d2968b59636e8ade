/**
 * Access tokens: the list a server accepts, read from a file, and the check of a token a peer
 * presents. Only the SHA-256 digest of each token is kept, so no log line, error or heap dump of
 * the server holds a token; and a presented token is compared with every digest in constant time,
 * so how long a check takes says nothing about how close a guess came.
 */

import { isUtf8 } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { resolve } from "node:path";
import { reasonOf } from "../shared/errors.ts";
import { MAX_TOKEN_BYTES } from "../shared/protocol.ts";

const encoder = new TextEncoder();

/** SHA-256 of `bytes`. */
function digestOf(bytes: Uint8Array): Uint8Array {
  return createHash("sha256").update(bytes).digest();
}

/**
 * The digests of the tokens in the text of a token file, `file` (named in errors): one token a
 * line; blank lines, and lines whose first character other than a space is `#`, are skipped. A
 * token holds no spaces (so a comment written after one is not taken into it) and at most
 * MAX_TOKEN_BYTES bytes; a file with no token at all is refused too, since it would lock everyone
 * out. Errors name the line, never its text.
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { parseTokens } from "./tokens.ts";
 * equal(parseTokens("# the backup job\nb2c9f0e1\n\n  7d41aa30  \n", "tokens").length, 2);
 * throws(() => parseTokens("b2c9f0e1 # the backup job\n", "tokens"), {
 *   message: "tokens line 1: a token holds no spaces; put a comment on a line of its own, after #",
 * });
 * throws(() => parseTokens("# none yet\n", "tokens"), { message: "tokens holds no token" });
 * ```
 */
export function parseTokens(text: string, file: string): Uint8Array[] {
  const digests: Uint8Array[] = [];
  for (const [i, line] of text.split("\n").entries()) {
    const token = line.trim();
    if (token === "" || token.startsWith("#")) continue;
    if (/\s/.test(token)) {
      throw new Error(
        `${file} line ${
          i + 1
        }: a token holds no spaces; put a comment on a line of its own, after #`,
      );
    }
    const bytes = encoder.encode(token);
    if (bytes.length > MAX_TOKEN_BYTES) {
      throw new Error(`${file} line ${i + 1}: a token is at most ${MAX_TOKEN_BYTES} bytes`);
    }
    digests.push(digestOf(bytes));
  }
  if (digests.length === 0) throw new Error(`${file} holds no token`);
  return digests;
}

/** The tokens a server accepts, from a file it can read again (on SIGHUP) while it serves. */
export class Tokens {
  /** The token file, as an absolute path (the server opens nothing by a relative one). */
  readonly file: string;
  #digests: Uint8Array[];

  private constructor(file: string, digests: Uint8Array[]) {
    this.file = file;
    this.#digests = digests;
  }

  /** Reads the token file `file`; throws an error naming the file when it cannot be used. */
  static async load(file: string): Promise<Tokens> {
    const path = resolve(file);
    return new Tokens(path, await read(path));
  }

  /** How many tokens are accepted (for the startup line; the tokens themselves are never shown). */
  get count(): number {
    return this.#digests.length;
  }

  /**
   * True when `token` is one of the tokens. Its digest is compared with every digest held, each
   * comparison in constant time, so the time taken depends on neither the token nor which one
   * matched.
   */
  verify(token: Uint8Array): boolean {
    const digest = digestOf(token);
    let match = false;
    for (const known of this.#digests) match = timingSafeEqual(digest, known) || match;
    return match;
  }

  /**
   * Reads the file again and accepts its tokens from now on; returns how many. When the file
   * cannot be used, throws (naming the file and why) and keeps the tokens it had, so a mistake in
   * an edit locks no one out. Connections already admitted are not touched.
   */
  async reload(): Promise<number> {
    this.#digests = await read(this.file);
    return this.#digests.length;
  }
}

/** The digests of the tokens in `file`. */
async function read(file: string): Promise<Uint8Array[]> {
  let bytes;
  try {
    bytes = await readRegularFile(file);
  } catch (error) {
    throw new Error(`cannot read the token file ${file}: ${reasonOf(error)}`);
  }
  return parseTokens(utf8Text(bytes, file), file);
}

/**
 * The bytes of the regular file at `path`. It is opened without blocking, as the store opens
 * files (store/version.ts): a FIFO put in its place opens at once and is refused, where a plain
 * read would wait for a writer, and hold up every reload after it, without a word.
 */
async function readRegularFile(path: string): Promise<Uint8Array> {
  await using file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  if (!(await file.stat()).isFile()) throw new Error("it is not a regular file");
  return await file.readFile();
}

/**
 * The text of a token file, `file` (named in errors), from its `bytes`. Bytes that are not UTF-8
 * are refused, naming the first line that holds them, rather than read as U+FFFD: a token of the
 * file would otherwise not be the token anyone holds.
 */
function utf8Text(bytes: Uint8Array, file: string): string {
  if (isUtf8(bytes)) return new TextDecoder().decode(bytes);
  let start = 0;
  let line = 1;
  for (let end = bytes.indexOf(10); end !== -1 && isUtf8(bytes.subarray(start, end)); line++) {
    start = end + 1;
    end = bytes.indexOf(10, start);
  }
  throw new Error(`${file} line ${line}: not UTF-8 text; a token file is UTF-8 text`);
}
