/**
 * A soak run: server.ts as its own process over a folder of generated files (some larger than its
 * small cache), under mixed load for a set time with a fixed seed: framed lists, hits, misses,
 * resumed and pipelined gets, the original dialect (file@ and list), bad input (garbage and bad
 * names) and clients that vanish mid-transfer. Every honest answer is checked byte for byte
 * against the known contents, and its digest against theirs in the digest the connection agreed
 * on (XXH3-128, as the client offers it first). The server's `stats` is
 * sampled for the cache's bytes (which must never pass the cap) and /proc for its RSS, and a
 * probe in a process of its own (bench/probe.ts) times how long a new client waits.
 *
 * Usage: deno run -A bench/soak.ts [--seconds N] [--seed S] [--clients C] [--cache-size SIZE]
 * Exits 1 on any wrong byte, lost file, cache over its cap, failed honest request, bad input the
 * server did not refuse (or close on before its idle timeout), error in the server's log, new
 * client the probe could not get greeted, or an unclean exit on SIGTERM. The RSS and latency
 * figures are reported, not judged.
 */

import { Buffer } from "node:buffer";
import { FileClient } from "../lib/client/client.ts";
import { ServerError } from "../lib/client/errors.ts";
import { isDisconnect } from "../lib/server/errors.ts";
import { parseCommandLine, parseInteger, parseSizeFlag, UsageError } from "../lib/shared/cli.ts";
import { digestOf, DIGESTS, sameDigest } from "../lib/shared/digest.ts";
import { ErrorCode, errorCodeName } from "../lib/shared/errors.ts";
import { GREETING } from "../lib/shared/greeting.ts";
import { preamble } from "../lib/shared/protocol.ts";
import { formatBytes } from "../lib/shared/units.ts";
import { randomBytes, ROOT, spawnServer } from "../testing/support.ts";
import type { ProbeResult } from "./probe.ts";
import { Rng } from "./traces.ts";

/** What a soak run does. */
export interface SoakOptions {
  /** How long the load runs. */
  seconds: number;
  /** Seeds the files and every client's choices. */
  seed: number;
  /** Clients running at once. */
  clients: number;
  /** The server's cache capacity (default 16 MiB, smaller than the largest files). */
  cacheBytes?: number;
  /** The server's worker threads (--workers; default 1). */
  workers?: number;
}

/** What a soak run measured; `failures` is empty when it passed. */
export interface SoakResult {
  options: Required<SoakOptions>;
  /** Requests the server counted, in both dialects, bad ones included. */
  requests: number;
  /** Operations the clients ran, by kind. */
  operations: Record<string, number>;
  /** Honest operations that did not get exactly the right answer. */
  honestErrors: number;
  /** Bad input that was not refused as it should be (or hung the connection). */
  badInputMishandled: number;
  /** A few of the errors, for the report. */
  errorSamples: string[];
  wrongBytes: number;
  lostFiles: number;
  /** Body bytes received and checked by honest clients. */
  bytesChecked: number;
  /** The largest cache use `stats` reported, and the same with reservations counted. */
  maxCacheBytes: number;
  maxCacheCommitted: number;
  cacheCapacity: number;
  /**
   * The server's RSS in bytes: before the load, the largest VmRSS sampled and, of that, the
   * largest private part (RssAnon: what is not the runtime's code mapped from its executable),
   * and its own peak (VmHWM).
   */
  startRssBytes: number;
  maxRssBytes: number;
  maxRssAnonBytes: number;
  peakRssBytes: number;
  /**
   * The pages of files the server maps (RssFile: the runtime's own code, from its executable,
   * shared with every other Deno process), the largest sampled: nearly the same at rest and under
   * load, so the peak less this is the peak of the private part.
   */
  maxRssFileBytes: number;
  /** The private part (RssAnon) before the load: the runtime and every thread's heap at rest. */
  startRssAnonBytes: number;
  /**
   * The longest a new connection of the load generator waited for its greeting (ms), and for a
   * close after bad input: both include the generator's own delays, as it is busy with the load.
   */
  maxGreetingMs: number;
  maxBadInputCloseMs: number;
  /** The longest the load generator's own event loop was late (ms): how saturated it was. */
  maxLoopLagMs: number;
  /** What a new client saw, measured by bench/probe.ts in a process of its own. */
  probe?: ProbeResult;
  /** Errors the server logged that no peer caused. */
  serverErrors: number;
  /** How the server exited on SIGTERM after the load. */
  exitCode: number | null;
  failures: string[];
}

/** The folder the generated files go to (git-ignored). */
const DATA = `${ROOT}bench/.work/soak`;
const SAMPLE_MS = 250;
/** How often the load generator checks how late its own event loop runs. */
const LAG_TICK_MS = 100;
/** How long clients get to finish what they started once the time is up. */
const FINISH_MS = 60_000;
/**
 * The server's idle timeout, and how long a peer that sent bad input waits for the server to
 * close: a server that only closes when the connection times out has not dealt with the input.
 */
const IDLE_TIMEOUT_S = 60;

/** A file of the shared folder with everything needed to check an answer. */
interface SharedFile {
  name: string;
  bytes: Uint8Array;
  /** Its digest in each algorithm a connection may agree on, by the algorithm's name. */
  digests: Map<string, Uint8Array>;
}

/**
 * Writes the files: many small (hits), medium ones (about twice the cache in all, so they keep it
 * full and churning whatever its size), large (never cached).
 */
async function writeFiles(seed: number, cacheBytes: number): Promise<SharedFile[][]> {
  await Deno.remove(DATA, { recursive: true }).catch(() => {});
  const rng = new Rng(seed);
  const [mediumMin, mediumMax] = [256 * 1024, 2 * 1024 * 1024];
  const mediumMean = (mediumMax - mediumMin) / Math.log(mediumMax / mediumMin);
  const kinds: [string, number, number, number][] = [
    ["small", 48, 1024, 64 * 1024],
    ["medium", Math.max(24, Math.ceil(2 * cacheBytes / mediumMean)), mediumMin, mediumMax],
    ["large", 3, cacheBytes + 4 * 1024 * 1024, cacheBytes + 8 * 1024 * 1024],
  ];
  const groups: SharedFile[][] = [];
  for (const [kind, count, min, max] of kinds) {
    await Deno.mkdir(`${DATA}/${kind}`, { recursive: true });
    const group: SharedFile[] = [];
    for (let i = 0; i < count; i++) {
      const size = Math.round(min * (max / min) ** rng.next());
      const bytes = randomBytes(size, rng.below(2 ** 32) || 1);
      const name = `${kind}/${String(i).padStart(3, "0")}.bin`;
      await Deno.writeFile(`${DATA}/${name}`, bytes);
      const digests = new Map<string, Uint8Array>();
      for (const algorithm of DIGESTS) {
        digests.set(algorithm.name, await digestOf(algorithm, bytes));
      }
      group.push({ name, bytes, digests });
    }
    groups.push(group);
  }
  return groups;
}

/** A failed check; `kind` says which count it goes to. */
class CheckFailed extends Error {
  readonly kind: "wrong" | "lost" | "error";
  constructor(kind: "wrong" | "lost" | "error", message: string) {
    super(message);
    this.kind = kind;
  }
}

/** True when `chunk` equals `file` from `at` on (compared natively, without copying). */
function sameBytes(file: Uint8Array, at: number, chunk: Uint8Array): boolean {
  if (at + chunk.length > file.length) return false;
  const expected = Buffer.from(file.buffer, file.byteOffset + at, chunk.length);
  return expected.equals(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
}

/**
 * Reads one file answer (to a GET from byte `offset`) on `client` and checks its header, every
 * byte, and the digest in the algorithm the connection agreed on.
 */
async function expectFile(client: FileClient, file: SharedFile, offset: number): Promise<number> {
  let at = offset;
  let digest: Uint8Array;
  try {
    digest = await client.readFile({
      header(header) {
        if (header.size !== file.bytes.length || header.offset !== offset) {
          throw new CheckFailed("wrong", `${file.name}: header says ${header.size}@${offset}`);
        }
      },
      data(chunk) {
        if (!sameBytes(file.bytes, at, chunk)) {
          throw new CheckFailed("wrong", `${file.name}: wrong bytes at ${at}`);
        }
        at += chunk.length;
      },
    }, offset);
  } catch (error) {
    if (error instanceof ServerError && error.code === ErrorCode.NotFound) {
      throw new CheckFailed("lost", `${file.name} was not found: ${error.message}`);
    }
    throw error;
  }
  if (at !== file.bytes.length) throw new CheckFailed("wrong", `${file.name}: ended at ${at}`);
  if (!sameDigest(file.digests.get(client.digest.name)!, digest)) {
    throw new CheckFailed("wrong", `${file.name}: wrong ${client.digest.name} digest`);
  }
  return at - offset;
}

/** Expects the server to refuse the request just sent with `code`. */
async function expectRefusal(client: FileClient, code: number, what: string): Promise<void> {
  const outcome = await client.readFile({ header() {}, data() {} }).then(
    () => new CheckFailed("error", `${what} was served`),
    (error) => error,
  );
  if (!(outcome instanceof ServerError) || outcome.code !== code) {
    if (outcome instanceof CheckFailed) throw outcome;
    throw new CheckFailed("error", `${what}: expected ${errorCodeName(code)}, got ${outcome}`);
  }
}

/** Writes all of `bytes`. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/**
 * Opens a raw connection, checks the greeting, sends `request`, and hands every later byte to
 * `onBytes` until the server closes (or `onBytes` returns false: the client vanishes). Returns
 * how long the greeting took to arrive, in ms.
 */
async function rawExchange(
  port: number,
  request: Uint8Array,
  onBytes: (chunk: Uint8Array) => boolean,
): Promise<number> {
  const started = performance.now();
  let greetingMs = NaN;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, request);
    const buffer = new Uint8Array(256 * 1024);
    let greeted = 0;
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      let chunk = buffer.subarray(0, n);
      if (greeted < GREETING.length) {
        const part = chunk.subarray(0, GREETING.length - greeted);
        if (!sameBytes(GREETING, greeted, part)) throw new CheckFailed("error", "no greeting");
        greeted += part.length;
        chunk = chunk.subarray(part.length);
        if (greeted === GREETING.length) greetingMs = performance.now() - started;
      }
      if (chunk.length > 0 && !onBytes(chunk)) break;
    }
  } finally {
    conn.close();
  }
  return greetingMs;
}

/** Checks an answer of the original dialect as it streams in: `OK@` then exactly `expected`. */
class LegacyFileCheck {
  #seen = 0;
  readonly #status = new TextEncoder().encode("OK@");
  readonly #file: SharedFile;

  constructor(file: SharedFile) {
    this.#file = file;
  }

  /** Takes the next bytes of the answer; throws on the first wrong one. */
  take(chunk: Uint8Array): void {
    const status = Math.max(0, Math.min(chunk.length, this.#status.length - this.#seen));
    if (status > 0 && !sameBytes(this.#status, this.#seen, chunk.subarray(0, status))) {
      const said = new TextDecoder().decode(chunk.subarray(0, 4));
      const kind = said.startsWith("FNF@") ? "lost" : "wrong";
      throw new CheckFailed(kind, `file@${this.#file.name}: answered ${JSON.stringify(said)}`);
    }
    const at = Math.max(0, this.#seen - this.#status.length);
    if (!sameBytes(this.#file.bytes, at, chunk.subarray(status))) {
      throw new CheckFailed("wrong", `file@${this.#file.name}: wrong bytes at ${at}`);
    }
    this.#seen += chunk.length;
  }

  /** Body bytes checked so far. */
  get bodyBytes(): number {
    return Math.max(0, this.#seen - this.#status.length);
  }
}

/** Names a correct server refuses as bad requests. */
const BAD_NAMES = [
  "../../etc/passwd",
  "/etc/passwd",
  "small/../small/000.bin",
  "small/000.bin\0",
  ".hidden",
  "small//000.bin",
  "x".repeat(2000),
];

/** Runs the soak and returns what it measured; it logs its progress with `log`. */
export async function runSoak(
  options: SoakOptions,
  log: (line: string) => void = console.log,
): Promise<SoakResult> {
  const settings = { cacheBytes: 16 * 1024 * 1024, workers: 1, ...options };
  const { seconds, seed, clients, cacheBytes, workers } = settings;
  const [small, medium, large] = await writeFiles(seed, cacheBytes);
  const all = [...small, ...medium, ...large];
  const total = all.reduce((n, f) => n + f.bytes.length, 0);
  log(
    `soak: ${seconds} s, seed ${seed}, ${clients} clients, cache ${formatBytes(cacheBytes)}, ` +
      `${workers} worker${workers > 1 ? "s" : ""}; ` +
      `${all.length} files, ${formatBytes(total)}, largest ${formatBytes(large[0].bytes.length)}`,
  );

  await using server = await spawnServer([
    "--data",
    DATA,
    "--cache-size",
    String(cacheBytes),
    "--max-connections",
    String(clients * 3 + 64),
    // Every client of the soak comes from this one address.
    "--max-connections-per-host",
    String(clients * 3 + 64),
    "--idle-timeout",
    String(IDLE_TIMEOUT_S),
    "--workers",
    String(workers),
  ]);
  const port = server.port;
  const probe = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", `${ROOT}bench/probe.ts`, String(port), String(seconds)],
    stdout: "piped",
  }).spawn();
  const result: SoakResult = {
    options: settings,
    requests: 0,
    operations: {},
    honestErrors: 0,
    badInputMishandled: 0,
    errorSamples: [],
    wrongBytes: 0,
    lostFiles: 0,
    bytesChecked: 0,
    maxCacheBytes: 0,
    maxCacheCommitted: 0,
    cacheCapacity: cacheBytes,
    startRssBytes: 0,
    maxRssBytes: 0,
    maxRssAnonBytes: 0,
    maxRssFileBytes: 0,
    startRssAnonBytes: 0,
    peakRssBytes: 0,
    maxLoopLagMs: 0,
    maxGreetingMs: 0,
    maxBadInputCloseMs: 0,
    serverErrors: 0,
    exitCode: null,
    failures: [],
  };
  /** Records how long a new connection waited for its greeting. */
  const greeted = (ms: number) => {
    if (ms > result.maxGreetingMs) result.maxGreetingMs = ms;
  };
  /** Counts a failed operation where it belongs and keeps the first few messages. */
  const tally = (error: unknown, kind: string, honest: boolean) => {
    if (error instanceof CheckFailed && error.kind === "wrong") result.wrongBytes++;
    if (error instanceof CheckFailed && error.kind === "lost") result.lostFiles++;
    if (honest) result.honestErrors++;
    else result.badInputMishandled++;
    const message = `${kind}: ${error instanceof Error ? error.message : error}`;
    if (result.errorSamples.length < 10) result.errorSamples.push(message);
  };
  const rss = async (field: "VmRSS" | "RssAnon" | "RssFile" | "VmHWM") => {
    const status = await Deno.readTextFile(`/proc/${server.process.pid}/status`);
    return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  };
  /** Counts the errors the server logged, then drops the lines it has logged so far. */
  const drainLog = () => {
    result.serverErrors += server.lines.filter((l) => / (connection|accept)-error /.test(l)).length;
    server.lines.length = 0;
  };

  result.startRssBytes = await rss("VmRSS");
  result.startRssAnonBytes = await rss("RssAnon");
  const deadline = performance.now() + seconds * 1000;
  let running = true;
  let tick = performance.now();
  const lag = setInterval(() => {
    const now = performance.now();
    result.maxLoopLagMs = Math.max(result.maxLoopLagMs, now - tick - LAG_TICK_MS);
    tick = now;
  }, LAG_TICK_MS);
  const sampler = (async () => {
    const client = await FileClient.connect("127.0.0.1", port);
    try {
      while (running) {
        const stats = await client.stats();
        result.maxCacheBytes = Math.max(result.maxCacheBytes, stats.cacheBytes);
        result.maxCacheCommitted = Math.max(
          result.maxCacheCommitted,
          stats.cacheBytes + stats.cacheReserved,
        );
        result.maxRssBytes = Math.max(result.maxRssBytes, await rss("VmRSS"));
        result.maxRssAnonBytes = Math.max(result.maxRssAnonBytes, await rss("RssAnon"));
        result.maxRssFileBytes = Math.max(result.maxRssFileBytes, await rss("RssFile"));
        drainLog();
        await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
      }
    } finally {
      client.close();
    }
  })();

  /** One client's loop: a persistent framed session plus short-lived raw connections. */
  const clientLoop = async (index: number) => {
    const rng = new Rng(seed * 7919 + index + 1);
    const choose = <T>(items: readonly T[]) => items[rng.below(items.length)];
    /** Small files by a skewed popularity, so some are hot (hits) and some are not. */
    const popular = () => small[Math.floor(small.length * rng.next() ** 3)];
    let session: FileClient | undefined;
    const open = async () => session ??= await FileClient.connect("127.0.0.1", port);

    const ops: [string, number, () => Promise<{ honest: boolean; bytes?: number }>][] = [
      ["get-small", 30, async () => {
        const client = await open();
        const file = popular();
        await client.send(client.encodeGet(file.name));
        return { honest: true, bytes: await expectFile(client, file, 0) };
      }],
      ["get-medium", 14, async () => {
        const client = await open();
        const file = choose(medium);
        await client.send(client.encodeGet(file.name));
        return { honest: true, bytes: await expectFile(client, file, 0) };
      }],
      ["get-large", 2, async () => {
        const client = await open();
        const file = choose(large);
        await client.send(client.encodeGet(file.name));
        return { honest: true, bytes: await expectFile(client, file, 0) };
      }],
      ["get-offset", 5, async () => {
        const client = await open();
        const file = choose([...small, ...medium]);
        const offset = rng.below(file.bytes.length + 1);
        await client.send(client.encodeGet(file.name, offset));
        return { honest: true, bytes: await expectFile(client, file, offset) };
      }],
      ["pipelined", 6, async () => {
        const client = await open();
        const files = Array.from(
          { length: 4 },
          () => rng.next() < 0.7 ? popular() : choose(medium),
        );
        await client.send(...files.map((file) => client.encodeGet(file.name)));
        let bytes = 0;
        for (const file of files) bytes += await expectFile(client, file, 0);
        return { honest: true, bytes };
      }],
      ["missing", 3, async () => {
        const client = await open();
        const name = `small/missing-${rng.below(1000)}.bin`;
        await client.send(client.encodeGet(name));
        await expectRefusal(client, ErrorCode.NotFound, name);
        return { honest: true };
      }],
      ["list", 3, async () => {
        const entries = await (await open()).list();
        const sizes = new Map(entries.map((entry) => [entry.name, entry.size]));
        const missing = all.filter((file) => sizes.get(file.name) !== file.bytes.length);
        if (missing.length > 0) {
          throw new CheckFailed("lost", `list lacks or misstates ${missing[0].name}`);
        }
        if (entries.length !== all.length) {
          throw new CheckFailed("error", `list has ${entries.length} entries`);
        }
        return { honest: true };
      }],
      ["stats", 2, async () => {
        const stats = await (await open()).stats();
        if (stats.cacheBytes + stats.cacheReserved > stats.cacheCapacity) {
          throw new CheckFailed("error", `cache over its cap: ${JSON.stringify(stats)}`);
        }
        return { honest: true };
      }],
      ["legacy-file", 10, async () => {
        const file = rng.next() < 0.9 ? popular() : choose(medium);
        const check = new LegacyFileCheck(file);
        const request = new TextEncoder().encode(`file@${file.name}`);
        greeted(
          await rawExchange(port, request, (chunk) => {
            check.take(chunk);
            return true;
          }),
        );
        if (check.bodyBytes !== file.bytes.length) {
          throw new CheckFailed("wrong", `file@${file.name}: ${check.bodyBytes} bytes`);
        }
        return { honest: true, bytes: check.bodyBytes };
      }],
      ["legacy-list", 2, async () => {
        const parts: Uint8Array[] = [];
        greeted(
          await rawExchange(port, new TextEncoder().encode("list"), (chunk) => {
            parts.push(chunk.slice());
            return true;
          }),
        );
        const answer = new TextDecoder().decode(Buffer.concat(parts));
        const [listed] = answer.split("\n[FILES IN CACHE]:\n");
        const names = new Set(listed.split("\n").slice(2));
        if (!answer.startsWith("OK@\n[FILES INSIDE THE SERVER DIRECTORY]:\n")) {
          throw new CheckFailed(
            "error",
            `legacy list answered ${JSON.stringify(answer.slice(0, 40))}`,
          );
        }
        const lost = all.find((file) => !names.has(file.name));
        if (lost) throw new CheckFailed("lost", `the legacy list lacks ${lost.name}`);
        return { honest: true };
      }],
      ["bad-name", 5, async () => {
        const client = await open();
        const name = choose(BAD_NAMES);
        await client.send(client.encodeGet(name));
        await expectRefusal(client, ErrorCode.BadRequest, JSON.stringify(name.slice(0, 40)));
        return { honest: false };
      }],
      ["garbage", 6, async () => {
        const length = 1 + rng.below(2000);
        const bytes = randomBytes(length, rng.below(2 ** 32) || 1);
        if (rng.next() < 0.5) {
          bytes.set(preamble(1).subarray(0, Math.min(length, preamble(1).length)));
        }
        const started = performance.now();
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        const answer: Uint8Array[] = [];
        let received = 0;
        let sent = false;
        let timer: ReturnType<typeof setTimeout> | undefined;
        try {
          const closed = (async () => {
            const buffer = new Uint8Array(64 * 1024);
            try {
              for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
                if (received < GREETING.length && received + n >= GREETING.length) {
                  greeted(performance.now() - started);
                }
                received += n;
                answer.push(buffer.slice(0, n));
              }
            } catch (error) {
              if (!isDisconnect(error)) throw error;
            }
          })();
          try {
            await writeAll(conn, bytes);
            await conn.closeWrite();
            sent = true;
          } catch (error) {
            if (!isDisconnect(error)) throw error;
          }
          const late = new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              const got = Buffer.concat(answer);
              reject(
                new CheckFailed(
                  "error",
                  `garbage: no close within the idle timeout (${IDLE_TIMEOUT_S} s) after ` +
                    `${length} bytes ${sent ? "and a half-close" : "(not all sent)"} starting ` +
                    `${Buffer.from(bytes.subarray(0, 16)).toString("hex")}; answer so far ` +
                    `${got.length} bytes: ${got.subarray(0, 64).toString("hex")}`,
                ),
              );
            }, IDLE_TIMEOUT_S * 1000);
          });
          await Promise.race([closed, late]);
          result.maxBadInputCloseMs = Math.max(
            result.maxBadInputCloseMs,
            performance.now() - started,
          );
        } finally {
          clearTimeout(timer);
          conn.close();
        }
        return { honest: false };
      }],
      ["vanish", 5, async () => {
        const client = await FileClient.connect("127.0.0.1", port);
        const file = rng.next() < 0.5 ? choose(medium) : choose(large);
        const stopAt = rng.below(file.bytes.length);
        let received = 0;
        try {
          await client.send(client.encodeGet(file.name));
          await client.readFile({
            header() {},
            data(chunk) {
              received += chunk.length;
              if (received > stopAt) throw new Error("vanish");
            },
          }).catch((error) => {
            if (!(error instanceof Error && error.message === "vanish")) throw error;
          });
        } finally {
          client.close();
        }
        return { honest: false };
      }],
      ["legacy-vanish", 2, async () => {
        const file = choose([...medium, ...large]);
        const stopAt = rng.below(file.bytes.length);
        let received = 0;
        greeted(
          await rawExchange(port, new TextEncoder().encode(`file@${file.name}`), (chunk) => {
            received += chunk.length;
            return received <= stopAt;
          }),
        );
        return { honest: false };
      }],
      ["reconnect", 2, async () => {
        if (rng.next() < 0.5) await session?.quit();
        else session?.close();
        session = undefined;
        await open();
        return { honest: true };
      }],
    ];
    const weights = ops.reduce((n, [, weight]) => n + weight, 0);

    while (performance.now() < deadline) {
      let pick = rng.next() * weights;
      const [kind, , run] = ops.find(([, weight]) => (pick -= weight) < 0) ?? ops[0];
      result.operations[kind] = (result.operations[kind] ?? 0) + 1;
      const honest = !["bad-name", "garbage", "vanish", "legacy-vanish"].includes(kind);
      try {
        const outcome = await run();
        result.bytesChecked += outcome.bytes ?? 0;
      } catch (error) {
        tally(error, kind, honest);
        // The session may be in the middle of an answer: start a new one.
        session?.close();
        session = undefined;
      }
    }
    session?.close();
  };

  const loops = Promise.all(Array.from({ length: clients }, (_, i) => clientLoop(i)));
  let finishTimer: ReturnType<typeof setTimeout> | undefined;
  const hung = await Promise.race([
    loops.then(() => false),
    new Promise<boolean>((resolve) => {
      finishTimer = setTimeout(() => resolve(true), seconds * 1000 + FINISH_MS);
    }),
  ]);
  clearTimeout(finishTimer);
  if (hung) result.failures.push(`clients were still busy ${FINISH_MS / 1000} s after the end`);
  running = false;
  clearInterval(lag);
  await sampler;
  const probed = await probe.output();
  if (probed.success) result.probe = JSON.parse(new TextDecoder().decode(probed.stdout));
  else result.failures.push(`the probe failed (exit ${probed.code})`);
  if (result.probe && result.probe.failures > 0) {
    result.failures.push(
      `${result.probe.failures} new clients could not connect or were not greeted`,
    );
  }

  // Every file once more, each from a fresh client: nothing may be lost after the load.
  for (const file of all) {
    const client = await FileClient.connect("127.0.0.1", port);
    try {
      await client.send(client.encodeGet(file.name));
      result.bytesChecked += await expectFile(client, file, 0);
    } catch (error) {
      tally(error, "after the load", true);
    } finally {
      client.close();
    }
  }
  const last = await FileClient.connect("127.0.0.1", port);
  const stats = await last.stats();
  last.close();
  result.requests = stats.requests;
  result.peakRssBytes = await rss("VmHWM");
  drainLog();
  server.process.kill("SIGTERM");
  result.exitCode = (await server.process.status).code;

  if (result.wrongBytes > 0) result.failures.push(`${result.wrongBytes} answers had wrong bytes`);
  if (result.lostFiles > 0) result.failures.push(`${result.lostFiles} times a file was lost`);
  if (result.maxCacheCommitted > cacheBytes) {
    result.failures.push(`the cache went over its cap: ${result.maxCacheCommitted} bytes`);
  }
  if (result.honestErrors > 0) {
    result.failures.push(`${result.honestErrors} honest requests failed`);
  }
  if (result.badInputMishandled > 0) {
    result.failures.push(`${result.badInputMishandled} bad inputs were mishandled`);
  }
  if (result.serverErrors > 0) {
    result.failures.push(`the server logged ${result.serverErrors} errors`);
  }
  if (result.exitCode !== 0) result.failures.push(`the server exited with ${result.exitCode}`);
  return result;
}

/** The probe's figures on one line. */
function formatProbe(probe: ProbeResult | undefined): string {
  if (probe === undefined) return "no figures";
  const ms = (value: number) => value.toFixed(0);
  return `${probe.samples} connections: connect p50 ${ms(probe.connectP50Ms)}, ` +
    `max ${ms(probe.connectMaxMs)} ms; greeting p50 ${ms(probe.greetingP50Ms)}, ` +
    `p99 ${ms(probe.greetingP99Ms)}, max ${ms(probe.greetingMaxMs)} ms`;
}

/** The report of a run, one figure per line. */
export function formatSoak(result: SoakResult): string {
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  // Beside the cache, each worker may hold its pools of buffers (16 MiB to stream, 4 MiB to hash),
  // its JavaScript heap and its share of the runtime: 64 MiB each (docs/PERFORMANCE.md).
  const budget = result.cacheCapacity + 64 * 2 ** 20 * result.options.workers;
  const privatePeak = result.peakRssBytes - result.maxRssFileBytes;
  const pools = 20 * 2 ** 20 * result.options.workers;
  const operations = Object.entries(result.operations).sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, count]) => `${kind} ${count}`).join(", ");
  const lines = [
    `requests (server count)   ${result.requests}`,
    `operations                ${operations}`,
    `honest errors             ${result.honestErrors}`,
    `bad input mishandled      ${result.badInputMishandled}`,
    `wrong bytes / lost files  ${result.wrongBytes} / ${result.lostFiles}`,
    `bytes checked             ${formatBytes(result.bytesChecked)}`,
    `max cache bytes           ${mib(result.maxCacheBytes)} ` +
    `(with reservations ${mib(result.maxCacheCommitted)}) of ${mib(result.cacheCapacity)} cap`,
    `server RSS                ${mib(result.startRssBytes)} before the load; ` +
    `max sampled ${mib(result.maxRssBytes)} (private ${mib(result.maxRssAnonBytes)})`,
    `peak server RSS (VmHWM)   ${mib(result.peakRssBytes)}: ${mib(result.maxRssFileBytes)} ` +
    `of the runtime's code mapped from its executable, ${mib(privatePeak)} private: ` +
    `${privatePeak <= budget ? "within" : "OVER"} cap + 64 MiB a worker = ${mib(budget)}`,
    `private RSS at its peak   ${mib(result.startRssAnonBytes)} at rest; under load the cache ` +
    `${mib(result.maxCacheCommitted)}, buffers at most ${mib(pools)}, the rest ` +
    `${mib(privatePeak - result.startRssAnonBytes - result.maxCacheCommitted - pools)} ` +
    `or more (JavaScript heaps grown, sockets)`,
    `server errors logged      ${result.serverErrors}; exit on SIGTERM ${result.exitCode}`,
    `new clients (probe)       ${formatProbe(result.probe)}`,
    `load generator's clients  greeted within ${result.maxGreetingMs.toFixed(0)} ms; ` +
    `bad input closed within ${result.maxBadInputCloseMs.toFixed(0)} ms`,
    `load generator max lag    ${result.maxLoopLagMs.toFixed(0)} ms`,
    ...result.errorSamples.map((sample) => `  error: ${sample}`),
    result.failures.length === 0 ? "PASS" : `FAIL: ${result.failures.join("; ")}`,
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  let options: SoakOptions;
  try {
    const { values } = parseCommandLine(Deno.args, {
      seconds: { type: "string", default: "30" },
      seed: { type: "string", default: "1" },
      clients: { type: "string", default: "32" },
      "cache-size": { type: "string", default: "16MiB" },
      workers: { type: "string", default: "1" },
    });
    options = {
      seconds: parseInteger(values.seconds, "--seconds", 1, 86_400),
      seed: parseInteger(values.seed, "--seed", 0, 2 ** 31),
      clients: parseInteger(values.clients, "--clients", 1, 5_000),
      cacheBytes: parseSizeFlag(values["cache-size"], "--cache-size"),
      workers: parseInteger(values.workers, "--workers", 1, 64),
    };
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`soak: ${error.message}`);
    Deno.exit(2);
  }
  const result = await runSoak(options);
  console.log(formatSoak(result));
  Deno.exit(result.failures.length === 0 ? 0 : 1);
}
