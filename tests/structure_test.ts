/**
 * The layout's promises, checked on the module graph Deno itself builds (`deno info --json`):
 * the client never loads server code, the server never loads client code, shared code loads
 * neither, and no module imports itself through others.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ROOT, run } from "../testing/support.ts";

/** Each local module reachable from `roots`, with the local modules it imports (code or types). */
async function moduleGraph(roots: string[]): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const root of roots) {
    const info = await run(Deno.execPath(), ["info", "--json", root]);
    assertEquals(info.code, 0, info.stderr);
    const { modules } = JSON.parse(info.stdout) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
      }[];
    };
    for (const module of modules) {
      const path = local(module.specifier);
      if (path === undefined) continue;
      const imports = (module.dependencies ?? [])
        .flatMap((dependency) => [dependency.code?.specifier, dependency.type?.specifier])
        .map((specifier) => specifier && local(specifier))
        .filter((specifier): specifier is string => specifier !== undefined);
      graph.set(path, [...new Set(imports)]);
    }
  }
  return graph;
}

/** A file: URL inside the repository as a path relative to it; undefined for anything else. */
function local(specifier: string): string | undefined {
  const prefix = new URL(ROOT, "file:").href;
  return specifier.startsWith(prefix) ? specifier.slice(prefix.length) : undefined;
}

/** Every .ts file under `folder` (relative to the repository). */
async function sources(folder: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}${folder}`)) {
    const path = `${folder}/${entry.name}`;
    if (entry.isDirectory) found.push(...await sources(path));
    else if (entry.name.endsWith(".ts")) found.push(path);
  }
  return found;
}

/** One import cycle in `graph` as the list of modules around it, or undefined if there is none. */
function findCycle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (module: string): string[] | undefined => {
    if (state.get(module) === "done") return undefined;
    if (state.get(module) === "open") return [...path.slice(path.indexOf(module)), module];
    state.set(module, "open");
    path.push(module);
    for (const next of graph.get(module) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(module, "done");
    return undefined;
  };
  for (const module of graph.keys()) {
    const cycle = visit(module);
    if (cycle) return cycle;
  }
  return undefined;
}

Deno.test("the layout: each side loads only its own code and the shared code", async (t) => {
  const lib = await sources("lib");
  const graph = await moduleGraph(["server.ts", "client.ts", ...lib.map((path) => ROOT + path)]);

  await t.step("every module in lib/ is on one side or shared", () => {
    const stray = lib.filter((path) => !/^lib\/(server|client|shared)\//.test(path));
    assertEquals(stray, []);
  });

  await t.step("the client's modules never reach lib/server/", async () => {
    const client = await moduleGraph(["client.ts"]);
    assert(client.has("lib/client/client.ts"), "the graph did not reach the client library");
    assertEquals([...client.keys()].filter((path) => path.startsWith("lib/server/")), []);
  });

  await t.step("the server's modules never reach lib/client/", async () => {
    const server = await moduleGraph(["server.ts"]);
    assert(server.has("lib/server/server.ts"), "the graph did not reach the server library");
    assertEquals([...server.keys()].filter((path) => path.startsWith("lib/client/")), []);
  });

  await t.step("shared modules import only shared modules", () => {
    const crossing = [...graph].flatMap(([module, imports]) =>
      module.startsWith("lib/shared/")
        ? imports.filter((path) => !path.startsWith("lib/shared/")).map((path) =>
          `${module} → ${path}`
        )
        : []
    );
    assertEquals(crossing, []);
  });

  await t.step("no import cycle", () => {
    assertEquals(findCycle(graph), undefined);
  });

  await t.step("the cycle check finds a cycle when there is one", () => {
    const looped = new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]]]);
    assertEquals(findCycle(looped), ["a.ts", "b.ts", "c.ts", "a.ts"]);
  });
});
