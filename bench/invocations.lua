-- wrk script: MLflow /invocations requests whose rows are all distinct.
--
--   wrk -t1 -c16 -d10s -s bench/invocations.lua http://127.0.0.1:PORT/invocations \
--       -- ROWS [POOL [SEED [KEYS [ROWMODE]]]]
--
-- KEYS = "keys" gives pooled request i the header X-Routing-Key: user-<i> (POOL distinct users,
-- for experiment routing); ROWMODE = "repeat" splices the pool slot instead of the request
-- counter, so rows repeat every POOL requests (a cache can hit); the default is "distinct".
--
-- init() pre-generates POOL whole HTTP requests of ROWS rows x 20 features ("dataframe_split"),
-- each cut after every row's f0 value. request() cycles through the pool and splices an 8-digit
-- request counter onto every row's f0 (0.123456 -> 0.12345610000042), so no row repeats within a
-- run even when the pool wraps around: a prediction cache cannot help the server. The per-request
-- work is one table.concat of 2*ROWS+1 strings (no wrk.format), so wrk stays far ahead of the
-- servers; the runner still reports wrk's CPU share per run to prove it.
--
-- response() counts statuses (wrk's own latency stats mix 2xx and 429); done() prints one JSON
-- line prefixed by "WRK_JSON " with the counts, errors, latency percentiles (microseconds) and
-- wrk's CPU time during the run (os.clock() at done() minus at the end of init(): the pool's
-- generation is left out).

local N_FEATURES = 20
local COUNTER_BASE = 10000000 -- counters stay 8 digits wide (up to 89,999,999 requests)
local PLACEHOLDER = "@@@@@@@@"

local rows = 1
local pool = {}
local pool_size = 0
local scratch = {}
local next_index = 0
local sequence = 0
local with_keys = false
local repeat_rows = false
statuses = {}

local function header()
  local names = {}
  for i = 0, N_FEATURES - 1 do names[#names + 1] = '"f' .. i .. '"' end
  return '{"dataframe_split": {"columns": [' .. table.concat(names, ",") .. '], "data": ['
end

local function value()
  return string.format("%.6f", math.random() * 6.0 - 3.0)
end

local function row_tail()
  local values = {}
  for _ = 2, N_FEATURES do values[#values + 1] = value() end
  return ", " .. table.concat(values, ", ") .. "]"
end

-- The whole HTTP request with a fixed-width placeholder where each row's counter goes: the
-- Content-Length wrk.format() computes stays right once the counter replaces the placeholder.
local function request_text(head, index)
  local parts = { head }
  for r = 1, rows do
    local sep = r < rows and "," or ""
    parts[#parts + 1] = "[" .. value() .. PLACEHOLDER .. row_tail() .. sep
  end
  parts[#parts + 1] = "]}}"
  local headers = nil
  if with_keys then
    headers = { ["Content-Type"] = "application/json", ["X-Routing-Key"] = "user-" .. index }
  end
  return wrk.format("POST", nil, headers, table.concat(parts))
end

-- pieces[1] .. c .. pieces[2] .. c .. ... .. pieces[rows + 1], c = the request counter
local function split(text)
  local pieces, start = {}, 1
  while true do
    local at = string.find(text, PLACEHOLDER, start, true)
    if not at then break end
    pieces[#pieces + 1] = string.sub(text, start, at - 1)
    start = at + #PLACEHOLDER
  end
  pieces[#pieces + 1] = string.sub(text, start)
  return pieces
end

function init(args)
  rows = tonumber(args[1]) or 1
  pool_size = tonumber(args[2]) or 10000
  math.randomseed(tonumber(args[3]) or 42)
  with_keys = args[4] == "keys"
  repeat_rows = args[5] == "repeat"
  wrk.headers["Content-Type"] = "application/json"
  local head = header()
  for i = 1, pool_size do pool[i] = split(request_text(head, i)) end
  init_clock = os.clock() -- process CPU seconds once the pool is built (read back in done())
end

function request()
  next_index = next_index % pool_size + 1
  sequence = sequence + 1
  local pieces = pool[next_index]
  local counter = tostring(COUNTER_BASE + (repeat_rows and next_index or sequence))
  for r = 1, rows do
    scratch[2 * r - 1] = pieces[r]
    scratch[2 * r] = counter
  end
  scratch[2 * rows + 1] = pieces[rows + 1]
  return table.concat(scratch, "", 1, 2 * rows + 1)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

-- done() runs in the main Lua state: collect each thread's counts through thread:get().
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

-- CPU seconds wrk spent from the end of the pool's generation to done(): the run itself.
local function run_cpu_s()
  local started
  for _, thread in ipairs(threads) do
    local clock = thread:get("init_clock")
    if clock and (not started or clock < started) then started = clock end
  end
  return os.clock() - (started or 0)
end

local function merged_statuses()
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  return merged
end

local function json_statuses(merged)
  local parts = {}
  for status, count in pairs(merged) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function json_percentiles(latency, list)
  local parts = {}
  for _, p in ipairs(list) do
    parts[#parts + 1] = string.format('"%s": %d', tostring(p), latency:percentile(p))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local e = summary.errors
  local admitted_share = 1.0
  local merged = merged_statuses()
  local total, ok = 0, 0
  for status, count in pairs(merged) do
    total = total + count
    if status >= 200 and status < 300 then ok = ok + count end
  end
  if total > 0 then admitted_share = ok / total end
  -- An upper bound of the p99 of 2xx responses: the overall quantile above which lie only
  -- 1 % of the 2xx count (whatever the other statuses' latencies are).
  local admitted_p99_bound = latency:percentile(100.0 - 1.0 * admitted_share)
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "run_cpu_s": %.4f, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"statuses": %s, "latency_us": {"min": %d, "max": %d, "mean": %.1f, "stdev": %.1f, '
      .. '"percentiles": %s, "admitted_p99_upper_bound": %d}}\n',
    summary.requests, summary.duration, summary.bytes, run_cpu_s(),
    e.connect, e.read, e.write, e.status, e.timeout,
    json_statuses(merged), latency.min, latency.max, latency.mean, latency.stdev,
    json_percentiles(latency, { 50, 90, 99, 99.9 }), admitted_p99_bound))
end
