/**
 * The list of the data folder's tree, streamed: the walk holds one folder's entries (and a few
 * lookups ahead) per level of depth, never the whole tree, so a folder of 100,000 files streams.
 */

import { join } from "node:path";
import { checkName } from "../shared/names.ts";
import type { ListEntry } from "../shared/protocol.ts";
import { resolveFile } from "./folder.ts";

/**
 * A servable file as the folder alone knows it: a list entry but for whether it is cached, with
 * its real name (where a link leads; the name itself for anything else).
 */
export type FolderEntry = Omit<ListEntry, "cached"> & { realName: string };

/**
 * Walks the data folder (a real path from openRoot) depth-first, yielding every servable regular
 * file with its relative name: exactly the names that {@link resolveFile} would serve, except
 * those reached through a symbolically linked folder, which is never descended (so no loops).
 * Hidden names and names {@link checkName} refuses are left out; a symbolic link is listed only
 * when its target stays inside the root and is a regular file. Entries within a folder come in
 * code-unit order, so the output is deterministic. Sub-folders that cannot be read are skipped.
 */
export async function* walkFiles(root: string): AsyncGenerator<FolderEntry> {
  yield* walkFolder(root, "");
}

/** How many file lookups run ahead of the one being yielded: their stats overlap, order is kept. */
const LOOKAHEAD = 32;

/** Yields the files under the folder `prefix` names ("" for the root, else ending in "/"). */
async function* walkFolder(root: string, prefix: string): AsyncGenerator<FolderEntry> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(join(root, prefix)));
  } catch (error) {
    if (prefix === "") throw error;
    return;
  }
  entries = entries.filter((entry) => servable(prefix + entry.name));
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const lookups = new Map<number, Promise<FolderEntry | undefined>>();
  let ahead = 0;
  try {
    for (const [i, entry] of entries.entries()) {
      for (; ahead < Math.min(i + LOOKAHEAD, entries.length); ahead++) {
        const next = entries[ahead];
        if (!next.isDirectory) lookups.set(ahead, lookup(root, prefix + next.name, next.isSymlink));
      }
      if (entry.isDirectory) {
        yield* walkFolder(root, `${prefix}${entry.name}/`);
      } else {
        const found = await lookups.get(i);
        lookups.delete(i);
        if (found) yield found;
      }
    }
  } finally {
    // A consumer that stops early leaves nothing running behind it.
    await Promise.all(lookups.values());
  }
}

/** What one folder holds: the names of its sub-folders, and its files. */
export interface FolderContents {
  folders: string[];
  files: FolderEntry[];
}

/**
 * The servable files and sub-folders directly inside the folder `prefix` ("" for the root, else a
 * name ending in "/"), each kind in code-unit order: what a folder's page shows. Undefined when
 * `prefix` is not a folder the walk would enter: missing, hidden, or reached through a link.
 */
export async function readFolder(
  root: string,
  prefix: string,
): Promise<FolderContents | undefined> {
  const path = join(root, prefix);
  if (prefix !== "" && (!prefix.endsWith("/") || !servable(prefix.slice(0, -1)))) return undefined;
  let entries: Deno.DirEntry[];
  try {
    if (await Deno.realPath(path) !== join(root, prefix.slice(0, -1) || ".")) return undefined;
    entries = await Array.fromAsync(Deno.readDir(path));
  } catch {
    return undefined; // missing, not a folder, or unreadable: no such folder to show
  }
  entries = entries.filter((entry) => servable(prefix + entry.name));
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const folders = entries.filter((entry) => entry.isDirectory).map((entry) => entry.name);
  const files = await Promise.all(
    entries.filter((entry) => !entry.isDirectory).map((entry) =>
      lookup(root, prefix + entry.name, entry.isSymlink)
    ),
  );
  return { folders, files: files.filter((file) => file !== undefined) };
}

/** True when `name` passes {@link checkName}. */
function servable(name: string): boolean {
  try {
    checkName(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * The entry for `name` if it is a regular file that may be served, else undefined. Never rejects:
 * a file that vanished or cannot be examined is simply not listed. A plain entry's path is already
 * its real path (the walk never follows links), so one lstat suffices; a symbolic link goes
 * through {@link resolveFile}, with all its checks.
 */
async function lookup(
  root: string,
  name: string,
  isSymlink: boolean,
): Promise<FolderEntry | undefined> {
  try {
    const { info, realName } = isSymlink
      ? resolveFile(root, name)
      : { info: await Deno.lstat(join(root, name)), realName: name };
    if (!info.isFile) return undefined;
    return { name, size: info.size, mtimeMs: info.mtime?.getTime() ?? 0, realName };
  } catch {
    return undefined;
  }
}
