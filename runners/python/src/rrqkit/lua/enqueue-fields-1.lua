-- enqueue-fields-1.lua: add rrqkit's optional job fields (retry_policy, expires_at, and the flow
-- control fields concurrency_key, concurrency_limit, start_rate, limit_name, ordering_key) to
-- the job an enqueue script of the same MULTI ... EXEC just wrote (rrqkit, additive; README
-- "Job control", "Flow control"). Shared by the TypeScript, Python and Rust producers.
--
-- Why a second script: the enqueue scripts (enqueue-3.lua and its variants) write exactly the
-- fields RRQ's producer writes and are shared verbatim; the new options are written only when
-- given, by this script, queued right after the enqueue script in one MULTI ... EXEC, so no
-- orchestrator can claim the job between the two (a transaction runs without interleaving).
--
-- KEYS[1]  the job hash rrq:job:<job_id>, or (debounced enqueue) the debounce key, whose value
--          names the job the debounced enqueue created or updated
-- ARGV[1]  "job" (KEYS[1] is the job hash) or "debounce" (KEYS[1] is the debounce key)
-- ARGV[2]  function_name, ARGV[3] job_params, ARGV[4] queue_name: as the enqueue call wrote them
-- ARGV[5], ARGV[6], ...  field, value pairs to write
--
-- The pairs are written only when the job exists, is PENDING and has this call's
-- function_name, job_params and queue_name: the job the enqueue just wrote (or a re-sent
-- call's). An idempotent hit (another job), a duplicate job id, a dropped rate-limited call and
-- a job already claimed write nothing.
--
-- Sessions: when the pairs include ordering_key, the job also joins rrq:fc:order:<ordering_key>
-- with the next value of rrq:fc:seq (ZADD NX: a re-sent call or a debounce update keeps its
-- place), so a session's order is its enqueue order. A debounce update that moves the job to
-- another session leaves the old one. These keys are not in KEYS, as the claim scripts' lock
-- keys are not: rrqkit runs on one Redis (no cluster slots).
--
-- Returns 1 written, 0 nothing written.
local key = KEYS[1]
if ARGV[1] == "debounce" then
  local id = redis.call("GET", key)
  if not id then return 0 end
  key = "rrq:job:" .. id
end
local f = redis.call("HMGET", key, "status", "function_name", "job_params", "queue_name", "id",
  "ordering_key")
if f[1] ~= "PENDING" or f[2] ~= ARGV[2] or f[3] ~= ARGV[3] or f[4] ~= ARGV[4] then return 0 end
local set, okey = {}, nil
for i = 5, #ARGV, 2 do
  set[#set + 1] = ARGV[i]
  set[#set + 1] = ARGV[i + 1]
  if ARGV[i] == "ordering_key" then okey = ARGV[i + 1] end
end
if #set == 0 then return 0 end
redis.call("HSET", key, unpack(set))
if okey and f[5] then
  if f[6] and f[6] ~= okey then redis.call("ZREM", "rrq:fc:order:" .. f[6], f[5]) end
  local order = "rrq:fc:order:" .. okey
  if not redis.call("ZSCORE", order, f[5]) then
    redis.call("ZADD", order, "NX", redis.call("INCR", "rrq:fc:seq"), f[5])
  end
end
return 1
