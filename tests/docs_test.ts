/**
 * Every command in the shell code blocks of README.md and docs/*.md, run as written, in order, on
 * the sample data (server_data/ and what `make sample-data` adds to it), in a folder laid out as
 * the repository is, with `client` standing for the client as the README says. The servers the
 * commands talk to run on ephemeral ports: a command that starts one (`make run`, `make cluster`)
 * starts it on free ports instead, and each port the docs name is rewritten to the one it got (a
 * client given no address goes to the default port, so to the server's). curl runs with --fail,
 * as it otherwise saves a 404's text as the file and exits 0. The few commands a test cannot run
 * are in ALLOWED, each with the reason; a command whose program is not installed is skipped, with
 * the rest of its block, and said so.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_PORT } from "../lib/shared/defaults.ts";
import { CLIENT_COMMAND, has, ROOT, run, spawnServer } from "../testing/support.ts";
import { startCluster, tempFolder } from "./harness.ts";

/** The commands a test cannot run, and why. */
const ALLOWED: { pattern: RegExp; reason: string }[] = [
  { pattern: /^make test$/, reason: "the test suite, this test among it" },
  {
    pattern: /^make build$/,
    reason: "needs Deno's runtime binary, which no registry ships (tests/build_test.ts builds)",
  },
  {
    pattern: /^make (bench|soak)\b/,
    reason: "minutes of load (bench/smoke_test.ts runs each briefly)",
  },
  { pattern: /^sudo apt-get install /, reason: "installs packages on the machine" },
  {
    pattern: /^server --host 0\.0\.0\.0 /,
    reason: "listens where other machines reach it, which a test never does",
  },
  {
    pattern: /(--host |\/\/)files\.example/,
    reason: "runs on another machine, which reaches the server by name",
  },
];

/** The HTTP port `make cluster` gives haproxy, and the first node's ports less one. */
const CLUSTER = { front: 8080, native: 4460, http: 8080 };

/** A command of a code block, and where it is written. */
interface Command {
  where: string;
  text: string;
}

/**
 * The commands of each shell code block of `markdown` (from `file`): one per line, a line ending
 * in a backslash joined to the next; blank lines and comments left out.
 */
function blocksOf(markdown: string, file: string): Command[][] {
  const blocks: Command[][] = [];
  let block: Command[] | undefined;
  let pending = "";
  markdown.split("\n").forEach((line, i) => {
    const fence = /^\s*```\s*(\w*)\s*$/.exec(line);
    if (fence) {
      if (block) blocks.push(block);
      block = block === undefined && ["sh", "bash"].includes(fence[1]) ? [] : undefined;
      return;
    }
    if (block === undefined) return;
    const text = pending + line.trim();
    if (text.endsWith("\\")) {
      pending = text.slice(0, -1);
      return;
    }
    pending = "";
    const command = withoutComment(text);
    if (command !== "") block.push({ where: `${file}:${i + 1}`, text: command });
  });
  return blocks;
}

/** A line of shell without its comment: from a `#` that starts a word, outside quotes. */
function withoutComment(line: string): string {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== "") quote = c === quote ? "" : quote;
    else if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i).trim();
  }
  return line.trim();
}

/**
 * Servers the docs started, on free ports: each port the docs name, and the one it got; and the
 * ports the docs name that were not started, with why.
 */
interface Started extends AsyncDisposable {
  ports: Map<number, number>;
  absent: Map<number, string>;
}

/**
 * Starts in `work` what `text` starts: `make run` (with ARGS) or `make cluster` (with N);
 * undefined for any other form.
 */
async function start(text: string, work: string): Promise<Started | undefined> {
  const run = /^make run(?: ARGS="([^"]*)")?$/.exec(text);
  if (run) {
    const args = (run[1] ?? "").split(" ").filter((word) => word !== "");
    const named = (flag: string, otherwise?: number) => {
      const at = args.indexOf(flag);
      if (at === -1) return otherwise;
      const port = Number(args[at + 1]);
      args[at + 1] = "0";
      return port;
    };
    const [native, http] = [named("--port", DEFAULT_PORT)!, named("--http-port")];
    const server = await spawnServer(args, { cwd: work });
    const ports = new Map([[native, server.port]]);
    if (http !== undefined) ports.set(http, server.httpPort!);
    return { ports, absent: new Map(), [Symbol.asyncDispose]: () => server[Symbol.asyncDispose]() };
  }
  const cluster = /^make cluster(?: N=(\d+))?$/.exec(text);
  if (!cluster) return undefined;
  const started = startCluster(["--nodes", cluster[1] ?? "3", "--data", "server_data"], work);
  await started.waitFor(/^Ctrl-C stops them all/, 30_000);
  const ports = new Map<number, number>();
  const absent = new Map([[CLUSTER.front, "haproxy is not installed"]]);
  for (const line of started.lines) {
    const node = /^ {2}node(\d+): 127\.0\.0\.1:(\d+), HTTP 127\.0\.0\.1:(\d+),/.exec(line);
    if (node) {
      ports.set(CLUSTER.native + Number(node[1]), Number(node[2]));
      ports.set(CLUSTER.http + Number(node[1]), Number(node[3]));
    }
    const front = /^Through haproxy: curl -O http:\/\/127\.0\.0\.1:(\d+)\//.exec(line);
    if (front) ports.set(CLUSTER.front, Number(front[1]));
  }
  if (ports.has(CLUSTER.front)) absent.clear();
  return { ports, absent, [Symbol.asyncDispose]: () => started[Symbol.asyncDispose]() };
}

/** Where a command names a port: after an address and a colon or a space, or a port flag. */
const PORT = /(?<=127\.0\.0\.1[: ]|localhost:|--port |--http-port )\d+\b/g;

/** The ports `text` names. */
function portsIn(text: string): number[] {
  return [...text.matchAll(PORT)].map(([port]) => Number(port));
}

/**
 * `text` with each port the docs name rewritten to the one it got, and a client given no address
 * sent to the server's.
 */
function rewrite(text: string, ports: Map<number, number>): string {
  const unknown = portsIn(text).filter((port) => !ports.has(port));
  assertEquals(unknown, [], `${text} names ports no server the docs started listens on`);
  const rewritten = text.replace(PORT, (port) => String(ports.get(Number(port))));
  const addressed = /--(port|host|servers)\b|(^|\s)client \S+ \d+ /.test(rewritten);
  const server = ports.get(DEFAULT_PORT);
  if (addressed || server === undefined) return rewritten;
  return rewritten.replace(/(^|\s)client(?= |$)/, `$1client --port ${server}`);
}

/** The programs a command runs (those of `$(…)` aside: head and cat, which every machine has). */
function programsOf(text: string): string[] {
  const plain = text.replace(/\$\([^)]*\)/g, "x");
  const starts = /(?:^|&&|\|\||[;|])\s*(?:\w+=(?:"[^"]*"|\S*)\s+)*([\w.-]+)/g;
  return [...plain.matchAll(starts)].map((match) => match[1]);
}

/** True when `program` is on `path`. */
async function onPath(program: string, path: string): Promise<boolean> {
  return (await run("sh", ["-c", `command -v ${program}`], { env: { PATH: path } })).code === 0;
}

/** Programs the tests put first on PATH: the client as the README names it, curl with --fail. */
async function shims(folder: string): Promise<void> {
  const quoted = (word: string) => `'${word}'`;
  const client = [Deno.execPath(), ...CLIENT_COMMAND].map(quoted).join(" ");
  const scripts: Record<string, string> = { client: `exec ${client} "$@"` };
  if (await has("curl")) {
    const curl = (await run("sh", ["-c", "command -v curl"])).stdout.trim();
    scripts.curl = `exec ${quoted(curl)} --fail "$@"`;
  }
  for (const [name, script] of Object.entries(scripts)) {
    await Deno.writeTextFile(join(folder, name), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  }
}

/**
 * Runs the commands of `file`'s code blocks in order in a folder of their own, which shares
 * `data` as server_data/; returns what it skipped, and why.
 */
async function runDoc(file: string, data: string, bin: string): Promise<string[]> {
  await using work = await tempFolder();
  await Deno.symlink(data, join(work.path, "server_data"));
  const path = `${bin}:${Deno.env.get("PATH")}`;
  const skipped: string[] = [];
  let started: Started | undefined;
  try {
    for (const block of blocksOf(await Deno.readTextFile(join(ROOT, file)), file)) {
      for (const [i, { where, text }] of block.entries()) {
        const allowed = ALLOWED.find(({ pattern }) => pattern.test(text));
        const missing = [];
        for (const program of programsOf(text)) {
          if (!await onPath(program, path)) missing.push(program);
        }
        if (allowed || missing.length > 0) {
          const why = allowed?.reason ?? `${missing.join(", ")} not installed`;
          const rest = allowed ? [] : block.slice(i + 1).map((command) => command.where);
          skipped.push(`${where} (${why}): ${text}${rest.length ? `; so ${rest.join(", ")}` : ""}`);
          if (allowed) continue;
          break;
        }
        if (/^make (run|cluster)\b/.test(text)) {
          await started?.[Symbol.asyncDispose]();
          started = await start(text, work.path);
          assert(started, `${where}: the test cannot start ${text}`);
          continue;
        }
        const absent = portsIn(text).map((port) => started?.absent.get(port)).find((why) => why);
        if (absent !== undefined) {
          skipped.push(`${where} (${absent}): ${text}`);
          continue;
        }
        const command = rewrite(text, started?.ports ?? new Map());
        const result = await run("bash", ["-c", command], { cwd: work.path, env: { PATH: path } });
        assertEquals(result.code, 0, `${where}: ${command}\n${result.stdout}${result.stderr}`);
      }
    }
  } finally {
    await started?.[Symbol.asyncDispose]();
  }
  return skipped;
}

Deno.test("every command in README.md and docs/*.md runs as written", async (t) => {
  await using data = await tempFolder();
  await run("cp", ["-r", join(ROOT, "server_data"), data.path]);
  const sample = await run(Deno.execPath(), [
    "run",
    "--allow-write=server_data",
    "--allow-read=server_data",
    join(ROOT, "scripts/sample_data.ts"),
  ], { cwd: data.path });
  assertEquals(sample.code, 0, sample.stderr);
  await using bin = await tempFolder();
  await shims(bin.path);
  const docs = [
    "README.md",
    ...[...Deno.readDirSync(join(ROOT, "docs"))]
      .map((entry) => `docs/${entry.name}`).filter((name) => name.endsWith(".md")).sort(),
  ];
  const skipped: string[] = [];
  for (const file of docs) {
    await t.step(file, async () => {
      skipped.push(...await runDoc(file, join(data.path, "server_data"), bin.path));
    });
  }
  await t.step("each command allowed not to run is still in the docs", () => {
    for (const { pattern, reason } of ALLOWED) {
      assert(skipped.some((line) => line.includes(`(${reason})`)), `${pattern} is in no doc`);
    }
  });
  console.log(`skipped:\n  ${skipped.join("\n  ")}`);
});
