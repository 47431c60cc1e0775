import { existsSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import type { TransportSpec } from "@rrqkit/runner/protocol";
import type { RunnerConfig } from "../config/config.js";
import { RunnerError } from "../errors.js";
import { covers, MAX_RUNNER_TAGS, normalizeTags, TAG_PATTERN } from "../live/tags.js";
import type { EventBus } from "../telemetry/events.js";
import { startInProcessRunner } from "./in-process.js";
import { freePort, portFree } from "./ports.js";
import type { RunnerConnection, RunnerConnectionOptions } from "./runner-connection.js";
import {
  connectExternalRunner,
  startManagedRunner,
  type RunnerEndpoint,
  type RunnerEndpointPlan,
} from "./runner-process.js";

/** What a pool needs from its surroundings. */
export interface PoolContext {
  events: EventBus;
  mode: "managed" | "external";
  /** Private 0700 directory for Unix sockets. */
  socketDir: string;
  connectTimeoutMs: number;
  connection: RunnerConnectionOptions;
  /**
   * `runner_hello_timeout_ms`: how long a new tcp/unix connection of a managed runner (or of an
   * external one with {@link expectHello}) is given to send its hello before it is used as a
   * plain v2 (RRQ) runner (default 1000).
   */
  helloTimeoutMs?: number;
  /** `[rrq.runner_hello] <runner> = true`: an external runner that sends a hello. */
  expectHello?: boolean;
  /** `[rrq.runner_tags] <runner>`: passed to managed processes as RRQ_RUNNER_TAGS. */
  tags?: readonly string[];
  /** A process became ready; `tags` are its hello's (empty without hello or tags). */
  onReady?(tags: readonly string[]): void;
}

/** Once a process of a runner sent a hello, later connections wait this long for theirs. */
const KNOWN_HELLO_WAIT_MS = 5000;
/** External runners not marked in `[rrq.runner_hello]`: a hello is taken if it is this quick. */
const OPPORTUNISTIC_HELLO_WAIT_MS = 50;
const NONE: ReadonlySet<string> = new Set();

/** A permit to send one request on one runner process; release it exactly once. */
export interface SlotLease {
  readonly runner: string;
  readonly index: number;
  readonly connection: RunnerConnection;
  /** The hello features of the process (empty for plain v2 runners). */
  readonly features: ReadonlySet<string>;
  release(): void;
}

type SlotState = "starting" | "ready" | "down" | "closed";

/**
 * One runner process as the worker's health record reports it (rrqkit, additive: RRQ's readers
 * ignore it; the dashboard's workers page shows it). Snake case, as the rest of the record.
 */
export interface RunnerProcessStatus {
  readonly index: number;
  readonly state: SlotState;
  readonly pid: number | null;
  readonly in_flight: number;
  /** Requests given to the current process. */
  readonly served: number;
  /** Times this slot's process was started again (exits, crashes, recycles). */
  readonly restarts: number;
}

/** One configured runner in the health record: its runtime (from the hello) and processes. */
export interface RunnerStatus {
  readonly name: string;
  /** The hello's `runtime` ("rrqkit-node", "rrqkit-python", ...), or null (RRQ runners). */
  readonly runtime: string | null;
  readonly runtime_version: string | null;
  readonly in_flight: number;
  readonly max_in_flight: number;
  readonly restarts: number;
  readonly processes: readonly RunnerProcessStatus[];
}

interface Slot {
  readonly index: number;
  state: SlotState;
  endpoint?: RunnerEndpoint;
  inFlight: number;
  /** Requests given to the current process (its death then costs them an attempt each). */
  served: number;
  failures: number;
  /** Respawns scheduled for this slot, ever (health record). */
  restarts: number;
  /** The current process's hello runtime and version, when it sent one. */
  runtime?: string;
  runtimeVersion?: string;
  /** The current process's hello features and capability tags (empty without hello). */
  features: ReadonlySet<string>;
  tags: ReadonlySet<string>;
  readySince: number;
  respawnTimer?: NodeJS.Timeout;
  port?: number;
}

const RESPAWN_BASE_MS = 100;
const RESPAWN_MAX_MS = 10_000;
const STABLE_AFTER_MS = 30_000;

/**
 * The processes of one configured runner: `pool_size` slots, each one process with one
 * persistent connection carrying up to `max_in_flight` requests. Processes that die are
 * started again with capped exponential backoff (100 ms doubling to 10 s; reset after 30 s of
 * health or once the process took a request), so a crash-looping runner never spins and never
 * receives work while down.
 */
export class RunnerPool {
  private readonly slots: Slot[];
  private cursor = 0;
  private waiters: Array<() => void> = [];
  private closing = false;
  /** A process of this runner sent a hello (later connections wait longer for theirs). */
  private sawHello = false;

  constructor(
    readonly config: RunnerConfig,
    private readonly context: PoolContext,
  ) {
    this.slots = Array.from({ length: config.poolSize }, (_, index) => ({
      index,
      state: "down",
      inFlight: 0,
      served: 0,
      failures: 0,
      restarts: 0,
      features: NONE,
      tags: NONE,
      readySince: 0,
    }));
  }

  /** The configured runner name. */
  get name(): string {
    return this.config.name;
  }

  /** Requests the ready processes can take in total. */
  get readyCapacity(): number {
    return this.slots.filter((s) => s.state === "ready").length * this.config.maxInFlight;
  }

  /** Requests at the pool's processes now (metrics: rrq_runner_in_flight). */
  get inFlight(): number {
    let total = 0;
    for (const slot of this.slots) total += slot.inFlight;
    return total;
  }

  /** The pool as the health record reports it ({@link RunnerStatus}). */
  status(): RunnerStatus {
    const hello = this.slots.find((s) => s.runtime !== undefined);
    return {
      name: this.name,
      runtime: hello?.runtime ?? null,
      runtime_version: hello?.runtimeVersion ?? null,
      in_flight: this.inFlight,
      max_in_flight: this.fullCapacity,
      restarts: this.slots.reduce((n, s) => n + s.restarts, 0),
      processes: this.slots.map((s) => ({
        index: s.index,
        state: s.state,
        pid: s.endpoint?.pid ?? null,
        in_flight: s.inFlight,
        served: s.served,
        restarts: s.restarts,
      })),
    };
  }

  /** Requests the pool can take when every process is up. */
  get fullCapacity(): number {
    return this.config.poolSize * this.config.maxInFlight;
  }

  /** Starts every process; rejects (after stopping what started) when one cannot start. */
  async start(): Promise<void> {
    try {
      await Promise.all(this.slots.map((slot) => this.startSlot(slot)));
    } catch (error) {
      await this.close(0);
      throw error;
    }
  }

  /**
   * The distinct capability tag sets of the ready processes (each sorted), for the claim's
   * routing by tags; processes without tags give none.
   */
  tagSets(): string[][] {
    const seen = new Map<string, string[]>();
    for (const slot of this.slots)
      if (slot.state === "ready" && slot.tags.size > 0) {
        const tags = normalizeTags(slot.tags);
        seen.set(tags.join(","), tags);
      }
    return [...seen.values()];
  }

  /** True when a ready process offers every tag of `requires`. */
  canServe(requires: readonly string[]): boolean {
    return this.slots.some((s) => s.state === "ready" && covers(s.tags, requires));
  }

  /**
   * Waits until a process has a free permit and takes it, or resolves undefined at `deadline`
   * (epoch ms) or when the pool closes. With `requires`, only a process whose hello tags hold
   * all of them is taken.
   */
  async acquire(deadline: number, requires?: readonly string[]): Promise<SlotLease | undefined> {
    return this.tryAcquire(requires) ?? this.waitForSlot(deadline, requires);
  }

  /**
   * A permit at once when a process has one free (no promise: the common case in a burn-down,
   * where an attempt takes a permit per job); undefined when the caller must wait in
   * {@link acquire}.
   */
  tryAcquire(requires?: readonly string[]): SlotLease | undefined {
    if (this.closing) return undefined;
    const slot = this.pickSlot(requires);
    return slot ? this.lease(slot) : undefined;
  }

  private async waitForSlot(
    deadline: number,
    requires?: readonly string[],
  ): Promise<SlotLease | undefined> {
    for (;;) {
      if (this.closing) return undefined;
      const slot = this.pickSlot(requires);
      if (slot) return this.lease(slot);
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Replaces a process on purpose (for example one that did not confirm a cancel): it is killed
   * at once and started again without backoff. Its other requests fail as transport errors.
   */
  recycle(index: number, reason: string): void {
    const slot = this.slots[index];
    if (!slot || slot.state !== "ready" || !slot.endpoint) return;
    this.context.events.emit("runner:recycle", { runner: this.name, index, reason });
    slot.failures = 0;
    void slot.endpoint.stop(0);
  }

  /** Stops every process: SIGTERM to each group, `graceMs`, then SIGKILL. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    this.wake();
    await Promise.all(
      this.slots.map(async (slot) => {
        clearTimeout(slot.respawnTimer);
        const endpoint = slot.endpoint;
        slot.state = "closed";
        await endpoint?.stop(graceMs);
      }),
    );
  }

  private pickSlot(requires: readonly string[] | undefined): Slot | undefined {
    const n = this.slots.length;
    for (let i = 0; i < n; i++) {
      const slot = this.slots[(this.cursor + i) % n]!;
      if (
        slot.state === "ready" &&
        (requires === undefined || covers(slot.tags, requires)) &&
        slot.inFlight < this.config.maxInFlight &&
        !slot.endpoint!.connection.isClosed
      ) {
        this.cursor = (this.cursor + i + 1) % n;
        return slot;
      }
    }
    return undefined;
  }

  private lease(slot: Slot): SlotLease {
    slot.inFlight++;
    slot.served++;
    const endpoint = slot.endpoint!;
    let released = false;
    return {
      runner: this.name,
      index: slot.index,
      connection: endpoint.connection,
      features: slot.features,
      release: () => {
        if (released) return;
        released = true;
        if (slot.endpoint === endpoint) slot.inFlight--;
        this.wake();
      },
    };
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  private async startEndpoint(slot: Slot): Promise<RunnerEndpoint> {
    const { config, context } = this;
    const common = {
      runner: this.name,
      index: slot.index,
      cwd: config.cwd,
      connectTimeoutMs: context.connectTimeoutMs,
      connection: context.connection,
      tags: context.tags,
    };
    if (config.transport === "inprocess")
      return startInProcessRunner({ ...common, handlers: config.handlers! }, context.events);
    const plan: RunnerEndpointPlan = {
      ...common,
      command: context.mode === "managed" ? config.cmd : undefined,
      env: config.env,
      encoding: config.encoding,
      transport: await this.transportFor(slot),
    };
    return context.mode === "managed"
      ? startManagedRunner(plan, context.events)
      : connectExternalRunner(plan);
  }

  private async transportFor(slot: Slot): Promise<TransportSpec> {
    const c = this.config;
    if (c.transport === "stdio") return { kind: "stdio" };
    if (c.transport === "unix") {
      const path = join(this.context.socketDir, `${c.name}-${slot.index}.sock`);
      if (this.context.mode === "managed" && existsSync(path)) unlinkSync(path);
      return { kind: "unix", path };
    }
    if (this.context.mode === "external")
      return { kind: "tcp", host: c.tcpHost, port: c.tcpPort! + slot.index };
    if (slot.port === undefined) {
      const preferred = c.tcpPort! + slot.index;
      slot.port = (await portFree(preferred)) ? preferred : await freePort();
    }
    return { kind: "tcp", host: "127.0.0.1", port: slot.port };
  }

  private async startSlot(slot: Slot): Promise<void> {
    slot.state = "starting";
    const endpoint = await this.startEndpoint(slot);
    if (this.closing) {
      await endpoint.stop(0);
      return;
    }
    slot.endpoint = endpoint;
    slot.inFlight = 0;
    slot.served = 0;
    // No request before the hello wait is over: a request sent first would make an rrqkit
    // runner look like a plain v2 one (live-design §1). RRQ runners send none and cost the
    // wait once per connection.
    const hello =
      endpoint.connection.hello ?? (await endpoint.connection.waitForHello(this.helloWaitMs()));
    if (this.closing) {
      await endpoint.stop(0);
      return;
    }
    if (hello) this.sawHello = true;
    slot.state = "ready";
    slot.readySince = Date.now();
    const features = hello?.features ?? null;
    slot.runtime = hello?.runtime;
    slot.runtimeVersion = hello?.runtime_version;
    slot.features = features ? new Set(features) : NONE;
    const tags = (hello as { tags?: unknown } | undefined)?.tags;
    slot.tags = Array.isArray(tags)
      ? // only well-formed tags route (a runner's bad tag must not match a job's odd one)
        new Set(
          tags
            .filter((t): t is string => typeof t === "string" && TAG_PATTERN.test(t))
            .slice(0, MAX_RUNNER_TAGS),
        )
      : NONE;
    this.context.events.emit("runner:ready", {
      runner: this.name,
      index: slot.index,
      pid: endpoint.pid,
      features,
    });
    endpoint.connection.onClose(() => {
      if (slot.endpoint === endpoint && slot.state === "ready" && this.context.mode === "managed")
        void endpoint.stop(0);
    });
    void endpoint.exited.then((exit) => this.onExit(slot, endpoint, exit.code, exit.signal));
    this.wake();
    this.context.onReady?.(normalizeTags(slot.tags));
  }

  /**
   * How long a new connection is given to send its hello (live-design §1): stdio and
   * in-process runners are ready only with theirs; a managed socket runner gets
   * `runner_hello_timeout_ms`, or 5 s once a process of it sent a hello; an external one the
   * same when `[rrq.runner_hello]` says it sends one, else a hello is taken only if it is quick.
   */
  private helloWaitMs(): number {
    const timeout = this.context.helloTimeoutMs ?? 1000;
    const managed = this.context.mode === "managed" || this.config.transport === "inprocess";
    if (!managed && !this.context.expectHello) return OPPORTUNISTIC_HELLO_WAIT_MS;
    return this.sawHello ? Math.max(timeout, KNOWN_HELLO_WAIT_MS) : timeout;
  }

  private onExit(
    slot: Slot,
    endpoint: RunnerEndpoint,
    code: number | null,
    signal: string | null,
  ): void {
    if (slot.endpoint !== endpoint) return;
    const expected = this.closing || slot.state === "closed";
    this.context.events.emit("runner:exit", {
      runner: this.name,
      index: slot.index,
      pid: endpoint.pid,
      code,
      signal,
      expected,
    });
    slot.endpoint = undefined;
    slot.inFlight = 0;
    slot.features = NONE;
    slot.tags = NONE;
    if (expected) return;
    slot.state = "down";
    // A process that took work before dying is no start-up crash: a death mid-request costs
    // that request an attempt, so restarts are bounded by the jobs' max_retries, and a handler
    // that kills its runner must not keep the pool down for everyone (backoff up to 10 s per
    // death). Deaths before any work burn no attempts; they are what the backoff is for.
    if (slot.served > 0 || Date.now() - slot.readySince > STABLE_AFTER_MS) slot.failures = 0;
    this.scheduleRespawn(slot, `exited (code ${code}, signal ${signal})`);
  }

  private scheduleRespawn(slot: Slot, reason: string): void {
    if (this.closing) return;
    slot.failures++;
    slot.restarts++;
    const delayMs =
      slot.failures <= 1 ? 0 : Math.min(RESPAWN_BASE_MS * 2 ** (slot.failures - 2), RESPAWN_MAX_MS);
    this.context.events.emit("runner:respawn", {
      runner: this.name,
      index: slot.index,
      delayMs,
      attempt: slot.failures,
      reason,
    });
    slot.respawnTimer = setTimeout(() => {
      this.startSlot(slot).catch((error: unknown) => {
        slot.state = "down";
        this.scheduleRespawn(slot, error instanceof RunnerError ? error.message : String(error));
      });
    }, delayMs);
  }
}
