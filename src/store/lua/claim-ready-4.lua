-- claim-ready-4.lua: atomically claim up to max_claims ready jobs from one queue, give each a
-- lease, and return their hashes (RRQ 0.11 claim_ready.lua semantics, plus leases and fencing,
-- plus the load in the same round trip).
--
-- KEYS[1]  queue key          rrq:queue:<name>
-- KEYS[2]  active set         rrq:active:jobs:<worker_id>
-- KEYS[3]  lease index        rrq:leases (ZSET job_id -> lease expiry, epoch ms; rrqkit)
-- KEYS[4]  paused key         rrq:paused:<bare queue name> (rrqkit flow control)
-- ARGV[1]  worker_id (the lock owner)
-- ARGV[2]  now, epoch ms (jobs scored at or before it are ready)
-- ARGV[3]  max_claims
-- ARGV[4]  lease ms (lock TTL; renewed while the job runs)
-- ARGV[5]  start_time (RFC 3339, +00:00)
-- ARGV[6]  active-set score (claim time, epoch seconds)
-- ARGV[7]  claim token, unique per call ("" or absent: none; rrqkit)
-- ARGV[8]  flow config JSON of this queue, or "" (rrqkit; src/flow/flow-config.ts):
--          {"l": {limit: {"c": cap, "r": [limit, period_ms]}}, "f": {function: {"c", "r"}},
--           "b": {"function:<fn>": 1, "runner:<name>": 1}, "qr": "<runner of unprefixed jobs>",
--           "t": {"<runner>": [["gpu", "region:eu"], ...]}} (t: issue 23, the capability tag
--          sets of the runner processes this worker has, each sorted; a JSON with only qr and t
--          routes by tags and configures no other flow control)
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
-- Flow control (rrqkit, issue 22; README "Flow control"; parking in lib/flow-park.lua):
--   - a paused queue (KEYS[4] exists) claims nothing and touches nothing; a re-sent call's memo
--     is still answered first, so a pause between the two runs cannot strand its jobs;
--   - the one pass over each job's HGETALL list that finds `runs` also picks function_name and
--     the flow fields (concurrency_key, concurrency_limit, start_rate, limit_name, ordering_key,
--     fc_slot); a job without any of them, claimed with ARGV[8] = "", takes the path above with
--     no further command (the flow config is decoded once per call, at the first job);
--   - otherwise, in this order (key, cap and rate resolved as the design says: concurrency_key,
--     else "limit:<limit_name>", else "function:<fn>" when the function has c or r; cap =
--     concurrency_limit, else the limit's c, else the function's c, else 1 when no rate; an
--     unknown limit_name counts as cap 1 and is reported):
--     a. breakers (function:<fn> and runner:<prefix before #, else qr>, each when configured in
--        "b"): one open before retry_at, or half_open with another probe: parked in
--        rrq:fc:bwait:<scope> (the first such scope); open at/after retry_at: the job becomes
--        its probe when it is claimed (state half_open, probe = id, so one job of this call at
--        most); fc_scope names the first configured scope (the function's when it has one);
--     b. session (ordering_key): joins rrq:fc:order:<okey> (INCR rrq:fc:seq) if not a member;
--        not the head: parked in rrq:fc:owait:<okey>;
--     c. cap: rrq:fc:run:<key> full (and the job not in it): holders whose lock is missing are
--        dropped (once per key per call); still full: parked in rrq:fc:wait:<key> (fc_key, fc_cap);
--     d. rate (smooth: one start per period/limit ms): a due fc_slot passes while it is less
--        than one spacing (period/limit) old (a later claim drops it as stale); else the key's
--        theoretical arrival time (rrq:fc:rate:<key>) passes when <= now and is advanced by the
--        claim; when later, the job reserves it (fc_slot = that slot, re-scored in the queue,
--        the arrival time advanced) and stays queued;
--     e. lock and claim; a capped job joins rrq:fc:run:<key> at once (later jobs of the call
--        count it) and gets fc_key, fc_cap; a breaker'd one fc_scope; fc_slot is removed.
--     Parking gives up a job's rate reservation. The rate keys are written once per call.
--   - routing by capability (issue 23; before a.): a job with `requires` (a JSON array of tags)
--     whose runner (prefix before #, else qr) has no tag set in "t" holding all of them is
--     parked in rrq:fc:needs:<runner>:<tags sorted, joined by ,> (no attempt, no lock); the
--     worker that gets a runner process with those tags unparks the set (FlowStore.unparkNeeds).
--     An unreadable requires is ignored (no runner could ever match it). A job requeued for
--     another worker that has the tags (fc_route, until fc_route_until) is left in the queue.
--
-- Returns {claimed, next_score, parked, paused, unknown_limits}: claimed is a JSON array (cjson) [id1, hash1, id2, hash2, ...]
-- where each hash is the job's HGETALL field/value list read before the claim followed by the
-- claim's own field/value writes, so that building it pair by pair (a later pair replacing an
-- earlier one) gives the hash as stored after the claim ("[]" when nothing was claimed);
-- next_score is the score of the queue's first remaining entry (or false when the queue is
-- empty), for the wake-up timer; parked the number of jobs this call parked or re-scored to a
-- rate slot (the queue is not drained even if fewer than max_claims were claimed); paused 1 when
-- KEYS[4] exists, else 0; unknown_limits a JSON array of limit_names the flow config lacks, or "".
local queue, active, leases, paused = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local worker, now, max_claims = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lease_ms = tonumber(ARGV[4])
-- @include int-or-zero.lua
-- @include flow-park.lua
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
if redis.call("EXISTS", paused) == 1 then
  local head = redis.call("ZRANGE", queue, 0, 0, "WITHSCORES")
  return {"[]", head[2] or false, 0, 1, ""}
end

-- Flow control (see the header). The fields the one pass over a job's list picks out.
local PICK = { runs = true, function_name = true, concurrency_key = true,
  concurrency_limit = true, start_rate = true, limit_name = true, ordering_key = true,
  fc_slot = true, requires = true, fc_route = true, fc_route_until = true }
local NO_FLOW = {}
local UNKNOWN_LIMIT = { c = 1 }
local flow_json = ARGV[8] or ""
-- the decoded ARGV[8] (false when ""); has_config: it configures flow control beyond routing
-- by tags (qr and t alone leave jobs without flow fields on the fast path)
local config = flow_json ~= "" and cjson.decode(flow_json) or false
local has_config = config and ((config.l and next(config.l) ~= nil)
  or (config.f and next(config.f) ~= nil) or (config.b and next(config.b) ~= nil)) or false
local parked, unknown, unknown_list = 0, {}, {}
-- Per call: run keys already swept of stale holders; breakers read (scope -> state, retry_at,
-- probe); rate keys' arrival times read or advanced, and the PX of those to write back.
local run_swept, breakers, tats, tat_ttl = {}, {}, {}, {}

-- A positive integer from a hash field or the config, else nil.
local function positive_int(value)
  local n = tonumber(value)
  if not n or n ~= n or n < 1 then return nil end
  return math.floor(n)
end
-- {limit, period_ms} from a start_rate field "<limit>/<period_ms>", else nil.
local function parse_rate(value)
  if not value then return nil end
  local limit, period = string.match(value, "^(%d+)/(%d+)$")
  limit, period = positive_int(limit), positive_int(period)
  if not limit or not period then return nil end
  return { limit, period }
end

-- Parks job `id` of this queue in `wait` and drops its queue entry with the call's removals.
local removed = {}
local function park(id, job, wait, extra, flow)
  flow_park(id, job, wait, queue, redis.call("ZSCORE", queue, id), extra, flow.fc_slot ~= nil)
  removed[#removed + 1] = id
  parked = parked + 1
end

-- The flow gate of one job: nil when it was parked or re-scored (not to be claimed), else a
-- table of what claiming it must also do (NO_FLOW: nothing).
-- Tag sets of "t" as lookup tables, per runner (built once per call).
local tag_sets = {}
local function runner_covers(runner, tags)
  local sets = tag_sets[runner]
  if sets == nil then
    sets = {}
    local listed = config and config.t and config.t[runner]
    if type(listed) == "table" then
      for _, set in ipairs(listed) do
        local lookup = {}
        for _, tag in ipairs(set) do lookup[tag] = true end
        sets[#sets + 1] = lookup
      end
    end
    tag_sets[runner] = sets
  end
  for _, lookup in ipairs(sets) do
    local all = true
    for _, tag in ipairs(tags) do
      if not lookup[tag] then all = false; break end
    end
    if all then return true end
  end
  return false
end

-- The needs-set a job with `requires` waits in when no runner process here covers its tags,
-- else nil.
local function needs_wait(fn, requires)
  local ok, tags = pcall(cjson.decode, requires)
  if not ok or type(tags) ~= "table" or #tags == 0 then return nil end
  for _, tag in ipairs(tags) do
    if type(tag) ~= "string" then return nil end
  end
  local sharp = fn and string.find(fn, "#", 1, true)
  local runner = sharp and string.sub(fn, 1, sharp - 1) or (config and config.qr) or ""
  if runner_covers(runner, tags) then return nil end
  table.sort(tags)
  return "rrq:fc:needs:" .. runner .. ":" .. table.concat(tags, ",")
end

local function flow_gate(id, job, fn, flow)
  flow = flow or NO_FLOW
  -- routing by capability: no runner process here has the tags
  if flow.requires then
    local wait = needs_wait(fn, flow.requires)
    if wait then
      -- requeued for the worker that has the tags (flow-needs-unpark-n.lua): left in the
      -- queue for it a moment, not parked again
      if flow.fc_route and flow.fc_route ~= worker
          and (tonumber(flow.fc_route_until) or 0) > now then
        return nil
      end
      park(id, job, wait, nil, flow)
      return nil
    end
  end
  local fp = config and fn and config.f and config.f[fn] or nil
  local gate = NO_FLOW
  -- a. breakers: the function's and the runner's, each when configured
  if config and config.b and fn then
    local fscope = "function:" .. fn
    local sharp = string.find(fn, "#", 1, true)
    local runner = sharp and string.sub(fn, 1, sharp - 1) or config.qr
    local rscope = runner and ("runner:" .. runner) or nil
    for _, scope in ipairs({ fscope, rscope }) do
      if config.b[scope] then
        local b = breakers[scope]
        if not b then
          local r = redis.call("HMGET", "rrq:breaker:" .. scope, "state", "retry_at", "probe")
          b = { state = r[1] or "closed", retry_at = tonumber(r[2]) or 0, probe = r[3] }
          breakers[scope] = b
        end
        if (b.state == "open" and now < b.retry_at)
            or (b.state == "half_open" and b.probe ~= id) then
          park(id, job, "rrq:fc:bwait:" .. scope, nil, flow)
          return nil
        end
        if gate == NO_FLOW then gate = { scope = scope } end
        if b.state == "open" then
          gate.probes = gate.probes or {}
          gate.probes[#gate.probes + 1] = scope
        end
      end
    end
  end
  -- b. session
  local okey = flow.ordering_key
  if okey then
    local order = "rrq:fc:order:" .. okey
    if not redis.call("ZSCORE", order, id) then
      redis.call("ZADD", order, "NX", redis.call("INCR", "rrq:fc:seq"), id)
    end
    if redis.call("ZRANGE", order, 0, 0)[1] ~= id then
      park(id, job, "rrq:fc:owait:" .. okey, nil, flow)
      return nil
    end
  end
  -- c. cap (resolution: see the header)
  local lname, lim = flow.limit_name, nil
  if lname then
    lim = config and config.l and config.l[lname]
    if not lim then
      lim = UNKNOWN_LIMIT
      if not unknown[lname] then
        unknown[lname] = true
        unknown_list[#unknown_list + 1] = lname
      end
    end
  end
  local key = flow.concurrency_key or (lname and ("limit:" .. lname))
    or (fp and (fp.c or fp.r) and ("function:" .. fn)) or nil
  if not key then
    if flow.fc_slot then
      if gate == NO_FLOW then gate = {} end
      gate.had_slot = true
    end
    return gate
  end
  local rate = parse_rate(flow.start_rate) or (lim and lim.r) or (fp and fp.r) or nil
  local cap = positive_int(flow.concurrency_limit) or (lim and positive_int(lim.c))
    or (fp and positive_int(fp.c)) or (not rate and 1) or nil
  if gate == NO_FLOW then gate = {} end
  gate.had_slot = flow.fc_slot ~= nil
  if cap then
    local run_key = "rrq:fc:run:" .. key
    local running = redis.call("ZCARD", run_key)
    if running >= cap and not redis.call("ZSCORE", run_key, id) then
      if not run_swept[run_key] then
        -- Holders whose lock is gone are stale (their release never came): free their slots.
        run_swept[run_key] = true
        local stale = {}
        for _, holder in ipairs(redis.call("ZRANGE", run_key, 0, -1)) do
          if redis.call("EXISTS", "rrq:lock:job:" .. holder) == 0 then stale[#stale + 1] = holder end
        end
        if #stale > 0 then
          call_chunked("ZREM", run_key, stale)
          running = running - #stale
        end
      end
      if running >= cap then
        park(id, job, "rrq:fc:wait:" .. key, { "fc_key", key, "fc_cap", string.format("%d", cap) },
          flow)
        return nil
      end
    end
    gate.key, gate.cap, gate.run_key = key, string.format("%d", cap), run_key
  end
  -- d. rate
  if rate then
    local slot = tonumber(flow.fc_slot)
    local interval = rate[2] / rate[1]
    -- A reservation passes only within one spacing of its slot. One claimed later is stale
    -- (a backlog held the job past it): letting every such job pass at once turned the rate
    -- into a burst when the backlog drained (chaos flow-control, seed 22010: 32 starts of a
    -- 5/s key in 0.6 s), so the job counts as a new arrival instead.
    if not (slot and slot <= now and now - slot < interval) then
      local rate_key = "rrq:fc:rate:" .. key
      local tat = tats[rate_key]
      if tat == nil then
        tat = tonumber(redis.call("GET", rate_key)) or 0
        tats[rate_key] = tat
      end
      if tat > now then
        local at = string.format("%d", math.ceil(tat))
        redis.call("HSET", job, "fc_slot", at)
        redis.call("ZADD", queue, at, id)
        tats[rate_key] = tat + interval
        tat_ttl[rate_key] = rate[2] + 60000
        parked = parked + 1
        return nil
      end
      gate.rate_key, gate.rate_next, gate.rate_ttl = rate_key, now + interval, rate[2] + 60000
    end
  end
  return gate
end

-- What claiming a gated job does at once (its hash writes come with the other claim writes).
local function flow_commit(id, gate)
  if gate.run_key then redis.call("ZADD", gate.run_key, now, id) end
  if gate.probes then
    for _, scope in ipairs(gate.probes) do
      redis.call("HSET", "rrq:breaker:" .. scope, "state", "half_open", "probe", id)
      local b = breakers[scope]
      b.state, b.probe = "half_open", id
    end
  end
  if gate.rate_key then
    tats[gate.rate_key] = gate.rate_next
    tat_ttl[gate.rate_key] = gate.rate_ttl
  end
end

local ids = redis.call("ZRANGEBYSCORE", queue, "-inf", now, "LIMIT", 0, max_claims * 4)
local locked, hashes, runs_of, gates = {}, {}, {}, {}
for _, id in ipairs(ids) do
  if #locked >= max_claims then break end
  -- One read answers what TYPE and HGET runs answered before and is the hash returned: an
  -- empty list is a missing key (Redis deletes an empty hash), an error a key of another type.
  -- (A job locked by another worker is read in vain; that is rare, and cheaper than a TYPE
  -- for every job.)
  local job = "rrq:job:" .. id
  local hash = redis.pcall("HGETALL", job)
  if hash.err or #hash == 0 then
    removed[#removed + 1] = id
  else
    -- One pass: runs, function_name and the flow fields (a table only for a job that has one).
    local runs, fn, flow
    for i = 1, #hash, 2 do
      local field = hash[i]
      if PICK[field] then
        if field == "runs" then
          runs = hash[i + 1]
        elseif field == "function_name" then
          fn = hash[i + 1]
        else
          flow = flow or {}
          flow[field] = hash[i + 1]
        end
      end
    end
    local gate = NO_FLOW
    if flow or has_config then gate = flow_gate(id, job, fn, flow) end
    if gate and redis.call("SET", "rrq:lock:job:" .. id, worker, "NX", "PX", lease_ms) then
      locked[#locked + 1] = id
      hashes[#locked] = hash
      runs_of[#locked] = runs
      removed[#removed + 1] = id
      if gate ~= NO_FLOW then
        gates[#locked] = gate
        flow_commit(id, gate)
      end
    end
  end
end
call_chunked("ZREM", queue, removed)
for rate_key, tat in pairs(tats) do
  local ttl = tat_ttl[rate_key]
  if ttl then redis.call("SET", rate_key, string.format("%.3f", tat), "PX", ttl) end
end
local claimed, count = {}, #locked
if count > 0 then
  local first_fence = redis.call("INCRBY", "rrq:fence", count) - count
  local active_pairs, lease_pairs, memo_pairs = {}, {}, {}
  for i, id in ipairs(locked) do
    -- Unique per job, so formatted directly (int_string caches values a batch shares).
    local fence = string.format("%d", first_fence + i)
    local hash = hashes[i]
    local run = int_or_zero(runs_of[i]) + 1
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
    local gate = gates[i]
    if gate then
      if gate.key then
        writes[#writes + 1] = "fc_key"; writes[#writes + 1] = gate.key
        writes[#writes + 1] = "fc_cap"; writes[#writes + 1] = gate.cap
      end
      if gate.scope then
        writes[#writes + 1] = "fc_scope"; writes[#writes + 1] = gate.scope
      end
      if gate.had_slot then
        -- The reservation is used: gone from the hash, and from the list returned.
        redis.call("HDEL", "rrq:job:" .. id, "fc_slot")
        for j = #hash - 1, 1, -2 do
          if hash[j] == "fc_slot" then
            table.remove(hash, j + 1)
            table.remove(hash, j)
          end
        end
      end
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
return {count > 0 and cjson.encode(claimed) or "[]", head[2] or false, parked, 0,
  #unknown_list > 0 and cjson.encode(unknown_list) or ""}
