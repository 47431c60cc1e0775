-- release-claim-5.lua: give a claimed job back to its queue without counting an attempt
-- (RRQ release_claimed_job and the shutdown requeue).
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  queue            the job's queue key
-- KEYS[3]  active set       rrq:active:jobs:<worker_id>
-- KEYS[4]  job lock         rrq:lock:job:<id>
-- KEYS[5]  lease index      rrq:leases
-- ARGV[1]  job_id
-- ARGV[2]  worker_id
-- ARGV[3]  lease_fence of this attempt
-- ARGV[4]  score (epoch ms, normally now)
-- ARGV[5]  last_error to record ("" = leave it)
--
-- Ownership (fencing): this attempt still holds the job when the hash has our worker_id and
-- lease_fence and status ACTIVE, and the lock is ours or free (a lapsed lease nobody took).
-- Otherwise nothing is written; our active-set entry is dropped unless the hash still names
-- this worker (it then belongs to a newer attempt of ours).
--
-- Writes: status PENDING (last_error set when given, and then last_error_type and
-- last_error_traceback removed; start_time and worker_id removed); ZADD
-- the queue at the score unless the job is already queued; ZREM the active set and the lease
-- index; DEL the lock; wake the queue.
--
-- Bookkeeping (rrqkit, additive): run_<k>_ended_at (Redis TIME, epoch ms as RFC 3339),
-- run_<k>_outcome=released and run_<k>_error (the reason, when given) for the run the claim
-- numbered k (k <= 100).
--
-- Re-sent calls (rrqkit): ioredis re-sends a call whose reply a dropped connection lost, so
-- this script may run twice for one release. A release removes worker_id, so the second run
-- recognises its own write by status PENDING, no worker_id, this attempt's lease_fence and
-- run_<k>_outcome=released (a recovery writes "recovered"), and returns 2, already written,
-- changing nothing. (Runs past 100 keep no run_<k> fields: a re-sent release of one of them
-- reports 0.)
--
-- Returns 1 released, 2 already released by this attempt (nothing written), 0 not ours
-- (nothing written), -1 job hash gone.
local job, queue, active, lock, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, worker, fence = ARGV[1], ARGV[2], ARGV[3]
-- @include attempt-fence.lua
local owner = redis.call("GET", lock)
if attempt_job_gone(job, active, leases, lock, id, worker, owner) then return -1 end
local fields = redis.call("HMGET", job, "worker_id", "lease_fence", "status", "runs")
if not fields[1] and fields[2] == fence and fields[3] == "PENDING" and fields[4]
    and redis.call("HGET", job, "run_" .. fields[4] .. "_outcome") == "released" then
  return 2
end
if not attempt_holds(fields, active, id, worker, fence, owner) then return 0 end
-- @include rfc3339-utc.lua
local set = {"status", "PENDING"}
if ARGV[5] ~= "" then set[#set + 1] = "last_error"; set[#set + 1] = ARGV[5] end
local run = tonumber(fields[4]) or 0
if run >= 1 and run <= 100 then
  local r = "run_" .. run .. "_"
  for _, v in ipairs({r .. "ended_at", redis_now_rfc3339(), r .. "outcome", "released"}) do
    set[#set + 1] = v
  end
  if ARGV[5] ~= "" then set[#set + 1] = r .. "error"; set[#set + 1] = string.sub(ARGV[5], 1, 1000) end
end
redis.call("HSET", job, unpack(set))
redis.call("HDEL", job, "start_time", "worker_id")
-- A new last_error is no error of a handler: the type and traceback of an earlier one go.
if ARGV[5] ~= "" then redis.call("HDEL", job, "last_error_type", "last_error_traceback") end
if not redis.call("ZSCORE", queue, id) then
  redis.call("ZADD", queue, ARGV[4], id)
  redis.call("PUBLISH", "rrq:wake:" .. queue, ARGV[4])
end
redis.call("ZREM", active, id)
redis.call("ZREM", leases, id)
if owner then redis.call("DEL", lock) end
return 1
