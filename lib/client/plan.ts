/**
 * What a download is asked for, and where each file goes. Every name is checked with the server's
 * own rules, so nothing is ever written outside the output folder; a file is written to a hidden
 * temporary name beside its target and renamed only once complete; and what an interrupted run
 * left there is resumed only with the record of the version it began from.
 */

import { basename, dirname, join } from "node:path";
import { checkName } from "../shared/names.ts";
import { writeFailure } from "./errors.ts";
import { type FileVersion, loadRecord, PieceRecord, recordPath } from "./pieces.ts";

/** How files are saved. */
export interface DownloadOptions {
  /** The output folder, or "-" for standard output. */
  output: string;
  /**
   * True when one file is asked for and `output` was named for it: it is then the path the file is
   * saved at, unless it is a folder (one that exists, or a path ending in "/"), in which the file
   * keeps its name; as `curl -o` and `wget -O` have it.
   */
  toFile?: boolean;
  /** Check each file's digest against the server's (default true). */
  verify: boolean;
  /** Told about each file's progress, e.g. to draw a progress bar. */
  progress?: (name: string, done: number, total: number) => void;
}

/** What became of one requested file. */
export interface DownloadResult {
  name: string;
  /** Where it was saved, when it was. */
  path?: string;
  /** Body bytes received in this run. */
  bytes: number;
  /** Bytes already on disk from an interrupted run that this one continued. */
  resumedFrom: number;
  /** True when it came in pieces over several connections. */
  split?: boolean;
  /**
   * True when a partial file from an interrupted run was there, but the file had changed on the
   * server since: this run fetched it from the start.
   */
  afresh?: boolean;
  /** Why it failed, in one sentence, when it did. */
  error?: string;
}

/** Why a resumed download failed its check, and what was done about it. */
export const CHANGED_SINCE = "the file changed on the server since the interrupted download; " +
  "deleted the partial download, run again to start afresh";

/** Why the digest of the bytes received differs from the server's, for a file `resumed` or not. */
export function checksumMismatch(resumed: boolean): string {
  return resumed
    ? `checksum mismatch: ${CHANGED_SINCE}`
    : "checksum mismatch: the bytes received differ from the server's file; not saved";
}

/**
 * The temporary name a download of `target` is written under: hidden, beside it.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { partialPath } from "./plan.ts";
 * equal(partialPath("client_data/docs/a.txt"), "client_data/docs/.a.txt.part");
 * ```
 */
export function partialPath(target: string): string {
  return join(dirname(target), `.${basename(target)}.part`);
}

/**
 * One file asked for, and what became of it: written to standard output, or settled at once when
 * it cannot even be asked for. A file saved to disk is a {@link FileJob}.
 */
export class Job {
  readonly name: string;
  /** Bytes of the file there already, to resume from. */
  offset = 0;
  /** True once what became of it is settled, or being worked out without a connection. */
  settled = false;
  readonly outcome: Promise<DownloadResult>;
  #resolve!: (result: DownloadResult | Promise<DownloadResult>) => void;
  #reject!: (error: unknown) => void;

  constructor(name: string) {
    this.name = name;
    this.outcome = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.outcome.catch(() => {}); // a failure is the connection's, thrown by downloadFiles
  }

  /** A result with nothing received yet. */
  result(): DownloadResult {
    return { name: this.name, bytes: 0, resumedFrom: this.offset };
  }

  /** Settles what became of the file (once worked out, if a promise). */
  settle(result: DownloadResult | Promise<DownloadResult>): void {
    this.settled = true;
    this.#resolve(result);
  }

  /** The file was cut short by `error`, which downloadFiles throws. */
  fail(error: unknown): void {
    this.settled = true;
    this.#reject(error);
  }
}

/**
 * A file saved to disk: written to its temporary file `part` beside `target`, and renamed once
 * complete; with what an interrupted run left there.
 */
export class FileJob extends Job {
  readonly target: string;
  readonly part: string;
  /** The version of the file being fetched, once known: the partial file's, when resumed. */
  version?: FileVersion;
  /** The record of an interrupted download in pieces, if there is one. */
  record?: PieceRecord;
  /** True when a record of the version is on disk beside the partial file. */
  recorded: boolean;
  /** True when a partial file was left aside because the file changed on the server since. */
  afresh = false;

  /** A file saved at `target`; `offset` bytes of it there, of the version `version`. */
  constructor(name: string, target: string, offset = 0, version?: FileVersion) {
    super(name);
    this.target = target;
    this.part = partialPath(target);
    this.offset = offset;
    this.version = version;
    this.recorded = version !== undefined;
  }

  override result(): DownloadResult {
    const result = super.result();
    if (this.afresh) result.afresh = true;
    return result;
  }

  /**
   * The file changed on the server since the partial file was written: it and its record are
   * deleted, and the file is fetched from the start.
   */
  async restart(): Promise<void> {
    await this.discard();
    this.offset = 0;
    this.version = undefined;
    this.record = undefined;
    this.afresh = true;
  }

  /**
   * A server of protocol version 1 sends no ranges: of a download in pieces, the part before the
   * first gap is kept, and goes on whole.
   */
  async keepFrontier(): Promise<void> {
    if (this.record === undefined) return;
    this.offset = this.record.frontier;
    this.record = undefined;
    await removeQuietly(recordPath(this.part));
    this.recorded = false;
  }

  /** Deletes the partial file and its record, if there are any. */
  async discard(): Promise<void> {
    await removeQuietly(this.part);
    if (this.recorded) await removeQuietly(recordPath(this.part));
    this.recorded = false;
  }

  /** Deletes the partial file when it holds nothing to resume; best effort, after a failure. */
  async discardIfEmpty(): Promise<void> {
    try {
      if ((await Deno.stat(this.part)).size === 0) await Deno.remove(this.part);
    } catch {
      // the failure being reported matters more than this clean-up
    }
  }

  /**
   * Opens the temporary file to write from `offset` on, making its folder if need be; with `cut`,
   * nothing is left after `offset` (a whole download's bytes run to the end of the file).
   */
  async open(offset: number, cut = false): Promise<Deno.FsFile> {
    await Deno.mkdir(dirname(this.part), { recursive: true });
    const truncate = cut && offset === 0;
    const file = await Deno.open(this.part, { write: true, create: true, truncate });
    try {
      if (cut && offset > 0) await file.truncate(offset);
      await file.seek(offset, Deno.SeekMode.Start);
      return file;
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /** Renames the finished temporary file to its target, and deletes its record. */
  async rename(result: DownloadResult): Promise<DownloadResult> {
    try {
      await Deno.rename(this.part, this.target);
    } catch (error) {
      return { ...result, error: writeFailure(error, this.target) };
    }
    if (this.recorded) await removeQuietly(recordPath(this.part));
    return { ...result, path: this.target };
  }
}

/**
 * The job for `name`, as `options` save it: a file with what an interrupted run left of it, a
 * job for standard output, or one settled at once with why it cannot be asked for.
 */
export async function plan(name: string, options: DownloadOptions): Promise<Job> {
  try {
    checkName(name);
  } catch (error) {
    return refused(name, (error as Error).message);
  }
  if (options.output === "-") return new Job(name);
  const target = options.toFile && !await isFolder(options.output)
    ? options.output
    : join(options.output, name);
  const part = partialPath(target);
  try {
    const offset = await sizeOf(part);
    const saved = await loadRecord(recordPath(part));
    // A record without its part is left from a download renamed just before its record went.
    if (saved && offset === undefined) await removeQuietly(recordPath(part));
    // A partial file whose version is not recorded cannot be told from a changed file's.
    if (!saved && offset !== undefined) await removeQuietly(part);
    if (!saved || offset === undefined) return new FileJob(name, target);
    const job = new FileJob(name, target, offset, { size: saved.size, mtimeMs: saved.mtimeMs });
    if (saved.done) job.record = new PieceRecord(saved.size, saved.mtimeMs, saved.done);
    return job;
  } catch (error) {
    return refused(name, writeFailure(error, target));
  }
}

/** A job settled at once: `name` cannot be asked for, for `why`. */
function refused(name: string, why: string): Job {
  const job = new Job(name);
  job.settle({ ...job.result(), error: why });
  return job;
}

/**
 * True when `path` names a folder: it ends in "/", or is one. Whatever cannot be looked at is
 * taken for a file, whose writing then says what is wrong.
 */
async function isFolder(path: string): Promise<boolean> {
  if (path.endsWith("/")) return true;
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** The size of the file at `path`, or undefined if there is none. */
async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Deletes the file at `path`, if there is one. */
async function removeQuietly(path: string): Promise<void> {
  await Deno.remove(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}
