-- renew-leases-2.lua: extend the leases of the jobs a worker is running (rrqkit).
--
-- KEYS[1]  lease index       rrq:leases
-- KEYS[2]  active set        rrq:active:jobs:<worker_id>
-- ARGV[1]  worker_id
-- ARGV[2]  now, epoch ms
-- ARGV[3]  lease ms
-- ARGV[4..] pairs: job_id, lease_fence
--
-- A job is still this worker's when its hash has our worker_id and lease_fence and status
-- ACTIVE, and its lock is ours or free. Then the lock is set (again) to lease ms and the lease
-- index entry moves to now + lease. A free lock is taken back: the lease lapsed (Redis was
-- away, or the worker stalled) but nobody reclaimed the job, so the attempt may go on.
--
-- Returns the fences of attempts whose job is no longer theirs (reclaimed, finished elsewhere
-- or deleted); those attempts should be abandoned: every write of theirs is fenced anyway. Their
-- active-set entry is removed unless the hash still names this worker (a newer attempt).
local leases, active = KEYS[1], KEYS[2]
local worker, now, lease_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lost = {}
for i = 4, #ARGV, 2 do
  local id, fence = ARGV[i], ARGV[i + 1]
  local job_key, lock_key = "rrq:job:" .. id, "rrq:lock:job:" .. id
  local fields = redis.call("HMGET", job_key, "worker_id", "lease_fence", "status")
  local owner = redis.call("GET", lock_key)
  if fields[1] == worker and fields[2] == fence and fields[3] == "ACTIVE"
      and (owner == worker or not owner) then
    redis.call("SET", lock_key, worker, "PX", lease_ms)
    redis.call("ZADD", leases, now + lease_ms, id)
  else
    lost[#lost + 1] = fence
    -- Keep the active entry if this worker holds the job again under a newer fence.
    if fields[1] ~= worker then redis.call("ZREM", active, id) end
  end
end
return lost
