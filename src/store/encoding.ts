/**
 * Byte-exact encodings of the job hash (protocol/PRODUCER.md §4, rrq-0.11-facts §1.4).
 */

/**
 * RFC 3339 in UTC with a `+00:00` offset and the fewest fraction digits (0, 3 or 6) that are
 * exact for a time in epoch microseconds (chrono's `to_rfc3339`, at microsecond precision).
 */
export function formatTimestampMicros(epochMicros: number): string {
  const seconds = Math.floor(epochMicros / 1_000_000);
  const fraction = epochMicros - seconds * 1_000_000;
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  if (fraction === 0) return `${base}+00:00`;
  const digits = String(fraction).padStart(6, "0");
  return `${base}.${fraction % 1000 === 0 ? digits.slice(0, 3) : digits}+00:00`;
}

/** {@link formatTimestampMicros} for a time in epoch milliseconds (0 or 3 fraction digits). */
export function formatTimestamp(epochMs: number): string {
  return formatTimestampMicros(Math.round(epochMs) * 1000);
}

const RFC3339_PARTS =
  /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?$/;

/**
 * Parses an RFC 3339 timestamp (a missing offset means UTC) to epoch microseconds, truncating
 * finer fractions as RRQ does. Undefined when the text is not RFC 3339.
 */
export function parseTimestampMicros(value: string): number | undefined {
  const m = RFC3339_PARTS.exec(value.trim());
  if (!m) return undefined;
  const fraction = (m[3] ?? "").padEnd(6, "0");
  const ms = Date.parse(`${m[1]}T${m[2]}.${fraction.slice(0, 3)}${(m[4] ?? "Z").toUpperCase()}`);
  return Number.isNaN(ms) ? undefined : ms * 1000 + Number(fraction.slice(3, 6));
}

/** Parses any RFC 3339 timestamp (and, as RRQ's CLI does, epoch seconds) to epoch ms. */
export function parseTimestamp(value: string): number | undefined {
  const text = value.trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const micros = parseTimestampMicros(text);
  return micros === undefined ? undefined : Math.floor(micros / 1000);
}

/**
 * The wire form of a hash timestamp: UTC with a `Z` suffix, keeping every fraction digit
 * (`…+00:00` becomes `…Z`; other offsets are converted to UTC at millisecond precision).
 */
export function toWireTimestamp(value: string): string {
  if (value.endsWith("+00:00")) return `${value.slice(0, -6)}Z`;
  if (/[Zz]$/.test(value)) return value.replace(/z$/, "Z");
  const ms = parseTimestamp(value);
  return ms === undefined ? value : new Date(ms).toISOString();
}

/** Thrown by {@link canonicalJson} for a value JSON cannot represent; `path` locates it. */
export class NotJsonError extends Error {
  override readonly name = "NotJsonError";
  constructor(
    readonly path: string,
    readonly reason: "non_finite" | "not_json",
    detail: string,
  ) {
    super(`${detail} at ${path}`);
  }
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** Orders keys by Unicode code point (UTF-16 order differs only around surrogates). */
function compareCodePoints(a: string, b: string): number {
  if (!SURROGATE.test(a) && !SURROGATE.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function encodeValue(value: unknown, path: string): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value))
        throw new NotJsonError(path, "non_finite", `non-finite number ${value}`);
      return JSON.stringify(value);
    case "object":
      break;
    default:
      throw new NotJsonError(path, "not_json", `a ${typeof value} is not JSON`);
  }
  if (Array.isArray(value)) {
    return `[${value.map((item, i) => (item === undefined ? "null" : encodeValue(item, `${path}[${i}]`))).join(",")}]`;
  }
  const withJson = value as { toJSON?: () => unknown };
  if (typeof withJson.toJSON === "function") return encodeValue(withJson.toJSON(), path);
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const kind = value.constructor?.name ?? "object";
    throw new NotJsonError(path, "not_json", `a ${kind} is not JSON`);
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort(compareCodePoints);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${encodeValue(record[k], `${path}.${k}`)}`).join(",")}}`;
}

/**
 * Canonical JSON: compact, object keys sorted by code point at every depth, non-ASCII raw.
 * `undefined` object members are omitted (as JSON.stringify does). Throws {@link NotJsonError}
 * for NaN/±Infinity, BigInt, functions, symbols and non-plain objects such as Map.
 */
export function canonicalJson(value: unknown, rootPath = "params"): string {
  return encodeValue(value, rootPath);
}
