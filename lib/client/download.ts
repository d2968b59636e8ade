/**
 * Saving files from the server: every download goes to a hidden temporary name beside its target
 * and is renamed only once complete and its digest matches the server's. A temporary file
 * left by an interrupted download is resumed from where it stopped. Names are checked with the
 * server's own rules, so nothing is ever written outside the output folder.
 */

import { basename, dirname, join } from "node:path";
import { createHasher, type Hasher, sameDigest } from "../shared/digest.ts";
import { ErrorCode } from "../shared/errors.ts";
import type { Writer } from "../shared/io.ts";
import { checkName } from "../shared/names.ts";
import type { FileHeader } from "../shared/protocol.ts";
import { FileClient } from "./client.ts";
import { ConnectionError, ServerError, writeFailure } from "./errors.ts";
import { Spool } from "./spool.ts";

/** How files are saved. */
export interface DownloadOptions {
  /** The output folder, or "-" for standard output. */
  output: string;
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
  /** Why it failed, in one sentence, when it did. */
  error?: string;
}

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

/**
 * Downloads `names` over one connection: all requests are sent at once, and each answer is saved
 * as it arrives and yielded as soon as it is done, in order. Throws ConnectionError if the
 * connection breaks (a temporary file is kept so that running the same command again resumes).
 */
export async function* downloadFiles(
  client: FileClient,
  names: string[],
  options: DownloadOptions,
): AsyncGenerator<DownloadResult> {
  // A name given twice is fetched once: two downloads into one temporary file would collide.
  const unique = [...new Set(names)];
  const plans = await Promise.all(unique.map((name) => plan(name, options.output)));
  const requests = plans.filter((p) => p.error === undefined).map((p) =>
    client.get(p.name, p.offset)
  );
  if (requests.length > 0) await client.send(...requests);
  const spool = new Spool();
  for (const p of plans) {
    if (p.error !== undefined) yield { name: p.name, bytes: 0, resumedFrom: 0, error: p.error };
    else yield await receive(client, spool, p, options);
  }
}

interface Plan {
  name: string;
  target?: string;
  offset: number;
  error?: string;
}

async function plan(name: string, output: string): Promise<Plan> {
  try {
    checkName(name);
  } catch (error) {
    return { name, offset: 0, error: (error as Error).message };
  }
  if (output === "-") return { name, offset: 0 };
  const target = join(output, name);
  let offset = 0;
  try {
    offset = (await Deno.stat(partialPath(target))).size;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      return { name, offset: 0, error: writeFailure(error, target) };
    }
  }
  return { name, target, offset };
}

/** Where the body of an answer that cannot be saved goes. */
const discard: Writer = { write: (bytes) => Promise.resolve(bytes.length) };

/** Why a resumed download failed its check, and what was done about it. */
const CHANGED_SINCE = "the file changed on the server since the interrupted download; " +
  "deleted the partial download, run again to start afresh";

/**
 * Receives one answer into its temporary file (or stdout) through `spool`, verifies and renames
 * it. A local failure (disk full, no permission) stops the writing but not the reading: the rest of
 * the answer is read and dropped, so the files after it on the connection still arrive. Whatever
 * arrived before the connection broke is written before the error goes on, so a rerun resumes
 * from there.
 */
async function receive(
  client: FileClient,
  spool: Spool,
  p: Plan,
  options: DownloadOptions,
): Promise<DownloadResult> {
  const result: DownloadResult = { name: p.name, bytes: 0, resumedFrom: p.offset };
  const part = p.target === undefined ? undefined : partialPath(p.target);
  const hash = options.verify ? await createHasher(client.digest) : undefined;
  let out: Deno.FsFile | undefined;
  let spooling = false;
  let failure: unknown;
  let total = 0;
  /** Waits for the writes, closes the file, and tells of the first write failure. */
  const settle = async () => {
    if (spooling) failure ??= await spool.end();
    spooling = false;
    out?.close();
    out = undefined;
  };
  try {
    const digest = await client.readFile({
      async header(header: FileHeader) {
        total = header.size;
        options.progress?.(p.name, p.offset, total);
        try {
          if (part !== undefined) {
            await Deno.mkdir(dirname(part), { recursive: true });
            out = await Deno.open(part, { write: true, create: true, append: true });
            if (hash && p.offset > 0) await hashPrefix(part, p.offset, hash);
          }
        } catch (error) {
          failure = error;
        }
        // After a failure the body is still read, to the end of the answer, and dropped.
        spool.begin({ sink: failure === undefined ? out ?? Deno.stdout : discard, hasher: hash });
        spooling = true;
      },
      async data(chunk: Uint8Array) {
        result.bytes += chunk.length;
        await spool.push(chunk);
        options.progress?.(p.name, p.offset + result.bytes, total);
      },
      room: () => spool.room(),
    }, p.offset);
    await settle();
    if (failure !== undefined) {
      if (part !== undefined) await removeIfEmpty(part);
      result.error = writeFailure(failure, p.target ?? "standard output");
      return result;
    }
    if (hash && !sameDigest(hash.digest(), digest)) {
      if (part !== undefined) await removeQuietly(part);
      result.error = p.offset > 0
        ? `checksum mismatch: ${CHANGED_SINCE}`
        : "checksum mismatch: the bytes received differ from the server's file; not saved";
      return result;
    }
    if (part !== undefined && p.target !== undefined) {
      try {
        await Deno.rename(part, p.target);
      } catch (error) {
        result.error = writeFailure(error, p.target);
        return result;
      }
      result.path = p.target;
    }
    return result;
  } catch (error) {
    await settle();
    if (error instanceof ConnectionError && part !== undefined) {
      if (p.offset + result.bytes > 0) {
        throw new ConnectionError(
          `${error.message}; ${p.name} is partly saved: run the same command again to resume`,
          { cause: error },
        );
      }
      await removeIfEmpty(part);
    }
    if (!(error instanceof ServerError)) throw error;
    // Keep a partial file only when the server stopped for a passing reason, to resume later.
    const passing = error.code === ErrorCode.ShuttingDown;
    if (part !== undefined && !passing) await removeQuietly(part);
    result.error = error.code === ErrorCode.BadRequest && p.offset > 0
      ? `${error.message}: ${CHANGED_SINCE}`
      : error.message;
    return result;
  }
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
