/**
 * Which server a name goes to, when several share one folder: rendezvous (highest random weight)
 * hashing. Every client ranks the servers for a name the same way, with no state and no
 * coordination, so each name is cached by one server; a server that goes away moves only the
 * names it ranked first, each to its own next choice, spread evenly over the others.
 */

/**
 * The servers, best first, for `name`.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { rank } from "./rendezvous.ts";
 * const servers = ["10.0.0.1:4457", "10.0.0.2:4457", "10.0.0.3:4457"];
 * const order = rank("docs/a.txt", servers);
 * deepEqual([...order].sort(), [...servers].sort()); // each once
 * deepEqual(rank("docs/a.txt", [...servers].reverse()), order); // whatever order they are given in
 * // Without the first choice, the others keep their order.
 * deepEqual(rank("docs/a.txt", servers.filter((s) => s !== order[0])), order.slice(1));
 * ```
 */
export function rank(name: string, servers: readonly string[]): string[] {
  const named = fnv1a(FNV_OFFSET, name);
  const scored = servers.map((server) => ({ server, score: finish(fnv1a(named, server)) }));
  scored.sort((a, b) => b.score - a.score || (a.server < b.server ? -1 : 1));
  return scored.map(({ server }) => server);
}

const FNV_OFFSET = 0x811c9dc5;

/**
 * FNV-1a of `text`'s UTF-16 code units, on from `hash`: the name is hashed once, then each server
 * on from it, so that ranking 300 servers takes microseconds, not the time to encode 300 strings.
 */
function fnv1a(hash: number, text: string): number {
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash;
}

/** murmur3's finaliser: every bit of the FNV hash spread over the weight. */
function finish(hash: number): number {
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}
