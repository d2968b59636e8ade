/**
 * What the HTTP port answers: a function from a parsed request (with the service and the peer)
 * to a reply (reply.ts), a value that says the status, the fields and the body, and how the
 * request's exchange ends. It sends nothing: serve.ts writes every reply the same way, so "logged
 * once" and "HEAD has no body" hold for every answer there is. Here the request is routed, the
 * token checked and other origins' fields added; files.ts and folders.ts make the rest.
 */

import type { Peer } from "../access.ts";
import type { Service } from "../service.ts";
import { allowedOrigin, corsFields, isPreflight, preflightFields } from "./cors.ts";
import { fileReply } from "./files.ts";
import { folderReply, indexReply } from "./folders.ts";
import { presentedToken, type RequestHead } from "./message.ts";
import { type HttpOptions, type HttpRequest, type Reply, text } from "./reply.ts";

/**
 * The reply to `request` from `peer`: files with ranges, validators and digests, folder pages,
 * the metrics page and a health check; anything but GET and HEAD is 405, and without a valid
 * token (when tokens are on) anything but the health check is 401.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { handle } from "./handler.ts";
 * import { parseRequestHead } from "./message.ts";
 * const head = parseRequestHead(new TextEncoder().encode("GET /-/healthy HTTP/1.1\r\nHost: a\r\n\r\n"));
 * const service = {} as import("../service.ts").Service; // the health check needs none of it
 * const peer = {} as import("../access.ts").Peer;
 * const reply = await handle({ head, contentKept: false }, service, peer);
 * equal(reply.status, 200);
 * equal(reply.body, "OK\n");
 * ```
 */
export async function handle(
  request: HttpRequest,
  service: Service,
  peer: Peer,
  options: HttpOptions = {},
): Promise<Reply> {
  const origin = allowedOrigin(request.head, options.cors);
  if (origin === undefined) return await route(request, service, peer, options);
  if (isPreflight(request.head)) return { status: 204, fields: preflightFields(origin) };
  const reply = await route(request, service, peer, options);
  return { ...reply, fields: [...reply.fields, ...corsFields(origin)] };
}

/** The reply to `request`, before any field for other origins. */
async function route(
  { head, contentKept }: HttpRequest,
  service: Service,
  peer: Peer,
  options: HttpOptions,
): Promise<Reply> {
  const { method, path } = head;
  if (method !== "GET" && method !== "HEAD") {
    const reply = text(405, "only GET and HEAD are served here\n", [["Allow", "GET, HEAD"]]);
    return { ...reply, close: contentKept };
  }
  if (path === undefined) return text(400, "the request target is not a valid path\n");
  // Open to all, for the health checks of proxies.
  if (path === "/-/healthy") return text(200, "OK\n");
  const refusal = await admit(head, service, peer);
  if (refusal !== undefined) return refusal;
  if (path === "/-/metrics") {
    return text(200, await service.metrics(), [[
      "Content-Type",
      "text/plain; version=0.0.4; charset=utf-8",
    ]]);
  }
  if (path.startsWith("/-/")) return text(404, "no such page\n");
  if (path.endsWith("/")) {
    return await indexReply(head, path, service, options) ??
      await folderReply(head, path, service, options);
  }
  return await fileReply(head, path, service, options);
}

/**
 * The 401 for a request without a valid token, when one is needed; undefined when the request may
 * go on. A wrong token ends the connection, as on the native port; a missing one may be followed
 * by the same request with credentials, as a browser does after its login prompt. Each challenge
 * has a field of its own, Basic first: a browser reads only the first challenge of a field, and
 * shows its login prompt only for Basic.
 */
async function admit(head: RequestHead, service: Service, peer: Peer): Promise<Reply | undefined> {
  const token = presentedToken(head.headers.get("authorization"));
  const refusal = token.length === 0
    ? service.access.challenge()
    : await service.access.admit(peer, token);
  if (refusal === undefined) return undefined;
  const reply = text(401, `${refusal.message}\n`, [
    ["WWW-Authenticate", 'Basic realm="files", charset="UTF-8"'],
    ["WWW-Authenticate", 'Bearer realm="files"'],
  ]);
  return { ...reply, close: token.length > 0 };
}
