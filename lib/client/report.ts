/**
 * What the client prints of a list or of the counters: tables for people, JSON for scripts, with
 * everything a server sent escaped before it reaches a terminal.
 */

import type { ListEntry } from "../shared/protocol.ts";
import { type ServerStats, STAT_NAMES, sumStats } from "../shared/stats.ts";
import { formatBytes } from "../shared/units.ts";
import { printable } from "./terminal.ts";

/**
 * A list as a table sorted by name, times in local time; or as JSON for scripts. What the server
 * sent is escaped (printable), so it can be printed as it is.
 */
export function formatList(entries: ListEntry[], json: boolean): string {
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  if (json) {
    return printable(JSON.stringify(entries.map((e) => ({
      name: e.name,
      size: e.size,
      modified: new Date(e.mtimeMs).toISOString(),
      mtimeMs: e.mtimeMs,
      cached: e.cached,
      ...(e.sha256 && { sha256: toHex(e.sha256) }),
    }))));
  }
  if (entries.length === 0) return "The server's folder is empty.";
  const rows = entries.map((e) => [
    printable(e.name),
    formatBytes(e.size),
    localTime(e.mtimeMs),
    e.cached ? "yes" : "no",
  ]);
  const head = ["NAME", "SIZE", "MODIFIED", "CACHED"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((row) =>
    row.map((cell, i) => i === 1 ? cell.padStart(widths[i]) : cell.padEnd(widths[i])).join("  ")
      .trimEnd()
  ).join("\n");
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
 * …}} in JSON). Escaped, as formatList is.
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
