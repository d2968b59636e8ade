/**
 * A folder as one tar archive (POSIX ustar, with a pax header for a name too long for ustar's
 * fields), made as it is sent: a file's header, its bytes as the store serves them, padding to the
 * 512-byte block, then the next; two empty blocks end it. Every tar, GNU's, bsdtar and Python's,
 * reads it.
 */

import { concat } from "../../shared/io.ts";
import type { FileBody } from "../store/store.ts";

const BLOCK = 512;
const encoder = new TextEncoder();

/**
 * The archive of `names` (each under the name it is archived as, `as(name)`), each file opened
 * with `open` as it comes and let go once sent: so the archive holds one file at a time, however
 * many there are. A file that changes while it is sent fails the archive, as it fails a download.
 */
export async function* tarOf(
  names: readonly string[],
  open: (name: string) => FileBody,
  as: (name: string) => string,
): AsyncGenerator<Uint8Array> {
  for (const name of names) {
    using file = open(name);
    const { size, mtimeMs } = file.stamp;
    yield header(as(name), size, mtimeMs);
    for await (const chunk of file.chunks(0, size)) yield chunk.slice();
    if (size % BLOCK !== 0) yield new Uint8Array(BLOCK - size % BLOCK);
  }
  yield new Uint8Array(2 * BLOCK);
}

/** ustar's largest size: eleven octal digits. */
const MAX_USTAR_SIZE = 0o77777777777;

/**
 * The header of a file `name` of `size` bytes, changed at `mtimeMs`: one ustar block, after a pax
 * header carrying the name or the size when either does not fit ustar's fields (100 bytes of
 * name, 8 GiB).
 */
function header(name: string, size: number, mtimeMs: number): Uint8Array {
  const bytes = encoder.encode(name);
  const mtime = Math.floor(mtimeMs / 1000);
  const records = [
    ...(bytes.length > 100 ? [paxRecord("path", name)] : []),
    ...(size > MAX_USTAR_SIZE ? [paxRecord("size", String(size))] : []),
  ];
  const plain = ustar(bytes.subarray(0, 100), Math.min(size, MAX_USTAR_SIZE), mtime, "0");
  if (records.length === 0) return plain;
  const record = concat(records);
  const data = new Uint8Array(Math.ceil(record.length / BLOCK) * BLOCK);
  data.set(record);
  return concat([ustar(encoder.encode("PaxHeader"), record.length, mtime, "x"), data, plain]);
}

/** One ustar header block. */
function ustar(name: Uint8Array, size: number, mtime: number, type: string): Uint8Array {
  const block = new Uint8Array(BLOCK);
  block.set(name.subarray(0, 100), 0);
  field(block, 100, 8, octal(0o644, 7)); // mode
  field(block, 108, 8, octal(0, 7)); // uid
  field(block, 116, 8, octal(0, 7)); // gid
  field(block, 124, 12, octal(size, 11));
  field(block, 136, 12, octal(mtime, 11));
  block.fill(0x20, 148, 156); // the checksum counts itself as spaces
  field(block, 156, 1, type);
  field(block, 257, 8, "ustar\x0000");
  const sum = block.reduce((total, byte) => total + byte, 0);
  field(block, 148, 8, `${octal(sum, 6)}\0 `);
  return block;
}

/** A pax record: "LENGTH KEY=VALUE\n", its length counting its own digits. */
function paxRecord(key: string, value: string): Uint8Array {
  const body = encoder.encode(` ${key}=${value}\n`);
  let length = body.length + 1;
  while (String(length).length + body.length > length) length++;
  return concat([encoder.encode(String(length)), body]);
}

function octal(value: number, digits: number): string {
  return value.toString(8).padStart(digits, "0");
}

function field(block: Uint8Array, at: number, length: number, text: string): void {
  block.set(encoder.encode(text).subarray(0, length), at);
}
