/**
 * Tests of the conformance harness itself (toml-test's runner_test.go idea): the corpus checks
 * itself, the matcher and span rules behave, and deliberately broken runners make the run fail
 * with a message that names the case and the rule.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { AdapterClient } from "../../src/conformance/adapter-client.js";
import { customBinding, splitCommand, type Extension } from "../../src/conformance/bindings.js";
import { fillJobIds } from "../../src/conformance/e2e-checks.js";
import { loadCases, repoRoot } from "../../src/conformance/cases.js";
import { matchValue } from "../../src/conformance/matching.js";
import { decodeExport } from "../../src/conformance/otlp-receiver.js";
import {
  closingLine,
  formatResult,
  knownFailureLines,
  parityTable,
  totals,
  type Result,
} from "../../src/conformance/report.js";
import { runConformance } from "../../src/conformance/run.js";

const root = repoRoot();
const fixture = join(root, "dist", "conformance", "fixtures", "faulty-runner.js");
const cases = loadCases(root);

/**
 * Runs the selected runner cases against the fixture runner with a fault (tcp/json only), as a
 * core runner, or with `supports` as a runner with those extensions.
 */
async function runFixture(
  fault: string,
  run: string[],
  knownFailures?: string,
  supports?: Extension[],
): Promise<Result[]> {
  const binding = customBinding(
    "fixture",
    `${process.execPath} ${fixture}`,
    undefined,
    knownFailures ?? join(tmpdir(), "no-such-list.txt"),
    "core",
    supports,
  );
  binding.runner!.env = { RRQ_FAULT: fault };
  const lines: string[] = [];
  const results = await runConformance({
    root,
    cases,
    bindings: [binding],
    e2e: [],
    transports: ["tcp"],
    encodings: ["json"],
    run,
    skip: [],
    kinds: new Set(["runner"]),
    parallel: 1,
    print: (line) => lines.push(line),
  });
  expect(lines.length).toBeGreaterThanOrEqual(results.length);
  return results;
}

describe("the case corpus", () => {
  it("loads, validates against case.schema.json and covers every topic of the issue", () => {
    const topics = new Set(cases.map((c) => c.id.split("/").slice(0, 2).join("/")));
    for (const topic of [
      "runner/framing",
      "runner/envelope",
      "runner/decoding",
      "runner/outcomes",
      "runner/deadlines",
      "runner/cancel",
      "runner/concurrency",
      "runner/process",
      "runner/telemetry",
      "runner/job-control",
      "runner/live",
      "e2e/jobs",
      "e2e/telemetry",
      "e2e/job-control",
      "producer/job-control",
      "producer/enqueue",
      "producer/guards",
      "producer/validation",
      "producer/status",
      "producer/config",
    ])
      expect(topics).toContain(topic);
    expect(new Set(cases.map((c) => c.id)).size).toBe(cases.length);
  });
});

describe("e2e expectations", () => {
  it("replace {alias} placeholders with job ids in every string, leaving unknown names", () => {
    const jobs = new Map([["j", { id: "abc", step: {} }]]);
    expect(
      fillJobIds(
        { job_id: "death:{j}:1:0", status: { result: { job_id: "{j}", other: "{x}" } }, n: 1 },
        jobs,
      ),
    ).toEqual({
      job_id: "death:abc:1:0",
      status: { result: { job_id: "abc", other: "{x}" } },
      n: 1,
    });
  });
});

describe("matching", () => {
  it("matches objects as subsets and reports the path of each difference", () => {
    expect(matchValue({ a: 1, b: { c: "x", d: 2 } }, { b: { c: "x" } })).toEqual([]);
    const [problem] = matchValue({ error: { type: "canceled" } }, { error: { type: "cancelled" } });
    expect(problem).toEqual({
      path: "error.type",
      message: 'expected "cancelled", got "canceled"',
    });
  });

  it("supports the operators case files use", () => {
    const resolve = (ref: string) => (ref === "a.request_id" ? "req-1" : undefined);
    const value = { id: "req-1", n: 3, s: "", t: "2026-01-01T00:00:00.500Z", j: '{"k":[1]}' };
    expect(
      matchValue(
        value,
        {
          id: { $ref: "a.request_id" },
          n: { $type: "integer", $min: 1 },
          s: { $oneOf: ["", null] },
          t: { $instant: "2026-01-01T00:00:00.5+00:00" },
          j: { $json: { k: { $len: 1 } } },
          missing: { $nullish: true },
        },
        resolve,
      ),
    ).toEqual([]);
    expect(matchValue({ x: null }, { x: { $absent: true } })).toHaveLength(1);
    const features = ["ping", "progress", "output"];
    expect(matchValue(features, { $contains: ["output", "progress"] })).toEqual([]);
    expect(matchValue(features, { $contains: ["stream"] })).toHaveLength(1);
    expect(matchValue([{ seq: 0, data: "a" }], { $contains: [{ seq: 0 }] })).toEqual([]);
  });
});

describe("commands and adapters", () => {
  it("splits command lines and makes a relative program path absolute", () => {
    expect(splitCommand(`./bin/runner --flag "two words"`)).toEqual([
      join(process.cwd(), "bin", "runner"),
      "--flag",
      "two words",
    ]);
    expect(splitCommand("python3 -m runner")).toEqual(["python3", "-m", "runner"]);
  });

  it("drops a producer adapter's late reply instead of taking it for the next command's", async () => {
    // Replies to "slow" after 300 ms, to anything else at once.
    const script = [
      "const rl = require('readline').createInterface({ input: process.stdin });",
      "rl.on('line', (line) => {",
      "  const c = JSON.parse(line);",
      "  const reply = () => process.stdout.write(JSON.stringify({ id: c.id, ok: true, result: c.op }) + '\\n');",
      "  if (c.op === 'slow') setTimeout(reply, 300); else reply();",
      "});",
    ].join("\n");
    const adapter = AdapterClient.start({ argv: [process.execPath, "-e", script] });
    try {
      await expect(adapter.call("slow", {}, 50)).rejects.toThrow("no reply to slow within 50 ms");
      expect(await adapter.call("quick")).toMatchObject({ ok: true, result: "quick" });
      await new Promise((r) => setTimeout(r, 400)); // the late reply to "slow" arrives
      expect(await adapter.call("after")).toMatchObject({ ok: true, result: "after" });
    } finally {
      await adapter.close();
    }
  });
});

describe("the OTLP receiver", () => {
  it("decodes OTLP/JSON exports with typed attributes and the parent span", () => {
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: "service.name", value: { stringValue: "x" } }] },
          scopeSpans: [
            {
              spans: [
                {
                  traceId: "0af7651916cd43dd8448eb211c80319c",
                  spanId: "00f067aa0ba902b7",
                  parentSpanId: "b7ad6b7169203331",
                  name: "rrq.runner",
                  kind: 5,
                  attributes: [
                    { key: "rrq.attempt", value: { intValue: "2" } },
                    { key: "rrq.duration_ms", value: { doubleValue: 1.5 } },
                  ],
                  status: { code: 2, message: "boom" },
                },
              ],
            },
          ],
        },
      ],
    };
    const [span] = decodeExport(Buffer.from(JSON.stringify(body)), "application/json");
    expect(span).toMatchObject({
      name: "rrq.runner",
      kind: 5,
      parentSpanId: "b7ad6b7169203331",
      attributes: {
        "rrq.attempt": { type: "int", value: 2 },
        "rrq.duration_ms": { type: "double", value: 1.5 },
      },
      status: { code: 2, message: "boom" },
    });
  });
});

describe("the parity table", () => {
  it("is laid out as Prettier lays out Markdown, so a regenerated README stays formatted", async () => {
    const result = (
      binding: string,
      variant: string,
      caseId: string,
      status: Result["status"],
      note?: string,
    ) => ({ id: "", binding, variant, caseId, status, failures: [], spec: [], ms: 1, note });
    const table = parityTable([
      result("node", "tcp/json", "runner/cancel/cancel-by-request", "pass"),
      result("node", "unix/msgpack", "runner/cancel/cancel-by-request", "pass"),
      result("node", "producer", "producer/enqueue/enqueue-writes-job-and-queue", "pass"),
      result("rrq", "tcp/json", "runner/outcomes/timeout-outcome", "xfail"),
      result("rrq-orchestrator+python", "tcp/json", "e2e/jobs/success-completes", "fail"),
      result("custom1", "*", "*", "skip", "not available: no such file"),
    ]);
    const { format } = await import("prettier");
    expect(await format(table, { parser: "markdown" })).toBe(`${table}\n`);
    const row = (binding: string) =>
      table
        .split("\n")
        .find((line) => line.startsWith(`| ${binding} `))!
        .split("|")
        .slice(1, -1)
        .map((cell) => cell.trim());
    expect(row("node")).toEqual(["node", "2 / 2 on 2 variants", "—", "1 / 1", "0", "0"]);
    expect(row("rrq")).toEqual(["rrq", "0 / 1 on tcp/json", "—", "—", "1", "0"]);
    expect(row("rrq-orchestrator+python")).toEqual([
      "rrq-orchestrator+python",
      "—",
      "0 / 1 on tcp/json",
      "—",
      "0",
      "1",
    ]);
    expect(row("custom1")).toEqual(["custom1", "not available: no such file", "", "", "", ""]);
  });

  it("prints known-failures lines for failing results, in the list format", () => {
    const failing: Result = {
      id: "go:tcp/json:runner/cancel/cancel-by-request",
      binding: "go",
      variant: "tcp/json",
      caseId: "runner/cancel/cancel-by-request",
      status: "fail",
      failures: [{ rule: "error.type cancelled", message: "got canceled" }],
      spec: [],
      ms: 1,
    };
    const stale: Result = { ...failing, id: "go:tcp/json:x", failures: [], note: "passes now" };
    expect(knownFailureLines([failing, stale], (b) => `known-failures/${b}.txt`)).toEqual([
      "# add to known-failures/go.txt:",
      "go:tcp/json:runner/cancel/cancel-by-request  # TODO why: error.type cancelled",
    ]);
  });
});

describe("broken runners fail the run, naming the case and the rule", () => {
  it("passes a conforming runner (the control)", async () => {
    const results = await runFixture("", ["runner/cancel/cancel-by-request"]);
    expect(results.map((r) => r.status)).toEqual(["pass"]);
    expect(closingLine(totals(results))).toBe("conformance: 1 passed, 0 failed");
  });

  it("catches a wrong error.type on cancel", async () => {
    const [result] = await runFixture("cancel-type", ["runner/cancel/cancel-by-request"]);
    expect(result!.status).toBe("fail");
    const report = formatResult(result!);
    expect(report).toContain("runner/cancel/cancel-by-request");
    expect(report).toContain("error.type cancelled (RUNNER_PROTOCOL.md §9.4)");
    expect(report).toContain('error.type: expected "cancelled", got "canceled"');
  });

  it("catches an outcome without request_id", async () => {
    const [result] = await runFixture("no-request-id", [
      "runner/outcomes/raw-value-becomes-success",
    ]);
    expect(result!.status).toBe("fail");
    const report = formatResult(result!);
    expect(report).toContain("runner/outcomes/raw-value-becomes-success");
    expect(report).toContain("request_id and job_id (RUNNER_PROTOCOL.md §6.1)");
    expect(report).toContain("has no request_id");
  });

  it("catches a span missing an attribute", async () => {
    const [result] = await runFixture("span-no-worker-id", ["runner/telemetry/span-for-success"]);
    expect(result!.status).toBe("fail");
    const report = formatResult(result!);
    expect(report).toContain("runner/telemetry/span-for-success");
    expect(report).toContain("rrq.runner span (protocol/TELEMETRY.md");
    expect(report).toContain("attribute rrq.worker_id is missing");
  });

  it("catches live frames a request did not ask for, and live frames after the response", async () => {
    const live: Extension[] = ["hello", "live"];
    const control = await runFixture(
      "",
      ["runner/live/no-live-frames-without-live", "runner/live/output-lines"],
      undefined,
      live,
    );
    expect(control.map((r) => r.status)).toEqual(["pass", "pass"]);
    const [unasked] = await runFixture(
      "live-unasked",
      ["runner/live/no-live-frames-without-live"],
      undefined,
      live,
    );
    expect(unasked!.status).toBe("fail");
    expect(formatResult(unasked!)).toContain(
      "no progress or output frame unless the request's live enables it (RUNNER_PROTOCOL.md §13.1)",
    );
    const [late] = await runFixture("live-late", ["runner/live/output-lines"], undefined, live);
    expect(late!.status).toBe("fail");
    expect(formatResult(late!)).toContain(
      "live frames precede the request's response (RUNNER_PROTOCOL.md §13.4)",
    );
  });

  it("turns a listed known failure into XFAIL, and fails a listed case that passes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rrqc-known-"));
    const list = join(dir, "fixture.txt");
    writeFileSync(
      list,
      [
        "fixture:tcp/json:runner/cancel/cancel-by-request  # the fixture misspells cancelled",
        "fixture:*:runner/outcomes/handler-not-found  # listed but passing",
        "",
      ].join("\n"),
    );
    const results = await runFixture(
      "cancel-type",
      ["runner/cancel/cancel-by-request", "runner/outcomes/handler-not-found"],
      list,
    );
    const byCase = Object.fromEntries(results.map((r) => [r.caseId, r]));
    expect(byCase["runner/cancel/cancel-by-request"]!.status).toBe("xfail");
    const stale = byCase["runner/outcomes/handler-not-found"]!;
    expect(stale.status).toBe("fail");
    expect(stale.note).toContain("passes now: remove the line");
    expect(closingLine(totals(results))).toBe("conformance: 0 passed, 1 failed, 1 skipped");
  });
});

describe("rrq conformance (the CLI)", () => {
  it("prints one line per case and the closing line, and exits 1 on a failure", async () => {
    const run = promisify(execFile);
    const cli = join(root, "bin", "rrq.js");
    const args = [
      cli,
      "conformance",
      "--runner-cmd",
      `env RRQ_FAULT=cancel-type ${process.execPath} ${fixture}`,
      "--transport",
      "tcp",
      "--encoding",
      "json",
      "--kind",
      "runner",
      "--run",
      "runner/cancel/cancel-by-request",
      "--run",
      "runner/outcomes/handler-not-found",
    ];
    const failure = await run(process.execPath, args).catch(
      (e: unknown) => e as { code: number; stdout: string },
    );
    expect((failure as { code: number }).code).toBe(1);
    const lines = (failure as { stdout: string }).stdout.trim().split("\n");
    expect(lines).toContain("FAIL  custom1 tcp/json runner/cancel/cancel-by-request");
    expect(lines).toContain("PASS  custom1 tcp/json runner/outcomes/handler-not-found");
    expect(lines.at(-1)).toBe("conformance: 1 passed, 1 failed");
  });

  it("exits 2 on a usage error, before running anything", async () => {
    const run = promisify(execFile);
    const usage = await run(process.execPath, [
      join(root, "bin", "rrq.js"),
      "conformance",
      "--transport",
      "carrier-pigeon",
    ]).catch((e: unknown) => e as { code: number; stderr: string });
    expect((usage as { code: number }).code).toBe(2);
    expect((usage as { stderr: string }).stderr).toContain("--transport must be one of");
  });
});
