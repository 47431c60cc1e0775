-- move-to-dlq-6.lua: fail a job for good (RRQ move_job_to_dlq, with the attempt increment and
-- cleanup that RRQ runs as separate commands).
--
-- KEYS[1]  job hash         rrq:job:<id>
-- KEYS[2]  events stream    rrq:events:job:<id>
-- KEYS[3]  DLQ list         rrq:dlq:<name>
-- KEYS[4]  active set       rrq:active:jobs:<worker_id>
-- KEYS[5]  job lock         rrq:lock:job:<id>
-- KEYS[6]  lease index      rrq:leases
-- ARGV[1]  job_id
-- ARGV[2]  worker_id
-- ARGV[3]  lease_fence of this attempt
-- ARGV[4]  last_error
-- ARGV[5]  completion_time (RFC 3339, +00:00)
-- ARGV[6]  "1" to increment current_retries first (a spent attempt), "0" not to
-- ARGV[7]  last_error_type ("" or absent: none)
-- ARGV[8]  last_error_traceback, already capped at 8 KiB ("" or absent: none)
-- ARGV[9]  mode: "dlq" ("" or absent: the same) or "expire" (rrqkit: a job whose expires_at
--          passed before it was dispatched; see "Expire mode" below)
-- ARGV[10] dlq_max_jobs: "dlq" mode trims the DLQ list to this many entries ("0" or absent: no
--          cap; see "Caps" below)
--
-- Ownership (fencing): this attempt still holds the job when the hash has our worker_id and
-- lease_fence and status ACTIVE, and the lock is ours or free (a lapsed lease nobody took).
-- Otherwise nothing is written; our active-set entry is dropped unless the hash still names
-- this worker (it then belongs to a newer attempt of ours).
--
-- Writes: current_retries + 1 (optional, see lib/int-or-zero.lua); HSET status=FAILED, last_error, completion_time;
-- XADD event=failed job_id status; LPUSH the DLQ; EXPIRE 604800 (7 days) on hash and stream;
-- DEL the unique lock named by job_unique_key; ZREM the active set and the lease index; DEL
-- the lock.
--
-- Bookkeeping (rrqkit, additive): run_<k>_ended_at, run_<k>_outcome=failed and run_<k>_error
-- (first 1000 bytes) for the run the claim numbered k (k <= 100); HINCRBY failed in
-- rrq:stats:queue:<bare queue> and rrq:stats:day:<UTC date of completion_time> (kept 400 days);
-- XADD to the rrq:recent feed (MAXLEN ~ 10000); and the DLQ summary rrq:stats:dlq:<bare DLQ>
-- (see dlq-summary in src/api/dlq-summary.ts): len +1, jobs +1, retries + current_retries,
-- q:<queue key> +1, f:<function> +1, e:<error as RRQ truncates it to 100 chars> +1 (at most 200
-- distinct errors; later ones count under "e:(other errors)", tracked by the "errors" field);
-- last_error_type, last_error_traceback and run_<k>_error_type (lib/error-detail.lua).
--
-- Deaths (rrqkit, "dlq" mode): XADD rrq:deaths MAXLEN ~ 10000 with j job id, d DLQ key, r runs,
-- f function_name, q queue_name, e last_error (first 1000 bytes), t last_error_type ("" when
-- none), c completion_time; read by the death-handler consumers (src/deaths/). Written only by
-- a real write, never by the re-sent path below, so a death is recorded once.
--
-- Caps (rrqkit, "dlq" mode, ARGV[10] > 0): after the LPUSH the list's oldest entries (the tail)
-- beyond the cap are removed by lib/dlq-trim.lua: their job hashes and events streams deleted,
-- the DLQ summary decremented as a purge does, its `trimmed` field counting them.
--
-- Expire mode (rrqkit): the same fencing, re-send safety, status FAILED, last_error and detail,
-- completion_time, run_<k>_* (outcome "expired"), events event=failed, TTL, unique lock and
-- active/lease cleanup; but the attempt is never counted (ARGV[6] is ignored), nothing is
-- LPUSHed to a DLQ (KEYS[3] is unused), no death is recorded, the DLQ summary is untouched, and
-- the stats counter is `expired` instead of `failed` (rrq:stats:queue and rrq:stats:day).
--
-- Re-sent calls (rrqkit): ioredis re-sends a call whose reply a dropped connection lost, so
-- this script may run twice for one write. The second run finds the hash FAILED with
-- this attempt's worker_id and lease_fence (the fence is unique per claim, so no other attempt
-- leaves that state) and returns 2, already written, changing nothing; before, it reported
-- "not ours" and the worker warned that another worker held a job it had just finished.
--
-- Returns 1 written, 2 already written by this attempt (nothing written), 0 not ours (nothing
-- written), -1 job hash gone.
local job, events, dlq, active, lock, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, worker, fence = ARGV[1], ARGV[2], ARGV[3]
-- @include attempt-fence.lua
local owner = redis.call("GET", lock)
if attempt_job_gone(job, active, leases, lock, id, worker, owner) then return -1 end
local fields = redis.call("HMGET", job, "worker_id", "lease_fence", "status", "runs", "queue_name",
  "function_name", "current_retries")
if fields[1] == worker and fields[2] == fence and fields[3] == "FAILED" then return 2 end
if not attempt_holds(fields, active, id, worker, fence, owner) then return 0 end
-- @include int-or-zero.lua
-- @include error-detail.lua
-- @include dlq-trim.lua
local expire = ARGV[9] == "expire"
local retries = int_or_zero(fields[7])
if ARGV[6] == "1" and not expire then
  retries = retries + 1
  redis.call("HSET", job, "current_retries", retries)
end
local run = tonumber(fields[4]) or 0
local set = {"status", "FAILED", "last_error", ARGV[4], "completion_time", ARGV[5]}
local r = nil
if run >= 1 and run <= 100 then
  r = "run_" .. run .. "_"
  for _, v in ipairs({r .. "ended_at", ARGV[5], r .. "outcome", expire and "expired" or "failed",
      r .. "error", string.sub(ARGV[4], 1, 1000)}) do
    set[#set + 1] = v
  end
end
set_error_detail(set, job, r, ARGV[7], ARGV[8])
redis.call("HSET", job, unpack(set))
redis.call("XADD", events, "*", "event", "failed", "job_id", id, "status", "FAILED")
local queue_name, fn = fields[5] or "", fields[6] or ""
local counter = expire and "expired" or "failed"
if queue_name ~= "" then
  local bare = string.gsub(queue_name, "^rrq:queue:", "")
  redis.call("HINCRBY", "rrq:stats:queue:" .. bare, counter, 1)
end
local day = "rrq:stats:day:" .. string.sub(ARGV[5], 1, 10)
if redis.call("HINCRBY", day, counter, 1) == 1 then redis.call("EXPIRE", day, 34560000) end
redis.call("XADD", "rrq:recent", "MAXLEN", "~", 10000, "*", "j", id, "q", queue_name, "f", fn,
  "s", "FAILED")
if not expire then
  redis.call("LPUSH", dlq, id)
  local summary = "rrq:stats:dlq:" .. string.gsub(dlq, "^rrq:dlq:", "")
  local err = ARGV[4]
  if #err > 100 then err = string.sub(err, 1, 97) .. "..." end
  if redis.call("HEXISTS", summary, "e:" .. err) == 0 then
    if (tonumber(redis.call("HGET", summary, "errors")) or 0) >= 200 then
      err = "(other errors)"
    else
      redis.call("HINCRBY", summary, "errors", 1)
    end
  end
  redis.call("HINCRBY", summary, "len", 1)
  redis.call("HINCRBY", summary, "jobs", 1)
  redis.call("HINCRBY", summary, "retries", retries)
  redis.call("HINCRBY", summary, "q:" .. (queue_name ~= "" and queue_name or "Unknown"), 1)
  redis.call("HINCRBY", summary, "f:" .. (fn ~= "" and fn or "Unknown"), 1)
  redis.call("HINCRBY", summary, "e:" .. err, 1)
  redis.call("XADD", "rrq:deaths", "MAXLEN", "~", 10000, "*", "j", id, "d", dlq, "r",
    fields[4] or "0", "f", fn, "q", queue_name, "e", string.sub(ARGV[4], 1, 1000), "t",
    ARGV[7] or "", "c", ARGV[5])
  local cap = tonumber(ARGV[10]) or 0
  if cap > 0 then dlq_trim_to(dlq, summary, math.floor(cap), id) end
end
redis.call("EXPIRE", job, 604800)
redis.call("EXPIRE", events, 604800)
local unique = redis.call("HGET", job, "job_unique_key")
if unique then redis.call("DEL", "rrq:lock:unique:" .. unique) end
redis.call("ZREM", active, id)
redis.call("ZREM", leases, id)
if owner then redis.call("DEL", lock) end
return 1
