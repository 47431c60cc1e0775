-- claim-ready-2.lua: atomically claim up to max_claims ready jobs from one queue and return
-- their hashes (RRQ 0.11 claim_ready.lua semantics, plus the load in the same round trip).
--
-- KEYS[1]  queue key          rrq:queue:<name>
-- KEYS[2]  active set         rrq:active:jobs:<worker_id>
-- ARGV[1]  worker_id (the lock owner)
-- ARGV[2]  now, epoch ms (jobs scored at or before it are ready)
-- ARGV[3]  max_claims
-- ARGV[4]  default lock TTL ms ((default timeout + extension) * 1000)
-- ARGV[5]  lock extension seconds
-- ARGV[6]  start_time (RFC 3339, +00:00)
-- ARGV[7]  active-set score (claim time, epoch seconds)
--
-- For each of up to 4 * max_claims ready ids, oldest score first:
--   - no job hash: the queue entry is stale and is removed;
--   - lock taken by anyone: skipped;
--   - else SET lock NX PX (job_timeout_seconds + extension) * 1000 (default when the field is
--     missing or not positive); ZREM from the queue; if that removed it, mark the job ACTIVE
--     with start_time and worker_id, add it to the active set and claim it, else drop the lock.
-- The job's status is not checked (RRQ claims whatever is in the queue).
--
-- Returns {claimed, next_score}: claimed is a flat list {id1, hash1, id2, hash2, ...} where
-- each hash is the HGETALL field/value list after the claim; next_score is the score of the
-- queue's first remaining entry (or false when the queue is empty), for the wake-up timer.
local queue, active = KEYS[1], KEYS[2]
local worker, max_claims = ARGV[1], tonumber(ARGV[3])
local default_lock_ms, extension = tonumber(ARGV[4]), tonumber(ARGV[5])
local ids = redis.call("ZRANGEBYSCORE", queue, "-inf", ARGV[2], "LIMIT", 0, max_claims * 4)
local claimed, count = {}, 0
for _, id in ipairs(ids) do
  if count >= max_claims then break end
  local job_key = "rrq:job:" .. id
  if redis.call("EXISTS", job_key) == 0 then
    redis.call("ZREM", queue, id)
  else
    local lock_key = "rrq:lock:job:" .. id
    local timeout = tonumber(redis.call("HGET", job_key, "job_timeout_seconds") or "")
    local lock_ms = default_lock_ms
    if timeout and timeout > 0 then lock_ms = math.floor((timeout + extension) * 1000) end
    if redis.call("SET", lock_key, worker, "NX", "PX", lock_ms) then
      if redis.call("ZREM", queue, id) == 1 then
        redis.call("HSET", job_key, "status", "ACTIVE", "start_time", ARGV[6], "worker_id", worker)
        redis.call("ZADD", active, ARGV[7], id)
        claimed[#claimed + 1] = id
        claimed[#claimed + 1] = redis.call("HGETALL", job_key)
        count = count + 1
      else
        redis.call("DEL", lock_key)
      end
    end
  end
end
local head = redis.call("ZRANGE", queue, 0, 0, "WITHSCORES")
return {claimed, head[2] or false}
