-- claim-ready-4.lua: atomically claim up to max_claims ready jobs from one queue, give each a
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
-- ARGV[7]  claim token, unique per call ("" or absent: none; rrqkit)
--
-- Re-sent calls (rrqkit): ioredis re-sends a command whose reply a dropped connection lost,
-- so this script may run twice for one call. With a token, a call that claimed something
-- stores [id, fence, ...] under rrq:claim:<token> (PX 60 s: one extra write per call, ids and
-- fences only), and a second run with that token claims nothing new: it returns those of the
-- jobs this worker still holds under the same fence, each with its current hash, so the reply
-- the worker finally reads names the jobs it holds (a lost claim reply stranded them ACTIVE
-- until their lease expired, and each stranding counted as a recovery).
--
-- For each of up to 4 * max_claims ready ids, oldest score first, until max_claims are locked:
--   - no job hash (the key is missing, or is not a hash): the queue entry is stale and is
--     removed (a key of another type is left untouched; it is no job, and claiming it would
--     fail the whole call half-way, after earlier jobs of the batch were claimed);
--   - lock taken by anyone: skipped;
--   - else SET lock NX PX lease: the job is claimed.
-- Then, for the claimed jobs together: one ZREM from the queue (with the stale entries), one
-- INCRBY rrq:fence giving each job its own fence in claim order, one ZADD each to the active set
-- and the lease index; per job, HSET status=ACTIVE, start_time, worker_id, lease_fence. (The
-- ids come from the queue in this same atomic call, so each ZREM removes its member; RRQ's
-- per-job "ZREM, else drop the lock" branch cannot happen here.)
-- The job's status is not checked (RRQ claims whatever is in the queue).
--
-- Bookkeeping (rrqkit, additive; read by `rrq job trace` and the data API):
--   - runs = k, this claim's number (read with lib/int-or-zero.lua, not HINCRBY, which fails on
--     a non-integer value) (every claim counts, also ones later released);
--     for k <= 100, HSET run_<k>_started_at = start_time and run_<k>_worker = worker_id;
--   - SADD rrq:queues <queue> once per call that claimed something (the queue registry).
--
-- Encoding (rrqkit): before the ZADDs, an active set or lease index that will hold more than 32
-- members and is not yet a skiplist gets a placeholder member longer than
-- zset-max-listpack-value, which makes Redis convert it, and the placeholder is removed before
-- the script returns (no command of another client can see it; keyspace notifications do report
-- its zadd and zrem). A listpack ZSET scans and rewrites itself
-- on every ZADD and ZREM; with 64-128 jobs in flight these two sets were about a fifth of the
-- Redis instructions per job (bench/redis-instructions.ts). Redis never converts a skiplist
-- back while the key exists; a key that empties is deleted and converted again when it regrows.
--
-- Returns {claimed, next_score}: claimed is a JSON array (cjson) [id1, hash1, id2, hash2, ...]
-- where each hash is the job's HGETALL field/value list read before the claim followed by the
-- claim's own field/value writes, so that building it pair by pair (a later pair replacing an
-- earlier one) gives the hash as stored after the claim ("[]" when nothing was claimed);
-- next_score is the score of the queue's first remaining entry (or false when the queue is
-- empty), for the wake-up timer.
local queue, active, leases = KEYS[1], KEYS[2], KEYS[3]
if redis.call("EXISTS", KEYS[4]) == 1 then
  local head = redis.call("ZRANGE", queue, 0, 0, "WITHSCORES")
  return {"[]", head[2] or false, 0, 1}
end
local worker, now, max_claims = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lease_ms = tonumber(ARGV[4])
-- @include int-or-zero.lua
-- One variadic command per 1,000 arguments (Lua's unpack is limited to a few thousand values).
local function call_chunked(command, key, args)
  for i = 1, #args, 1000 do
    redis.call(command, key, unpack(args, i, math.min(i + 999, #args)))
  end
end
-- Longer than any sane zset-max-listpack-value (default 64); with a larger setting the sets
-- stay listpacks (and each claim adds and removes the placeholder in vain).
local PLACEHOLDER = "rrqkit:encoding-placeholder:" .. string.rep("-", 200)
local function call_zadd_as_skiplist(key, pairs)
  local placeholder = false
  if #pairs / 2 + redis.call("ZCARD", key) > 32 then
    -- false for a missing key; an error table for an ACL user denied OBJECT, whose sets then
    -- stay listpacks (slower, the same data) instead of failing the claim.
    local encoding = redis.pcall("OBJECT", "ENCODING", key)
    placeholder = encoding == false or (type(encoding) == "string" and encoding ~= "skiplist")
  end
  if placeholder then redis.call("ZADD", key, 0, PLACEHOLDER) end
  call_chunked("ZADD", key, pairs)
  if placeholder then redis.call("ZREM", key, PLACEHOLDER) end
end
-- @include int-string.lua
local lease_until = int_string(now + lease_ms)
-- The value of `field` in an HGETALL list, or nil.
local function field_of(hash, field)
  for i = 1, #hash, 2 do
    if hash[i] == field then return hash[i + 1] end
  end
  return nil
end
local memo = (ARGV[7] or "") ~= "" and ("rrq:claim:" .. ARGV[7]) or nil
local prior = memo and redis.call("GET", memo)
if prior then
  local claimed, pairs_ = {}, cjson.decode(prior)
  for i = 1, #pairs_, 2 do
    local id, fence = pairs_[i], pairs_[i + 1]
    local hash = redis.pcall("HGETALL", "rrq:job:" .. id)
    if not hash.err and field_of(hash, "worker_id") == worker
        and field_of(hash, "lease_fence") == fence and field_of(hash, "status") == "ACTIVE" then
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = hash
    end
  end
  local head = redis.call("ZRANGE", queue, 0, 0, "WITHSCORES")
  return {#claimed > 0 and cjson.encode(claimed) or "[]", head[2] or false, 0, 0, ""}
end
local ids = redis.call("ZRANGEBYSCORE", queue, "-inf", now, "LIMIT", 0, max_claims * 4)
local locked, hashes, removed = {}, {}, {}
for _, id in ipairs(ids) do
  if #locked >= max_claims then break end
  -- One read answers what TYPE and HGET runs answered before and is the hash returned: an
  -- empty list is a missing key (Redis deletes an empty hash), an error a key of another type.
  -- (A job locked by another worker is read in vain; that is rare, and cheaper than a TYPE
  -- for every job.)
  local hash = redis.pcall("HGETALL", "rrq:job:" .. id)
  if hash.err or #hash == 0 then
    removed[#removed + 1] = id
  elseif redis.call("SET", "rrq:lock:job:" .. id, worker, "NX", "PX", lease_ms) then
    locked[#locked + 1] = id
    hashes[#locked] = hash
    removed[#removed + 1] = id
  end
end
call_chunked("ZREM", queue, removed)
local claimed, count = {}, #locked
if count > 0 then
  local first_fence = redis.call("INCRBY", "rrq:fence", count) - count
  local active_pairs, lease_pairs, memo_pairs = {}, {}, {}
  for i, id in ipairs(locked) do
    -- Unique per job, so formatted directly (int_string caches values a batch shares).
    local fence = string.format("%d", first_fence + i)
    local hash = hashes[i]
    local run = int_or_zero(field_of(hash, "runs")) + 1
    local k = int_string(run)
    -- The claim's writes, appended to the list read before them: the client builds the hash
    -- from the pairs in order, so a later pair replaces an earlier one of the same field, and
    -- the hash it gets is the one HGETALL would return now.
    local writes
    if run >= 1 and run <= 100 then
      writes = { "status", "ACTIVE", "start_time", ARGV[5], "worker_id", worker,
        "lease_fence", fence, "runs", k, "run_" .. k .. "_started_at", ARGV[5],
        "run_" .. k .. "_worker", worker }
    else
      writes = { "status", "ACTIVE", "start_time", ARGV[5], "worker_id", worker,
        "lease_fence", fence, "runs", k }
    end
    redis.call("HSET", "rrq:job:" .. id, unpack(writes))
    for j = 1, #writes do hash[#hash + 1] = writes[j] end
    active_pairs[#active_pairs + 1] = ARGV[6]
    active_pairs[#active_pairs + 1] = id
    lease_pairs[#lease_pairs + 1] = lease_until
    lease_pairs[#lease_pairs + 1] = id
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = hash
    memo_pairs[#memo_pairs + 1] = id
    memo_pairs[#memo_pairs + 1] = fence
  end
  if memo then redis.call("SET", memo, cjson.encode(memo_pairs), "PX", 60000) end
  call_zadd_as_skiplist(active, active_pairs)
  call_zadd_as_skiplist(leases, lease_pairs)
  redis.call("SADD", "rrq:queues", queue)
end
local head = redis.call("ZRANGE", queue, 0, 0, "WITHSCORES")
-- One JSON string instead of a nested reply: the client parses it with one JSON.parse where
-- ioredis built a Buffer and then a string for each of the 40-odd elements per job (about a
-- tenth less orchestrator CPU per job), and cjson's encoding costs Redis slightly less than
-- converting the nested table to reply elements.
return {count > 0 and cjson.encode(claimed) or "[]", head[2] or false, 0, 0, ""}
