import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EncodingName, TransportKind } from "@rrqkit/runner/protocol";
import { stringify } from "smol-toml";
import { AdapterClient, AdapterError } from "./adapter-client.js";
import type { Binding, OrchestratorSpec } from "./bindings.js";
import type { Case } from "./cases.js";
import { matchValue } from "./matching.js";
import type { OtlpReceiver } from "./otlp-receiver.js";
import type { TestRedis } from "./redis-server.js";
import type { Failure } from "./runner-script.js";
import { freePort } from "../runner/ports.js";
import { checkJobSpan, checkE2eRunnerSpan } from "./e2e-spans.js";

type Step = Record<string, unknown>;

/** A transport/encoding pair an end-to-end cell runs on. */
export interface E2eVariant {
  transport: TransportKind;
  encoding: EncodingName;
}

/**
 * The end-to-end matrix: every transport × encoding the binding supports under rrqkit's
 * orchestrator (tcp/json first: cases marked `once` run there only); tcp/json only under RRQ's
 * (RRQ knows no other).
 */
export function e2eVariants(binding: Binding, orchestrator: OrchestratorSpec): E2eVariant[] {
  const all: E2eVariant[] =
    orchestrator.name === "rrq"
      ? [{ transport: "tcp", encoding: "json" }]
      : (["tcp", "unix", "stdio"] as const).flatMap((transport) =>
          (["json", "msgpack"] as const).map((encoding) => ({ transport, encoding })),
        );
  return all.filter(
    (v) => binding.transports.includes(v.transport) && binding.encodings.includes(v.encoding),
  );
}

/** Options of an {@link E2eCell}. */
export interface E2eCellOptions {
  orchestrator: OrchestratorSpec;
  binding: Binding;
  producer: Binding;
  label: string;
  variant: E2eVariant;
  redis: TestRedis;
  database: number;
  receiver: OtlpReceiver;
  root: string;
}

const JOB_WAIT_SECONDS = 60;

/**
 * One end-to-end cell: a real orchestrator process (rrqkit's CLI or RRQ's binary) running the
 * binding's conformance runner on one transport and encoding, fed by a producer adapter, on a
 * Redis database of its own. Cases with the same `given.orchestrator` share the process.
 */
export class E2eCell {
  private orchestrator: ChildProcess | undefined;
  /** Resolves with a description once the orchestrator process exits. */
  private orchestratorExit: Promise<string> = new Promise(() => {});
  private orchestratorKey: string | undefined;
  private output = "";
  private adapter: AdapterClient | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), "rrqc-e2e-"));

  constructor(private readonly o: E2eCellOptions) {}

  /** Whether a case may run under this orchestrator. */
  static supports(c: Case, orchestrator: OrchestratorSpec): boolean {
    const only = c.given?.orchestrators as string[] | undefined;
    return !only || only.includes(orchestrator.name);
  }

  private async config(given: Record<string, unknown>): Promise<string> {
    const rrqkit = this.o.orchestrator.name === "rrqkit";
    const { transport, encoding } = this.o.variant;
    const runner: Record<string, unknown> = {
      cmd: this.o.binding.runner!.argv,
      pool_size: given.pool_size ?? 1,
      max_in_flight: given.max_in_flight ?? 8,
      env: { ...this.o.binding.runner!.env, ...this.o.receiver.env },
    };
    if (transport === "tcp") runner.tcp_port = await freePort();
    if (rrqkit) Object.assign(runner, { transport, encoding });
    const settings: Record<string, unknown> = {
      redis_dsn: this.o.redis.url(this.o.database),
      default_runner_name: "conformance",
      base_retry_delay_seconds: 0.05,
      max_retry_delay_seconds: 0.2,
      default_poll_delay_seconds: 0.05,
      worker_shutdown_grace_period_seconds: 2,
      runner_shutdown_term_grace_seconds: 2,
      ...(rrqkit ? { runner_cancel_grace_seconds: 2, strict_frames: true } : {}),
      ...(given.config as Record<string, unknown> | undefined),
      runners: { conformance: runner },
    };
    const path = join(this.dir, "rrq.toml");
    writeFileSync(path, stringify({ rrq: settings }));
    return path;
  }

  private async ensureOrchestrator(given: Record<string, unknown>): Promise<void> {
    const key = JSON.stringify(given);
    if (this.orchestrator && this.orchestratorKey === key && this.orchestrator.exitCode === null)
      return;
    await this.stopOrchestrator();
    const path = await this.config(given);
    const [program, ...args] = this.o.orchestrator.command.argv;
    // rrqkit's --config is a program option; RRQ's belongs to each subcommand.
    const argv =
      this.o.orchestrator.name === "rrqkit"
        ? ["--config", path, "worker", "run", "--log-format", "json"]
        : ["worker", "run", "--config", path];
    this.output = "";
    const child = spawn(program!, [...args, ...argv], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RRQ_CONFIG: "", ...this.o.receiver.env },
      cwd: this.dir,
      detached: true,
    });
    const keep = (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-4000));
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    child.on("error", (error) => keep(Buffer.from(String(error))));
    this.orchestrator = child;
    this.orchestratorExit = new Promise((resolve) =>
      child.once("exit", (code, signal) =>
        resolve(`the orchestrator exited (${code ?? signal}): ${this.output.trim()}`),
      ),
    );
    this.orchestratorKey = key;
  }

  private async ensureAdapter(): Promise<AdapterClient> {
    if (this.adapter) return this.adapter;
    const adapter = AdapterClient.start(this.o.producer.producer!, {}, this.dir);
    const reply = await adapter.call("configure", {
      config: { redis_dsn: this.o.redis.url(this.o.database) },
    });
    if (!reply.ok)
      throw new AdapterError(`configure failed: ${reply.error.code} ${reply.error.message}`);
    this.adapter = adapter;
    return adapter;
  }

  /** Runs one case; returns the broken rules. */
  async run(c: Case): Promise<Failure[]> {
    try {
      await this.ensureOrchestrator((c.given?.orchestrator ?? {}) as Record<string, unknown>);
      const adapter = await this.ensureAdapter();
      const jobs = new Map<string, { id: string; step: Step }>();
      for (const step of c.when ?? []) {
        const count = typeof step.count === "number" ? step.count : undefined;
        const names =
          count === undefined
            ? [String(step.enqueue)]
            : Array.from({ length: count }, (_, i) => `${String(step.enqueue)}#${i}`);
        for (const name of names) {
          const reply = await adapter.call("enqueue", {
            function_name: step.function_name,
            params: step.params ?? {},
            options: step.options ?? {},
          });
          if (!reply.ok)
            return [
              {
                rule: "the producer enqueues the job",
                message: `${reply.error.code}: ${reply.error.message}`,
              },
            ];
          jobs.set(name, { id: String(reply.result), step });
        }
      }
      const failures: Failure[] = [];
      for (const e of (c.then ?? []) as Step[])
        failures.push(...(await this.check(c, e, jobs, adapter)));
      return failures;
    } catch (error) {
      if (error instanceof AdapterError)
        return [
          { rule: "the producer adapter answers (PRODUCER_ADAPTER.md)", message: error.message },
        ];
      throw error;
    }
  }

  private async check(
    c: Case,
    e: Step,
    jobs: Map<string, { id: string; step: Step }>,
    adapter: AdapterClient,
  ): Promise<Failure[]> {
    const names = String(e.job).endsWith("#*")
      ? [...jobs.keys()].filter((k) => k.startsWith(String(e.job).slice(0, -1)))
      : [String(e.job)];
    const failures: Failure[] = [];
    for (const name of names) {
      const job = jobs.get(name);
      if (!job) throw new Error(`${c.id} expects job '${name}', which it never enqueued`);
      const rule = (fallback: string) => (typeof e.rule === "string" ? e.rule : fallback);
      const done = await this.waitDone(job.id, adapter);
      if (typeof done === "string")
        return [{ rule: rule("the job finishes"), message: `job ${name}: ${done}` }];
      const status = await adapter.call("get_job_status", { job_id: job.id });
      if (!status.ok)
        failures.push({
          rule: "get_job_status answers",
          message: `${status.error.code}: ${status.error.message}`,
        });
      else if (e.status !== undefined)
        for (const m of matchValue(status.result, e.status))
          failures.push({
            rule: rule("the job ends as the spec says"),
            message: `job ${name} status ${m.path}: ${m.message}`,
          });
      const redis = this.o.redis.client(this.o.database);
      if (e.hash !== undefined) {
        const hash = await redis.hgetall(`rrq:job:${job.id}`);
        for (const m of matchValue(hash, e.hash))
          failures.push({
            rule: rule("the job hash as RRQ writes it"),
            message: `job ${name} hash ${m.path}: ${m.message}`,
          });
      }
      if (typeof e.in_dlq === "boolean") {
        const dlq = await redis.lrange("rrq:dlq:default", 0, -1);
        if (dlq.includes(job.id) !== e.in_dlq)
          failures.push({
            rule: rule("dead-letter queue membership"),
            message: `job ${name} is ${e.in_dlq ? "not " : ""}in rrq:dlq:default`,
          });
      }
      if (e.runner_span)
        failures.push(
          ...(await checkE2eRunnerSpan(this.o.receiver, job.id, job.step, e.runner_span as Step)),
        );
      if (e.job_span)
        failures.push(
          ...(await checkJobSpan(this.o.receiver, job.id, job.step, e.job_span as Step)),
        );
    }
    return failures;
  }

  /** Waits for the job to finish through the producer; a string says why it did not. */
  private async waitDone(jobId: string, adapter: AdapterClient): Promise<unknown> {
    const exited = this.orchestratorExit;
    const waited = adapter
      .call(
        "wait_for_completion",
        { job_id: jobId, timeout_seconds: JOB_WAIT_SECONDS },
        (JOB_WAIT_SECONDS + 10) * 1000,
      )
      .then((reply) =>
        !reply.ok
          ? `wait_for_completion failed: ${reply.error.code} ${reply.error.message}`
          : reply.result === null
            ? `not finished after ${JOB_WAIT_SECONDS} s (orchestrator output: ${this.output.slice(-600).trim()})`
            : reply.result,
      );
    const first = await Promise.race([waited, exited.then((why) => ({ exited: why }))]);
    if (typeof first === "object" && first !== null && "exited" in first) {
      // The adapter is still blocked in wait_for_completion: start a fresh one for the next case.
      const stale = this.adapter;
      this.adapter = undefined;
      void stale?.close();
      return first.exited;
    }
    return first;
  }

  private async stopOrchestrator(): Promise<void> {
    const child = this.orchestrator;
    this.orchestrator = undefined;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // already gone
      }
    };
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    signal("SIGTERM");
    const timer = setTimeout(() => signal("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** Stops the orchestrator and the adapter. */
  async close(): Promise<void> {
    await this.adapter?.close();
    await this.stopOrchestrator();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
