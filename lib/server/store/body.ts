/**
 * What the store hands a dialect for one request: a file's metadata, its bytes, then its digest.
 */

import type { Source } from "../../shared/protocol.ts";
import type { WireError } from "../../shared/errors.ts";
import { quote } from "../../shared/names.ts";
import { asWireError } from "../errors.ts";
import { changed, type Stamp } from "./version.ts";

/**
 * A file ready to send: its metadata, its bytes in order, then its digest (by the algorithm the
 * body was opened with). Dispose of it once the answer is sent or abandoned, so the cache stops
 * counting the bytes it keeps alive.
 */
export interface FileBody extends Disposable {
  readonly name: string;
  readonly stamp: Stamp;
  /** "cache" when the bytes were already in memory, "disk" when this request read from disk. */
  readonly source: Source;
  /**
   * The bytes from `offset` up to `end` (exclusive), as views valid until the next step. The last
   * piece comes only once the file is confirmed unchanged; throws a WireError with code Changed if
   * it changed on disk while it was being read.
   */
  chunks(offset: number, end: number): AsyncGenerator<Uint8Array>;
  /**
   * The whole file's digest. Once {@link chunks} has finished it costs nothing; before, it reads
   * the file (or waits for its load) to work the digest out, so an answer that must name its
   * digest first (HTTP's headers) can.
   */
  digest(): Promise<Uint8Array>;
}

/**
 * Every byte of `body`, in one buffer, read as a request sends them: a file that changed meanwhile
 * fails, as its chunks do. For what needs a file whole (compressing it).
 */
export async function readWhole(body: FileBody): Promise<Uint8Array> {
  const bytes = new Uint8Array(body.stamp.size);
  let at = 0;
  for await (const chunk of body.chunks(0, body.stamp.size)) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}

/** A failure to read `name` as an answer for the peer: a file gone meanwhile has changed. */
export function readFailure(error: unknown, name: string): WireError {
  if (error instanceof Deno.errors.NotFound) return changed(name);
  return asWireError(error, `cannot read ${quote(name)}`);
}

/**
 * A body whose source is not known yet: a miss waiting for the answer of a cache in another
 * thread. It reads as the body it becomes, and is counted as read from disk (which it nearly
 * always is). Disposed before it is known, it disposes of that body as soon as it is.
 */
export class LaterBody implements FileBody {
  readonly name: string;
  readonly stamp: Stamp;
  readonly source: Source = "disk";
  readonly #body: Promise<FileBody>;

  constructor(name: string, stamp: Stamp, body: Promise<FileBody>) {
    this.name = name;
    this.stamp = stamp;
    this.#body = body;
  }

  [Symbol.dispose](): void {
    this.#body.then((body) => body[Symbol.dispose](), () => {}); // a failure is its readers' to see
  }

  async *chunks(offset: number, end: number): AsyncGenerator<Uint8Array> {
    yield* (await this.#body).chunks(offset, end);
  }

  async digest(): Promise<Uint8Array> {
    return await (await this.#body).digest();
  }
}
