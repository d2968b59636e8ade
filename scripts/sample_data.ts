/**
 * Writes the larger sample files into server_data/big/: a ~12 MB media-like file (incompressible
 * bytes) and a file larger than the default 64 MiB cache, to show the path that is never cached.
 * The bytes come from a seeded generator, so every machine makes the same files.
 */

const FOLDER = "server_data/big";
const CHUNK = 1 << 20;

/** Writes `size` pseudo-random bytes from `seed` to `path`, one reused 1 MiB buffer at a time. */
async function writeRandomFile(path: string, size: number, seed: number): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const buffer = new Uint8Array(CHUNK);
    const words = new Uint32Array(buffer.buffer);
    let x = seed >>> 0 || 1;
    for (let written = 0; written < size;) {
      for (let i = 0; i < words.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        words[i] = x >>> 0;
      }
      const n = Math.min(CHUNK, size - written);
      let off = 0;
      while (off < n) off += await file.write(buffer.subarray(off, n));
      written += n;
    }
  } finally {
    file.close();
  }
}

if (import.meta.main) {
  await Deno.mkdir(FOLDER, { recursive: true });
  const files: [string, number, number][] = [
    ["media-12MB.bin", 12_000_000, 12],
    ["larger-than-cache-80MiB.bin", 80 * 1024 * 1024, 80],
  ];
  for (const [name, size, seed] of files) {
    await writeRandomFile(`${FOLDER}/${name}`, size, seed);
    console.log(`wrote ${FOLDER}/${name} (${size} bytes)`);
  }
}
