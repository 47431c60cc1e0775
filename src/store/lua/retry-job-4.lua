-- retry-job-4.lua: schedule another attempt (RRQ retry.lua + next_scheduled_run_time + cleanup).
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  queue            the job's queue key
-- KEYS[3]  active set       rrq:active:jobs:<worker_id>
-- KEYS[4]  job lock         rrq:lock:job:<id>
-- ARGV[1]  job_id
-- ARGV[2]  worker_id
-- ARGV[3]  retry score (epoch ms; may be fractional)
-- ARGV[4]  last_error
-- ARGV[5]  next_scheduled_run_time (RFC 3339, +00:00)
--
-- Same ownership rule as complete-success-4.lua. Writes: HINCRBY current_retries; HSET
-- status=RETRYING, last_error, next_scheduled_run_time; ZADD queue; ZREM active; DEL our lock;
-- PUBLISH the score on the queue's wake channel.
--
-- Returns the new current_retries, 0 when not ours (nothing written), -1 when the hash is gone.
local job, queue, active, lock = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, worker = ARGV[1], ARGV[2]
local owner = redis.call("GET", lock)
if owner and owner ~= worker then return 0 end
if redis.call("EXISTS", job) == 0 then
  redis.call("ZREM", active, id)
  if owner then redis.call("DEL", lock) end
  return -1
end
if not owner then
  local fields = redis.call("HMGET", job, "worker_id", "status")
  if fields[1] ~= worker or fields[2] ~= "ACTIVE" then return 0 end
end
local retries = redis.call("HINCRBY", job, "current_retries", 1)
redis.call("HSET", job, "status", "RETRYING", "last_error", ARGV[4], "next_scheduled_run_time", ARGV[5])
redis.call("ZADD", queue, ARGV[3], id)
redis.call("ZREM", active, id)
if owner then redis.call("DEL", lock) end
redis.call("PUBLISH", "rrq:wake:" .. queue, ARGV[3])
return retries
