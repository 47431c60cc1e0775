import { existsSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import type { TransportSpec } from "@rrqkit/runner/protocol";
import type { RunnerConfig } from "../config/config.js";
import { RunnerError } from "../errors.js";
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
}

/** A permit to send one request on one runner process; release it exactly once. */
export interface SlotLease {
  readonly runner: string;
  readonly index: number;
  readonly connection: RunnerConnection;
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
   * Waits until a process has a free permit and takes it, or resolves undefined at `deadline`
   * (epoch ms) or when the pool closes.
   */
  async acquire(deadline: number): Promise<SlotLease | undefined> {
    for (;;) {
      if (this.closing) return undefined;
      const slot = this.pickSlot();
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

  private pickSlot(): Slot | undefined {
    const n = this.slots.length;
    for (let i = 0; i < n; i++) {
      const slot = this.slots[(this.cursor + i) % n]!;
      if (
        slot.state === "ready" &&
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
    slot.state = "ready";
    slot.readySince = Date.now();
    // Give a socket runner's hello a moment to arrive (never required: RRQ runners send none).
    const hello = endpoint.connection.hello ?? (await endpoint.connection.waitForHello(50));
    const features = hello?.features ?? null;
    slot.runtime = hello?.runtime;
    slot.runtimeVersion = hello?.runtime_version;
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
