-- dlq-take-3.lua: take a batch of jobs out of a DLQ list, either back into a queue ("requeue",
-- `rrq dlq requeue`) or for good ("purge", `rrq dlq purge`, `rrq job delete` of a FAILED job).
-- One batch per call, so a long requeue never blocks Redis and an interrupted one leaves every
-- job either fully moved or untouched.
--
-- KEYS[1]  DLQ list         rrq:dlq:<name>
-- KEYS[2]  DLQ summary      rrq:stats:dlq:<name> (rrqkit; see src/api/dlq-summary.ts)
-- KEYS[3]  target queue     rrq:queue:<name> ("" or "rrq:queue:" when purging); for
--          "requeue-own", the queue of jobs whose hash names none
-- ARGV[1]  "requeue" (every job to KEYS[3]), "requeue-own" (each job back to the queue its
--          queue_name field names, prefixed when bare) or "purge"
-- ARGV[2]  now, epoch ms (the requeued jobs' score)
-- ARGV[3]  now as RFC 3339 (+00:00)
-- ARGV[4]  "1" keeps current_retries and recovery_count on requeue; "0" resets them to 0
-- ARGV[5]  "pop": take the ARGV[6] newest entries (LPOP, head first, as RRQ's order);
--          "index": ARGV[6..] are pairs job_id, index counted from the tail (-1 = oldest). The
--          entry is replaced in place by the tombstone "__rrqkit_removed__" when LINDEX still
--          shows the id there (tail indexes survive LPUSHes); otherwise one occurrence is
--          LREMoved, and an id that is no longer in the list is skipped. Tombstones keep each
--          removal O(1) instead of O(list); dlq-compact-2.lua removes them in one pass later.
--
-- Also reads and writes each job's hash and events stream, its unique lock (purge), the
-- rrq:queues registry and the target queue's wake channel.
--
-- For each entry taken: the summary loses it (len -1; when the hash exists also jobs -1,
-- retries, q:, f:, e: as move-to-dlq-6.lua counted them; fields reaching 0 are deleted).
--   requeue, job hash present and FAILED: ZADD target (requeue-own: the job's queue) at now; HSET status=PENDING,
--     queue_name=target, next_scheduled_run_time=now, dlq_requeued_at=now, and unless ARGV[4]
--     is "1" current_retries=0, recovery_count=0 and HDEL snoozes (a fresh snooze budget);
--     HDEL expires_at (rrqkit: a requeue is an operator's "run it now"; the retry_for budget
--     restarts at dlq_requeued_at too); PERSIST hash and events stream (drops the
--     7-day DLQ expiry). RRQ 0.11 keeps both the attempt count and the expiry.
--   requeue, hash present but not FAILED: the stale entry is dropped, the job left alone.
--   purge, hash present: DEL hash and events stream, and the unique lock if this job holds it.
--   hash missing (expired after 7 days): the stale entry is dropped.
--
-- Returns {done, missing, skipped, tombstoned, queue_1, count_1, queue_2, count_2, ...}: jobs
-- requeued or purged, entries whose hash was gone, entries dropped or skipped without touching a
-- job, tombstones written, then each queue jobs were requeued to with how many.
local dlq, summary, target = KEYS[1], KEYS[2], KEYS[3]
local action, now_ms, now = ARGV[1], ARGV[2], ARGV[3]
local own_queue = action == "requeue-own"
if own_queue then action = "requeue" end
local TOMBSTONE = "__rrqkit_removed__"
local done, missing, skipped, tombstoned = 0, 0, 0, 0
local targets, target_order = {}, {} -- queue key -> jobs requeued there, in first-use order

-- Where a requeued job goes: KEYS[3], or with requeue-own its hash's queue_name (RRQ writes it
-- prefixed; a bare name from other writers gets the prefix, as queueKey() does).
local function destination(queue_name)
  if not own_queue or not queue_name or queue_name == "" then return target end
  if string.sub(queue_name, 1, 10) == "rrq:queue:" then return queue_name end
  return "rrq:queue:" .. queue_name
end

local function decrement(field, by)
  if by == 0 then return false end -- Lua would send -0, which HINCRBY rejects
  if redis.call("HINCRBY", summary, field, -by) <= 0 then
    redis.call("HDEL", summary, field)
    return true
  end
  return false
end

local function uncount(f)
  if redis.call("EXISTS", summary) == 0 then return end
  decrement("jobs", 1)
  decrement("retries", tonumber(f[4]) or 0)
  decrement("q:" .. ((f[1] and f[1] ~= "") and f[1] or "Unknown"), 1)
  decrement("f:" .. ((f[2] and f[2] ~= "") and f[2] or "Unknown"), 1)
  local err = f[3] or ""
  if #err > 100 then err = string.sub(err, 1, 97) .. "..." end
  if redis.call("HEXISTS", summary, "e:" .. err) == 1 then
    if decrement("e:" .. err, 1) then decrement("errors", 1) end
  else
    decrement("e:(other errors)", 1)
  end
end

local function take(id)
  local job = "rrq:job:" .. id
  local f = redis.call("HMGET", job, "queue_name", "function_name", "last_error", "current_retries",
    "status", "job_unique_key")
  if redis.call("EXISTS", summary) == 1 then redis.call("HINCRBY", summary, "len", -1) end
  if not f[5] then
    missing = missing + 1
    return
  end
  uncount(f)
  local events = "rrq:events:job:" .. id
  if action == "purge" then
    if f[6] then
      local lock = "rrq:lock:unique:" .. f[6]
      if redis.call("GET", lock) == id then redis.call("DEL", lock) end
    end
    redis.call("DEL", job, events)
    done = done + 1
  elseif f[5] == "FAILED" then
    local queue = destination(f[1])
    redis.call("ZADD", queue, now_ms, id)
    redis.call("HSET", job, "status", "PENDING", "queue_name", queue, "next_scheduled_run_time", now,
      "dlq_requeued_at", now)
    if not targets[queue] then
      targets[queue] = 0
      table.insert(target_order, queue)
    end
    targets[queue] = targets[queue] + 1
    if ARGV[4] ~= "1" then
      redis.call("HSET", job, "current_retries", "0", "recovery_count", "0")
      redis.call("HDEL", job, "snoozes")
    end
    redis.call("HDEL", job, "expires_at")
    redis.call("PERSIST", job)
    redis.call("PERSIST", events)
    done = done + 1
  else
    skipped = skipped + 1
  end
end

if ARGV[5] == "pop" then
  local ids = redis.call("LPOP", dlq, tonumber(ARGV[6]))
  for _, id in ipairs(ids or {}) do
    if id == TOMBSTONE then
      if redis.call("EXISTS", summary) == 1 then redis.call("HINCRBY", summary, "tombstones", -1) end
    else
      take(id)
    end
  end
else
  for i = 6, #ARGV, 2 do
    local id, index = ARGV[i], tonumber(ARGV[i + 1])
    if redis.call("LINDEX", dlq, index) == id then
      redis.call("LSET", dlq, index, TOMBSTONE)
      if redis.call("EXISTS", summary) == 1 then redis.call("HINCRBY", summary, "tombstones", 1) end
      tombstoned = tombstoned + 1
      take(id)
    elseif redis.call("LREM", dlq, 1, id) == 1 then
      take(id)
    else
      skipped = skipped + 1
    end
  end
end
local reply = {done, missing, skipped, tombstoned}
for _, queue in ipairs(target_order) do
  redis.call("SADD", "rrq:queues", queue)
  redis.call("PUBLISH", "rrq:wake:" .. queue, now_ms)
  table.insert(reply, queue)
  table.insert(reply, targets[queue])
end
return reply
