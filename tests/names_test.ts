/**
 * Names: which client-supplied names are accepted, and that resolving one never reaches outside
 * the data folder, checked against real files, folders, FIFOs and symbolic links in temp folders.
 */

import { ok as assert, rejects, strictEqual as assertEquals, throws } from "node:assert/strict";
import fc from "fast-check";
import { NotFoundError } from "../lib/server/errors.ts";
import { DataFolder, openRoot, resolveFile } from "../lib/server/folder.ts";
import { ErrorCode } from "../lib/shared/errors.ts";
import { BadNameError, checkName, MAX_NAME_BYTES } from "../lib/shared/names.ts";

/**
 * A temp folder holding `data` (the root) with files, a folder, a FIFO and symbolic links, beside
 * `outside` and `data-evil`, which must never be reachable.
 */
async function fixture() {
  const base = await tempFolder({
    "data/a.txt": "abc",
    "data/docs/readme.md": "read me",
    "data/déjà vu/naïve 文件.txt": "unicode",
    "data/.env": "SECRET=1",
    "outside/secret.txt": "outside",
    "data-evil/secret.txt": "evil",
  });
  const data = `${base.path}/data`;
  await Deno.symlink("a.txt", `${data}/in.txt`);
  await Deno.symlink("docs", `${data}/docs-link`);
  await Deno.symlink("../outside/secret.txt", `${data}/out.txt`);
  await Deno.symlink(`${base.path}/outside`, `${data}/outdir`);
  await Deno.symlink("../data-evil/secret.txt", `${data}/evil.txt`);
  await Deno.symlink("/etc/passwd", `${data}/passwd`);
  await Deno.symlink("nowhere", `${data}/dangling`);
  await Deno.symlink("loop", `${data}/loop`);
  const fifo = await mkfifo(`${data}/pipe`);
  return { base, root: await openRoot(data), fifo };
}

/** A temp folder filled with `files` (name → contents); removed when disposed. */
async function tempFolder(files: Record<string, string> = {}) {
  const path = await Deno.makeTempDir({ prefix: "names-test-" });
  for (const [name, contents] of Object.entries(files)) {
    const full = `${path}/${name}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, contents);
  }
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** Makes a FIFO with the system's mkfifo; false when there is no such command. */
async function mkfifo(path: string): Promise<boolean> {
  try {
    return (await new Deno.Command("mkfifo", { args: [path] }).output()).success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Asserts that checkName refuses `name` with exactly `message`. */
function refused(name: string, message: string) {
  throws(() => checkName(name), { name: "BadNameError", message, code: ErrorCode.BadRequest });
}

Deno.test("checkName", async (t) => {
  await t.step("refuses empty names", () => refused("", "a file name cannot be empty"));

  await t.step("refuses names over MAX_NAME_BYTES, counted in UTF-8 bytes", () => {
    assertEquals(checkName("a".repeat(MAX_NAME_BYTES)), "a".repeat(MAX_NAME_BYTES));
    assertEquals(checkName("é".repeat(MAX_NAME_BYTES / 2)), "é".repeat(MAX_NAME_BYTES / 2));
    refused(
      "é".repeat(MAX_NAME_BYTES / 2) + "a",
      "a file name may be at most 1024 bytes long, but this one is 1025 bytes",
    );
  });

  await t.step("refuses NUL and other control characters", () => {
    refused("a\0.txt", '"a\\u0000.txt" contains a control character (U+0000)');
    refused("a\n.txt", '"a\\n.txt" contains a control character (U+000A)');
    refused("a\x1f.txt", '"a\\u001f.txt" contains a control character (U+001F)');
    refused("a\x7f.txt", '"a\x7f.txt" contains a control character (U+007F)');
  });

  await t.step("refuses backslashes", () => {
    refused("a\\b.txt", '"a\\\\b.txt" contains a backslash; folders are separated by "/"');
  });

  await t.step("refuses absolute names", () => {
    refused("/etc/passwd", '"/etc/passwd" is absolute; names are relative to the data folder');
    refused("/", '"/" is absolute; names are relative to the data folder');
  });

  await t.step('refuses ".." components', () => {
    refused("..", '".." has a ".." component');
    refused("../a.txt", '"../a.txt" has a ".." component');
    refused("docs/../a.txt", '"docs/../a.txt" has a ".." component');
    refused("docs/..", '"docs/.." has a ".." component');
  });

  await t.step(
    'refuses "." components, repeated and trailing slashes instead of normalising',
    () => {
      refused(".", '"." has a "." component');
      refused("./a.txt", '"./a.txt" has a "." component');
      refused("docs/./readme.md", '"docs/./readme.md" has a "." component');
      refused("docs//readme.md", '"docs//readme.md" has an empty component ("//")');
      refused("a.txt/", '"a.txt/" ends with "/"; a name must name a file');
    },
  );

  await t.step("refuses hidden names: dotfiles and anything in a dot-folder", () => {
    const message = (name: string) =>
      `"${name}" is hidden (starts with "."); hidden files are private`;
    for (const name of [".env", ".git/config", "docs/.secret", "a/.b/c.txt", "...x"]) {
      refused(name, message(name));
    }
  });

  await t.step("refuses invalid Unicode (lone surrogates)", () => {
    refused("a\ud800.txt", '"a\\ud800.txt" is not valid Unicode (it has a lone surrogate)');
    refused("\udc00", '"\\udc00" is not valid Unicode (it has a lone surrogate)');
  });

  await t.step("accepts good names and returns them unchanged", () => {
    const names = [
      "a.txt",
      "docs/readme.md",
      "déjà vu/naïve 文件.txt",
      "emoji 😀.bin",
      "a..b",
      "trailing.",
      "docs/notes..",
      " spaced name ",
      "no-extension",
    ];
    for (const name of names) assertEquals(checkName(name), name);
  });
});

Deno.test("resolveFile", async (t) => {
  const { base, root, fifo } = await fixture();
  await using _cleanup = base;

  await t.step("resolves plain, nested and unicode names to their real paths", () => {
    for (
      const [name, size] of [["a.txt", 3], ["docs/readme.md", 7], ["déjà vu/naïve 文件.txt", 7]]
    ) {
      const { path, info } = resolveFile(root, name as string);
      assertEquals(path, `${root}/${name}`);
      assert(info.isFile);
      assertEquals(info.size, size);
    }
  });

  await t.step("follows a symbolic link to a file inside the folder", () => {
    const { path, info } = resolveFile(root, "in.txt");
    assertEquals(path, `${root}/a.txt`);
    assertEquals(info.size, 3);
  });

  await t.step("follows a symbolically linked folder that stays inside", () => {
    assertEquals((resolveFile(root, "docs-link/readme.md")).path, `${root}/docs/readme.md`);
  });

  await t.step("refuses symbolic links whose target leaves the folder", () => {
    for (const name of ["out.txt", "outdir/secret.txt", "passwd"]) {
      throws(() => resolveFile(root, name), {
        name: "BadNameError",
        message: `"${name}" leads outside the data folder`,
      });
    }
  });

  await t.step("is not fooled by a sibling folder whose name starts like the root's", () => {
    assert(`${root}-evil/secret.txt`.startsWith(root));
    throws(() => resolveFile(root, "evil.txt"), {
      name: "BadNameError",
      message: '"evil.txt" leads outside the data folder',
    });
  });

  await t.step("refuses a link that leads to a hidden file inside the folder", async () => {
    await Deno.symlink(".env", `${root}/env-link`);
    throws(() => resolveFile(root, "env-link"), {
      name: "BadNameError",
      message: '"env-link" leads to a hidden file; hidden files are private',
    });
  });

  await t.step("checks the name itself before touching the disk", () => {
    throws(() => resolveFile(root, "../outside/secret.txt"), BadNameError);
    throws(() => resolveFile(root, ".env"), BadNameError);
    throws(() => resolveFile(root, `${root}/a.txt`), BadNameError);
  });

  await t.step("missing names are NotFound, however they are missing", () => {
    for (
      const name of ["nope.txt", "docs/nope.md", "a.txt/x", "dangling", "loop", "x".repeat(300)]
    ) {
      throws(() => resolveFile(root, name), {
        name: "NotFoundError",
        message: `no such file: "${name}"`,
        code: ErrorCode.NotFound,
      });
    }
  });

  await t.step("folders are NotFound, also through a symbolic link", () => {
    throws(() => resolveFile(root, "docs"), {
      name: "NotFoundError",
      message: '"docs" is a folder, not a file',
    });
    throws(() => resolveFile(root, "docs-link"), NotFoundError);
  });

  await t.step({
    name: "a FIFO is NotFound (and is never opened)",
    ignore: !fifo,
    fn: () => {
      throws(() => resolveFile(root, "pipe"), {
        name: "NotFoundError",
        message: '"pipe" is not a regular file',
      });
    },
  });

  await t.step("a character device is NotFound", () => {
    throws(() => resolveFile("/dev", "null"), {
      name: "NotFoundError",
      message: '"null" is not a regular file',
    });
  });
});

Deno.test("openRoot", async (t) => {
  await using base = await tempFolder({ "data/a.txt": "abc" });

  await t.step("returns the folder's real path", async () => {
    await Deno.symlink(`${base.path}/data`, `${base.path}/alias`);
    assertEquals(await openRoot(`${base.path}/alias`), await Deno.realPath(`${base.path}/data`));
  });

  await t.step("refuses a missing folder or a file, with a clear sentence", async () => {
    await rejects(openRoot(`${base.path}/missing`), {
      message: `the data folder "${base.path}/missing" does not exist`,
    });
    await rejects(openRoot(`${base.path}/data/a.txt`), {
      message: `the data folder "${base.path}/data/a.txt" is not a folder`,
    });
  });
});

/** Any code point, lone surrogates included. */
const anyChar = fc.integer({ min: 0, max: 0x10ffff }).map((c) => String.fromCodePoint(c));
const anyString = fc.string({ unit: anyChar, maxLength: 40 });
/** Names built from the fixture's own names and tricky pieces, so many of them resolve. */
const fixtureName = fc.array(
  fc.oneof(
    fc.constantFrom("a.txt", "docs", "readme.md", "in.txt", "docs-link", "out.txt", "outdir"),
    fc.constantFrom("secret.txt", "evil.txt", "passwd", "loop", "pipe", "..", ".", "", ".env"),
    anyString,
  ),
  { minLength: 1, maxLength: 5 },
).map((parts) => parts.join("/"));

Deno.test("names: properties", async (t) => {
  await t.step('a ".." component, a NUL or a leading "/" is always refused', () => {
    const parts = fc.array(anyString, { maxLength: 4 });
    fc.assert(
      fc.property(parts, parts, (before, after) => {
        throws(() => checkName([...before, "..", ...after].join("/")), BadNameError);
      }),
    );
    fc.assert(
      fc.property(anyString, anyString, (before, after) => {
        throws(() => checkName(`${before}\0${after}`), BadNameError);
      }),
    );
    fc.assert(
      fc.property(anyString, (rest) => void throws(() => checkName(`/${rest}`), BadNameError)),
    );
  });

  await t.step(
    "an accepted name is returned as is; resolving one never leaves the root",
    async () => {
      const { base, root } = await fixture();
      await using _cleanup = base;
      await fc.assert(
        fc.asyncProperty(fc.oneof(fixtureName, anyString), async (name) => {
          let checked: string;
          try {
            checked = checkName(name);
          } catch (error) {
            assert(error instanceof BadNameError);
            throws(() => resolveFile(root, name), BadNameError);
            return;
          }
          assertEquals(checked, name);
          try {
            const { path } = await resolveFile(root, name);
            assert(path.startsWith(`${root}/`), `${JSON.stringify(name)} resolved to ${path}`);
          } catch (error) {
            assert(error instanceof BadNameError || error instanceof NotFoundError, String(error));
          }
        }),
        { numRuns: 500 },
      );
    },
  );
});

Deno.test("DataFolder remembers real paths but never past a swap", async (t) => {
  const { base, root } = await fixture();
  await using _ = base;
  const folder = new DataFolder(root);

  await t.step("resolves as resolveFile does, with the same errors", () => {
    assertEquals(folder.resolve("in.txt").path, `${root}/a.txt`);
    assertEquals(folder.resolve("in.txt").path, `${root}/a.txt`);
    throws(() => folder.resolve("out.txt"), BadNameError);
    throws(() => folder.resolve("missing.txt"), NotFoundError);
  });

  await t.step("a remembered link retargeted outside the folder is refused", async () => {
    assertEquals(folder.resolve("docs-link/readme.md").info.size, 7);
    await Deno.remove(`${root}/docs-link`);
    await Deno.writeTextFile(`${base.path}/outside/readme.md`, "outside");
    await Deno.symlink(`${base.path}/outside`, `${root}/docs-link`);
    throws(() => folder.resolve("docs-link/readme.md"), {
      name: "BadNameError",
      message: '"docs-link/readme.md" leads outside the data folder',
    });
  });

  await t.step("a remembered file that is deleted is no longer found", async () => {
    assertEquals(folder.resolve("a.txt").info.size, 3);
    await Deno.remove(`${root}/a.txt`);
    throws(() => folder.resolve("a.txt"), NotFoundError);
  });
});
