/**
 * The HTTP port as a static site and as a source for other sites' pages: index files
 * (`--index`), `Cache-Control` (`--cache-control`), the name files are saved under
 * (`Content-Disposition`, read by curl -OJ and wget), and cross-origin reads (`--cors`), checked
 * through curl, wget and Chromium as their users would.
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { join } from "node:path";
import { parseServerArgs } from "../server.ts";
import { has, run } from "../testing/support.ts";
import { chromiumDom, startServer, tempFolder } from "./harness.ts";

const SITE = {
  "index.html": "<title>home</title><link rel=stylesheet href=style.css><p>home</p>",
  "style.css": "p { color: green }",
  "blog/index.htm": "<title>blog</title>",
  "blog/post.txt": "post",
  "files/report.txt": "no index here",
  "files/café menu (1).txt": "☕",
};

Deno.test("--index: a folder's URL serves its index file, so a folder is a site", async (t) => {
  await using data = await tempFolder(SITE);
  await using server = await startServer(data.path, {
    httpPort: 0,
    index: ["index.html", "index.htm"],
  });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;

  await t.step("the first index name a folder holds is served for its URL", async () => {
    const home = await fetch(`${base}/`);
    assertEquals(home.headers.get("content-type"), "text/html; charset=utf-8");
    assertEquals(await home.text(), SITE["index.html"]);
    assertEquals(await (await fetch(`${base}/blog/`)).text(), SITE["blog/index.htm"]);
  });

  await t.step(
    "a folder without one still gets its page; a folder without / a redirect",
    async () => {
      const page = await (await fetch(`${base}/files/`)).text();
      assert(page.includes("report.txt"), page);
      const redirect = await fetch(`${base}/blog`, { redirect: "manual" });
      assertEquals([redirect.status, redirect.headers.get("location")], [301, "/blog/"]);
      await redirect.body?.cancel();
    },
  );

  await t.step("validators and ranges hold for an index file as for any file", async () => {
    const home = await fetch(`${base}/`);
    await home.body?.cancel();
    const again = await fetch(`${base}/`, {
      headers: { "if-none-match": home.headers.get("etag")! },
    });
    assertEquals(again.status, 304);
    const part = await fetch(`${base}/`, { headers: { range: "bytes=0-6" } });
    assertEquals([part.status, await part.text()], [206, "<title>"]);
  });

  await t.step("without --index, a folder's URL is its page", async () => {
    await using plain = await startServer(data.path, { httpPort: 0 });
    const page = await (await fetch(`http://127.0.0.1:${plain.httpAddr!.port}/`)).text();
    assert(page.includes("index.html") && page.includes("style.css"), page);
  });
});

Deno.test({
  name: "in Chromium, a folder with --index is a site: its page and its style load",
  ignore: !await has("chromium"),
  async fn() {
    await using data = await tempFolder({
      "index.html": "<title>home</title><link rel=stylesheet href=style.css>" +
        "<script>addEventListener('load', () => document.title = " +
        "getComputedStyle(document.body).marginLeft)</script><body>",
      "style.css": "body { margin-left: 37px }",
    });
    await using server = await startServer(data.path, { httpPort: 0, index: ["index.html"] });
    const dom = await chromiumDom(`http://127.0.0.1:${server.httpAddr!.port}/`);
    assertEquals(/<title>([^<]*)<\/title>/.exec(dom)?.[1], "37px");
  },
});

Deno.test("files carry --cache-control and the name they are saved under", async (t) => {
  await using data = await tempFolder(SITE);
  await using server = await startServer(data.path, {
    httpPort: 0,
    cacheControl: "public, max-age=3600",
  });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  const url = `${base}/files/${encodeURIComponent("café menu (1).txt")}`;

  await t.step("Cache-Control with files and their 304s, not with pages or errors", async () => {
    const file = await fetch(`${base}/style.css`);
    await file.body?.cancel();
    assertEquals(file.headers.get("cache-control"), "public, max-age=3600");
    const again = await fetch(`${base}/style.css`, {
      headers: { "if-none-match": file.headers.get("etag")! },
    });
    assertEquals([again.status, again.headers.get("cache-control")], [304, "public, max-age=3600"]);
    for (const path of ["/", "/missing.txt"]) {
      const answer = await fetch(`${base}${path}`);
      await answer.body?.cancel();
      assertEquals(answer.headers.get("cache-control"), null, path);
    }
  });

  await t.step("Content-Disposition names the file in UTF-8, as RFC 8187 says", async () => {
    const answer = await fetch(url);
    await answer.body?.cancel();
    const field = new TextDecoder().decode(
      Uint8Array.from(answer.headers.get("content-disposition")!, (c) => c.charCodeAt(0)),
    );
    assertEquals(
      field,
      `inline; filename="café menu (1).txt"; filename*=UTF-8''caf%C3%A9%20menu%20%281%29.txt`,
    );
  });

  for (const [tool, args] of [["curl", ["-sfOJ"]], ["wget", ["-q", "--content-disposition"]]]) {
    await t.step({
      name: `${tool} saves a file under its own name`,
      ignore: !await has(tool as string),
      fn: async () => {
        await using out = await tempFolder();
        const saved = await run(tool as string, [...args as string[], url], { cwd: out.path });
        assertEquals(saved.code, 0, saved.stderr);
        const names = [...Deno.readDirSync(out.path)].map((entry) => entry.name);
        assertEquals(names, ["café menu (1).txt"]);
        assertEquals(await Deno.readTextFile(join(out.path, names[0])), "☕");
      },
    });
  }
});

Deno.test("--cors: pages of the origins given read files, after a preflight", async (t) => {
  await using data = await tempFolder(SITE);
  const app = "http://127.0.0.1:9";
  await using server = await startServer(data.path, { httpPort: 0, cors: [app] });
  const base = `http://127.0.0.1:${server.httpAddr!.port}`;
  const ask = async (method: string, headers: Record<string, string>) => {
    const answer = await fetch(`${base}/style.css`, { method, headers });
    await answer.body?.cancel();
    return answer;
  };

  await t.step("an allowed origin is named back, with Vary: Origin", async () => {
    const answer = await ask("GET", { origin: app });
    assertEquals(answer.headers.get("access-control-allow-origin"), app);
    assert(answer.headers.get("vary")!.split(", ").includes("Origin"), answer.headers.get("vary")!);
    assert(answer.headers.get("access-control-expose-headers")!.includes("Content-Range"));
  });

  await t.step("another origin is not", async () => {
    const answer = await ask("GET", { origin: "https://elsewhere.example" });
    assertEquals(answer.headers.get("access-control-allow-origin"), null);
  });

  await t.step("a preflight is answered 204 with the methods and fields allowed", async () => {
    const answer = await ask("OPTIONS", {
      origin: app,
      "access-control-request-method": "GET",
      "access-control-request-headers": "range, authorization",
    });
    assertEquals(answer.status, 204);
    assertEquals(answer.headers.get("access-control-allow-methods"), "GET, HEAD");
    const allowed = answer.headers.get("access-control-allow-headers")!.toLowerCase();
    assert(allowed.includes("range") && allowed.includes("authorization"), allowed);
  });

  await t.step("without --cors, no field, and OPTIONS is 405", async () => {
    await using plain = await startServer(data.path, { httpPort: 0 });
    const answer = await fetch(`http://127.0.0.1:${plain.httpAddr!.port}/style.css`, {
      method: "OPTIONS",
      headers: { origin: app, "access-control-request-method": "GET" },
    });
    await answer.body?.cancel();
    assertEquals(answer.status, 405);
    assertEquals(answer.headers.get("access-control-allow-origin"), null);
  });

  await t.step("flags: --cors and --index take what they name, with --http-port", () => {
    const options = parseServerArgs([
      "--http-port=0",
      "--cors=*",
      "--index=index.html,index.htm",
      "--cache-control=no-cache",
    ]);
    assert(options !== "help");
    assertEquals([options.cors, options.index, options.cacheControl], [
      ["*"],
      ["index.html", "index.htm"],
      "no-cache",
    ]);
    throws(() => parseServerArgs(["--cors=*"]), { message: "--cors goes with --http-port" });
    throws(() => parseServerArgs(["--http-port=0", "--cors=app.example"]), {
      message: '--cors does not take "app.example"',
    });
    throws(() => parseServerArgs(["--http-port=0", "--index=a/index.html"]), {
      message: '--index does not take "a/index.html"',
    });
  });
});

Deno.test({
  name: "in Chromium, a page of an allowed origin reads a range with a preflight; others cannot",
  ignore: !await has("chromium"),
  async fn(t) {
    await using data = await tempFolder({ "data.txt": "0123456789" });
    const page = (files: string) =>
      "<title>waiting</title><script>fetch('" + files + "/data.txt', " +
      "{ headers: { range: 'bytes=2-4' } }).then((r) => r.text()).then(" +
      "(body) => document.title = 'read ' + body, () => document.title = 'refused')</script>";
    await using site = await tempFolder();
    await using pages = await startServer(site.path, { httpPort: 0 });
    const origin = `http://127.0.0.1:${pages.httpAddr!.port}`;
    const cases = [[[origin], "read 234"], [["http://127.0.0.1:9"], "refused"]] as const;
    for (const [i, [cors, title]] of cases.entries()) {
      await t.step(`--cors ${cors}: ${title}`, async () => {
        await using files = await startServer(data.path, {
          httpPort: 0,
          host: "127.0.0.2",
          cors: [...cors],
        });
        await Deno.writeTextFile(
          join(site.path, `page${i}.html`),
          page(`http://127.0.0.2:${files.httpAddr!.port}`),
        );
        const dom = await chromiumDom(`${origin}/page${i}.html`, ["--virtual-time-budget=5000"]);
        assertEquals(/<title>([^<]*)<\/title>/.exec(dom)?.[1], title);
      });
    }
  },
});
