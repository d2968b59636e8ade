/**
 * The progress bar: its text for a given state, when it stays silent, and what a user of the real
 * client sees on a terminal, Ctrl-C included.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { partialPath } from "../lib/client/plan.ts";
import {
  formatDuration,
  PROGRESS_MIN_BYTES,
  ProgressBar,
  type ProgressOutput,
  renderProgress,
} from "../lib/client/progress.ts";
import { halfServer, runClient, startServer, tempFolder, until } from "./harness.ts";
import { CLIENT_COMMAND, randomBytes } from "../testing/support.ts";

const MiB = 1024 * 1024;

/** A fake output that records what is drawn. */
function output(terminal: boolean): ProgressOutput & { text: () => string } {
  const chunks: Uint8Array[] = [];
  return {
    isTerminal: () => terminal,
    writeSync: (bytes) => chunks.push(bytes.slice()) && bytes.length,
    text: () => chunks.map((c) => new TextDecoder().decode(c)).join(""),
  };
}

Deno.test("renderProgress", async (t) => {
  await t.step("shows name, bar, percent, bytes, rate and time left", () => {
    const line = renderProgress(
      { name: "a.bin", done: 512 * 1024, total: 1024 * 1024, elapsedMs: 1000 },
      80,
    );
    assertEquals(
      line,
      "a.bin [############           ]   50%  512.0 KiB / 1.0 MiB  512.0 KiB/s  1s left",
    );
    assertEquals(line.length, 80, "the bar takes the room the terminal has");
  });

  await t.step("never exceeds the terminal's width, dropping the bar first", () => {
    const state = { name: "a-rather-long-name.bin", done: 10, total: 100, elapsedMs: 10 };
    for (const columns of [10, 20, 40, 60, 100]) {
      assert(renderProgress(state, columns).length <= columns, `too wide at ${columns}`);
    }
    assert(!renderProgress(state, 50).includes("["), "a bar squeezed into 50 columns");
  });

  await t.step("a narrow terminal keeps the name whole, and gives up the other parts", () => {
    const state = {
      name: "docs/a-rather-long-name.bin",
      done: 3 * MiB,
      total: 4 * MiB,
      start: 2 * MiB,
      elapsedMs: 2000,
    };
    assertEquals(
      renderProgress(state, 70),
      "docs/a-rather-long-name.bin   75%  3.0 MiB / 4.0 MiB  2s left",
    );
    assertEquals(renderProgress(state, 50), "docs/a-rather-long-name.bin   75%  2s left");
    assertEquals(renderProgress(state, 35), "docs/a-rather-long-name.bin   75%");
    assertEquals(renderProgress(state, 20), "…long-name.bin   75%");
  });

  await t.step("a resumed download's rate counts only the bytes received in this run", () => {
    const line = renderProgress(
      { name: "a.bin", done: 3 * MiB, total: 4 * MiB, start: 2 * MiB, elapsedMs: 2000 },
      80,
    );
    assert(line.includes("3.0 MiB / 4.0 MiB  512.0 KiB/s  2s left"), line);
  });

  await t.step("unknown rate means unknown time left", () => {
    const line = renderProgress({ name: "x", done: 0, total: 10, elapsedMs: 0 }, 80);
    assert(line.endsWith("? left"), line);
  });

  await t.step("durations read naturally", () => {
    assertEquals(formatDuration(4.2), "5s");
    assertEquals(formatDuration(185), "3m05s");
    assertEquals(formatDuration(3720), "1h02m");
    assertEquals(formatDuration(Infinity), "?");
  });
});

Deno.test("ProgressBar", async (t) => {
  const big = 4 * MiB;

  await t.step("draws on a terminal and ends its line when done", () => {
    const out = output(true);
    const bar = new ProgressBar(out, { columns: () => 80 });
    bar.update("big.bin", 0, big);
    bar.update("big.bin", big, big);
    const text = out.text();
    assert(text.startsWith("\rbig.bin ["), JSON.stringify(text));
    assert(text.includes("100%"), text);
    assert(text.endsWith("\n"), JSON.stringify(text));
  });

  await t.step("takes a file's first report as where this run started", () => {
    const out = output(true);
    let clock = 5000;
    const bar = new ProgressBar(out, { columns: () => 100, now: () => clock });
    bar.update("big.bin", big / 2, big);
    clock += 2000;
    bar.update("big.bin", big / 2 + MiB, big);
    const lines = out.text().split("\r").filter((line) => line);
    assertEquals(lines.length, 2, JSON.stringify(out.text()));
    assert(lines[0].includes("2.0 MiB / 4.0 MiB  0 B/s  ? left"), lines[0]);
    // 1 MiB in 2 s, not the 3 MiB there are now: the resumed half was not received in this run.
    assert(lines[1].includes("3.0 MiB / 4.0 MiB  512.0 KiB/s  2s left"), lines[1]);
  });

  await t.step("redraws at most ten times a second, but always at the end", () => {
    const out = output(true);
    let clock = 0;
    const bar = new ProgressBar(out, { columns: () => 100, now: () => clock });
    for (let done = 0; done <= big; done += big / 8) {
      bar.update("big.bin", done, big);
      clock += 30;
    }
    // Reports at 0, 30, ..., 240 ms: drawn at 0 and 120 ms, and at the end (240 ms).
    const percents = out.text().split("\r").filter((line) => line).map((line) =>
      /(\d+)%/.exec(line)?.[1]
    );
    assertEquals(percents, ["0", "50", "100"]);
  });

  await t.step(
    "a line printed while a file comes takes the bar's place; the bar comes back below",
    () => {
      const out = output(true);
      let clock = 0;
      const bar = new ProgressBar(out, { columns: () => 80, now: () => clock });
      bar.update("b.bin", 0, big);
      bar.clear();
      out.writeSync(new TextEncoder().encode("saved a.bin (4.0 MiB)\n"));
      clock += 10; // sooner than a redraw would be due
      bar.update("b.bin", big / 2, big);
      const lines = screen(out.text());
      assertEquals(lines[0], "saved a.bin (4.0 MiB)");
      assert(lines[1].startsWith("b.bin [") && lines[1].includes("50%"), lines[1]);
    },
  );

  await t.step("is silent when the output is not a terminal", () => {
    const out = output(false);
    const bar = new ProgressBar(out, { columns: () => 80 });
    bar.update("big.bin", big / 2, big);
    bar.done();
    assertEquals(out.text(), "");
  });

  await t.step("is silent with --quiet, and for small files", () => {
    const quiet = output(true);
    new ProgressBar(quiet, { quiet: true, columns: () => 80 }).update("big.bin", 1, big);
    assertEquals(quiet.text(), "");
    const small = output(true);
    new ProgressBar(small, { columns: () => 80 }).update("small.bin", 1, PROGRESS_MIN_BYTES - 1);
    assertEquals(small.text(), "");
  });
});

/** What a terminal does with "ESC [ K": it erases the line from the cursor to its end. */
const ERASE_LINE = "\x1b[K";

/** What a terminal shows once it has been sent `text`: the lines on its screen, top to bottom. */
function screen(text: string): string[] {
  const lines = [""];
  let column = 0;
  for (let i = 0; i < text.length; i++) {
    const last = lines.length - 1;
    if (text.startsWith(ERASE_LINE, i)) {
      lines[last] = lines[last].slice(0, column);
      i += ERASE_LINE.length - 1;
    } else if (text[i] === "\r") column = 0;
    else if (text[i] === "\n") {
      lines.push("");
      column = 0;
    } else {
      lines[last] = lines[last].slice(0, column) + text[i] + lines[last].slice(column + 1);
      column++;
    }
  }
  return lines.filter((line) => line !== "");
}

/**
 * The real client with `args`, on a pseudo-terminal `columns` wide (through `script`, as a user
 * at a terminal runs it); undefined where there is no `script`. `type` is handed what the user
 * types, once the client runs. Its output is what the terminal was sent, both streams together.
 */
async function onTerminal(
  columns: number,
  args: string[],
  type?: (keys: WritableStreamDefaultWriter<Uint8Array>) => Promise<void>,
): Promise<{ code: number; screen: string[] } | undefined> {
  const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
  const command = [Deno.execPath(), ...CLIENT_COMMAND, ...args].map(quote).join(" ");
  let child;
  try {
    child = new Deno.Command("script", {
      args: ["-q", "-e", "-c", `stty cols ${columns}; exec ${command}`, "/dev/null"],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const keys = child.stdin.getWriter();
  await type?.(keys);
  const { code, stdout } = await child.output().finally(() => keys.close().catch(() => {}));
  return { code, screen: screen(new TextDecoder().decode(stdout)) };
}

Deno.test("on a terminal, several files: one bar each and never a stale one; the names whole at 50 columns", async (t) => {
  const names = ["docs/a-rather-long-name.bin", "docs/another-long-name.bin"];
  await using data = await tempFolder({
    [names[0]]: randomBytes(2 * MiB, 1),
    [names[1]]: randomBytes(2 * MiB, 2),
  });
  await using server = await startServer(data.path);
  for (const columns of [80, 50]) {
    await t.step(`${columns} columns`, async () => {
      await using out = await tempFolder();
      const args = ["--port", String(server.addr.port), "get", ...names, "-o", out.path];
      const run = await onTerminal(columns, args);
      if (run === undefined) {
        console.log("skipped: there is no script(1) to run the client on a pseudo-terminal");
        return;
      }
      assertEquals(run.code, 0, run.screen.join("\n"));
      // The lines left on the screen: each file's finished bar, and what became of it.
      const saved = run.screen.filter((line) => line.startsWith("saved "));
      const bars = run.screen.filter((line) => !line.startsWith("saved "));
      assertEquals(saved, names.map((name) => `saved ${out.path}/${name} (2.0 MiB)`));
      assertEquals(bars.length, names.length, `a bar left behind:\n${run.screen.join("\n")}`);
      for (const [i, name] of names.entries()) {
        assert(bars[i].startsWith(`${name} `) && bars[i].includes("100%"), bars[i]);
        assert(bars[i].length <= columns, `wider than the terminal: ${bars[i]}`);
      }
    });
  }
});

Deno.test("Ctrl-C: exit 130 with one line saying the partial file is kept; the same command resumes", async () => {
  const source = randomBytes(16 * MiB, 5);
  await using data = await tempFolder({ "movie.bin": source });
  await using out = await tempFolder();
  const target = `${out.path}/movie.bin`;
  const { mtime } = await Deno.stat(`${data.path}/movie.bin`);
  const { promise: interrupted, resolve: release } = Promise.withResolvers<void>();
  // Half the file, then nothing until the client is gone.
  await using stalling = halfServer(source, mtime!.getTime(), interrupted);
  const command = (port: number) => ["--port", String(port), "get", "movie.bin", "-o", out.path];
  const size = () => Deno.statSync(partialPath(target)).size;
  let run;
  try {
    run = await onTerminal(80, command(stalling.port), async (keys) => {
      await until(() => {
        try {
          return size() > 0;
        } catch {
          return false;
        }
      }, "the partial file to hold bytes");
      await keys.write(new Uint8Array([0x03])); // Ctrl-C
    });
  } finally {
    release();
  }
  if (run === undefined) {
    console.log("skipped: there is no script(1) to run the client on a pseudo-terminal");
    return;
  }
  assertEquals(run.code, 130, run.screen.join("\n"));
  assertEquals(
    run.screen.at(-1),
    "client: interrupted; partial files are kept: run the same command again to resume",
  );
  const kept = size();
  assert(kept > 0 && kept < source.length, `kept ${kept} bytes`);

  await using server = await startServer(data.path);
  const again = await runClient(command(server.addr.port));
  assertEquals(again.code, 0, again.stderr);
  assertEquals(again.stdout, `saved ${target} (16.0 MiB, resumed from byte ${kept})\n`);
  assertEquals(await Deno.readFile(target), source);
});
