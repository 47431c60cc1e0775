-- enqueue-3.lua: create a job (optionally guarded by an idempotency key) and queue it.
-- Shared verbatim by the TypeScript, Python and Rust producers (copies are drift-checked).
--
-- KEYS[1]  job hash key            rrq:job:<job_id>
-- KEYS[2]  queue key               rrq:queue:<name>
-- KEYS[3]  idempotency key          rrq:idempotency:<unique_key>, or the bare prefix
--          "rrq:idempotency:" when there is none (a key inside the rrq: namespace, so Redis
--          ACL users restricted to ~rrq:* may run the script; "" is accepted too)
-- ARGV[1..12]  job_id, function_name, job_params, enqueue_time, status, current_retries,
--              next_scheduled_run_time, max_retries, job_timeout_seconds, result_ttl_seconds,
--              queue_name, result
-- ARGV[13] trace_context JSON or ""        (field written only when non-empty)
-- ARGV[14] correlation_context JSON or ""  (field written only when non-empty)
-- ARGV[15] queue score (run-at epoch ms)
-- ARGV[16] idempotency TTL seconds (used only with KEYS[3])
-- ARGV[17] call token, unique per call, or "" / absent (rrqkit's TypeScript producer sends one)
--
-- Returns {code, job_id}:
--   { 1, job_id}       created
--   { 0, existing_id}  idempotent hit: the key points at a job hash that still exists
--   {-1, ""}           a job hash with this job_id already exists (nothing written)
--
-- Re-sent calls: a client may send this script again when the connection dropped before the
-- reply came (ioredis does so by default); the second run must not report the job
-- the first run wrote as a duplicate. With a token, a created job is recorded under
-- rrq:enqueue:<token> (PX 60 s) and a second run with that token returns {1, job_id} again,
-- writing nothing. Without one, a job hash whose id, function_name, job_params, enqueue_time
-- and queue_name equal ARGV[1], ARGV[2], ARGV[3], ARGV[4] and ARGV[11] is taken for the
-- first run's (the id is normally random and enqueue_time has millisecond precision, so only
-- an identical call with a caller-chosen job_id in the same millisecond is answered the same
-- way).
--
-- After a successful create, PUBLISHes the score on "rrq:wake:<queue key>" so an idle
-- rrqkit orchestrator wakes at once (RRQ's orchestrator ignores it; it polls).
-- It also SADDs the queue key to rrq:queues, the registry `rrq queue list` reads (rrqkit).
local job_key, queue_key, idem_key = KEYS[1], KEYS[2], KEYS[3]
local token_key = (ARGV[17] or "") ~= "" and ("rrq:enqueue:" .. ARGV[17]) or nil
if token_key and redis.call("GET", token_key) == ARGV[1] then
  return {1, ARGV[1]}
end
if idem_key == "rrq:idempotency:" then idem_key = "" end
if idem_key ~= "" then
  local existing = redis.call("GET", idem_key)
  if existing then
    if redis.call("EXISTS", "rrq:job:" .. existing) == 1 then
      return {0, existing}
    end
    redis.call("DEL", idem_key)
  end
end
if redis.call("EXISTS", job_key) == 1 then
  local f = redis.pcall("HMGET", job_key, "id", "function_name", "job_params", "enqueue_time",
    "queue_name")
  if not token_key and not f.err and f[1] == ARGV[1] and f[2] == ARGV[2] and f[3] == ARGV[3] and f[4] == ARGV[4]
      and f[5] == ARGV[11] then
    return {1, ARGV[1]}
  end
  return {-1, ""}
end
if idem_key ~= "" then
  redis.call("SET", idem_key, ARGV[1], "EX", ARGV[16])
end
if token_key then redis.call("SET", token_key, ARGV[1], "PX", 60000) end
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
