-- enqueue-batch-n.lua: enqueue-3.lua for many jobs in one call, all or nothing (bulk enqueue).
-- Shared verbatim by the TypeScript, Python and Rust producers (copies are drift-checked).
-- "-n": the key count varies (three keys per job); callers pass it as EVAL's numkeys.
--
-- For job i (0-based), KEYS[3i+1..3i+3] and ARGV[16i+1..16i+16] are exactly enqueue-3.lua's
-- KEYS[1..3] and ARGV[1..16].
--
-- Why one script: Redis refuses a script's first write when it is over `maxmemory` (OOM) and
-- never stops a script that has written, so a call writes every job or none. The checks run
-- first and write nothing, so a duplicate also leaves the batch unwritten.
--
-- Returns one {code, job_id} per job, in order, with enqueue-3.lua's codes:
--   { 1, job_id}       created
--   { 0, existing_id}  idempotent hit (an existing job, or an earlier job of this batch with
--                      the same idempotency key), or the job already exists with this call's
--                      function_name, job_params and enqueue_time: the call ran before (a
--                      client re-sent it after a lost reply), so running it again is a no-op
--   {-1, ""}           a job hash with this job_id already exists
-- If any job is -1, NOTHING was written (the other entries say what would have happened).
-- After the writes, one PUBLISH per distinct queue on "rrq:wake:<queue key>" with the
-- earliest score, and one SADD of the queue keys to rrq:queues (rrqkit).
local n = #KEYS / 3
local results, batch_idem, duplicate = {}, {}, false
for i = 0, n - 1 do
  local job_key, idem_key, job_id = KEYS[3 * i + 1], KEYS[3 * i + 3], ARGV[16 * i + 1]
  if idem_key == "rrq:idempotency:" then idem_key = "" end
  local hit = nil
  if idem_key ~= "" then
    hit = batch_idem[idem_key]
    if not hit then
      local existing = redis.call("GET", idem_key)
      if existing and redis.call("EXISTS", "rrq:job:" .. existing) == 1 then hit = existing end
    end
  end
  local a = 16 * i
  if hit then
    results[i + 1] = {0, hit}
  elseif redis.call("EXISTS", job_key) == 1 then
    local held = redis.call("HMGET", job_key, "function_name", "job_params", "enqueue_time")
    if held[1] == ARGV[a + 2] and held[2] == ARGV[a + 3] and held[3] == ARGV[a + 4] then
      results[i + 1] = {0, job_id} -- this very job, written by an earlier run of this call
    else
      results[i + 1] = {-1, ""}
      duplicate = true
    end
  else
    results[i + 1] = {1, job_id}
    if idem_key ~= "" then batch_idem[idem_key] = job_id end
  end
end
if duplicate then return results end

local wake = {}
for i = 0, n - 1 do
  if results[i + 1][1] == 1 then
    local job_key, queue_key, idem_key = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
    local a = 16 * i
    if idem_key ~= "rrq:idempotency:" and idem_key ~= "" then
      redis.call("SET", idem_key, ARGV[a + 1], "EX", ARGV[a + 16])
    end
    redis.call("HSET", job_key,
      "id", ARGV[a + 1], "function_name", ARGV[a + 2], "job_params", ARGV[a + 3],
      "enqueue_time", ARGV[a + 4], "status", ARGV[a + 5], "current_retries", ARGV[a + 6],
      "next_scheduled_run_time", ARGV[a + 7], "max_retries", ARGV[a + 8],
      "job_timeout_seconds", ARGV[a + 9], "result_ttl_seconds", ARGV[a + 10],
      "queue_name", ARGV[a + 11], "result", ARGV[a + 12])
    if ARGV[a + 13] ~= "" then redis.call("HSET", job_key, "trace_context", ARGV[a + 13]) end
    if ARGV[a + 14] ~= "" then
      redis.call("HSET", job_key, "correlation_context", ARGV[a + 14])
    end
    redis.call("ZADD", queue_key, ARGV[a + 15], ARGV[a + 1])
    local earliest = wake[queue_key]
    if earliest == nil or tonumber(ARGV[a + 15]) < tonumber(earliest) then
      wake[queue_key] = ARGV[a + 15]
    end
  end
end
for queue_key, score in pairs(wake) do
  redis.call("SADD", "rrq:queues", queue_key)
  redis.call("PUBLISH", "rrq:wake:" .. queue_key, score)
end
return results
