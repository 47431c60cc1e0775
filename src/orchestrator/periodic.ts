/**
 * Runs an async task repeatedly, `intervalMs` after the previous run finished (never two at
 * once), until stopped. The task must not throw; callers catch and report inside it.
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly task: () => Promise<void>,
  ) {}

  /** Starts the loop; the first run is now (`immediate`) or after one interval. */
  start(immediate: boolean): void {
    const loop = () => {
      this.running = this.task().finally(() => {
        if (!this.stopped) this.timer = setTimeout(loop, this.intervalMs);
      });
    };
    if (immediate) loop();
    else this.timer = setTimeout(loop, this.intervalMs);
  }

  /** Stops the loop and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
