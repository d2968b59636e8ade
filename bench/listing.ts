/**
 * Listing a tree of 100,000 files in 100 folders, whole processes timed as a user runs them: our
 * client's `list --json` and `list` beside `find -printf` and `ls -lR` over the same tree; then
 * the HTTP pages of its 100 folders (HTML and JSON, one curl over one connection) beside nginx's
 * autoindex. The peak memory of each process (GNU time) and the server's before and after are
 * shown too, since a listing is meant to take no more memory the more files there are. What needs
 * a missing tool is skipped, saying so (Debian: nginx-light curl time).
 *
 * Usage: deno run -A bench/listing.ts [--quick | --smoke]
 */

import { CLIENT_COMMAND, freePort, has } from "../testing/support.ts";
import { lengthOf } from "./length.ts";
import { type Service, startNginx, startServer } from "./services.ts";

const length = lengthOf(Deno.args);
/** The tree (folders of files each) and how many runs of each command the median is taken of. */
const RUN = {
  full: { folders: 100, files: 1000, runs: 5 },
  quick: { folders: 100, files: 1000, runs: 2 },
  smoke: { folders: 4, files: 250, runs: 1 },
}[length];
const TIME = "/usr/bin/time";

/** One timed run: wall seconds, and the process's peak memory in MiB when GNU time is there. */
interface Run {
  seconds: number;
  peakMiB?: number;
}

/** Runs `command args` with its output dropped, `runs` times: the median run by time. */
async function timed(command: string, args: string[]): Promise<Run> {
  const timing = await has(TIME);
  const runs: Run[] = [];
  for (let i = 0; i < RUN.runs; i++) {
    const started = performance.now();
    const result = await new Deno.Command(timing ? TIME : command, {
      args: timing ? ["-f", "%M", command, ...args] : args,
      stdout: "null",
      stderr: "piped",
    }).output();
    const seconds = (performance.now() - started) / 1000;
    const stderr = new TextDecoder().decode(result.stderr).trim();
    if (!result.success) throw new Error(`${command} failed: ${stderr}`);
    runs.push({ seconds, peakMiB: timing ? Number(stderr.split("\n").at(-1)) / 1024 : undefined });
  }
  return runs.sort((a, b) => a.seconds - b.seconds)[runs.length >> 1];
}

/** A line of the report: what ran, its time, its ratio to `base`, its peak memory. */
function report(what: string, run: Run, base?: Run): void {
  const ratio = base ? `  ×${(run.seconds / base.seconds).toFixed(2)}` : "";
  const peak = run.peakMiB === undefined ? "" : `  peak ${run.peakMiB.toFixed(0)} MiB`;
  console.log(`  ${what.padEnd(34)} ${run.seconds.toFixed(3).padStart(7)} s${ratio}${peak}`);
}

/** The server's resident memory in MiB. */
function rssMiB(service: Service): number {
  const status = Deno.readTextFileSync(`/proc/${service.process.pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Makes the tree: RUN.folders folders of RUN.files empty files. */
async function makeTree(root: string): Promise<void> {
  const script = `for d in $(seq -w 1 ${RUN.folders}); do mkdir d$d && ` +
    `(cd d$d && seq -f 'f%05g.txt' 1 ${RUN.files} | xargs touch) || exit 1; done`;
  const made = await new Deno.Command("sh", { args: ["-c", script], cwd: root }).output();
  if (!made.success) throw new Error("the tree could not be made");
}

/** The URLs of every folder's page under `base`. */
function pages(base: string): string[] {
  return Array.from({ length: RUN.folders }, (_, i) => {
    return `${base}/d${String(i + 1).padStart(String(RUN.folders).length, "0")}/`;
  });
}

/** The pages of every folder from our HTTP port, and from nginx's autoindex, with curl. */
async function comparePages(root: string, http: number, work: string): Promise<void> {
  if (!await has("curl")) return console.log("HTTP page comparison skipped: needs curl");
  const ours = `http://127.0.0.1:${http}`;
  console.log(`\nthe ${RUN.folders} folders' pages, one curl, one connection:`);
  const html = await timed("curl", ["-sf", ...pages(ours)]);
  report("ours, HTML", html);
  const json = await timed("curl", ["-sf", "-H", "Accept: application/json", ...pages(ours)]);
  report("ours, JSON", json);
  if (!await has("nginx")) return console.log("autoindex comparison skipped: needs nginx");
  const nginx = await startNginx(root, `${work}/nginx`, {
    server: `location / { autoindex on; } location /json/ { alias ${root}/; autoindex on; ` +
      "autoindex_format json; }",
  });
  try {
    const base = `http://127.0.0.1:${nginx.port}`;
    report("nginx autoindex, HTML", await timed("curl", ["-sf", ...pages(base)]), html);
    report("nginx autoindex, JSON", await timed("curl", ["-sf", ...pages(`${base}/json`)]), json);
  } finally {
    await nginx.stop();
  }
}

if (import.meta.main) {
  const work = await Deno.makeTempDir({ prefix: "fileserver-listing-bench-" });
  const root = `${work}/tree`;
  try {
    // Readable by nginx's workers, which run as nobody when the benchmark runs as root.
    await Deno.chmod(work, 0o755);
    await Deno.mkdir(root);
    await makeTree(root);
    const files = RUN.folders * RUN.files;
    console.log(
      `listing ${files.toLocaleString("en-US")} files in ${RUN.folders} folders ` +
        `(median of ${RUN.runs}; ×: time to the line above's tool)`,
    );
    const find = await timed("find", [root, "-printf", "%P %s %T@\n"]);
    report("find -printf", find);
    report("ls -lR", await timed("ls", ["-lR", root]), find);
    const http = freePort();
    const server = await startServer(["--data", root, "--http-port", String(http)]);
    try {
      const before = rssMiB(server);
      const client = (...args: string[]) =>
        timed(Deno.execPath(), [...CLIENT_COMMAND, "--port", String(server.port), ...args]);
      report("client list --json (whole process)", await client("list", "--json"), find);
      report("client list (whole process)", await client("list"), find);
      console.log(
        `  server memory: ${before.toFixed(0)} MiB before, ` +
          `${rssMiB(server).toFixed(0)} MiB after the lists`,
      );
      await comparePages(root, http, work);
      console.log(`  server memory after the pages: ${rssMiB(server).toFixed(0)} MiB`);
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
