import type { Redis } from "ioredis";

/**
 * `work`'s value, or undefined once `ms` have passed or if it rejects (the work goes on
 * unobserved). For shutdown steps that wait on Redis, which may never answer.
 */
export async function within<T>(work: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  if (!work) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>(
    (resolve) => (timer = setTimeout(() => resolve(undefined), ms)),
  );
  try {
    return await Promise.race([work.catch(() => undefined), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Closes a connection without waiting on an unreachable server: QUIT (up to `ms`) when it is
 * connected, else a plain disconnect (QUIT would sit in the offline queue forever).
 */
export async function closeRedis(redis: Redis, ms = 1000): Promise<void> {
  if (redis.status === "ready") {
    const quit = redis.quit().then(
      () => true,
      () => false,
    );
    if ((await within(quit, ms)) === true) return;
  }
  redis.disconnect();
}
