-- queue-pause-1.lua: pause or resume a queue (rrqkit flow control, issue 22; README "Flow
-- control"). While rrq:paused:<bare queue name> exists, claim-ready-4.lua claims nothing from
-- the queue (jobs keep arriving and wait in it; RRQ's orchestrator does not know the key and
-- keeps claiming). One script so that the resume and its wake-up are one step.
--
-- KEYS[1]  rrq:paused:<bare queue name>
-- ARGV[1]  "pause" | "resume"
-- ARGV[2]  pause: the key's JSON value {"since": <epoch ms>, "reason": "..."}; a queue already
--          paused keeps its "since" and gets the new value otherwise (a new reason)
-- ARGV[3]  resume: the wake channel rrq:wake:<queue key>, PUBLISHed so idle workers claim at once
--
-- Index: rrq:fc:paused-queues (SET of bare queue names; FLOW_PAUSED_QUEUES_KEY in
-- src/store/keys.ts) lists the paused queues so that FlowStore.pausedQueues needs no keyspace
-- SCAN. Its name is fixed, and each member is derived from KEYS[1] by dropping "rrq:paused:", so
-- it is always the bare name the paused key embeds. The paused key stays the source of truth
-- (the claim checks it alone): pause SADDs (again, when already paused), resume SREMs, and a
-- reader drops members whose paused key is gone.
--
-- Returns 1 when the state changed (paused now, or resumed a paused queue), else 0.
local key, action = KEYS[1], ARGV[1]
local prefix, index = "rrq:paused:", "rrq:fc:paused-queues"
if string.sub(key, 1, #prefix) ~= prefix or #key == #prefix then
  return redis.error_reply("queue-pause: KEYS[1] must be rrq:paused:<bare queue name>, not '" .. tostring(key) .. "'")
end
local bare = string.sub(key, #prefix + 1)
if action == "pause" then
  local value = ARGV[2]
  redis.call("SADD", index, bare)
  local prior = redis.call("GET", key)
  if prior then
    local ok, old = pcall(cjson.decode, prior)
    local ok2, new = pcall(cjson.decode, value)
    if ok and ok2 and type(old) == "table" and type(new) == "table" and old.since then
      new.since = old.since
      value = cjson.encode(new)
    end
    redis.call("SET", key, value)
    return 0
  end
  redis.call("SET", key, value)
  return 1
elseif action == "resume" then
  local was = redis.call("DEL", key)
  redis.call("SREM", index, bare)
  redis.call("PUBLISH", ARGV[3], "0")
  return was
end
return redis.error_reply("queue-pause: action must be pause or resume, not '" .. tostring(action) .. "'")
