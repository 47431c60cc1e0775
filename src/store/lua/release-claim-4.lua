-- release-claim-4.lua: give a claimed job back to its queue without counting an attempt
-- (RRQ release_claimed_job and the shutdown requeue).
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  queue            the job's queue key
-- KEYS[3]  active set       rrq:active:jobs:<worker_id>
-- KEYS[4]  job lock         rrq:lock:job:<id>
-- ARGV[1]  job_id
-- ARGV[2]  worker_id
-- ARGV[3]  score (epoch ms, normally now)
-- ARGV[4]  last_error to record ("" = leave it)
--
-- Only when the lock is not held by someone else and the hash's worker_id is ours: an ACTIVE
-- job becomes PENDING (last_error set when given; start_time and worker_id removed); an
-- ACTIVE, PENDING or RETRYING job not already in the queue is added at the score (terminal
-- jobs are never re-queued); the active entry and our lock are removed; the queue is woken.
--
-- Returns 1 released, 0 not ours (nothing written), -1 job hash gone (active entry removed).
local job, queue, active, lock = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, worker = ARGV[1], ARGV[2]
local owner = redis.call("GET", lock)
if owner and owner ~= worker then return 0 end
if redis.call("EXISTS", job) == 0 then
  redis.call("ZREM", active, id)
  if owner then redis.call("DEL", lock) end
  return -1
end
local fields = redis.call("HMGET", job, "worker_id", "status")
if fields[1] and fields[1] ~= worker then return 0 end
local status = fields[2]
if status == "ACTIVE" then
  redis.call("HSET", job, "status", "PENDING")
  if ARGV[4] ~= "" then redis.call("HSET", job, "last_error", ARGV[4]) end
  redis.call("HDEL", job, "start_time", "worker_id")
end
if (status == "ACTIVE" or status == "PENDING" or status == "RETRYING")
    and not redis.call("ZSCORE", queue, id) then
  redis.call("ZADD", queue, ARGV[3], id)
  redis.call("PUBLISH", "rrq:wake:" .. queue, ARGV[3])
end
redis.call("ZREM", active, id)
if owner then redis.call("DEL", lock) end
return 1
