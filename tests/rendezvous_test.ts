/**
 * Rendezvous hashing as the cluster relies on it: an even share of names per server, and a server
 * that goes away moves only its own names, spread over the others.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import { rank } from "../lib/client/rendezvous.ts";

const servers = ["127.0.0.1:4461", "127.0.0.1:4462", "127.0.0.1:4463"];
const names = Array.from({ length: 30_000 }, (_, i) => `folder ${i % 97}/file-${i}.bin`);

Deno.test("rendezvous hashing", async (t) => {
  await t.step("each of three servers is first for a third of the names, within 2 points", () => {
    const firsts = new Map<string, number>();
    for (const name of names) {
      firsts.set(rank(name, servers)[0], (firsts.get(rank(name, servers)[0]) ?? 0) + 1);
    }
    for (const server of servers) {
      const share = firsts.get(server)! / names.length;
      assert(Math.abs(share - 1 / 3) < 0.02, `${server}: ${(share * 100).toFixed(1)}%`);
    }
  });

  await t.step("a server that goes away moves only its names, evenly to the others", () => {
    const gone = servers[1];
    const left = servers.filter((server) => server !== gone);
    const moved = new Map<string, number>();
    for (const name of names) {
      const before = rank(name, servers)[0];
      const after = rank(name, left)[0];
      if (before !== gone) assertEquals(after, before, `${name} moved, though its server stayed`);
      else moved.set(after, (moved.get(after) ?? 0) + 1);
    }
    const [a, b] = left.map((server) => moved.get(server)!);
    assert(Math.abs(a - b) / (a + b) < 0.05, `moved unevenly: ${a} and ${b}`);
  });

  await t.step("any servers, any name: every server once, in an order that ignores theirs", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string(), { minLength: 1, maxLength: 8 }),
        fc.string(),
        (list, name) => {
          const order = rank(name, list);
          assertEquals([...order].sort(), [...list].sort());
          assertEquals(rank(name, [...list].reverse()), order);
        },
      ),
    );
  });
});
