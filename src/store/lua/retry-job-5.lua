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
-- ARGV[7]  last_error_type ("" or absent: none)
-- ARGV[8]  last_error_traceback, already capped at 8 KiB ("" or absent: none)
--
-- Ownership (fencing): this attempt still holds the job when the hash has our worker_id and
-- lease_fence and status ACTIVE, and the lock is ours or free (a lapsed lease nobody took).
-- Otherwise nothing is written; our active-set entry is dropped unless the hash still names
-- this worker (it then belongs to a newer attempt of ours).
--
-- Writes: current_retries (to n = the count as read, see lib/int-or-zero.lua, + 1); HSET status=RETRYING, last_error,
-- next_scheduled_run_time, and retry_<n>_at (the retry time; RRQ's `job trace` reads it); ZADD
-- queue; ZREM the active set and the lease index; DEL the lock; PUBLISH the score on the
-- queue's wake channel.
--
-- Bookkeeping (rrqkit, additive), stamped with Redis TIME: run_<k>_ended_at, run_<k>_outcome=retry
-- and run_<k>_error (first 1000 bytes) for the run the claim numbered k (k <= 100); HINCRBY
-- retried in rrq:stats:queue:<bare queue>, rrq:stats:day:<UTC date> (kept 400 days) and
-- rrq:stats:minute:<UTC YYYY-MM-DDTHH:MM> (kept 2 hours; the dashboard's per-minute chart: retries
-- are not in the rrq:recent feed of finished jobs);
-- last_error_type, last_error_traceback and run_<k>_error_type (lib/error-detail.lua).
--
-- Re-sent calls (rrqkit): ioredis re-sends a call whose reply a dropped connection lost, so
-- this script may run twice for one write. The second run finds the hash RETRYING with
-- this attempt's worker_id and lease_fence (the fence is unique per claim, so no other attempt
-- leaves that state) and returns current_retries again, changing nothing; before, it reported
-- "not ours" and the worker warned that another worker held a job it had just finished.
--
-- Returns the new current_retries (the current one when already written by this attempt;
-- nothing written then), 0 when not ours (nothing written), -1 when the hash is gone.
local job, queue, active, lock, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, worker, fence = ARGV[1], ARGV[2], ARGV[3]
-- @include attempt-fence.lua
local owner = redis.call("GET", lock)
if attempt_job_gone(job, active, leases, lock, id, worker, owner) then return -1 end
local fields = redis.call("HMGET", job, "worker_id", "lease_fence", "status", "runs", "queue_name")
if fields[1] == worker and fields[2] == fence and fields[3] == "RETRYING" then
  return math.max(1, tonumber(redis.call("HGET", job, "current_retries")) or 1)
end
if not attempt_holds(fields, active, id, worker, fence, owner) then return 0 end
-- @include rfc3339-utc.lua
-- @include int-or-zero.lua
-- @include error-detail.lua
local now = redis_now_rfc3339()
local retries = int_or_zero(redis.call("HGET", job, "current_retries")) + 1
local set = {"current_retries", retries, "status", "RETRYING", "last_error", ARGV[5], "next_scheduled_run_time", ARGV[6],
  "retry_" .. retries .. "_at", ARGV[6]}
local run = tonumber(fields[4]) or 0
local r = nil
if run >= 1 and run <= 100 then
  r = "run_" .. run .. "_"
  for _, v in ipairs({r .. "ended_at", now, r .. "outcome", "retry", r .. "error",
      string.sub(ARGV[5], 1, 1000)}) do
    set[#set + 1] = v
  end
end
set_error_detail(set, job, r, ARGV[7], ARGV[8])
redis.call("HSET", job, unpack(set))
if (fields[5] or "") ~= "" then
  local bare = string.gsub(fields[5], "^rrq:queue:", "")
  redis.call("HINCRBY", "rrq:stats:queue:" .. bare, "retried", 1)
end
local day = "rrq:stats:day:" .. string.sub(now, 1, 10)
if redis.call("HINCRBY", day, "retried", 1) == 1 then redis.call("EXPIRE", day, 34560000) end
local minute = "rrq:stats:minute:" .. string.sub(now, 1, 16)
if redis.call("HINCRBY", minute, "retried", 1) == 1 then redis.call("EXPIRE", minute, 7200) end
redis.call("ZADD", queue, ARGV[4], id)
redis.call("ZREM", active, id)
redis.call("ZREM", leases, id)
if owner then redis.call("DEL", lock) end
redis.call("PUBLISH", "rrq:wake:" .. queue, ARGV[4])
return retries
