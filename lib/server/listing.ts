/**
 * The shared folder read as lists, as they are sent: the whole tree for `list`, one folder for its
 * page. Entries come in the order the disk gives them, as `find` lists them, a batch at a time: a
 * walk holds one open folder per level of depth and one batch of entries, never a whole folder,
 * however many files it has. Each file costs the operations it costs `find`: its entry, read from
 * its folder a few at a time (Deno.readDir, one operation of the runtime's per entry), and one
 * lstat, made synchronously (answered from the kernel's caches in microseconds, where an
 * asynchronous one costs a hop to a worker thread: 3.4 s for 100,000 files against 0.4 s). The
 * work is cut into slices of SLICE_MS, with other work let run between them, so a walk of any size
 * holds up a small request by about a slice; and only so many walks run at once (ListingTurns).
 */

import { setImmediate } from "node:timers";
import { checkName, MAX_NAME_BYTES } from "../shared/names.ts";
import type { ListEntry } from "../shared/protocol.ts";
import { resolveFile } from "./folder.ts";

/**
 * A servable file as the folder alone knows it: a list entry but for whether it is cached, with
 * its real name (where a link leads; the name itself for anything else).
 */
export type FolderEntry = Omit<ListEntry, "cached"> & { realName: string };

/** A sub-folder, as its folder's page shows it: its name within that folder, and when it changed. */
export interface SubFolder {
  folder: string;
  mtimeMs: number;
}

/** The most entries a batch holds. */
const BATCH_ENTRIES = 256;
/** How long a batch may gather before it leaves, however few entries it has (a slow disk). */
const BATCH_MS = 50;
/**
 * How long a walk works before it lets other work run. A turn of the event loop costs about 3 µs
 * (setImmediate; a timer would cost a millisecond), so slices this short cost the walk little.
 */
const SLICE_MS = 0.5;

/** How many listings run at once by default (see ListingTurns). */
export const DEFAULT_MAX_LISTINGS = 4;

/**
 * The walks that may run at once: one beyond the bound waits its turn, so that however many
 * clients ask for lists, the memory the walks hold (an open folder per level, a batch) and the
 * time they take from other work stay bounded. Turns are given in the order they were asked for.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ListingTurns } from "./listing.ts";
 * const turns = new ListingTurns(1);
 * const first = await turns.take();
 * let second = false;
 * const waiting = turns.take().then((turn) => (second = true, turn));
 * await Promise.resolve();
 * equal(second, false); // waits while the first walk runs
 * first[Symbol.dispose]();
 * (await waiting)[Symbol.dispose]();
 * equal(second, true);
 * ```
 */
export class ListingTurns {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  /** Turns for `count` walks at once. */
  constructor(count: number) {
    this.#free = count;
  }

  /** A turn, once one is free; disposing of it gives it to the next walk waiting. */
  async take(): Promise<Disposable> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let given = false;
    return {
      [Symbol.dispose]: () => {
        if (given) return;
        given = true;
        const next = this.#waiting.shift();
        if (next) next();
        else this.#free++;
      },
    };
  }
}

/** Lets other work run, one turn of the event loop, once the slice begun at `since` is over. */
async function pace(since: { at: number }): Promise<void> {
  if (performance.now() - since.at < SLICE_MS) return;
  await new Promise((resolve) => setImmediate(resolve));
  since.at = performance.now();
}

/**
 * Entries gathered to leave together: at most BATCH_ENTRIES of them, or what came within BATCH_MS
 * of the first, so that a few entries found slowly are not kept waiting for more.
 */
export class Batch<T> {
  #items: T[] = [];
  #since = 0;

  /** Adds `item`; true when the batch is due to leave. */
  add(item: T): boolean {
    if (this.#items.length === 0) this.#since = performance.now();
    this.#items.push(item);
    return this.#items.length >= BATCH_ENTRIES || performance.now() - this.#since >= BATCH_MS;
  }

  /** The entries gathered, leaving the batch empty. */
  take(): T[] {
    const items = this.#items;
    this.#items = [];
    return items;
  }

  /** How many entries are gathered. */
  get size(): number {
    return this.#items.length;
  }
}

/**
 * The walk of the data folder (a real path from openRoot) behind `list`: every servable regular
 * file with its relative name, in batches, depth-first, each folder in the order the disk gives.
 * Exactly the names that {@link resolveFile} would serve, except those reached through a
 * symbolically linked folder, which is never descended (so no loops), and those in folders more
 * than `maxDepth` levels below the data folder, which are not walked (each level holds a folder
 * open) but counted in {@link deeper}. Hidden names and names {@link checkName} refuses are left
 * out; a symbolic link is listed only when its target stays inside the root and is a regular
 * file. A sub-folder that cannot be read is skipped; the data folder itself throws.
 */
export class TreeWalk implements AsyncIterable<FolderEntry[]> {
  readonly #root: string;
  readonly #maxDepth: number;
  readonly #turns: ListingTurns;
  #deeper = 0;

  readonly #prefix: string;

  /**
   * The walk of `root`, at most `maxDepth` levels deep, run in one of `turns`; of its folder
   * `prefix` alone when given (a name ending in "/", checked to be a folder the walk would enter).
   */
  constructor(root: string, maxDepth: number, turns: ListingTurns, prefix = "") {
    this.#root = root;
    this.#maxDepth = maxDepth;
    this.#turns = turns;
    this.#prefix = prefix;
  }

  /** How many folders the walk found too deep to enter, so far. */
  get deeper(): number {
    return this.#deeper;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<FolderEntry[]> {
    using _turn = await this.#turns.take();
    const prefix = this.#prefix;
    const start = prefix === "" ? this.#root : `${this.#root}/${prefix.slice(0, -1)}`;
    const open = [await OpenFolder.open(start, prefix)];
    const batch = new Batch<FolderEntry>();
    const slice = { at: performance.now() };
    try {
      while (open.length > 0) {
        await pace(slice);
        const folder = open[open.length - 1];
        const entry = await folder.next(open.length > 1);
        if (entry === undefined) {
          open.pop();
          continue;
        }
        const name = folder.prefix + entry.name;
        if (!servableIn(folder.prefix, entry.name)) continue;
        if (entry.isDirectory) {
          const inner = await this.#enter(name, open.length);
          if (inner) open.push(inner);
          continue;
        }
        const file = lookup(this.#root, name, entry.isSymlink);
        if (file && batch.add(file)) yield batch.take();
      }
      if (batch.size > 0) yield batch.take();
    } finally {
      // A consumer that stops early leaves no folder open behind it.
      for (const folder of open) await folder.close();
    }
  }

  /**
   * The sub-folder `name`, `depth` levels below the data folder, opened; undefined when it is too
   * deep (counted) or cannot be read (skipped, as `find` goes on past a folder it cannot read).
   */
  async #enter(name: string, depth: number): Promise<OpenFolder | undefined> {
    if (depth > this.#maxDepth) {
      this.#deeper++;
      return undefined;
    }
    return await OpenFolder.open(`${this.#root}/${name}`, `${name}/`).catch(() => undefined);
  }
}

/**
 * The servable files and sub-folders directly inside the folder `prefix` ("" for the root, else a
 * name ending in "/"), in batches, in the order the disk gives: what a folder's page shows.
 * Undefined when `prefix` is not a folder the walk would enter (missing, hidden, reached through a
 * link) or cannot be read. Nothing is held open until the batches are read.
 */
export async function readFolder(
  root: string,
  prefix: string,
  turns: ListingTurns,
): Promise<AsyncGenerator<(FolderEntry | SubFolder)[]> | undefined> {
  if (prefix !== "" && (!prefix.endsWith("/") || !servable(prefix.slice(0, -1)))) return undefined;
  const path = prefix === "" ? root : `${root}/${prefix.slice(0, -1)}`;
  try {
    if (await Deno.realPath(path) !== path) return undefined;
    // Opened once to know it can be read: a folder that cannot is none to show.
    await (await OpenFolder.open(path, prefix)).close();
  } catch {
    return undefined; // missing, not a folder, or unreadable: no such folder to show
  }
  return folderItems(root, path, prefix, turns);
}

/** The entries of the folder at `path` (named `prefix`), as {@link readFolder} gives them. */
async function* folderItems(
  root: string,
  path: string,
  prefix: string,
  turns: ListingTurns,
): AsyncGenerator<(FolderEntry | SubFolder)[]> {
  using _turn = await turns.take();
  const folder = await OpenFolder.open(path, prefix);
  const batch = new Batch<FolderEntry | SubFolder>();
  const slice = { at: performance.now() };
  try {
    for (let entry; (entry = await folder.next(false)) !== undefined; await pace(slice)) {
      const name = prefix + entry.name;
      if (!servableIn(prefix, entry.name)) continue;
      const item = entry.isDirectory
        ? subFolder(`${path}/${entry.name}`, entry.name)
        : lookup(root, name, entry.isSymlink);
      if (item && batch.add(item)) yield batch.take();
    }
    if (batch.size > 0) yield batch.take();
  } finally {
    await folder.close();
  }
}

/**
 * Folders whose directory file is at most this large are read whole, in one call: about a
 * thousand entries of short names at most (a directory's size grows with its names on every common
 * file system), read in about the time of one slice (0.6 ms here), at a quarter of the cost of
 * reading them one runtime operation at a time. Larger ones are read as they go, so a folder of a
 * million files is never held whole, nor holds the thread long.
 */
const WHOLE_FOLDER_BYTES = 48 * 1024;

/**
 * A folder open for reading, its entries one by one; the first is read as it opens, so a folder
 * that cannot be read fails to open.
 */
class OpenFolder {
  /** The folder's name within the data folder: "" for the root, else ending in "/". */
  readonly prefix: string;
  readonly #entries: Iterator<Deno.DirEntry> | AsyncIterator<Deno.DirEntry>;
  #first: IteratorResult<Deno.DirEntry> | undefined;

  private constructor(
    prefix: string,
    entries: Iterator<Deno.DirEntry> | AsyncIterator<Deno.DirEntry>,
  ) {
    this.prefix = prefix;
    this.#entries = entries;
  }

  /** Opens the folder at `path`, named `prefix`; throws when it cannot be read. */
  static async open(path: string, prefix: string): Promise<OpenFolder> {
    const small = Deno.statSync(path).size <= WHOLE_FOLDER_BYTES;
    const entries = small
      ? Deno.readDirSync(path)[Symbol.iterator]()
      : Deno.readDir(path)[Symbol.asyncIterator]();
    const folder = new OpenFolder(prefix, entries);
    folder.#first = await folder.#entries.next();
    return folder;
  }

  /**
   * The next entry, or undefined after the last. A read that fails part-way ends the folder when
   * `skippable` (a sub-folder, whose trouble does not stop the walk), and throws otherwise.
   */
  async next(skippable: boolean): Promise<Deno.DirEntry | undefined> {
    const first = this.#first;
    this.#first = undefined;
    try {
      const result = first ?? await this.#entries.next();
      return result.done ? undefined : result.value;
    } catch (error) {
      if (skippable) return undefined;
      throw error;
    }
  }

  /** Closes the folder, unless its last entry has closed it already. */
  async close(): Promise<void> {
    await this.#entries.return?.();
  }
}

/**
 * The sub-folder `name` at `path`, with its time from one lstat (synchronous, as lookup's);
 * undefined when it is gone or can no longer be examined, and so is not listed, as a file would not
 * be.
 */
function subFolder(path: string, name: string): SubFolder | undefined {
  let info;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return undefined; // gone since its folder was read: nothing to list
  }
  return { folder: name, mtimeMs: info.mtime?.getTime() ?? 0 };
}

/** Printable ASCII without "/" or "\\", not starting with ".": a name part checkName passes. */
const PLAIN_PART = /^[ -\-0-\[\]-~][ -.0-\[\]-~]*$/;

/** Printable ASCII without "\\": a servable folder's name and its "/"s. */
const PLAIN_PATH = /^[ -\[\]-~]*$/;

/**
 * True when the entry `part` of the servable folder `prefix` passes {@link checkName}: told by
 * two tests for names of plain ASCII (most of them; checkName costs as much as a third of a
 * file's lstat), checked whole otherwise.
 */
function servableIn(prefix: string, part: string): boolean {
  const plain = PLAIN_PART.test(part) && PLAIN_PATH.test(prefix) &&
    prefix.length + part.length <= MAX_NAME_BYTES;
  return plain || servable(prefix + part);
}

/** True when `name` passes {@link checkName}. */
function servable(name: string): boolean {
  try {
    checkName(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * The entry for `name` if it is a regular file that may be served, else undefined. Never throws:
 * a file that vanished or cannot be examined is simply not listed. A plain entry's path is already
 * its real path (the walk never follows links), so one lstat suffices; a symbolic link goes
 * through {@link resolveFile}, with all its checks. Synchronous: an lstat is answered from the
 * kernel's caches in microseconds, where an asynchronous one costs a hop to a worker thread.
 */
function lookup(root: string, name: string, isSymlink: boolean): FolderEntry | undefined {
  try {
    const { info, realName } = isSymlink
      ? resolveFile(root, name)
      : { info: Deno.lstatSync(`${root}/${name}`), realName: name };
    if (!info.isFile) return undefined;
    return { name, size: info.size, mtimeMs: info.mtime?.getTime() ?? 0, realName };
  } catch {
    return undefined;
  }
}

/**
 * How many entries folder pages may hold at once to sort them, between them, by default: a page
 * holds each entry in about 200 bytes while it sorts, so about 10 MiB.
 */
export const DEFAULT_SORT_LIMIT = 50_000;

/**
 * Room for the entries that lists being sorted hold at once, between them. Sorting needs a folder
 * whole, so what sorting may hold is bounded here, whatever the size of the folders asked for.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { SortBudget } from "./listing.ts";
 * const budget = new SortBudget(10);
 * equal(budget.take(8), true);
 * equal(budget.take(4), false); // more than is free: nothing taken
 * budget.give(8);
 * equal(budget.take(10), true);
 * ```
 */
export class SortBudget {
  #free: number;

  /** A budget of `entries` entries. */
  constructor(entries: number) {
    this.#free = entries;
  }

  /** Takes room for `entries` entries: false, taking none, when that much is not free. */
  take(entries: number): boolean {
    if (entries > this.#free) return false;
    this.#free -= entries;
    return true;
  }

  /** Gives back room for `entries` entries. */
  give(entries: number): void {
    this.#free += entries;
  }
}

/** A batch of a list that may be sorted: its entries, and whether the whole list is sorted. */
export interface OrderedBatch<T> {
  sorted: boolean;
  entries: T[];
}

/**
 * The entries of `source`, sorted by `compare` when they all fit in `budget`; else unsorted. The
 * source is read into memory while the budget has room for each batch, each batch sorted as it
 * comes: when the source ends first, the batches are merged a batch at a time (no step sorts more
 * than one batch, however long the list); when the budget runs out first, the batches read so far
 * leave, then the rest of the source as it comes. The room taken is given back once the last
 * sorted batch is sent, or once the source has outgrown the budget. At least one batch is yielded
 * (an empty one for an empty source), so that the first says whether the list is sorted.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { SortBudget, sortedWithin } from "./listing.ts";
 * async function* source() { yield [3, 1]; yield [2]; }
 * const compare = (a: number, b: number) => a - b;
 * const sorted = await Array.fromAsync(sortedWithin(source(), new SortBudget(3), compare));
 * deepEqual(sorted, [{ sorted: true, entries: [1, 2, 3] }]);
 * const unsorted = await Array.fromAsync(sortedWithin(source(), new SortBudget(2), compare));
 * deepEqual(unsorted, [{ sorted: false, entries: [1, 3] }, { sorted: false, entries: [2] }]);
 * ```
 */
export async function* sortedWithin<T>(
  source: AsyncIterable<T[]>,
  budget: SortBudget,
  compare: (a: T, b: T) => number,
): AsyncGenerator<OrderedBatch<T>> {
  const batches = source[Symbol.asyncIterator]();
  const runs: T[][] = [];
  let taken = 0;
  try {
    for (let next = await batches.next(); !next.done; next = await batches.next()) {
      if (!budget.take(next.value.length)) {
        for (const entries of runs.splice(0)) yield { sorted: false, entries };
        budget.give(taken);
        taken = 0;
        yield { sorted: false, entries: next.value };
        for (let rest = await batches.next(); !rest.done; rest = await batches.next()) {
          yield { sorted: false, entries: rest.value };
        }
        return;
      }
      taken += next.value.length;
      runs.push(next.value.sort(compare));
    }
    for (const entries of merged(runs, compare)) yield { sorted: true, entries };
  } finally {
    budget.give(taken);
    await batches.return?.();
  }
}

/**
 * `runs`, each sorted by `compare`, merged into one order through a heap of the runs' heads,
 * BATCH_ENTRIES entries at a time; at least one batch, empty when every run is.
 */
function* merged<T>(runs: T[][], compare: (a: T, b: T) => number): Generator<T[]> {
  const at = runs.map(() => 0);
  const before = (a: number, b: number) => compare(runs[a][at[a]], runs[b][at[b]]) < 0;
  const heap = runs.flatMap((run, i) => run.length > 0 ? [i] : []);
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) sink(heap, i, before);
  let batch: T[] = [];
  while (heap.length > 0) {
    const run = heap[0];
    batch.push(runs[run][at[run]++]);
    if (at[run] === runs[run].length) {
      const last = heap.pop()!;
      if (heap.length > 0) heap[0] = last;
    }
    sink(heap, 0, before);
    if (batch.length === BATCH_ENTRIES && heap.length > 0) {
      yield batch;
      batch = [];
    }
  }
  yield batch;
}

/** Moves the heap's entry at `i` down to its place, `before` saying which entry comes first. */
function sink(heap: number[], i: number, before: (a: number, b: number) => boolean): void {
  for (;;) {
    const left = 2 * i + 1;
    let first = i;
    if (left < heap.length && before(heap[left], heap[first])) first = left;
    if (left + 1 < heap.length && before(heap[left + 1], heap[first])) first = left + 1;
    if (first === i) return;
    [heap[i], heap[first]] = [heap[first], heap[i]];
    i = first;
  }
}
