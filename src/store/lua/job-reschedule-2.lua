-- job-reschedule-2.lua: move a waiting job to a new run time (`rrq job reschedule`, data API
-- jobs.reschedule). rrqkit only; RRQ has no equivalent.
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  queue            the job's queue key (from its queue_name; the caller reads it)
-- ARGV[1]  job_id
-- ARGV[2]  new score (run-at, epoch ms)
-- ARGV[3]  that time as RFC 3339 (+00:00), recorded as next_scheduled_run_time
--
-- Only a job whose status is PENDING or RETRYING and that is a member of KEYS[2] moves: ZADD XX
-- at the new score, HSET next_scheduled_run_time, PUBLISH the score on the queue's wake channel
-- (so an idle rrqkit orchestrator re-arms its timer).
--
-- Returns {code, status}:
--   { 1, status}  rescheduled
--   { 0, status}  the status does not allow it
--   {-1, ""}      no such job
--   {-3, status}  the job is not in that queue (the caller may re-read queue_name and retry)
local job, queue = KEYS[1], KEYS[2]
local id = ARGV[1]
if redis.call("EXISTS", job) == 0 then return {-1, ""} end
local status = redis.call("HGET", job, "status") or ""
if status ~= "PENDING" and status ~= "RETRYING" then return {0, status} end
if not redis.call("ZSCORE", queue, id) then return {-3, status} end
redis.call("ZADD", queue, "XX", ARGV[2], id)
redis.call("HSET", job, "next_scheduled_run_time", ARGV[3])
redis.call("PUBLISH", "rrq:wake:" .. queue, ARGV[2])
return {1, status}
