-- lib/flow-park.lua: parking and unparking of flow-controlled jobs (rrqkit, issue 22; README
-- "Flow control"), shared by claim-ready-4.lua (parks), flow-release-n.lua (with
-- lib/flow-release.lua), flow-sweep-0.lua and breaker-record-1.lua (unpark). Inlined where a
-- script says `-- @include flow-park.lua`.
--
-- A parked job keeps its status (PENDING, or RETRYING after a failed attempt) and is not in its
-- queue ZSET: it is a member of exactly one
-- wait ZSET (rrq:fc:wait:<key> for a concurrency slot, rrq:fc:owait:<okey> behind a session's
-- head, rrq:fc:bwait:<scope> behind an open breaker) scored with the score it had in its queue,
-- its hash names that set in `fc_wait`, the set is in the sweeper's index rrq:fc:waiting, and
-- rrq:fc:parked counts it under its queue key (approximate: a parked job deleted or cancelled
-- is uncounted only when an unpark meets it).
--
-- flow_park(id, job, wait, queue, score, extra, had_slot): parks job `id` (hash key `job`,
-- queue key `queue`, queue score `score`) in `wait`; `extra` is a list of more field/value
-- pairs for the same HSET (fc_key, fc_cap) or nil; had_slot: the hash has an fc_slot (a rate
-- reservation), which parking gives up (the queue entry it re-scored is what is being parked).
-- The caller removes the queue entry (the claim batches its ZREMs).
--
-- flow_unpark(id, wait, woken): takes `id` out of `wait` and, when its hash still exists, is
-- waiting to run (PENDING, or RETRYING: RRQ's status of a job queued for its next attempt) and
-- is parked there (fc_wait = wait, or no fc_wait at all: kept rather than lost), ZADDs it back
-- into its queue (hash queue_name) with its wait score, HDELs fc_wait and uncounts it. Members
-- whose hash is gone, in another state (ended, or running: taken by something that ignores
-- parking), or parked in another set are only dropped. woken[queue key] = true for each queue that got a job back. True when requeued.
--
-- flow_unpark_first(wait, n, woken, on_unpark): unparks the n lowest-scored members of `wait`
-- (members that are only dropped do not count toward n; at most n + 1000 members are looked at
-- per call), calling on_unpark(id), when given, for each one requeued. Returns the number
-- requeued.
--
-- flow_finish(woken, waits): PUBLISHes rrq:wake:<queue key> once per woken queue, and SREMs from
-- rrq:fc:waiting each wait key of the list `waits` that is now empty.
local FLOW_WAITING, FLOW_PARKED = "rrq:fc:waiting", "rrq:fc:parked"

local function flow_queue_key(name)
  if not name or name == "" then return "rrq:queue:default" end
  if string.sub(name, 1, 10) == "rrq:queue:" then return name end
  return "rrq:queue:" .. name
end

local function flow_park(id, job, wait, queue, score, extra, had_slot)
  redis.call("ZADD", wait, score, id)
  redis.call("SADD", FLOW_WAITING, wait)
  if extra then
    redis.call("HSET", job, "fc_wait", wait, unpack(extra))
  else
    redis.call("HSET", job, "fc_wait", wait)
  end
  if had_slot then redis.call("HDEL", job, "fc_slot") end
  redis.call("HINCRBY", FLOW_PARKED, queue, 1)
end

local function flow_uncount(queue)
  if redis.call("HINCRBY", FLOW_PARKED, queue, -1) <= 0 then redis.call("HDEL", FLOW_PARKED, queue) end
end

local function flow_unpark(id, wait, woken)
  local score = redis.call("ZSCORE", wait, id)
  if not score then return false end
  redis.call("ZREM", wait, id)
  local job = "rrq:job:" .. id
  local f = redis.pcall("HMGET", job, "status", "queue_name", "fc_wait")
  if f.err or not f[1] then return false end -- gone (or not a hash: no job)
  local queue = flow_queue_key(f[2])
  if f[3] and f[3] ~= wait then return false end -- parked elsewhere; that set requeues it
  if f[3] then
    redis.call("HDEL", job, "fc_wait")
    flow_uncount(queue)
  end
  if f[1] ~= "PENDING" and f[1] ~= "RETRYING" then return false end
  redis.call("ZADD", queue, score, id)
  woken[queue] = true
  return true
end

local function flow_unpark_first(wait, n, woken, on_unpark)
  local done, looked = 0, 0
  while done < n and looked < n + 1000 do
    local ids = redis.call("ZRANGE", wait, 0, math.min(n - done, 100) - 1)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      looked = looked + 1
      if flow_unpark(id, wait, woken) then
        done = done + 1
        if on_unpark then on_unpark(id) end
      end
    end
  end
  return done
end

local function flow_finish(woken, waits)
  for queue in pairs(woken) do redis.call("PUBLISH", "rrq:wake:" .. queue, "1") end
  for _, wait in ipairs(waits) do
    if redis.call("EXISTS", wait) == 0 then redis.call("SREM", FLOW_WAITING, wait) end
  end
end

-- flow_session_advance(okey, session_on_dead, woken, waits): lets session `okey` go on after its
-- head left. Heads that can never run again are dropped from rrq:fc:order:<okey> (hash gone,
-- COMPLETED, CANCELLED, or FAILED when session_on_dead is "skip"; a FAILED head blocks the
-- session with "block"); the first head that remains is unparked if it waits in
-- rrq:fc:owait:<okey>. Members of owait that left the session (not in order: a debounced
-- update moved them to another one) are unparked too, so the claim sorts them again. Adds the
-- owait key to `waits` (for flow_finish). Returns the number requeued.
local function flow_session_advance(okey, session_on_dead, woken, waits)
  local order, owait = "rrq:fc:order:" .. okey, "rrq:fc:owait:" .. okey
  waits[#waits + 1] = owait
  local done = 0
  for _ = 1, 100 do
    local head = redis.call("ZRANGE", order, 0, 0)[1]
    if not head then break end
    local status = redis.pcall("HGET", "rrq:job:" .. head, "status")
    if type(status) == "table" then status = false end -- not a hash: no job
    if not status or status == "COMPLETED" or status == "CANCELLED"
        or (status == "FAILED" and session_on_dead == "skip") then
      redis.call("ZREM", order, head)
      flow_unpark(head, owait, woken) -- only drops it (not PENDING), if it was parked here
    else
      if redis.call("ZSCORE", owait, head) and flow_unpark(head, owait, woken) then
        done = done + 1
      end
      break
    end
  end
  for _, id in ipairs(redis.call("ZRANGE", owait, 0, 9)) do
    if not redis.call("ZSCORE", order, id) and flow_unpark(id, owait, woken) then
      done = done + 1
    end
  end
  return done
end

-- flow_free_slots(key, cap): drops the holders of rrq:fc:run:<key> whose job lock is missing
-- (stale: their release never came) and returns cap minus the holders left.
local function flow_free_slots(key, cap)
  local run = "rrq:fc:run:" .. key
  local stale = {}
  for _, holder in ipairs(redis.call("ZRANGE", run, 0, -1)) do
    if redis.call("EXISTS", "rrq:lock:job:" .. holder) == 0 then stale[#stale + 1] = holder end
  end
  for i = 1, #stale, 1000 do
    redis.call("ZREM", run, unpack(stale, i, math.min(i + 999, #stale)))
  end
  return cap - redis.call("ZCARD", run)
end
