-- live-hash-1.lua: writes live fields (progress, output_dropped_bytes) into a job hash that
-- still exists and still belongs to the writing attempt, and announces them (rrqkit, issue 23).
-- A plain HSET would recreate a deleted job as a hash of a few fields, and a late write of a
-- lost attempt would overwrite the progress of the attempt that holds the job now.
--
-- KEYS[1]  job hash           rrq:job:<id>
-- ARGV[1]  lease fence of the writing attempt ("" : not checked)
-- ARGV[2]  channel to PUBLISH on ("" : none)
-- ARGV[3]  message to PUBLISH
-- ARGV[4]  field to HINCRBY ("" : none)
-- ARGV[5]  its increment
-- ARGV[6..] field/value pairs to HSET
-- Returns 1 when written, 0 when the job is gone or held by another attempt.
local job = KEYS[1]
if redis.call("EXISTS", job) == 0 then return 0 end
if ARGV[1] ~= "" and redis.call("HGET", job, "lease_fence") ~= ARGV[1] then return 0 end
if #ARGV >= 7 then redis.call("HSET", job, unpack(ARGV, 6, #ARGV)) end
if ARGV[4] ~= "" then redis.call("HINCRBY", job, ARGV[4], ARGV[5]) end
if ARGV[2] ~= "" then redis.call("PUBLISH", ARGV[2], ARGV[3]) end
return 1
