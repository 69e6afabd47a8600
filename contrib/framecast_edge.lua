-- Wakes viewers waiting for the same LL-HLS answer the moment it is cached, for
-- contrib/nginx.conf (Debian: libnginx-mod-http-lua).
--
-- Why: a blocking playlist reload or a hinted part is asked for by every viewer before it
-- exists. nginx's proxy_cache_lock sends the first request to framecast and makes the others
-- wait, but it looks for the answer only every 500 ms (ngx_http_file_cache_lock_wait), so a
-- viewer behind the lock gets each part 0-500 ms late. Here the first request for a cache key
-- takes the fetch (a mark in a shared dictionary, so across workers too); the others wait on
-- a semaphore that the fetch posts when its answer is in the cache (the log phase, which
-- comes after nginx has stored the answer), then read it from the cache. Waiters in another
-- worker than the fetch's look again every POLL_S. nginx's own lock stays on behind this, for
-- anything that slips past (a mark lost to a full dictionary).
--
-- In the http block:
--   lua_package_path "/etc/nginx/?.lua;;";          # where this file is
--   lua_shared_dict framecast_fetches 1m;
-- In a location: the cache key in $framecast_fetch_key ("" to skip),
--   set $framecast_request $request_id;
--   set $framecast_bypass "";               # and in proxy_cache_bypass
--   access_by_lua_block { require("framecast_edge").wait() }
--   log_by_lua_block { require("framecast_edge").done() }

local semaphore = require("ngx.semaphore")

local fetches = ngx.shared.framecast_fetches

-- A key's value in the dictionary: the request id of the request fetching it, then this
-- once its answer is in the cache. The id is $framecast_request, set from $request_id in the
-- location: a variable set there keeps its value for the whole request, also after an
-- internal redirect (error_page), which would lose ngx.ctx; $request_id read from Lua
-- alone would be a new random id at every read.
local FETCHED = "fetched"
-- A fetch that got an error (4xx, 5xx): nothing was cached, so its waiters go to framecast
-- at once, past nginx's lock ($framecast_bypass), for as long as FAILED_KEEP_S.
local FAILED = "failed"
local FAILED_KEEP_S = 1
-- How long a fetch may hold the others: longer than framecast holds a blocking request
-- (three target durations, at most 30 s) and than nginx's proxy_cache_lock_timeout (35 s).
local FETCH_LIMIT_S = 40
-- How long a finished fetch is remembered: a key is asked for within a few part durations.
local FETCHED_KEEP_S = 60
-- How often a waiter looks again when the fetch runs in another worker.
local POLL_S = 0.02

-- This worker's waiters, by cache key.
local waiting = {}

local M = {}

-- Access phase: the first request for the key goes on to fetch it; the others wait until
-- that fetch is done (or FETCH_LIMIT_S), then go on and find the answer in the cache.
function M.wait()
    local key = ngx.var.framecast_fetch_key
    if key == nil or key == "" then
        return
    end
    local added, err = fetches:add(key, ngx.var.framecast_request, FETCH_LIMIT_S)
    if added then
        return
    end
    if err ~= "exists" then
        -- The dictionary is in trouble: nginx's lock coalesces on its own.
        return
    end
    local deadline = ngx.now() + FETCH_LIMIT_S
    while ngx.now() < deadline do
        local state = fetches:get(key)
        if state == FAILED then
            ngx.var.framecast_bypass = "1"
            break
        end
        if state == nil or state == FETCHED then
            break
        end
        local sema = waiting[key]
        if sema == nil then
            sema = semaphore.new()
            waiting[key] = sema
        end
        sema:wait(POLL_S)
    end
    local sema = waiting[key]
    if sema ~= nil and sema:count() >= 0 then
        -- Nobody waits on it any more (the fetch ran in another worker, which cannot post).
        waiting[key] = nil
    end
end

-- Log phase of every request: the one that fetched marks the key fetched (or failed) and
-- wakes this worker's waiters at once.
function M.done()
    local key = ngx.var.framecast_fetch_key
    if key == nil or key == "" or fetches:get(key) ~= ngx.var.framecast_request then
        return
    end
    if ngx.status >= 400 then
        fetches:set(key, FAILED, FAILED_KEEP_S)
    else
        fetches:set(key, FETCHED, FETCHED_KEEP_S)
    end
    local sema = waiting[key]
    if sema ~= nil then
        waiting[key] = nil
        local sleepers = -sema:count()
        if sleepers > 0 then
            sema:post(sleepers)
        end
    end
end

return M
