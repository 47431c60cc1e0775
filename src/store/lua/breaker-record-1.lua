-- breaker-record-1.lua: record one attempt's outcome on a circuit breaker (rrqkit flow control,
-- issue 22; README "Flow control"). Called by the orchestrator after each attempt of a job whose
-- scope has a breaker configured (src/flow/flow-hooks.ts); the claim script holds jobs while a
-- breaker is open and lets one probe through after the cool-down (half_open).
--
-- KEYS[1]  rrq:breaker:<scope> (HASH: state, failures, opened_at, retry_at, probe, trips,
--          last_error); scope = function:<name> or runner:<name>
-- ARGV[1]  outcome: "success" | "failure"
-- ARGV[2]  job_id of the attempt
-- ARGV[3]  failures threshold (consecutive failures that open a closed breaker)
-- ARGV[4]  cool-down ms (how long an opened breaker holds jobs before a probe)
-- ARGV[5]  now, epoch ms
-- ARGV[6]  error summary of a failure (kept to 200 bytes in last_error)
--
-- success: failures 0 and state closed; a breaker that was not closed unparks up to 1000 jobs of
--   rrq:fc:bwait:<scope> (the sweeper does the rest) and returns "closed". A success on a
--   missing breaker writes nothing (most attempts of a healthy scope cost one HMGET).
-- failure: failures + 1 and last_error; a half_open breaker, or one whose probe is this job,
--   opens again (state open, opened_at = now, retry_at = now + cool-down, trips + 1, probe
--   removed) and returns "opened"; so does a closed one reaching the threshold. An open
--   breaker stays as it is (a late failure of a job started before it opened).
-- Returns "opened", "closed" or "" (no change of state).
--
-- Index: every write here also SADDs the scope to rrq:fc:breakers (SET of scopes;
-- FLOW_BREAKERS_KEY in src/store/keys.ts), so FlowStore.breakers lists them without a keyspace
-- SCAN. This is the only script that creates a breaker hash (the claim and the sweeper only
-- change the state of one that exists) and nothing deletes one; a reader skips members whose
-- hash is gone (deleted by hand) and SREMs them.
-- @include flow-park.lua
local key, outcome, id = KEYS[1], ARGV[1], ARGV[2]
local threshold, cooldown, now = tonumber(ARGV[3]) or 1, tonumber(ARGV[4]) or 0, tonumber(ARGV[5])
if outcome ~= "success" and outcome ~= "failure" then
  return redis.error_reply("breaker-record: outcome must be success or failure, not '" .. tostring(outcome) .. "'")
end
local scope = string.sub(key, #"rrq:breaker:" + 1)
local index = "rrq:fc:breakers"
local b = redis.call("HMGET", key, "state", "failures", "probe")
local state = b[1] or "closed"
if outcome == "success" then
  if state == "closed" then
    if b[2] and b[2] ~= "0" then
      redis.call("HSET", key, "failures", "0")
      redis.call("SADD", index, scope)
    end
    return ""
  end
  redis.call("HSET", key, "state", "closed", "failures", "0")
  redis.call("SADD", index, scope)
  redis.call("HDEL", key, "probe", "retry_at")
  local woken, wait = {}, "rrq:fc:bwait:" .. scope
  flow_unpark_first(wait, 1000, woken)
  flow_finish(woken, { wait })
  return "closed"
end
local failures = (tonumber(b[2]) or 0) + 1
local err = ARGV[6] or ""
if #err > 200 then err = string.sub(err, 1, 197) .. "..." end
redis.call("HSET", key, "failures", string.format("%d", failures), "last_error", err)
redis.call("SADD", index, scope)
if state == "half_open" or (b[3] == id and state ~= "closed")
    or (state == "closed" and failures >= threshold) then
  redis.call("HSET", key, "state", "open", "opened_at", string.format("%d", now),
    "retry_at", string.format("%d", now + cooldown))
  redis.call("HINCRBY", key, "trips", 1)
  redis.call("HDEL", key, "probe")
  return "opened"
end
return ""
