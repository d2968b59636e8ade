/**
 * Who may make requests: anyone, unless the server takes access tokens; then only a peer that
 * presents one of them, in the framed protocol's SETUP or HTTP's `Authorization` field (Bearer, or
 * Basic with the token as password). A refusal is counted and logged, never with the token; a
 * wrong token is answered only after a delay that grows with the failures from the peer's host
 * (delay.ts).
 */

import { ErrorCode, WireError } from "../shared/errors.ts";
import type { Connection } from "./connection.ts";
import { FailureDelay } from "./delay.ts";
import type { Logger } from "./log.ts";
import type { Tokens } from "./tokens.ts";

const NO_TOKEN = new WireError(
  ErrorCode.Unauthorized,
  "this server needs an access token; none was given",
);

/** What the access rules know of a peer: its connection's number and address, and its pauses. */
export type Peer = Pick<Connection, "id" | "host" | "peer" | "pause">;

/** The server's access rules, and the count of peers turned away. */
export class Access {
  readonly #tokens: Tokens | undefined;
  readonly #originalWithoutToken: boolean;
  readonly #logger: Logger;
  readonly #failures: (host: string) => number | Promise<number>;
  #refused = 0;

  /**
   * With `tokens`, requests need one of them; `originalWithoutToken` still serves the original
   * dialect, which cannot carry one. `failures` says how long a wrong token from a host waits
   * (a FailureDelay of this thread's own, unless the server's worker threads share one).
   */
  constructor(
    tokens: Tokens | undefined,
    originalWithoutToken: boolean,
    logger: Logger,
    failures?: (host: string) => number | Promise<number>,
  ) {
    const delay = new FailureDelay();
    this.#failures = failures ?? ((host) => delay.fail(host));
    this.#tokens = tokens;
    this.#originalWithoutToken = originalWithoutToken;
    this.#logger = logger;
  }

  /** Peers turned away for want of a valid token so far. */
  get refused(): number {
    return this.#refused;
  }

  /** True when the original dialect is served: tokens are off, or the operator allowed it. */
  get originalOpen(): boolean {
    return this.#tokens === undefined || this.#originalWithoutToken;
  }

  /**
   * Whether the peer on `connection` may make requests: always, without tokens; else only with a
   * valid `token` (undefined when the peer's protocol cannot carry one). Resolves to the error to
   * answer with, after the delay a wrong token earns.
   */
  async admit(connection: Peer, token: Uint8Array | undefined): Promise<WireError | undefined> {
    const tokens = this.#tokens;
    if (tokens === undefined || (token !== undefined && tokens.verify(token))) return undefined;
    if (token === undefined) {
      this.refuse(connection, "protocol version 1 cannot carry a token");
      return new WireError(
        ErrorCode.Unauthorized,
        "this server needs an access token, which takes protocol version 2",
      );
    }
    if (token.length === 0) {
      this.refuse(connection, "no token");
      return NO_TOKEN;
    }
    this.refuse(connection, "wrong token");
    await connection.pause(await this.#failures(connection.host));
    return new WireError(ErrorCode.Unauthorized, "the access token was not accepted");
  }

  /**
   * The error for a request that presents no token, when one is needed (undefined when not). It
   * is not counted or logged as a refusal: over HTTP, a request without credentials is how a
   * browser learns that it must ask for them.
   */
  challenge(): WireError | undefined {
    return this.#tokens === undefined ? undefined : NO_TOKEN;
  }

  /** Counts and logs a peer turned away for want of a valid token; `why` never holds the token. */
  refuse(connection: Peer, why: string): void {
    this.#refused++;
    this.#logger.event(
      "unauthorized",
      { id: connection.id, peer: connection.peer, why },
      "warning",
    );
  }
}
