/**
 * A signal is honoured by its deadline whatever holds the server up: the graceful shutdown gets
 * --shutdown-timeout for answers in flight, and a watchdog on a thread of its own ends the process
 * 2 s after that if it still runs, saying what it cut.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { tempFolder } from "./harness.ts";
import { ROOT, SERVER_COMMAND, type ServerProcess, spawnServer } from "../testing/support.ts";

const SHUTDOWN_TIMEOUT_MS = 1000;
/** What the process may take past the shutdown timeout before the watchdog ends it (watchdog.ts). */
const WATCHDOG_GRACE_MS = 2000;
/** Room for a busy machine to end a process and tell the parent, beyond the deadline itself. */
const SLACK_MS = 1500;
const DEADLINE_MS = SHUTDOWN_TIMEOUT_MS + WATCHDOG_GRACE_MS + SLACK_MS;
const TIMEOUT_FLAG = ["--shutdown-timeout", String(SHUTDOWN_TIMEOUT_MS / 1000)];

/** Sends SIGTERM to `process`; its status, or "overrun" if it still runs after DEADLINE_MS. */
async function terminate(process: Deno.ChildProcess): Promise<Deno.CommandStatus | "overrun"> {
  const signalled = performance.now();
  process.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const overrun = new Promise<"overrun">((resolve) => {
    timer = setTimeout(resolve, DEADLINE_MS, "overrun");
  });
  const ended = await Promise.race([process.status, overrun]);
  clearTimeout(timer);
  const how = ended === "overrun" ? "still running" : ended.success ? "ended" : "cut";
  console.log(`${Math.round(performance.now() - signalled)} ms after SIGTERM: ${how}`);
  return ended;
}

/** The port of the HTTP listener that `server`'s startup line names. */
async function httpPort(server: ServerProcess): Promise<number> {
  return Number(/ http=[^ ]*:(\d+)/.exec(await server.waitFor(/listening/))![1]);
}

Deno.test("SIGTERM while many clients list a large folder: a graceful stop in time", async () => {
  // 20,000 files in one folder, whose page 16 clients ask for at once, each asking again as soon
  // as it has it: a load that once kept the server from its shutdown for 20-30 s, until the
  // watchdog cut it. Listings are now cut short at the shutdown, so the server stops on its own.
  await using data = await tempFolder();
  const folder = join(data.path, "many");
  await Deno.mkdir(folder);
  for (let i = 0; i < 20_000; i += 1000) {
    const batch = Array.from({ length: 1000 }, (_, j) => join(folder, `file-${i + j}.txt`));
    await Promise.all(batch.map((path) => Deno.writeFile(path, new Uint8Array())));
  }
  await using server = await spawnServer([
    "--data",
    data.path,
    "--http-port",
    "0",
    ...TIMEOUT_FLAG,
  ]);
  const url = `http://127.0.0.1:${await httpPort(server)}/many/`;
  const firstPages = Array.from({ length: 16 }, () => Promise.withResolvers<void>());
  const clients = firstPages.map(async (first) => {
    try {
      for (;;) {
        await (await fetch(url)).text();
        first.resolve();
      }
    } catch {
      // the server has gone
    }
  });
  // Under way once every client has had a page, and so is asking again.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const loaded = await Promise.race([
    Promise.all(firstPages.map((first) => first.promise)).then(() => true),
    new Promise<false>((resolve) => timer = setTimeout(resolve, 30_000, false)),
  ]);
  clearTimeout(timer);
  assert(loaded, "16 clients did not all have a page within 30 s");
  const signalled = performance.now();
  const ended = await terminate(server.process);
  const ms = performance.now() - signalled;
  await Promise.all(clients);
  assert(ended !== "overrun", `the server still ran ${DEADLINE_MS} ms after SIGTERM`);
  assert(ended.success, `cut by the watchdog: ${server.lines.join("\n")}`);
  assert(ms < SHUTDOWN_TIMEOUT_MS + SLACK_MS, `stopped ${Math.round(ms)} ms after SIGTERM`);
  assert(server.lines.some((line) => / stopped /.test(line)), server.lines.join("\n"));
});

Deno.test("SIGTERM while nothing reads the log: ended by the deadline", async () => {
  // The server's standard output is a pipe that its reader stops reading once the server has
  // started: the log's last lines can never be written, and the shutdown waited for them for good.
  await using data = await tempFolder({ "a.txt": "a" });
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      ...SERVER_COMMAND,
      "--port",
      "0",
      "--http-port",
      "0",
      "--data",
      data.path,
      ...TIMEOUT_FLAG,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  await using _ = { [Symbol.asyncDispose]: () => kill(process) };
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!/ listening .*\n/.test(seen)) seen += (await reader.read()).value ?? "";
  reader.releaseLock(); // and nothing reads the log again
  const url = `http://127.0.0.1:${/ http=[^ ]*:(\d+)/.exec(seen)![1]}/-/healthy`;
  // Far more lines than a pipe holds (64 KiB): the rest wait in the server.
  for (let i = 0; i < 2000; i++) await (await fetch(url)).text();
  const ended = await terminate(process);
  assert(ended !== "overrun", `the server still ran ${DEADLINE_MS} ms after SIGTERM`);
  assertEquals(ended.signal, "SIGKILL");
});

/** Ends `process` if it still runs, and waits for it. */
async function kill(process: Deno.ChildProcess): Promise<void> {
  try {
    process.kill("SIGKILL");
  } catch {
    // already ended
  }
  await process.status;
  await process.stdout.cancel().catch(() => {});
}
