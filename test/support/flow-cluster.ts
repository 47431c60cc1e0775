/**
 * Real orchestrator processes (`rrq worker run`, the built CLI) for the flow-control acceptance
 * tests, each with one Node runner (test/fixtures/flow-runner.mjs) that records every handler
 * start and end in a log directory, plus the readers and interval arithmetic the tests check
 * those records with.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "smol-toml";

const RRQ_BIN = fileURLToPath(new URL("../../bin/rrq.js", import.meta.url));
const FLOW_RUNNER = fileURLToPath(new URL("../fixtures/flow-runner.mjs", import.meta.url));

/** One handler start (`s`) or end (`e`) as the fixture runner recorded it. */
export interface FlowEvent {
  kind: "s" | "e";
  jobId: string;
  /** Epoch milliseconds (the runner's clock; every process runs on this machine). */
  t: number;
  attempt: number;
}

/** What a cluster is started with. */
export interface FlowClusterOptions {
  redisUrl: string;
  /** Orchestrator processes (default 1). */
  orchestrators?: number;
  /** Slots per orchestrator: max_in_flight of its single runner process (default 64). */
  slots?: number;
  /** Extra `[rrq]` keys of rrq.toml (nested tables as objects). */
  config?: Record<string, unknown>;
  /** Extra `rrq worker run` arguments (e.g. `--queue heavy:3`). */
  args?: string[];
}

/** A set of orchestrator processes sharing one rrq.toml and one log directory. */
export class FlowCluster {
  readonly logDir = mkdtempSync(join(tmpdir(), "rrq-flow-"));
  readonly configPath = join(this.logDir, "rrq.toml");
  private readonly children: ChildProcess[] = [];
  private readonly outputs: string[] = [];

  constructor(private readonly o: FlowClusterOptions) {
    const settings = {
      redis_dsn: o.redisUrl,
      default_runner_name: "flow",
      default_max_retries: 20,
      base_retry_delay_seconds: 0.01,
      max_retry_delay_seconds: 0.05,
      worker_shutdown_grace_period_seconds: 2,
      runner_shutdown_term_grace_seconds: 1,
      ...o.config,
      runners: {
        flow: {
          cmd: [process.execPath, FLOW_RUNNER],
          pool_size: 1,
          max_in_flight: o.slots ?? 64,
          env: { FLOW_LOG_DIR: this.logDir },
        },
      },
    };
    writeFileSync(this.configPath, stringify({ rrq: settings }));
  }

  /** Starts the orchestrator processes (they claim as soon as they are up). */
  start(): this {
    for (let i = 0; i < (this.o.orchestrators ?? 1); i++) {
      const child = spawn(
        process.execPath,
        [RRQ_BIN, "--config", this.configPath, "worker", "run", ...(this.o.args ?? [])],
        {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, RRQ_CONFIG: "" },
          detached: true,
        },
      );
      const index = this.outputs.push("") - 1;
      const keep = (chunk: Buffer) =>
        (this.outputs[index] = (this.outputs[index] + chunk.toString()).slice(-4000));
      child.stdout?.on("data", keep);
      child.stderr?.on("data", keep);
      this.children.push(child);
    }
    return this;
  }

  /** The end of every orchestrator's output (for failure messages). */
  output(): string {
    return this.outputs.map((o, i) => `--- orchestrator ${i}\n${o.slice(-1500)}`).join("\n");
  }

  /** Runs `rrq <args>` with this cluster's rrq.toml; rejects with the output on a failure. */
  cli(args: string[]): Promise<string> {
    return new Promise((resolve, reject) =>
      execFile(
        process.execPath,
        [RRQ_BIN, "--config", this.configPath, ...args],
        { timeout: 20_000, env: { ...process.env, RRQ_CONFIG: "" } },
        (error, stdout, stderr) =>
          error
            ? reject(
                new Error(`rrq ${args.join(" ")} failed: ${error.message}\n${stdout}${stderr}`),
              )
            : resolve(`${stdout}${stderr}`),
      ),
    );
  }

  /** Every record the runners wrote so far, in no particular order. */
  events(): FlowEvent[] {
    const events: FlowEvent[] = [];
    for (const name of readdirSync(this.logDir).filter((n) => n.endsWith(".log"))) {
      for (const line of readFileSync(join(this.logDir, name), "utf8").split("\n")) {
        const [kind, jobId, t, attempt] = line.split(" ");
        // A line being appended right now may be cut short; the next read has it whole.
        if ((kind !== "s" && kind !== "e") || !jobId || attempt === undefined) continue;
        events.push({ kind, jobId, t: Number(t), attempt: Number(attempt) });
      }
    }
    return events;
  }

  /** Polls the records until `done(events)` holds; throws after `timeoutMs` with the output. */
  async waitEvents(
    done: (events: FlowEvent[]) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<FlowEvent[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const events = this.events();
      if (done(events)) return events;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${this.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** SIGTERMs every orchestrator (its process group: it and its runner) and waits for them. */
  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        const signal = (sig: NodeJS.Signals) => {
          try {
            process.kill(-child.pid!, sig);
          } catch {
            // already gone
          }
        };
        signal("SIGTERM");
        const timer = setTimeout(() => signal("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }),
    );
    this.children.length = 0;
  }
}

/** Job ids with at least one record of `kind`. */
export function jobsWith(events: FlowEvent[], kind: "s" | "e"): Set<string> {
  return new Set(events.filter((e) => e.kind === kind).map((e) => e.jobId));
}

/**
 * The most handlers of the given jobs that ran at the same time, over every recorded start
 * and end. At equal milliseconds an end counts before a start: a slot freed by one job is
 * what let the next one start, and the clock only has whole milliseconds.
 */
export function maxOverlap(events: FlowEvent[], jobs?: ReadonlySet<string>): number {
  const chosen = jobs ? events.filter((e) => jobs.has(e.jobId)) : events;
  const sorted = [...chosen].sort((a, b) => a.t - b.t || (a.kind === "e" ? -1 : 1));
  let running = 0;
  let max = 0;
  for (const e of sorted) {
    running += e.kind === "s" ? 1 : -1;
    max = Math.max(max, running);
  }
  return max;
}

/** A small deterministic PRNG (mulberry32), so a failing run can be repeated. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates shuffle in place with the given random source. */
export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
