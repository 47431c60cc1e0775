-- snooze-job-5.lua: a handler snoozed: run the job again later without counting an attempt
-- (rrqkit; README "Job control", design of issue 20 §E).
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  queue            the job's queue key
-- KEYS[3]  active set       rrq:active:jobs:<worker_id>
-- KEYS[4]  job lock         rrq:lock:job:<id>
-- KEYS[5]  lease index      rrq:leases
-- ARGV[1]  job_id
-- ARGV[2]  worker_id
-- ARGV[3]  lease_fence of this attempt
-- ARGV[4]  score of the next run (epoch ms; may be fractional)
-- ARGV[5]  next_scheduled_run_time (RFC 3339, +00:00)
--
-- Ownership (fencing): as retry-job-5.lua: this attempt still holds the job when the hash has
-- our worker_id and lease_fence and status ACTIVE, and the lock is ours or free. Otherwise
-- nothing is written; our active-set entry is dropped unless the hash still names this worker.
--
-- Writes: status PENDING, next_scheduled_run_time; current_retries is NOT changed (a snooze is
-- not an attempt) and last_error is left as it is (a snooze is not a failure); HINCRBY snoozes;
-- ZADD queue; ZREM the active set and the lease index; DEL the lock; PUBLISH the score on the
-- queue's wake channel. Bookkeeping: run_<k>_ended_at (Redis TIME) and run_<k>_outcome=snoozed
-- for the run the claim numbered k (k <= 100); HINCRBY snoozed in rrq:stats:queue:<bare queue>.
--
-- Re-sent calls: ioredis re-sends a call whose reply a dropped connection lost, so this script
-- may run twice for one write. The second run finds the hash PENDING with this attempt's
-- worker_id and lease_fence and run_<k>_outcome=snoozed (the fence is unique per claim, so no
-- other attempt leaves that state) and returns the snooze count again, changing nothing. (Runs
-- past 100 keep no run_<k> fields: a re-sent snooze of one of them reports 0.)
--
-- Returns the new snooze count (>= 1; the current one when already written by this attempt),
-- 0 when not ours (nothing written), -1 when the hash is gone.
local job, queue, active, lock, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, worker, fence = ARGV[1], ARGV[2], ARGV[3]
-- @include attempt-fence.lua
local owner = redis.call("GET", lock)
if attempt_job_gone(job, active, leases, lock, id, worker, owner) then return -1 end
local fields = redis.call("HMGET", job, "worker_id", "lease_fence", "status", "runs", "queue_name")
if fields[1] == worker and fields[2] == fence and fields[3] == "PENDING" and fields[4]
    and redis.call("HGET", job, "run_" .. fields[4] .. "_outcome") == "snoozed" then
  return math.max(1, tonumber(redis.call("HGET", job, "snoozes")) or 1)
end
if not attempt_holds(fields, active, id, worker, fence, owner) then return 0 end
-- @include rfc3339-utc.lua
-- @include int-or-zero.lua
local now = redis_now_rfc3339()
local snoozes = int_or_zero(redis.call("HGET", job, "snoozes")) + 1
local set = {"status", "PENDING", "next_scheduled_run_time", ARGV[5], "snoozes", snoozes}
local run = tonumber(fields[4]) or 0
if run >= 1 and run <= 100 then
  local r = "run_" .. run .. "_"
  for _, v in ipairs({r .. "ended_at", now, r .. "outcome", "snoozed"}) do
    set[#set + 1] = v
  end
end
redis.call("HSET", job, unpack(set))
if (fields[5] or "") ~= "" then
  local bare = string.gsub(fields[5], "^rrq:queue:", "")
  redis.call("HINCRBY", "rrq:stats:queue:" .. bare, "snoozed", 1)
end
redis.call("ZADD", queue, ARGV[4], id)
redis.call("ZREM", active, id)
redis.call("ZREM", leases, id)
if owner then redis.call("DEL", lock) end
redis.call("PUBLISH", "rrq:wake:" .. queue, ARGV[4])
return snoozes
