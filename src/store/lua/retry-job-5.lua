-- retry-job-5.lua: schedule another attempt (RRQ retry.lua + next_scheduled_run_time + cleanup).
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  queue            the job's queue key
-- KEYS[3]  active set       rrq:active:jobs:<worker_id>
-- KEYS[4]  job lock         rrq:lock:job:<id>
-- KEYS[5]  lease index      rrq:leases
-- ARGV[1]  job_id
-- ARGV[2]  worker_id
-- ARGV[3]  lease_fence of this attempt
-- ARGV[4]  retry score (epoch ms; may be fractional)
-- ARGV[5]  last_error
-- ARGV[6]  next_scheduled_run_time (RFC 3339, +00:00)
--
-- Ownership (fencing): this attempt still holds the job when the hash has our worker_id and
-- lease_fence and status ACTIVE, and the lock is ours or free (a lapsed lease nobody took).
-- Otherwise nothing is written; our active-set entry is dropped unless the hash still names
-- this worker (it then belongs to a newer attempt of ours).
--
-- Writes: HINCRBY current_retries (to n); HSET status=RETRYING, last_error,
-- next_scheduled_run_time, and retry_<n>_at (the retry time; RRQ's `job trace` reads it); ZADD
-- queue; ZREM the active set and the lease index; DEL the lock; PUBLISH the score on the
-- queue's wake channel.
--
-- Returns the new current_retries, 0 when not ours (nothing written), -1 when the hash is gone.
local job, queue, active, lock, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, worker, fence = ARGV[1], ARGV[2], ARGV[3]
local owner = redis.call("GET", lock)
if redis.call("EXISTS", job) == 0 then
  redis.call("ZREM", active, id)
  redis.call("ZREM", leases, id)
  if owner == worker then redis.call("DEL", lock) end
  return -1
end
local fields = redis.call("HMGET", job, "worker_id", "lease_fence", "status")
if fields[1] ~= worker or fields[2] ~= fence or fields[3] ~= "ACTIVE" or (owner and owner ~= worker) then
  if fields[1] ~= worker then redis.call("ZREM", active, id) end
  return 0
end
local retries = redis.call("HINCRBY", job, "current_retries", 1)
redis.call("HSET", job, "status", "RETRYING", "last_error", ARGV[5], "next_scheduled_run_time", ARGV[6],
  "retry_" .. retries .. "_at", ARGV[6])
redis.call("ZADD", queue, ARGV[4], id)
redis.call("ZREM", active, id)
redis.call("ZREM", leases, id)
if owner then redis.call("DEL", lock) end
redis.call("PUBLISH", "rrq:wake:" .. queue, ARGV[4])
return retries
