/**
 * Request deadlines without a timer per request: the orchestrator waits for each attempt's
 * outcome until its deadline, and the runtime times each request out at its own. A
 * `setTimeout` per request (its Timeout object, its callback's closure) was a fixed part of
 * every job's garbage on both sides; here the entries themselves are the list nodes, and one
 * timer serves every entry armed with the same duration.
 */

/** setTimeout fires at once for longer delays (TimeoutOverflowWarning): longer waits re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Something that expires: extend it, and {@link Deadlines.arm} links the object itself into a
 * list (no allocation per arm). An entry is in at most one list at a time.
 */
export abstract class Deadline {
  /** @internal Monotonic time (performance.now()) the entry expires at. */
  deadlineAt = 0;
  /** @internal The list the entry is linked in, while armed. */
  deadlineList: DeadlineList | undefined = undefined;
  /** @internal */
  deadlineNext: Deadline | undefined = undefined;
  /** @internal */
  deadlinePrev: Deadline | undefined = undefined;

  /** Called once when the deadline passes (the entry is disarmed first). */
  abstract expired(): void;
}

/**
 * The entries armed with one duration, in arming order, which is also deadline order (a
 * monotonic clock plus a constant). One timer, due at or before the head's deadline.
 */
class DeadlineList {
  head: Deadline | undefined;
  tail: Deadline | undefined;
  timer: NodeJS.Timeout | undefined;
  /** When the timer is due (monotonic ms). */
  timerAt = 0;

  constructor(readonly durationMs: number) {}
}

/** Timers for many entries: one per distinct duration, however many entries are armed. */
export class Deadlines {
  private readonly lists = new Map<number, DeadlineList>();

  /** Arms `entry` to expire `ms` from now (whole ms, at least 1), re-arming it if armed. */
  arm(entry: Deadline, ms: number): void {
    this.disarm(entry);
    const duration = Math.max(1, Math.ceil(ms));
    let list = this.lists.get(duration);
    if (!list) this.lists.set(duration, (list = new DeadlineList(duration)));
    entry.deadlineAt = performance.now() + duration;
    entry.deadlineList = list;
    entry.deadlinePrev = list.tail;
    if (list.tail) list.tail.deadlineNext = entry;
    else list.head = entry;
    list.tail = entry;
    if (!list.timer) this.schedule(list, duration);
    else if (list.head === entry) list.timer.ref(); // the list was idle: hold the process again
  }

  /** Disarms `entry` (nothing when it is not armed). */
  disarm(entry: Deadline): void {
    const list = entry.deadlineList;
    if (!list) return;
    const { deadlinePrev: prev, deadlineNext: next } = entry;
    if (prev) prev.deadlineNext = next;
    else list.head = next;
    if (next) next.deadlinePrev = prev;
    else list.tail = prev;
    entry.deadlineList = entry.deadlineNext = entry.deadlinePrev = undefined;
    // an idle list keeps its timer (re-arming one per request is what this avoids), but the
    // timer no longer keeps the process alive, as no request waits on it
    if (!list.head) list.timer?.unref();
  }

  /** Entries armed now (for tests). */
  get size(): number {
    let n = 0;
    for (const list of this.lists.values()) for (let e = list.head; e; e = e.deadlineNext) n++;
    return n;
  }

  private schedule(list: DeadlineList, delayMs: number): void {
    const delay = Math.min(Math.max(1, Math.ceil(delayMs)), MAX_TIMER_MS);
    list.timerAt = performance.now() + delay;
    list.timer = setTimeout(fire, delay, this, list);
  }

  /** @internal The list's timer fired: expire what is due, then wait for the new head. */
  fire(list: DeadlineList): void {
    list.timer = undefined;
    const now = performance.now();
    for (let entry = list.head; entry && entry.deadlineAt <= now; entry = list.head) {
      this.disarm(entry);
      entry.expired();
    }
    if (list.timer) return; // an expired() re-armed an entry of this list, with a timer
    if (list.head) this.schedule(list, list.head.deadlineAt - now);
    else this.lists.delete(list.durationMs);
  }
}

function fire(deadlines: Deadlines, list: DeadlineList): void {
  deadlines.fire(list);
}
