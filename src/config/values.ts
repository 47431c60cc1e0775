import { ConfigError } from "../errors.js";

/**
 * Small typed readers for config values. Each takes the raw TOML value and the dotted key it
 * came from, and throws a {@link ConfigError} that names the key and what it accepts.
 */
export type Reader<T> = (value: unknown, key: string) => T;

function fail(key: string, expected: string, value: unknown): never {
  const shown = typeof value === "string" ? `"${value}"` : JSON.stringify(value);
  throw new ConfigError("invalid_config", `${key} must be ${expected}, got ${shown}`);
}

/** A string; `nonEmpty` rejects blank strings. */
export const str =
  (nonEmpty = true): Reader<string> =>
  (v, k) =>
    typeof v === "string" && (!nonEmpty || v.trim() !== "")
      ? v
      : fail(k, nonEmpty ? "a non-empty string" : "a string", v);

/** A boolean. */
export const bool: Reader<boolean> = (v, k) =>
  typeof v === "boolean" ? v : fail(k, "true or false", v);

/** A finite number within bounds. */
export const num =
  (min = -Infinity, max = Infinity, exclusiveMin = false): Reader<number> =>
  (v, k) => {
    const ok =
      typeof v === "number" &&
      Number.isFinite(v) &&
      (exclusiveMin ? v > min : v >= min) &&
      v <= max;
    if (ok) return v;
    const low = min === -Infinity ? "" : exclusiveMin ? ` > ${min}` : ` >= ${min}`;
    const high = max === Infinity ? "" : `${low ? " and" : ""} <= ${max}`;
    return fail(k, `a number${low}${high}`, v);
  };

/** An integer within bounds. */
export const int =
  (min = -Infinity, max = Infinity): Reader<number> =>
  (v, k) => {
    if (typeof v === "bigint") v = Number(v);
    if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) return v;
    const low = min === -Infinity ? "" : ` >= ${min}`;
    const high = max === Infinity ? "" : `${low ? " and" : ""} <= ${max}`;
    return fail(k, `an integer${low}${high}`, v);
  };

/** One of a closed set of strings. */
export const oneOf =
  <T extends string>(...values: T[]): Reader<T> =>
  (v, k) =>
    values.includes(v as T)
      ? (v as T)
      : fail(k, `one of ${values.map((x) => `"${x}"`).join(", ")}`, v);

/** An array of strings. */
export const strings =
  (nonEmpty = false): Reader<string[]> =>
  (v, k) => {
    const ok =
      Array.isArray(v) && v.every((x) => typeof x === "string") && (!nonEmpty || v.length > 0);
    return ok
      ? [...v]
      : fail(k, nonEmpty ? "a non-empty array of strings" : "an array of strings", v);
  };

/** A table of string values. */
export const stringMap: Reader<Record<string, string>> = (v, k) => {
  if (!isTable(v)) return fail(k, "a table of strings", v);
  for (const [name, value] of Object.entries(v)) {
    if (typeof value !== "string") fail(`${k}.${name}`, "a string", value);
  }
  return { ...(v as Record<string, string>) };
};

/** True for a TOML table (a plain object). */
export function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** A table; throws naming the key otherwise. */
export const table: Reader<Record<string, unknown>> = (v, k) =>
  isTable(v) ? v : fail(k, "a table", v);

/**
 * One message per key of `raw` not in `known`, naming the key, suggesting the closest valid key
 * when one is near (a typo), and listing what is accepted.
 */
export function unknownKeyProblems(
  raw: Record<string, unknown>,
  known: readonly string[],
  where: string,
): string[] {
  const valid = [...known].sort().join(", ");
  return Object.keys(raw)
    .filter((key) => !known.includes(key))
    .map((key) => {
      const near = closest(key, known);
      const hint = near === undefined ? "" : ` — did you mean '${near}'?`;
      return `unknown key '${where ? `${where}.` : ""}${key}'; valid keys are: ${valid}${hint}`;
    });
}

/** Throws a {@link ConfigError} for the first key of `raw` not in `known` (see {@link unknownKeyProblems}). */
export function rejectUnknownKeys(
  raw: Record<string, unknown>,
  known: readonly string[],
  where: string,
): void {
  const [first] = unknownKeyProblems(raw, known, where);
  if (first !== undefined) throw new ConfigError("invalid_config", first);
}

/** The entry of `known` nearest to `key` when it is a plausible typo of it, else undefined. */
export function closest(key: string, known: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.min(3, Math.floor(key.length / 4)));
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = editDistance(key.toLowerCase(), name);
    if (distance <= limit && (!best || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/** Edit distance counting an adjacent transposition as one edit ("retires" → "retries"). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * Collects configuration problems so that one run reports all of them, not only the first.
 * {@link attempt} turns a reader's {@link ConfigError} into a collected message.
 */
export class Problems {
  readonly messages: string[] = [];

  add(...messages: string[]): void {
    this.messages.push(...messages);
  }

  /** Runs `read`; on a ConfigError records its message and returns `fallback`. */
  attempt<T>(read: () => T, fallback: T): T {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      this.messages.push(error.message);
      return fallback;
    }
  }

  /** Throws one ConfigError listing every collected problem, if there are any. */
  throwIfAny(): void {
    const [first, ...rest] = this.messages;
    if (first === undefined) return;
    if (rest.length === 0) throw new ConfigError("invalid_config", first);
    const list = this.messages.map((m) => `\n  - ${m}`).join("");
    throw new ConfigError(
      "invalid_config",
      `${this.messages.length} problems in the configuration:${list}`,
    );
  }
}

/** Reads `raw[key]` with `read`, or returns `fallback` when the key is absent. */
export function field<T>(
  raw: Record<string, unknown>,
  key: string,
  where: string,
  read: Reader<T>,
  fallback: T,
): T {
  const value = raw[key];
  return value === undefined ? fallback : read(value, where ? `${where}.${key}` : key);
}
