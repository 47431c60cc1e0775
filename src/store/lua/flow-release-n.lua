-- flow-release-n.lua: flow-controlled jobs' attempts ended; free what each held (rrqkit flow
-- control, issue 22; README "Flow control"). Called by the orchestrator after each attempt of a
-- job whose hash has fc_key or ordering_key (src/flow/flow-hooks.ts), after the attempt's own
-- write (success, retry, DLQ, release), so a job unparked here finds the slot already free.
-- The releases one orchestrator asks for in one event-loop turn come in one call
-- (src/store/flow-release-batch.ts): one script call per job was the largest part of what a
-- capped job cost the orchestrator beyond a keyless one (a command object and a socket write
-- each).
-- "-n": one key per entry; callers pass the key count as EVAL's numkeys.
--
-- KEYS[i]              job hash of entry i     rrq:job:<job_id>
-- ARGV[1]              session_on_dead: "skip" (a dead job's session goes on) or "block" (it
--                      waits for the dead job, e.g. its requeue from the DLQ)
-- ARGV[2]              now, epoch ms (the caller's clock; no decision depends on it today)
-- ARGV[1 + 2i]         job_id of entry i (1-based)
-- ARGV[2 + 2i]         mode of entry i: "requeued" (it will run again: retry, snooze, release,
--                      recovery), "terminal" (completed, cancelled, expired) or "dead" (failed
--                      for good: DLQ)
--
-- Each entry, in order, is lib/flow-release.lua's flow_release (slot freed and parked jobs
-- unparked up to the free slots; the session moved on; a job held again by a newer attempt
-- left alone; idempotent), so a batch does what the same releases one call each would do.
-- Only the wake-ups and the index upkeep are per call: one PUBLISH rrq:wake:<queue key> per
-- queue that got a job back, and the wait keys looked at that are now empty leave
-- rrq:fc:waiting. An entry whose job key is not a hash releases nothing (0); one that hits an
-- error (a flow key of another type) gets an error reply of its own, after what it wrote before
-- the error (as a call of its own would have), and the other entries go on. Modes are checked
-- first: a bad one fails the call before anything is written.
--
-- Returns one element per entry, in order: the number of jobs its release put back into their
-- queues, or an error reply.
-- @include flow-park.lua
-- @include flow-release.lua
local session_on_dead = ARGV[1]
local n = #KEYS
if #ARGV ~= 2 + 2 * n then
  return redis.error_reply("flow-release: " .. n .. " keys need " .. (2 + 2 * n) .. " arguments, got " .. #ARGV)
end
for i = 1, n do
  local mode = ARGV[2 + 2 * i]
  if mode ~= "requeued" and mode ~= "terminal" and mode ~= "dead" then
    return redis.error_reply("flow-release: mode must be requeued, terminal or dead, not '"
      .. tostring(mode) .. "' (job " .. tostring(ARGV[1 + 2 * i]) .. ")")
  end
end
local woken, waits, counts = {}, {}, {}
for i = 1, n do
  local id = ARGV[1 + 2 * i]
  local ok, done = pcall(flow_release, KEYS[i], id, ARGV[2 + 2 * i], session_on_dead, woken, waits)
  if ok then
    counts[i] = done
  else
    -- e.g. WRONGTYPE from a key of this job's that is not what flow control wrote: this entry
    -- fails alone, and the wake-ups of the entries before and after it still go out.
    local message = type(done) == "table" and done.err or tostring(done)
    counts[i] = { err = "flow-release of job " .. tostring(id) .. ": " .. tostring(message) }
  end
end
-- Each wait key once, for flow_finish's EXISTS.
local seen, unique = {}, {}
for _, wait in ipairs(waits) do
  if not seen[wait] then
    seen[wait] = true
    unique[#unique + 1] = wait
  end
end
flow_finish(woken, unique)
return counts
