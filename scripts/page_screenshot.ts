/**
 * Renders the HTTP port's folder page in headless Chromium to PNG files, as a desktop and as a
 * phone screen show it, each in the light and the dark scheme, to look at with one's own eyes: starts the server on a sample folder with
 * an HTTP port, and points Debian's Chromium at it.
 *
 * Usage: deno run -A scripts/page_screenshot.ts [OUTPUT_FOLDER]   (default: bench/.work/pages)
 * Needs: chromium (Debian: apt-get install chromium).
 */

import { join } from "node:path";
import { CHROMIUM_FLAGS, ROOT, spawnServer } from "../testing/support.ts";

const output = Deno.args[0] ?? join(ROOT, "bench/.work/pages");
const data = await Deno.makeTempDir({ prefix: "fileserver-pages-" });
try {
  await Deno.mkdir(join(data, "docs/images"), { recursive: true });
  await Deno.writeTextFile(join(data, "README.txt"), "Shared with the file server.\n");
  await Deno.writeFile(
    join(data, "video of the holidays, 2026 (final cut).mp4"),
    new Uint8Array(48_000_000),
  );
  await Deno.writeFile(join(data, "docs/report.pdf"), new Uint8Array(2_500_000));
  await Deno.writeTextFile(
    join(data, "docs/<img src=x onerror=alert(1)>.txt"),
    "a name, not markup\n",
  );
  await Deno.writeTextFile(join(data, "docs/naïve café 文件.txt"), "unicode\n");
  await Deno.writeTextFile(join(data, ".hidden"), "never listed\n");
  await using server = await spawnServer(["--data", data, "--http-port", "0"]);
  const port = /http=[^ ]*:(\d+)/.exec(await server.waitFor(/listening/))![1];
  await fetch(`http://127.0.0.1:${port}/README.txt`).then((response) => response.body?.cancel());
  await Deno.mkdir(output, { recursive: true });
  for (let i = 1; i <= 12; i++) await Deno.writeTextFile(join(data, `docs/chapter ${i}.txt`), "…");
  const pages = [["root-desktop", "/", "1280,800"], [
    "docs-phone",
    "/docs/?sort=size&order=desc",
    "390,844",
  ]];
  // Chromium's preferred scheme: 0 dark, 1 light.
  const schemes = [["light", "1"], ["dark", "0"]];
  const shots = pages.flatMap(([name, path, size]) =>
    schemes.map(([scheme, value]) => [`${name}-${scheme}`, path, size, value])
  );
  for (const [name, path, size, scheme] of shots) {
    const profile = await Deno.makeTempDir({ prefix: "fileserver-chromium-" });
    const png = join(output, `${name}.png`);
    const shot = await new Deno.Command("chromium", {
      args: [
        ...CHROMIUM_FLAGS,
        `--user-data-dir=${profile}`,
        `--window-size=${size}`,
        `--blink-settings=preferredColorScheme=${scheme}`,
        `--screenshot=${png}`,
        `http://127.0.0.1:${port}${path}`,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    await Deno.remove(profile, { recursive: true });
    if (!shot.success) throw new Error(`chromium could not render ${path}`);
    console.log(`wrote ${png}`);
  }
} finally {
  await Deno.remove(data, { recursive: true });
}
