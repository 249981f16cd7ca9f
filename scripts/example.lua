-- example.lua - a small LoadScript example, with the API of Rumble's Lua
-- documentation (Rumble.setHook, Rumble.readConfig, Rumble.createService,
-- Rumble.serverInfo, Mailman.listDomains). Load it with
--     LoadScript scripts/example.lua
-- in rumble.conf (a path relative to the folder the server starts in), and
-- change it to your taste; SIGHUP loads it again.
--
-- 1. Mail from the senders or domains in BLOCKED is refused at MAIL FROM.
-- 2. A client that greets with this server's own name (HELO/EHLO
--    mail.example.org from outside: a spammer's trick) is refused.
-- 3. With "ExampleStatusPort 2599" in rumble.conf, a status service on that
--    port answers every connection with one line about the server and the
--    domains it serves (try: nc 127.0.0.1 2599), then closes.

local BLOCKED = {
	["spammer@example.net"] = true, -- one address
	["@spam.example"] = true,       -- a whole domain
}

-- MAIL FROM:<address>: cmd is the rest of the line after "MAIL".
local function onMail(session, cmd)
	local addr = string.lower(string.match(cmd or "", "<([^>]*)>") or "")
	local domain = string.match(addr, "(@[^@]*)$") or ""
	if BLOCKED[addr] or BLOCKED[domain] then
		session:send("550 5.7.1 Mail from " .. addr .. " is not accepted here\r\n")
		return "ignore" -- answered here; the session goes on
	end
	return true -- the server handles the command as usual
end

-- HELO/EHLO name: cmd is the name the client gave.
local function onHelo(session, cmd)
	local me = string.lower(Rumble.readConfig("ServerName") or "")
	local from = session.address or ""
	local localhost = from == "127.0.0.1" or from == "::1"
	if me ~= "" and string.lower(cmd or "") == me and not localhost then
		session:send("550 5.7.1 You are not " .. me .. "\r\n")
		return false -- and the connection is closed
	end
	return true
end

Rumble.setHook(onMail, "smtp", "command", "mail")
Rumble.setHook(onHelo, "smtp", "command", "helo")
Rumble.setHook(onHelo, "smtp", "command", "ehlo")

local statusPort = tonumber(Rumble.readConfig("ExampleStatusPort") or "")
if statusPort then
	Rumble.createService(function(session)
		local info = Rumble.serverInfo()
		local domains = Mailman.listDomains() or {}
		table.sort(domains)
		session:send(string.format("%s: rumble %s on %s/%s, up %d s, domains: %s\r\n",
			info.name, info.version, info.os, info.arch, info.uptime,
			table.concat(domains, " ")))
	end, statusPort, 1)
end
