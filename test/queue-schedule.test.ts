/**
 * The claim order of a worker's queues (src/flow/queue-schedule.ts): fair (RRQ's rotation),
 * strict and weighted (smooth weighted round robin), driven against simulated queues. Pure.
 */
import { describe, expect, it } from "vitest";
import {
  PausedQueues,
  QueueSchedule,
  type ClaimRound,
  type QueueStrategy,
} from "../src/flow/queue-schedule.js";

const q = (name: string) => `rrq:queue:${name}`;
const schedule = (strategy: QueueStrategy, ...specs: Array<[string, number?]>) =>
  new QueueSchedule(
    specs.map(([name, weight]) => ({ queue: q(name), weight })),
    strategy,
  );

/**
 * Runs one round against queues with `backlog` ready jobs each (held: jobs a claim parks
 * instead of taking, reported as "held" once), with claims of at most `chunk`; returns the
 * asks in order and the claims per queue.
 */
function drive(
  round: ClaimRound,
  capacity: number,
  backlog: Map<string, number>,
  chunk = Infinity,
  held = new Map<string, number>(),
): { asks: Array<[string, number]>; got: Map<string, number> } {
  const asks: Array<[string, number]> = [];
  const got = new Map<string, number>();
  let remaining = capacity;
  for (let step = round.next(remaining); step; step = round.next(remaining)) {
    const ask = Math.min(step.count, chunk);
    asks.push([step.queue, ask]);
    const ready = backlog.get(step.queue) ?? 0;
    const take = Math.min(ask, ready);
    backlog.set(step.queue, ready - take);
    got.set(step.queue, (got.get(step.queue) ?? 0) + take);
    remaining -= take;
    const parked = held.get(step.queue) ?? 0;
    held.delete(step.queue);
    round.report(step.queue, take, take === ask ? "full" : parked > 0 ? "held" : "drained");
    if (asks.length > 100) throw new Error("the round does not end");
  }
  return { asks, got };
}

describe("fair", () => {
  it("asks a fair share from each queue, rotating the first, then fills from the rest", () => {
    const s = schedule("fair", ["a"], ["b"], ["c"]);
    const first = drive(
      s.round(6),
      6,
      new Map([
        [q("a"), 10],
        [q("b"), 0],
        [q("c"), 10],
      ]),
    );
    expect(first.asks).toEqual([
      [q("a"), 2],
      [q("b"), 2],
      [q("c"), 2],
      [q("a"), 2],
    ]);
    const second = drive(
      s.round(3),
      3,
      new Map([
        [q("a"), 10],
        [q("b"), 10],
        [q("c"), 10],
      ]),
    );
    expect(second.asks[0]).toEqual([q("b"), 1]);
  });

  it("asks a held queue again in the second pass", () => {
    const s = schedule("fair", ["a"], ["b"]);
    const { asks } = drive(
      s.round(4),
      4,
      new Map([
        [q("a"), 1],
        [q("b"), 0],
      ]),
      Infinity,
      new Map([[q("a"), 5]]),
    );
    expect(asks).toEqual([
      [q("a"), 2],
      [q("b"), 2],
      [q("a"), 3],
    ]);
  });
});

describe("strict", () => {
  it("drains the first queue before asking the next", () => {
    const s = schedule("strict", ["high"], ["low"]);
    const { asks, got } = drive(
      s.round(10),
      10,
      new Map([
        [q("high"), 7],
        [q("low"), 50],
      ]),
      4,
    );
    expect(asks).toEqual([
      [q("high"), 4],
      [q("high"), 4],
      [q("low"), 3],
    ]);
    expect(got.get(q("high"))).toBe(7);
  });

  it("moves on from a queue whose jobs are held", () => {
    const s = schedule("strict", ["high"], ["low"]);
    const { got } = drive(
      s.round(3),
      3,
      new Map([
        [q("high"), 0],
        [q("low"), 5],
      ]),
      Infinity,
      new Map([[q("high"), 9]]),
    );
    expect(got.get(q("low"))).toBe(3);
  });
});

describe("weighted", () => {
  it("deals 3:1 when slots free one at a time, keeping its state across polls", () => {
    const s = schedule("weighted", ["a", 3], ["b", 1]);
    const backlog = new Map([
      [q("a"), 1000],
      [q("b"), 1000],
    ]);
    const order: string[] = [];
    for (let i = 0; i < 400; i++) {
      const { got } = drive(s.round(1), 1, backlog);
      order.push(...got.keys());
    }
    expect(order.filter((x) => x === q("a")).length).toBe(300);
    expect(order.slice(0, 8)).toEqual([
      q("a"),
      q("a"),
      q("b"),
      q("a"),
      q("a"),
      q("a"),
      q("b"),
      q("a"),
    ]);
  });

  it("deals a large capacity in proportion, chunked", () => {
    const s = schedule("weighted", ["a", 3], ["b", 1]);
    const { got } = drive(
      s.round(40),
      40,
      new Map([
        [q("a"), 100],
        [q("b"), 100],
      ]),
      8,
    );
    expect(got.get(q("a"))).toBe(30);
    expect(got.get(q("b"))).toBe(10);
  });

  it("gives a dry queue's share to the others", () => {
    const s = schedule("weighted", ["a", 1], ["b", 5]);
    const { got } = drive(
      s.round(12),
      12,
      new Map([
        [q("a"), 100],
        [q("b"), 2],
      ]),
    );
    expect(got.get(q("b"))).toBe(2);
    expect(got.get(q("a"))).toBe(10);
  });

  it("skips paused queues", () => {
    const s = schedule("weighted", ["a", 1], ["b", 5]);
    const { got } = drive(
      s.round(4, new Set([q("b")])),
      4,
      new Map([
        [q("a"), 100],
        [q("b"), 100],
      ]),
    );
    expect([...got]).toEqual([[q("a"), 4]]);
  });
});

describe("paused queues", () => {
  it("are skipped until woken or the recheck time", () => {
    const paused = new PausedQueues(5000);
    paused.paused(q("a"), 1000);
    expect([...paused.current(2000)]).toEqual([q("a")]);
    expect([...paused.current(6000)]).toEqual([]);
    paused.paused(q("a"), 7000);
    paused.woken(q("a"));
    expect([...paused.current(7001)]).toEqual([]);
  });
});
