-- Directory dialing: the caller hears one short tone pattern per ONLINE Skype contact of an
-- interface (contact 1: one beep, contact 2: two beeps, ...), keys the contact's number and
-- is transferred to skypopen/<interface>/<handle>, which the sidecar calls.
--
-- The contacts come from the sidecar itself: this script fires the command
-- `sk contacts <interface>` as a CUSTOM skypopen::command event and reads the table that comes
-- back as CUSTOM skypopen::command_result with the same Job-UUID (the sidecar's inbound
-- event socket connection serves both).
--
-- Usage in a dialplan:  <action application="lua" data="skype_directory.lua interface1"/>

local interface = argv[1] or "interface1"
local context = argv[2] or "default"
local most = 9

local function log(level, text)
	freeswitch.consoleLog(level, "skype_directory: " .. text .. "\n")
end

-- Runs a sidecar command and returns its output, or nil after `wait_ms`.
local function sidecar(command, wait_ms)
	local job = session:get_uuid() .. "-" .. os.time()
	local results = freeswitch.EventConsumer("CUSTOM", "skypopen::command_result")
	local request = freeswitch.Event("CUSTOM", "skypopen::command")
	request:addHeader("command", command)
	request:addHeader("Job-UUID", job)
	request:fire()
	local waited = 0
	while waited < wait_ms do
		local event = results:pop(1, 100)
		if event and event:getHeader("Job-UUID") == job then
			return event:getBody() or ""
		end
		waited = waited + 100
	end
	return nil
end

-- ONLINE (and SKYPEME) contacts in the table's (name) order: handle\tstatus\tsince\tname.
local function online_contacts(table_text)
	local list = {}
	for line in table_text:gmatch("[^\n]+") do
		local handle, status = line:match("^([%w%.,%-_]+)\t(%u+)\t")
		if handle and (status == "ONLINE" or status == "SKYPEME") and #list < most then
			list[#list + 1] = handle
		end
	end
	return list
end

local function beeps(count)
	return "tone_stream://%(120,120,880);loops=" .. count
end

session:answer()
session:sleep(300)
local text = sidecar("sk contacts " .. interface, 3000)
if not text then
	log("err", "the sidecar did not answer `sk contacts " .. interface .. "`")
	session:hangup("SERVICE_UNAVAILABLE")
	return
end
local contacts = online_contacts(text)
if #contacts == 0 then
	log("warning", "no ONLINE contact on " .. interface)
	session:hangup("NO_ROUTE_DESTINATION")
	return
end

-- The menu: each contact's beeps, a pause between them; a key stops it.
local menu = {}
for i, handle in ipairs(contacts) do
	log("info", i .. " = " .. handle)
	menu[#menu + 1] = beeps(i)
	menu[#menu + 1] = "silence_stream://600"
end
local prompt = "file_string://" .. table.concat(menu, "!")
local key = session:playAndGetDigits(1, 1, 3, 4000, "#", prompt, "", "^[1-9]$")
local choice = tonumber(key)
if not choice or not contacts[choice] then
	log("info", "no choice made")
	session:hangup("NORMAL_CLEARING")
	return
end
local handle = contacts[choice]
log("info", "caller chose " .. choice .. ": " .. handle)
session:setVariable("skype_directory_choice", handle)
session:execute("transfer", "skypopen/" .. interface .. "/" .. handle .. " XML " .. context)
