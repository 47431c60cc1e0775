/**
 * hashFromPairs (src/store/job.ts): HGETALL's flat list as an object, the same for small and
 * large hashes (a hash of more than 19 fields is copied into a fast object; pure logic).
 */
import { describe, expect, it } from "vitest";
import { hashFromPairs } from "../src/store/job.js";

/** A flat [field, value, …] list of `n` fields f0..f(n-1) with values v0..v(n-1). */
const pairs = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => [`f${i}`, `v${i}`]).flat();

describe("hashFromPairs", () => {
  for (const n of [0, 1, 19, 20, 22, 300]) {
    it(`${n} fields: every field once, in list order`, () => {
      const hash = hashFromPairs(pairs(n));
      expect(Object.keys(hash)).toEqual(Array.from({ length: n }, (_, i) => `f${i}`));
      expect(Object.values(hash)).toEqual(Array.from({ length: n }, (_, i) => `v${i}`));
      expect(Object.getPrototypeOf(hash)).toBe(Object.prototype);
    });
  }

  it("a field listed twice takes its later value and keeps its first place (small and large)", () => {
    for (const n of [5, 25]) {
      const hash = hashFromPairs([...pairs(n), "f1", "later", "extra", "x"]);
      expect(hash.f1).toBe("later");
      expect(Object.keys(hash).slice(0, 3)).toEqual(["f0", "f1", "f2"]);
      expect(Object.keys(hash)).toHaveLength(n + 1);
    }
  });

  it("a trailing field without a value is left out", () => {
    expect(hashFromPairs(["a", "1", "b"])).toEqual({ a: "1" });
    expect(hashFromPairs([...pairs(21), "dangling"])).not.toHaveProperty("dangling");
  });
});
