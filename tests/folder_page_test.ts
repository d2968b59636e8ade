/**
 * A folder's page as people use it: columns sorted by links (name, size, date, either way), names
 * in natural order, breadcrumbs up to the root, the JSON in the same order; and a folder
 * downloaded as one tar archive that tar unpacks to the same files, hidden ones and links out left
 * out.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { has, randomBytes, run } from "../testing/support.ts";
import { chromiumDom, startServer, tempFolder } from "./harness.ts";

Deno.test("a folder's page sorts by its columns, names in natural order", async (t) => {
  await using data = await tempFolder({
    "f10.txt": "1234567890",
    "f2.txt": "12",
    "F1.txt": "1",
    "notes/a.txt": "a",
    "old/b.txt": "b",
  });
  const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000);
  for (const [name, days] of [["f10.txt", 3], ["f2.txt", 2], ["F1.txt", 1], ["old", 9]] as const) {
    await Deno.utime(join(data.path, name), daysAgo(days), daysAgo(days));
  }
  await using server = await startServer(data.path, { httpPort: 0 });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  const names = async (query: string) => {
    const page = await (await fetch(`${base}/${query}`)).text();
    return [...page.matchAll(/<td class="name"><a href="[^"]*">([^<]*)<\/a>/g)].map((m) => m[1]);
  };
  const json = async (query: string) => {
    const response = await fetch(`${base}/${query}`, { headers: { accept: "application/json" } });
    return (await response.json()).map((entry: { name: string }) => entry.name);
  };

  await t.step("by name: folders first, then f2 before f10", async () => {
    assertEquals(await names(""), ["notes/", "old/", "F1.txt", "f2.txt", "f10.txt"]);
    assertEquals(await names("?sort=name&order=desc"), [
      "old/",
      "notes/",
      "f10.txt",
      "f2.txt",
      "F1.txt",
    ]);
  });

  await t.step("by size and by date, either way; folders stay first, by name", async () => {
    assertEquals(await names("?sort=size&order=desc"), [
      "old/",
      "notes/",
      "f10.txt",
      "f2.txt",
      "F1.txt",
    ]);
    assertEquals(await names("?sort=date"), ["old/", "notes/", "f10.txt", "f2.txt", "F1.txt"]);
  });

  await t.step("the JSON takes the same sort", async () => {
    for (const query of ["?sort=size&order=desc", "?sort=date", ""]) {
      assertEquals(await json(query), await names(query), query);
    }
  });

  await t.step("each heading links to its sort, the current one the other way", async () => {
    const page = await (await fetch(`${base}/?sort=size`)).text();
    assert(page.includes('<a href="?sort=size&amp;order=desc">Size ↑</a>'), page);
    assert(page.includes('<a href="?sort=name&amp;order=asc">Name</a>'), page);
    assert(page.includes('<a href="?sort=date&amp;order=asc">Modified</a>'), page);
  });

  await t.step("breadcrumbs lead to every folder above", async () => {
    const page = await (await fetch(`${base}/notes/`)).text();
    assert(page.includes('<h1>Index of <a href="/">/</a><a href="/notes/">notes</a>/</h1>'), page);
  });
});

Deno.test("?download=tar: a folder as one archive that tar unpacks to the same files", async (t) => {
  const big = randomBytes(300_000, 7);
  const long = `${"long name ".repeat(12)}.txt`; // past ustar's 100 bytes: a pax header
  await using data = await tempFolder({
    "share/a.txt": "a",
    "share/café/b.txt": "b",
    "share/deep/er/big.bin": big,
    [`share/${long}`]: "long",
    "share/.secret": "hidden",
    "outside.txt": "not in share",
  });
  await Deno.symlink(join(data.path, "outside.txt"), join(data.path, "share/escape.txt"));
  await Deno.symlink("/etc/hostname", join(data.path, "share/out.txt"));
  await using server = await startServer(data.path, { httpPort: 0 });
  const url = `http://127.0.0.1:${server.httpAddr!.port}/share/?download=tar`;

  await t.step("named after the folder, as an attachment", async () => {
    const response = await fetch(url, { method: "HEAD" });
    assertEquals(response.headers.get("content-type"), "application/x-tar");
    assert(
      response.headers.get("content-disposition")!.startsWith('attachment; filename="share.tar"'),
    );
  });

  await t.step({
    name: "tar unpacks every servable file, byte for byte; hidden ones and links out left out",
    ignore: !await has("tar") || !await has("curl"),
    fn: async () => {
      await using out = await tempFolder();
      const archive = join(out.path, "share.tar");
      assertEquals((await run("curl", ["-sf", "-o", archive, url])).code, 0);
      const unpacked = await run("tar", ["-xf", archive, "-C", out.path]);
      assertEquals(unpacked.code, 0, unpacked.stderr);
      // In a UTF-8 locale, so that tar prints a name as it is, not escaped (as it does in C's).
      const listed = await run("tar", ["-tf", archive], { env: { LC_ALL: "C.UTF-8" } });
      assertEquals(listed.stdout.trim().split("\n").sort(), [
        "share/a.txt",
        "share/café/b.txt",
        "share/deep/er/big.bin",
        "share/escape.txt", // a link that stays inside the shared folder is a file like any
        `share/${long}`,
      ]);
      assertEquals(await Deno.readFile(join(out.path, "share/deep/er/big.bin")), big);
      assertEquals(await Deno.readTextFile(join(out.path, "share/escape.txt")), "not in share");
      assertEquals(await Deno.readTextFile(join(out.path, `share/${long}`)), "long");
    },
  });

  await t.step("no such folder: 404", async () => {
    const response = await fetch(`http://127.0.0.1:${server.httpAddr!.port}/none/?download=tar`);
    await response.body?.cancel();
    assertEquals(response.status, 404);
  });
});

Deno.test({
  name: "in Chromium, the page's links sort it, light and dark alike",
  ignore: !await has("chromium"),
  async fn() {
    await using data = await tempFolder({ "b.txt": "bb", "a.txt": "a" });
    await using server = await startServer(data.path, { httpPort: 0 });
    for (const scheme of ["0", "1"]) {
      const dom = await chromiumDom(
        `http://127.0.0.1:${server.httpAddr!.port}/?sort=size&order=desc`,
        [
          `--blink-settings=preferredColorScheme=${scheme}`,
        ],
      );
      const names = [...dom.matchAll(/<td class="name"><a href="[^"]*">([^<]*)<\/a>/g)].map((m) =>
        m[1]
      );
      assertEquals(names, ["b.txt", "a.txt"]);
    }
  },
});
