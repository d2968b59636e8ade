/**
 * A file's answer over HTTP: its representation (as it is, or compressed by the best coding the
 * client takes, from a precompressed sibling or a cached copy), ranges, validators, the
 * conditional answers (304, 416), and the fields that name and describe it.
 */

import { SHA256 } from "../../shared/digest.ts";
import { asWireError, NotFoundError } from "../errors.ts";
import type { Service } from "../service.ts";
import type { FileBody } from "../store/store.ts";
import {
  accepted,
  type Coding,
  compressible,
  MAX_COMPRESSED_BYTES,
  MIN_COMPRESSED_BYTES,
  SUFFIXES,
} from "./encoding.ts";
import { type Field, httpDate, isStrongDate, parseHttpDate, type RequestHead } from "./message.ts";
import { parseRange } from "./ranges.ts";
import { type HttpOptions, type Reply, statusOf, text } from "./reply.ts";
import { contentDisposition, contentType, runsScripts } from "./types.ts";

/**
 * A file's reply; a 301 to the folder of that name, when there is one; or the refusal that says
 * why it cannot be served.
 */
export async function fileReply(
  head: RequestHead,
  path: string,
  service: Service,
  options: HttpOptions,
): Promise<Reply> {
  const name = path.slice(1);
  let file: FileBody;
  try {
    file = service.store.open(name, SHA256);
  } catch (error) {
    const refused = asWireError(error);
    if (refused instanceof NotFoundError && await service.store.folder(`${name}/`)) {
      const location = encodeURI(`${path}/`);
      return { ...text(301, `${location}\n`, [["Location", location]]), name };
    }
    return { ...text(statusOf(refused), `${refused.message}\n`), refused, name };
  }
  const sent = await represent(head, file, service, options);
  let digest;
  try {
    digest = await sent.body.digest();
  } catch (error) {
    sent.body[Symbol.dispose]();
    const failed = asWireError(error);
    return { ...text(500, `${failed.message}\n`), failed, name };
  }
  return { ...partReply(head, sent, digest, options), name };
}

/** What is sent for a file: its bytes as they are, or compressed. */
interface Representation {
  body: FileBody;
  /** The file's name, for its type and the name it is saved under. */
  name: string;
  /** When the file changed: Last-Modified, whatever the coding. */
  mtimeMs: number;
  /** The content coding `body` is in; none for the file as it is. */
  coding?: Coding;
  /** True when the answer depends on Accept-Encoding, as it does for every type that compresses. */
  vary: boolean;
}

/**
 * What to send of `file` for `head`: for a type that compresses, in the best coding the client
 * takes, from a current precompressed sibling (`NAME.zst`, `.br`, `.gz`) or else a copy made and
 * cached; otherwise, or for a range (ranges are of the file as it is), `file` itself. `file` is
 * disposed of when something else is sent instead.
 */
async function represent(
  head: RequestHead,
  file: FileBody,
  service: Service,
  options: HttpOptions,
): Promise<Representation> {
  const plain = { body: file, name: file.name, mtimeMs: file.stamp.mtimeMs, vary: false };
  if (options.compress === false || !compressible(contentType(file.name))) return plain;
  const as = { ...plain, vary: true };
  if (head.headers.has("range")) return as;
  const codings = accepted(head.headers.get("accept-encoding"));
  for (const coding of codings) {
    const sibling = precompressed(file, coding, service);
    if (sibling) return { ...as, body: sibling, coding };
  }
  const { size } = file.stamp;
  if (codings.length === 0 || size < MIN_COMPRESSED_BYTES || size > MAX_COMPRESSED_BYTES) {
    return as;
  }
  const encoded = await service.store.encoded(file, codings[0]);
  if (encoded === undefined) return as;
  file[Symbol.dispose]();
  return { ...as, body: encoded, coding: codings[0] };
}

/**
 * The sibling of `file` compressed ahead of time by `coding`, when there is one as new as the
 * file; `file` is then disposed of. Undefined when there is none, or it is older than the file.
 */
function precompressed(file: FileBody, coding: Coding, service: Service): FileBody | undefined {
  const sibling = service.store.openIfPresent(file.name + SUFFIXES[coding], SHA256);
  if (sibling === undefined) return undefined;
  if (sibling.stamp.mtimeMs < file.stamp.mtimeMs) {
    sibling[Symbol.dispose]();
    return undefined;
  }
  file[Symbol.dispose]();
  return sibling;
}

/**
 * The answer of `sent`, whose digest is `digest`, to `head`: 200 with the whole file, 206 with
 * the range asked for, 304 when the client's copy is current, 416 for a range not in the file;
 * with its validators and digests.
 */
function partReply(
  head: RequestHead,
  sent: Representation,
  digest: Uint8Array,
  options: HttpOptions,
): Reply {
  const { body: file, mtimeMs } = sent;
  const { size } = file.stamp;
  const version = versionOf(digest, mtimeMs);
  const { etag, lastModified } = version;
  const fields = fileFields(sent, version, options);
  if (notModified(head, etag, mtimeMs)) {
    file[Symbol.dispose]();
    return { status: 304, fields };
  }
  // A date names a version only when the file cannot have changed again within its second.
  const ifRange = head.headers.get("if-range");
  const rangeApplies = ifRange === undefined || ifRange === etag ||
    (ifRange === lastModified && isStrongDate(mtimeMs));
  const range = rangeApplies ? parseRange(head.headers.get("range"), size) : undefined;
  if (range === "unsatisfiable") {
    file[Symbol.dispose]();
    return text(416, "the range asked for is not in the file\n", [
      ["Content-Range", `bytes */${size}`],
    ]);
  }
  const { start, end } = range ?? { start: 0, end: size };
  if (range) fields.push(["Content-Range", `bytes ${start}-${end - 1}/${size}`]);
  return { status: range ? 206 : 200, fields, body: { file, start, end } };
}

/** What the answers for one version of a file say of it: its validators and its SHA-256. */
interface Version {
  mtimeMs: number;
  /**
   * Strong, from the bytes sent: the same bytes give the same tag wherever and whenever served,
   * and each coding's bytes a tag of their own.
   */
  etag: string;
  lastModified: string;
  /** The SHA-256 in base64. */
  sha256: string;
}

/**
 * Each version's fields by its digest (one Uint8Array per version, as the store hands it out), so
 * that they are written once per version rather than once per answer; forgotten with the digest.
 */
const versions = new WeakMap<Uint8Array, Version>();

/** The fields of the version whose SHA-256 is `digest` and whose mtime is `mtimeMs`. */
function versionOf(digest: Uint8Array, mtimeMs: number): Version {
  const known = versions.get(digest);
  if (known?.mtimeMs === mtimeMs) return known;
  const version = {
    mtimeMs,
    etag: `"${digest.toBase64({ alphabet: "base64url", omitPadding: true })}"`,
    lastModified: httpDate(mtimeMs),
    sha256: digest.toBase64(),
  };
  versions.set(digest, version);
  return version;
}

/**
 * The fields of a file's answer: its type, coding, validators and digests (of the bytes sent, as
 * RFC 9530 has it: a compressed answer's Repr-Digest is of the compressed bytes).
 */
function fileFields(
  sent: Representation,
  { etag, lastModified, sha256 }: Version,
  options: HttpOptions,
): Field[] {
  const type = contentType(sent.name);
  const fields: Field[] = [
    ["Content-Type", type],
    ["Content-Disposition", contentDisposition(sent.name)],
    ["Last-Modified", lastModified],
    ["ETag", etag],
    ["Accept-Ranges", "bytes"],
    ["Repr-Digest", `sha-256=:${sha256}:`],
  ];
  // The older Digest field's only reader, aria2, checks it against the bytes once decoded: sent
  // with a file as it is, and left out of a compressed answer rather than have it read otherwise.
  if (sent.coding) fields.push(["Content-Encoding", sent.coding]);
  else fields.push(["Digest", `SHA-256=${sha256}`]);
  if (sent.vary) fields.push(["Vary", "Accept-Encoding"]);
  if (options.htmlSandbox && runsScripts(type)) fields.push(["Content-Security-Policy", "sandbox"]);
  if (options.cacheControl !== undefined) fields.push(["Cache-Control", options.cacheControl]);
  return fields;
}

/** True when the client's copy (by ETag, or else by date) is current. */
function notModified(head: RequestHead, etag: string, mtimeMs: number): boolean {
  const ifNoneMatch = head.headers.get("if-none-match");
  if (ifNoneMatch !== undefined) {
    return ifNoneMatch.trim() === "*" ||
      ifNoneMatch.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
  }
  const since = parseHttpDate(head.headers.get("if-modified-since") ?? "");
  return since !== undefined && Math.floor(mtimeMs / 1000) * 1000 <= since;
}
