/**
 * The cache shared by threads, as a worker sees it. A mirror of the cached entries, kept by the
 * coordinator's news, lets a hit go without a word to the coordinator: take the hold in the
 * entry's slot (which fails if the entry is gone, or its slot now has another), send from the
 * arenas, let go. Hits and releases are told to the coordinator once a turn; a miss asks it, and
 * is answered with a hit (news of it was on its way), a load to join, memory to load into, or
 * nothing (stream from disk).
 */

import type { CacheView } from "../../cache/cache.ts";
import type { CacheBackend, Found } from "../backend.ts";
import type { Held, Pieces, Progress } from "../load.ts";
import { sameStamp, shareOpenLock, type Stamp } from "../version.ts";
import {
  type Answer,
  type Hello,
  type Listed,
  PAGE_BYTES,
  type Port,
  type ToWorker,
  type Turn,
} from "./messages.ts";
import type { Runs } from "./pages.ts";
import { liveTag, Slots } from "./slots.ts";
import { figuresView } from "./view.ts";

/** A cached entry as this worker knows it. */
interface Mirrored {
  stamp: Stamp;
  slot: number;
  generation: number;
  /** Its generation as the hold word has it while it is live (liveTag). */
  live: bigint;
  pieces: Pieces;
  progress: Progress;
}

/** A worker's side of the cache shared by threads. */
export class SharedCache implements CacheBackend {
  readonly view: CacheView<string>;
  readonly #port: Port;
  readonly #slots: Slots;
  readonly #ledger: Int32Array<SharedArrayBuffer>;
  readonly #arenaPages: number;
  readonly #arenas: SharedArrayBuffer[];
  readonly #mirror = new Map<string, Mirrored>();
  /** The progress of the loads this worker makes, by slot: its readers here share it. */
  readonly #loading = new Map<number, Progress>();
  /** Answers awaited (to misses and flushes), by the number they were asked under. */
  readonly #asked = new Map<number, (message: ToWorker) => void>();
  #nextAsk = 0;
  /** What this turn saw, to be told at its end. */
  #turn: Turn | undefined;

  /**
   * Joins the cache whose coordinator is at the other end of `port` (CacheCoordinator.attach),
   * once it has said hello. From then on this thread opens files in turn with the coordinator's
   * and every other worker's (shareOpenLock).
   */
  static connect(port: Port): Promise<SharedCache> {
    return new Promise((resolve) => {
      port.onmessage = (event) => resolve(new SharedCache(port, event.data as Hello));
    });
  }

  private constructor(port: Port, hello: Hello) {
    this.#port = port;
    this.#slots = new Slots(hello.slots);
    this.#ledger = new Int32Array(hello.ledger);
    this.#arenaPages = hello.arenaPages;
    this.#arenas = hello.arenas;
    this.view = figuresView(hello.capacity, hello.policy, hello.figures, this.#mirror);
    shareOpenLock(hello.openLock);
    for (const entry of hello.cached) this.#mirror.set(entry.key, this.#mirrored(entry));
    port.onmessage = (event) => this.#heard(event.data);
  }

  find(key: string, stamp: Stamp): Found | Promise<Found> {
    const known = this.#mirror.get(key);
    if (known && sameStamp(known.stamp, stamp)) {
      const held = this.#hold(known);
      if (held) {
        this.#note("hits", known.slot, known.generation);
        return { kind: "hit", held };
      }
      this.#mirror.delete(key); // gone: the news is on its way
    }
    return this.#ask(key, stamp);
  }

  peek(key: string, stamp: Stamp): Held | undefined {
    const known = this.#mirror.get(key);
    const held = known && sameStamp(known.stamp, stamp) ? this.#hold(known) : undefined;
    if (held) this.#note("holds", known!.slot, known!.generation);
    return held;
  }

  has(key: string, stamp: Stamp): boolean {
    const known = this.#mirror.get(key);
    return known !== undefined && sameStamp(known.stamp, stamp);
  }

  delete(key: string): void {
    if (this.#mirror.has(key)) this.#turnNow().deleted.push(key);
  }

  /**
   * Tells the coordinator what this turn saw, now, and resolves once it has dealt with everything
   * this worker sent before (and this worker has heard everything it was sent before): before a
   * worker stops, so its last releases count.
   */
  flush(): Promise<void> {
    const ask = this.#nextAsk++;
    this.#turnNow().flushes.push(ask);
    return new Promise((resolve) => this.#asked.set(ask, () => resolve()));
  }

  /** Takes a hold on `known`, unless it is gone. */
  #hold(known: Mirrored): Held | undefined {
    if (!this.#slots.hold(known.slot, known.live)) return undefined;
    Atomics.add(this.#ledger, known.slot, 1);
    const release = this.#release(known.slot, known.generation);
    return { pieces: known.pieces, progress: known.progress, release };
  }

  /**
   * The release of a hold on the entry in `slot`: the ledger first, so a worker that dies between
   * the two steps leaves its hold counted (pinned, never reused) rather than let go of twice.
   */
  #release(slot: number, generation: number): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      Atomics.sub(this.#ledger, slot, 1);
      const left = this.#slots.release(slot, 1);
      if (left !== "held") this.#note(left === "dropped" ? "dropped" : "holds", slot, generation);
    };
  }

  /** Asks the coordinator about a miss. */
  async #ask(key: string, stamp: Stamp): Promise<Found> {
    const ask = this.#nextAsk++;
    this.#turnNow().finds.push({ ask, key, stamp });
    const answer = await new Promise<ToWorker>((resolve) =>
      this.#asked.set(ask, resolve)
    ) as Answer;
    if (answer.found === "stream") return { kind: "stream" };
    const { slot, generation, runs, size } = answer.entry;
    const held = (progress: Progress) => ({
      pieces: this.#pieces(runs, size),
      progress,
      release: this.#release(slot, generation), // the coordinator took the hold for this worker
    });
    if (answer.found !== "load") {
      const progress = this.#loading.get(slot) ?? this.#slots.progress(slot, key);
      return { kind: answer.found, held: held(progress) };
    }
    const progress = this.#slots.progress(slot, key, true);
    this.#loading.set(slot, progress);
    const settle = (loaded: boolean) => {
      this.#loading.delete(slot);
      this.#turnNow().settled.push(slot, generation, +loaded);
    };
    return { kind: "load", held: held(progress), settle };
  }

  #heard(message: ToWorker): void {
    switch (message.kind) {
      case "answer":
      case "flushed":
        this.#asked.get(message.ask)!(message);
        this.#asked.delete(message.ask);
        break;
      case "arena":
        this.#arenas.push(message.buffer);
        break;
      case "news":
        for (const entry of message.cached) this.#mirror.set(entry.key, this.#mirrored(entry));
        for (const { key, slot, generation } of message.gone) {
          const known = this.#mirror.get(key);
          if (known?.slot === slot && known.generation === generation) this.#mirror.delete(key);
        }
        break;
    }
  }

  #mirrored({ key, stamp, slot, generation, runs, size }: Listed): Mirrored {
    const progress = this.#slots.progress(slot, key);
    const live = liveTag(generation);
    return { stamp, slot, generation, live, pieces: this.#pieces(runs, size), progress };
  }

  /** Views of the first `size` bytes of the pages of `runs`, in the arenas. */
  #pieces(runs: Runs, size: number): Pieces {
    const pieces: Uint8Array[] = [];
    for (let i = 0, left = size; i < runs.length && left > 0; i += 2) {
      const arena = this.#arenas[Math.floor(runs[i] / this.#arenaPages)];
      const offset = (runs[i] % this.#arenaPages) * PAGE_BYTES;
      const length = Math.min(left, runs[i + 1] * PAGE_BYTES);
      pieces.push(new Uint8Array(arena, offset, length));
      left -= length;
    }
    return pieces;
  }

  /** Adds the entry in `slot` to what this turn saw `what` of. */
  #note(what: "hits" | "holds" | "dropped", slot: number, generation: number): void {
    this.#turnNow()[what].push(slot, generation);
  }

  /** What this turn saw so far, told to the coordinator once the turn ends. */
  #turnNow(): Turn {
    if (this.#turn === undefined) {
      const turn: Turn = {
        settled: [],
        hits: [],
        holds: [],
        dropped: [],
        deleted: [],
        finds: [],
        flushes: [],
      };
      this.#turn = turn;
      queueMicrotask(() => {
        this.#turn = undefined;
        this.#port.postMessage(turn);
      });
    }
    return this.#turn;
  }
}
