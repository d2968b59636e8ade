/**
 * The coordinator of the cache shared by worker threads, in the main thread: one ByteCache (its
 * policy and its byte accounting, as in one thread) over entries whose bytes lie in arenas of
 * shared memory and whose headers lie in slots (slots.ts). Workers hit without a word to it,
 * taking holds in the slots and telling their hits once a turn; a miss asks it once. It alone
 * admits, evicts and marks entries gone, so the cache never holds, reserves or keeps pinned more
 * than its capacity, however late any message arrives. docs/CACHE.md tells the protocol.
 */

import { ByteCache, type CacheView, type PolicyName, type Release } from "../../cache/cache.ts";
import type { Reservation } from "../../cache/cache.ts";
import { ErrorCode, WireError } from "../../../shared/errors.ts";
import { openLockOf, sameStamp } from "../version.ts";
import {
  FIGURES,
  type Find,
  type Hello,
  type Listed,
  PAGE_BYTES,
  type Port,
  type Turn,
} from "./messages.ts";
import { Pages } from "./pages.ts";
import { type Left, SLOT_BYTES, Slots } from "./slots.ts";
import { figuresView } from "./view.ts";

/** Bytes of an arena: shared memory is made this much at a time, as the cache first needs it. */
const ARENA_BYTES = 64 * 1024 * 1024;

/** An entry: cached, loading or gone (still held by readers). */
interface Entry extends Listed {
  /** While it loads: the room it fills and the worker filling it. */
  loading?: { room: Reservation<Entry>; loader: Link };
  /** A hold of the ByteCache's while workers hold the cached entry (as last heard). */
  held?: Release;
  /** Once gone while readers held it: the hold that keeps its bytes counted until the last lets go. */
  pinned?: Release;
  gone: boolean;
}

/** A worker joined to the cache. */
interface Link {
  port: Port;
  /** Its holds, by slot. */
  ledger: Int32Array<SharedArrayBuffer>;
}

/** Settings of a {@link CacheCoordinator}. */
export interface CoordinatorOptions {
  /** The most bytes the cache may hold, reserve and keep pinned at once. */
  capacity: number;
  policy?: PolicyName;
}

/** The one owner of the cache shared by the workers attached to it. */
export class CacheCoordinator {
  readonly #cache: ByteCache<string, Entry>;
  readonly #pages: Pages;
  readonly #arenas: SharedArrayBuffer[] = [];
  readonly #slotBuffer: SharedArrayBuffer;
  readonly #slots: Slots;
  /** Entries by slot. */
  readonly #entries: (Entry | undefined)[] = [];
  readonly #freeSlots: number[] = [];
  #unusedSlot = 0;
  readonly #loads = new Map<string, Entry>();
  readonly #links = new Set<Link>();
  readonly #figures = new SharedArrayBuffer(FIGURES.length * Float64Array.BYTES_PER_ELEMENT);
  readonly #figureValues = new Float64Array(this.#figures);
  readonly #view: CacheView<string>;
  #hits = 0;
  #misses = 0;
  #news: { cached: Listed[]; gone: Listed[] } | undefined;

  constructor(options: CoordinatorOptions) {
    const pages = Math.floor(options.capacity / PAGE_BYTES);
    // Every entry takes a page at least, so there are never more entries than pages.
    this.#slotBuffer = new SharedArrayBuffer(pages * SLOT_BYTES);
    this.#slots = new Slots(this.#slotBuffer);
    this.#pages = new Pages(pages, Math.min(pages, ARENA_BYTES / PAGE_BYTES), (count) => {
      this.#arena(count);
    });
    this.#cache = new ByteCache({
      capacity: options.capacity,
      policy: options.policy,
      onLeave: (entry, hold) => this.#left(entry, hold),
    });
    this.#view = figuresView(this.#cache.capacity, this.#cache.policy, this.#figures, {
      has: (key) => this.#cache.has(key),
      keys: () => this.#cache.keys(),
    });
  }

  /** The cache's counters (every worker's hits and misses, as told) and keys. */
  get view(): CacheView<string> {
    return this.#view;
  }

  /** Bytes of shared memory made for entries: what their files can take at most. */
  get arenaBytes(): number {
    return this.#arenas.reduce((sum, arena) => sum + arena.byteLength, 0);
  }

  /** Bytes of the arenas' pages that entries take: cached, loading or still held. */
  get takenBytes(): number {
    return this.#pages.taken * PAGE_BYTES;
  }

  /**
   * Joins the worker at the other end of `port` to the cache: it is sent what it needs to share
   * it (hello), and its messages are dealt with from now on.
   */
  attach(port: Port): void {
    const ledger = new Int32Array(new SharedArrayBuffer(this.#slots.count * 4));
    const link = { port, ledger };
    this.#links.add(link);
    port.onmessage = (event) => this.#turn(link, event.data);
    const hello: Hello = {
      kind: "hello",
      capacity: this.#cache.capacity,
      policy: this.#cache.policy,
      slots: this.#slotBuffer,
      ledger: ledger.buffer,
      figures: this.#figures,
      openLock: openLockOf(),
      arenaPages: this.#pages.arenaPages,
      arenas: [...this.#arenas],
      cached: [...this.#cache.keys()].map((key) => listed(this.#cache.peek(key)!)),
    };
    port.postMessage(hello);
  }

  /**
   * Parts with the worker at `port`, which has stopped: the loads it was making fail (their
   * readers elsewhere are told so), and the holds it had are let go of.
   */
  detach(port: Port): void {
    const link = [...this.#links].find((link) => link.port === port);
    if (link === undefined) return;
    this.#links.delete(link);
    port.onmessage = null;
    for (const entry of this.#entries) {
      if (entry?.loading?.loader !== link) continue;
      const lost = new WireError(ErrorCode.Internal, "the thread loading it stopped");
      this.#slots.progress(entry.slot, entry.key).fail(lost);
      this.#settle(entry.slot, entry.generation, false);
    }
    for (let slot = 0; slot < link.ledger.length; slot++) {
      if (link.ledger[slot] > 0) this.#let(slot, this.#slots.release(slot, link.ledger[slot]));
    }
    this.#publish();
  }

  /** What a worker saw in a turn, in the order Turn says. */
  #turn(link: Link, turn: Turn): void {
    const { settled, hits, holds, dropped } = turn;
    for (let i = 0; i < settled.length; i += 3) {
      this.#settle(settled[i], settled[i + 1], settled[i + 2] === 1);
    }
    for (let i = 0; i < hits.length; i += 2) {
      this.#hits++;
      const entry = this.#current(hits[i], hits[i + 1]);
      if (entry && !entry.gone) {
        this.#cache.touch(entry.key);
        this.#sync(entry);
      }
    }
    for (let i = 0; i < holds.length; i += 2) {
      const entry = this.#current(holds[i], holds[i + 1]);
      if (entry && !entry.gone && !entry.loading) this.#sync(entry);
    }
    for (let i = 0; i < dropped.length; i += 2) this.#let(dropped[i], "dropped");
    for (const key of turn.deleted) this.#cache.delete(key);
    for (const find of turn.finds) this.#find(link, find);
    if (turn.flushes.length > 0) this.#tellNews();
    for (const ask of turn.flushes) link.port.postMessage({ kind: "flushed", ask });
    this.#publish();
  }

  /** A worker's miss: a hit after all (its news was late), a load to join, a load, or a stream. */
  #find(link: Link, { ask, key, stamp }: Find): void {
    this.#misses++;
    const cached = this.#cache.peek(key);
    if (cached && sameStamp(cached.stamp, stamp)) {
      this.#cache.touch(key);
      return this.#answer(link, ask, "hit", cached);
    }
    if (cached) this.#cache.delete(key); // another version: never served
    const running = this.#loads.get(key);
    if (running && sameStamp(running.stamp, stamp)) return this.#answer(link, ask, "join", running);
    const pages = Math.max(1, Math.ceil(stamp.size / PAGE_BYTES));
    const room = this.#cache.reserve(key, pages * PAGE_BYTES);
    if (!room) return link.port.postMessage({ kind: "answer", ask, found: "stream" });
    const slot = this.#freeSlots.pop() ?? this.#unusedSlot++;
    const entry: Entry = {
      key,
      stamp,
      size: stamp.size,
      slot,
      generation: this.#slots.open(slot, 0),
      runs: this.#pages.take(pages),
      loading: { room, loader: link },
      gone: false,
    };
    this.#entries[slot] = entry;
    this.#loads.set(key, entry);
    this.#answer(link, ask, "load", entry);
  }

  /** Answers `found` with `entry`, held for the worker asking. */
  #answer(link: Link, ask: number, found: "hit" | "join" | "load", entry: Entry): void {
    this.#slots.add(entry.slot, 1);
    Atomics.add(link.ledger, entry.slot, 1);
    if (!entry.loading) this.#sync(entry);
    const { slot, generation, runs, size } = entry;
    link.port.postMessage({ kind: "answer", ask, found, entry: { slot, generation, runs, size } });
  }

  /** A load ended: its entry is cached, or its room given back. */
  #settle(slot: number, generation: number, loaded: boolean): void {
    const entry = this.#entries[slot];
    if (entry?.generation !== generation || !entry.loading) return; // failed when its loader left
    const { room } = entry.loading;
    entry.loading = undefined;
    if (this.#loads.get(entry.key) === entry) this.#loads.delete(entry.key);
    if (loaded) {
      room.commit(entry);
      this.#sync(entry);
      this.#tell("cached", entry);
      return;
    }
    const holds = this.#slots.gone(slot);
    entry.gone = true;
    if (holds > 0) entry.pinned = room.hold();
    room.release();
    if (holds === 0) this.#free(entry);
  }

  /** The entry in `slot` if it is still of generation `generation`. */
  #current(slot: number, generation: number): Entry | undefined {
    const entry = this.#entries[slot];
    return entry?.generation === generation ? entry : undefined;
  }

  /** Acts on what a release left of the entry in `slot`. */
  #let(slot: number, left: Left): void {
    const entry = this.#entries[slot]!;
    if (left === "dropped") {
      entry.pinned!();
      this.#free(entry);
    } else if (left === "unheld" && !entry.gone && !entry.loading) this.#sync(entry);
  }

  /**
   * Holds a cached entry in the ByteCache while workers hold it, so that a reservation knows those
   * bytes cannot be freed by evicting it: as last heard, which is only a guide. What counts is
   * the moment the entry leaves (#left).
   */
  #sync(entry: Entry): void {
    const holds = this.#slots.holds(entry.slot);
    if (holds > 0 && !entry.held) entry.held = this.#cache.hold(entry.key);
    else if (holds === 0 && entry.held) {
      entry.held();
      entry.held = undefined;
    }
  }

  /**
   * A cached entry leaves (evicted, replaced, deleted): marked gone in one atomic step, which
   * also says how many readers hold it at that instant. If any do, its bytes stay counted (pinned)
   * until the last lets go and says so; if none, no one can take hold of it any more, and its
   * pages and slot are free at once.
   */
  #left(entry: Entry, hold: () => Release): void {
    const holds = this.#slots.gone(entry.slot);
    entry.gone = true;
    this.#tell("gone", entry);
    const held = entry.held;
    entry.held = undefined;
    if (holds > 0) {
      entry.pinned = held ?? hold();
      return;
    }
    held?.();
    this.#free(entry);
  }

  #free(entry: Entry): void {
    this.#pages.give(entry.runs);
    this.#entries[entry.slot] = undefined;
    this.#freeSlots.push(entry.slot);
  }

  /** A new arena, told to every worker before anything placed in it. */
  #arena(pages: number): void {
    const buffer = new SharedArrayBuffer(pages * PAGE_BYTES);
    this.#arenas.push(buffer);
    for (const link of this.#links) link.port.postMessage({ kind: "arena", buffer });
  }

  /** Adds `entry` to the news of this turn, told to every worker at its end. */
  #tell(what: "cached" | "gone", entry: Entry): void {
    if (this.#news === undefined) {
      this.#news = { cached: [], gone: [] };
      queueMicrotask(() => this.#tellNews());
    }
    this.#news[what].push(listed(entry));
  }

  #tellNews(): void {
    const news = this.#news;
    if (news === undefined) return;
    this.#news = undefined;
    for (const link of this.#links) link.port.postMessage({ kind: "news", ...news });
  }

  /** Writes the figures where the workers read them. */
  #publish(): void {
    const cache = this.#cache;
    this.#figureValues.set([
      cache.used,
      cache.reserved,
      cache.pinned,
      cache.size,
      this.#hits,
      this.#misses,
      cache.evictions,
    ]);
  }
}

/** What the workers are told of `entry`. */
function listed({ key, stamp, slot, generation, runs, size }: Entry): Listed {
  return { key, stamp, slot, generation, runs, size };
}
