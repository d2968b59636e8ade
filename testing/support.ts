/**
 * What the tests and the benchmarks share: the real programs started as a user starts them, and
 * reproducible data to feed them.
 */

/** The repository root, for running the entrypoints. */
export const ROOT = new URL("..", import.meta.url).pathname;

/** Deterministic pseudo-random bytes (xorshift32), so failures can be reproduced. */
export function randomBytes(size: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Certificates made by {@link makeCertificates}: paths of PEM files. */
export interface Certificates {
  /** A private certificate authority's certificate (what a client trusts with --ca), and its key. */
  ca: string;
  caKey: string;
  /** The server's certificate for 127.0.0.1 and localhost, signed by `ca`, and its key. */
  cert: string;
  key: string;
  /** The same key's certificate, signed by `ca`, that expired a day before it was made. */
  expired: string;
  /** The same key's certificate, signed by `ca`, for another name (other.example). */
  otherName: string;
  /** A self-signed certificate for 127.0.0.1 and localhost, made as docs/SECURITY.md says, and its key. */
  selfSigned: string;
  selfSignedKey: string;
}

/**
 * Makes certificates for a TLS server on this machine in `folder`, with openssl: a private
 * authority and the certificates it signs (a good one, an expired one, one for another name), and
 * a self-signed one. EC P-256 keys, which take milliseconds to make.
 */
export async function makeCertificates(folder: string): Promise<Certificates> {
  const openssl = async (command: string) => {
    const result = await run("openssl", command.split(" "), { cwd: folder });
    if (result.code !== 0) throw new Error(`openssl ${command} failed: ${result.stderr.trim()}`);
  };
  const ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  const names = "subjectAltName=DNS:localhost,IP:127.0.0.1";
  await openssl(`req -x509 ${ec} -days 3650 -subj /CN=test-authority -keyout ca.key -out ca.pem`);
  await openssl(`req ${ec} -subj /CN=localhost -keyout server.key -out server.csr`);
  const signed = [
    ["server.pem", 365, names],
    ["expired.pem", -1, names],
    ["other-name.pem", 365, "subjectAltName=DNS:other.example"],
  ] as const;
  for (const [serial, [name, days, extensions]] of signed.entries()) {
    await Deno.writeTextFile(`${folder}/${name}.ext`, `${extensions}\nbasicConstraints=CA:FALSE\n`);
    await openssl(
      `x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial ${serial + 1} ` +
        `-days ${days} -extfile ${name}.ext -out ${name}`,
    );
  }
  await openssl(
    `req -x509 ${ec} -days 365 -subj /CN=localhost -addext ${names} ` +
      "-addext basicConstraints=critical,CA:FALSE -keyout self.key -out self.pem",
  );
  const at = (name: string) => `${folder}/${name}`;
  return {
    ca: at("ca.pem"),
    caKey: at("ca.key"),
    cert: at("server.pem"),
    key: at("server.key"),
    expired: at("expired.pem"),
    otherName: at("other-name.pem"),
    selfSigned: at("self.pem"),
    selfSignedKey: at("self.key"),
  };
}

/** What a finished subprocess printed and returned. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
  bytes: Uint8Array;
}

/**
 * Runs `program` with `args` to completion in `cwd`, capturing what it prints. With `env`, the
 * program gets this environment with `env` added (a key set to undefined is removed).
 */
export async function run(
  program: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string | undefined> } = {},
): Promise<Output> {
  let env: Record<string, string> | undefined;
  if (options.env) {
    env = {};
    for (const [key, value] of Object.entries({ ...Deno.env.toObject(), ...options.env })) {
      if (value !== undefined) env[key] = value;
    }
  }
  const output = await new Deno.Command(program, {
    args,
    cwd: options.cwd ?? ROOT,
    env,
    clearEnv: env !== undefined,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
    bytes: output.stdout,
  };
}

/** How client.ts is run: with the permissions it is built with (scripts/build). */
export const CLIENT_COMMAND = [
  "run",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env=FILESERVER_TOKEN",
  `${ROOT}client.ts`,
];

/**
 * How server.ts is run, as `make run` runs it: its permissions, SO_REUSEPORT for its worker
 * threads (--unstable-net, which deno.json gives only when run from inside the repository), V8's
 * young generation capped at
 * 4 MiB and its old generation let grow by 20% between collections (as the built server has it;
 * see docs/PERFORMANCE.md).
 */
export const SERVER_COMMAND = [
  "run",
  "--allow-net",
  "--allow-read",
  "--unstable-net",
  "--v8-flags=--max-semi-space-size=4,--heap-growing-percent=20",
  `${ROOT}server.ts`,
];

/**
 * Worker threads of the servers the tests start (in process or as server.ts):
 * FILESERVER_TEST_WORKERS, else 1, a server of one thread. `make test` runs the tests of servers
 * once as they are and once with 4.
 */
export const TEST_WORKERS = Number(Deno.env.get("FILESERVER_TEST_WORKERS") ?? "1");

/** Sends `process` `signal` unless it has already ended, and waits for its end. */
export async function ended(
  process: Deno.ChildProcess,
  signal: Deno.Signal,
): Promise<Deno.CommandStatus> {
  try {
    process.kill(signal);
  } catch (error) {
    // A process that has ended (whether or not its end has been seen yet) takes no signal.
    if (!(error instanceof TypeError || error instanceof Deno.errors.NotFound)) throw error;
  }
  return await process.status;
}

/** The lines of a stream of text, each as it completes (the last one even without a newline). */
export async function* textLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest !== "") yield rest;
}

/** The lines a program prints, collected as they come, and a way to wait for one. */
export interface WatchedLines {
  /** Every line so far, of every stream watched, in the order they came. */
  lines: string[];
  /** Resolves with the first line that matches `pattern`; rejects if none has within `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves once every stream has ended. */
  read: Promise<void>;
}

/** Watches the lines of `streams` (a process's standard output and error, say). */
export function watchLines(streams: ReadableStream<Uint8Array>[]): WatchedLines {
  const lines: string[] = [];
  const watchers: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const read = Promise.all(streams.map(async (stream) => {
    for await (const line of textLines(stream)) {
      lines.push(line);
      for (const w of watchers.filter((w) => w.pattern.test(line))) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve(line);
      }
    }
  })).then(() => {});
  const waitFor = (pattern: RegExp, timeoutMs = 10_000) => {
    const seen = lines.find((line) => pattern.test(line));
    if (seen) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.splice(watchers.indexOf(watcher), 1);
        reject(new Error(`no line matching ${pattern} came in ${timeoutMs} ms`));
      }, timeoutMs);
      const watcher = {
        pattern,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      watchers.push(watcher);
    });
  };
  return { lines, waitFor, read };
}

/** A server started as a subprocess (server.ts), for signals and the startup line. */
export interface ServerProcess extends AsyncDisposable {
  process: Deno.ChildProcess;
  port: number;
  /** The HTTP port, when it has one (--http-port). */
  httpPort?: number;
  /** Lines logged so far (the reader keeps collecting). */
  lines: string[];
  /** Resolves when a logged line matches `pattern`; rejects if none has within `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

/**
 * Starts server.ts with `args` (plus --port 0, and --workers TEST_WORKERS unless `args` says) in
 * `cwd` (the repository by default) and waits for its listening line. With `openFiles`, the server runs under that open-file limit (`ulimit -n`),
 * as a user's shell may set.
 */
export async function spawnServer(
  args: string[],
  { openFiles, cwd = ROOT }: { openFiles?: number; cwd?: string } = {},
): Promise<ServerProcess> {
  const workers = args.includes("--workers") ? [] : ["--workers", String(TEST_WORKERS)];
  const command = [Deno.execPath(), ...SERVER_COMMAND, "--port", "0", ...workers, ...args];
  const limited = ["-c", `ulimit -n ${openFiles} && exec "$0" "$@"`, ...command];
  const process = new Deno.Command(openFiles === undefined ? command[0] : "sh", {
    args: openFiles === undefined ? command.slice(1) : limited,
    cwd,
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const { lines, waitFor, read } = watchLines([process.stdout]);
  const listening = await waitFor(/listening/);
  const port = Number(/address=[^ ]*:(\d+)/.exec(listening)![1]);
  const http = /http=[^ ]*:(\d+)/.exec(listening);
  return {
    process,
    port,
    httpPort: http ? Number(http[1]) : undefined,
    lines,
    waitFor,
    async [Symbol.asyncDispose]() {
      await ended(process, "SIGKILL");
      await read;
    },
  };
}

/**
 * deploy/haproxy.cfg for nodes whose HTTP ports are `httpPorts` (on 127.0.0.1), with haproxy
 * listening on `frontPort`: the shipped config, its server lines and port replaced; and haproxy's
 * stats page on `statsPort`, which {@link haproxyChecked} reads.
 */
export async function haproxyConfig(
  httpPorts: number[],
  frontPort: number,
  statsPort: number,
): Promise<string> {
  const template = await Deno.readTextFile(`${ROOT}deploy/haproxy.cfg`);
  const servers = httpPorts.map((port, i) => `    server node${i + 1} 127.0.0.1:${port}`);
  const stats =
    `\nfrontend stats\n    bind 127.0.0.1:${statsPort}\n    stats enable\n    stats uri /\n`;
  return template
    .replace(/( {4}server node\d+ .*\n)+/, servers.join("\n") + "\n")
    .replace(/bind 127\.0\.0\.1:\d+/, `bind 127.0.0.1:${frontPort}`) + stats;
}

/**
 * Resolves once haproxy (its stats page on `statsPort`, see {@link haproxyConfig}) has checked
 * each of its `nodes` and found it up; rejects, saying how many it found, after `timeoutMs`.
 */
export async function haproxyChecked(
  statsPort: number,
  nodes: number,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let up = 0;; await new Promise((resolve) => setTimeout(resolve, 25))) {
    const csv = await fetch(`http://127.0.0.1:${statsPort}/;csv`).then(
      (response) => response.text(),
      () => "", // not listening yet
    );
    const [head = "", ...rows] = csv.split("\n").map((line) => line.split(","));
    const [status, check] = ["status", "check_status"].map((name) => head.indexOf(name));
    up = rows.filter((row) => row[0] === "nodes" && row[status] === "UP" && row[check] === "L7OK")
      .length;
    if (up === nodes) return;
    if (Date.now() > deadline) throw new Error(`haproxy found ${up} of ${nodes} nodes up`);
  }
}

/** A free TCP port on loopback (free when asked; taken by whoever binds it first). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Resolves once something accepts connections on `port` of 127.0.0.1 (within about 5 s). */
export async function accepting(port: number): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (error) {
      if (attempt > 200) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

/**
 * Chromium's flags for a run without a window or a sandbox, that fetches nothing of its own accord
 * (add `--user-data-dir` with a fresh folder, so no earlier run's state is used).
 */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** True when `command` is on PATH. */
export async function has(command: string): Promise<boolean> {
  const found = await new Deno.Command("sh", {
    args: ["-c", `command -v ${command}`],
    stdout: "null",
  }).output();
  return found.success;
}
