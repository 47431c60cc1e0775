import { describe, expect, it } from "vitest";
import {
  canonicalJson,
  NotJsonError,
  parseTimestamp,
  parseTimestampMicros,
} from "../src/store/encoding.js";

/** The general RFC 3339 parse, as it was before the allocation-free fast path. */
const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?$/;
function generalMicros(value: string): number | undefined {
  const m = RFC3339.exec(value.trim());
  if (!m) return undefined;
  const fraction = (m[3] ?? "").padEnd(6, "0");
  const ms = Date.parse(`${m[1]}T${m[2]}.${fraction.slice(0, 3)}${(m[4] ?? "Z").toUpperCase()}`);
  return Number.isNaN(ms) ? undefined : ms * 1000 + Number(fraction.slice(3, 6));
}

const pad = (n: number, width: number) => String(n).padStart(width, "0");

describe("parseTimestampMicros's fast path", () => {
  it("reads what the general parse reads, edge ranges included", () => {
    const cases = [
      "2024-01-02T03:04:05+00:00",
      "2024-01-02T03:04:05Z",
      "2024-01-02T03:04:05.1Z",
      "2024-01-02T03:04:05.123456789+00:00",
      "2024-01-02T03:04:05.1234567891Z",
      "2024-01-02T03:04:05.Z",
      "2023-02-30T00:00:00Z",
      "0050-01-01T00:00:00Z",
      "2023-01-01T24:00:00Z",
      "2023-01-01T23:59:60Z",
      "2023-13-01T00:00:00Z",
      "2023-01-00T00:00:00Z",
      "2023-01-32T00:00:00Z",
      "2024-01-02t03:04:05z",
      " 2024-01-02T03:04:05Z ",
      "2024-01-02T03:04:05+01:00",
      "2024-01-02 03:04:05",
    ];
    // a fixed pseudo-random walk over the whole form (years 0-9999, out-of-range fields too)
    let seed = 7;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 20_000; i++) {
      const digits = next(11);
      const fraction = digits ? `.${Array.from({ length: digits }, () => next(10)).join("")}` : "";
      cases.push(
        `${pad(next(10000), 4)}-${pad(next(14), 2)}-${pad(next(33), 2)}T${pad(next(26), 2)}:` +
          `${pad(next(61), 2)}:${pad(next(61), 2)}${fraction}${next(2) ? "Z" : "+00:00"}`,
      );
    }
    for (const text of cases) expect(parseTimestampMicros(text), text).toBe(generalMicros(text));
    expect(parseTimestamp("2024-01-02T03:04:05.678901+00:00")).toBe(
      Date.UTC(2024, 0, 2, 3, 4, 5, 678),
    );
  });
});

describe("canonicalJson", () => {
  it("sorts keys by code point at every depth and drops undefined members", () => {
    expect(
      canonicalJson({ b: 1, a: [true, null, undefined, "x"], 10: 0, 9: { z: 1, y: undefined } }),
    ).toBe('{"10":0,"9":{"z":1},"a":[true,null,null,"x"],"b":1}');
    expect(canonicalJson({ "\u{1F600}": 1, "\uFFFF": 2 })).toBe('{"\uFFFF":2,"\u{1F600}":1}');
    expect(canonicalJson({ i: 1 })).toBe('{"i":1}');
  });

  it("names where a value JSON cannot hold sits", () => {
    const failure = (value: unknown) => {
      try {
        canonicalJson(value, "result");
      } catch (error) {
        expect(error).toBeInstanceOf(NotJsonError);
        return (error as NotJsonError).path;
      }
      return undefined;
    };
    expect(failure({ a: { b: [1, 2, NaN] } })).toBe("result.a.b[2]");
    expect(failure([{ x: () => 1 }])).toBe("result[0].x");
    expect(failure({ m: new Map() })).toBe("result.m");
    expect(failure(Infinity)).toBe("result");
    expect(failure({ d: { toJSON: () => ({ n: -Infinity }) } })).toBe("result.d.n");
  });
});
