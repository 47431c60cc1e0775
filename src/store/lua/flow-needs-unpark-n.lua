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
for _, wait in ipairs(KEYS) do
  waits[#waits + 1] = wait
  local count, looked = 0, 0
  while count < n and looked < n + 1000 do
    local ids = redis.call("ZRANGE", wait, 0, math.min(n - count, 100) - 1)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      looked = looked + 1
      if flow_unpark(id, wait, woken) then
        count = count + 1
        redis.call("HSET", "rrq:job:" .. id, "fc_route", ARGV[2], "fc_route_until", ARGV[3])
      end
    end
  end
  done = done + count
end
flow_finish(woken, waits)
return done
