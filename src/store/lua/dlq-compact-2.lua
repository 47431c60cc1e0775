-- dlq-compact-2.lua: remove the tombstones dlq-take-3.lua left in a DLQ list (one O(list) pass,
-- run once at the end of a requeue or purge, or by the next DLQ command after an interrupted one).
--
-- KEYS[1]  DLQ list         rrq:dlq:<name>
-- KEYS[2]  DLQ summary      rrq:stats:dlq:<name> (rrqkit)
--
-- Writes: LREM 0 "__rrqkit_removed__"; the summary's tombstones field drops by the number removed
-- (deleted at 0).
--
-- Returns the number of tombstones removed.
local removed = redis.call("LREM", KEYS[1], 0, "__rrqkit_removed__")
if removed > 0 and redis.call("EXISTS", KEYS[2]) == 1 then
  if redis.call("HINCRBY", KEYS[2], "tombstones", -removed) <= 0 then
    redis.call("HDEL", KEYS[2], "tombstones")
  end
end
return removed
