import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { Producer } from "../../src/producer/producer.js";
import { JobStore } from "../../src/store/job-store.js";
import { startRedis, type TestRedis } from "./redis-server.js";

/** What a store test works with; the fields are set once the suite's beforeAll has run. */
export interface StoreFixture {
  redis: TestRedis;
  producer: Producer;
  store: JobStore;
}

/**
 * Registers the hooks of a store-level test file: one private redis-server for the file,
 * flushed before each test, a producer and a JobStore on their own connections.
 */
export function useStoreFixture(): StoreFixture {
  const fixture = {} as StoreFixture;
  let connection: Redis;
  beforeAll(async () => {
    fixture.redis = await startRedis();
    fixture.producer = new Producer({ redisDsn: fixture.redis.url });
    connection = new Redis(fixture.redis.url);
    fixture.store = new JobStore(connection);
  });
  afterAll(async () => {
    await fixture.producer.close();
    connection.disconnect();
    await fixture.redis.stop();
  });
  beforeEach(async () => fixture.redis.flush());
  return fixture;
}
