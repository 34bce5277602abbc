#!lua name=chartgate_md
-- chartgate_md -- one tick sequence per instrument, shared by every gateway (PROTOCOL.md §19).
--
--   FCALL chartgate_publish 1 <md-prefix><instrument> <tick JSON> [<stream length>]
--   FCALL chartgate_publish 3 <channel> {<channel>}:seq {<channel>}:stream <tick JSON> [...]
--
-- The second form declares every key the function touches; a Redis Cluster requires it (see
-- below), elsewhere both are the same.
--
-- numbers the tick (INCR), appends it to the instrument's capped stream, publishes it on the
-- instrument's channel as "#<seq> <tick JSON>" and returns the seq. The derived keys carry the
-- channel name as their hash tag, so they live in the declared key's slot (Redis Cluster):
--   {<channel>}:seq     the last seq given (a counter)
--   {<channel>}:stream  entries with ID <seq>-0 and fields t (Redis time, ms) and d (the tick)
-- The gateway loads this library at start-up (FUNCTION LOAD REPLACE) with STREAM_LEN set to its
-- --stream-len; scripts/load-functions loads it on its own for publishers that start first.

local STREAM_LEN = 10000 -- @stream-len@ (the loaders replace the number on this line)
-- PUBLISH, or SPUBLISH for a Redis Cluster (sharded pub/sub: the channel md:<i> is the declared
-- key, so it shares the slot of {md:<i>}:seq and {md:<i>}:stream). @publish@
local PUBLISH = 'PUBLISH'
-- In a cluster the channel is no key: while its slot migrates, a call declaring it alone is
-- sent on (ASK) to the importing node, which would start a second counter at 1 there. With the
-- counter and the stream declared, Redis answers TRYAGAIN on both sides until the slot has
-- moved, and the call then runs where the counter is (PROTOCOL.md section 20.1).
local CLUSTER = PUBLISH == 'SPUBLISH'

local function publish(keys, args)
    local channel, tick = keys[1], args[1]
    if channel == nil or tick == nil then
        return redis.error_reply('ERR usage: FCALL chartgate_publish 1 <channel> <tick> [<stream length>]')
    end
    local seqkey, stream = '{' .. channel .. '}:seq', '{' .. channel .. '}:stream'
    if #keys == 3 then
        if keys[2] ~= seqkey or keys[3] ~= stream then
            return redis.error_reply('ERR the keys must be <channel> {<channel>}:seq {<channel>}:stream')
        end
    elseif CLUSTER then
        return redis.error_reply('ERR usage in a Redis Cluster: FCALL chartgate_publish 3 <channel> {<channel>}:seq {<channel>}:stream <tick> [<stream length>]')
    elseif #keys ~= 1 then
        return redis.error_reply('ERR usage: FCALL chartgate_publish 1 <channel> <tick> [<stream length>] (or 3 keys: <channel> {<channel>}:seq {<channel>}:stream)')
    end
    local len = STREAM_LEN
    if args[2] ~= nil then
        -- Decimal digits only, at most 15 (exact in a Lua number): tonumber alone lets "inf",
        -- "1e400" and "0x10" through, and XADD would refuse the first two after the INCR below.
        if not string.match(args[2], '^[1-9]%d*$') or #args[2] > 15 then
            return redis.error_reply('ERR stream length must be an integer from 1 to 999999999999999')
        end
        len = tonumber(args[2])
    end
    local seq = redis.call('INCR', seqkey)
    local now = redis.call('TIME')
    local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    local added = redis.pcall('XADD', stream, 'MAXLEN', '~', len, seq .. '-0', 't', ms, 'd', tick)
    if type(added) == 'table' and added.err then
        -- Refused. When the counter is behind the stream (the :seq key was lost, or restored
        -- older than the stream), go on after the stream's last ID, which the stream keeps even
        -- when trimmed empty. Anything else (e.g. WRONGTYPE): give the seq back, so that no
        -- number is skipped, and return the error.
        local top = nil
        if redis.call('TYPE', stream).ok == 'stream' then
            local info = redis.call('XINFO', 'STREAM', stream)
            for i = 1, #info, 2 do
                if info[i] == 'last-generated-id' then
                    top = tonumber(string.match(info[i + 1], '^(%d+)'))
                end
            end
        end
        if top == nil or top < seq then
            redis.call('DECR', seqkey)
            return added
        end
        seq = top + 1
        redis.call('SET', seqkey, seq)
        redis.call('XADD', stream, 'MAXLEN', '~', len, seq .. '-0', 't', ms, 'd', tick)
    end
    redis.call(PUBLISH, channel, '#' .. seq .. ' ' .. tick)
    return seq
end

redis.register_function('chartgate_publish', publish)
