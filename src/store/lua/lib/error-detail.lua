-- error-detail.lua: the error type and traceback that go with a new last_error (rrqkit, additive).
-- set_error_detail(set, job, run_prefix, error_type, traceback) appends last_error_type and
-- last_error_traceback (and <run_prefix>error_type when run_prefix is not nil) to the HSET
-- argument list `set` when given, and HDELs those of an earlier attempt when not ("" or nil),
-- so both always describe the same failure as last_error.
local function set_error_detail(set, job, run_prefix, error_type, traceback)
  local gone = {}
  if (error_type or "") ~= "" then
    set[#set + 1] = "last_error_type"; set[#set + 1] = error_type
    if run_prefix then set[#set + 1] = run_prefix .. "error_type"; set[#set + 1] = error_type end
  else
    gone[#gone + 1] = "last_error_type"
  end
  if (traceback or "") ~= "" then
    set[#set + 1] = "last_error_traceback"; set[#set + 1] = traceback
  else
    gone[#gone + 1] = "last_error_traceback"
  end
  if #gone > 0 then redis.call("HDEL", job, unpack(gone)) end
end
