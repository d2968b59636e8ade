/**
 * Files that come in pieces, fetched over several connections at once. The pieces are written at
 * their offsets into the same temporary file as a whole download (`.NAME.part`), and a small record
 * beside it (`.NAME.part.ranges`) says which bytes are written, so an interrupted download resumes
 * with only the missing ones, however it was cut short. The record never claims a byte before its
 * write has completed; a run killed between two saves fetches a little again. The whole file is
 * verified once joined: the digest runs from the start of the file as far as it is written, read
 * back from disk, while later pieces still arrive (a digest cannot be computed out of order).
 */

import { createHasher, type DigestAlgorithm, type Hasher } from "../shared/digest.ts";

/** Bytes per piece: small enough that the verified part follows close behind the received one. */
export const PIECE_BYTES = 16 * 1024 * 1024;
/** The least time between two saves of a record while pieces arrive. */
const SAVE_EVERY_MS = 100;
/** Bytes read back per step to verify. */
const VERIFY_STEP_BYTES = 4 * 1024 * 1024;

/** The record of an interrupted download in pieces: where it lives beside the part. */
export function recordPath(part: string): string {
  return `${part}.ranges`;
}

/** What a record holds: the file's version, and the written spans, sorted and apart. */
interface Saved {
  size: number;
  mtimeMs: number;
  done: [number, number][];
}

/**
 * Which bytes of a partial file are written, for one version of the server's file (its size and
 * modification time).
 * @example
 * ```ts
 * import { deepEqual, equal } from "node:assert/strict";
 * import { PieceRecord } from "./pieces.ts";
 * const record = new PieceRecord(100, 0, [[0, 10]]);
 * record.add(20, 30);
 * record.add(10, 20); // joins the spans on either side
 * equal(record.frontier, 30);
 * record.add(50, 60);
 * deepEqual(record.missing(), [[30, 50], [60, 100]]);
 * equal(record.written, 40);
 * ```
 */
export class PieceRecord {
  readonly size: number;
  readonly mtimeMs: number;
  #done: [number, number][];

  constructor(size: number, mtimeMs: number, done: [number, number][] = []) {
    this.size = size;
    this.mtimeMs = mtimeMs;
    this.#done = [];
    for (const [start, end] of done) this.add(start, end);
  }

  /**
   * The record saved at `path`; undefined when there is none. Throws a one-sentence Error when
   * the file there is not a record this client wrote.
   */
  static async load(path: string): Promise<PieceRecord | undefined> {
    let text;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    const saved = parse(text);
    if (saved === undefined) throw new Error(`${path} is not a record of an interrupted download`);
    return new PieceRecord(saved.size, saved.mtimeMs, saved.done);
  }

  /** Records bytes `start` to `end` (exclusive) as written. */
  add(start: number, end: number): void {
    if (start >= end) return;
    const done = this.#done;
    let i = 0;
    while (i < done.length && done[i][1] < start) i++;
    let j = i;
    while (j < done.length && done[j][0] <= end) {
      start = Math.min(start, done[j][0]);
      end = Math.max(end, done[j][1]);
      j++;
    }
    done.splice(i, j - i, [start, end]);
  }

  /** How far the file is written without a gap from its start. */
  get frontier(): number {
    return this.#done[0]?.[0] === 0 ? this.#done[0][1] : 0;
  }

  /** Bytes written in all. */
  get written(): number {
    return this.#done.reduce((sum, [start, end]) => sum + end - start, 0);
  }

  /** The spans not yet written, in order. */
  missing(): [number, number][] {
    const gaps: [number, number][] = [];
    let at = 0;
    for (const [start, end] of this.#done) {
      if (start > at) gaps.push([at, start]);
      at = end;
    }
    if (at < this.size) gaps.push([at, this.size]);
    return gaps;
  }

  /** Saves the record at `path`, whole or not at all: written beside it, then renamed over it. */
  async save(path: string): Promise<void> {
    const saved: Saved = { size: this.size, mtimeMs: this.mtimeMs, done: this.#done };
    await Deno.writeTextFile(`${path}.new`, JSON.stringify(saved));
    await Deno.rename(`${path}.new`, path);
  }
}

/** A saved record, checked field by field; undefined for anything else. */
function parse(text: string): Saved | undefined {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined; // not JSON: not a record, which the caller reports
  }
  const whole = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!whole(value?.size) || typeof value.mtimeMs !== "number" || !Array.isArray(value.done)) {
    return undefined;
  }
  const spansFit = value.done.every((span: unknown) =>
    Array.isArray(span) && span.length === 2 && whole(span[0]) && whole(span[1]) &&
    span[0] < span[1] && span[1] <= value.size
  );
  return spansFit ? value : undefined;
}

/**
 * A record kept on disk while pieces arrive: saved at most every {@link SAVE_EVERY_MS}, and on
 * {@link flush}. Saves never overlap, so an older one cannot land after a newer one.
 */
export class SavedRecord {
  readonly record: PieceRecord;
  readonly #path: string;
  #saving: Promise<void> | undefined;
  #savedMs = -Infinity;
  #error: unknown;

  constructor(record: PieceRecord, path: string) {
    this.record = record;
    this.#path = path;
  }

  /** Records bytes `start` to `end` as written, and saves when one is due. */
  add(start: number, end: number): void {
    this.record.add(start, end);
    if (this.#saving === undefined && performance.now() - this.#savedMs >= SAVE_EVERY_MS) {
      this.#saving = this.#save();
    }
  }

  /** Saves what is recorded now, once any save under way is done; throws a failed save's error. */
  async flush(): Promise<void> {
    while (this.#saving) await this.#saving;
    this.#saving = this.#save();
    await this.#saving;
    if (this.#error !== undefined) throw this.#error;
  }

  async #save(): Promise<void> {
    this.#savedMs = performance.now();
    try {
      await this.record.save(this.#path);
    } catch (error) {
      this.#error ??= error;
    } finally {
      this.#saving = undefined;
    }
  }
}

/**
 * The digest of a file being written out of order, worked out from its start as far as it is
 * written, by reading it back: {@link advance} as the written part grows, {@link digest} at the end.
 */
export class TrailingDigest {
  readonly #file: Deno.FsFile;
  readonly #hasher: Hasher;
  #buffer: Uint8Array | undefined;
  #hashed = 0;
  #frontier = 0;
  #running: Promise<void> | undefined;
  #error: unknown;

  private constructor(file: Deno.FsFile, hasher: Hasher) {
    this.#file = file;
    this.#hasher = hasher;
  }

  /** A digest by `algorithm` of the file at `path`, read as it is written. */
  static async open(path: string, algorithm: DigestAlgorithm): Promise<TrailingDigest> {
    return new TrailingDigest(await Deno.open(path), await createHasher(algorithm));
  }

  /** The file is written without a gap up to `frontier`: hash up to there, in the background. */
  advance(frontier: number): void {
    this.#frontier = Math.max(this.#frontier, frontier);
    this.#running ??= this.#run().catch((error) => void (this.#error ??= error)).finally(() => {
      this.#running = undefined;
    });
  }

  /** The digest of the first `size` bytes, once they are all written; closes the file. */
  async digest(size: number): Promise<Uint8Array> {
    try {
      this.advance(size);
      while (this.#running) await this.#running;
      if (this.#error !== undefined) throw this.#error;
      return this.#hasher.digest();
    } finally {
      this.close();
    }
  }

  /** Stops reading the file. */
  close(): void {
    try {
      this.#file.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  async #run(): Promise<void> {
    while (this.#hashed < this.#frontier && this.#error === undefined) {
      const buffer = this.#buffer ??= new Uint8Array(VERIFY_STEP_BYTES);
      const want = Math.min(buffer.length, this.#frontier - this.#hashed);
      await this.#file.seek(this.#hashed, Deno.SeekMode.Start);
      const n = await this.#file.read(buffer.subarray(0, want));
      if (n === null) throw new Error("the partial download ended before its recorded bytes");
      this.#hasher.update(buffer.subarray(0, n));
      this.#hashed += n;
    }
  }
}
