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
  const fast = canonicalMicros(value);
  if (fast !== undefined) return fast;
  const m = RFC3339_PARTS.exec(value.trim());
  if (!m) return undefined;
  const fraction = (m[3] ?? "").padEnd(6, "0");
  const ms = Date.parse(`${m[1]}T${m[2]}.${fraction.slice(0, 3)}${(m[4] ?? "Z").toUpperCase()}`);
  return Number.isNaN(ms) ? undefined : ms * 1000 + Number(fraction.slice(3, 6));
}

/** The decimal digits of `text` from `start` to `end` (exclusive); NaN when one is not a digit. */
function digitsAt(text: string, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  return n;
}

/**
 * {@link parseTimestampMicros} without allocating, for the form rrqkit and RRQ write
 * (`2024-01-02T03:04:05.678901+00:00`, or with `Z`, 0 to 9 fraction digits); undefined for
 * anything else, which then takes the general parse. Every job's enqueue_time is parsed at
 * claim: the regex match, its parts and the rebuilt string were about 0.6 KB per job.
 */
function canonicalMicros(text: string): number | undefined {
  const n = text.length;
  if (n < 20 || text[4] !== "-" || text[7] !== "-" || text[10] !== "T") return undefined;
  if (text[13] !== ":" || text[16] !== ":") return undefined;
  let end = n;
  if (text.endsWith("Z")) end = n - 1;
  else if (text.endsWith("+00:00")) end = n - 6;
  else return undefined;
  let fractionMicros = 0;
  if (end > 19) {
    const digits = end - 20;
    if (text[19] !== "." || digits < 1 || digits > 9) return undefined;
    const fraction = digitsAt(text, 20, end);
    if (Number.isNaN(fraction)) return undefined;
    // the first six digits, as micros (finer digits are truncated, as RRQ does)
    fractionMicros =
      digits >= 6 ? Math.floor(fraction / 10 ** (digits - 6)) : fraction * 10 ** (6 - digits);
  } else if (end !== 19) return undefined;
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 7);
  const day = digitsAt(text, 8, 10);
  const hour = digitsAt(text, 11, 13);
  const minute = digitsAt(text, 14, 16);
  const second = digitsAt(text, 17, 19);
  // ranges Date.parse would refuse or read differently (years below 100, hour 24) go the slow way
  if (!(year >= 100 && month >= 1 && month <= 12 && day >= 1 && day <= 31)) return undefined;
  if (!(hour <= 23 && minute <= 59 && second <= 59)) return undefined;
  // summed as the general parse does (ms, then micros), so far-off times round the same way
  const millis = Math.floor(fractionMicros / 1000);
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  return ms * 1000 + (fractionMicros - millis * 1000);
}

/** Parses any RFC 3339 timestamp (and, as RRQ's CLI does, epoch seconds) to epoch ms. */
export function parseTimestamp(value: string): number | undefined {
  const fast = canonicalMicros(value);
  if (fast !== undefined) return Math.floor(fast / 1000);
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

/**
 * Where a value JSON cannot hold sits, built only when one is found: a path string per member
 * (`params.a.b[2]`) made for every value encoded was most of the garbage of encoding a result.
 */
class PathTo {
  constructor(
    readonly parent: PathTo | string,
    readonly key: string | number,
  ) {}

  static text(at: PathTo | string): string {
    if (typeof at === "string") return at;
    const parent = PathTo.text(at.parent);
    return typeof at.key === "number" ? `${parent}[${at.key}]` : `${parent}.${at.key}`;
  }
}

/** JSON of `value`, which sits at `at` (or, with `key`, at member `key` of `at`). */
function encodeValue(value: unknown, at: PathTo | string, key?: string | number): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value))
        throw new NotJsonError(pathText(at, key), "non_finite", `non-finite number ${value}`);
      return JSON.stringify(value);
    case "object":
      break;
    default:
      throw new NotJsonError(pathText(at, key), "not_json", `a ${typeof value} is not JSON`);
  }
  // a path object per container, not per member: scalars need none unless they fail
  const here = key === undefined ? at : new PathTo(at, key);
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (i > 0) out += ",";
      out += item === undefined ? "null" : encodeValue(item, here, i);
    }
    return `${out}]`;
  }
  const withJson = value as { toJSON?: () => unknown };
  if (typeof withJson.toJSON === "function") return encodeValue(withJson.toJSON(), at, key);
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const kind = value.constructor?.name ?? "object";
    throw new NotJsonError(pathText(at, key), "not_json", `a ${kind} is not JSON`);
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (!sortedByCodePoint(keys)) keys.sort(compareCodePoints);
  let out = "{";
  for (const name of keys) {
    const member = record[name];
    if (member === undefined) continue;
    if (out.length > 1) out += ",";
    out += `${JSON.stringify(name)}:${encodeValue(member, here, name)}`;
  }
  return `${out}}`;
}

function pathText(at: PathTo | string, key: string | number | undefined): string {
  return PathTo.text(key === undefined ? at : new PathTo(at, key));
}

/** True when `keys` are already in code point order (the common case: skips the sort). */
function sortedByCodePoint(keys: readonly string[]): boolean {
  for (let i = 1; i < keys.length; i++)
    if (compareCodePoints(keys[i - 1]!, keys[i]!) > 0) return false;
  return true;
}

/**
 * Canonical JSON: compact, object keys sorted by code point at every depth, non-ASCII raw.
 * `undefined` object members are omitted (as JSON.stringify does). Throws {@link NotJsonError}
 * for NaN/±Infinity, BigInt, functions, symbols and non-plain objects such as Map.
 */
export function canonicalJson(value: unknown, rootPath = "params"): string {
  return encodeValue(value, rootPath);
}
