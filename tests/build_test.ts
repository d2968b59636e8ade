/**
 * `make build` and the executables it makes. Where Deno's runtime (denort) can be had, the
 * compiled server and client run end to end against real files; where it cannot, `make build`
 * must say so in at most three lines naming DENORT_BIN and exit non-zero, and the tests of the
 * executables are skipped with that reason printed.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { tempFolder } from "./harness.ts";
import { type Output, randomBytes, run } from "../testing/support.ts";

/** `make build` as a user types it (not as a sub-make of `make test`), into `outDir`. */
function makeBuild(outDir: string, env: Record<string, string> = {}): Promise<Output> {
  const notSubMake = { MAKEFLAGS: undefined, MFLAGS: undefined, MAKELEVEL: undefined };
  return run("make", ["build"], { env: { ...notSubMake, OUT_DIR: outDir, ...env } });
}

/** Every line `make build` printed, on either stream. */
function printed(result: Output): string[] {
  return (result.stdout + result.stderr).split("\n").filter((line) => line.trim() !== "");
}

/** A failed `make build` explained itself: non-zero, at most 3 lines, naming DENORT_BIN. */
function assertShortFailure(result: Output): void {
  const lines = printed(result);
  assert(result.code !== 0, "make build succeeded");
  assert(lines.length <= 3, `make build printed ${lines.length} lines:\n${lines.join("\n")}`);
  assert(lines.some((line) => line.includes("DENORT_BIN")), lines.join("\n"));
}

// One build attempt decides whether the executables can be tested; `make test` pays for it once.
const out = await Deno.makeTempDir({ prefix: "fileserver-build-" });
globalThis.addEventListener("unload", () => Deno.removeSync(out, { recursive: true }));
const build = await makeBuild(out);
const built = build.code === 0;
if (!built) {
  console.log(
    "build_test: skipping the tests of the compiled executables, because make build could not " +
      `make them here:\n  ${printed(build)[0]}`,
  );
}

Deno.test("make build without a usable runtime stops in three lines naming DENORT_BIN", async (t) => {
  if (!built) {
    await t.step("with no runtime to be had (as here)", () => assertShortFailure(build));
  }

  await t.step("with DENORT_BIN set to a missing file; nothing is written", async () => {
    await using target = await tempFolder();
    const result = await makeBuild(`${target.path}/dist`, { DENORT_BIN: `${target.path}/nope` });
    assertShortFailure(result);
    assert(result.stderr.includes(`${target.path}/nope`), result.stderr);
    assertEquals([...Deno.readDirSync(target.path)], []);
  });

  await t.step(
    "with DENORT_BIN set to a file that is not a runtime; nothing is written",
    async () => {
      await using target = await tempFolder({ "denort": "not a runtime\n" });
      const result = await makeBuild(`${target.path}/dist`, {
        DENORT_BIN: `${target.path}/denort`,
      });
      assertShortFailure(result);
      assert(result.stderr.includes("not a usable denort"), result.stderr);
      assertEquals([...Deno.readDirSync(target.path)].map((entry) => entry.name), ["denort"]);
    },
  );
});

/** The permissions `deno compile` embedded in `executable` (in its metadata, which is JSON). */
async function embeddedPermissions(executable: string): Promise<Record<string, unknown>> {
  const bytes = await Deno.readFile(executable);
  const key = new TextEncoder().encode('"permissions":{');
  const start = lastIndexOf(bytes, key);
  assert(start >= 0, `no embedded permissions found in ${executable}`);
  const end = bytes.indexOf("}".charCodeAt(0), start);
  return JSON.parse(new TextDecoder().decode(bytes.subarray(start + key.length - 1, end + 1)));
}

/** Where `needle` last occurs in `haystack`, or -1 (an executable is too big to decode whole). */
function lastIndexOf(haystack: Uint8Array, needle: Uint8Array): number {
  search: for (let at = haystack.length - needle.length; at >= 0; at--) {
    for (let i = 0; i < needle.length; i++) if (haystack[at + i] !== needle[i]) continue search;
    return at;
  }
  return -1;
}

/** The kinds of permission granted: null is "not granted", a list (an empty one: any) is. */
function granted(permissions: Record<string, unknown>): string[] {
  return Object.entries(permissions)
    .filter(([key, value]) => key.startsWith("allow_") && key !== "allow_import" && value !== null)
    .map(([key]) => key)
    .sort();
}

/** Reads the server's log until its listening line, then keeps draining it in the background. */
async function listeningPort(
  server: Deno.ChildProcess,
): Promise<{ port: number; drained: Promise<void> }> {
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the server exited before listening:\n${seen}`);
    seen += value;
    const match = /listening.*address=[^ ]*:(\d+)/.exec(seen);
    if (match) {
      const drained = (async () => {
        while (!(await reader.read()).done);
      })();
      return { port: Number(match[1]), drained };
    }
  }
}

Deno.test(
  built
    ? "the compiled server and client, end to end"
    : "the compiled server and client (skipped: make build had no Deno runtime; set DENORT_BIN)",
  { ignore: !built },
  async (t) => {
    const big = randomBytes(3 * 1024 * 1024 + 5, 11);
    await using data = await tempFolder({ "hello.txt": "hello, world\n", "nested/big.bin": big });
    await using cwd = await tempFolder({ "client_data/.keep": "" });
    const server = new Deno.Command(`${out}/server`, {
      args: ["--port", "0", "--data", data.path],
      cwd: cwd.path,
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    await using _stopped = {
      async [Symbol.asyncDispose]() {
        try {
          server.kill("SIGKILL");
        } catch {
          // already exited, as the last step expects
        }
        await server.status;
      },
    };
    const { port, drained } = await listeningPort(server);
    const client = (...args: string[]) => run(`${out}/client`, args, { cwd: cwd.path });

    await t.step(
      "the server has --allow-net --allow-read only; the client adds --allow-write and its token variable",
      async () => {
        assertEquals(granted(await embeddedPermissions(`${out}/server`)), [
          "allow_net",
          "allow_read",
        ]);
        assertEquals(
          granted(await embeddedPermissions(`${out}/client`)),
          ["allow_env", "allow_net", "allow_read", "allow_write"],
        );
      },
    );

    await t.step("list, in the original form, names every file", async () => {
      const result = await client("127.0.0.1", String(port), "list");
      assertEquals(result.code, 0, result.stderr);
      assert(result.stdout.includes("hello.txt") && result.stdout.includes("nested/big.bin"));
    });

    await t.step(
      "file NAME, in the original form, saves the exact bytes in client_data",
      async () => {
        const result = await client("127.0.0.1", String(port), "file", "nested/big.bin");
        assertEquals(result.code, 0, result.stderr);
        assertEquals(await Deno.readFile(`${cwd.path}/client_data/nested/big.bin`), big);
      },
    );

    await t.step("get --output - writes the exact bytes to stdout", async () => {
      const result = await client("--port", String(port), "get", "hello.txt", "--output", "-");
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stdout, "hello, world\n");
    });

    await t.step("a missing file exits 1 and names the file", async () => {
      const result = await client("--port", String(port), "get", "nope.txt", "--output", "-");
      assertEquals(result.code, 1);
      assert(result.stderr.includes("nope.txt"), result.stderr);
    });

    await t.step("SIGTERM stops the server with exit 0; then the client exits 3", async () => {
      server.kill("SIGTERM");
      assertEquals((await server.status).code, 0);
      await drained;
      assertEquals((await client("--port", String(port), "list")).code, 3);
    });
  },
);
