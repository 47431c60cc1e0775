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
 * Rejects keys of `raw` not in `known`, naming the key and listing what is accepted.
 */
export function rejectUnknownKeys(
  raw: Record<string, unknown>,
  known: readonly string[],
  where: string,
): void {
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      throw new ConfigError(
        "invalid_config",
        `unknown key '${where ? `${where}.` : ""}${key}'; valid keys are: ${[...known].sort().join(", ")}`,
      );
    }
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
