-- flow-sweep-0.lua: one step of the flow-control sweeper over rrq:fc:waiting, the index of the
-- wait sets that hold parked jobs (rrqkit flow control, issue 22; README "Flow control"). Run by
-- one orchestrator at a time (src/flow/flow-sweeper.ts), every flow_sweep_interval_seconds, in
-- SSCAN chunks; it repairs what a missing release or breaker record left behind, so a parked
-- job waits at most about one interval longer than it must. The releases and the claim do the
-- same work on the hot path; this is the safety net.
--
-- No KEYS: the wait keys come from the index (rrqkit runs on one Redis, no cluster slots).
-- ARGV[1]  now, epoch ms
-- ARGV[2]  SSCAN cursor ("0" starts a pass)
-- ARGV[3]  SSCAN COUNT
-- ARGV[4]  session_on_dead: "skip" | "block" (as flow-release-n.lua)
--
-- Per wait key of the chunk:
--   rrq:fc:wait:<key>   holders of rrq:fc:run:<key> whose job lock is missing are dropped
--                       (stale), then as many jobs are unparked as slots are free (the cap is
--                       the first parked job's fc_cap, else 1);
--   rrq:fc:owait:<okey> heads of rrq:fc:order:<okey> that are missing, COMPLETED, CANCELLED,
--                       or FAILED with "skip" are dropped, and the head is unparked if it waits
--                       here (members no longer in the session are unparked too);
--   rrq:fc:bwait:<scope> breaker rrq:breaker:<scope> closed (or missing): up to 1000 unparked;
--                       open and now >= retry_at: one unparked (the probe candidate; the claim
--                       makes it the probe); half_open whose probe is not ACTIVE with a lock
--                       (it was requeued, or its worker died): open again with retry_at = now,
--                       so the next step lets another probe through.
-- Unparking skips and drops members whose hash is gone or not PENDING (lib/flow-park.lua).
-- Wait keys found empty are removed from the index.
--
-- Returns {next_cursor, unparked}.
-- @include flow-park.lua
local now, cursor, count, session_on_dead = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local scan = redis.call("SSCAN", FLOW_WAITING, cursor, "COUNT", count)
local woken, waits, done = {}, {}, 0
local function after(key, prefix)
  if string.sub(key, 1, #prefix) == prefix then return string.sub(key, #prefix + 1) end
  return nil
end
for _, wait in ipairs(scan[2]) do
  waits[#waits + 1] = wait
  local key, okey, scope = after(wait, "rrq:fc:wait:"), after(wait, "rrq:fc:owait:"),
    after(wait, "rrq:fc:bwait:")
  if key then
    local first = redis.call("ZRANGE", wait, 0, 0)[1]
    if first then
      local cap = tonumber(redis.call("HGET", "rrq:job:" .. first, "fc_cap")) or 1
      local free = flow_free_slots(key, math.max(1, math.floor(cap)))
      if free > 0 then done = done + flow_unpark_first(wait, free, woken) end
    end
  elseif okey then
    done = done + flow_session_advance(okey, session_on_dead, woken, waits)
  elseif scope then
    local b = redis.call("HMGET", "rrq:breaker:" .. scope, "state", "retry_at", "probe")
    local state, retry_at = b[1] or "closed", tonumber(b[2]) or 0
    if state == "closed" then
      done = done + flow_unpark_first(wait, 1000, woken)
    elseif state == "open" then
      if now >= retry_at then done = done + flow_unpark_first(wait, 1, woken) end
    elseif state == "half_open" then
      local probe = b[3]
      local running = probe
        and redis.call("HGET", "rrq:job:" .. probe, "status") == "ACTIVE"
        and redis.call("EXISTS", "rrq:lock:job:" .. probe) == 1
      if not running then
        redis.call("HSET", "rrq:breaker:" .. scope, "state", "open", "retry_at",
          string.format("%d", now))
        redis.call("HDEL", "rrq:breaker:" .. scope, "probe")
      end
    end
  end
end
flow_finish(woken, waits)
return {scan[1], done}
