/**
 * The rules for file names, which both sides apply: the server to what it serves, the client to
 * what it saves. A file is named by its path relative to the shared folder, with "/" between
 * folders, and every name has exactly one accepted spelling: nothing is normalised, so "a//b" or
 * "./a" are refused rather than rewritten.
 */

import { ErrorCode, WireError } from "./errors.ts";

/** A name that can never be served (escapes the folder, has NUL, is too long, ...). */
export class BadNameError extends WireError {
  constructor(message: string) {
    super(ErrorCode.BadRequest, message);
    this.name = "BadNameError";
  }
}

/**
 * The longest name accepted, in UTF-8 bytes. Four times a file system's usual limit for one
 * component (255 bytes) leaves room for deep folders, while staying far below PATH_MAX (4096) and
 * keeping every request frame small.
 */
export const MAX_NAME_BYTES = 1024;

const encoder = new TextEncoder();

/**
 * Checks a client-supplied name and returns it in canonical form (the name itself: a name that
 * would need rewriting is refused instead), or throws BadNameError with one clear sentence saying
 * what is wrong. Refused: empty names, names over {@link MAX_NAME_BYTES}, invalid Unicode, control
 * characters (U+0000 to U+001F, U+007F), backslashes, absolute names, a trailing "/", empty, "."
 * or ".." components, and hidden names: any component starting with "." (such as ".env" or
 * ".git/config") is private to the server's host and never served.
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { checkName } from "./names.ts";
 * equal(checkName("docs/readme.txt"), "docs/readme.txt");
 * throws(() => checkName("../etc/passwd"), /has a ".." component/);
 * throws(() => checkName(".env"), /hidden/);
 * ```
 */
export function checkName(name: string): string {
  if (name === "") throw new BadNameError("a file name cannot be empty");
  const bytes = encoder.encode(name).length;
  if (bytes > MAX_NAME_BYTES) {
    throw new BadNameError(
      `a file name may be at most ${MAX_NAME_BYTES} bytes long, but this one is ${bytes} bytes`,
    );
  }
  if (!name.isWellFormed()) {
    throw new BadNameError(`${quote(name)} is not valid Unicode (it has a lone surrogate)`);
  }
  // deno-lint-ignore no-control-regex -- finding control characters is the point
  const control = name.match(/[\u0000-\u001f\u007f]/);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
    throw new BadNameError(`${quote(name)} contains a control character (U+${code})`);
  }
  if (name.includes("\\")) {
    throw new BadNameError(`${quote(name)} contains a backslash; folders are separated by "/"`);
  }
  if (name.startsWith("/")) {
    throw new BadNameError(`${quote(name)} is absolute; names are relative to the data folder`);
  }
  if (name.endsWith("/")) {
    throw new BadNameError(`${quote(name)} ends with "/"; a name must name a file`);
  }
  for (const part of name.split("/")) {
    if (part === "") throw new BadNameError(`${quote(name)} has an empty component ("//")`);
    if (part === "..") throw new BadNameError(`${quote(name)} has a ".." component`);
    if (part === ".") throw new BadNameError(`${quote(name)} has a "." component`);
    if (part.startsWith(".")) {
      throw new BadNameError(
        `${quote(name)} is hidden (starts with "."); hidden files are private`,
      );
    }
  }
  return name;
}

/**
 * A name in quotes, control characters and lone surrogates escaped, so messages stay one line.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { quote } from "./names.ts";
 * equal(quote("a\nb"), '"a\\nb"');
 * ```
 */
export function quote(name: string): string {
  return JSON.stringify(name);
}
