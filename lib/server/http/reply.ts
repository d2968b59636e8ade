/**
 * What an HTTP answer is before it is sent: a reply, a value that says the status, the fields and
 * the body, and how the request's exchange ends; and what the HTTP port is asked to serve with.
 * handler.ts decides on replies (through files.ts and folders.ts); serve.ts writes them.
 */

import { ErrorCode, type WireError } from "../../shared/errors.ts";
import type { SortBudget } from "../listing.ts";
import type { FileBody } from "../store/store.ts";
import type { Field, RequestHead } from "./message.ts";
import type { PagePart } from "./pages.ts";

/** Bytes `start` up to `end` (exclusive) of a file, to send as a reply's body. */
export interface FilePart {
  file: FileBody;
  start: number;
  end: number;
}

/** A folder's page, made as it is sent (see pages.ts). */
export interface FolderBody {
  page: AsyncIterable<PagePart>;
}

/** What to answer an HTTP request with. */
export interface Reply {
  status: number;
  /** Fields of this answer, beyond those the writer adds (Date, nosniff, length, connection). */
  fields: Field[];
  /**
   * A text of the server's own (a message: served with the strict Content-Security-Policy), a
   * folder's page (the same), a part of a file, or nothing at all (304).
   */
  body?: string | FilePart | FolderBody;
  /** True when the connection ends after this answer. */
  close?: boolean;
  /** The refusal this answer says (a bad name, a missing file): logged, not counted. */
  refused?: WireError;
  /** The server's failure this answer reports: logged and counted as an error. */
  failed?: WireError;
  /** The file the request named, for the log line. */
  name?: string;
}

/** A request as the handler takes it. */
export interface HttpRequest {
  head: RequestHead;
  /**
   * True when content came with the request that could not be read and dropped (too long, or of
   * a length only a transfer coding would tell): the connection must end after the answer.
   */
  contentKept: boolean;
}

/** How the HTTP port serves, beyond what every port shares. */
export interface HttpOptions {
  /**
   * Send `Content-Security-Policy: sandbox` with the files a browser may run scripts in (HTML,
   * SVG, XML), so a shared page cannot act with the origin's rights (docs/SECURITY.md).
   */
  htmlSandbox?: boolean;
  /**
   * The room folder pages sort their entries in, between them (see sortedWithin); none unless
   * given, and then every page shows its entries in the order the disk gives.
   */
  sortBudget?: SortBudget;
  /** A `Cache-Control` value sent with every file (`--cache-control`), none unless given. */
  cacheControl?: string;
  /**
   * The origins whose pages may read the answers (`--cors`): `["*"]` for any; none unless given.
   */
  cors?: string[];
  /** Files served for a folder's URL in its stead, the first present (`--index`); none by default. */
  index?: string[];
  /** False to send every file as it is, whatever the client accepts (`--compress off`). */
  compress?: boolean;
}

/** A text of the server's own as a reply. */
export function text(status: number, body: string, fields: Field[] = []): Reply {
  return { status, fields, body };
}

/** The status that says what a wire error says. */
export function statusOf(error: WireError): number {
  return error.code === ErrorCode.NotFound ? 404 : error.code === ErrorCode.BadRequest ? 400 : 500;
}
