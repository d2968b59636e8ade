/**
 * Which content coding an answer goes in (RFC 9110 §12.5.3): the best of br, zstd and gzip that
 * the client's `Accept-Encoding` takes, for the types that compress (text, JSON, JavaScript, SVG,
 * XML, WebAssembly), never for images, archives or media that are compressed already.
 */

import type { Transform } from "node:stream";
import zlib from "node:zlib";
import { concat } from "../../shared/io.ts";
import { type Coding, CODINGS } from "../store/variants.ts";
import type { PagePart } from "./pages.ts";

export type { Coding } from "../store/variants.ts";

/** Files smaller than this go as they are: the coding's framing would eat what it saves. */
export const MIN_COMPRESSED_BYTES = 256;

/**
 * Files larger than this go as they are: a copy is made in memory, whole, before its first byte
 * leaves, and the cache would hold it beside the file.
 */
export const MAX_COMPRESSED_BYTES = 16 * 1024 * 1024;

/** The name suffix of a file compressed ahead of time by each coding (nginx's gzip_static). */
export const SUFFIXES: Record<Coding, string> = { zstd: ".zst", br: ".br", gzip: ".gz" };

/**
 * True for a Content-Type worth compressing.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { compressible } from "./encoding.ts";
 * equal(compressible("text/css; charset=utf-8"), true);
 * equal(compressible("image/svg+xml"), true);
 * equal(compressible("image/png"), false);
 * ```
 */
export function compressible(type: string): boolean {
  return /^(text\/|application\/(json|javascript|xml|wasm)\b|image\/svg\+xml)/.test(type);
}

/**
 * The codings `acceptEncoding` takes, best first: by the client's weights, then in the order of
 * CODINGS. A coding given weight 0 is refused, and so is any a `*` of weight 0 does not name.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { accepted } from "./encoding.ts";
 * deepEqual(accepted("gzip, deflate, br, zstd"), ["br", "zstd", "gzip"]);
 * deepEqual(accepted("gzip;q=1.0, br;q=0.5"), ["gzip", "br"]);
 * deepEqual(accepted("*;q=0.1, gzip;q=0"), ["br", "zstd"]);
 * deepEqual(accepted(undefined), []);
 * ```
 */
export function accepted(acceptEncoding: string | undefined): Coding[] {
  const weights = new Map<string, number>();
  for (const part of (acceptEncoding ?? "").split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    if (name) weights.set(name, q === undefined ? 1 : Number(q));
  }
  const weightOf = (coding: Coding) => weights.get(coding) ?? weights.get("*") ?? 0;
  return CODINGS.filter((coding) => weightOf(coding) > 0)
    .sort((a, b) => weightOf(b) - weightOf(a));
}

/** A compressing stream for each coding, at the levels of the cached copies' but for speed. */
const STREAMS: Record<Coding, () => zlib.Zlib & Transform> = {
  br: () => zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } }),
  zstd: () => zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } }),
  gzip: () => zlib.createGzip({ level: 6 }),
};

const encoder = new TextEncoder();

/**
 * `parts` (an answer made as it is sent: a folder's page) compressed by `coding`, a part for each
 * part, each flushed as it leaves, so a page still reaches the client as it is made.
 */
export async function* compressedParts(
  parts: AsyncIterable<PagePart>,
  coding: Coding,
): AsyncGenerator<PagePart> {
  const stream = STREAMS[coding]();
  const out: Uint8Array[] = [];
  stream.on("data", (chunk: Uint8Array) => out.push(chunk));
  const taken = () => concat(out.splice(0));
  try {
    for await (const { data, entries } of parts) {
      stream.write(typeof data === "string" ? encoder.encode(data) : data);
      await new Promise<void>((flushed) => stream.flush(() => flushed()));
      yield { data: taken(), entries };
    }
    const ended = new Promise((resolve) => stream.on("end", resolve));
    stream.end();
    await ended;
    yield { data: taken(), entries: 0 };
  } finally {
    stream.destroy();
  }
}
