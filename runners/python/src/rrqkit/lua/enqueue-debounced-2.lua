-- enqueue-debounced-2.lua: trailing-edge debounce. While a debounced job is still PENDING, a new
-- call replaces its function, params and options and pushes its run time to now + window;
-- otherwise a new job is created, scheduled at now + window.
-- Shared verbatim by the TypeScript, Python and Rust producers (copies are drift-checked).
--
-- KEYS[1]  queue key        rrq:queue:<name>
-- KEYS[2]  debounce key     rrq:debounce:<key>
-- ARGV[1]  job key prefix   "rrq:job:"
-- ARGV[2..13]  job_id, function_name, job_params, enqueue_time, status, current_retries,
--              next_scheduled_run_time, max_retries, job_timeout_seconds, result_ttl_seconds,
--              queue_name, result
-- ARGV[14] trace_context JSON or ""
-- ARGV[15] correlation_context JSON or ""
-- ARGV[16] queue score (run-at epoch ms)
-- ARGV[17] window TTL in whole seconds (ceil of the window)
--
-- Returns {code, job_id}:
--   { 1, job_id}       created
--   { 0, existing_id}  the pending job was updated and rescheduled
--   {-1, ""}           a job hash with this job_id already exists (nothing written)
--   { 2, ""}           the debounce key could not be taken (cannot happen inside one script;
--                      kept for RRQ's status table)
--
-- Deliberate difference from RRQ 0.11: when an update moves the job to another queue, the job
-- is removed from its old queue (RRQ leaves a stale member there).
--
-- The queue key is SADDed to rrq:queues (rrqkit's queue registry) and the queue's wake channel
-- is PUBLISHed, as in enqueue-3.lua.
--
-- Re-sent calls: a client may send this script again when the connection dropped before the
-- reply came (ioredis does so by default). A job hash whose id, function_name,
-- job_params, enqueue_time and queue_name equal this call's is the one a first run of this
-- same call wrote (see enqueue-3.lua), so the reply is {1, job_id} again, with nothing written.
local queue_key, debounce_key, prefix = KEYS[1], KEYS[2], ARGV[1]
local function same_job(job_key)
  local f = redis.pcall("HMGET", job_key, "id", "function_name", "job_params", "enqueue_time",
    "queue_name")
  return not f.err and f[1] == ARGV[2] and f[2] == ARGV[3] and f[3] == ARGV[4]
    and f[4] == ARGV[5] and f[5] == ARGV[12]
end
local existing = redis.call("GET", debounce_key)
if existing == ARGV[2] and same_job(prefix .. existing) then return {1, ARGV[2]} end
if existing then
  local existing_key = prefix .. existing
  if redis.call("HGET", existing_key, "status") == "PENDING" then
    local old_queue = redis.call("HGET", existing_key, "queue_name")
    redis.call("HSET", existing_key,
      "function_name", ARGV[3], "job_params", ARGV[4], "next_scheduled_run_time", ARGV[8],
      "max_retries", ARGV[9], "job_timeout_seconds", ARGV[10], "result_ttl_seconds", ARGV[11],
      "queue_name", ARGV[12])
    if ARGV[14] ~= "" then redis.call("HSET", existing_key, "trace_context", ARGV[14]) end
    if ARGV[15] ~= "" then
      redis.call("HSET", existing_key, "correlation_context", ARGV[15])
    else
      redis.call("HDEL", existing_key, "correlation_context")
    end
    if old_queue and old_queue ~= queue_key then
      redis.call("ZREM", old_queue, existing)
    end
    redis.call("ZADD", queue_key, ARGV[16], existing)
    redis.call("EXPIRE", debounce_key, ARGV[17])
    redis.call("SADD", "rrq:queues", queue_key)
    redis.call("PUBLISH", "rrq:wake:" .. queue_key, ARGV[16])
    return {0, existing}
  end
  redis.call("DEL", debounce_key)
end
local job_key = prefix .. ARGV[2]
if redis.call("EXISTS", job_key) == 1 then
  if same_job(job_key) then return {1, ARGV[2]} end
  return {-1, ""}
end
if not redis.call("SET", debounce_key, ARGV[2], "NX", "EX", ARGV[17]) then
  return {2, ""}
end
redis.call("HSET", job_key,
  "id", ARGV[2], "function_name", ARGV[3], "job_params", ARGV[4], "enqueue_time", ARGV[5],
  "status", ARGV[6], "current_retries", ARGV[7], "next_scheduled_run_time", ARGV[8],
  "max_retries", ARGV[9], "job_timeout_seconds", ARGV[10], "result_ttl_seconds", ARGV[11],
  "queue_name", ARGV[12], "result", ARGV[13])
if ARGV[14] ~= "" then redis.call("HSET", job_key, "trace_context", ARGV[14]) end
if ARGV[15] ~= "" then redis.call("HSET", job_key, "correlation_context", ARGV[15]) end
redis.call("ZADD", queue_key, ARGV[16], ARGV[2])
redis.call("SADD", "rrq:queues", queue_key)
redis.call("PUBLISH", "rrq:wake:" .. queue_key, ARGV[16])
return {1, ARGV[2]}
