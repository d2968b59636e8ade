/**
 * The digests a file answer can end with, which client and server agree on per connection:
 * XXH3-128, fast enough not to slow a transfer down (about 3.5 GB/s here, against 1.5 GB/s for
 * SHA-256), and SHA-256, for those who compare with a published sum. The digest travels with the
 * file from the same server, so against tampering it proves nothing whatever the hash (that is
 * TLS's job); it catches corruption and files that changed, which a 128-bit hash does as well.
 */

/** A digest algorithm, by its wire id and the name people use for it. */
export interface DigestAlgorithm {
  /** Its id on the wire (SETUP, HELLO). */
  readonly id: number;
  /** Its name on the command line and in logs. */
  readonly name: string;
  /** Bytes of one digest. */
  readonly bytes: number;
}

/** SHA-256: 32 bytes; the only digest of protocol version 1. */
export const SHA256: DigestAlgorithm = { id: 1, name: "sha256", bytes: 32 };
/** XXH3-128: 16 bytes, in its canonical (big-endian) form. */
export const XXH3_128: DigestAlgorithm = { id: 2, name: "xxh3-128", bytes: 16 };

/** Every algorithm, the one chosen by default first (see docs/PROTOCOL.md for why). */
export const DIGESTS: readonly DigestAlgorithm[] = [XXH3_128, SHA256];

/**
 * The algorithm with wire id `id`, or undefined for one this code does not know.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { digestById } from "./digest.ts";
 * equal(digestById(1)?.name, "sha256");
 * equal(digestById(99), undefined);
 * ```
 */
export function digestById(id: number): DigestAlgorithm | undefined {
  return DIGESTS.find((algorithm) => algorithm.id === id);
}

/** The algorithm called `name` ("xxh3-128", "sha256"), or undefined. */
export function digestByName(name: string): DigestAlgorithm | undefined {
  return DIGESTS.find((algorithm) => algorithm.name === name.toLowerCase());
}

/** A digest being computed: feed it bytes in order, then take the digest once. */
export interface Hasher {
  update(bytes: Uint8Array): void;
  digest(): Uint8Array;
}

/**
 * A new hasher for `algorithm`. Each implementation is loaded on first use: loading one costs a
 * process tens of milliseconds at start, and a download needs one at most (none unverified).
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { createHasher, SHA256, XXH3_128 } from "./digest.ts";
 * const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
 * const sha = await createHasher(SHA256);
 * sha.update(new TextEncoder().encode("abc"));
 * equal(hex(sha.digest()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
 * const xxh = await createHasher(XXH3_128);
 * equal(hex(xxh.digest()), "99aa06d3014798d86001c324468d497f"); // of no bytes at all
 * ```
 */
export async function createHasher(algorithm: DigestAlgorithm): Promise<Hasher> {
  if (algorithm.id === SHA256.id) {
    const { createHash } = await import("node:crypto");
    const hash = createHash("sha256");
    return {
      update: (bytes) => void hash.update(bytes),
      digest: () => new Uint8Array(hash.digest()),
    };
  }
  const { createXXHash128 } = await import("hash-wasm");
  const hash = await createXXHash128();
  hash.init();
  return {
    update: (bytes) => void hash.update(bytes),
    digest: () => hash.digest("binary"),
  };
}

/**
 * The digest of `bytes` already in memory (one array, or pieces in order), computed in steps that
 * let other work run between them: hashing a cached file of tens of MiB in one go would hold up
 * every other connection.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { digestOf, XXH3_128 } from "./digest.ts";
 * const whole = await digestOf(XXH3_128, new Uint8Array([1, 2, 3]));
 * deepEqual(await digestOf(XXH3_128, [new Uint8Array([1]), new Uint8Array([2, 3])]), whole);
 * ```
 */
export async function digestOf(
  algorithm: DigestAlgorithm,
  bytes: Uint8Array | readonly Uint8Array[],
): Promise<Uint8Array> {
  const hasher = await createHasher(algorithm);
  const step = 4 * 1024 * 1024;
  let first = true;
  for (const piece of bytes instanceof Uint8Array ? [bytes] : bytes) {
    for (let at = 0; at < piece.length; at += step) {
      if (!first) await new Promise((resolve) => setTimeout(resolve, 0));
      first = false;
      hasher.update(piece.subarray(at, at + step));
    }
  }
  return hasher.digest();
}

/**
 * Whether two digests are the same.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { sameDigest } from "./digest.ts";
 * equal(sameDigest(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
 * equal(sameDigest(new Uint8Array([1, 2]), new Uint8Array([1])), false);
 * ```
 */
export function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
