-- complete-success-5.lua: record a successful attempt and release the job
-- (RRQ save_job_result + unique-lock release + cleanup_running, in one atomic step).
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  events stream    rrq:events:job:<id>
-- KEYS[3]  active set       rrq:active:jobs:<worker_id>
-- KEYS[4]  job lock         rrq:lock:job:<id>
-- KEYS[5]  lease index      rrq:leases
-- ARGV[1]  job_id
-- ARGV[2]  worker_id
-- ARGV[3]  lease_fence of this attempt
-- ARGV[4]  result JSON ("null" when the runner gave none)
-- ARGV[5]  completion_time (RFC 3339, +00:00)
-- ARGV[6]  default result TTL seconds (used when the hash has no valid result_ttl_seconds)
--
-- Ownership (fencing): this attempt still holds the job when the hash has our worker_id and
-- lease_fence and status ACTIVE, and the lock is ours or free (a lapsed lease nobody took).
-- Otherwise nothing is written; our active-set entry is dropped unless the hash still names
-- this worker (it then belongs to a newer attempt of ours).
--
-- Writes: HSET result, completion_time, status=COMPLETED; XADD event=completed job_id status;
-- TTL on hash and stream: EXPIRE when > 0, PERSIST when 0, untouched when negative; DEL the
-- unique lock named by job_unique_key; ZREM the active set and the lease index; DEL the lock.
--
-- Bookkeeping (rrqkit, additive): run_<k>_ended_at and run_<k>_outcome=completed for the run
-- the claim numbered k (k <= 100); HINCRBY completed in rrq:stats:queue:<bare queue> and in
-- rrq:stats:day:<UTC date of completion_time> (that key expires after 400 days); XADD to the
-- rrq:recent feed (MAXLEN ~ 10000): j=<id> q=<queue key> f=<function> s=COMPLETED.
--
-- Re-sent calls (rrqkit): ioredis re-sends a call whose reply a dropped connection lost, so
-- this script may run twice for one write. The second run finds the hash COMPLETED with
-- this attempt's worker_id and lease_fence (the fence is unique per claim, so no other attempt
-- leaves that state) and returns 2, already written, changing nothing; before, it reported
-- "not ours" and the worker warned that another worker held a job it had just finished.
--
-- Returns 1 written, 2 already written by this attempt (nothing written), 0 not ours (nothing
-- written), -1 job hash gone (our entries removed).
local job, events, active, lock, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, worker, fence = ARGV[1], ARGV[2], ARGV[3]
-- @include attempt-fence.lua
local owner = redis.call("GET", lock)
if attempt_job_gone(job, active, leases, lock, id, worker, owner) then return -1 end
local fields = redis.call("HMGET", job, "worker_id", "lease_fence", "status", "runs", "queue_name",
  "function_name")
if fields[1] == worker and fields[2] == fence and fields[3] == "COMPLETED" then return 2 end
if not attempt_holds(fields, active, id, worker, fence, owner) then return 0 end
local run = tonumber(fields[4]) or 0
if run >= 1 and run <= 100 then
  redis.call("HSET", job, "result", ARGV[4], "completion_time", ARGV[5], "status", "COMPLETED",
    "run_" .. run .. "_ended_at", ARGV[5], "run_" .. run .. "_outcome", "completed")
else
  redis.call("HSET", job, "result", ARGV[4], "completion_time", ARGV[5], "status", "COMPLETED")
end
local queue_name = fields[5] or ""
if queue_name ~= "" then
  local bare = string.gsub(queue_name, "^rrq:queue:", "")
  redis.call("HINCRBY", "rrq:stats:queue:" .. bare, "completed", 1)
end
local day = "rrq:stats:day:" .. string.sub(ARGV[5], 1, 10)
if redis.call("HINCRBY", day, "completed", 1) == 1 then redis.call("EXPIRE", day, 34560000) end
redis.call("XADD", "rrq:recent", "MAXLEN", "~", 10000, "*", "j", id, "q", queue_name,
  "f", fields[6] or "", "s", "COMPLETED")
redis.call("XADD", events, "*", "event", "completed", "job_id", id, "status", "COMPLETED")
local ttl = tonumber(redis.call("HGET", job, "result_ttl_seconds") or "") or tonumber(ARGV[6])
-- EXPIRE refuses 1e300 ("not an integer or out of range"), failing the script half-way.
if ttl > 4294967295 then ttl = 4294967295 end
if ttl > 0 then
  redis.call("EXPIRE", job, math.floor(ttl))
  redis.call("EXPIRE", events, math.floor(ttl))
elseif ttl == 0 then
  redis.call("PERSIST", job)
  redis.call("PERSIST", events)
end
local unique = redis.call("HGET", job, "job_unique_key")
if unique then redis.call("DEL", "rrq:lock:unique:" .. unique) end
redis.call("ZREM", active, id)
redis.call("ZREM", leases, id)
if owner then redis.call("DEL", lock) end
return 1
