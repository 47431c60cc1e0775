/**
 * Type names of generated code, the same in TypeScript, Python and Rust: job `send_email` →
 * `SendEmailParams` / `SendEmailResult`, `$defs` entry `address` → `SendEmailAddress`, inline
 * object property `to` of the params → `SendEmailParamsTo`.
 */

/** The words of a name: split at anything that is not a letter or digit, and at camelCase humps. */
function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w.length > 0);
}

/** `send_email` → `SendEmail`, `sendEmail` → `SendEmail`; a leading digit gets an `N`. */
export function pascalCase(name: string): string {
  const joined = words(name)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("");
  if (joined === "") return "Unnamed";
  return /^[0-9]/.test(joined) ? `N${joined}` : joined;
}

/** `messageId` → `message_id`, `Send-Email` → `send_email`; a leading digit gets an `n`. */
export function snakeCase(name: string): string {
  const joined = words(name)
    .map((w) => w.toLowerCase())
    .join("_");
  if (joined === "") return "unnamed";
  return /^[0-9]/.test(joined) ? `n${joined}` : joined;
}

/** Hands out type names, adding 2, 3, ... to a name that is already taken. */
export class NameRegistry {
  private readonly used = new Set<string>();

  /** A free name based on `wanted`, now taken. */
  claim(wanted: string): string {
    let name = wanted;
    for (let n = 2; this.used.has(name); n++) name = `${wanted}${n}`;
    this.used.add(name);
    return name;
  }
}
