-- lib/flow-release.lua: one job's flow release (rrqkit, issue 22; README "Flow control"), for
-- flow-release-n.lua. Needs lib/flow-park.lua included before it.
--
-- flow_release(job, id, mode, session_on_dead, woken, waits): job `id` (hash key `job`) ended an
-- attempt in `mode` ("requeued": it will run again (retry, snooze, release, recovery);
-- "terminal": completed, cancelled, expired; "dead": failed for good, DLQ); frees what it held.
-- - Concurrency (fc_key): the job leaves rrq:fc:run:<fc_key>, and up to fc_cap minus the
--   holders left jobs of rrq:fc:wait:<fc_key> go back to their queues (lowest score first).
--   When no slot looks free but jobs wait, holders whose lock is missing are dropped first
--   (stale: a release that never came), as the claim does.
-- - Session (ordering_key): "terminal", or "dead" with session_on_dead "skip", removes the job
--   from rrq:fc:order:<ordering_key>; the next head is unparked from rrq:fc:owait:<ordering_key>
--   (dead heads are skipped or kept as session_on_dead says). "requeued" keeps the job the
--   head: the session waits for its next attempt.
-- A job held again (status ACTIVE and its lock taken: a worker claimed it after this attempt's
-- requeue, before this release, which runs in a call of its own) is left alone: the slot and
-- the session's head now belong to that newer attempt (whose claim kept it in
-- rrq:fc:run:<key>), and removing it would let another job of the key run beside it (found by
-- chaos flow-control after a lease recovery; a retry has the same window). Its own release
-- frees them.
-- The hash may already be gone (a result TTL of 0): ordering_key and fc_key are then unknown
-- and only the sweeper repairs the keys (stale holder, missing head).
-- Idempotent: a second run frees nothing more (the job is no longer a holder or member) and
-- unparks only what free slots or a parked head still allow.
-- Queues that got a job back are set in `woken`, the wait keys looked at appended to `waits`
-- (for flow_finish, once per call). Returns the number of jobs put back into their queues.
local function flow_release(job, id, mode, session_on_dead, woken, waits)
  local f = redis.pcall("HMGET", job, "fc_key", "fc_cap", "ordering_key", "status")
  if f.err then return 0 end
  if f[4] == "ACTIVE" and redis.call("EXISTS", "rrq:lock:job:" .. id) == 1 then return 0 end
  local done = 0
  if f[1] then
    local key = f[1]
    redis.call("ZREM", "rrq:fc:run:" .. key, id)
    local wait = "rrq:fc:wait:" .. key
    if redis.call("EXISTS", wait) == 1 then
      waits[#waits + 1] = wait
      local cap = math.max(1, math.floor(tonumber(f[2]) or 1))
      local free = cap - redis.call("ZCARD", "rrq:fc:run:" .. key)
      if free <= 0 then free = flow_free_slots(key, cap) end
      if free > 0 then done = done + flow_unpark_first(wait, free, woken) end
    end
  end
  if f[3] and (mode == "terminal" or (mode == "dead" and session_on_dead == "skip")) then
    redis.call("ZREM", "rrq:fc:order:" .. f[3], id)
    done = done + flow_session_advance(f[3], session_on_dead, woken, waits)
  end
  return done
end
