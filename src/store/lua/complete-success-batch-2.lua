-- complete-success-batch-2.lua: complete-success-5.lua for many attempts of one worker in one
-- call (the orchestrator batches the successes that arrive in one event-loop turn: one script
-- call instead of one per job is the largest per-job cost in Redis and in the client).
--
-- KEYS[1]  active set       rrq:active:jobs:<worker_id>
-- KEYS[2]  lease index      rrq:leases
-- ARGV[1]  worker_id
-- ARGV[2]  completion_time (RFC 3339, +00:00), shared by the batch
-- ARGV[3]  default result TTL seconds (used when a hash has no valid result_ttl_seconds)
-- ARGV[4 + 3i], ARGV[5 + 3i], ARGV[6 + 3i]  job_id, lease_fence, result JSON of entry i (0-based)
--
-- Per entry, the checks and writes of complete-success-5.lua (fencing, HSET result,
-- completion_time, status, run_<k>_ended_at/outcome, XADD to the job's events stream, TTLs,
-- unique-lock DEL, ZREM active and leases, lock DEL), in entry order, except rrq:recent: the
-- batch's written jobs share one entry there, `js` (a JSON array of their ids) and
-- `s` = COMPLETED, instead of one `j`/`q`/`f`/`s` entry each (one XADD per job was about a
-- tenth of this script's Redis time; `rrq job list` reads both forms). The job's
-- own keys (rrq:job:<id>, rrq:events:job:<id>, rrq:lock:job:<id>) are derived here from the id,
-- as the bookkeeping keys already are (one Redis, no cluster slots). Counters are summed per
-- key and written once: HINCRBY completed in rrq:stats:queue:<bare queue> and in
-- rrq:stats:day:<UTC date> (EXPIRE 400 days when created). Lease-index and active-set ZREMs
-- are one call each at the end.
--
-- Re-sent calls (rrqkit): an entry whose hash is COMPLETED with its worker_id and lease_fence
-- was written by a first run of this same call whose reply was lost (ioredis re-sends it after
-- a reconnect; see complete-success-5.lua): code 2, already written, nothing changed.
--
-- Returns one code per entry: 1 written, 2 already written by this attempt, 0 not ours (nothing written), -1 job hash gone, -2
-- the job key is not a hash (nothing written; the caller runs complete-success-5.lua for it).
local active, leases = KEYS[1], KEYS[2]
local worker, completed_at, default_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
-- `done`: ids whose active-set and lease entries go (written or gone); at most a few hundred
-- entries per call (the caller's cap), well within unpack's limit.
local codes, done, per_queue, written_ids = {}, {}, {}, {}
local written = 0

-- @include int-string.lua

for i = 4, #ARGV, 3 do
  local id, fence, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local job, events, lock = "rrq:job:" .. id, "rrq:events:job:" .. id, "rrq:lock:job:" .. id
  local owner = redis.call("GET", lock)
  local fields = redis.pcall("HMGET", job, "worker_id", "lease_fence", "status", "runs",
    "queue_name", "result_ttl_seconds", "job_unique_key")
  if fields.err then
    -- Not a hash: left to complete-success-5.lua (the caller sends it alone), so one bad key
    -- never fails the rest of the batch.
    codes[#codes + 1] = -2
  elseif not fields[1] and not fields[3] and redis.call("EXISTS", job) == 0 then
    done[#done + 1] = id
    if owner == worker then redis.call("DEL", lock) end
    codes[#codes + 1] = -1
  elseif fields[1] == worker and fields[2] == fence and fields[3] == "COMPLETED" then
    codes[#codes + 1] = 2
  elseif fields[1] ~= worker or fields[2] ~= fence or fields[3] ~= "ACTIVE" or (owner and owner ~= worker) then
    if fields[1] ~= worker then redis.call("ZREM", active, id) end
    codes[#codes + 1] = 0
  else
    local run = tonumber(fields[4]) or 0
    if run >= 1 and run <= 100 then
      local k = int_string(math.floor(run))
      redis.call("HSET", job, "result", result, "completion_time", completed_at, "status", "COMPLETED",
        "run_" .. k .. "_ended_at", completed_at, "run_" .. k .. "_outcome", "completed")
    else
      redis.call("HSET", job, "result", result, "completion_time", completed_at, "status", "COMPLETED")
    end
    local queue_name = fields[5] or ""
    if queue_name ~= "" then per_queue[queue_name] = (per_queue[queue_name] or 0) + 1 end
    written = written + 1
    written_ids[written] = id
    redis.call("XADD", events, "*", "event", "completed", "job_id", id, "status", "COMPLETED")
    local ttl = tonumber(fields[6] or "") or default_ttl
    -- EXPIRE refuses 1e300 ("not an integer or out of range"), failing the batch half-way.
    if ttl > 4294967295 then ttl = 4294967295 end
    if ttl > 0 then
      local seconds = int_string(math.floor(ttl))
      redis.call("EXPIRE", job, seconds)
      redis.call("EXPIRE", events, seconds)
    elseif ttl == 0 then
      redis.call("PERSIST", job)
      redis.call("PERSIST", events)
    end
    if fields[7] then redis.call("DEL", "rrq:lock:unique:" .. fields[7]) end
    done[#done + 1] = id
    if owner then redis.call("DEL", lock) end
    codes[#codes + 1] = 1
  end
end

for queue_name, count in pairs(per_queue) do
  local bare = string.gsub(queue_name, "^rrq:queue:", "")
  redis.call("HINCRBY", "rrq:stats:queue:" .. bare, "completed", count)
end
if written > 0 then
  redis.call("XADD", "rrq:recent", "MAXLEN", "~", 10000, "*", "js", cjson.encode(written_ids),
    "s", "COMPLETED")
  local day = "rrq:stats:day:" .. string.sub(completed_at, 1, 10)
  if redis.call("HINCRBY", day, "completed", written) == written then
    redis.call("EXPIRE", day, 34560000)
  end
end
if #done > 0 then
  redis.call("ZREM", active, unpack(done))
  redis.call("ZREM", leases, unpack(done))
end
return codes
