/**
 * A file received whole, in one answer, from where an interrupted run stopped: into its temporary
 * file (or standard output) through a {@link Spool}, then verified and renamed while the next
 * answer already comes in.
 */

import { createHasher, type Hasher, sameDigest } from "../shared/digest.ts";
import { ErrorCode } from "../shared/errors.ts";
import type { FileHeader } from "../shared/protocol.ts";
import type { FileClient } from "./client.ts";
import { ConnectionError, partlySaved, ServerError, writeFailure } from "./errors.ts";
import { recordPath, sameVersion, saveRecord } from "./pieces.ts";
import {
  checksumMismatch,
  type DownloadOptions,
  type DownloadResult,
  FileJob,
  type Job,
} from "./plan.ts";
import { discard, Spool } from "./spool.ts";

/**
 * Files at least this large have the version they began from recorded beside their partial file,
 * so that a rerun can resume them. Keeping a record costs a write, a rename and a removal, as much
 * again as a small file's own writes; a smaller file's partial file is fetched again instead.
 */
const RECORD_MIN_BYTES = 1024 * 1024;

/**
 * Receives one whole answer (from the job's offset) into its temporary file, or stdout, through
 * `spool`. It returns once the answer is read; the file is finished (written, verified, renamed)
 * while the next answer comes in. A local failure (disk full, no permission) stops the writing but
 * not the reading: the rest of the answer is read and dropped, so the files after it on the
 * connection still arrive. Whatever arrived before the connection broke is written before the
 * error goes on, so a rerun resumes from there. A resumed file found changed (by a server that
 * cannot be asked its version first) is returned, to be fetched again from the start.
 */
export async function receiveWhole(
  client: FileClient,
  spool: Spool,
  job: Job,
  options: DownloadOptions,
): Promise<FileJob | undefined> {
  const file = job instanceof FileJob ? job : undefined;
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
        stale = file?.version !== undefined && file.offset > 0 &&
          !sameVersion(file.version, header);
        progress();
        try {
          if (file && !stale) out = await openWhole(file, header, hash);
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
    if (stale && file) return await fetchAfresh(file);
    job.settle(finishWhole(job, result, written, out, hash, digest));
  } catch (error) {
    if (began) failure ??= await spool.end();
    out?.close();
    return await wholeFailed(job, result, error);
  }
}

/**
 * What became of a whole answer that failed: a broken connection keeps a partial file that can be
 * resumed (and throws); a refusal is the file's outcome, and a resumed file now shorter than the
 * partial one is returned, to be fetched again from the start.
 */
async function wholeFailed(
  job: Job,
  result: DownloadResult,
  error: unknown,
): Promise<FileJob | undefined> {
  const file = job instanceof FileJob ? job : undefined;
  if (error instanceof ConnectionError && file) {
    if (file.recorded && file.offset + result.bytes > 0) throw partlySaved(error, job.name);
    await file.discard().catch(() => {}); // the broken connection matters more than this clean-up
  }
  if (!(error instanceof ServerError)) throw error;
  if (error.code === ErrorCode.BadRequest && file && file.offset > 0) {
    return await fetchAfresh(file);
  }
  // Keep a partial file only when the server stopped for a passing reason, to resume later.
  if (error.code !== ErrorCode.ShuttingDown) await file?.discard();
  job.settle({ ...result, error: error.message });
}

/** A resumed file changed on the server since: it is to be fetched again from the start. */
async function fetchAfresh(file: FileJob): Promise<FileJob> {
  await file.restart();
  return file;
}

/**
 * Opens a whole download's temporary file to write from the job's offset, nothing after it, its
 * version recorded beside it when the file is large enough to resume; and hashes the bytes there
 * before the offset.
 */
async function openWhole(
  file: FileJob,
  header: FileHeader,
  hash: Hasher | undefined,
): Promise<Deno.FsFile> {
  file.version = { size: header.size, mtimeMs: header.mtimeMs };
  const out = await file.open(file.offset, true);
  try {
    if (!file.recorded && header.size >= RECORD_MIN_BYTES) {
      await saveRecord(recordPath(file.part), file.version);
      file.recorded = true;
    }
    if (hash && file.offset > 0) await hashPrefix(file.part, file.offset, hash);
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
  const file = job instanceof FileJob ? job : undefined;
  const failure = await written;
  out?.close();
  if (failure !== undefined) {
    await file?.discardIfEmpty();
    return { ...result, error: writeFailure(failure, file?.target ?? "standard output") };
  }
  if (hash && !sameDigest(hash.digest(), digest)) {
    await file?.discard();
    return { ...result, error: checksumMismatch(job.offset > 0) };
  }
  return file ? await file.rename(result) : result;
}

/** Feeds `hash` the first `length` bytes of the file at `path`. */
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
