/** How soon a change on disk is served: a file rewritten so that it keeps its stamp, too. */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { join } from "node:path";
import { spawnServer } from "../testing/support.ts";
import { tempFolder, text } from "./harness.ts";

/** The body of `name` from the HTTP port `port`, by curl. */
async function curl(port: number, name: string): Promise<string> {
  const output = await new Deno.Command("curl", {
    args: ["-sf", `http://127.0.0.1:${port}/${name}`],
  }).output();
  return text(output.stdout);
}

Deno.test("a file rewritten in the millisecond it was read, same size, is served as it is now", async () => {
  await using data = await tempFolder();
  const path = join(data.path, "f.txt");
  await using server = await spawnServer([
    ...["--data", data.path, "--http-port", "0"],
  ]);
  // Both versions get one modification time, to the millisecond, as a quick rewrite most often
  // does; it is set a second ahead, as a write in the very millisecond of the read would have it
  // (a request through curl cannot be timed that finely). Only a change of second between the
  // writes tells them apart (by ctime), so then it tries again.
  for (let attempt = 0;; attempt++) {
    const written = new Date(Date.now() + 1000);
    await Deno.writeTextFile(path, `first ${attempt}`);
    await Deno.utime(path, written, written);
    const before = await Deno.stat(path);
    assertEquals(await curl(server.httpPort!, "f.txt"), `first ${attempt}`);
    await Deno.writeTextFile(path, `again ${attempt}`);
    await Deno.utime(path, written, written);
    const after = await Deno.stat(path);
    if (after.ctime!.getTime() !== before.ctime!.getTime() && attempt < 5) continue;
    assertEquals([after.size, after.mtime, after.ino], [before.size, before.mtime, before.ino]);
    assertEquals(await curl(server.httpPort!, "f.txt"), `again ${attempt}`);
    break;
  }
});
