/**
 * Where a server listens and a client connects when told nothing else. Both sides use these, so
 * they cannot drift apart.
 */

/** The address a server listens on by default: loopback, reachable from this machine only. */
export const DEFAULT_HOST = "127.0.0.1";

/** The port of the original server, kept so its clients need no new settings. */
export const DEFAULT_PORT = 4457;
