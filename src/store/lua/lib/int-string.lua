-- lib/int-string.lua: shared by the per-batch scripts (inlined where a script says
-- `-- @include int-string.lua`; src/store/scripts.ts).
-- int_string(n): the decimal string of integer n, formatted once per distinct value per call.
-- A Lua number in a concatenation or a command argument is formatted with printf (%.14g in
-- Lua, %.17g in Redis), about a twelfth of the claim and batched-success instructions per job;
-- the jobs of a batch mostly share their numbers (run number, TTL), so each is formatted once.
local int_strings = {}
local function int_string(n)
  local s = int_strings[n]
  if not s then
    s = string.format("%d", n)
    int_strings[n] = s
  end
  return s
end
