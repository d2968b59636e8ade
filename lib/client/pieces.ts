/**
 * Files that come in pieces, fetched over several connections at once. The pieces are written at
 * their offsets into the same temporary file as a whole download (`.NAME.part`), and a small record
 * beside it (`.NAME.part.ranges`) says which bytes are written, so an interrupted download resumes
 * with only the missing ones, however it was cut short. The record never claims a byte before its
 * write has completed; a run killed between two saves fetches a little again. The whole file is
 * verified, in order (a digest cannot be worked out out of order), as the pieces are written.
 */

import { createHasher, type DigestAlgorithm, type Hasher } from "../shared/digest.ts";

/** Bytes per piece: small enough that the verified part follows close behind the received one. */
export const PIECE_BYTES = 16 * 1024 * 1024;
/** The least time between two saves of a record while pieces arrive. */
const SAVE_EVERY_MS = 100;
/** Bytes read back per step to verify what an interrupted run wrote. */
const VERIFY_STEP_BYTES = 4 * 1024 * 1024;

/** The record of an interrupted download: where it lives beside the part. */
export function recordPath(part: string): string {
  return `${part}.ranges`;
}

/** A version of a server's file, as its FILE answers tell it: its size and modification time. */
export interface FileVersion {
  size: number;
  mtimeMs: number;
}

/**
 * True when `a` and `b` are the same version of a file: a partial download of one is resumed only
 * with bytes of the same.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { sameVersion } from "./pieces.ts";
 * equal(sameVersion({ size: 3, mtimeMs: 1000 }, { size: 3, mtimeMs: 1000 }), true);
 * equal(sameVersion({ size: 3, mtimeMs: 1000 }, { size: 3, mtimeMs: 2000 }), false);
 * ```
 */
export function sameVersion(a: FileVersion, b: FileVersion): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/**
 * What a record holds: the version of the file a partial download began from and, for one that
 * came in pieces, the spans written, sorted and apart. Without spans, the download came whole and
 * its bytes run from the start of the part to its end.
 */
export interface Saved extends FileVersion {
  done?: [number, number][];
}

/**
 * The record saved at `path`; undefined when there is none. Throws a one-sentence Error when the
 * file there is not a record this client wrote.
 */
export async function loadRecord(path: string): Promise<Saved | undefined> {
  let text;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const saved = parse(text);
  if (saved === undefined) throw new Error(`${path} is not a record of an interrupted download`);
  return saved;
}

/** Saves `saved` at `path`, whole or not at all: written beside it, then renamed over it. */
export async function saveRecord(path: string, saved: Saved): Promise<void> {
  await Deno.writeTextFile(`${path}.new`, JSON.stringify(saved));
  await Deno.rename(`${path}.new`, path);
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

  /** The spans written, in order. */
  get spans(): [number, number][] {
    return this.#done.map(([start, end]) => [start, end]);
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

  /** Saves the record at `path`, whole or not at all. */
  async save(path: string): Promise<void> {
    await saveRecord(path, { size: this.size, mtimeMs: this.mtimeMs, done: this.#done });
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
  if (!whole(value?.size) || typeof value.mtimeMs !== "number") return undefined;
  if (value.done === undefined) return value;
  if (!Array.isArray(value.done)) return undefined;
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
    await this.settled();
    this.#saving = this.#save();
    await this.#saving;
    if (this.#error !== undefined) throw this.#error;
  }

  /**
   * Resolves once no save is under way: a record deleted before a save under way has written it
   * would come back, and a rerun would take the finished download for an interrupted one.
   */
  async settled(): Promise<void> {
    while (this.#saving) await this.#saving;
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
 * The digest of a file arriving in pieces, worked out in order from the bytes themselves as they
 * are written: bytes that come ahead of their turn are held, their buffer with them, until the
 * bytes before them are hashed (so a connection that runs ahead waits, with what it holds, for
 * the others); bytes written by an interrupted run are read back from disk when their turn comes.
 * Reading back what was just written cost as much again as hashing it (docs/PERFORMANCE.md).
 */
export class OrderedDigest {
  readonly #hasher: Hasher;
  readonly #path: string;
  /** Spans on disk from an earlier run, sorted. */
  readonly #earlier: [number, number][];
  readonly #waiting = new Map<number, { bytes: Uint8Array; hashed: () => void }>();
  #hashed = 0;
  #running = false;
  #progressed: (() => void) | undefined;
  #error: unknown;
  #abandoned = false;

  private constructor(hasher: Hasher, path: string, earlier: [number, number][]) {
    this.#hasher = hasher;
    this.#path = path;
    this.#earlier = earlier;
  }

  /**
   * A digest by `algorithm` of the file at `path`, where the spans `earlier` were written by an
   * interrupted run (and are read back in their turn).
   */
  static async create(
    algorithm: DigestAlgorithm,
    path: string,
    earlier: [number, number][],
  ): Promise<OrderedDigest> {
    return new OrderedDigest(await createHasher(algorithm), path, earlier);
  }

  /** Takes `bytes`, written at `position`; resolves once they are hashed (or given up on). */
  offer(position: number, bytes: Uint8Array): Promise<void> {
    if (this.#abandoned) return Promise.resolve();
    const hashed = new Promise<void>((resolve) => {
      this.#waiting.set(position, { bytes, hashed: resolve });
    });
    this.#kick();
    return hashed;
  }

  /** The digest of the first `size` bytes, once they are all hashed. */
  async digest(size: number): Promise<Uint8Array> {
    while (this.#hashed < size && this.#error === undefined && !this.#abandoned) {
      await new Promise<void>((resolve) => this.#progressed = resolve);
    }
    if (this.#error !== undefined) throw this.#error;
    if (this.#hashed < size) throw new Error("the digest was given up before the file was whole");
    return this.#hasher.digest();
  }

  /** Lets go of every byte held, and of any to come: the file failed, or a connection broke. */
  abandon(): void {
    this.#abandoned = true;
    for (const { hashed } of this.#waiting.values()) hashed();
    this.#waiting.clear();
    this.#progressed?.();
  }

  /** Hashes what is next in turn, until nothing is. */
  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    this.#hashAll().catch((error) => {
      this.#error ??= error;
      this.abandon();
    }).finally(() => {
      this.#running = false;
      this.#progressed?.();
      if (this.#waiting.has(this.#hashed) && !this.#abandoned) this.#kick();
    });
  }

  async #hashAll(): Promise<void> {
    for (;;) {
      const next = this.#waiting.get(this.#hashed);
      if (next) {
        this.#waiting.delete(this.#hashed);
        this.#hasher.update(next.bytes);
        this.#hashed += next.bytes.length;
        next.hashed();
        continue;
      }
      const span = this.#earlier.find(([start, end]) =>
        start <= this.#hashed && this.#hashed < end
      );
      if (span === undefined) return;
      await this.#readBack(span[1]);
    }
  }

  /** Hashes the file from where the digest stands up to `end`, read from disk. */
  async #readBack(end: number): Promise<void> {
    using file = await Deno.open(this.#path);
    await file.seek(this.#hashed, Deno.SeekMode.Start);
    const buffer = new Uint8Array(Math.min(VERIFY_STEP_BYTES, end - this.#hashed));
    while (this.#hashed < end) {
      const n = await file.read(buffer.subarray(0, Math.min(buffer.length, end - this.#hashed)));
      if (n === null) throw new Error("the partial download is shorter than its record says");
      this.#hasher.update(buffer.subarray(0, n));
      this.#hashed += n;
    }
  }
}
