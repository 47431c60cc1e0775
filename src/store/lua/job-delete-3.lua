-- job-delete-3.lua: delete a job and every index entry that names it (`rrq job delete`, data
-- API jobs.delete). rrqkit only; RRQ has no equivalent.
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  events stream    rrq:events:job:<id>
-- KEYS[3]  lease index      rrq:leases
-- ARGV[1]  job_id
-- ARGV[2]  "1" to delete an ACTIVE job too (its running attempt then finds the hash gone and
--          writes nothing), "0" to refuse
--
-- Also reads and writes the queue named by queue_name, the holder's active set (worker_id),
-- the job lock, the unique lock named by job_unique_key (only when this job holds it), and
-- rrqkit's bookkeeping. A job in a DLQ list is NOT removed from the list here (LREM is O(list));
-- callers remove FAILED jobs through dlq-take-3.lua, which keeps the DLQ summary right.
--
-- Writes: ZREM queue, ZREM active set and lease index, DEL lock (ACTIVE only), DEL unique lock,
-- DEL hash and stream.
--
-- Returns {code, status}:
--   { 1, status}  deleted
--   { 0, status}  ACTIVE and ARGV[2] is not "1" (nothing written)
--   {-1, ""}      no such job
local job, events, leases = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
if redis.call("EXISTS", job) == 0 then return {-1, ""} end
local f = redis.call("HMGET", job, "status", "queue_name", "worker_id", "job_unique_key")
local status = f[1] or ""
if status == "ACTIVE" and ARGV[2] ~= "1" then return {0, status} end
if f[2] then redis.call("ZREM", f[2], id) end
if f[3] then redis.call("ZREM", "rrq:active:jobs:" .. f[3], id) end
redis.call("ZREM", leases, id)
if status == "ACTIVE" then redis.call("DEL", "rrq:lock:job:" .. id) end
if f[4] then
  local lock = "rrq:lock:unique:" .. f[4]
  if redis.call("GET", lock) == id then redis.call("DEL", lock) end
end
redis.call("DEL", job, events)
return {1, status}
