-- job-cancel-2.lua: cancel a job that is waiting in its queue (`rrq job cancel`, data API
-- jobs.cancel). RRQ 0.11's CLI does ZREM then HSET status as two commands; this is one step.
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  events stream    rrq:events:job:<id>
-- ARGV[1]  job_id
-- ARGV[2]  completion_time (RFC 3339, +00:00)
-- ARGV[3]  default result TTL seconds (used when the hash has no valid result_ttl_seconds)
--
-- Also reads and writes the queue named by the hash's queue_name, the unique lock named by
-- job_unique_key, and rrqkit's bookkeeping keys.
--
-- A job can be cancelled while its status is PENDING or RETRYING (RRQ: PENDING only) and it is a
-- member of its queue. Then: ZREM the queue; HSET status=CANCELLED, completion_time; XADD
-- event=cancelled job_id status=CANCELLED to the events stream (a wake-up for waiters); the job
-- hash and stream get the job's result TTL (EXPIRE when > 0, PERSIST when 0, untouched when
-- negative; RRQ leaves a cancelled hash without a TTL); DEL the unique lock if this job holds it;
-- HINCRBY cancelled in rrq:stats:queue:<bare queue>; XADD to the rrq:recent feed.
--
-- Returns {code, status}:
--   { 1, "CANCELLED"}  cancelled
--   { 0, status}       the status does not allow it (nothing written)
--   {-1, ""}           no such job
--   {-2, status}       the job has no queue_name
--   {-3, status}       the job is not in its queue (nothing written)
local job, events = KEYS[1], KEYS[2]
local id = ARGV[1]
if redis.call("EXISTS", job) == 0 then return {-1, ""} end
local f = redis.call("HMGET", job, "status", "queue_name", "job_unique_key", "result_ttl_seconds",
  "function_name")
local status, queue = f[1] or "", f[2] or ""
if string.upper(status) ~= "PENDING" and string.upper(status) ~= "RETRYING" then
  return {0, status}
end
if queue == "" then return {-2, status} end
if redis.call("ZREM", queue, id) == 0 then return {-3, status} end
redis.call("HSET", job, "status", "CANCELLED", "completion_time", ARGV[2])
redis.call("XADD", events, "*", "event", "cancelled", "job_id", id, "status", "CANCELLED")
local ttl = tonumber(f[4] or "") or tonumber(ARGV[3])
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
local bare = string.gsub(queue, "^rrq:queue:", "")
redis.call("HINCRBY", "rrq:stats:queue:" .. bare, "cancelled", 1)
redis.call("XADD", "rrq:recent", "MAXLEN", "~", 10000, "*", "j", id, "q", queue, "f", f[5] or "",
  "s", "CANCELLED")
return {1, "CANCELLED"}
