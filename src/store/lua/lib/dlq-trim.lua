-- lib/dlq-trim.lua: take entries off the tail (the oldest end: the DLQ is LPUSHed) of a DLQ list
-- for good, keeping the DLQ summary right (inlined where a script says `-- @include
-- dlq-trim.lua`; src/store/scripts.ts). Used by move-to-dlq-6.lua (the dlq_max_jobs cap) and
-- dlq-trim-age-2.lua (dlq_max_age_seconds).
--
-- dlq_trim_tail(dlq, summary, keep): RPOPs one entry and accounts for it exactly as a purge by
-- dlq-take-3.lua does (see src/api/dlq-summary.ts): a tombstone lowers `tombstones`; any other
-- entry lowers `len` and, when its job hash exists, `jobs`, `retries`, `q:`, `f:`, `e:` as
-- move-to-dlq-6.lua counted them (fields reaching 0 are deleted); `trimmed` +1 counts the jobs
-- removed by caps over time (summary only; a rebuild of the summary starts it again). A job
-- hash still FAILED is deleted with its events stream and the unique lock it holds; a hash in
-- any other state belongs to a job that left the DLQ another way (a stale entry): only the
-- entry goes, as it does for the id `keep` (the job just LPUSHed: an older duplicate entry of
-- it must not delete its hash). Nothing is counted when the summary does not exist (as
-- dlq-take-3.lua does).
-- Returns the id popped (nil when the list is empty).
--
-- dlq_trim_to(dlq, summary, max, keep): trims the tail until LLEN <= max (tombstones count, so
-- the list's memory is bounded); returns the entries removed.
local DLQ_TOMBSTONE = "__rrqkit_removed__"

local function dlq_decrement(summary, field, by)
  if by == 0 then return false end -- Lua would send -0, which HINCRBY rejects
  if redis.call("HINCRBY", summary, field, -by) <= 0 then
    redis.call("HDEL", summary, field)
    return true
  end
  return false
end

local function dlq_uncount(summary, f)
  dlq_decrement(summary, "jobs", 1)
  dlq_decrement(summary, "retries", tonumber(f[4]) or 0)
  dlq_decrement(summary, "q:" .. ((f[1] and f[1] ~= "") and f[1] or "Unknown"), 1)
  dlq_decrement(summary, "f:" .. ((f[2] and f[2] ~= "") and f[2] or "Unknown"), 1)
  local err = f[3] or ""
  if #err > 100 then err = string.sub(err, 1, 97) .. "..." end
  if redis.call("HEXISTS", summary, "e:" .. err) == 1 then
    if dlq_decrement(summary, "e:" .. err, 1) then dlq_decrement(summary, "errors", 1) end
  else
    dlq_decrement(summary, "e:(other errors)", 1)
  end
end

local function dlq_trim_tail(dlq, summary, keep)
  local id = redis.call("RPOP", dlq)
  if not id then return nil end
  local counted = redis.call("EXISTS", summary) == 1
  if id == DLQ_TOMBSTONE then
    if counted then dlq_decrement(summary, "tombstones", 1) end
    return id
  end
  local job = "rrq:job:" .. id
  local f = redis.call("HMGET", job, "queue_name", "function_name", "last_error", "current_retries",
    "status", "job_unique_key")
  if counted then
    redis.call("HINCRBY", summary, "len", -1)
    if f[5] then dlq_uncount(summary, f) end
    redis.call("HINCRBY", summary, "trimmed", 1)
  end
  if f[5] == "FAILED" and id ~= keep then
    if f[6] then
      local lock = "rrq:lock:unique:" .. f[6]
      if redis.call("GET", lock) == id then redis.call("DEL", lock) end
    end
    redis.call("DEL", job, "rrq:events:job:" .. id)
  end
  return id
end

local function dlq_trim_to(dlq, summary, max, keep)
  local removed = 0
  local excess = redis.call("LLEN", dlq) - max
  while excess > 0 do
    if not dlq_trim_tail(dlq, summary, keep) then break end
    removed = removed + 1
    excess = excess - 1
  end
  return removed
end
