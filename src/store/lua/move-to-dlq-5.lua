-- move-to-dlq-5.lua: fail a job for good (RRQ move_job_to_dlq, with the attempt increment and
-- cleanup that RRQ runs as separate commands).
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  events stream    rrq:events:job:<id>
-- KEYS[3]  DLQ list         rrq:dlq:<name>
-- KEYS[4]  active set       rrq:active:jobs:<worker_id>
-- KEYS[5]  job lock         rrq:lock:job:<id>
-- ARGV[1]  job_id
-- ARGV[2]  worker_id ("" = no ownership check, for quarantining unparsable claimed jobs)
-- ARGV[3]  last_error
-- ARGV[4]  completion_time (RFC 3339, +00:00)
-- ARGV[5]  "1" to increment current_retries first (a spent attempt), "0" not to
--
-- Same ownership rule as complete-success-4.lua. Writes: HINCRBY current_retries (optional);
-- HSET status=FAILED, last_error, completion_time; XADD event=failed job_id status; LPUSH the
-- DLQ; EXPIRE 604800 (7 days) on hash and stream; DEL the unique lock named by
-- job_unique_key; ZREM active; DEL our lock.
--
-- Returns 1 written, 0 not ours (nothing written), -1 job hash gone.
local job, events, dlq, active, lock = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, worker = ARGV[1], ARGV[2]
local owner = redis.call("GET", lock)
if worker ~= "" then
  if owner and owner ~= worker then return 0 end
end
if redis.call("EXISTS", job) == 0 then
  redis.call("ZREM", active, id)
  if owner == worker then redis.call("DEL", lock) end
  return -1
end
if worker ~= "" and not owner then
  local fields = redis.call("HMGET", job, "worker_id", "status")
  if fields[1] ~= worker or fields[2] ~= "ACTIVE" then return 0 end
end
if ARGV[5] == "1" then redis.call("HINCRBY", job, "current_retries", 1) end
redis.call("HSET", job, "status", "FAILED", "last_error", ARGV[3], "completion_time", ARGV[4])
redis.call("XADD", events, "*", "event", "failed", "job_id", id, "status", "FAILED")
redis.call("LPUSH", dlq, id)
redis.call("EXPIRE", job, 604800)
redis.call("EXPIRE", events, 604800)
local unique = redis.call("HGET", job, "job_unique_key")
if unique then redis.call("DEL", "rrq:lock:unique:" .. unique) end
redis.call("ZREM", active, id)
if owner and (worker == "" or owner == worker) then redis.call("DEL", lock) end
return 1
