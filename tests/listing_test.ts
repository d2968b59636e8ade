/**
 * The folder walk behind `list`: real trees in temp folders, with hidden files, odd names,
 * symbolic links in and out, and a folder of 100,000 files.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { openRoot, resolveFile } from "../lib/server/folder.ts";
import { type FolderEntry, ListingTurns, TreeWalk } from "../lib/server/listing.ts";
import { checkName } from "../lib/shared/names.ts";
import fc from "fast-check";

/** Every file the walk of `root` yields, in the walk's order, `maxDepth` levels deep at most. */
async function walkFiles(root: string, maxDepth = 32): Promise<FolderEntry[]> {
  return (await Array.fromAsync(new TreeWalk(root, maxDepth, new ListingTurns(1)))).flat();
}

/** The entries' names, sorted: the walk gives each folder in the order the disk gives. */
function sortedNames(entries: FolderEntry[]): string[] {
  return entries.map((entry) => entry.name).sort();
}

/** A temp folder filled with `files` (name → contents); removed when disposed. */
async function tempFolder(files: Record<string, string> = {}) {
  const path = await Deno.makeTempDir({ prefix: "listing-test-" });
  for (const [name, contents] of Object.entries(files)) {
    const full = `${path}/${name}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, contents);
  }
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** Runs a shell command, for names and file kinds Deno cannot make itself. */
async function sh(script: string, cwd: string): Promise<void> {
  const { success, stderr } = await new Deno.Command("sh", { args: ["-c", script], cwd }).output();
  assert(success, new TextDecoder().decode(stderr));
}

Deno.test("TreeWalk", async (t) => {
  await using base = await tempFolder({
    "data/b.txt": "bb",
    "data/A.txt": "",
    "data/a/z.txt": "z",
    "data/a/b/c.txt": "ccc",
    "data/déjà.txt": "dé",
    "data/.env": "SECRET=1",
    "data/.git/config": "[core]",
    "data/a/.hidden": "x",
    "data/bad\nname.txt": "x",
    "data/back\\slash.txt": "x",
    "outside/secret.txt": "outside",
  });
  const data = `${base.path}/data`;
  await Deno.symlink("b.txt", `${data}/in.txt`);
  await Deno.symlink("a", `${data}/dirlink`);
  await Deno.symlink(".", `${data}/a/self`);
  await Deno.symlink("../outside/secret.txt", `${data}/out.txt`);
  await Deno.symlink("../outside", `${data}/outdir`);
  await Deno.symlink(".env", `${data}/env-link`);
  await Deno.symlink("nowhere", `${data}/dangling`);
  await sh("mkfifo pipe && touch \"$(printf 'not\\377utf8')\"", data);
  const root = await openRoot(data);
  const entries = (await walkFiles(root)).sort((a, b) => a.name < b.name ? -1 : 1);

  await t.step("yields servable files with relative names and sizes", () => {
    assertEquals(entries.map(({ name, size }) => ({ name, size })), [
      { name: "A.txt", size: 0 },
      { name: "a/b/c.txt", size: 3 },
      { name: "a/z.txt", size: 1 },
      { name: "b.txt", size: 2 },
      { name: "déjà.txt", size: 3 },
      { name: "in.txt", size: 2 },
    ]);
  });

  await t.step("reports each file's modification time", async () => {
    for (const entry of entries) {
      assertEquals(entry.mtimeMs, (await Deno.stat(`${root}/${entry.name}`)).mtime?.getTime());
    }
  });

  await t.step("every name listed is one resolveFile serves, with the same size", async () => {
    for (const entry of entries) {
      assertEquals((await resolveFile(root, entry.name)).info.size, entry.size);
    }
  });

  await t.step("a consumer may stop after any batch, and the turn is given back", async () => {
    const turns = new ListingTurns(1);
    for await (const batch of new TreeWalk(root, 32, turns)) {
      assert(batch.length > 0);
      break;
    }
    (await turns.take())[Symbol.dispose]();
  });

  await t.step("folders deeper than the depth given are counted, not walked", async () => {
    const walk = new TreeWalk(root, 1, new ListingTurns(1));
    const names = sortedNames((await Array.fromAsync(walk)).flat());
    assertEquals(names, ["A.txt", "a/z.txt", "b.txt", "déjà.txt", "in.txt"]);
    assertEquals(walk.deeper, 1);
  });

  // Left out above: hidden files and folders, names checkName refuses (a newline, a backslash,
  // bytes that are not UTF-8), the FIFO, a dangling link, links leaving the folder or leading to
  // a hidden file (env-link), and the
  // linked folders dirlink and a/self, which are not descended (a/self would loop).
});

Deno.test({
  name: "TreeWalk skips a sub-folder it cannot read (needs a user other than root)",
  ignore: Deno.uid() === 0,
  fn: async () => {
    await using base = await tempFolder({ "a.txt": "a", "locked/b.txt": "b", "z.txt": "z" });
    await Deno.chmod(`${base.path}/locked`, 0o000);
    try {
      assertEquals(sortedNames(await walkFiles(base.path)), ["a.txt", "z.txt"]);
    } finally {
      await Deno.chmod(`${base.path}/locked`, 0o755);
    }
  },
});

Deno.test("TreeWalk gives a folder of 10,000 files in batches of at most 256", async () => {
  const count = 10_000;
  await using base = await tempFolder({ "first.txt": "1", "sub/last.txt": "22" });
  await sh(`mkdir many && cd many && seq -f 'f%06g' 1 ${count} | xargs touch`, base.path);
  const seen = new Set<string>();
  let largest = 0;
  for await (const batch of new TreeWalk(base.path, 32, new ListingTurns(1))) {
    largest = Math.max(largest, batch.length);
    for (const entry of batch) seen.add(entry.name);
  }
  assertEquals(seen.size, count + 2);
  assert(seen.has("sub/last.txt") && seen.has("many/f010000"));
  assert(largest <= 256, `a batch of ${largest} entries`);
});

Deno.test("the walk lists exactly the names the name rules allow, odd names among them", async () => {
  // Letters that make names plain, hidden, escaped or refused: a dot, a backslash, a space, a
  // control character, a letter outside ASCII.
  const letters = fc.constantFrom("a", "b", ".", "\\", " ", "-", "~", "\u0001", "é", "[", "]");
  const names = fc.uniqueArray(
    fc.array(letters, { minLength: 1, maxLength: 6 }).map((l) => l.join("")),
    {
      minLength: 1,
      maxLength: 12,
    },
  );
  await fc.assert(
    fc.asyncProperty(names, fc.constantFrom("", "sub/"), async (names, prefix) => {
      const written = names.filter((name) => name !== "." && name !== "..");
      await using data = await tempFolder(
        Object.fromEntries(
          ["sub/keep", ...written.map((name) => prefix + name)].map((n) => [n, "x"]),
        ),
      );
      const listed = (await walkFiles(await openRoot(data.path))).map((entry) => entry.name);
      const allowed = ["sub/keep", ...written.map((name) => prefix + name)].filter((name) => {
        try {
          checkName(name);
          return true;
        } catch {
          return false;
        }
      });
      assertEquals(listed.sort(), allowed.sort());
    }),
    { numRuns: 60 },
  );
});
