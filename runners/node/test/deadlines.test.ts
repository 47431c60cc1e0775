import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Deadline, Deadlines } from "../src/protocol/deadlines.js";

class Entry extends Deadline {
  constructor(
    readonly name: string,
    readonly log: string[],
    readonly then?: () => void,
  ) {
    super();
  }

  expired(): void {
    this.log.push(this.name);
    this.then?.();
  }
}

describe("Deadlines", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("expires entries at their deadline, in order, across durations", () => {
    const deadlines = new Deadlines();
    const log: string[] = [];
    deadlines.arm(new Entry("a", log), 100);
    vi.advanceTimersByTime(30);
    deadlines.arm(new Entry("b", log), 100);
    deadlines.arm(new Entry("c", log), 50);
    expect(deadlines.size).toBe(3);
    vi.advanceTimersByTime(49);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(["c"]);
    vi.advanceTimersByTime(19);
    expect(log).toEqual(["c"]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(["c", "a"]);
    vi.advanceTimersByTime(29);
    expect(log).toEqual(["c", "a"]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(["c", "a", "b"]);
    expect(deadlines.size).toBe(0);
  });

  it("never expires a disarmed entry, wherever it sits in its list", () => {
    const deadlines = new Deadlines();
    const log: string[] = [];
    const entries = ["a", "b", "c", "d"].map((name) => new Entry(name, log));
    for (const entry of entries) deadlines.arm(entry, 10);
    deadlines.disarm(entries[0]!); // head
    deadlines.disarm(entries[2]!); // middle
    deadlines.disarm(entries[3]!); // tail
    deadlines.disarm(entries[3]!); // twice: nothing
    vi.advanceTimersByTime(10);
    expect(log).toEqual(["b"]);
  });

  it("re-arms an armed entry from now, and an expired one from inside expired()", () => {
    const deadlines = new Deadlines();
    const log: string[] = [];
    let again = true;
    const entry: Entry = new Entry("a", log, () => {
      if (again) deadlines.arm(entry, 10);
      again = false;
    });
    deadlines.arm(entry, 10);
    vi.advanceTimersByTime(5);
    deadlines.arm(entry, 10);
    vi.advanceTimersByTime(5);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(5);
    expect(log).toEqual(["a"]);
    vi.advanceTimersByTime(10);
    expect(log).toEqual(["a", "a"]);
    expect(deadlines.size).toBe(0);
  });

  it("an idle list keeps its timer for the next entry of that duration", () => {
    const deadlines = new Deadlines();
    const entry = new Entry("a", []);
    deadlines.arm(entry, 1000);
    const timer = vi.getTimerCount();
    expect(timer).toBe(1);
    deadlines.disarm(entry);
    deadlines.arm(entry, 1000); // the same list's timer serves it again
    expect(vi.getTimerCount()).toBe(1);
  });
});
