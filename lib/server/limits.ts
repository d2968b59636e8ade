/**
 * The connection limits and the open-file limit they must fit in. Every connection holds a socket
 * and, while it sends a file, that file: a connection limit the process's open-file limit cannot
 * hold makes accept() fail with "Too many open files", and the clients past that point get
 * nothing at all, not even the busy text. So the server counts the descriptors it can still open
 * at start, and lowers its limit to what fits.
 */

import type { Connection } from "./connection.ts";
import { isDisconnect } from "./errors.ts";

/** Descriptors a connection may hold at once: its socket and the file it is sending. */
const DESCRIPTORS_PER_CONNECTION = 2;

/**
 * Refusals (busy texts being sent) at once; while this many are under way the server accepts no
 * more, and the next clients wait in the kernel's queue for their turn to hear it.
 */
const REFUSALS = 128;

/** Of those, the refusals that may linger (waiting up to a second for the peer to close). */
const LINGERING_REFUSALS = 64;

/**
 * Of those, the refusals one address may have waiting for their peer's TLS handshake (before which
 * no text can be sent). Its connections past that are closed at once, unanswered: otherwise one
 * address opening silent connections faster than refusals give up on them would take every
 * refusal's place, and the server would stop accepting anyone else's connections.
 */
const HOST_REFUSALS = 8;

/**
 * The longest a refusal may take. Plain TCP takes its text at once; a TLS peer must first complete
 * its handshake, and one that never does must not hold a refusal's place.
 */
const REFUSAL_MS = 2000;

/** Descriptors kept aside: for the refusals above, and for the runtime's own needs. */
const RESERVED_DESCRIPTORS = REFUSALS + 32;

/**
 * How many more files this process can open now, counted up to `wanted`: it opens `probe` (any
 * path it may open, such as the shared folder) until the system refuses or `wanted` are open, then
 * closes them all. Deno gives no way to read the limit itself (/proc/self is closed to a program
 * without every permission), and counting is exact: it sees the limit and what is in use alike.
 */
export function freeDescriptors(probe: string, wanted: number): number {
  const opened: Deno.FsFile[] = [];
  try {
    while (opened.length < wanted) opened.push(Deno.openSync(probe));
  } catch (error) {
    if ((error as { code?: unknown }).code !== "EMFILE") throw error;
  } finally {
    for (const file of opened) file.close();
  }
  return opened.length;
}

/** Descriptors to look for when `connections` are asked for. */
export function descriptorsFor(connections: number): number {
  return connections * DESCRIPTORS_PER_CONNECTION + RESERVED_DESCRIPTORS;
}

/**
 * The most connections, up to `requested`, that `free` descriptors hold (at least one).
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { connectionsThatFit } from "./limits.ts";
 * equal(connectionsThatFit(1024, 100_000), 1024);
 * equal(connectionsThatFit(1024, 1000), 420); // ulimit -n 1024, 24 descriptors in use
 * ```
 */
export function connectionsThatFit(requested: number, free: number): number {
  const fit = Math.floor((free - RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_CONNECTION);
  return Math.max(1, Math.min(requested, fit));
}

/**
 * The connection limits as a server asks them: a {@link Gate} in its own thread, or one in the main
 * thread asked by every worker (workers/), so that the limits hold for the whole server.
 */
export interface Admission {
  readonly max: number;
  readonly perHost: number;
  /** Takes a place for a connection from `host`, or says which limit is reached (Gate.enter). */
  enter(host: string, perHost?: number): string | undefined | Promise<string | undefined>;
  /** Gives back the place a connection from `host` took. */
  leave(host: string): void;
}

/**
 * The connection limits: at most `max` connections, at most `perHost` of them from one address,
 * so that one host opening all it can (slowly sending, say) cannot lock every other host out.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { Gate } from "./limits.ts";
 * const gate = new Gate(3, 2);
 * equal(gate.enter("10.0.0.1"), undefined);
 * equal(gate.enter("10.0.0.1"), undefined);
 * equal(gate.enter("10.0.0.1"), "2 connections are open from 10.0.0.1, the most one address may have");
 * equal(gate.enter("10.0.0.2"), undefined);
 * equal(gate.enter("10.0.0.3"), "3 connections are open");
 * gate.leave("10.0.0.1");
 * equal(gate.enter("10.0.0.3"), undefined);
 * ```
 */
export class Gate implements Admission {
  readonly max: number;
  readonly perHost: number;
  readonly #hosts = new Map<string, number>();
  #open = 0;

  constructor(max: number, perHost: number) {
    this.max = max;
    this.perHost = perHost;
  }

  /**
   * Takes a place for a connection from `host`; or, when that would pass a limit, takes none and
   * says which limit, in words for the busy text (never with an "@", which would break the
   * original client's reading of it). `perHost` raises the host's own limit (a trusted proxy's
   * connections, before they name the clients they carry, count towards the total only).
   */
  enter(host: string, perHost = this.perHost): string | undefined {
    if (this.#open >= this.max) return `${this.max} ${connections(this.max)} open`;
    const fromHost = this.#hosts.get(host) ?? 0;
    if (fromHost >= perHost) {
      return `${fromHost} ${connections(fromHost)} open from ${host.replaceAll("@", "")}, ` +
        "the most one address may have";
    }
    this.#hosts.set(host, fromHost + 1);
    this.#open++;
    return undefined;
  }

  /** Gives back the place a connection from `host` took. */
  leave(host: string): void {
    const fromHost = this.#hosts.get(host) ?? 0;
    if (fromHost <= 1) this.#hosts.delete(host);
    else this.#hosts.set(host, fromHost - 1);
    this.#open--;
  }

  /** Connections holding a place now. */
  get open(): number {
    return this.#open;
  }
}

function connections(count: number): string {
  return count === 1 ? "connection is" : "connections are";
}

/** How long a connection may go without a step forward: the deadlines of a server's options. */
export interface Deadlines {
  /** No bytes moving for this long (idle between requests, or a stalled reader). */
  idleTimeoutMs: number;
  /**
   * A request not whole this long after its first byte: a sender slow on purpose, whose trickle
   * the idle deadline alone would never stop.
   */
  requestTimeoutMs: number;
}

/**
 * The deadline `connection` has missed at `now`, as the reason to close it for; undefined while
 * it has missed none.
 */
export function missedDeadline(
  connection: Pick<Connection, "lastProgress" | "requestSince" | "answering">,
  now: number,
  { idleTimeoutMs, requestTimeoutMs }: Deadlines,
): string | undefined {
  if (now - connection.lastProgress > idleTimeoutMs) {
    return connection.answering ? "stalled" : "idle";
  }
  if (now - (connection.requestSince ?? now) > requestTimeoutMs) return "request-timeout";
  return undefined;
}

/**
 * Clients over a limit, told so: each gets the busy text and its connection ends. A refusal
 * lingers for its peer to close (so that what the peer sent meanwhile cannot turn the close into a
 * reset that destroys the text), unless LINGERING_REFUSALS already do: then the text is written
 * and the socket closed, so that a flood moves on. At most REFUSALS are under way at once, and at
 * most HOST_REFUSALS of them for one address.
 */
export class Refusals {
  readonly #pending = new Set<Promise<void>>();
  readonly #onError: (id: number, error: unknown) => void;
  /** By address, the refusals waiting for their peer's TLS handshake. */
  readonly #handshaking = new Map<string, number>();
  #lingering = 0;

  /** `onError` hears of failures other than the peer going away. */
  constructor(onError: (id: number, error: unknown) => void) {
    this.#onError = onError;
  }

  /**
   * Starts refusing `connection` with `busy` (or closes it at once, when HOST_REFUSALS from its
   * address still wait for a handshake); resolves when another refusal may start.
   */
  async refuse(connection: Connection, busy: Uint8Array): Promise<void> {
    const { host } = connection;
    const handshaking = this.#handshaking.get(host) ?? 0;
    if (handshaking >= HOST_REFUSALS) return connection.close("busy");
    this.#handshaking.set(host, handshaking + 1);
    let waiting = true;
    const done = () => {
      if (!waiting) return;
      waiting = false;
      const left = this.#handshaking.get(host)! - 1;
      if (left === 0) this.#handshaking.delete(host);
      else this.#handshaking.set(host, left);
    };
    const refusal = this.#refuse(connection, busy, done).finally(() => {
      done();
      this.#pending.delete(refusal);
    });
    this.#pending.add(refusal);
    if (this.#pending.size >= REFUSALS) await Promise.race(this.#pending);
  }

  /**
   * Completes a TLS peer's handshake (calling `handshaken` then, at once for plain TCP), sends
   * `busy`, lingers or not, and closes.
   */
  async #refuse(connection: Connection, busy: Uint8Array, handshaken: () => void): Promise<void> {
    const linger = this.#lingering < LINGERING_REFUSALS;
    if (linger) this.#lingering++;
    const deadline = setTimeout(() => connection.close("busy"), REFUSAL_MS);
    try {
      await connection.handshake();
      handshaken();
      await connection.send(busy);
      if (linger) await connection.finish("busy");
      else await connection.flush();
    } catch (error) {
      if (!isDisconnect(error)) this.#onError(connection.id, error);
    } finally {
      clearTimeout(deadline);
      connection.close("busy");
      if (linger) this.#lingering--;
    }
  }
}
