import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EncodingName, TransportKind } from "@rrqkit/runner/protocol";
import { stringify } from "smol-toml";
import { AdapterClient, AdapterError } from "./adapter-client.js";
import type { Binding, OrchestratorSpec } from "./bindings.js";
import type { Case } from "./cases.js";
import { checkExpectation, type KnownJob } from "./e2e-checks.js";
import { matchValue } from "./matching.js";
import type { OtlpReceiver } from "./otlp-receiver.js";
import type { TestRedis } from "./redis-server.js";
import type { Failure } from "./runner-script.js";
import { freePort } from "../runner/ports.js";

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

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

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
  private configPath: string | undefined;
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
    this.configPath = path;
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
      const jobs = new Map<string, KnownJob>();
      for (const step of c.when ?? []) {
        const failures = await this.step(c, step, jobs);
        if (failures.length) return failures;
      }
      const failures: Failure[] = [];
      for (const e of (c.then ?? []) as Step[])
        failures.push(...(await checkExpectation(c.id, e, this.checkContext(adapter, jobs))));
      return failures;
    } catch (error) {
      if (error instanceof AdapterError)
        return [
          { rule: "the producer adapter answers (PRODUCER_ADAPTER.md)", message: error.message },
        ];
      throw error;
    }
  }

  private checkContext(adapter: AdapterClient, jobs: Map<string, KnownJob>) {
    return {
      adapter,
      jobs,
      redis: this.o.redis.client(this.o.database),
      receiver: this.o.receiver,
      waitDone: (jobId: string) => this.waitDone(jobId, adapter),
    };
  }

  /** Performs one step (conformance/README.md "End-to-end and producer cases"). */
  private async step(c: Case, step: Step, jobs: Map<string, KnownJob>): Promise<Failure[]> {
    // The adapter may have been replaced by an await step whose wait saw the orchestrator exit.
    const adapter = await this.ensureAdapter();
    if (typeof step.enqueue === "string") return this.enqueue(step, jobs, adapter);
    if (typeof step.wait_ms === "number") {
      await sleep(step.wait_ms);
      return [];
    }
    if (step.await !== undefined)
      return checkExpectation(c.id, step.await as Step, this.checkContext(adapter, jobs));
    if (typeof step.cancel === "string") {
      const alias = step.cancel;
      const job = jobs.get(alias);
      if (!job) throw new Error(`${c.id} cancels job '${alias}', which it never enqueued`);
      if (typeof step.after_ms === "number") await sleep(step.after_ms);
      const reply = await adapter.call("cancel", { job_id: job.id });
      if (!reply.ok)
        return [
          {
            rule: "the producer cancels the job (PRODUCER_ADAPTER.md cancel)",
            message: `${reply.error.code}: ${reply.error.message}`,
          },
        ];
      return matchValue(reply.result, step.expect ?? { cancelled: true }).map((m) => ({
        rule: "cancel returns what PRODUCER.md says",
        message: `cancel of ${alias} ${m.path}: ${m.message}`,
      }));
    }
    if (step.quiet === true || step.resume === true)
      return this.control(["worker", step.quiet === true ? "quiet" : "resume", "--all"]);
    if (typeof step.pause_queue === "string")
      return this.control([
        "queue",
        "pause",
        step.pause_queue,
        ...(typeof step.reason === "string" ? ["--reason", step.reason] : []),
      ]);
    if (typeof step.resume_queue === "string")
      return this.control(["queue", "resume", step.resume_queue]);
    throw new Error(`${c.id}: unknown e2e step ${JSON.stringify(step)}`);
  }

  private async enqueue(
    step: Step,
    jobs: Map<string, KnownJob>,
    adapter: AdapterClient,
  ): Promise<Failure[]> {
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
    return [];
  }

  /**
   * Runs an operator command of the CLI with the cell's rrq.toml — `worker quiet|resume --all`,
   * `queue pause|resume <queue>` — so the whole path (CLI, control or paused key and channel,
   * the orchestrator's switch) is what is tested.
   */
  private async control(command: string[]): Promise<Failure[]> {
    const [program, ...args] = this.o.orchestrator.command.argv;
    const argv = [...args, "--config", this.configPath!, ...command];
    const result = await new Promise<{ code: number; output: string }>((resolve) =>
      execFile(program!, argv, { cwd: this.dir, timeout: 20_000 }, (error, stdout, stderr) =>
        resolve({
          code: error ? (typeof error.code === "number" ? error.code : 1) : 0,
          output: `${stdout}${stderr}`.trim(),
        }),
      ),
    );
    if (result.code === 0) return [];
    return [
      {
        rule: `rrq ${command.join(" ")} succeeds`,
        message: `exit ${result.code}: ${result.output.slice(-600)}`,
      },
    ];
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
