import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Redis } from "ioredis";
import { AdapterClient, AdapterError, type AdapterReply } from "./adapter-client.js";
import type { Binding } from "./bindings.js";
import { nestedArray, type Case } from "./cases.js";
import { matchValue, show, text } from "./matching.js";
import type { TestRedis } from "./redis-server.js";
import { diffSnapshots, normalize, snapshot, type Snapshot } from "./redis-snapshot.js";
import type { Failure } from "./runner-script.js";

type Step = Record<string, unknown>;

/**
 * rrqkit's queue registry (a set of queue keys the enqueue scripts maintain for `rrq queue
 * list`). Not part of PRODUCER.md §3 yet, so the key checks and the cross-binding comparison
 * leave it out (every rrqkit binding runs the same Lua files, checked byte for byte by npm test).
 */
const REGISTRY_KEYS = new Set(["rrq:queues"]);

/**
 * The first binding to run a producer case records its normalized Redis state; every later
 * binding's state is compared with it field by field.
 */
export class ProducerReference {
  private readonly states = new Map<string, { binding: string; state: Snapshot }>();

  compare(caseId: string, binding: string, state: Snapshot): string[] {
    const reference = this.states.get(caseId);
    if (!reference) {
      this.states.set(caseId, { binding, state });
      return [];
    }
    return diffSnapshots(reference.state, state, reference.binding, binding);
  }
}

/** Replaces `{alias}` placeholders in every string of a value. */
function fill(value: unknown, names: Map<string, string>): unknown {
  if (typeof value === "string")
    return value.replace(/\{([A-Za-z0-9_#]+)\}/g, (m, n: string) => names.get(n) ?? m);
  if (Array.isArray(value)) return value.map((v) => fill(v, names));
  if (typeof value === "object" && value !== null)
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [fill(k, names) as string, fill(v, names)]),
    );
  return value;
}

/** Checks one expected key (`type`, `value`, `fields`, `members`, `ttl`) against the snapshot. */
function checkKey(key: string, spec: Step, state: Snapshot[string] | undefined): string[] {
  if (spec.exists === false) return state ? [`${key} must not exist`] : [];
  if (!state) return [`${key} does not exist`];
  const problems: string[] = [];
  if (spec.type && state.type !== spec.type)
    problems.push(`${key} is a ${state.type}, expected a ${text(spec.type)}`);
  const compare = (what: string, actual: unknown, expected: unknown) => {
    for (const m of matchValue(actual, expected))
      problems.push(`${key}${what}${m.path === "(value)" ? "" : `.${m.path}`}: ${m.message}`);
  };
  if ("value" in spec) compare("", state.value, spec.value);
  if ("fields" in spec) compare("", state.value, spec.fields);
  if ("members" in spec) compare("", state.value, spec.members);
  if (typeof spec.ttl === "number") {
    const ok =
      spec.ttl < 0
        ? state.ttl === spec.ttl
        : state.ttl > 0 && state.ttl <= spec.ttl && state.ttl >= spec.ttl - 2;
    if (!ok) problems.push(`${key} TTL is ${state.ttl}, expected ${spec.ttl}`);
  } else if (spec.ttl !== undefined) compare(" TTL", state.ttl, spec.ttl);
  return problems;
}

/**
 * Compares the reply's `error.field` (the JSON Pointer of an `invalid_params` failure) with the
 * case's `expect.field`, when the case gives one: every binding must name the same first
 * failing location (PRODUCER.md §6), not only the same code.
 */
function checkErrorField(
  wanted: Step,
  error: { code: string; message: string; field?: string },
  label: string,
  op: string,
): Failure[] {
  if (typeof wanted.field !== "string" || error.field === wanted.field) return [];
  const actual = error.field === undefined ? "no field" : `field ${JSON.stringify(error.field)}`;
  return [
    {
      rule: `${op} fails with ${String(wanted.error)} at field ${JSON.stringify(wanted.field)} (PRODUCER.md §6)`,
      message: `${label} fails at ${actual}, expected ${JSON.stringify(wanted.field)} (${error.message})`,
    },
  ];
}

/**
 * Runs producer cases for one binding through its adapter, on a Redis database of its own:
 * replies are checked against the case, the resulting keys against `then.redis`, and the whole
 * state against the first binding's ({@link ProducerReference}).
 */
export class ProducerSuite {
  private shared: AdapterClient | undefined;
  private subscriber: Redis | undefined;
  private readonly published: Array<{ channel: string; message: string }> = [];
  private publishedWaiter: (() => void) | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), "rrqc-producer-"));

  constructor(
    private readonly binding: Binding,
    private readonly redis: TestRedis,
    private readonly database: number,
    private readonly reference: ProducerReference,
  ) {}

  private get client(): Redis {
    return this.redis.client(this.database);
  }

  private adapterFor(given: Step): { adapter: AdapterClient; dedicated: boolean } {
    const names = new Map([["redis_dsn", this.redis.url(this.database)]]);
    if (!given.files && !given.env) {
      this.shared ??= AdapterClient.start(
        this.binding.producer!,
        { RRQ_CONFIG: "", RRQ_REDIS_DSN: "" },
        this.dir,
      );
      return { adapter: this.shared, dedicated: false };
    }
    const cwd = mkdtempSync(join(this.dir, "case-"));
    for (const [name, content] of Object.entries((given.files ?? {}) as Record<string, string>)) {
      const path = join(cwd, name);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, fill(content, names) as string);
    }
    const env = {
      RRQ_CONFIG: "",
      RRQ_REDIS_DSN: "",
      ...(fill(given.env ?? {}, names) as Record<string, string>),
    };
    return { adapter: AdapterClient.start(this.binding.producer!, env, cwd), dedicated: true };
  }

  /** Runs one case; returns the broken rules. */
  async run(c: Case): Promise<Failure[]> {
    const given = (c.given ?? {}) as Step;
    const then = (c.then ?? {}) as Step;
    const names = new Map([["redis_dsn", this.redis.url(this.database)]]);
    await this.client.flushdb();
    await this.subscribe();
    const publishedFrom = this.published.length;
    for (const command of (given.redis ?? []) as string[][]) {
      const [name, ...args] = fill(command, names) as string[];
      await this.client.call(name!, ...args);
    }
    const { adapter, dedicated } = this.adapterFor(given);
    const failures: Failure[] = [];
    try {
      if (given.config !== null) {
        const config = {
          redis_dsn: this.redis.url(this.database),
          ...((given.config ?? {}) as Step),
        };
        const reply = await adapter.call("configure", { config });
        if (!reply.ok && !c.when?.some((s) => s.op === "configure"))
          return [
            {
              rule: "configure accepts a valid producer config",
              message: `${reply.error.code}: ${reply.error.message}`,
            },
          ];
      }
      for (const [i, step] of (c.when ?? []).entries())
        failures.push(...(await this.step(step, i, adapter, names)));
      if (failures.length) return failures;
      const state = await snapshot(this.client);
      const expected = fill(then.redis ?? {}, names) as Record<string, Step>;
      for (const [key, spec] of Object.entries(expected))
        for (const problem of checkKey(key, spec, state[key]))
          failures.push({ rule: "Redis state as PRODUCER.md §3 says", message: problem });
      if (then.keys === "exact")
        for (const key of Object.keys(state).filter(
          (k) => !(k in expected) && !REGISTRY_KEYS.has(k),
        ))
          failures.push({
            rule: "nothing else is written (PRODUCER.md §3, §6)",
            message: `unexpected key ${key} (${state[key]!.type}) ${show(state[key]!.value)}`,
          });
      for (const wanted of fill(then.published ?? [], names) as Array<Record<string, string>>) {
        if (!(await this.awaitPublished(wanted, publishedFrom)))
          failures.push({
            rule: String(wanted.channel).startsWith("rrq:cancel:")
              ? "a cancel of a running job tells its holder (PRODUCER.md §5.1)"
              : "an enqueue publishes a wake-up (PRODUCER.md §3)",
            message: `no PUBLISH ${wanted.channel} ${wanted.message}`,
          });
      }
      if (then.compare !== false) {
        const ids = new Map([...names].filter(([n]) => n !== "redis_dsn"));
        const times = !(c.when ?? []).every(
          (s) => !String(s.op).startsWith("enqueue") || ((s.options ?? {}) as Step).enqueue_time,
        );
        const compared = Object.fromEntries(
          Object.entries(state).filter(([k]) => !REGISTRY_KEYS.has(k)),
        );
        const diff = this.reference.compare(
          c.id,
          this.binding.name,
          normalize(compared, { ids, times }),
        );
        failures.push(
          ...diff.map((message) => ({
            rule: "every binding writes the same Redis state (PRODUCER.md §3, §4)",
            message,
          })),
        );
      }
      return failures;
    } catch (error) {
      if (error instanceof AdapterError)
        return [
          { rule: "the producer adapter answers (PRODUCER_ADAPTER.md)", message: error.message },
        ];
      throw error;
    } finally {
      if (dedicated) await adapter.close();
    }
  }

  private async step(
    step: Step,
    index: number,
    adapter: AdapterClient,
    names: Map<string, string>,
  ): Promise<Failure[]> {
    const { op, as, expect, large_params_bytes: large, params_depth: depth, ...args } = step;
    if (typeof large === "number") args.params = { blob: "x".repeat(large) };
    if (typeof depth === "number") args.params = { deep: nestedArray(depth - 1) };
    const reply: AdapterReply = await adapter.call(String(op), fill(args, names) as Step);
    const label = `step ${index + 1} (${String(op)})`;
    const wanted = (expect ?? { ok: true }) as Step;
    if (typeof wanted.error === "string") {
      if (reply.ok)
        return [
          {
            rule: `${String(op)} fails with ${wanted.error} (PRODUCER.md §6)`,
            message: `${label} succeeded with ${show(reply.result)}`,
          },
        ];
      if (reply.error.code !== wanted.error)
        return [
          {
            rule: `${String(op)} fails with ${wanted.error} (PRODUCER.md §6)`,
            message: `${label} failed with ${reply.error.code}: ${reply.error.message}`,
          },
        ];
      return checkErrorField(wanted, reply.error, label, String(op));
    }
    if (!reply.ok)
      return [
        {
          rule: `${String(op)} succeeds`,
          message: `${label} failed with ${reply.error.code}: ${reply.error.message}`,
        },
      ];
    if (typeof as === "string") {
      if (Array.isArray(reply.result))
        reply.result.forEach((id, i) => names.set(`${as}#${i}`, String(id)));
      else if (typeof reply.result === "string") names.set(as, reply.result);
    }
    if ("result" in wanted) {
      const problems = matchValue(reply.result, fill(wanted.result, names));
      if (problems.length)
        return [
          {
            rule: `${String(op)} returns what PRODUCER.md says`,
            message: `${label}: ${problems.map((m) => `${m.path}: ${m.message}`).join("; ")}`,
          },
        ];
    }
    return [];
  }

  /** Listens to wake-up and cancel channels (pub/sub spans databases; messages are matched, not counted). */
  private async subscribe(): Promise<void> {
    if (this.subscriber) return;
    this.subscriber = this.client.duplicate();
    this.subscriber.on("pmessage", (_pattern: string, channel: string, message: string) => {
      this.published.push({ channel, message });
      this.publishedWaiter?.();
    });
    // Wake-ups of enqueues, and the cancel of a running job telling its holder (job-cancel-2.lua).
    await this.subscriber.psubscribe("rrq:wake:*", "rrq:cancel:*");
  }

  private async awaitPublished(wanted: Record<string, string>, from: number): Promise<boolean> {
    const deadline = Date.now() + 2000;
    for (;;) {
      const seen = this.published
        .slice(from)
        .some((p) => p.channel === wanted.channel && p.message === wanted.message);
      if (seen) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.publishedWaiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
    await this.shared?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
