import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import type { ResolvedConfig } from "../../src/config/config.js";
import { Producer } from "../../src/producer/producer.js";
import { startRedis, type TestRedis } from "./redis-server.js";
import { RunningWorker } from "./worker-harness.js";

/** What a producer-level test works with; the fields are set once the file's beforeAll has run. */
export interface ProducerFixture {
  redis: TestRedis;
  producer: Producer;
}

/**
 * Registers the hooks of a test file that enqueues into a private Redis: one redis-server for
 * the file, flushed before each test, and a producer on it (closed before the server stops).
 */
export function useProducerFixture(): ProducerFixture {
  const fixture = {} as ProducerFixture;
  beforeAll(async () => {
    fixture.redis = await startRedis();
    fixture.producer = new Producer({ redisDsn: fixture.redis.url });
  });
  afterAll(async () => {
    await fixture.producer?.close();
    await fixture.redis?.stop();
  });
  beforeEach(() => fixture.redis.flush());
  return fixture;
}

/** The workers a test starts ({@link useWorkers}). */
export interface TestWorkers {
  /** Starts a worker on `config` (`before` may subscribe to its events first). */
  start(config: ResolvedConfig, before?: (worker: RunningWorker) => void): Promise<RunningWorker>;
  /** Stops every worker started so far and forgets them (also done after each test). */
  stopAll(): Promise<void>;
}

/**
 * Registers an afterEach that stops every worker the test started (a worker left running would
 * claim the next test's jobs); with a fixture above, the workers stop before the server does.
 */
export function useWorkers(): TestWorkers {
  let workers: RunningWorker[] = [];
  const stopAll = async () => {
    const running = workers;
    workers = [];
    await Promise.all(running.map((w) => w.stop()));
  };
  afterEach(stopAll);
  return {
    start(config, before) {
      const worker = new RunningWorker(config);
      before?.(worker);
      workers.push(worker);
      return worker.start();
    },
    stopAll,
  };
}
