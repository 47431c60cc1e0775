import type { ResolvedConfig } from "../config/config.js";
import { parseQueueSpecs, type QueueSpec } from "../config/flow-control.js";
import { Problems } from "../config/values.js";
import { servedQueues } from "../orchestrator/routing.js";
import { Prefix } from "../store/keys.js";
import { buildFlowConfig, type RunnerTagSets } from "./flow-config.js";

/**
 * How a worker serving several queues shares its free slots among them (README "Flow control"):
 *
 * - `fair` (the default, RRQ's rotation): a rotating first queue, up to ceil(capacity / queues)
 *   from each, then whatever is left from the queues that still had jobs;
 * - `strict`: in list order, a queue only gets what the queues before it could not fill;
 * - `weighted`: slots dealt by smooth weighted round robin (nginx's), its state kept across
 *   polls, so weights 3:1 give A A B A A A B A … under backlog even when slots free one at a
 *   time, and a queue that runs dry gives its share to the others.
 */
export type QueueStrategy = "fair" | "strict" | "weighted";

/** The most jobs to ask one queue for next. */
export interface ClaimStep {
  queue: string;
  count: number;
}

/** What a claim found besides the jobs it took. */
export type ClaimState =
  /** Nothing more is ready now (or the queue is paused): not asked again this round. */
  | "drained"
  /** Fewer than asked were taken but some were held (parked or re-scored): not drained. */
  | "held"
  /** As many as asked were taken. */
  | "full";

/**
 * One poll's claims: the worker asks {@link next} for a queue and count, claims, and reports
 * what it got with {@link report}, until `next` says the round is over or no slot is left.
 */
export interface ClaimRound {
  next(remaining: number): ClaimStep | undefined;
  report(queue: string, got: number, state: ClaimState): void;
}

/**
 * What one claim of `asked` jobs found, from its reply: `paused` queues and queues that gave
 * fewer than asked with nothing held are drained; fewer than asked with some parked or
 * re-scored (`parked` > 0) is "held": the queue may have more ready jobs behind those.
 */
export function claimState(
  asked: number,
  reply: { claimed: readonly unknown[]; parked: number; paused: boolean },
): ClaimState {
  if (reply.paused) return "drained";
  if (reply.claimed.length >= asked) return "full";
  return reply.parked > 0 ? "held" : "drained";
}

/** Rounds a queue that keeps answering "held" is asked again within one round, at most. */
const MAX_HELD_ASKS = 2;

/** How often an empty weighted plan is re-dealt within one round (queues running dry). */
const MAX_REDEALS = 4;

/** The claim order of a worker's queues; one per worker, kept across polls. */
export class QueueSchedule {
  readonly queues: readonly string[];
  readonly strategy: QueueStrategy;
  private readonly weights: readonly number[];
  /** Fair: the rotation's next first queue. */
  private cursor = 0;
  /** Weighted: the smooth round robin's current weights. */
  private readonly current: number[];

  /**
   * @param specs the queues in the order given (strict claims in this order); weights default
   * to 1.
   */
  constructor(specs: readonly QueueSpec[], strategy: QueueStrategy) {
    if (specs.length === 0) throw new Error("a queue schedule needs at least one queue");
    this.queues = Object.freeze(specs.map((s) => s.queue));
    this.weights = Object.freeze(specs.map((s) => s.weight ?? 1));
    this.strategy = strategy;
    this.current = specs.map(() => 0);
  }

  /** A round for `capacity` free slots; `skip` holds queues known to be paused. */
  round(capacity: number, skip: ReadonlySet<string> = new Set()): ClaimRound {
    const done = new Set([...skip].filter((q) => this.queues.includes(q)));
    if (this.strategy === "strict") return new StrictRound(this.queues, done);
    if (this.strategy === "weighted") return new WeightedRound(this, done);
    const n = this.queues.length;
    const start = this.cursor++ % n;
    const order = this.queues.map((_, i) => this.queues[(start + i) % n]!);
    return new FairRound(order, Math.max(1, Math.ceil(capacity / n)), done);
  }

  /**
   * One smooth weighted round robin pick among the queues not in `done`: each gains its weight,
   * the highest is picked and loses the total. Undefined when every queue is done.
   */
  pick(done: ReadonlySet<string>): string | undefined {
    let total = 0;
    let best = -1;
    for (let i = 0; i < this.queues.length; i++) {
      if (done.has(this.queues[i]!)) continue;
      total += this.weights[i]!;
      this.current[i]! += this.weights[i]!;
      if (best < 0 || this.current[i]! > this.current[best]!) best = i;
    }
    if (best < 0) return undefined;
    this.current[best]! -= total;
    return this.queues[best];
  }
}

/** RRQ's fairness: see {@link QueueStrategy}. */
class FairRound implements ClaimRound {
  private pass = 0;
  private index = 0;

  constructor(
    private readonly order: readonly string[],
    private readonly share: number,
    private readonly done: Set<string>,
  ) {}

  next(remaining: number): ClaimStep | undefined {
    if (remaining <= 0) return undefined;
    while (this.pass < 2) {
      while (this.index < this.order.length) {
        const queue = this.order[this.index++]!;
        if (this.done.has(queue)) continue;
        return { queue, count: this.pass === 0 ? Math.min(remaining, this.share) : remaining };
      }
      this.pass++;
      this.index = 0;
    }
    return undefined;
  }

  report(queue: string, _got: number, state: ClaimState): void {
    if (state === "drained") this.done.add(queue);
  }
}

/** Strict priority: see {@link QueueStrategy}. */
class StrictRound implements ClaimRound {
  private readonly held = new Map<string, number>();

  constructor(
    private readonly queues: readonly string[],
    private readonly done: Set<string>,
  ) {}

  next(remaining: number): ClaimStep | undefined {
    if (remaining <= 0) return undefined;
    const queue = this.queues.find((q) => !this.done.has(q));
    return queue === undefined ? undefined : { queue, count: remaining };
  }

  report(queue: string, _got: number, state: ClaimState): void {
    if (state === "drained") this.done.add(queue);
    else if (state === "held") {
      const asks = (this.held.get(queue) ?? 0) + 1;
      this.held.set(queue, asks);
      // its ready jobs are held by limits: the next queue gets the slots meanwhile
      if (asks >= MAX_HELD_ASKS) this.done.add(queue);
    }
  }
}

/** Smooth weighted round robin: see {@link QueueStrategy}. */
class WeightedRound implements ClaimRound {
  /** Slots dealt to each queue and not claimed yet, in the order first dealt. */
  private readonly dealt = new Map<string, number>();
  private redeals = 0;

  constructor(
    private readonly schedule: QueueSchedule,
    private readonly done: Set<string>,
  ) {}

  private deal(slots: number): void {
    for (let i = 0; i < slots; i++) {
      const queue = this.schedule.pick(this.done);
      if (queue === undefined) return;
      this.dealt.set(queue, (this.dealt.get(queue) ?? 0) + 1);
    }
  }

  next(remaining: number): ClaimStep | undefined {
    if (remaining <= 0) return undefined;
    for (;;) {
      for (const [queue, count] of this.dealt)
        if (count > 0 && !this.done.has(queue)) return { queue, count: Math.min(count, remaining) };
      // what the dealt queues could not fill goes to the others, dealt the same way
      if (this.redeals++ >= MAX_REDEALS) return undefined;
      this.dealt.clear();
      this.deal(remaining);
      if (this.dealt.size === 0) return undefined;
    }
  }

  report(queue: string, got: number, state: ClaimState): void {
    const left = (this.dealt.get(queue) ?? 0) - got;
    if (state === "full") this.dealt.set(queue, Math.max(0, left));
    else {
      this.dealt.set(queue, 0);
      this.done.add(queue);
    }
  }
}

/**
 * Queues a claim found paused, skipped by later rounds until their wake channel fires (a resume
 * publishes on it) or `recheckMs` passed (a resume whose message was missed, or a paused key
 * deleted by hand).
 */
export class PausedQueues {
  private readonly until = new Map<string, number>();
  private readonly skipped = new Set<string>();

  constructor(private readonly recheckMs = 5000) {}

  /** The queues to skip now (`now`: local epoch ms). */
  current(now: number): ReadonlySet<string> {
    for (const [queue, until] of this.until)
      if (now >= until) {
        this.until.delete(queue);
        this.skipped.delete(queue);
      }
    return this.skipped;
  }

  /** A claim answered "paused" for `queue`. */
  paused(queue: string, now: number): void {
    this.until.set(queue, now + this.recheckMs);
    this.skipped.add(queue);
  }

  /** Something was published on `queue`'s wake channel (a resume, or an enqueue): ask again. */
  woken(queue: string): void {
    this.until.delete(queue);
    this.skipped.delete(queue);
  }

  /** Forget every pause (the subscriber reconnected: messages may have been missed). */
  clear(): void {
    this.until.clear();
    this.skipped.clear();
  }
}

/** The queues a worker serves, in claim order, and how it shares slots among them. */
export interface QueuePlan {
  specs: readonly QueueSpec[];
  strategy: QueueStrategy;
}

/**
 * The worker's queues and strategy: `explicit` (`--queue name[:weight]`, repeatable) when given,
 * else `[rrq] queues`, else the default rule of {@link servedQueues}; strict when `strict`
 * (`--strict-queues`) or `strict_queues`; weighted when a weight is given; else fair (queues
 * sorted, as before). Throws a ConfigError naming every bad `--queue` value.
 */
export function queuePlan(
  config: ResolvedConfig,
  explicit?: readonly string[],
  strict?: boolean,
): QueuePlan {
  const problems = new Problems();
  let specs: readonly QueueSpec[];
  if (explicit?.length)
    specs = parseQueueSpecs(explicit, (i) => `--queue "${explicit[i]}"`, problems);
  else if (config.queueSpecs.length) specs = config.queueSpecs;
  else specs = servedQueues(config).map((queue) => ({ queue, weight: undefined }));
  const isStrict = (strict ?? false) || config.strictQueues;
  const weighted = specs.some((s) => s.weight !== undefined);
  if (isStrict && weighted)
    problems.add(
      "strict queue order (--strict-queues / strict_queues) takes no weights: drop the :weight suffixes or the strict order",
    );
  problems.throwIfAny();
  if (isStrict) return { specs, strategy: "strict" };
  if (weighted) return { specs, strategy: "weighted" };
  const sorted = [...specs].sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0));
  return { specs: sorted, strategy: "fair" };
}

/** The parts of a claim's reply {@link QueueClaims.claimed} reads. */
export interface ClaimReply {
  claimed: readonly unknown[];
  parked: number;
  paused: boolean;
  unknownLimits: readonly string[];
}

/** Most unknown limit names warned about (names come from job hashes anyone can write). */
const MAX_WARNED_LIMITS = 1000;

/**
 * The worker's side of claiming under flow control: its queue plan and schedule, each queue's
 * flow config for the claim script (built once), the queues found paused, and one warning per
 * unknown limit name. Keeps the worker's poll loop to claims and launches.
 */
export class QueueClaims {
  readonly schedule: QueueSchedule;
  private flowConfigs: ReadonlyMap<string, string>;
  private readonly paused = new PausedQueues();
  private readonly warned = new Set<string>();

  /**
   * @param explicit `--queue name[:weight]` values, if any; `strict`: `--strict-queues`.
   * @param warn receives each operator warning (an unknown limit name).
   */
  constructor(
    config: ResolvedConfig,
    explicit: readonly string[] | undefined,
    strict: boolean | undefined,
    private readonly warn: (message: string) => void,
  ) {
    const plan = queuePlan(config, explicit, strict);
    this.schedule = new QueueSchedule(plan.specs, plan.strategy);
    this.flowConfigs = new Map(this.queues.map((q) => [q, buildFlowConfig(config, q)]));
  }

  /** The queues served, as full keys. */
  get queues(): readonly string[] {
    return this.schedule.queues;
  }

  /** A poll's round for `capacity` free slots, skipping queues known to be paused. */
  round(capacity: number): ClaimRound {
    return this.schedule.round(capacity, this.paused.current(Date.now()));
  }

  /**
   * Routes jobs with `requires` by the capability tag sets of this worker's runner processes
   * (issue 23): rebuilds every queue's flow config with them (they change as processes say
   * hello and die).
   */
  routeByTags(config: ResolvedConfig, tagSets: RunnerTagSets): void {
    this.flowConfigs = new Map(this.queues.map((q) => [q, buildFlowConfig(config, q, tagSets)]));
  }

  /** The claim script's flow config of `queue` ("" when nothing is configured). */
  flowConfig(queue: string): string {
    return this.flowConfigs.get(queue) ?? "";
  }

  /**
   * Takes in one claim's reply: reports it to `round`, remembers a paused queue, warns once per
   * unknown limit. True when the claim parked or re-scored jobs (the queue is not drained).
   */
  claimed(round: ClaimRound, queue: string, asked: number, reply: ClaimReply): boolean {
    round.report(queue, reply.claimed.length, claimState(asked, reply));
    if (reply.paused) this.paused.paused(queue, Date.now());
    for (const name of reply.unknownLimits) {
      if (this.warned.has(name) || this.warned.size >= MAX_WARNED_LIMITS) continue;
      this.warned.add(name);
      this.warn(
        `jobs name limit '${name}', which this orchestrator's config does not define ` +
          `([rrq.limits."${name}"]): they run one at a time (cap 1) until it is added`,
      );
    }
    return reply.parked > 0;
  }

  /** A message on a wake channel (`rrq:wake:<queue key>`): a paused queue is asked again. */
  woken(channel: string): void {
    if (channel.startsWith(Prefix.wake)) this.paused.woken(channel.slice(Prefix.wake.length));
  }

  /** The subscriber reconnected (wake-ups may have been missed): ask paused queues again. */
  reconnected(): void {
    this.paused.clear();
  }
}
