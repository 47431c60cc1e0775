-- complete-success-4.lua: record a successful attempt and release the job
-- (RRQ save_job_result + unique-lock release + cleanup_running, in one atomic step).
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  events stream    rrq:events:job:<id>
-- KEYS[3]  active set       rrq:active:jobs:<worker_id>
-- KEYS[4]  job lock         rrq:lock:job:<id>
-- ARGV[1]  job_id
-- ARGV[2]  worker_id
-- ARGV[3]  result JSON ("null" when the runner gave none)
-- ARGV[4]  completion_time (RFC 3339, +00:00)
-- ARGV[5]  default result TTL seconds (used when the hash has no valid result_ttl_seconds)
--
-- Ownership (fencing): the write happens only while this worker still holds the job: the lock
-- is ours, or the lock expired and the hash still says ACTIVE with our worker_id (nobody
-- reclaimed it). Otherwise nothing is written.
--
-- Writes: HSET result, completion_time, status=COMPLETED; XADD event=completed job_id status;
-- TTL on hash and stream: EXPIRE when > 0, PERSIST when 0, untouched when negative; DEL the
-- unique lock named by job_unique_key; ZREM from the active set; DEL our lock.
--
-- Returns 1 written, 0 not ours (nothing written), -1 job hash gone (active entry removed).
local job, events, active, lock = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
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
redis.call("HSET", job, "result", ARGV[3], "completion_time", ARGV[4], "status", "COMPLETED")
redis.call("XADD", events, "*", "event", "completed", "job_id", id, "status", "COMPLETED")
local ttl = tonumber(redis.call("HGET", job, "result_ttl_seconds") or "") or tonumber(ARGV[5])
if ttl > 0 then
  redis.call("EXPIRE", job, math.floor(ttl))
  redis.call("EXPIRE", events, math.floor(ttl))
elseif ttl == 0 then
  redis.call("PERSIST", job)
  redis.call("PERSIST", events)
end
local unique = redis.call("HGET", job, "job_unique_key")
if unique then redis.call("DEL", "rrq:lock:unique:" .. unique) end
redis.call("ZREM", active, id)
if owner then redis.call("DEL", lock) end
return 1
