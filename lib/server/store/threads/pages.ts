/**
 * Pages of the arenas that hold the files of the cache shared by threads: which are free, which
 * are taken. Arenas are made only as pages are first needed and are never given back, so the
 * memory the cache maps can never exceed the pages of its capacity, whatever the garbage
 * collectors of the threads that see it do. A file takes whole pages, in one run when a free run
 * is long enough, else in a few runs, the longest first.
 */

/** Runs of pages, flattened: the first page and the count of each run, in order. */
export type Runs = number[];

/** The free and taken pages of `totalPages` pages in arenas of `arenaPages` each (the last may be shorter). */
export class Pages {
  readonly totalPages: number;
  readonly arenaPages: number;
  readonly #onArena: (pages: number) => void;
  #arenas = 0;
  /** Free pages in the arenas made. */
  #free = 0;
  /** Free runs, by first page: their length. */
  readonly #byStart = new Map<number, number>();
  /** Free runs, by the page after their last: their first page. */
  readonly #byEnd = new Map<number, number>();
  /**
   * First pages of free runs, by the power of two their length is at least (and less than
   * twice), the latest freed last. A run taken or joined with another stays here until it comes
   * to the top and is found gone, or the stack is swept: so taking and giving are O(1) amortised.
   */
  readonly #byLength: number[][] = [];

  /** Pages with `onArena` called as each arena is first needed, with its count of pages. */
  constructor(totalPages: number, arenaPages: number, onArena: (pages: number) => void) {
    this.totalPages = totalPages;
    this.arenaPages = arenaPages;
    this.#onArena = onArena;
  }

  /** Arenas made so far. */
  get arenas(): number {
    return this.#arenas;
  }

  /** Pages taken. */
  get taken(): number {
    return Math.min(this.#arenas * this.arenaPages, this.totalPages) - this.#free;
  }

  /**
   * Takes `count` pages: one run if a free one is long enough, else the longest free runs until
   * there are enough, else a new arena. Throws if fewer than `count` pages are left at all.
   * @example
   * ```ts
   * import { deepEqual } from "node:assert/strict";
   * import { Pages } from "./pages.ts";
   * const pages = new Pages(8, 4, () => {});
   * const a = pages.take(3);
   * deepEqual(a, [0, 3]);
   * deepEqual(pages.take(2), [4, 2]); // page 3 is too short a run: a second arena
   * pages.give(a);
   * deepEqual(pages.take(5), [0, 4, 6, 1]); // no run of 5 is free: the longest, then the next
   * ```
   */
  take(count: number): Runs {
    if (count > this.totalPages - this.taken) {
      throw new RangeError(`${count} pages asked for, ${this.totalPages - this.taken} free`);
    }
    for (;;) {
      const start = this.#fit(count);
      if (start !== undefined) return this.#cut(start, count);
      if (this.#free >= count) return this.#gather(count);
      this.#open();
    }
  }

  /** Gives back the pages of `runs`, joining each run with the free runs beside it. */
  give(runs: Runs): void {
    for (let i = 0; i < runs.length; i += 2) {
      let [start, count] = [runs[i], runs[i + 1]];
      this.#free += count;
      const before = this.#byEnd.get(start);
      if (before !== undefined && this.#arena(before) === this.#arena(start)) {
        count += start - before;
        start = before;
        this.#remove(before);
      }
      const after = start + count;
      const next = this.#byStart.get(after);
      if (next !== undefined && this.#arena(after) === this.#arena(start)) {
        count += next;
        this.#remove(after);
      }
      this.#add(start, count);
    }
  }

  /**
   * The first page of a free run of at least `count` pages: of the shortest length class that
   * surely fits, or one of the few latest runs of the class below that happens to.
   */
  #fit(count: number): number | undefined {
    const floor = lengthClass(count);
    for (let k = floor + 1; k < this.#byLength.length; k++) {
      const start = this.#top(k);
      if (start !== undefined) return start;
    }
    const stack = this.#byLength[floor] ?? [];
    for (let i = stack.length - 1; i >= Math.max(0, stack.length - FIT_TRIES); i--) {
      const length = this.#byStart.get(stack[i]);
      if (length !== undefined && length >= count && lengthClass(length) === floor) return stack[i];
    }
    return undefined;
  }

  /** `count` pages from the longest free runs. */
  #gather(count: number): Runs {
    const runs: Runs = [];
    for (let k = this.#byLength.length - 1; count > 0; k--) {
      for (let start = this.#top(k); start !== undefined && count > 0; start = this.#top(k)) {
        const taken = Math.min(count, this.#byStart.get(start)!);
        runs.push(...this.#cut(start, taken));
        count -= taken;
      }
    }
    return runs;
  }

  /** The latest free run of length class `k`, dropping the runs above it that are gone. */
  #top(k: number): number | undefined {
    const stack = this.#byLength[k];
    while (stack?.length) {
      const start = stack[stack.length - 1];
      const length = this.#byStart.get(start);
      if (length !== undefined && lengthClass(length) === k) return start;
      stack.pop();
    }
    return undefined;
  }

  /** Takes the first `count` pages of the free run at `start`. */
  #cut(start: number, count: number): Runs {
    const length = this.#byStart.get(start)!;
    this.#remove(start);
    if (length > count) this.#add(start + count, length - count);
    this.#free -= count;
    return [start, count];
  }

  #open(): void {
    const start = this.#arenas * this.arenaPages;
    const count = Math.min(this.arenaPages, this.totalPages - start);
    this.#arenas++;
    this.#onArena(count);
    this.#free += count;
    this.#add(start, count);
  }

  #arena(page: number): number {
    return Math.floor(page / this.arenaPages);
  }

  #add(start: number, count: number): void {
    this.#byStart.set(start, count);
    this.#byEnd.set(start + count, start);
    const k = lengthClass(count);
    const stack = this.#byLength[k] ??= [];
    stack.push(start);
    // Runs gone that no take came to would pile up: past twice the runs there are, sweep them.
    if (stack.length > 2 * this.#byStart.size + 16) {
      this.#byLength[k] = stack.filter((page) => {
        const length = this.#byStart.get(page);
        return length !== undefined && lengthClass(length) === k;
      });
    }
  }

  #remove(start: number): void {
    this.#byEnd.delete(start + this.#byStart.get(start)!);
    this.#byStart.delete(start);
  }
}

/** How many of the latest runs too short to surely fit are tried before a file is split. */
const FIT_TRIES = 8;

/** The power of two `count` is at least and less than twice. */
function lengthClass(count: number): number {
  return 31 - Math.clz32(count);
}
