/**
 * The shared folder's rules: where a name that passes the name rules (checkName) lives on disk.
 * Nothing outside the folder can ever be read, not even through a symbolic link, and only regular
 * files are served.
 */

import { join } from "node:path";
import { BadNameError, checkName, quote } from "../shared/names.ts";
import { Front } from "./front.ts";
import { NotFoundError } from "./errors.ts";

/**
 * Resolves a name to an open-able regular file inside `root` (a real path from
 * {@link openRoot}). The name is checked with {@link checkName} first, so this is safe on its own.
 * Symbolic links are followed, but a name whose real path leaves the root, or reaches a hidden
 * file inside it, throws BadNameError. A missing name, or one that is a folder, device, FIFO or
 * socket, throws NotFoundError. The returned path is the real path, and `info` describes that
 * same path. It runs on every request, so it uses the synchronous calls: metadata lookups are
 * answered from the kernel's caches in microseconds, far less than a hop to a worker thread.
 */
export function resolveFile(root: string, name: string): Resolved {
  checkName(name);
  const path = missingAsNotFound(name, () => Deno.realPathSync(join(root, name)));
  const inside = root.endsWith("/") ? root : `${root}/`;
  if (path !== root && !path.startsWith(inside)) {
    throw new BadNameError(`${quote(name)} leads outside the data folder`);
  }
  const realName = path.slice(inside.length);
  if (realName.split("/").some((part) => part.startsWith("."))) {
    throw new BadNameError(`${quote(name)} leads to a hidden file; hidden files are private`);
  }
  // The real path has no link in it, unless one was put there since: lstat does not follow one,
  // so a link swapped in for the file now is refused here, not followed out of the folder.
  const info = missingAsNotFound(name, () => Deno.lstatSync(path));
  if (info.isDirectory) throw new NotFoundError(`${quote(name)} is a folder, not a file`);
  if (!info.isFile) throw new NotFoundError(`${quote(name)} is not a regular file`);
  return { path, realName, info };
}

/** Where a servable name lives. */
export interface Resolved {
  /** The file's real path. */
  path: string;
  /** Its name as the folder knows it, through any links: the same file, one name. */
  realName: string;
  /** What `stat` says of the real path. */
  info: Deno.FileInfo;
}

/** How many names a {@link DataFolder} remembers the real paths of. */
const REMEMBERED_NAMES = 10_000;

/** How a {@link DataFolder} checks names it has resolved before. */
export interface FolderOptions {
  /**
   * Milliseconds a name's check (one `stat`) stands for: within that long of the last check, a
   * name whose copy the caller holds is answered by it, so a file changed meanwhile is seen at most
   * this late. 0 (the default) checks every time.
   */
  revalidateMs?: number;
  /** The time now in milliseconds, which checks are timed by (default Date.now). */
  clock?: () => number;
}

/** A name the folder resolved, as it stood at its last check. */
interface Known extends Resolved {
  /** When the name was last checked (by the folder's clock). */
  checked: number;
}

/**
 * A shared folder that resolves names as {@link resolveFile} does, but cheaply on repeat: it
 * remembers each name's real path with the file's inode and device, and trusts the memory only
 * while one `stat` of the name still reaches that same inode on that same device. Anything that
 * swaps the file, or a folder on its path, for a link leading elsewhere reaches another inode,
 * so the full check runs again. Within `revalidateMs` of a name's last check, even that `stat`
 * is left out for a version the caller still holds: many requests for one cached file cost one.
 */
export class DataFolder {
  /** The folder's real path. */
  readonly root: string;
  readonly #revalidateMs: number;
  readonly #clock: () => number;
  readonly #known = new Map<string, Known>();
  readonly #oldest = new Front(() => this.#known.keys());
  /** Names found to be no file, by when (see resolveIfPresent). */
  readonly #absent = new Map<string, number>();
  readonly #oldestAbsent = new Front(() => this.#absent.keys());

  constructor(root: string, { revalidateMs = 0, clock = Date.now }: FolderOptions = {}) {
    this.root = root;
    this.#revalidateMs = revalidateMs;
    this.#clock = clock;
  }

  /**
   * Like {@link resolveFile}, with the same errors. Within `revalidateMs` of the name's last check
   * it answers from that check, unchecked, if `held` says the caller holds that version: a version
   * it does not hold would be read from disk, where the file may have changed since.
   */
  resolve(name: string, held: (known: Resolved) => boolean = () => false): Resolved {
    const known = this.#known.get(name);
    const now = this.#revalidateMs > 0 ? this.#clock() : 0;
    // Only names that passed checkName are known; a clock that went back checks again.
    const age = known ? now - known.checked : -1;
    if (age >= 0 && age < this.#revalidateMs && held(known!)) return known!;
    checkName(name);
    if (known) {
      const info = statOrUndefined(join(this.root, name));
      if (info?.isFile && info.ino === known.info.ino && info.dev === known.info.dev) {
        known.info = info;
        known.checked = now;
        return known;
      }
      this.#known.delete(name);
    }
    const resolved = resolveFile(this.root, name);
    if (resolved.info.ino !== null) {
      this.#known.set(name, { ...resolved, checked: now });
      if (this.#known.size > REMEMBERED_NAMES) this.#known.delete(this.#oldest.take());
    }
    return resolved;
  }

  /**
   * Like {@link resolve}, but undefined for a name that is no file, and that absence stands for
   * `revalidateMs`, as a check does: a name looked for on every request (the compressed siblings
   * of a text file, absent most of the time) is then looked for once an interval, where a failed
   * look costs more than the rest of a small answer. Other errors are thrown as resolve's.
   */
  resolveIfPresent(name: string, held?: (known: Resolved) => boolean): Resolved | undefined {
    const now = this.#revalidateMs > 0 ? this.#clock() : 0;
    const age = now - (this.#absent.get(name) ?? Infinity);
    if (age >= 0 && age < this.#revalidateMs) return undefined;
    try {
      const resolved = this.resolve(name, held);
      this.#absent.delete(name);
      return resolved;
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      this.#absent.set(name, now);
      if (this.#absent.size > REMEMBERED_NAMES) this.#absent.delete(this.#oldestAbsent.take());
      return undefined;
    }
  }
}

function statOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined; // resolveFile runs next and reports the failure properly
  }
}

/**
 * The data folder's real path, which {@link resolveFile} compares real paths against. Call once
 * at startup; throws an Error with a clear sentence if the folder is missing or not a folder.
 */
export async function openRoot(folder: string): Promise<string> {
  let root: string;
  try {
    root = await Deno.realPath(folder);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      throw new Error(`the data folder "${folder}" does not exist`, { cause: error });
    }
    throw error;
  }
  if (!(await Deno.stat(root)).isDirectory) {
    throw new Error(`the data folder "${folder}" is not a folder`);
  }
  return root;
}

/** File system errors that mean "no file by that name", whatever the exact reason. */
const MISSING = new Set(["ENOENT", "ENOTDIR", "ELOOP", "ENAMETOOLONG"]);

/** Makes a file system call about `name`, turning "no such file" errors into NotFoundError. */
function missingAsNotFound<T>(name: string, call: () => T): T {
  try {
    return call();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && MISSING.has(code)) {
      throw new NotFoundError(`no such file: ${quote(name)}`);
    }
    if (code === "EACCES") throw new NotFoundError(`${quote(name)} is not readable by the server`);
    throw error;
  }
}
