import type { Command } from "commander";

/** Commander's wording for a value an option's parser rejected; our parser's message follows. */
const INVALID_VALUE = " is invalid. ";

/** `rrq dlq requeue` for a command (its path from the root program). */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * The text printed for a usage error of `command`. A rejected option value gets one line, the
 * option parser's own message (which names the option and the problem: "--params is not valid
 * JSON: …"), since a usage dump would only bury it. Other usage errors (unknown option, missing
 * argument) get commander's message and a pointer to the command's help.
 */
export function usageErrorText(message: string, command: Command): string {
  const text = message.trimEnd().replace(/^error: /, "");
  const invalid = text.lastIndexOf(INVALID_VALUE);
  if (invalid >= 0) return `rrq: ${text.slice(invalid + INVALID_VALUE.length)}\n`;
  return `rrq: ${text}\n(see '${commandPath(command)} --help')\n`;
}

/**
 * Makes every command print short usage errors ({@link usageErrorText}) instead of the message
 * followed by the whole help text. Call after every command is registered.
 */
export function shortUsageErrors(program: Command): void {
  const visit = (command: Command) => {
    command.showHelpAfterError(false).configureOutput({
      outputError: (message, write) => write(usageErrorText(message, command)),
    });
    command.commands.forEach(visit);
  };
  visit(program);
}
