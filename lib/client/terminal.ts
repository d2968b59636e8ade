/**
 * Text from a server, made safe to print: a server is not trusted to drive the user's terminal.
 * What must be escaped is the rule the server's log applies too (lib/shared/printable.ts).
 */

export { printable } from "../shared/printable.ts";
