import { afterAll, beforeAll, beforeEach } from "vitest";
import { Producer } from "../../src/producer/producer.js";
import { startRedis, type TestRedis } from "./redis-server.js";

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
