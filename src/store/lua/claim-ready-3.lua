-- claim-ready-3.lua: atomically claim up to max_claims ready jobs from one queue, give each a
-- lease, and return their hashes (RRQ 0.11 claim_ready.lua semantics, plus leases and fencing,
-- plus the load in the same round trip).
--
-- KEYS[1]  queue key          rrq:queue:<name>
-- KEYS[2]  active set         rrq:active:jobs:<worker_id>
-- KEYS[3]  lease index        rrq:leases (ZSET job_id -> lease expiry, epoch ms; rrqkit)
-- ARGV[1]  worker_id (the lock owner)
-- ARGV[2]  now, epoch ms (jobs scored at or before it are ready)
-- ARGV[3]  max_claims
-- ARGV[4]  lease ms (lock TTL; renewed while the job runs)
-- ARGV[5]  start_time (RFC 3339, +00:00)
-- ARGV[6]  active-set score (claim time, epoch seconds)
--
-- For each of up to 4 * max_claims ready ids, oldest score first:
--   - no job hash (the key is missing, or is not a hash): the queue entry is stale and is
--     removed (a key of another type is left untouched; it is no job, and claiming it would
--     fail the whole call half-way, after earlier jobs of the batch were claimed);
--   - lock taken by anyone: skipped;
--   - else SET lock NX PX lease; ZREM from the queue; if that removed it: a new fence from
--     INCR rrq:fence; HSET status=ACTIVE, start_time, worker_id, lease_fence; ZADD the active set
--     and the lease index; the job is claimed. Otherwise the lock is dropped.
-- The job's status is not checked (RRQ claims whatever is in the queue).
--
-- Bookkeeping (rrqkit, additive; read by `rrq job trace` and the data API):
--   - runs = k, this claim's number (read with lib/int-or-zero.lua, not HINCRBY, which fails on
--     a non-integer value) (every claim counts, also ones later released);
--     for k <= 100, HSET run_<k>_started_at = start_time and run_<k>_worker = worker_id;
--   - SADD rrq:queues <queue> once per call that claimed something (the queue registry).
--
-- Returns {claimed, next_score}: claimed is a flat list {id1, hash1, id2, hash2, ...} where
-- each hash is the HGETALL field/value list after the claim; next_score is the score of the
-- queue's first remaining entry (or false when the queue is empty), for the wake-up timer.
local queue, active, leases = KEYS[1], KEYS[2], KEYS[3]
local worker, now, max_claims = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lease_ms = tonumber(ARGV[4])
-- @include int-or-zero.lua
local ids = redis.call("ZRANGEBYSCORE", queue, "-inf", now, "LIMIT", 0, max_claims * 4)
local claimed, count = {}, 0
for _, id in ipairs(ids) do
  if count >= max_claims then break end
  local job_key = "rrq:job:" .. id
  if redis.call("TYPE", job_key).ok ~= "hash" then
    redis.call("ZREM", queue, id)
  else
    local lock_key = "rrq:lock:job:" .. id
    if redis.call("SET", lock_key, worker, "NX", "PX", lease_ms) then
      if redis.call("ZREM", queue, id) == 1 then
        local fence = redis.call("INCR", "rrq:fence")
        local run = int_or_zero(redis.call("HGET", job_key, "runs")) + 1
        if run >= 1 and run <= 100 then
          redis.call("HSET", job_key, "status", "ACTIVE", "start_time", ARGV[5], "worker_id", worker,
            "lease_fence", fence, "runs", run, "run_" .. run .. "_started_at", ARGV[5],
            "run_" .. run .. "_worker", worker)
        else
          redis.call("HSET", job_key, "status", "ACTIVE", "start_time", ARGV[5], "worker_id", worker,
            "lease_fence", fence, "runs", run)
        end
        redis.call("ZADD", active, ARGV[6], id)
        redis.call("ZADD", leases, now + lease_ms, id)
        claimed[#claimed + 1] = id
        claimed[#claimed + 1] = redis.call("HGETALL", job_key)
        count = count + 1
      else
        redis.call("DEL", lock_key)
      end
    end
  end
end
if count > 0 then redis.call("SADD", "rrq:queues", queue) end
local head = redis.call("ZRANGE", queue, 0, 0, "WITHSCORES")
return {claimed, head[2] or false}
