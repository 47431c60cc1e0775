-- enqueue-rate-limited-3.lua: create a job unless the rate-limit window for its key is taken
-- (leading edge: the first call in a window runs, later ones are dropped).
-- Shared verbatim by the TypeScript, Python and Rust producers (copies are drift-checked).
--
-- KEYS[1]  job hash key      rrq:job:<job_id>
-- KEYS[2]  queue key         rrq:queue:<name>
-- KEYS[3]  rate-limit key    rrq:rate_limit:<key>
-- ARGV[1..15]  as enqueue-3.lua
-- ARGV[16] window TTL in whole seconds (ceil of the window)
--
-- Returns {code, job_id}:
--   { 1, job_id}  created (the rate-limit key now holds job_id for the window)
--   { 2, ""}      limited: a job already ran in this window; nothing written
--   {-1, ""}      a job hash with this job_id already exists; the rate key is released
--   {-2, ""}      the TTL is not positive; nothing written
--
-- A created job's queue key is SADDed to rrq:queues (rrqkit's queue registry) and the queue's
-- wake channel is PUBLISHed, as in enqueue-3.lua.
--
-- Re-sent calls: a client may send this script again when the connection dropped before the
-- reply came (ioredis does so by default). A job hash whose id, function_name,
-- job_params, enqueue_time and queue_name equal this call's is the one a first run of this
-- same call wrote (see enqueue-3.lua), so the reply is {1, job_id} again, with nothing written.
local job_key, queue_key, rate_key = KEYS[1], KEYS[2], KEYS[3]
local ttl = tonumber(ARGV[16])
if not ttl or ttl <= 0 then
  return {-2, ""}
end
local function same_job()
  local f = redis.pcall("HMGET", job_key, "id", "function_name", "job_params", "enqueue_time",
    "queue_name")
  return not f.err and f[1] == ARGV[1] and f[2] == ARGV[2] and f[3] == ARGV[3]
    and f[4] == ARGV[4] and f[5] == ARGV[11]
end
if not redis.call("SET", rate_key, ARGV[1], "NX", "EX", ttl) then
  if redis.call("GET", rate_key) == ARGV[1] and same_job() then return {1, ARGV[1]} end
  return {2, ""}
end
if redis.call("EXISTS", job_key) == 1 then
  redis.call("DEL", rate_key)
  return {-1, ""}
end
redis.call("HSET", job_key,
  "id", ARGV[1], "function_name", ARGV[2], "job_params", ARGV[3], "enqueue_time", ARGV[4],
  "status", ARGV[5], "current_retries", ARGV[6], "next_scheduled_run_time", ARGV[7],
  "max_retries", ARGV[8], "job_timeout_seconds", ARGV[9], "result_ttl_seconds", ARGV[10],
  "queue_name", ARGV[11], "result", ARGV[12])
if ARGV[13] ~= "" then redis.call("HSET", job_key, "trace_context", ARGV[13]) end
if ARGV[14] ~= "" then redis.call("HSET", job_key, "correlation_context", ARGV[14]) end
redis.call("ZADD", queue_key, ARGV[15], ARGV[1])
redis.call("SADD", "rrq:queues", queue_key)
redis.call("PUBLISH", "rrq:wake:" .. queue_key, ARGV[15])
return {1, ARGV[1]}
