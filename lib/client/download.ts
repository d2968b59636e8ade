/**
 * Saving files from the server: every download goes to a hidden temporary name beside its target
 * and is renamed only once complete and its digest matches the server's. A temporary file
 * left by an interrupted download is resumed from where it stopped. Names are checked with the
 * server's own rules, so nothing is ever written outside the output folder.
 *
 * Over several connections, the files are shared out among them as each connection becomes free;
 * and when there are fewer files than connections, a large file is split into pieces fetched side
 * by side (pieces.ts). On one connection every request is sent at once, as one burst.
 */

import { basename, dirname, join } from "node:path";
import { createHasher, type Hasher, sameDigest } from "../shared/digest.ts";
import { ErrorCode } from "../shared/errors.ts";
import type { Writer } from "../shared/io.ts";
import { checkName } from "../shared/names.ts";
import type { FileHeader } from "../shared/protocol.ts";
import type { FileClient, FileHandler } from "./client.ts";
import { ConnectionError, ServerError, writeFailure } from "./errors.ts";
import {
  type FileVersion,
  loadRecord,
  OrderedDigest,
  PIECE_BYTES,
  PieceRecord,
  recordPath,
  sameVersion,
  SavedRecord,
  saveRecord,
} from "./pieces.ts";
import { Spool } from "./spool.ts";

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

/**
 * Files at least this large are split into pieces when some connection would otherwise have
 * nothing to fetch. Below it, on loopback, a piece is fetched faster than the splitting pays back
 * (docs/PERFORMANCE.md).
 */
export const SPLIT_MIN_BYTES = 64 * 1024 * 1024;

/**
 * Files at least this large have the version they began from recorded beside their partial file,
 * so that a rerun can resume them. Keeping a record costs a write, a rename and a removal, as much
 * again as a small file's own writes; a smaller file's partial file is fetched again instead.
 */
const RECORD_MIN_BYTES = 1024 * 1024;

/**
 * The temporary name a download of `target` is written under: hidden, beside it.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { partialPath } from "./download.ts";
 * equal(partialPath("client_data/docs/a.txt"), "client_data/docs/.a.txt.part");
 * ```
 */
export function partialPath(target: string): string {
  return join(dirname(target), `.${basename(target)}.part`);
}

/** Why a resumed download failed its check, and what was done about it. */
const CHANGED_SINCE = "the file changed on the server since the interrupted download; " +
  "deleted the partial download, run again to start afresh";
/** Why a download in pieces failed, when the file changed between two of them. */
const CHANGED_DURING = "the file changed on the server during the download; " +
  "deleted the partial download, run again to start afresh";

/** Where the body of an answer that cannot be saved goes. */
const discard: Writer = { write: (bytes) => Promise.resolve(bytes.length) };

/**
 * Downloads `names` over `clients`, connections to one server, and yields what became of each
 * file, in the order named, as soon as it is done. Throws ConnectionError if a connection breaks
 * (after yielding the files finished by then); partial files are kept so that running the same
 * command again resumes. Standard output takes the files in order, so it takes one connection.
 */
export async function* downloadFiles(
  clients: readonly FileClient[],
  names: string[],
  options: DownloadOptions,
): AsyncGenerator<DownloadResult> {
  if (options.output === "-" && clients.length > 1) {
    throw new Error("standard output takes the files in order, over one connection");
  }
  // A name given twice is fetched once: two downloads into one temporary file would collide.
  const jobs = await Promise.all([...new Set(names)].map((name) => plan(name, options)));
  const ranges = clients[0].version >= 2;
  for (const job of jobs) {
    if (job.error !== undefined) job.settle({ ...job.result(), error: job.error });
    else if (job.record && !ranges) {
      // A server of protocol version 1 sends no ranges: the part before the first gap is kept.
      job.offset = job.record.frontier;
      job.record = undefined;
      await removeQuietly(recordPath(job.part!));
      job.recorded = false;
    }
  }
  const open = jobs.filter((job) => !job.settled);
  // Only where some connection would otherwise have nothing to do is a file split.
  const split = ranges && clients.length > open.filter((job) => !job.record).length;
  const queue = new WorkQueue();
  const splits: Split[] = [];
  const context: Context = { options, queue, splits, split };
  // A resumed file's version is asked first, so that a file changed since is fetched from the
  // start rather than from where it stopped; so is a file's size, where files may be split.
  queue.add(...open.map((job): Work => ({
    kind: ranges && (split || job.version !== undefined) ? "probe" : "whole",
    job,
  })));

  let broken: unknown;
  const ahead = clients.length === 1 ? Infinity : 1;
  const workers = clients.map((client) =>
    work(client, ahead, context).catch((error) => {
      broken ??= error;
      queue.stop();
      for (const split of splits) split.abandon();
      for (const other of clients) other.close();
    })
  );
  const stopped = Promise.all(workers).then(async () => {
    if (broken === undefined) return;
    for (const split of splits) await split.keep();
    for (const job of jobs) if (!job.settled) job.fail(broken);
  });
  for (const job of jobs) {
    const result = await job.outcome.catch(() => undefined);
    if (result) yield result;
  }
  await stopped;
  if (broken !== undefined) throw broken;
}

/**
 * What the work shares: how files are saved, the work left, the files in pieces, and whether a
 * large file is split.
 */
interface Context {
  options: DownloadOptions;
  queue: WorkQueue;
  splits: Split[];
  split: boolean;
}

/** One file asked for: where it goes, what is there already, and what became of it. */
class Job {
  readonly name: string;
  /** Where it is saved, and its temporary name; undefined for standard output. */
  readonly target?: string;
  readonly part?: string;
  /** Bytes of the partial file there already, to resume from. */
  offset: number;
  /** The version of the file being fetched, once known: the partial file's, when resumed. */
  version?: FileVersion;
  /** The record of an interrupted download in pieces, if there is one. */
  record?: PieceRecord;
  /** True when a record of the version is on disk beside the partial file. */
  recorded: boolean;
  /** True when a partial file was left aside because the file changed on the server since. */
  afresh = false;
  /** Why it cannot even be asked for. */
  readonly error?: string;
  /** True once what became of it is settled, or being worked out without a connection. */
  settled = false;
  readonly outcome: Promise<DownloadResult>;
  #resolve!: (result: DownloadResult | Promise<DownloadResult>) => void;
  #reject!: (error: unknown) => void;

  constructor(
    fields: Pick<Job, "name" | "target" | "part" | "offset" | "version" | "record" | "error">,
  ) {
    this.name = fields.name;
    this.target = fields.target;
    this.part = fields.part;
    this.offset = fields.offset;
    this.version = fields.version;
    this.record = fields.record;
    this.recorded = fields.version !== undefined;
    this.error = fields.error;
    this.outcome = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.outcome.catch(() => {}); // a failure is the connection's, thrown by downloadFiles
  }

  /** A result with nothing received yet. */
  result(): DownloadResult {
    const result: DownloadResult = { name: this.name, bytes: 0, resumedFrom: this.offset };
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

  /** Deletes the partial file and its record, if there are any. */
  async discard(): Promise<void> {
    if (this.part === undefined) return;
    await removeQuietly(this.part);
    if (this.recorded) await removeQuietly(recordPath(this.part));
    this.recorded = false;
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

async function plan(name: string, options: DownloadOptions): Promise<Job> {
  try {
    checkName(name);
  } catch (error) {
    return new Job({ name, offset: 0, error: (error as Error).message });
  }
  if (options.output === "-") return new Job({ name, offset: 0 });
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
    if (!saved || offset === undefined) return new Job({ name, target, part, offset: 0 });
    const version = { size: saved.size, mtimeMs: saved.mtimeMs };
    const record = saved.done && new PieceRecord(saved.size, saved.mtimeMs, saved.done);
    return new Job({ name, target, part, offset, version, record });
  } catch (error) {
    return new Job({ name, offset: 0, error: writeFailure(error, target) });
  }
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

/** One request's worth of work. */
type Work =
  | { kind: "whole"; job: Job }
  | { kind: "probe"; job: Job }
  | { kind: "piece"; split: Split; start: number; end: number };

/** Work waiting for a connection. Probes under way may add more, so a free connection waits. */
class WorkQueue {
  readonly #items: Work[] = [];
  #probing = 0;
  #stopped = false;
  #waiting: (() => void)[] = [];

  add(...work: Work[]): void {
    this.#items.push(...work);
    this.#wake();
  }

  /** The next work waiting now, if any; pieces of a file that has failed are passed over. */
  poll(): Work | undefined {
    for (;;) {
      const work = this.#stopped ? undefined : this.#items.shift();
      if (work?.kind === "piece" && work.split.failed) {
        work.split.skipped();
        continue;
      }
      if (work?.kind === "probe") this.#probing++;
      return work;
    }
  }

  /** The next work; waits while probes under way may add some; undefined when none will come. */
  async take(): Promise<Work | undefined> {
    for (;;) {
      const work = this.poll();
      if (work || this.#probing === 0 || this.#stopped) return work;
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  /** A probe taken from the queue is done, having added what its file needs. */
  probed(): void {
    this.#probing--;
    this.#wake();
  }

  /** Hands out nothing more: a connection broke. */
  stop(): void {
    this.#stopped = true;
    this.#wake();
  }

  #wake(): void {
    for (const wake of this.#waiting.splice(0)) wake();
  }
}

/**
 * One connection's share: takes work as it comes, keeping up to `ahead` requests more than the one
 * being answered in flight, so the server never waits for the next request.
 */
async function work(client: FileClient, ahead: number, context: Context): Promise<void> {
  const spool = new Spool();
  const sent: Work[] = [];
  for (;;) {
    const batch: Work[] = [];
    for (let next; sent.length + batch.length <= ahead && (next = context.queue.poll());) {
      batch.push(next);
    }
    if (sent.length + batch.length === 0) {
      const next = await context.queue.take();
      if (next === undefined) return;
      batch.push(next);
    }
    if (batch.length > 0) await client.send(...batch.map((item) => request(client, item)));
    sent.push(...batch);
    const item = sent.shift()!;
    if (item.kind === "whole") await receiveWhole(client, spool, item.job, context);
    else if (item.kind === "probe") await receiveProbe(client, item.job, context);
    else await receivePiece(client, spool, item);
  }
}

function request(client: FileClient, item: Work): Uint8Array {
  switch (item.kind) {
    case "whole":
      return client.get(item.job.name, item.job.offset);
    case "probe":
      return client.get(item.job.name, 0, 1);
    case "piece":
      return client.get(item.split.job.name, item.start, item.end);
  }
}

/**
 * Receives one whole answer (from the job's offset) into its temporary file, or stdout, through
 * `spool`. It returns once the answer is read; the file is finished (written, verified, renamed)
 * while the next answer comes in. A local failure (disk full, no permission) stops the writing but
 * not the reading: the rest of the answer is read and dropped, so the files after it on the
 * connection still arrive. Whatever arrived before the connection broke is written before the
 * error goes on, so a rerun resumes from there. A resumed file found changed (by a server that
 * cannot be asked its version first) is fetched again from the start.
 */
async function receiveWhole(
  client: FileClient,
  spool: Spool,
  job: Job,
  context: Context,
): Promise<void> {
  const { options } = context;
  const result = job.result();
  const hash = options.verify ? await createHasher(client.digest) : undefined;
  let out: Deno.FsFile | undefined;
  let failure: unknown;
  let stale = false;
  let began = false;
  let total = 0;
  const progress = () => !stale && options.progress?.(job.name, job.offset + result.bytes, total);
  try {
    const digest = await client.readFile({
      async header(header: FileHeader) {
        total = header.size;
        stale = job.offset > 0 && !sameVersion(job.version!, header);
        progress();
        try {
          if (!stale) out = await openWhole(job, header, hash);
        } catch (error) {
          failure = error;
        }
        const sink = stale || failure !== undefined ? discard : out ?? Deno.stdout;
        spool.begin({ sink, hasher: hash });
        began = true;
      },
      async data(chunk: Uint8Array) {
        result.bytes += chunk.length;
        await spool.push(chunk);
        progress();
      },
      room: () => spool.room(),
    }, job.offset);
    const written = spool.end().then((writing) => failure ?? writing);
    if (stale) return await fetchAfresh(job, context);
    job.settle(finishWhole(job, result, written, out, hash, digest));
  } catch (error) {
    if (began) failure ??= await spool.end();
    out?.close();
    await wholeFailed(job, result, error, context);
  }
}

/**
 * What became of a whole answer that failed: a broken connection keeps a partial file that can be
 * resumed (and throws); a refusal is the file's outcome, and a resumed file now shorter than the
 * partial one is fetched again from the start.
 */
async function wholeFailed(
  job: Job,
  result: DownloadResult,
  error: unknown,
  context: Context,
): Promise<void> {
  if (error instanceof ConnectionError && job.part !== undefined) {
    if (job.recorded && job.offset + result.bytes > 0) throw partlySaved(error, job.name);
    await job.discard().catch(() => {}); // the broken connection matters more than this clean-up
  }
  if (!(error instanceof ServerError)) throw error;
  if (error.code === ErrorCode.BadRequest && job.offset > 0) return await fetchAfresh(job, context);
  // Keep a partial file only when the server stopped for a passing reason, to resume later.
  if (error.code !== ErrorCode.ShuttingDown) await job.discard();
  job.settle({ ...result, error: error.message });
}

/** A resumed file changed on the server since: it is fetched again, whole, from the start. */
async function fetchAfresh(job: Job, context: Context): Promise<void> {
  await job.restart();
  context.queue.add({ kind: "whole", job });
}

/**
 * Opens a whole download's temporary file to write from the job's offset, nothing after it, its
 * version recorded beside it when the file is large enough to resume; and hashes the bytes there
 * before the offset. Undefined for standard output.
 */
async function openWhole(
  job: Job,
  header: FileHeader,
  hash: Hasher | undefined,
): Promise<Deno.FsFile | undefined> {
  job.version = { size: header.size, mtimeMs: header.mtimeMs };
  if (job.part === undefined) return undefined;
  const out = await openPart(job.part, job.offset, true);
  try {
    if (!job.recorded && header.size >= RECORD_MIN_BYTES) {
      await saveRecord(recordPath(job.part), job.version);
      job.recorded = true;
    }
    if (hash && job.offset > 0) await hashPrefix(job.part, job.offset, hash);
    return out;
  } catch (error) {
    out.close();
    throw error;
  }
}

/**
 * Once a whole file's writes are done (`written` settles with the first failure, if any): closes
 * it, checks its digest, and renames it.
 */
async function finishWhole(
  job: Job,
  result: DownloadResult,
  written: Promise<unknown>,
  out: Deno.FsFile | undefined,
  hash: Hasher | undefined,
  digest: Uint8Array,
): Promise<DownloadResult> {
  const failure = await written;
  out?.close();
  if (failure !== undefined) {
    if (job.part !== undefined) await removeIfEmpty(job.part);
    return { ...result, error: writeFailure(failure, job.target ?? "standard output") };
  }
  if (hash && !sameDigest(hash.digest(), digest)) {
    await job.discard();
    const error = job.offset > 0
      ? `checksum mismatch: ${CHANGED_SINCE}`
      : "checksum mismatch: the bytes received differ from the server's file; not saved";
    return { ...result, error };
  }
  return await rename(job, result);
}

/** Renames a finished temporary file to its target, and deletes its record. */
async function rename(job: Job, result: DownloadResult): Promise<DownloadResult> {
  if (job.part === undefined || job.target === undefined) return result;
  try {
    await Deno.rename(job.part, job.target);
  } catch (error) {
    return { ...result, error: writeFailure(error, job.target) };
  }
  if (job.recorded) await removeQuietly(recordPath(job.part));
  return { ...result, path: job.target };
}

/**
 * Opens a temporary file to write from `offset` on, making its folder if need be; with `cut`,
 * nothing is left after `offset` (a whole download's bytes run to the end of the file).
 */
async function openPart(part: string, offset: number, cut = false): Promise<Deno.FsFile> {
  await Deno.mkdir(dirname(part), { recursive: true });
  const file = await Deno.open(part, { write: true, create: true, truncate: cut && offset === 0 });
  try {
    if (cut && offset > 0) await file.truncate(offset);
    await file.seek(offset, Deno.SeekMode.Start);
    return file;
  } catch (error) {
    file.close();
    throw error;
  }
}

/** The error for a connection that broke while `name` was coming, which a rerun resumes. */
function partlySaved(error: ConnectionError, name: string): ConnectionError {
  return new ConnectionError(
    `${error.message}; ${name} is partly saved: run the same command again to resume`,
    { cause: error },
  );
}

/**
 * Learns a file's size and version from a one-byte answer: a partial file of another version is
 * deleted, and the file fetched from the start. Queues the file whole, or in pieces if it came in
 * pieces before or is large and files are split. A refusal is left to the whole request, which
 * reports it as usual.
 */
async function receiveProbe(client: FileClient, job: Job, context: Context): Promise<void> {
  try {
    let header: FileHeader | undefined;
    await client.readFile({ header: (h) => void (header = h), data() {} });
    const { size, mtimeMs } = header!;
    if (job.version && (!sameVersion(job.version, header!) || job.offset > size)) {
      await job.restart();
    }
    job.version = { size, mtimeMs };
    if (job.record) await startSplit(context, job, job.record, client);
    else if (context.split && size >= SPLIT_MIN_BYTES) {
      const done: [number, number][] = job.offset > 0 ? [[0, job.offset]] : [];
      await startSplit(context, job, new PieceRecord(size, mtimeMs, done), client);
    } else context.queue.add({ kind: "whole", job });
  } catch (error) {
    if (!(error instanceof ServerError)) throw error;
    context.queue.add({ kind: "whole", job });
  } finally {
    context.queue.probed();
  }
}

/**
 * Starts a file in pieces: its temporary file and record on disk first (so no piece is ever
 * written where a rerun could not tell it from a plain partial file), then its pieces queued.
 */
async function startSplit(
  context: Context,
  job: Job,
  record: PieceRecord,
  client: FileClient,
): Promise<void> {
  try {
    (await openPart(job.part!, 0)).close();
    const saved = new SavedRecord(record, recordPath(job.part!));
    await saved.flush();
    job.recorded = true;
    const digest = context.options.verify
      ? await OrderedDigest.create(client.digest, job.part!, record.spans)
      : undefined;
    const split = new Split(job, saved, digest, context.options);
    context.splits.push(split);
    const pieces: Work[] = [];
    for (const [from, to] of record.missing()) {
      for (let start = from; start < to; start += PIECE_BYTES) {
        pieces.push({ kind: "piece", split, start, end: Math.min(to, start + PIECE_BYTES) });
      }
    }
    // With every byte there already, an empty piece still brings the digest to check them with.
    if (pieces.length === 0) pieces.push({ kind: "piece", split, start: record.size, end: 0 });
    split.expect(pieces.length);
    context.queue.add(...pieces);
  } catch (error) {
    job.settle({ ...job.result(), error: writeFailure(error, job.target!) });
  }
}

/** A file coming in pieces: what is written, what is verified, and whether it failed. */
class Split {
  readonly job: Job;
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
    job: Job,
    saved: SavedRecord,
    ordered: OrderedDigest | undefined,
    options: DownloadOptions,
  ) {
    this.job = job;
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
    const record = this.record;
    if (header.size === record.size && header.mtimeMs === record.mtimeMs) return true;
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
    this.#options.progress?.(this.job.name, this.#resumedFrom + this.#received, this.record.size);
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
    if (--this.#left === 0) this.job.settle(this.#finish());
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
    if (!this.job.settled) await this.saved.flush();
  }

  #changed(): void {
    this.fail(this.#resumedFrom > 0 ? CHANGED_SINCE : CHANGED_DURING, false);
  }

  async #finish(): Promise<DownloadResult> {
    await Promise.all(this.#writes);
    const job = this.job;
    const result: DownloadResult = {
      ...job.result(),
      bytes: this.#received,
      resumedFrom: this.#resumedFrom,
      split: true,
    };
    if (this.#failure === undefined && this.#ordered) {
      const digest = await this.#ordered.digest(this.record.size);
      if (!sameDigest(digest, this.#digest!)) {
        this.fail(
          this.#resumedFrom > 0
            ? `checksum mismatch: ${CHANGED_SINCE}`
            : "checksum mismatch: the bytes received differ from the server's file; not saved",
          false,
        );
      }
    }
    if (this.#failure !== undefined) {
      if (this.#failure.keep) await this.saved.flush();
      else await job.discard();
      return { ...result, error: this.#failure.error };
    }
    return await rename(job, result);
  }
}

/** Receives one piece of a split file into its place in the temporary file. */
async function receivePiece(
  client: FileClient,
  spool: Spool,
  piece: { split: Split; start: number },
): Promise<void> {
  const { split, start } = piece;
  const job = split.job;
  let out: Deno.FsFile | undefined;
  let began = false;
  let position = start;
  const handler: FileHandler = {
    async header(header: FileHeader) {
      if (split.matches(header)) {
        try {
          out = await openPart(job.part!, start);
        } catch (error) {
          split.fail(writeFailure(error, job.target!), true);
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
      if (failure !== undefined) split.fail(writeFailure(failure, job.target!), true);
    });
  try {
    split.checkDigest(await client.readFile(handler, start));
  } catch (error) {
    if (error instanceof ServerError) {
      split.fail(error.message, error.code === ErrorCode.ShuttingDown);
    } else {
      await ended();
      throw error instanceof ConnectionError ? partlySaved(error, job.name) : error;
    }
  }
  split.ended(ended());
}

async function hashPrefix(path: string, length: number, hash: Hasher): Promise<void> {
  using file = await Deno.open(path);
  const buffer = new Uint8Array(1024 * 1024);
  for (let done = 0; done < length;) {
    const n = await file.read(buffer.subarray(0, Math.min(buffer.length, length - done)));
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
    done += n;
  }
}

async function removeQuietly(path: string): Promise<void> {
  await Deno.remove(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

/** Removes a temporary file that holds nothing to resume; best effort, after a failure. */
async function removeIfEmpty(path: string): Promise<void> {
  try {
    if ((await Deno.stat(path)).size === 0) await Deno.remove(path);
  } catch {
    // the failure being reported matters more than this clean-up
  }
}
