-- flow-needs-unpark-n.lua: requeues the jobs parked in needs-sets (routing by capability,
-- issue 23; README "Live jobs") once a runner process offering their tags has joined. Called by
-- the worker of that process (FlowStore.unparkNeeds) with the needs-sets it now covers.
--
-- KEYS  rrq:fc:needs:<runner>:<tags> sets to unpark (each fully: the claim parks again any job
--       that still finds no capable runner, so a set never strands jobs)
-- ARGV[1]  most jobs to requeue per set (bounds one call; the caller repeats while it returns
--          that many)
-- ARGV[2]  the calling worker's id
-- ARGV[3]  until when (epoch ms) the requeued jobs are routed to that worker
--
-- Each requeued job gets fc_route = ARGV[2] and fc_route_until = ARGV[3]: until then the claim
-- of another worker that lacks the tags leaves it in its queue instead of parking it again, so
-- the worker that has the tags gets it (without this, in a cluster mixing workers with and
-- without the tags, a job could be parked again and wait for the next round).
-- Returns the number of jobs requeued. Queues that got jobs back are woken (rrq:wake:<queue>);
-- sets left empty leave the index rrq:fc:waiting.
-- @include flow-park.lua
local woken, waits, done = {}, {}, 0
local n = tonumber(ARGV[1]) or 1000
local function route(id)
  redis.call("HSET", "rrq:job:" .. id, "fc_route", ARGV[2], "fc_route_until", ARGV[3])
end
for _, wait in ipairs(KEYS) do
  waits[#waits + 1] = wait
  done = done + flow_unpark_first(wait, n, woken, route)
end
flow_finish(woken, waits)
return done
