/**
 * Saving files from the server: every download goes to a hidden temporary name beside its target
 * and is renamed only once complete and its digest matches the server's (plan.ts, whole.ts). A
 * temporary file left by an interrupted download is resumed from where it stopped, if the file is
 * still the version it began from.
 *
 * Over several connections, the files are shared out among them as each connection becomes free
 * (queue.ts); and when there are fewer files than connections, a large file is split into pieces
 * fetched side by side (split.ts). On one connection every request is sent at once, as one burst.
 */

import type { FileClient } from "./client.ts";
import { ServerError } from "./errors.ts";
import { type FileVersion, PieceRecord, sameVersion } from "./pieces.ts";
import { type DownloadOptions, type DownloadResult, FileJob, type Job, plan } from "./plan.ts";
import { type Work, WorkQueue } from "./queue.ts";
import { receivePiece, type Split, SPLIT_MIN_BYTES, startSplit } from "./split.ts";
import { Spool } from "./spool.ts";
import { receiveWhole } from "./whole.ts";

/**
 * Downloads `names` over `clients`, connections to one server, and yields what became of each
 * file, in the order named, as soon as it is done. Throws ConnectionError if a connection breaks
 * (after yielding the files finished by then); partial files are kept so that running the same
 * command again resumes. Standard output takes the files in order, so it takes one connection.
 */
export async function* downloadFiles(
  clients: readonly FileClient[],
  names: string[],
  options: DownloadOptions,
): AsyncGenerator<DownloadResult> {
  if (options.output === "-" && clients.length > 1) {
    throw new Error("standard output takes the files in order, over one connection");
  }
  // A name given twice is fetched once: two downloads into one temporary file would collide.
  const jobs = await Promise.all([...new Set(names)].map((name) => plan(name, options)));
  const context = await start(jobs, clients, options);
  const { queue, splits } = context;
  let broken: unknown;
  const ahead = clients.length === 1 ? Infinity : 1;
  const workers = clients.map((client) =>
    work(client, ahead, context).catch((error) => {
      broken ??= error;
      queue.stop();
      for (const split of splits) split.abandon();
      for (const other of clients) other.close();
    })
  );
  const stopped = Promise.all(workers).then(async () => {
    if (broken === undefined) return;
    for (const split of splits) await split.keep();
    for (const job of jobs) if (!job.settled) job.fail(broken);
  });
  for (const job of jobs) {
    const result = await job.outcome.catch(() => undefined);
    if (result) yield result;
  }
  await stopped;
  if (broken !== undefined) throw broken;
}

/**
 * What the work shares: how files are saved, the work left, the files in pieces, and whether a
 * large file is split.
 */
interface Context {
  options: DownloadOptions;
  queue: WorkQueue;
  splits: Split[];
  split: boolean;
}

/**
 * The first work for `jobs` over `clients`. A resumed file's version is asked first, so that a
 * file changed since is fetched from the start rather than from where it stopped; so is a file's
 * size, where files may be split: only where some connection would otherwise have nothing to do.
 */
async function start(
  jobs: Job[],
  clients: readonly FileClient[],
  options: DownloadOptions,
): Promise<Context> {
  const ranges = clients[0].version >= 2;
  const open = jobs.filter((job) => !job.settled);
  const files = open.filter((job) => job instanceof FileJob);
  if (!ranges) await Promise.all(files.map((file) => file.keepFrontier()));
  const split = ranges && clients.length > open.filter((job) => !isSplit(job)).length;
  const queue = new WorkQueue();
  queue.add(
    ...open.map((job): Work =>
      job instanceof FileJob && ranges && (split || job.version !== undefined)
        ? { kind: "probe", job }
        : { kind: "whole", job }
    ),
  );
  return { options, queue, splits: [], split };
}

/** True for a file an interrupted run was fetching in pieces. */
function isSplit(job: Job): boolean {
  return job instanceof FileJob && job.record !== undefined;
}

/**
 * One connection's share: takes work as it comes, keeping up to `ahead` requests more than the one
 * being answered in flight, so the server never waits for the next request.
 */
async function work(client: FileClient, ahead: number, context: Context): Promise<void> {
  const spool = new Spool();
  const sent: Work[] = [];
  for (;;) {
    const batch: Work[] = [];
    if (sent.length === 0) {
      const first = await context.queue.take();
      if (first === undefined) return;
      batch.push(first);
    }
    for (let next; sent.length + batch.length <= ahead && (next = context.queue.poll());) {
      batch.push(next);
    }
    if (batch.length > 0) await client.send(...batch.map((item) => request(client, item)));
    sent.push(...batch);
    const oldest = sent.shift();
    if (oldest) await receive(client, spool, oldest, context);
  }
}

/** The request for `item`. */
function request(client: FileClient, item: Work): Uint8Array {
  switch (item.kind) {
    case "whole":
      return client.encodeGet(item.job.name, item.job.offset);
    case "probe":
      return client.encodeGet(item.job.name, 0, 1);
    case "piece": {
      const { split, start, end } = item.piece;
      return client.encodeGet(split.file.name, start, end);
    }
  }
}

/** Reads the answer to `item`, and queues what it leads to. */
async function receive(
  client: FileClient,
  spool: Spool,
  item: Work,
  context: Context,
): Promise<void> {
  switch (item.kind) {
    case "whole": {
      const again = await receiveWhole(client, spool, item.job, context.options);
      if (again) context.queue.add({ kind: "whole", job: again });
      return;
    }
    case "probe":
      return await receiveProbe(client, item.job, context);
    case "piece":
      return await receivePiece(client, spool, item.piece);
  }
}

/**
 * Learns a file's size and version from a one-byte answer: a partial file of another version is
 * deleted, and the file fetched from the start. Queues the file whole, or in pieces if it came in
 * pieces before or is large and files are split. A refusal is left to the whole request, which
 * reports it as usual.
 */
async function receiveProbe(client: FileClient, file: FileJob, context: Context): Promise<void> {
  try {
    const versions: FileVersion[] = [];
    await client.readFile({
      header: ({ size, mtimeMs }) => void versions.push({ size, mtimeMs }),
      data() {},
    });
    const [version] = versions; // every answer read whole has its header
    if (file.version && (!sameVersion(file.version, version) || file.offset > version.size)) {
      await file.restart();
    }
    file.version = version;
    const done: [number, number][] = file.offset > 0 ? [[0, file.offset]] : [];
    const record = file.record ??
      (context.split && version.size >= SPLIT_MIN_BYTES
        ? new PieceRecord(version.size, version.mtimeMs, done)
        : undefined);
    if (record === undefined) return context.queue.add({ kind: "whole", job: file });
    const started = await startSplit(file, record, client.digest, context.options);
    if (started === undefined) return;
    context.splits.push(started.split);
    context.queue.add(...started.pieces.map((piece): Work => ({ kind: "piece", piece })));
  } catch (error) {
    if (!(error instanceof ServerError)) throw error;
    context.queue.add({ kind: "whole", job: file });
  } finally {
    context.queue.probed();
  }
}
