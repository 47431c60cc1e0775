-- move-to-dlq-6.lua: fail a job for good (RRQ move_job_to_dlq, with the attempt increment and
-- cleanup that RRQ runs as separate commands).
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  events stream    rrq:events:job:<id>
-- KEYS[3]  DLQ list         rrq:dlq:<name>
-- KEYS[4]  active set       rrq:active:jobs:<worker_id>
-- KEYS[5]  job lock         rrq:lock:job:<id>
-- KEYS[6]  lease index      rrq:leases
-- ARGV[1]  job_id
-- ARGV[2]  worker_id
-- ARGV[3]  lease_fence of this attempt
-- ARGV[4]  last_error
-- ARGV[5]  completion_time (RFC 3339, +00:00)
-- ARGV[6]  "1" to increment current_retries first (a spent attempt), "0" not to
--
-- Ownership (fencing): this attempt still holds the job when the hash has our worker_id and
-- lease_fence and status ACTIVE, and the lock is ours or free (a lapsed lease nobody took).
-- Otherwise nothing is written; our active-set entry is dropped unless the hash still names
-- this worker (it then belongs to a newer attempt of ours).
--
-- Writes: HINCRBY current_retries (optional); HSET status=FAILED, last_error, completion_time;
-- XADD event=failed job_id status; LPUSH the DLQ; EXPIRE 604800 (7 days) on hash and stream;
-- DEL the unique lock named by job_unique_key; ZREM the active set and the lease index; DEL
-- the lock.
--
-- Returns 1 written, 0 not ours (nothing written), -1 job hash gone.
local job, events, dlq, active, lock, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
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
if ARGV[6] == "1" then redis.call("HINCRBY", job, "current_retries", 1) end
redis.call("HSET", job, "status", "FAILED", "last_error", ARGV[4], "completion_time", ARGV[5])
redis.call("XADD", events, "*", "event", "failed", "job_id", id, "status", "FAILED")
redis.call("LPUSH", dlq, id)
redis.call("EXPIRE", job, 604800)
redis.call("EXPIRE", events, 604800)
local unique = redis.call("HGET", job, "job_unique_key")
if unique then redis.call("DEL", "rrq:lock:unique:" .. unique) end
redis.call("ZREM", active, id)
redis.call("ZREM", leases, id)
if owner then redis.call("DEL", lock) end
return 1
