/**
 * Worker threads sharing one cache, for the tests and the benchmarks: each runs cache_worker.ts,
 * joined to a CacheCoordinator in this thread.
 */

import type { CacheCoordinator } from "../lib/server/store/threads/coordinator.ts";

/** A worker thread with a store on `coordinator`'s cache, and the calls it answers. */
export class CacheWorker implements AsyncDisposable {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #coordinator: CacheCoordinator;
  readonly #waiting = new Map<
    number,
    { resolve(value: unknown): void; reject(error: Error): void }
  >();
  #next = 0;
  readonly #ready: Promise<unknown>;

  private constructor(coordinator: CacheCoordinator, root: string) {
    this.#coordinator = coordinator;
    this.#worker = new Worker(new URL("./cache_worker.ts", import.meta.url), { type: "module" });
    this.#worker.onmessage = ({ data: { id, result, error } }) => {
      const waiting = this.#waiting.get(id)!;
      this.#waiting.delete(id);
      if (error) waiting.reject(Object.assign(new Error(error.message), { code: error.code }));
      else waiting.resolve(result);
    };
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    coordinator.attach(port1);
    this.#ready = this.#send("start", [port2, root], [port2]);
  }

  /** Starts a worker whose store serves the folder `root` (a real path) through `coordinator`. */
  static async start(coordinator: CacheCoordinator, root: string): Promise<CacheWorker> {
    const worker = new CacheWorker(coordinator, root);
    await worker.#ready;
    return worker;
  }

  /** Calls `call` of cache_worker.ts in the worker with `args`. */
  call<T>(call: string, ...args: unknown[]): Promise<T> {
    return this.#send(call, args) as Promise<T>;
  }

  /** Ends the worker at once, as a worker that dies, and has the coordinator part with it. */
  stop(): void {
    this.#worker.terminate();
    this.#coordinator.detach(this.#port);
    this.#port.close();
  }

  /** Lets the worker tell its last releases, then stops it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.call("flush");
    this.stop();
  }

  #send(call: string, args: unknown[], transfer: Transferable[] = []): Promise<unknown> {
    const id = this.#next++;
    this.#worker.postMessage({ id, call, args }, transfer);
    return new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
  }
}
