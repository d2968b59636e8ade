/**
 * The cache of one thread: a ByteCache of whole files, the loads under way, and the memory of
 * dropped files reused for the next load (recycle.ts).
 */

import { ByteCache, type CacheView, type PolicyName, type Reservation } from "../cache/cache.ts";
import type { CacheBackend, Found } from "./backend.ts";
import { type Held, LocalProgress, type Pieces } from "./load.ts";
import { Recycler } from "./recycle.ts";
import { sameStamp, type Stamp } from "./version.ts";

/** A whole file in memory, or filling. */
interface Entry {
  stamp: Stamp;
  pieces: [Uint8Array<ArrayBuffer>];
  progress: LocalProgress;
}

/** The cache of a store whose requests all run in this thread. */
export class LocalCache implements CacheBackend {
  readonly #cache: ByteCache<string, Entry>;
  /** Loads in progress, with the room they fill. */
  readonly #loads = new Map<string, { entry: Entry; room: Reservation<Entry> }>();
  readonly #recycler = new Recycler();

  constructor(capacity: number, policy?: PolicyName) {
    this.#cache = new ByteCache({
      capacity,
      policy,
      // Reused by a load in the same turn, or detached, which frees the bytes now: left to the
      // garbage collector, files the cache let go of would stay in memory beside their
      // replacements, and the process would outgrow the cap.
      onDrop: (entry) => this.#recycler.give(entry.pieces[0].buffer),
    });
  }

  get view(): CacheView<string> {
    return this.#cache;
  }

  find(key: string, stamp: Stamp): Found {
    const cached = this.#cache.peek(key);
    if (cached && !sameStamp(cached.stamp, stamp)) this.#cache.delete(key);
    const hit = this.#cache.get(key);
    if (hit) return { kind: "hit", held: held(hit, this.#cache.hold(key)!) };
    const running = this.#loads.get(key);
    if (running && sameStamp(running.entry.stamp, stamp)) {
      return { kind: "join", held: held(running.entry, running.room.hold()) };
    }
    const room = this.#cache.reserve(key, stamp.size);
    if (!room) return { kind: "stream" };
    const entry: Entry = {
      stamp,
      pieces: [this.#recycler.take(stamp.size)],
      progress: new LocalProgress(),
    };
    this.#loads.set(key, { entry, room });
    return {
      kind: "load",
      held: held(entry, room.hold()),
      // Settled in the same turn as it leaves #loads, so no request joins a load whose room is gone.
      settle: (loaded) => {
        if (this.#loads.get(key)?.entry === entry) this.#loads.delete(key);
        if (loaded) room.commit(entry);
        else room.release();
      },
    };
  }

  peek(key: string, stamp: Stamp): Held | undefined {
    const cached = this.#cache.peek(key);
    return cached && sameStamp(cached.stamp, stamp)
      ? held(cached, this.#cache.hold(key)!)
      : undefined;
  }

  has(key: string, stamp: Stamp): boolean {
    const cached = this.#cache.peek(key);
    return cached !== undefined && sameStamp(cached.stamp, stamp);
  }

  delete(key: string): void {
    this.#cache.delete(key);
  }
}

function held(entry: { pieces: Pieces; progress: LocalProgress }, release: () => void): Held {
  return { pieces: entry.pieces, progress: entry.progress, release };
}
