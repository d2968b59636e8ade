/**
 * A large file fetched in pieces over several connections at once: each piece a ranged answer
 * written at its offset into the file's temporary file, what is written kept in its record, and
 * the whole file verified in order as the pieces arrive (pieces.ts).
 */

import { type DigestAlgorithm, sameDigest } from "../shared/digest.ts";
import { ErrorCode } from "../shared/errors.ts";
import type { FileHeader } from "../shared/protocol.ts";
import type { FileClient, FileHandler } from "./client.ts";
import { ConnectionError, partlySaved, ServerError, writeFailure } from "./errors.ts";
import {
  OrderedDigest,
  PIECE_BYTES,
  type PieceRecord,
  recordPath,
  sameVersion,
  SavedRecord,
} from "./pieces.ts";
import {
  CHANGED_SINCE,
  checksumMismatch,
  type DownloadOptions,
  type DownloadResult,
  type FileJob,
} from "./plan.ts";
import { discard, type Spool } from "./spool.ts";

/**
 * Files at least this large are split into pieces when some connection would otherwise have
 * nothing to fetch. Below it, on loopback, a piece is fetched faster than the splitting pays back
 * (docs/PERFORMANCE.md).
 */
export const SPLIT_MIN_BYTES = 64 * 1024 * 1024;

/** Why a download in pieces failed, when the file changed between two of them. */
const CHANGED_DURING = "the file changed on the server during the download; " +
  "deleted the partial download, run again to start afresh";

/** One piece of a file: bytes `start` to `end` (exclusive; 0 is the end of the file). */
export interface Piece {
  split: Split;
  start: number;
  end: number;
}

/**
 * Starts `file` in pieces, the bytes `record` lacks: its temporary file and record on disk first
 * (so no piece is ever written where a rerun could not tell it from a plain partial file); then
 * the split and its pieces, in order, to fetch. On a local failure the file's outcome is settled
 * instead.
 */
export async function startSplit(
  file: FileJob,
  record: PieceRecord,
  algorithm: DigestAlgorithm,
  options: DownloadOptions,
): Promise<{ split: Split; pieces: Piece[] } | undefined> {
  try {
    (await file.open(0)).close();
    const saved = new SavedRecord(record, recordPath(file.part));
    await saved.flush();
    file.recorded = true;
    const digest = options.verify
      ? await OrderedDigest.create(algorithm, file.part, record.spans)
      : undefined;
    const split = new Split(file, saved, digest, options);
    const pieces: Piece[] = [];
    for (const [from, to] of record.missing()) {
      for (let start = from; start < to; start += PIECE_BYTES) {
        pieces.push({ split, start, end: Math.min(to, start + PIECE_BYTES) });
      }
    }
    // With every byte there already, an empty piece still brings the digest to check them with.
    if (pieces.length === 0) pieces.push({ split, start: record.size, end: 0 });
    split.expect(pieces.length);
    return { split, pieces };
  } catch (error) {
    file.settle({ ...file.result(), error: writeFailure(error, file.target) });
  }
}

/** A file coming in pieces: what is written, what is verified, and whether it failed. */
export class Split {
  readonly file: FileJob;
  readonly saved: SavedRecord;
  readonly #ordered: OrderedDigest | undefined;
  readonly #options: DownloadOptions;
  readonly #resumedFrom: number;
  /** The digest every piece's answer ends with. */
  #digest: Uint8Array | undefined;
  #received = 0;
  #left = 0;
  #writes: Promise<void>[] = [];
  /** Why it failed, and whether the partial download is kept for a rerun. */
  #failure: { error: string; keep: boolean } | undefined;

  constructor(
    file: FileJob,
    saved: SavedRecord,
    ordered: OrderedDigest | undefined,
    options: DownloadOptions,
  ) {
    this.file = file;
    this.saved = saved;
    this.#ordered = ordered;
    this.#options = options;
    this.#resumedFrom = saved.record.written;
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  get record(): PieceRecord {
    return this.saved.record;
  }

  /** `count` pieces are to come. */
  expect(count: number): void {
    this.#left = count;
  }

  /** Checks a piece's header against the version being fetched; false if the file changed. */
  matches(header: FileHeader): boolean {
    if (sameVersion(header, this.record)) return true;
    this.#changed();
    return false;
  }

  /** Checks a piece's digest against the others'. */
  checkDigest(digest: Uint8Array): void {
    this.#digest ??= digest;
    if (!sameDigest(this.#digest, digest)) this.#changed();
  }

  /** Bytes arrived (not yet written). */
  received(bytes: number): void {
    this.#received += bytes;
    this.#options.progress?.(this.file.name, this.#resumedFrom + this.#received, this.record.size);
  }

  /** `bytes` are written at `position`; resolves once they are hashed, in their turn. */
  wrote(position: number, bytes: Uint8Array): Promise<void> | undefined {
    this.saved.add(position, position + bytes.length);
    return this.#ordered?.offer(position, bytes);
  }

  /** The server refused a piece, or a write failed: the file fails. */
  fail(error: string, keep: boolean): void {
    this.#failure ??= { error, keep };
    this.#ordered?.abandon();
  }

  /** A piece passed over by the queue after the file failed. */
  skipped(): void {
    this.ended(Promise.resolve());
  }

  /** A piece's answer is read; `writes` settles once its bytes are written. */
  ended(writes: Promise<void>): void {
    this.#writes.push(writes);
    if (--this.#left === 0) this.file.settle(this.#finish());
  }

  /**
   * A connection broke: unless every piece is in (and so can be hashed to the end), whatever
   * waits for its turn to be hashed is let go, so that no connection waits for it.
   */
  abandon(): void {
    if (this.#left > 0) this.#ordered?.abandon();
  }

  /** After a broken connection: the record saved as it stands, for the rerun. */
  async keep(): Promise<void> {
    await Promise.all(this.#writes);
    if (!this.file.settled) await this.saved.flush();
  }

  #changed(): void {
    this.fail(this.#resumedFrom > 0 ? CHANGED_SINCE : CHANGED_DURING, false);
  }

  async #finish(): Promise<DownloadResult> {
    await Promise.all(this.#writes);
    const file = this.file;
    const result: DownloadResult = {
      ...file.result(),
      bytes: this.#received,
      resumedFrom: this.#resumedFrom,
      split: true,
    };
    if (this.#failure === undefined && this.#ordered && this.#digest) {
      const digest = await this.#ordered.digest(this.record.size);
      if (!sameDigest(digest, this.#digest)) {
        this.fail(checksumMismatch(this.#resumedFrom > 0), false);
      }
    }
    await this.saved.settled();
    if (this.#failure !== undefined) {
      if (this.#failure.keep) await this.saved.flush();
      else await file.discard();
      return { ...result, error: this.#failure.error };
    }
    return await file.rename(result);
  }
}

/** Receives one piece of a split file into its place in the temporary file. */
export async function receivePiece(client: FileClient, spool: Spool, piece: Piece): Promise<void> {
  const { split, start } = piece;
  const file = split.file;
  let out: Deno.FsFile | undefined;
  let began = false;
  let position = start;
  const handler: FileHandler = {
    async header(header: FileHeader) {
      if (split.matches(header)) {
        try {
          out = await file.open(start);
        } catch (error) {
          split.fail(writeFailure(error, file.target), true);
        }
      }
      // Only bytes that reach the file are recorded as written.
      const written = (bytes: Uint8Array) => {
        const hashed = split.wrote(position, bytes);
        position += bytes.length;
        return hashed;
      };
      spool.begin(out && !split.failed ? { sink: out, written } : { sink: discard });
      began = true;
    },
    data(chunk: Uint8Array) {
      split.received(chunk.length);
      return spool.push(chunk);
    },
    room: () => spool.room(),
  };
  /** Once the piece's writes are done: closes the file, and fails the split on a write failure. */
  const ended = () =>
    (began ? spool.end() : Promise.resolve(undefined)).then((failure) => {
      out?.close();
      if (failure !== undefined) split.fail(writeFailure(failure, file.target), true);
    });
  try {
    split.checkDigest(await client.readFile(handler, start));
  } catch (error) {
    if (error instanceof ServerError) {
      split.fail(error.message, error.code === ErrorCode.ShuttingDown);
    } else {
      await ended();
      throw error instanceof ConnectionError ? partlySaved(error, file.name) : error;
    }
  }
  split.ended(ended());
}
