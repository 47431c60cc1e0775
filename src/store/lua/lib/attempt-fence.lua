-- lib/attempt-fence.lua: the ownership rules every fenced write of one attempt shares
-- (retry, snooze, success, release, DLQ). An attempt is named by its worker_id and its claim's
-- lease_fence; `owner` is the job lock's value as read at the script's start.

-- The job hash is gone (deleted, expired): drops what this attempt left in the worker's active
-- set, the lease index and the lock (only a lock of ours). True when gone.
local function attempt_job_gone(job, active, leases, lock, id, worker, owner)
  if redis.call("EXISTS", job) == 1 then return false end
  redis.call("ZREM", active, id)
  redis.call("ZREM", leases, id)
  if owner == worker then redis.call("DEL", lock) end
  return true
end

-- True when this attempt still holds the job: the hash (fields = HMGET worker_id, lease_fence,
-- status, ...) has our worker_id and fence and status ACTIVE, and the lock is ours or free (a
-- lapsed lease nobody took). Otherwise our active-set entry is dropped unless the hash still
-- names this worker (it then belongs to a newer attempt of ours), and false is returned.
local function attempt_holds(fields, active, id, worker, fence, owner)
  if fields[1] == worker and fields[2] == fence and fields[3] == "ACTIVE"
      and (not owner or owner == worker) then
    return true
  end
  if fields[1] ~= worker then redis.call("ZREM", active, id) end
  return false
end
