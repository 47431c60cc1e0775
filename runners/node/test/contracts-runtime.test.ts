/**
 * Job contracts in the Node runtime: with a catalog (option or RRQ_JOB_CATALOG), the params of
 * a catalogued function are checked before its handler runs; a failure is an `error` outcome
 * of type `invalid_params`. `--list-handlers` prints the registered names as one JSON line.
 */
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { JobCatalog } from "../src/contracts/index.js";
import {
  catalogFromEnv,
  ErrorTypes,
  handlerListLine,
  Registry,
  RunnerRuntime,
  RUNTIME_VERSION,
} from "../src/index.js";
import { memoryChannelPair, type Frame } from "../src/protocol/index.js";
import type { ExecutionOutcome } from "../src/protocol/generated/wire.js";
import { request } from "./support/requests.js";

const here = dirname(fileURLToPath(import.meta.url));
const CATALOG_DIR = join(here, "..", "..", "..", "conformance", "fixtures", "catalog");
const RUNNER = join(here, "fixtures", "contract-runner.ts");
const run = promisify(execFile);

/** A runtime on one end of an in-memory pair; `call` sends a request and awaits its outcome. */
function harness(catalog?: JobCatalog) {
  const calls: string[] = [];
  const registry = new Registry()
    .register("send_email", (r) => (calls.push("send_email"), { message_id: String(r.params?.to) }))
    .register("echo", (r) => (calls.push("echo"), r.params));
  const runtime = new RunnerRuntime(registry, { catalog, log: () => {} });
  const [orchestrator, runner] = memoryChannelPair();
  runtime.serve(runner);
  const waiting = new Map<string, (outcome: ExecutionOutcome) => void>();
  orchestrator.on({
    frame: (frame: Frame) => {
      if (frame.type !== "response") return;
      waiting.get(frame.payload.request_id ?? "")?.(frame.payload);
    },
    close: () => {},
  });
  const call = (fn: string, params: Record<string, unknown>) => {
    const { frame, requestId } = request(fn, params);
    const outcome = new Promise<ExecutionOutcome>((resolve) => waiting.set(requestId, resolve));
    orchestrator.send(frame);
    return outcome;
  };
  return { call, calls, close: () => runtime.closeAll() };
}

describe("runtime params check", () => {
  const catalog = JobCatalog.load(CATALOG_DIR);

  it("answers bad params with an invalid_params error and never runs the handler", async () => {
    const h = harness(catalog);
    const outcome = await h.call("send_email", { to: 1, subject: "s" });
    expect(outcome.status).toBe("error");
    expect(outcome.error).toMatchObject({
      type: ErrorTypes.invalidParams,
      message: "send_email: params/to must be string",
    });
    expect(ErrorTypes.invalidParams).toBe("invalid_params");
    expect(h.calls).toEqual([]);
    h.close();
  });

  it("runs the handler for valid params and for functions the catalog does not list", async () => {
    const h = harness(catalog);
    const ok = await h.call("send_email", { to: "a@b.c", subject: "s" });
    expect(ok).toMatchObject({ status: "success", result: { message_id: "a@b.c" } });
    const free = await h.call("echo", { anything: [1] });
    expect(free).toMatchObject({ status: "success", result: { anything: [1] } });
    expect(h.calls).toEqual(["send_email", "echo"]);
    h.close();
  });

  it("checks nothing without a catalog", async () => {
    const h = harness();
    expect((await h.call("send_email", { to: 1 })).status).toBe("success");
    h.close();
  });

  it("reports a missing handler before the params", async () => {
    const h = harness(JobCatalog.load(CATALOG_DIR));
    const outcome = await h.call("resize_image", { url: 1 });
    expect(outcome.error?.type).toBe(ErrorTypes.handlerNotFound);
    h.close();
  });

  it("catalogFromEnv loads RRQ_JOB_CATALOG and is undefined without it", () => {
    expect(catalogFromEnv({ RRQ_JOB_CATALOG: CATALOG_DIR })?.names()).toEqual([
      "resize_image",
      "send_email",
    ]);
    expect(catalogFromEnv({})).toBeUndefined();
    expect(() => catalogFromEnv({ RRQ_JOB_CATALOG: join(here, "no-such-dir") })).toThrow();
  });
});

describe("--list-handlers", () => {
  it("handlerListLine names the runtime, version and sorted handlers", () => {
    const registry = new Registry().register("zeta", () => 1).register("alpha", () => 2);
    expect(JSON.parse(handlerListLine(registry))).toEqual({
      runtime: "node",
      version: RUNTIME_VERSION,
      handlers: ["alpha", "zeta"],
    });
  });

  it("a runner process prints one JSON line and exits 0 without a transport flag", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", RUNNER, "--list-handlers"], {
      timeout: 60_000,
    });
    expect(stdout.endsWith("\n")).toBe(true);
    expect(stdout.trim().split("\n")).toHaveLength(1);
    expect(JSON.parse(stdout)).toEqual({
      runtime: "node",
      version: RUNTIME_VERSION,
      handlers: ["echo_uncatalogued", "resize_image", "send_email"],
    });
  });

  it("a bad RRQ_JOB_CATALOG stops the runner with status 1 and says why", async () => {
    const failure = await run(
      process.execPath,
      ["--import", "tsx", RUNNER, "--unix-socket", join(here, "never.sock")],
      { timeout: 60_000, env: { ...process.env, RRQ_JOB_CATALOG: join(here, "no-such-dir") } },
    ).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toMatch(/^RRQ_JOB_CATALOG: /);
  });
});
