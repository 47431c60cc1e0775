-- recover-job-3.lua: put a job whose holder is gone back in its queue. Used for jobs whose
-- lease expired (rrqkit, found through rrq:leases) and for jobs of dead workers found in their
-- active sets (RRQ 0.11 recover_orphaned_jobs, per job). Atomic, so RRQ's separate recovery
-- lock is not needed; a live lock still means someone holds the job.
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  job lock         rrq:lock:job:<id>
-- KEYS[3]  lease index      rrq:leases
-- ARGV[1]  job_id
-- ARGV[2]  the recovering worker's id
-- ARGV[3]  holder's worker id, or "" to take it from the hash's worker_id
-- ARGV[4]  queue key to use (the hash's queue_name, normalized, else the default queue)
-- ARGV[5]  score (epoch ms): next_scheduled_run_time if set, else now (RRQ's rule)
-- ARGV[6]  that time as RFC 3339 (+00:00), recorded as next_scheduled_run_time
-- ARGV[7]  max recoveries (0 = no limit): an ACTIVE job recovered more often is poison
-- ARGV[8]  lease ms (for a poison job taken over by the recovering worker)
-- ARGV[9]  start_time for that takeover (RFC 3339, +00:00)
-- ARGV[10] now, epoch ms
--
-- Reads and writes the holder's active set rrq:active:jobs:<holder>, the recovering worker's
-- active set and the job's queue, whose names come from the hash or the arguments.
--
-- Returns {verdict, fence}: verdict is
--   "locked"    someone holds the lock: skipped;
--   "missing"   no hash: index entries removed;
--   "terminal"  the job already finished: index entries removed;
--   "queued"    already in its queue: marked PENDING if it was ACTIVE, entries removed;
--   "recovered" put back in its queue (ACTIVE jobs: PENDING, last_error says why and
--               last_error_type / last_error_traceback are removed,
--               recovery_count + 1);
--   "poison"    recovery_count passed the limit: the recovering worker now holds the job
--               (lock, lease, new fence returned as the second element) and must move it to the
--               DLQ with its normal fenced write.
--
-- Bookkeeping (rrqkit, additive): when an ACTIVE job is put back ("queued" or "recovered"), the
-- run the claim numbered k (k <= 100) gets run_<k>_ended_at = ARGV[9] and
-- run_<k>_outcome=recovered (the poison path leaves it to the DLQ write).
-- @include int-or-zero.lua
local job, lock, leases = KEYS[1], KEYS[2], KEYS[3]
local id, me = ARGV[1], ARGV[2]
if redis.call("EXISTS", lock) == 1 then return {"locked", false} end
local fields = redis.call("HMGET", job, "status", "worker_id", "runs")
local function end_run()
  local run = tonumber(fields[3]) or 0
  if run >= 1 and run <= 100 then
    redis.call("HSET", job, "run_" .. run .. "_ended_at", ARGV[9], "run_" .. run .. "_outcome", "recovered")
  end
end
local holder = ARGV[3] ~= "" and ARGV[3] or fields[2]
local holder_set = holder and ("rrq:active:jobs:" .. holder) or nil
local function forget()
  redis.call("ZREM", leases, id)
  if holder_set then redis.call("ZREM", holder_set, id) end
end
if redis.call("EXISTS", job) == 0 then
  forget()
  return {"missing", false}
end
local status, queue = fields[1], ARGV[4]
if status ~= "ACTIVE" and status ~= "PENDING" and status ~= "RETRYING" then
  forget()
  return {"terminal", false}
end
if redis.call("ZSCORE", queue, id) then
  if status == "ACTIVE" then
    redis.call("HSET", job, "status", "PENDING")
    redis.call("HDEL", job, "start_time", "worker_id")
    end_run()
  end
  forget()
  return {"queued", false}
end
if status == "ACTIVE" then
  local recoveries = int_or_zero(redis.call("HGET", job, "recovery_count")) + 1
  redis.call("HSET", job, "recovery_count", recoveries)
  local limit = tonumber(ARGV[7])
  if limit > 0 and recoveries > limit then
    forget()
    local fence = redis.call("INCR", "rrq:fence")
    redis.call("SET", lock, me, "PX", ARGV[8])
    redis.call("HSET", job, "worker_id", me, "lease_fence", fence, "start_time", ARGV[9])
    local now = tonumber(ARGV[10])
    redis.call("ZADD", "rrq:active:jobs:" .. me, math.floor(now / 1000), id)
    redis.call("ZADD", leases, now + tonumber(ARGV[8]), id)
    return {"poison", tostring(fence)}
  end
  redis.call("HSET", job, "status", "PENDING", "last_error", "Recovered after lock expiry or worker crash.")
  -- (the type and traceback of an earlier error describe another last_error: they go)
  redis.call("HDEL", job, "start_time", "worker_id", "last_error_type", "last_error_traceback")
  end_run()
end
redis.call("ZADD", queue, ARGV[5], id)
redis.call("HSET", job, "next_scheduled_run_time", ARGV[6])
forget()
redis.call("PUBLISH", "rrq:wake:" .. queue, ARGV[5])
return {"recovered", false}
