/** The progress bar: its text for a given state, and when it stays silent. */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  formatDuration,
  PROGRESS_MIN_BYTES,
  ProgressBar,
  type ProgressOutput,
  renderProgress,
} from "../lib/client/progress.ts";

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
    for (const columns of [20, 40, 60, 100]) {
      assert(renderProgress(state, columns).length <= columns, `too wide at ${columns}`);
    }
    assert(!renderProgress(state, 50).includes("["), "a bar squeezed into 50 columns");
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
