/**
 * Versions of a file on disk, and reading one version only. A version is known by its stamp (size,
 * times, inode, device): the server serves bytes only when the file it opened is the version it
 * checked, and only when the file is still that version once read to its end. Whoever can write
 * into the shared folder may swap a FIFO in for a file, or rewrite a file in place and put its
 * modification time back; neither may make the server hang or pass mixed bytes off as a file.
 */

import { close, constants, fstat, openSync, read } from "node:fs";
import { basename, dirname } from "node:path";
import { promisify } from "node:util";
import { createHasher, type DigestAlgorithm, sameDigest } from "../../shared/digest.ts";
import { ErrorCode, WireError } from "../../shared/errors.ts";
import { quote } from "../../shared/names.ts";
import type { HashBuffers } from "./hashing.ts";

/**
 * What identifies one version of a file: if any of these change, it is another version. The
 * change time (ctime) is there because no user can set it back: rewriting a file in place and
 * restoring its mtime with `touch -m -d` still moves its ctime.
 */
export interface Stamp {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

/** The stamp of the file `info` describes (from Deno's stat or node's: they agree). */
export function stampOf(
  info: { size: number; mtime: Date | null; ctime: Date | null; ino: number | null; dev: number },
): Stamp {
  return {
    size: info.size,
    mtimeMs: info.mtime?.getTime() ?? 0,
    ctimeMs: info.ctime?.getTime() ?? 0,
    ino: info.ino ?? 0,
    dev: info.dev,
  };
}

/**
 * True when two stamps describe the same version of a file.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { sameStamp } from "./version.ts";
 * const stamp = { size: 3, mtimeMs: 1000, ctimeMs: 2000, ino: 7, dev: 1 };
 * equal(sameStamp(stamp, { ...stamp }), true);
 * equal(sameStamp(stamp, { ...stamp, ctimeMs: 3000 }), false); // rewritten, mtime put back
 * ```
 */
export function sameStamp(a: Stamp, b: Stamp): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs &&
    a.ino === b.ino && a.dev === b.dev;
}

/** The error for a file that is not, or no longer, the version that was checked. */
export function changed(name: string): WireError {
  return new WireError(ErrorCode.Changed, `${quote(name)} changed on disk while it was being read`);
}

const readAt = promisify(read);
const statOf = promisify(fstat);
const closeFile = promisify(close);

/**
 * The word of shared memory that threads opening files take turns through (0: free, 1: taken):
 * the process has one working folder, which {@link openChecked} steps into. A thread has one of
 * its own until it is given the one every other thread of the process uses, by
 * {@link shareOpenLock}.
 */
let openLock = new Int32Array(new SharedArrayBuffer(4));

/**
 * The lock this thread takes turns through, for another thread's {@link shareOpenLock}.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { openLockOf } from "./version.ts";
 * equal(openLockOf().byteLength, 4);
 * ```
 */
export function openLockOf(): SharedArrayBuffer {
  return openLock.buffer as SharedArrayBuffer;
}

/** Has this thread open files in turn with the threads that share `lock` (from openLockOf). */
export function shareOpenLock(lock: SharedArrayBuffer): void {
  openLock = new Int32Array(lock);
}

/**
 * Opens the file at `path`, a real path already checked to lie inside the shared folder, so that
 * no link put anywhere on that path since the check is followed out of the folder: neither in
 * place of the file (O_NOFOLLOW) nor in place of a folder on the way. Deno has no openat(), so
 * the process steps into the file's folder (which follows links), asks the kernel where it now
 * is (getcwd reports the folder itself, whatever path led there), and opens the file relative to
 * it, then steps back. The steps are synchronous, so no other request of this thread runs between
 * them, and threads sharing the lock (shareOpenLock) take turns at them (a path relative to the
 * working folder that another thread resolves in that instant would go astray: the server opens
 * nothing else by a relative path). A non-blocking open, so that a FIFO swapped in opens at once
 * (and is refused by its stamp) rather than waiting for a writer while holding a thread. Returns
 * the descriptor; throws Changed when the path no longer leads where it did.
 */
function openChecked(path: string, name: string): number {
  const folder = dirname(path);
  while (Atomics.compareExchange(openLock, 0, 0, 1) !== 0) Atomics.wait(openLock, 0, 1);
  const home = workingFolder();
  try {
    Deno.chdir(folder);
    if (Deno.cwd() !== folder) throw changed(name);
    const flags = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW;
    return openSync(basename(path), flags);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ELOOP" || error instanceof Deno.errors.NotFound) throw changed(name);
    throw error;
  } finally {
    if (home !== undefined) Deno.chdir(home);
    Atomics.store(openLock, 0, 0);
    Atomics.notify(openLock, 0, 1);
  }
}

/** The process's working folder; undefined when it has been removed (there is no going back). */
function workingFolder(): string | undefined {
  try {
    return Deno.cwd();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * One version of a file, open for reading from its start. Reads go through the descriptor opened
 * and checked by {@link VersionFile.open}, so what is read is that file and no other.
 */
export class VersionFile implements AsyncDisposable {
  readonly #fd: number;
  readonly #stamp: Stamp;
  readonly #name: string;
  readonly #hashing: HashBuffers;
  readonly #started = Date.now();
  #position = 0;

  private constructor(fd: number, stamp: Stamp, name: string, hashing: HashBuffers) {
    this.#fd = fd;
    this.#stamp = stamp;
    this.#name = name;
    this.#hashing = hashing;
  }

  /**
   * Opens the file at `path` (a real path inside the shared folder), only if it is the regular
   * file `stamp` describes; throws Changed otherwise. It never blocks and never follows a link out
   * of the folder (see openChecked): a FIFO or a link swapped in is refused, as is anything else
   * that is not that version of the file. Should it have to be hashed again to be confirmed, that
   * draws on `hashing`.
   */
  static async open(
    path: string,
    stamp: Stamp,
    name: string,
    hashing: HashBuffers,
  ): Promise<VersionFile> {
    const fd = openChecked(path, name);
    try {
      const info = await statOf(fd);
      if (!info.isFile() || !sameStamp(stampOf(info), stamp)) throw changed(name);
      return new VersionFile(fd, stamp, name, hashing);
    } catch (error) {
      await closeFile(fd);
      throw error;
    }
  }

  /** Where the next read starts. */
  get position(): number {
    return this.#position;
  }

  /** Moves the next read to `position`. */
  seek(position: number): void {
    this.#position = position;
  }

  /** Reads into `buffer` from the current position: the bytes read, or null at the end. */
  async read(buffer: Uint8Array): Promise<number | null> {
    const { bytesRead } = await readAt(this.#fd, buffer, 0, buffer.length, this.#position);
    this.#position += bytesRead;
    return bytesRead === 0 && buffer.length > 0 ? null : bytesRead;
  }

  /**
   * Throws Changed unless the file, read to its end, is still the version it was opened as, with
   * `digest` as its digest by `algorithm`. Call it before the last bytes are handed out, so that a
   * changed file never reaches anyone whole.
   *
   * The runtime gives a file's ctime to the second, so a file changed in the same second as its
   * read began could keep the stamp it had: then it is read and hashed once more (through a
   * buffer of the hashing pool, once one is free), and must give the same digest (the way git
   * treats "racily clean" files). Files changed a second or more before their read, nearly all of
   * them, cost nothing more. Call it holding no buffer of that pool, or it may wait for itself.
   */
  async confirm(algorithm: DigestAlgorithm, digest: Uint8Array): Promise<void> {
    const stamp = this.#stamp;
    const end = stamp.size;
    const { bytesRead } = await readAt(this.#fd, new Uint8Array(1), 0, 1, end);
    if (bytesRead !== 0 || !sameStamp(stampOf(await statOf(this.#fd)), stamp)) {
      throw changed(this.#name);
    }
    if (stamp.ctimeMs + CTIME_RESOLUTION_MS <= this.#started) return;
    const again = await this.#hashing.use((buffer) => this.hash(algorithm, buffer));
    if (!sameDigest(again, digest)) throw changed(this.#name);
  }

  /** The digest of the whole file by `algorithm`, read from its start through `buffer`. */
  async hash(algorithm: DigestAlgorithm, buffer: Uint8Array): Promise<Uint8Array> {
    const hash = await createHasher(algorithm);
    for (let at = 0; at < this.#stamp.size;) {
      const room = Math.min(buffer.length, this.#stamp.size - at);
      const { bytesRead } = await readAt(this.#fd, buffer, 0, room, at);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
    return hash.digest();
  }

  /**
   * Whether its stamp tells this version from any later one: true when the file was last modified
   * at least MTIME_GRAIN_MS before its read began. The runtime gives the mtime in milliseconds,
   * and a rewrite of the same size within the same millisecond (most quick rewrites of a small
   * file) leaves the stamp as it was; so whatever stands for an unsettled version by its stamp (a
   * cache entry, a remembered digest) must not be kept. A writer who puts the mtime back on
   * purpose is not caught by this: the ctime, which would catch it, is given only to the second.
   */
  get settled(): boolean {
    return this.#stamp.mtimeMs + MTIME_GRAIN_MS <= this.#started;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return closeFile(this.#fd);
  }
}

/** How finely the runtime reports ctime, with a little room for the kernel's coarse clock. */
const CTIME_RESOLUTION_MS = 1100;
/**
 * How long after a version's mtime a later write may still be given the same mtime in
 * milliseconds: the kernel stamps writes from a clock that moves once a tick (at most 10 ms), so
 * two ticks.
 */
const MTIME_GRAIN_MS = 20;
