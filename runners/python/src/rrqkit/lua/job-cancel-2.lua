-- job-cancel-2.lua: cancel a job, waiting or running (`rrq job cancel`, data API jobs.cancel,
-- the producers' cancel). RRQ 0.11's CLI does ZREM then HSET status as two commands and only
-- cancels PENDING jobs; this is one step and also cancels jobs running under rrqkit's fences.
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  events stream    rrq:events:job:<id>
-- ARGV[1]  job_id
-- ARGV[2]  completion_time (RFC 3339, +00:00)
-- ARGV[3]  default result TTL seconds (used when the hash has no valid result_ttl_seconds)
--
-- Also reads and writes the queue named by the hash's queue_name, the unique lock named by
-- job_unique_key, the job lock rrq:lock:job:<id>, the lease index rrq:leases, the holder's
-- active set rrq:active:jobs:<worker_id> and rrqkit's bookkeeping keys.
--
-- Waiting: a job can be cancelled while its status is PENDING or RETRYING (RRQ: PENDING only)
-- and it is a member of its queue. Then ZREM the queue and HSET status=CANCELLED,
-- completion_time.
--
-- Running: a job whose status is ACTIVE, that has a lease_fence and an entry in rrq:leases, is
-- held by an rrqkit orchestrator (RRQ's own claim writes neither; a lease_fence alone may be
-- left over from an earlier rrqkit attempt, and rrqkit removes the lease entry whenever an
-- attempt ends). Then HSET status=CANCELLED, completion_time, last_error "Job cancelled while
-- running" and, for the run the claim numbered k (k = runs, k <= 100), run_<k>_outcome=cancelled
-- and run_<k>_ended_at; DEL the job lock and ZREM rrq:leases and the holder's active set. Every
-- write of the running attempt is fenced on status ACTIVE (and its lease_fence), so a late
-- success, retry or DLQ move of that attempt is refused as not its own. Last, PUBLISH
-- rrq:cancel:<worker_id> <job_id> tells the holder to stop the handler (the holder's lease
-- renewal finds the job gone as well, if the message is missed).
-- An ACTIVE job without that (held by RRQ's orchestrator, which does not fence its writes, so
-- its late success would overwrite the cancel) is refused and nothing is written.
--
-- Both cases then: XADD event=cancelled job_id status=CANCELLED to the events stream (a wake-up
-- for waiters); the job hash and stream get the job's result TTL (EXPIRE when > 0, PERSIST when
-- 0, untouched when negative; RRQ leaves a cancelled hash without a TTL); DEL the unique lock if
-- this job holds it; HINCRBY cancelled in rrq:stats:queue:<bare queue>; XADD to the rrq:recent
-- feed.
--
-- Returns {code, status[, worker_id]}:
--   { 1, "CANCELLED"}             cancelled while waiting
--   { 1, "CANCELLED", worker_id}  cancelled while running on worker_id
--   { 0, status}                  the status does not allow it (nothing written)
--   {-1, ""}                      no such job
--   {-2, status}                  the job has no queue_name
--   {-3, status}                  the job is not in its queue (nothing written)
--   {-4, "ACTIVE"}                running on an orchestrator that cannot cancel it (nothing
--                                 written)
local job, events = KEYS[1], KEYS[2]
local id = ARGV[1]
if redis.call("EXISTS", job) == 0 then return {-1, ""} end
local f = redis.call("HMGET", job, "status", "queue_name", "job_unique_key", "result_ttl_seconds",
  "function_name", "lease_fence", "worker_id", "runs")
local status, queue = f[1] or "", f[2] or ""
local upper = string.upper(status)
local holder = false
if upper == "ACTIVE" then
  if (f[6] or "") == "" or not redis.call("ZSCORE", "rrq:leases", id) then
    return {-4, status}
  end
  holder = f[7] or ""
  local run = tonumber(f[8] or "")
  if run and run >= 1 and run <= 100 and run == math.floor(run) then
    redis.call("HSET", job, "status", "CANCELLED", "completion_time", ARGV[2],
      "last_error", "Job cancelled while running", "run_" .. run .. "_outcome", "cancelled",
      "run_" .. run .. "_ended_at", ARGV[2])
  else
    redis.call("HSET", job, "status", "CANCELLED", "completion_time", ARGV[2],
      "last_error", "Job cancelled while running")
  end
  redis.call("DEL", "rrq:lock:job:" .. id)
  redis.call("ZREM", "rrq:leases", id)
  if holder ~= "" then redis.call("ZREM", "rrq:active:jobs:" .. holder, id) end
elseif upper == "PENDING" or upper == "RETRYING" then
  if queue == "" then return {-2, status} end
  if redis.call("ZREM", queue, id) == 0 then return {-3, status} end
  redis.call("HSET", job, "status", "CANCELLED", "completion_time", ARGV[2])
else
  return {0, status}
end
redis.call("XADD", events, "*", "event", "cancelled", "job_id", id, "status", "CANCELLED")
local ttl = tonumber(f[4] or "") or tonumber(ARGV[3])
-- EXPIRE refuses 1e300 ("not an integer or out of range"), failing the script half-way.
if ttl > 4294967295 then ttl = 4294967295 end
if ttl > 0 then
  redis.call("EXPIRE", job, math.floor(ttl))
  redis.call("EXPIRE", events, math.floor(ttl))
elseif ttl == 0 then
  redis.call("PERSIST", job)
  redis.call("PERSIST", events)
end
if f[3] then
  local lock = "rrq:lock:unique:" .. f[3]
  if redis.call("GET", lock) == id then redis.call("DEL", lock) end
end
if queue ~= "" then
  local bare = string.gsub(queue, "^rrq:queue:", "")
  redis.call("HINCRBY", "rrq:stats:queue:" .. bare, "cancelled", 1)
end
redis.call("XADD", "rrq:recent", "MAXLEN", "~", 10000, "*", "j", id, "q", queue, "f", f[5] or "",
  "s", "CANCELLED")
if holder then
  if holder ~= "" then redis.call("PUBLISH", "rrq:cancel:" .. holder, id) end
  return {1, "CANCELLED", holder}
end
return {1, "CANCELLED"}
