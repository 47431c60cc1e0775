/**
 * Subset matching of JSON values against the expectations written in case files.
 *
 * A plain object matches when every key it names matches (extra keys in the actual value are
 * allowed: a case says only what it cares about). Arrays and scalars match exactly. An object
 * whose keys start with `$` is an operator:
 *
 * | Operator                     | Matches                                                     |
 * | ---------------------------- | ----------------------------------------------------------- |
 * | `{"$absent": true}`          | the key is missing                                          |
 * | `{"$nullish": true}`         | the key is missing or null                                  |
 * | `{"$type": "integer"}`       | a value of that JSON type (`string`, `number`, `integer`,   |
 * |                              | `boolean`, `object`, `array`, `null`); with `"$nonempty"`  |
 * |                              | a non-empty string/array, with `"$min"` a number ≥ min,     |
 * |                              | with `"$maxBytes"` a string of at most that many UTF-8 bytes |
 * | `{"$oneOf": [a, b]}`         | any of the alternatives                                     |
 * | `{"$ref": "a.request_id"}`   | the value a reference resolves to (see {@link Resolver})    |
 * | `{"$instant": ref-or-text}`  | an RFC 3339 string naming the same instant (to the ms)      |
 * | `{"$len": n}`                | a string or array of length n                               |
 * | `{"$contains": [a, b]}`      | an array holding, for each of a, b, an item matching it     |
 * | `{"$exact": {...}}`          | an object with exactly these keys (values matched)          |
 * | `{"$prefix": "x"}`           | a string starting with x                                    |
 * | `{"$json": value}`           | a string holding JSON that matches value                    |
 * | `{"$rfc3339": true}`         | an RFC 3339 timestamp in the producers' `+00:00` form       |
 */

/** Resolves `$ref` names (e.g. `a.request_id`) to values; undefined when unknown. */
export type Resolver = (ref: string) => unknown;

/** One place where actual and expected differ. */
export interface Mismatch {
  path: string;
  message: string;
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00$/;

/** A value as text: strings as they are, null/undefined as the fallback, anything else as JSON. */
export function text(value: unknown, fallback = ""): string {
  if (typeof value === "string") return value;
  return value == null ? fallback : JSON.stringify(value);
}

/** Short JSON for messages. */
export function show(value: unknown): string {
  if (value === undefined) return "(absent)";
  const text = JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isOperator(value: unknown): value is Record<string, unknown> {
  return isPlainObject(value) && Object.keys(value).some((k) => k.startsWith("$"));
}

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

function instantMs(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

class Matcher {
  readonly mismatches: Mismatch[] = [];
  constructor(private readonly resolve: Resolver) {}

  fail(path: string, message: string): void {
    this.mismatches.push({ path: path || "(value)", message });
  }

  match(actual: unknown, expected: unknown, path: string, present: boolean): void {
    if (isOperator(expected)) return this.operator(actual, expected, path, present);
    if (!present) return this.fail(path, `expected ${show(expected)}, got (absent)`);
    if (isPlainObject(expected)) {
      if (!isPlainObject(actual)) return this.fail(path, `expected an object, got ${show(actual)}`);
      for (const [key, value] of Object.entries(expected)) {
        this.match(actual[key], value, path ? `${path}.${key}` : key, key in actual);
      }
      return;
    }
    if (Array.isArray(expected)) {
      if (!Array.isArray(actual) || actual.length !== expected.length)
        return this.fail(path, `expected ${show(expected)}, got ${show(actual)}`);
      expected.forEach((item, i) => this.match(actual[i], item, `${path}[${i}]`, true));
      return;
    }
    if (!deepEqual(actual, expected))
      this.fail(path, `expected ${show(expected)}, got ${show(actual)}`);
  }

  private operator(
    actual: unknown,
    op: Record<string, unknown>,
    path: string,
    present: boolean,
  ): void {
    if ("$absent" in op) {
      if (present) this.fail(path, `expected no such field, got ${show(actual)}`);
      return;
    }
    if ("$nullish" in op) {
      if (present && actual !== null)
        this.fail(path, `expected null or absent, got ${show(actual)}`);
      return;
    }
    // Before the presence check, so that an alternative may be {"$nullish": true}.
    if ("$oneOf" in op) return this.oneOf(actual, op.$oneOf as unknown[], path, present);
    if (!present) return this.fail(path, `expected ${show(op)}, got (absent)`);
    if ("$ref" in op) {
      const wanted = this.resolve(String(op.$ref));
      if (!deepEqual(actual, wanted))
        this.fail(path, `expected ${show(wanted)} (${String(op.$ref)}), got ${show(actual)}`);
      return;
    }
    if ("$instant" in op) return this.instant(actual, op.$instant, path);
    if ("$exact" in op) return this.exact(actual, op.$exact as Record<string, unknown>, path);
    if ("$json" in op) {
      let parsed: unknown;
      try {
        parsed = typeof actual === "string" ? JSON.parse(actual) : undefined;
      } catch {
        parsed = undefined;
      }
      if (parsed === undefined)
        return this.fail(path, `expected a JSON string, got ${show(actual)}`);
      return this.match(parsed, op.$json, `${path}<json>`, true);
    }
    if ("$rfc3339" in op) {
      if (typeof actual !== "string" || !TIMESTAMP.test(actual))
        this.fail(path, `expected an RFC 3339 timestamp ending +00:00, got ${show(actual)}`);
      return;
    }
    if ("$prefix" in op) {
      if (typeof actual !== "string" || !actual.startsWith(String(op.$prefix)))
        this.fail(path, `expected a string starting ${show(op.$prefix)}, got ${show(actual)}`);
      return;
    }
    if ("$contains" in op) {
      if (!Array.isArray(actual)) return this.fail(path, `expected an array, got ${show(actual)}`);
      for (const wanted of op.$contains as unknown[]) {
        const found = actual.some((item) => {
          const inner = new Matcher(this.resolve);
          inner.match(item, wanted, path, true);
          return inner.mismatches.length === 0;
        });
        if (!found) this.fail(path, `expected an item matching ${show(wanted)} in ${show(actual)}`);
      }
      return;
    }
    if ("$len" in op) {
      const length =
        typeof actual === "string" || Array.isArray(actual) ? actual.length : undefined;
      if (length !== op.$len)
        this.fail(path, `expected length ${String(op.$len)}, got ${length ?? show(actual)}`);
      return;
    }
    if ("$type" in op) return this.type(actual, op, path);
    this.fail(path, `unknown operator in expectation ${show(op)}`);
  }

  private oneOf(actual: unknown, options: unknown[], path: string, present: boolean): void {
    for (const option of options) {
      const inner = new Matcher(this.resolve);
      inner.match(actual, option, path, present);
      if (inner.mismatches.length === 0) return;
    }
    this.fail(path, `expected one of ${show(options)}, got ${show(actual)}`);
  }

  private instant(actual: unknown, ref: unknown, path: string): void {
    const wantedText = typeof ref === "string" ? (this.resolve(ref) ?? ref) : ref;
    const wanted = instantMs(wantedText);
    const got = instantMs(actual);
    if (wanted === undefined || got === undefined || wanted !== got)
      this.fail(path, `expected the instant ${show(wantedText)}, got ${show(actual)}`);
  }

  private exact(actual: unknown, expected: Record<string, unknown>, path: string): void {
    if (!isPlainObject(actual)) return this.fail(path, `expected an object, got ${show(actual)}`);
    const extra = Object.keys(actual).filter((k) => !(k in expected));
    if (extra.length) this.fail(path, `unexpected field(s) ${extra.join(", ")}`);
    this.match(actual, expected, path, true);
  }

  private type(actual: unknown, op: Record<string, unknown>, path: string): void {
    const wanted = String(op.$type);
    const got = typeOf(actual);
    const ok = wanted === got || (wanted === "number" && got === "integer");
    if (!ok) return this.fail(path, `expected a value of type ${wanted}, got ${show(actual)}`);
    if (op.$nonempty && (typeof actual === "string" || Array.isArray(actual)) && !actual.length)
      this.fail(path, `expected a non-empty ${wanted}`);
    if (typeof op.$min === "number" && typeof actual === "number" && actual < op.$min)
      this.fail(path, `expected a number >= ${op.$min}, got ${actual}`);
    if (typeof op.$maxBytes === "number" && typeof actual === "string") {
      const bytes = Buffer.byteLength(actual, "utf8");
      if (bytes > op.$maxBytes)
        this.fail(path, `expected at most ${op.$maxBytes} UTF-8 bytes, got ${bytes}`);
    }
  }
}

/**
 * Matches `actual` against `expected`; returns every mismatch (empty when it matches). Paths in
 * mismatches are dotted from `root`.
 */
export function matchValue(
  actual: unknown,
  expected: unknown,
  resolve: Resolver = () => undefined,
  root = "",
): Mismatch[] {
  const matcher = new Matcher(resolve);
  matcher.match(actual, expected, root, actual !== undefined);
  return matcher.mismatches;
}

/** Reads a dotted path (`context.worker_id`) out of a value. */
export function pathGet(value: unknown, path: string): unknown {
  let current = value;
  for (const part of path.split(".")) {
    if (!isPlainObject(current)) return undefined;
    current = current[part];
  }
  return current;
}
