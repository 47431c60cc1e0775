-- A counter field (current_retries, runs, recovery_count) as the orchestrator reads it
-- (src/store/job.ts): a finite number truncated toward zero and clamped to 0..4294967294 (so
-- current_retries + 1 is a valid wire attempt), else 0. HINCRBY fails on "many" or "1.5" in a
-- planted or foreign hash (the script errors half-way, the write is retried forever and the job
-- stays ACTIVE), so counters are read with this and written with HSET.
local function int_or_zero(value)
  local n = tonumber(value)
  if not n or n ~= n or n <= 0 then return 0 end
  if n > 4294967294 then return 4294967294 end
  return math.floor(n)
end
