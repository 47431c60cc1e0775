/**
 * The conformance harness's live-job pieces: the e2e `output` expectation over a stream given
 * directly (no Redis), and which bindings the `live` / `without_live` needs select. The cases in
 * conformance/cases/e2e/live.json run them against real orchestrators.
 */
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { builtinBindings } from "../../src/conformance/bindings.js";
import { loadCases, repoRoot } from "../../src/conformance/cases.js";
import { checkOutputStream } from "../../src/conformance/e2e-output.js";
import { applies } from "../../src/conformance/run.js";

type Entry = Record<string, string>;

/** A Redis stand-in holding one stream (entries as field maps) with a TTL. */
function stream(entries: Entry[], ttl = 86_400): Redis {
  return {
    xrange: () =>
      Promise.resolve(entries.map((fields, i) => [`${i}-0`, Object.entries(fields).flat()])),
    ttl: () => Promise.resolve(ttl),
  } as unknown as Redis;
}

const rule = (fallback: string) => fallback;
const check = (entries: Entry[], e: Record<string, unknown>) =>
  checkOutputStream(stream(entries), "w", "id-w", e, rule);

describe("conformance e2e output expectation", () => {
  const capped: Entry[] = [
    { k: "log", d: "x".repeat(60) },
    { k: "log", d: "x".repeat(40) },
    { k: "truncated", dropped: "80" },
    { k: "closed", status: "completed" },
  ];

  it("passes a stream holding the data, one truncation entry and the closed entry last", async () => {
    const e = { text: "x".repeat(100), bytes: 100, truncated: 80, closed: "completed" };
    expect(await check(capped, e)).toEqual([]);
    expect(await check(capped, { kind: ["log"], ttl: { $type: "integer", $min: 1 } })).toEqual([]);
  });

  it("names what differs: text, bytes, dropped count, closed status", async () => {
    const failures = await check(capped, {
      text: "x",
      bytes: 99,
      truncated: 79,
      closed: "failed",
    });
    expect(failures.map((f) => f.message)).toEqual([
      expect.stringContaining("rrq:output:id-w:1: text"),
      expect.stringContaining("100 bytes of data, expected 99"),
      expect.stringContaining("dropped (value): expected 79, got 80"),
      expect.stringContaining("expected {k: closed, status: failed}"),
    ]);
  });

  it("fails a truncation where none is expected, a closed entry that is not last, and no stream", async () => {
    expect(await check(capped, { truncated: null })).toHaveLength(1);
    const late: Entry[] = [
      { k: "closed", status: "completed" },
      { k: "log", d: "late" },
    ];
    expect(await check(late, { closed: "completed" })).toHaveLength(1);
    const [missing] = await check([], { closed: "completed" });
    expect(missing!.message).toContain("the stream is empty or absent");
  });
});

describe("live needs", () => {
  const bindings = builtinBindings(repoRoot());
  const byName = new Map(loadCases().map((c) => [c.id, c]));

  it("live cases skip RRQ's runner; the plain v2 fallback case runs on it only", () => {
    const live = byName.get("e2e/live/output-cut-at-cap")!;
    const plain = byName.get("e2e/live/plain-runner-runs-jobs-without-live")!;
    for (const name of ["node", "python", "rust"]) {
      expect(applies(live, bindings[name]!, "stdio", "msgpack")).toBe(true);
      expect(applies(plain, bindings[name]!, "tcp", "json")).toBe(false);
    }
    expect(applies(live, bindings.rrq!, "tcp", "json")).toBe(false);
    expect(applies(plain, bindings.rrq!, "tcp", "json")).toBe(true);
    expect(
      applies(byName.get("runner/live/hello-tags-from-env")!, bindings.rrq!, "tcp", "json"),
    ).toBe(false);
  });
});
