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
-- Memory pressure: with Redis at maxmemory (noeviction), a script's first write is refused when
-- that command may grow memory (SET, ZADD), but later writes of a script that has written are
-- not (Redis does not stop a script half-way). PEXPIRE is never refused. So the locks this worker
-- still holds are renewed first, with PEXPIRE, and the lease index and lapsed locks (SET) after:
-- a full Redis then still keeps the leases of running jobs alive, instead of letting them lapse
-- and the jobs run twice.
--
-- Returns the fences of attempts whose job is no longer theirs (reclaimed, finished elsewhere
-- or deleted); those attempts should be abandoned: every write of theirs is fenced anyway. Their
-- active-set entry is removed unless the hash still names this worker (a newer attempt).
local leases, active = KEYS[1], KEYS[2]
local worker, now, lease_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lost, renewed, lapsed = {}, {}, {}
for i = 4, #ARGV, 2 do
  local id, fence = ARGV[i], ARGV[i + 1]
  local lock_key = "rrq:lock:job:" .. id
  local fields = redis.call("HMGET", "rrq:job:" .. id, "worker_id", "lease_fence", "status")
  local owner = redis.call("GET", lock_key)
  if fields[1] == worker and fields[2] == fence and fields[3] == "ACTIVE" and owner == worker then
    redis.call("PEXPIRE", lock_key, lease_ms)
    renewed[#renewed + 1] = id
  elseif fields[1] == worker and fields[2] == fence and fields[3] == "ACTIVE" and not owner then
    lapsed[#lapsed + 1] = id
  else
    lost[#lost + 1] = fence
    -- Keep the active entry if this worker holds the job again under a newer fence.
    if fields[1] ~= worker then redis.call("ZREM", active, id) end
  end
end
for _, id in ipairs(lapsed) do
  redis.call("SET", "rrq:lock:job:" .. id, worker, "PX", lease_ms)
  renewed[#renewed + 1] = id
end
for _, id in ipairs(renewed) do
  redis.call("ZADD", leases, now + lease_ms, id)
end
return lost
