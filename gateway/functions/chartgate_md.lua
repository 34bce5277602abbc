#!lua name=chartgate_md
-- chartgate_md -- one tick sequence per instrument, shared by every gateway (PROTOCOL.md §19).
--
--   FCALL chartgate_publish 1 <md-prefix><instrument> <tick JSON> [<stream length>]
--
-- numbers the tick (INCR), appends it to the instrument's capped stream, publishes it on the
-- instrument's channel as "#<seq> <tick JSON>" and returns the seq. The derived keys carry the
-- channel name as their hash tag, so they live in the declared key's slot (Redis Cluster):
--   {<channel>}:seq     the last seq given (a counter)
--   {<channel>}:stream  entries with ID <seq>-0 and fields t (Redis time, ms) and d (the tick)
-- The gateway loads this library at start-up (FUNCTION LOAD REPLACE) with STREAM_LEN set to its
-- --stream-len; scripts/load-functions loads it on its own for publishers that start first.

local STREAM_LEN = 10000 -- @stream-len@ (the loaders replace the number on this line)

local function publish(keys, args)
    local channel, tick = keys[1], args[1]
    if channel == nil or tick == nil then
        return redis.error_reply('ERR usage: FCALL chartgate_publish 1 <channel> <tick> [<stream length>]')
    end
    local len = STREAM_LEN
    if args[2] ~= nil then
        len = tonumber(args[2])
        if len == nil or len < 1 or len ~= math.floor(len) then
            return redis.error_reply('ERR stream length must be an integer >= 1')
        end
    end
    local seqkey, stream = '{' .. channel .. '}:seq', '{' .. channel .. '}:stream'
    local seq = redis.call('INCR', seqkey)
    if seq == 1 and redis.call('EXISTS', stream) == 1 then
        -- The counter was lost but the stream was not: go on after the stream's last entry,
        -- or the XADD below would be refused and every later tick with it.
        local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
        if last[1] ~= nil then
            seq = tonumber(string.match(last[1][1], '^(%d+)')) + 1
            redis.call('SET', seqkey, seq)
        end
    end
    local now = redis.call('TIME')
    local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    redis.call('XADD', stream, 'MAXLEN', '~', len, seq .. '-0', 't', ms, 'd', tick)
    redis.call('PUBLISH', channel, '#' .. seq .. ' ' .. tick)
    return seq
end

redis.register_function('chartgate_publish', publish)
