/**
 * The client's command line as a user meets it: both forms parse to the same commands, every
 * command has its help, `--output` names a folder or one file's new name, `list` reads well in the
 * user's time zone, and a server that answers nothing does not leave the client waiting forever.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { parseClientArgs } from "../client.ts";
import { UsageError } from "../lib/shared/cli.ts";
import { runClient, startServer, tempFolder } from "./harness.ts";
import { CLIENT_COMMAND, run } from "../testing/support.ts";

Deno.test("parseClientArgs", async (t) => {
  await t.step("the original form means what the modern one does", () => {
    assertEquals(
      parseClientArgs(["localhost", "5000", "file", "docs/a.txt"]),
      parseClientArgs(["--host", "localhost", "--port", "5000", "get", "docs/a.txt"]),
    );
    const command = parseClientArgs(["127.0.0.1", "4457", "list"]);
    assert(!("help" in command));
    assertEquals([command.command, command.servers], ["list", ["127.0.0.1:4457"]]);
  });

  await t.step("defaults: 127.0.0.1:4457, client_data, verified, 30 s timeout", () => {
    const command = parseClientArgs(["get", "a.txt"]);
    assert(!("help" in command));
    assertEquals(
      [command.servers, command.output, command.verify, command.timeoutMs],
      [["127.0.0.1:4457"], "client_data", true, 30_000],
    );
  });

  await t.step("every command has its own help; file is get's", () => {
    const help = (args: string[]) => {
      const parsed = parseClientArgs(args);
      assert("help" in parsed, `${args.join(" ")} gave no help`);
      return parsed.help;
    };
    assert(help(["--help"]).includes("Exit codes: 0 all done"));
    assert(help(["get", "--help"]).includes("--no-verify"));
    assertEquals(help(["file", "--help"]), help(["get", "-h"]));
    assertEquals(help(["127.0.0.1", "4457", "file", "-h"]), help(["get", "-h"]));
    assert(help(["list", "-h"]).includes("--json"));
    assert(help(["stats", "-h"]).includes("--json"));
    assert(help(["help", "-h"]).startsWith("Usage: client"));
  });

  await t.step("mistakes are usage errors with one sentence", () => {
    const cases: [string[], string][] = [
      [["get"], "get needs at least one NAME"],
      [["list", "a.txt"], 'list takes no names, but got "a.txt"'],
      [["host", "1", "list", "--port", "2"], "give the server either as HOST PORT or with"],
      [["get", "a", "--timeout", "0"], '--timeout takes a number of seconds above 0, not "0"'],
    ];
    for (const [args, message] of cases) {
      try {
        parseClientArgs(args);
        assert(false, `${args.join(" ")} was accepted`);
      } catch (error) {
        assert(error instanceof UsageError, String(error));
        assert(error.message.startsWith(message), error.message);
      }
    }
  });
});

Deno.test("list reads well: sorted, human sizes, local times, cached or not", async () => {
  await using data = await tempFolder({
    "zeta.txt": "z",
    "big.bin": new Uint8Array(3 * 1024 * 1024),
    "docs/readme.txt": "read me\n",
  });
  const noon = new Date("2024-03-01T12:00:00Z");
  for (const name of ["zeta.txt", "big.bin", "docs/readme.txt"]) {
    await Deno.utime(`${data.path}/${name}`, noon, noon);
  }
  await using server = await startServer(data.path);
  const port = String(server.addr.port);
  await using out = await tempFolder();
  assertEquals((await runClient(["--port", port, "get", "zeta.txt", "-o", out.path])).code, 0);

  const zone = Deno.env.get("TZ");
  Deno.env.set("TZ", "Asia/Kolkata"); // UTC+05:30, so a UTC time shows as 17:30
  try {
    const modern = await runClient(["--port", port, "list"]);
    assertEquals(modern.code, 0, modern.stderr);
    const [head, ...rows] = modern.stdout.split("\n");
    assertEquals(head, "      SIZE  MODIFIED          CACHED  NAME");
    // In the order the disk gives, as find lists them.
    assertEquals(rows.sort(), [
      "",
      "       1 B  2024-03-01 17:30  yes     zeta.txt",
      "       8 B  2024-03-01 17:30  no      docs/readme.txt",
      "   3.0 MiB  2024-03-01 17:30  no      big.bin",
    ]);
    assertEquals((await runClient(["127.0.0.1", port, "list"])).stdout, modern.stdout);
  } finally {
    if (zone === undefined) Deno.env.delete("TZ");
    else Deno.env.set("TZ", zone);
  }

  const json = JSON.parse((await runClient(["--port", port, "list", "--json"])).stdout);
  assertEquals(json.find((entry: { name: string }) => entry.name === "big.bin"), {
    name: "big.bin",
    size: 3 * 1024 * 1024,
    modified: "2024-03-01T12:00:00.000Z",
    mtimeMs: noon.getTime(),
    cached: false,
  });
});

Deno.test("a reader that leaves early (| head) ends the client in silence, as SIGPIPE would", async () => {
  const files = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`f${i}.txt`, "x"]));
  await using data = await tempFolder(files);
  await using server = await startServer(data.path);
  const client = [Deno.execPath(), ...CLIENT_COMMAND, "--port", String(server.addr.port), "list"];
  const piped = await run("bash", [
    "-c",
    '"$@" 2>stderr.txt | head -n 1; echo "${PIPESTATUS[0]}"; cat stderr.txt',
    "client",
    ...client,
  ], { cwd: data.path });
  assertEquals(piped.stdout, "      SIZE  MODIFIED          CACHED  NAME\n141\n");
});

Deno.test("a server that sends nothing: exit 3 after --timeout, one line", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepted = listener.accept(); // and never answer
  const result = await runClient(["--port", String(port), "--timeout", "0.2", "list"]);
  (await accepted).close();
  listener.close();
  assertEquals(result.code, 3);
  assertEquals(
    result.stderr,
    `client: connection to 127.0.0.1:${port} broke: the server sent nothing for 0.2s\n`,
  );
});

Deno.test("--output: a folder, or for one file the name it is saved as, as curl -o has it", async (t) => {
  await using data = await tempFolder({ "a.txt": "alpha", "b.txt": "beta" });
  await using server = await startServer(data.path);
  await using out = await tempFolder({ "folder/.keep": "", "old.txt": "old" });
  const get = (...args: string[]) =>
    runClient(["--port", String(server.addr.port), "get", ...args]);
  const files = (path: string) => [...Deno.readDirSync(path)].map((entry) => entry.name).sort();

  await t.step("one file, a path that is nothing yet: saved as that name", async () => {
    const result = await get("a.txt", "-o", `${out.path}/new/renamed.txt`);
    assertEquals([result.code, result.stdout], [0, `saved ${out.path}/new/renamed.txt (5 B)\n`]);
    assertEquals(await Deno.readTextFile(`${out.path}/new/renamed.txt`), "alpha");
    assertEquals(files(`${out.path}/new`), ["renamed.txt"]);
  });

  await t.step("one file, an existing file: replaced", async () => {
    const result = await get("a.txt", "--output", `${out.path}/old.txt`);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(await Deno.readTextFile(`${out.path}/old.txt`), "alpha");
  });

  await t.step(
    "one file, an existing folder or a path ending in /: saved in it by name",
    async () => {
      for (const folder of [`${out.path}/folder`, `${out.path}/made/`]) {
        const result = await get("a.txt", "-o", folder);
        assertEquals(result.code, 0, result.stderr);
        assertEquals(await Deno.readTextFile(`${folder.replace(/\/$/, "")}/a.txt`), "alpha");
      }
    },
  );

  await t.step("several files: always a folder", async () => {
    const result = await get("a.txt", "b.txt", "-o", `${out.path}/several`);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(files(`${out.path}/several`), ["a.txt", "b.txt"]);
  });

  await t.step("get --help says so", () => {
    const help = parseClientArgs(["get", "--help"]);
    assert("help" in help && help.help.includes("as curl -o and wget -O"), JSON.stringify(help));
  });
});
