/**
 * What the client prints of a list or of the counters: tables for people, JSON for scripts, with
 * everything a server sent escaped before it reaches a terminal.
 */

import type { ListEntry } from "../shared/protocol.ts";
import { type ServerStats, STAT_NAMES, sumStats } from "../shared/stats.ts";
import { formatBytes } from "../shared/units.ts";
import { writeAll, type Writer } from "../shared/io.ts";
import { printable } from "./terminal.ts";

/**
 * Prints a list to `out` as it comes, a batch at a time, so that printing holds one batch however
 * long the list: in the order the server sent it, as a table for people (size, time in local time,
 * whether cached, then the name, so that rows line up without waiting for the longest name) or as
 * one JSON array for scripts. What the server sent is escaped (printable).
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { printList } from "./report.ts";
 * let text = "";
 * const out = {
 *   write(bytes: Uint8Array) {
 *     text += new TextDecoder().decode(bytes);
 *     return Promise.resolve(bytes.length);
 *   },
 * };
 * const a = { name: "a.txt", size: 2048, mtimeMs: 0, cached: true };
 * await printList([[a], [{ ...a, name: "b.txt" }]], true, out);
 * deepEqual(JSON.parse(text).map((e: { name: string }) => e.name), ["a.txt", "b.txt"]);
 * ```
 */
export async function printList(
  batches: AsyncIterable<ListEntry[]> | Iterable<ListEntry[]>,
  json: boolean,
  out: Writer,
): Promise<void> {
  const encoder = new TextEncoder();
  let rows = 0;
  for await (const entries of batches) {
    if (entries.length === 0) continue;
    const text = json
      ? (rows === 0 ? "[" : ",") + entries.map(jsonEntry).join(",")
      : (rows === 0 ? tableRow(HEAD) : "") + entries.map(tableEntry).join("");
    rows += entries.length;
    await writeAll(out, encoder.encode(text));
  }
  const end = json
    ? (rows === 0 ? "[]\n" : "]\n")
    : (rows === 0 ? "The server's folder is empty.\n" : "");
  await writeAll(out, encoder.encode(end));
}

/** The head of the table of a list. */
const HEAD = ["SIZE", "MODIFIED", "CACHED", "NAME"];
/** The width of each column but the last: sizes to "1023.9 MiB", times as localTime gives them. */
const WIDTHS = [10, 16, 6];

/** A row of the table of a list, a line of its own: the size aligned right, the rest left. */
function tableRow(cells: string[]): string {
  const padded = cells.map((cell, i) =>
    i === 0 ? cell.padStart(WIDTHS[i]) : i < WIDTHS.length ? cell.padEnd(WIDTHS[i]) : cell
  );
  return padded.join("  ") + "\n";
}

/** An entry as a row of the table, escaped. */
function tableEntry(e: ListEntry): string {
  return tableRow([
    formatBytes(e.size),
    localTime(e.mtimeMs),
    e.cached ? "yes" : "no",
    printable(e.name),
  ]);
}

/** An entry as JSON, escaped. */
function jsonEntry(e: ListEntry): string {
  return printable(JSON.stringify({
    name: e.name,
    size: e.size,
    modified: new Date(e.mtimeMs).toISOString(),
    mtimeMs: e.mtimeMs,
    cached: e.cached,
    ...(e.sha256 && { sha256: toHex(e.sha256) }),
  }));
}

/** Bytes as lowercase hexadecimal, as sha256sum prints a digest. */
function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** A time as "2026-11-25 08:44" in the user's time zone, as `ls -l` shows it. */
function localTime(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}`;
}

/**
 * The counters as aligned lines (see {@link shownNames}), or as one JSON object as the server sent
 * it; of several servers, their sum beside each one's (as {"total": …, "servers": {"host:port":
 * …}} in JSON). Escaped, as printList's are.
 */
export function formatStats(servers: string[], all: ServerStats[], json: boolean): string {
  const total = all.length === 1 ? all[0] : sumStats(all);
  if (json) {
    const shown = all.length === 1
      ? total
      : { total, servers: Object.fromEntries(servers.map((server, i) => [server, all[i]])) };
    return printable(JSON.stringify(shown));
  }
  const columns = all.length === 1 ? [total] : [total, ...all];
  const cell = (value: unknown) =>
    typeof value === "number" && !Number.isInteger(value)
      ? value.toFixed(3)
      : printable(`${value}`);
  const rows = [
    ...(all.length === 1 ? [] : [["", "total", ...servers.map((server) => printable(server))]]),
    ...shownNames(all).map((name) => [
      printable(name),
      ...columns.map((stats) => cell((stats as unknown as Record<string, unknown>)[name] ?? "-")),
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) =>
    row.map((text, i) =>
      i === 0 ? text.padEnd(widths[i]) : all.length === 1 ? text : text.padStart(widths[i])
    ).join("  ").trimEnd()
  ).join("\n");
}

/**
 * The statistics the servers `all` sent, in the table's order (STATS), then any the table does not
 * know (a newer server's) as they came: those are shown, but not summed.
 */
function shownNames(all: ServerStats[]): string[] {
  const sent = new Set(all.flatMap((stats) => Object.keys(stats)));
  const known = new Set<string>(STAT_NAMES);
  return [
    ...STAT_NAMES.filter((name) => sent.has(name)),
    ...[...sent].filter((name) => !known.has(name)),
  ];
}
