/**
 * The digests of file versions: remembered by stamp and algorithm, so that each version of a file
 * is hashed once per algorithm, and worked out once however many requests ask at the same time.
 */

import type { DigestAlgorithm } from "../../shared/digest.ts";
import { Front } from "../front.ts";
import type { HashBuffers } from "./hashing.ts";
import type { Stamp } from "./version.ts";
import { VersionFile } from "./version.ts";

/** Digests by file version and algorithm, at most `limit` of them, the oldest forgotten first. */
export class Digests {
  /** The buffers every file hashed from disk is read through, in turn. */
  readonly hashing: HashBuffers;
  readonly #limit: number;
  readonly #known = new Map<string, Uint8Array>();
  readonly #oldest = new Front(() => this.#known.keys());
  readonly #working = new Map<string, Promise<Uint8Array>>();

  constructor(limit: number, hashing: HashBuffers) {
    this.#limit = limit;
    this.hashing = hashing;
  }

  /** The digest of the version `stamp` by `algorithm`, if it is known. */
  get(stamp: Stamp, algorithm: DigestAlgorithm): Uint8Array | undefined {
    return this.#known.get(key(stamp, algorithm));
  }

  /** Remembers a digest worked out elsewhere (while a file was loaded or streamed whole). */
  set(stamp: Stamp, algorithm: DigestAlgorithm, digest: Uint8Array): void {
    const k = key(stamp, algorithm);
    this.#known.delete(k);
    this.#known.set(k, digest);
    if (this.#known.size > this.#limit) this.#known.delete(this.#oldest.take());
  }

  /**
   * The digest of the file at `path`, version `stamp`: known, or read and hashed whole, once for
   * every request that asks while it is worked out (parts of one file fetched over several
   * connections all need the whole file's digest), through a buffer of {@link hashing} once one
   * is free. Throws Changed if the file is not, or stops being, that version.
   */
  of(path: string, stamp: Stamp, name: string, algorithm: DigestAlgorithm): Promise<Uint8Array> {
    const known = this.get(stamp, algorithm);
    if (known) return Promise.resolve(known);
    const k = key(stamp, algorithm);
    let working = this.#working.get(k);
    if (working === undefined) {
      working = hashWhole(path, stamp, name, algorithm, this.hashing).then(
        ({ digest, settled }) => {
          if (settled) this.set(stamp, algorithm, digest);
          return digest;
        },
      ).finally(() => this.#working.delete(k));
      this.#working.set(k, working);
    }
    return working;
  }
}

/**
 * Reads the file at `path` from start to end and hashes it, through a buffer of `hashing`,
 * confirming it stayed `stamp`; with whether that version is settled (VersionFile.settled).
 */
async function hashWhole(
  path: string,
  stamp: Stamp,
  name: string,
  algorithm: DigestAlgorithm,
  hashing: HashBuffers,
): Promise<{ digest: Uint8Array; settled: boolean }> {
  await using file = await VersionFile.open(path, stamp, name, hashing);
  const digest = await hashing.use((buffer) => file.hash(algorithm, buffer));
  // Confirmed with the buffer given back: a file hashed again to be confirmed takes one of its own.
  await file.confirm(algorithm, digest);
  return { digest, settled: file.settled };
}

function key(stamp: Stamp, algorithm: DigestAlgorithm): string {
  return `${stamp.dev}:${stamp.ino}:${stamp.size}:${stamp.mtimeMs}:${stamp.ctimeMs}:${algorithm.id}`;
}
