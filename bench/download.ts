/**
 * The client's real job, timed as a user meets it: the client process started, the files saved to
 * disk (a tmpfs, so the disk is not what is measured) and verified, beside rsync from an rsync
 * daemon (which verifies every file it receives, with xxh128) and curl from nginx (which checks
 * nothing), on the same files, when they are installed. Whole processes, each timed from start to
 * exit; the contenders of a case run in turn, round after round, and each one's median is what
 * is compared. Cases: ten 32 MiB files the servers hold in memory, saved and to standard output,
 * verified and not; one large file (1 GiB) saved over one connection and over four.
 *
 * The machine may be shared: each run waits (up to 5 s) for a moment in which the machine is idle
 * between runs, and the summary says how many runs found it busy all the same. A smoke run
 * (--smoke) makes the files small (the large one just big enough to come in pieces), runs each
 * contender once and waits for nothing.
 *
 * Usage: deno run -A bench/download.ts [--quick | --smoke]
 */

import { has, randomBytes, ROOT } from "../testing/support.ts";
import { lengthOf } from "./length.ts";
import { type Service, startNginx, startRsync, startServer } from "./services.ts";
import { median } from "./median.ts";

const length = lengthOf(Deno.args);
const MiB = 1024 * 1024;
/**
 * What a run of each length does: the size of each of the ten files and of the large one (MiB),
 * the rounds timed of each, and whether each contender runs once untimed first and each run waits
 * for the machine to idle.
 */
const RUN = {
  full: { many: 32, big: 1024, rounds: 9, bigRounds: 5, settle: true },
  quick: { many: 32, big: 256, rounds: 3, bigRounds: 3, settle: true },
  smoke: { many: 1, big: 64, rounds: 1, bigRounds: 1, settle: false },
}[length];
const WORK = `${ROOT}bench/.work/download`;
const DATA = `${WORK}/data`;
const MANY = Array.from({ length: 10 }, (_, i) => `many/f${i}.bin`);
const MANY_BYTES = RUN.many * MiB;
const BIG = "big.bin";
const BIG_BYTES = RUN.big * MiB;
const ROUNDS = RUN.rounds;
const BIG_ROUNDS = RUN.bigRounds;
/** Load, in cores, above which the machine is not idle between runs. */
const MAX_IDLE_LOAD = 0.2;

/** One way of doing a case's job: a command line, its standard output sent to /dev/null. */
interface Contender {
  name: string;
  command: string[];
}

/** The median wall time of each contender in a case, in ms. */
type Medians = Map<string, number>;

/** Writes the data once: distinct pseudo-random files, kept between runs of the benchmark. */
async function writeData(): Promise<void> {
  const block = randomBytes(MiB, 7);
  const write = async (name: string, bytes: number, seed: number) => {
    const path = `${DATA}/${name}`;
    const size = await Deno.stat(path).then((info) => info.size, () => -1);
    if (size === bytes) return;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    using file = await Deno.open(path, { write: true, create: true, truncate: true });
    const chunk = new Uint8Array(16 * MiB);
    for (let at = 0; at < bytes; at += chunk.length) {
      for (let i = 0; i < chunk.length; i += MiB) {
        chunk.set(block, i);
        new DataView(chunk.buffer).setFloat64(i, seed * 1e6 + at + i); // every MiB its own
      }
      await file.write(chunk.subarray(0, Math.min(chunk.length, bytes - at)));
    }
  };
  for (const [i, name] of MANY.entries()) await write(name, MANY_BYTES, i + 1);
  await write(BIG, BIG_BYTES, 99);
}

/** A folder on a tmpfs for the files saved, or a temporary folder when there is none. */
async function outputFolder(): Promise<{ path: string; where: string }> {
  const mounts = await Deno.readTextFile("/proc/mounts").catch(() => "");
  if (/^\S+ \/dev\/shm tmpfs /m.test(mounts)) {
    return { path: `/dev/shm/fileserver-bench-${Deno.pid}`, where: "/dev/shm (tmpfs)" };
  }
  const path = await Deno.makeTempDir({ prefix: "fileserver-bench-" });
  return { path, where: `${path} (no tmpfs at /dev/shm: the disk is part of what is measured)` };
}

/** CPU ticks (1/100 s) the whole machine spent busy; undefined where /proc cannot tell. */
function machineTicks(): number | undefined {
  try {
    const fields = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/);
    const [user, nice, system, , , irq, softirq, steal] = fields.slice(1).map(Number);
    return user + nice + system + irq + softirq + steal;
  } catch {
    return undefined;
  }
}

/**
 * Waits, for 5 s at the most, until the machine is idle for a quarter of a second between runs
 * (the kernel done with the last run's files, other work paused); false if it never was.
 */
async function idle(): Promise<boolean> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
    const before = machineTicks();
    if (before === undefined) return true;
    await new Promise((resolve) => setTimeout(resolve, 250));
    if ((machineTicks()! - before) / 100 / 0.25 < MAX_IDLE_LOAD) return true;
  }
  return false;
}

/** Runs `command` to its end; its wall time in ms. */
async function timed(command: string[]): Promise<number> {
  const started = performance.now();
  const output = await new Deno.Command(command[0], {
    args: command.slice(1),
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).output();
  const ms = performance.now() - started;
  if (!output.success) {
    const why = new TextDecoder().decode(output.stderr).trim().split("\n")[0];
    throw new Error(`${command[0]} failed (exit ${output.code}): ${why}`);
  }
  return ms;
}

let busy = 0;

/**
 * Runs a case: every contender once untimed (to warm caches, and to check it works; not in a smoke
 * run), then `rounds` rounds of each in turn, the output folder emptied before each run. Prints and
 * returns the medians.
 */
async function runCase(
  title: string,
  bytes: number,
  contenders: Contender[],
  rounds: number,
  out: string,
): Promise<Medians> {
  console.log(`\n${title}`);
  const times = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  const fresh = async () => {
    await Deno.remove(out, { recursive: true }).catch(() => {});
    await Deno.mkdir(out, { recursive: true });
  };
  for (const contender of RUN.settle ? contenders : []) {
    await fresh();
    await timed(contender.command);
  }
  for (let round = 0; round < rounds; round++) {
    for (const contender of contenders) {
      await fresh();
      if (RUN.settle && !await idle()) busy++;
      times.get(contender.name)!.push(await timed(contender.command));
    }
  }
  await fresh();
  const medians: Medians = new Map();
  for (const contender of contenders) {
    const ms = median(times.get(contender.name)!);
    medians.set(contender.name, ms);
    const rate = bytes / (ms / 1000) / 1e9;
    console.log(
      `  ${contender.name.padEnd(44)} ${ms.toFixed(0).padStart(6)} ms  ${rate.toFixed(2)} GB/s`,
    );
  }
  return medians;
}

if (import.meta.main) {
  const tools = { rsync: await has("rsync"), nginx: await has("nginx"), curl: await has("curl") };
  const aria2 = await has("aria2c");
  console.log(`download benchmark (${length}), ${new Date().toISOString()}`);
  await writeData();
  const { path: out, where } = await outputFolder();
  console.log(`files saved to ${where}; medians of ${ROUNDS} rounds (${BIG_ROUNDS} for one file)`);
  const services: Service[] = [];
  try {
    // The cache holds the ten files; the large one streams from the OS page cache.
    const ours = await startServer(["--data", DATA, "--cache-size", "400MiB"]);
    services.push(ours);
    const rsync = tools.rsync ? await startRsync(DATA, `${WORK}/rsync`) : undefined;
    if (rsync) services.push(rsync);
    const nginx = tools.nginx && tools.curl ? await startNginx(DATA, `${WORK}/nginx`) : undefined;
    if (nginx) services.push(nginx);
    if (!rsync) console.log("rsync comparison skipped: rsync is not installed (Debian: rsync)");
    if (!nginx) {
      console.log(
        "curl+nginx comparison skipped: needs nginx and curl (Debian: nginx-light curl)",
      );
    }
    if (!aria2) console.log("aria2c comparison skipped: aria2c is not installed (Debian: aria2)");

    const client = (...args: string[]) => [
      Deno.execPath(),
      "run",
      "-A",
      `${ROOT}client.ts`,
      "--port",
      String(ours.port),
      "get",
      "-q",
      ...args,
    ];
    // Contenders of a missing tool are written out all the same, and left out by optional().
    const url = (name: string) => `http://127.0.0.1:${nginx?.port}/${name}`;
    const curlSaved = MANY.flatMap((name, i) => ["-o", `${out}/f${i}.bin`, url(name)]);
    const optional = (present: unknown, ...contenders: Contender[]) => present ? contenders : [];

    const saved = await runCase(
      `10 files of ${RUN.many} MiB, held in memory, saved`,
      10 * MANY_BYTES,
      [
        { name: "ours, verified", command: client(...MANY, "-o", out) },
        { name: "ours, --no-verify", command: client(...MANY, "-o", out, "--no-verify") },
        {
          name: "ours, verified, --connections 4",
          command: client(...MANY, "-o", out, "--connections", "4"),
        },
        ...optional(rsync, {
          name: "rsync (verifies with xxh128)",
          command: ["rsync", "-r", `rsync://127.0.0.1:${rsync?.port}/data/many/`, `${out}/`],
        }),
        ...optional(
          nginx,
          { name: "curl+nginx (checks nothing)", command: ["curl", "-s", "--fail", ...curlSaved] },
          {
            name: "curl+nginx, -Z (4 at once)",
            command: ["curl", "-s", "--fail", "-Z", "--parallel-max", "4", ...curlSaved],
          },
        ),
      ],
      ROUNDS,
      out,
    );

    const piped = await runCase(
      "the same 10 files to standard output (/dev/null)",
      10 * MANY_BYTES,
      [
        { name: "ours, verified", command: client(...MANY, "-o", "-") },
        { name: "ours, --no-verify", command: client(...MANY, "-o", "-", "--no-verify") },
        ...optional(nginx, {
          name: "curl+nginx (checks nothing)",
          command: ["curl", "-s", "--fail", ...MANY.map(url)],
        }),
      ],
      ROUNDS,
      out,
    );

    const big = await runCase(
      `one file of ${BIG_BYTES / MiB} MiB, saved`,
      BIG_BYTES,
      [
        { name: "ours, verified, --connections 1", command: client(BIG, "-o", out) },
        {
          name: "ours, verified, --connections 4",
          command: client(BIG, "-o", out, "--connections", "4"),
        },
        {
          name: "ours, --no-verify, --connections 4",
          command: client(BIG, "-o", out, "--connections", "4", "--no-verify"),
        },
        ...optional(rsync, {
          name: "rsync (verifies with xxh128)",
          command: ["rsync", `rsync://127.0.0.1:${rsync?.port}/data/${BIG}`, `${out}/`],
        }),
        ...optional(nginx, {
          name: "curl+nginx (checks nothing)",
          command: ["curl", "-s", "--fail", "-o", `${out}/${BIG}`, url(BIG)],
        }),
        ...optional(aria2 && nginx, {
          name: "aria2c -x4 -s4 + nginx (checks nothing)",
          command: [
            "aria2c",
            "-q",
            "-x4",
            "-s4",
            "--file-allocation=none",
            "-d",
            out,
            url(BIG),
          ],
        }),
      ],
      BIG_ROUNDS,
      out,
    );

    console.log(`\nsummary: speed ratios (the other's median time / ours), one run`);
    const ratio = (name: string, medians: Medians, ours: string, other: string) => {
      const theirs = medians.get(other);
      if (theirs === undefined) return;
      const x = theirs / medians.get(ours)!;
      console.log(`  ${name.padEnd(64)} ${x.toFixed(2)}x`);
    };
    ratio(
      `verified, 10 x ${RUN.many} MiB saved: ours / rsync`,
      saved,
      "ours, verified",
      "rsync (verifies with xxh128)",
    );
    ratio(
      `verified, 10 x ${RUN.many} MiB saved: ours / curl+nginx`,
      saved,
      "ours, verified",
      "curl+nginx (checks nothing)",
    );
    ratio(
      `verified, 10 x ${RUN.many} MiB saved: --connections 4 / 1`,
      saved,
      "ours, verified, --connections 4",
      "ours, verified",
    );
    ratio(
      `10 x ${RUN.many} MiB saved: --no-verify / verified`,
      saved,
      "ours, --no-verify",
      "ours, verified",
    );
    ratio(
      "--no-verify to standard output: ours / curl+nginx",
      piped,
      "ours, --no-verify",
      "curl+nginx (checks nothing)",
    );
    ratio(
      "verified to standard output: ours / curl+nginx",
      piped,
      "ours, verified",
      "curl+nginx (checks nothing)",
    );
    ratio(
      `one ${BIG_BYTES / MiB} MiB file, verified: --connections 4 / 1`,
      big,
      "ours, verified, --connections 4",
      "ours, verified, --connections 1",
    );
    ratio(
      `one ${BIG_BYTES / MiB} MiB file, verified, --connections 4: ours / rsync`,
      big,
      "ours, verified, --connections 4",
      "rsync (verifies with xxh128)",
    );
    ratio(
      `one ${BIG_BYTES / MiB} MiB file, verified, --connections 4: ours / curl+nginx`,
      big,
      "ours, verified, --connections 4",
      "curl+nginx (checks nothing)",
    );
    ratio(
      `one ${BIG_BYTES / MiB} MiB file, verified, --connections 4: ours / aria2c -x4`,
      big,
      "ours, verified, --connections 4",
      "aria2c -x4 -s4 + nginx (checks nothing)",
    );
    console.log(`  (${busy} runs started with the machine busy after waiting 5 s for it to idle)`);
  } finally {
    for (const service of services) await service.stop();
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
}
