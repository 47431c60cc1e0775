-- recover-orphan-3.lua: put one job of a dead worker back in its queue (RRQ
-- recover_orphaned_jobs, per job). Runs atomically, so RRQ's separate recovery lock is not
-- needed; a live lock still means someone holds the job.
--
-- KEYS[1]  job hash                 rrq:job:<id>
-- KEYS[2]  the dead worker's set    rrq:active:jobs:<dead_worker_id>
-- KEYS[3]  job lock                 rrq:lock:job:<id>
-- ARGV[1]  job_id
-- ARGV[2]  queue key to use (the hash's queue_name, normalized, else the default queue)
-- ARGV[3]  score (epoch ms): next_scheduled_run_time if set, else now
-- ARGV[4]  next_scheduled_run_time to record (RFC 3339, +00:00)
--
-- Returns "locked" (someone holds the lock: skipped), "missing" (no hash: entry removed),
-- "queued" (already in its queue: marked PENDING if ACTIVE, entry removed), "recovered"
-- (re-queued), or "terminal" (finished job: entry removed).
local job, active, lock = KEYS[1], KEYS[2], KEYS[3]
local id, queue = ARGV[1], ARGV[2]
if redis.call("EXISTS", lock) == 1 then return "locked" end
if redis.call("EXISTS", job) == 0 then
  redis.call("ZREM", active, id)
  return "missing"
end
local status = redis.call("HGET", job, "status")
if redis.call("ZSCORE", queue, id) then
  if status == "ACTIVE" then
    redis.call("HSET", job, "status", "PENDING")
    redis.call("HDEL", job, "start_time", "worker_id")
  end
  redis.call("ZREM", active, id)
  return "queued"
end
if status == "ACTIVE" or status == "PENDING" or status == "RETRYING" then
  redis.call("ZADD", queue, ARGV[3], id)
  if status == "ACTIVE" then
    redis.call("HSET", job, "status", "PENDING", "last_error", "Recovered after lock expiry or worker crash.")
    redis.call("HDEL", job, "start_time", "worker_id")
  end
  redis.call("HSET", job, "next_scheduled_run_time", ARGV[4])
  redis.call("ZREM", active, id)
  redis.call("PUBLISH", "rrq:wake:" .. queue, ARGV[3])
  return "recovered"
end
redis.call("ZREM", active, id)
return "terminal"
