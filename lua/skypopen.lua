--[[
skypopen.lua: the sidecar's commands (`sk`, `skypopen`, `skypopen_chat`) typed in FreeSWITCH's
own console (fs_cli connected to the switch), as they were with the in-process module.

It fires the CUSTOM `skypopen::command` event the sidecar serves, with a fresh Job-UUID, and
prints the body of the `skypopen::command_result` carrying the same Job-UUID. When no sidecar
answers within two seconds it says so (and why that may be) instead of hanging.

Install (README, "sk in fs_cli"): copy to FreeSWITCH's scripts directory, then once
  alias stickyadd sk lua skypopen.lua sk
  alias stickyadd skypopen lua skypopen.lua skypopen
  alias stickyadd skypopen_chat lua skypopen.lua skypopen_chat
Run as an API: `lua skypopen.lua sk list`.
]]

local WAIT_MS = 1500

-- The command line: every argument, as typed.
local words = {}
for i = 1, #argv do
    words[#words + 1] = argv[i]
end
local line = table.concat(words, " ")

local function out(text)
    if stream then
        stream:write(text)
    else
        freeswitch.consoleLog("info", text)
    end
end

if line == "" then
    out("-ERR usage: lua skypopen.lua <sk|skypopen|skypopen_chat> <arguments>\n")
    return
end

local api = freeswitch.API()
local job = api:execute("create_uuid", "")
-- Listen before asking, so a fast answer is not missed.
local results = freeswitch.EventConsumer("CUSTOM", "skypopen::command_result")
local request = freeswitch.Event("CUSTOM", "skypopen::command")
request:addHeader("command", line)
request:addHeader("Job-UUID", job)
request:fire()

-- Lua's own clock counts whole seconds: the first wait is the budget, a result of another
-- job (another console at the same moment) buys a short extra wait, bounded by the clock.
local left = WAIT_MS
local give_up_at = os.time() + 2
while left > 0 and os.time() <= give_up_at do
    local event = results:pop(1, left)
    if event == nil then
        break
    end
    if event:getHeader("Job-UUID") == job then
        out(event:getBody() or "")
        return
    end
    left = 250
end
out("-ERR no skypopen sidecar answered `" .. line .. "` within " .. WAIT_MS .. " ms: is the "
    .. "sidecar running, and connected to this switch's event socket ([switch] esl and "
    .. "password)?\n")
