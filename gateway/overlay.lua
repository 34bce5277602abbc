-- overlay.lua -- chart overlays in Redis: the one place operations are checked and applied.
-- (Body of the chartgate_overlays function library; the gateway prepends the bounds it was
-- configured with and loads it with FUNCTION LOAD REPLACE. PROTOCOL.md §17.)
--
-- Keys, all under the instrument's hash tag so that one slot holds them:
--   overlays:{I}            hash: "~v" the version (one more per applied operation), and per
--                           overlay a field NAME (shared) or NAME|USER (one user's), whose value
--                           is "KIND MEMBERS": the overlay's JSON members but its points
--   overlays:{I}:p:FIELD    sorted set of the overlay's points: score t, member the point's JSON
local OP_BYTES = 262144
local STYLE_BYTES = 512
local STYLE_KEYS = 16
local TEXT_MAX = 64
local NAME_MAX = 64
local USER_MAX = 128
local KINDS = {line = true, histogram = true, markers = true, level = true}
local POSITIONS = {above = true, below = true, inBar = true}
local SHAPES = {arrowUp = true, arrowDown = true, circle = true, square = true}

local function check(ok, msg)
    if not ok then error(msg, 0) end
end

local function is_int(x)
    return type(x) == 'number' and x == math.floor(x) and x >= 0 and x < 1e15
end

local function is_num(x)
    return type(x) == 'number' and x == x and x ~= math.huge and x ~= -math.huge
end

local function is_str(x, max)
    return type(x) == 'string' and #x > 0 and #x <= max
end

-- A JSON array: a table whose keys are exactly 1..n (an empty table passes).
local function is_array(t)
    if type(t) ~= 'table' then return false end
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n == #t
end

local function opt_color(x, what)
    check(x == nil or is_str(x, 32), what .. ' must be a colour string of 1 to 32 bytes')
end

local function int_text(x)
    return string.format('%d', x)
end

-- One point of a kind, checked; returns its time and its compact JSON.
local function point(kind, p, where)
    if kind == 'markers' then
        check(type(p) == 'table' and not (is_array(p) and #p > 0), where .. ' must be a marker object')
        check(is_int(p.t), where .. '.t must be an integer time >= 0')
        check(POSITIONS[p.position], where .. '.position must be above, below or inBar')
        check(SHAPES[p.shape], where .. '.shape must be arrowUp, arrowDown, circle or square')
        opt_color(p.color, where .. '.color')
        check(p.text == nil or (type(p.text) == 'string' and #p.text <= TEXT_MAX),
              where .. '.text must be a string of at most 64 bytes')
        local s = '{"t":' .. int_text(p.t) .. ',"position":"' .. p.position .. '","shape":"' ..
                      p.shape .. '"'
        if p.color then s = s .. ',"color":' .. cjson.encode(p.color) end
        if p.text then s = s .. ',"text":' .. cjson.encode(p.text) end
        return p.t, s .. '}'
    end
    local max = kind == 'histogram' and 3 or 2
    check(is_array(p) and #p >= 2 and #p <= max,
          where .. (max == 3 and ' must be [t,v] or [t,v,color]' or ' must be [t,v]'))
    check(is_int(p[1]), where .. '[0] must be an integer time >= 0')
    check(is_num(p[2]), where .. '[1] must be a finite number')
    local s = '[' .. int_text(p[1]) .. ',' .. cjson.encode(p[2])
    if p[3] ~= nil then
        opt_color(p[3], where .. '[2]')
        s = s .. ',' .. cjson.encode(p[3])
    end
    return p[1], s .. ']'
end

-- The op's points, checked, in time order (a later duplicate time wins).
local function points_of(kind, pts)
    check(is_array(pts), '"points" must be an array')
    check(#pts <= MAX_POINTS, '"points" holds more than ' .. MAX_POINTS .. ' points')
    local by_t, order = {}, {}
    for i, p in ipairs(pts) do
        local t, s = point(kind, p, 'points[' .. (i - 1) .. ']')
        if not by_t[t] then order[#order + 1] = t end
        by_t[t] = s
    end
    table.sort(order)
    local out = {}
    for i, t in ipairs(order) do out[i] = {t, by_t[t]} end
    return out
end

local function style_of(st)
    if st == nil then return nil end
    check(type(st) == 'table' and not (is_array(st) and #st > 0), '"style" must be an object')
    local n = 0
    for k, v in pairs(st) do
        n = n + 1
        check(type(k) == 'string' and #k <= 32, '"style" keys must be strings of at most 32 bytes')
        check((type(v) == 'string' and #v <= TEXT_MAX) or is_num(v) or type(v) == 'boolean',
              '"style" values must be numbers, booleans or strings of at most 64 bytes')
    end
    check(n <= STYLE_KEYS, '"style" has more than ' .. STYLE_KEYS .. ' members')
    if n == 0 then return '{}' end
    local s = cjson.encode(st)
    check(#s <= STYLE_BYTES, '"style" is longer than ' .. STYLE_BYTES .. ' bytes')
    return s
end

local function zkey(key, field)
    return key .. ':p:' .. field
end

local function store_points(zk, pts)
    for _, p in ipairs(pts) do
        redis.call('ZREMRANGEBYSCORE', zk, p[1], p[1])
        redis.call('ZADD', zk, p[1], p[2])
    end
    local n = redis.call('ZCARD', zk)
    if n > MAX_POINTS then redis.call('ZREMRANGEBYRANK', zk, 0, n - MAX_POINTS - 1) end
end

local function joined(pts)
    local out = {}
    for i, p in ipairs(pts) do out[i] = p[2] end
    return '[' .. table.concat(out, ',') .. ']'
end

local function apply(key, inst, text)
    check(#text <= OP_BYTES, 'operation longer than ' .. OP_BYTES .. ' bytes')
    local okj, op = pcall(cjson.decode, text)
    check(okj and type(op) == 'table' and not (is_array(op) and #op > 0),
          'operation must be a JSON object')
    check(op.op == 'set' or op.op == 'append' or op.op == 'remove',
          '"op" must be set, append or remove')
    check(is_str(op.overlay, NAME_MAX) and op.overlay:match('^[%w_.-]+$'),
          '"overlay" must be 1 to 64 of A-Z a-z 0-9 _ . -')
    check(op.user == nil or is_str(op.user, USER_MAX), '"user" must be a string of 1 to 128 bytes')
    local field = op.overlay
    local scope = ''
    if op.user then
        field = field .. '|' .. op.user
        scope = ',"user":' .. cjson.encode(op.user)
    end
    local name = '"overlay":' .. cjson.encode(op.overlay)
    local zk = zkey(key, field)
    local out
    if op.op == 'remove' then
        if redis.call('HDEL', key, field) == 0 then return tonumber(redis.call('HGET', key, '~v') or 0) end
        redis.call('DEL', zk)
        out = '{"op":"remove",' .. name .. scope
    elseif op.op == 'set' then
        check(KINDS[op.kind], '"kind" must be line, histogram, markers or level')
        local style = style_of(op.style)
        local members = name .. ',"kind":"' .. op.kind .. '"'
        if op.kind == 'level' then
            check(op.points == nil and op.interval == nil, 'a level has no "points" and no "interval"')
            check(is_num(op.price), '"price" must be a finite number')
            opt_color(op.color, '"color"')
            check(op.title == nil or (type(op.title) == 'string' and #op.title <= TEXT_MAX),
                  '"title" must be a string of at most 64 bytes')
            members = members .. ',"price":' .. cjson.encode(op.price)
            if op.color then members = members .. ',"color":' .. cjson.encode(op.color) end
            if op.title then members = members .. ',"title":' .. cjson.encode(op.title) end
        else
            check(type(op.interval) == 'string' and INTERVALS[op.interval],
                  '"interval" must be one of the gateway\'s intervals')
            members = members .. ',"interval":"' .. op.interval .. '"'
        end
        if style then members = members .. ',"style":' .. style end
        members = members .. scope
        -- Everything is checked before the first write: a script's writes are not undone.
        local pts
        if op.kind ~= 'level' then pts = points_of(op.kind, op.points == nil and {} or op.points) end
        local existed = redis.call('HEXISTS', key, field) == 1
        if not existed then
            check(redis.call('HLEN', key) - redis.call('HEXISTS', key, '~v') < MAX_OVERLAYS,
                  'the instrument holds ' .. MAX_OVERLAYS .. ' overlays already')
        end
        redis.call('DEL', zk)
        redis.call('HSET', key, field, op.kind .. ' ' .. members)
        out = '{"op":"set",' .. members
        if pts then
            store_points(zk, pts)
            out = out .. ',"points":' .. joined(pts)
        end
    else
        local cur = redis.call('HGET', key, field)
        check(cur, 'no overlay "' .. op.overlay .. '" to append to (set it first)')
        local kind = cur:match('^(%a+) ')
        check(kind ~= 'level', 'a level has no points to append')
        check(op.points ~= nil, '"points" is required')
        local pts = points_of(kind, op.points)
        check(#pts > 0, '"points" must not be empty')
        store_points(zk, pts)
        out = '{"op":"append",' .. name .. scope .. ',"points":' .. joined(pts)
    end
    local v = redis.call('HINCRBY', key, '~v', 1)
    -- Cluster mode: SPUBLISH on PREFIX{inst}, which shares the key's slot.
    local channel = CLUSTER and (PREFIX .. '{' .. inst .. '}') or (PREFIX .. inst)
    redis.call(CLUSTER and 'SPUBLISH' or 'PUBLISH', channel, out .. ',"v":' .. v .. '}')
    return v
end

local function key_of(keys, args)
    local inst = args[1]
    check(type(inst) == 'string' and #inst >= 1 and #inst <= 32 and inst:match('^[%w_.-]+$'),
          'invalid instrument name')
    check(keys[1] == 'overlays:{' .. inst .. '}', 'the key must be overlays:{' .. inst .. '}')
    return keys[1], inst
end

-- FCALL chartgate_overlay 1 overlays:{I} I OP: applies OP (JSON text) and publishes it, with
-- its version "v", on PREFIX..I. Returns the version, or an error saying what is wrong.
redis.register_function('chartgate_overlay', function(keys, args)
    local ok, res = pcall(function()
        local key, inst = key_of(keys, args)
        check(type(args[2]) == 'string', 'no operation')
        return apply(key, inst, args[2])
    end)
    if ok then return res end
    return redis.error_reply('ERR overlay: ' .. tostring(res))
end)

-- FCALL_RO chartgate_overlay_read 1 overlays:{I} I USER: {version, JSON array of the shared
-- overlays and USER's ("" = shared only), each in the form of a set operation without "op"}.
redis.register_function {
    function_name = 'chartgate_overlay_read',
    flags = {'no-writes'},
    callback = function(keys, args)
        local ok, res = pcall(function()
            local key = key_of(keys, args)
            local user = args[2] or ''
            local all = redis.call('HGETALL', key)
            local v, out = 0, {}
            for i = 1, #all, 2 do
                local field, value = all[i], all[i + 1]
                if field == '~v' then
                    v = tonumber(value)
                else
                    local bar = field:find('|', 1, true)
                    if not bar or (user ~= '' and field:sub(bar + 1) == user) then
                        local kind, members = value:match('^(%a+) (.*)$')
                        if kind == 'level' then
                            out[#out + 1] = '{' .. members .. '}'
                        elseif kind then
                            local pts = redis.call('ZRANGE', zkey(key, field), 0, -1)
                            out[#out + 1] = '{' .. members .. ',"points":[' .. table.concat(pts, ',') .. ']}'
                        end
                    end
                end
            end
            return {v, '[' .. table.concat(out, ',') .. ']'}
        end)
        if ok then return res end
        return redis.error_reply('ERR overlay: ' .. tostring(res))
    end
}
