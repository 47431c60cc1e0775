-- cron-fire-4.lua: enqueue one cron job for one fire time, exactly once across every
-- orchestrator (src/orchestrator/cron.ts). The fire time is claimed and the job written in the
-- same atomic step, so no fire time is enqueued twice and none is lost between claim and write.
--
-- KEYS[1]  cron state       rrq:cron:<cron id> (HASH; rrqkit)
-- KEYS[2]  job hash         rrq:job:<job_id>
-- KEYS[3]  queue            rrq:queue:<name>
-- KEYS[4]  unique lock      rrq:lock:unique:cron:<function_name> for `unique = true` entries,
--                           else "" (or the bare prefix "rrq:lock:unique:")
-- ARGV[1]  fire time, epoch ms
-- ARGV[2]  unique lock TTL seconds (used only with KEYS[4])
-- ARGV[3..14]  job_id, function_name, job_params, enqueue_time, status, current_retries,
--              next_scheduled_run_time, max_retries, job_timeout_seconds, result_ttl_seconds,
--              queue_name, result (the orchestrator-internal enqueue's fields, RRQ facts §2.17)
-- ARGV[15] job_unique_key ("" when not unique)
-- ARGV[16] cron_fire_time (RFC 3339 of ARGV[1]; an rrqkit field)
-- ARGV[17] queue score (epoch ms)
--
-- The state's last_fire is the latest fire time already handled. A fire time at or before it is
-- refused. Otherwise last_fire becomes ARGV[1] and, for a unique entry whose lock still has a
-- TTL (RRQ's rule: skip while the previous job holds it), nothing else is written. Else the lock
-- is taken (SET NX EX; a lock without TTL is left as it is, as RRQ does), the job hash is
-- written (job_unique_key only when unique), ZADDed to the queue, the queue is SADDed to
-- rrq:queues and its wake channel PUBLISHed; the state records last_job and counts fired.
--
-- Returns {code, detail}:
--   { 1, job_id}     enqueued (also for a second run of the same call: a re-send)
--   { 0, last_fire}  this fire time (or a later one) was already handled
--   { 2, holder}     unique entry skipped: the lock is held (holder = its job id)
--   {-1, ""}         a job hash with this job_id exists (nothing written, fire time not taken)
local state, job, queue, lock = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if lock == "rrq:lock:unique:" then lock = "" end
local fire = tonumber(ARGV[1])
local last = tonumber(redis.call("HGET", state, "last_fire") or "")
if last and last >= fire then
  -- A re-sent call (its reply was lost and the client sent it again) finds its own job as
  -- last_job and answers as the first run did.
  if last == fire and redis.call("HGET", state, "last_job") == ARGV[3] then return {1, ARGV[3]} end
  return {0, tostring(last)}
end
if redis.call("EXISTS", job) == 1 then return {-1, ""} end
redis.call("HSET", state, "last_fire", ARGV[1])
if lock ~= "" then
  if redis.call("TTL", lock) > 0 then
    redis.call("HINCRBY", state, "skipped", 1)
    return {2, redis.call("GET", lock) or ""}
  end
  redis.call("SET", lock, ARGV[3], "NX", "EX", ARGV[2])
end
redis.call("HSET", job,
  "id", ARGV[3], "function_name", ARGV[4], "job_params", ARGV[5], "enqueue_time", ARGV[6],
  "status", ARGV[7], "current_retries", ARGV[8], "next_scheduled_run_time", ARGV[9],
  "max_retries", ARGV[10], "job_timeout_seconds", ARGV[11], "result_ttl_seconds", ARGV[12],
  "queue_name", ARGV[13], "result", ARGV[14], "cron_fire_time", ARGV[16])
if ARGV[15] ~= "" then redis.call("HSET", job, "job_unique_key", ARGV[15]) end
redis.call("ZADD", queue, ARGV[17], ARGV[3])
redis.call("SADD", "rrq:queues", queue)
redis.call("PUBLISH", "rrq:wake:" .. queue, ARGV[17])
redis.call("HSET", state, "last_job", ARGV[3])
redis.call("HINCRBY", state, "fired", 1)
return {1, ARGV[3]}
