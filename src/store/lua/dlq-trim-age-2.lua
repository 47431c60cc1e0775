-- dlq-trim-age-2.lua: the DLQ caps applied on a schedule (rrqkit): removes a DLQ list's entries
-- older than dlq_max_age_seconds, and those beyond dlq_max_jobs, from its tail (the oldest end:
-- the DLQ is LPUSHed). Run every 60 s by one orchestrator (src/retention/), in batches so a long
-- trim never blocks Redis.
--
-- KEYS[1]  DLQ list         rrq:dlq:<name>
-- KEYS[2]  DLQ summary      rrq:stats:dlq:<name> (see src/api/dlq-summary.ts)
-- ARGV[1]  max age, seconds ("0": no age trim)
-- ARGV[2]  at most this many entries removed by this call
-- ARGV[3]  dlq_max_jobs ("0" or absent: none): first trims the list to this length, for entries
--          move-to-dlq-6.lua did not cap (RRQ's orchestrator LPUSHes without a cap; a cap
--          lowered since); counted in the same batch limit
--
-- An entry is old when its job's completion_time (the time it failed; RFC 3339, any offset, or
-- no offset read as UTC) is earlier than Redis TIME minus the max age; an entry whose hash is
-- gone (expired 7 days after the failure, or deleted) or whose completion_time cannot be read
-- counts as old too, so it never holds the trim back. Tombstones at the tail are removed on the
-- way. The first young entry stops the trim: everything before it in the list is younger
-- (entries are LPUSHed as jobs fail), except for foreign writers that keep no order, which the
-- cap then reaches later.
--
-- Each removal is lib/dlq-trim.lua's: job hash and events stream deleted (status FAILED only),
-- summary decremented as a purge does, `trimmed` counted.
--
-- Returns {removed, more}: entries removed, and 1 when the batch limit stopped the call (call
-- again), 0 when the tail is young or the list empty.
-- @include dlq-trim.lua
local dlq, summary = KEYS[1], KEYS[2]
local max_age_ms = (tonumber(ARGV[1]) or 0) * 1000
local limit = tonumber(ARGV[2]) or 1000
local max_jobs = math.floor(tonumber(ARGV[3]) or 0)

-- Epoch ms of an RFC 3339 timestamp, nil when unreadable (days from civil after H. Hinnant).
local function epoch_ms(text)
  if not text then return nil end
  local y, mo, d, h, mi, s, frac, zone = string.match(text,
    "^(%d%d%d%d)-(%d%d)-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)%.?(%d*)(.*)$")
  if not y then return nil end
  local offset = 0
  if zone ~= "" and zone ~= "Z" and zone ~= "z" then
    local sign, oh, om = string.match(zone, "^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(oh) * 60 + tonumber(om)) * 60000
    if sign == "-" then offset = -offset end
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * (mo > 2 and mo - 3 or mo + 9) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  local ms = tonumber(string.sub(frac .. "000", 1, 3))
  return ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60000 + tonumber(s) * 1000 + ms - offset
end

local removed = 0
if max_jobs > 0 then
  local excess = redis.call("LLEN", dlq) - max_jobs
  while excess > 0 and removed < limit do
    dlq_trim_tail(dlq, summary, nil)
    removed = removed + 1
    excess = excess - 1
  end
  if excess > 0 then return {removed, 1} end
end
if max_age_ms <= 0 then return {removed, 0} end
local t = redis.call("TIME")
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - max_age_ms
while removed < limit do
  local id = redis.call("LINDEX", dlq, -1)
  if not id then return {removed, 0} end
  if id ~= DLQ_TOMBSTONE then
    local failed_at = epoch_ms(redis.call("HGET", "rrq:job:" .. id, "completion_time"))
    if failed_at and failed_at >= cutoff then return {removed, 0} end
  end
  dlq_trim_tail(dlq, summary, nil)
  removed = removed + 1
end
return {removed, 1}
