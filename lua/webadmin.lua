-- webadmin.lua - Rumble's web admin: a small HTTP/1.1 server on a
-- Rumble service port, pages rendered here, no script or asset fetched
-- from anywhere. Compiled into the binary (lua/webadmin.c runs it in
-- every Lua state, before any LoadScript) and given the C helpers as
-- its argument. Returns the function that serves one connection.
--
-- One request per connection (Connection: close). Bounded: request
-- line, header count and bytes, body (Content-Length only), silence
-- (api.setup). Every value put in a page goes through esc(); every POST
-- carries a CSRF token; no file or path is made from what the client
-- sends.
local api = ...
local Rumble, Mailman = Rumble, Mailman
local byte, char, fmt = string.byte, string.char, string.format
local concat, floor, date = table.concat, math.floor, os.date
local ipairs, pcall, print, select = ipairs, pcall, print, select
local tonumber, tostring, type = tonumber, tostring, type
local sort, max = table.sort, math.max

local LINE_MAX = 4096 -- request line, one header line
local HEADERS_MAX = 50
local HEAD_BYTES_MAX = 16384
local BODY_MAX = 65536
local FIELDS_MAX = 64
local SERVICES = {"smtp", "submission", "pop3", "smtps", "pop3s", "imap4", "imaps"}
local REASONS = {
	[200] = "OK", [303] = "See Other", [400] = "Bad Request", [401] = "Unauthorized",
	[403] = "Forbidden",
	[404] = "Not Found", [405] = "Method Not Allowed", [411] = "Length Required",
	[413] = "Content Too Large", [414] = "URI Too Long", [415] = "Unsupported Media Type",
	[429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
	[500] = "Internal Server Error", [501] = "Not Implemented",
}
local HTML = "text/html; charset=utf-8"
local AUTOCONF_BODY_MAX = 8192 -- an autodiscover request is a few hundred bytes
local HEADERS = "Connection: close\r\n" ..
	"Cache-Control: no-store\r\nX-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\n" ..
	"Referrer-Policy: no-referrer\r\nContent-Security-Policy: default-src 'none'; " ..
	"style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n"
local CSS = [[
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#2d3e50;color:#fff;padding:.6em 1em}
nav{background:#fff;border-bottom:1px solid #ddd;padding:.4em 1em}
nav a{margin-right:1.2em;color:#2d3e50}
main{padding:1em;max-width:70em}
table{border-collapse:collapse;background:#fff;margin:.5em 0 1.5em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#eef0f3}
form.inline{display:inline;margin:0}
fieldset{background:#fff;border:1px solid #ddd;margin:0 0 1.5em}
label{display:block;margin:.3em 0}
.msg{padding:.5em 1em;border-radius:4px}.ok{background:#e2f4e2}.err{background:#fbe3e3}
.on{color:#176017}.off{color:#a01010}
pre{background:#fff;border:1px solid #ddd;padding:.6em;overflow:auto;font-size:13px}
]]

-- ---- text ----

local ESC = {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;"}

local function esc(s)
	if s == nil then
		return ""
	end
	return (tostring(s):gsub("[&<>\"']", ESC))
end

local function urlenc(s)
	return (tostring(s):gsub("[^%w%-%._~]", function(c) return fmt("%%%02X", byte(c)) end))
end

local function urldec(s)
	s = s:gsub("%+", " ")
	return (s:gsub("%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- "a=1&b=2" -> {a = "1", b = "2"}; nil when there are too many fields.
local function parse_form(s)
	local t, n = {}, 0
	for pair in s:gmatch("[^&]+") do
		n = n + 1
		if n > FIELDS_MAX then
			return nil
		end
		local k, v = pair:match("^([^=]*)=?(.*)$")
		t[urldec(k)] = urldec(v)
	end
	return t
end

local function parse_cookies(s)
	local t = {}
	for k, v in (s or ""):gmatch("([^=;%s]+)=([^;%s]*)") do
		t[k] = v
	end
	return t
end

local function num(n)
	return fmt("%d", tonumber(n) or 0)
end

local function bytes(n)
	n = tonumber(n) or 0
	if n >= 1073741824 then
		return fmt("%.1f GB", n / 1073741824)
	elseif n >= 1048576 then
		return fmt("%.1f MB", n / 1048576)
	elseif n >= 1024 then
		return fmt("%.1f KB", n / 1024)
	end
	return fmt("%d B", n)
end

local function duration(s)
	s = floor(tonumber(s) or 0)
	local d, h, m = floor(s / 86400), floor(s % 86400 / 3600), floor(s % 3600 / 60)
	if d > 0 then
		return fmt("%dd %dh %dm", d, h, m)
	end
	return fmt("%dh %dm %ds", h, m, s % 60)
end

local function when(t)
	t = tonumber(t)
	return t and t > 0 and date("!%Y-%m-%d %H:%M:%S UTC", t) or "-"
end

-- ---- HTTP ----

local function respond(session, code, body, extra, ctype)
	local head = {fmt("HTTP/1.1 %d %s\r\n", code, REASONS[code] or "Error"), HEADERS,
		fmt("Content-Type: %s\r\nContent-Length: %d\r\n", ctype or HTML, #body)}
	for _, h in ipairs(extra or {}) do
		head[#head + 1] = h .. "\r\n"
	end
	head[#head + 1] = "\r\n"
	session:send(concat(head) .. body)
end

local function error_body(code)
	local r = esc(REASONS[code] or "Error")
	return fmt("<!DOCTYPE html><html><head><title>%d %s</title></head><body><h1>%d %s</h1>" ..
		"</body></html>", code, r, code, r)
end

-- The request: {method, path, query, headers}; or nil and the status to
-- answer (nil: the client went away, answer nothing).
local function read_head(session)
	local line = session:receive()
	if not line then
		return nil
	end
	if #line > LINE_MAX then
		return nil, 414
	end
	local method, target = line:match("^(%u+) (%S+) HTTP/1%.[01]$")
	if not method then
		return nil, 400
	end
	local h, n, size = {}, 0, 0
	while true do
		local l = session:receive()
		if not l then
			return nil
		end
		if l == "" then
			break
		end
		n, size = n + 1, size + #l
		if n > HEADERS_MAX or #l > LINE_MAX or size > HEAD_BYTES_MAX then
			return nil, 431
		end
		local k, v = l:match("^([%w%-]+):[ \t]*(.-)[ \t]*$")
		if not k then
			return nil, 400
		end
		k = k:lower()
		if h[k] and (k == "content-length" or k == "transfer-encoding" or k == "content-type") then
			return nil, 400
		end
		h[k] = h[k] and (h[k] .. (k == "cookie" and "; " or ", ") .. v) or v
	end
	if method ~= "GET" and method ~= "POST" then
		return nil, 405
	end
	local path, query = target:match("^(/[^?#]*)%??([^#]*)")
	if not path then
		return nil, 400
	end
	return {method = method, path = path, rawquery = query, query = parse_form(query) or {},
		headers = h}
end

-- Reads a POST's form into req.form; nil and a status when it is not one.
local function read_body(session, req)
	local h = req.headers
	req.form = {}
	if h["transfer-encoding"] then
		return nil, 501
	end
	local len = h["content-length"]
	if not len then
		if req.method == "POST" then
			return nil, 411
		end
		return true
	end
	if not len:match("^%d+$") then
		return nil, 400
	end
	if #len > 9 or tonumber(len) > BODY_MAX then
		return nil, 413
	end
	len = tonumber(len)
	if len == 0 then
		return true
	end
	local ctype = (h["content-type"] or ""):lower()
	if req.method == "POST" and not ctype:match("^application/x%-www%-form%-urlencoded") then
		return nil, 415
	end
	local data, got = session:receivebytes(len)
	if got ~= len then
		return nil
	end
	if req.method == "POST" then
		req.form = parse_form(data)
		if not req.form then
			return nil, 413
		end
	end
	return true
end

-- Cookie attributes; Secure when the admin speaks HTTPS (TLSCertificate set).
local function cookie_attrs()
	return "; Path=/; HttpOnly; SameSite=Strict" .. (api.https() and "; Secure" or "")
end

-- ---- page parts ----

local function csrf_field(ctx)
	return '<input type="hidden" name="csrf" value="' .. esc(ctx.csrf) .. '">'
end

-- A form that posts to action with hidden fields and one button.
local function button(ctx, action, fields, label)
	local t = {'<form class="inline" method="post" action="', esc(action), '">', csrf_field(ctx)}
	for _, f in ipairs(fields) do
		t[#t + 1] = fmt('<input type="hidden" name="%s" value="%s">', esc(f[1]), esc(f[2]))
	end
	t[#t + 1] = "<button>" .. esc(label) .. "</button></form>"
	return concat(t)
end

local function page(ctx, title, body)
	local nav = ""
	if ctx.user and ctx.admin then
		nav = concat {'<nav><a href="/">Dashboard</a><a href="/domains">Domains</a>',
			'<a href="/queue">Queue</a><a href="/log">Log</a><a href="/me">My account</a>',
			button(ctx, "/logout", {}, "Log out " .. ctx.user), "</nav>"}
	elseif ctx.user then
		nav = concat {'<nav><a href="/me">My account</a>',
			button(ctx, "/logout", {}, "Log out " .. ctx.user), "</nav>"}
	end
	local msg = ""
	if ctx.msg then
		msg = fmt('<p class="msg %s">%s</p>', ctx.ok and "ok" or "err", esc(ctx.msg))
	end
	return concat {'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
		'<meta name="viewport" content="width=device-width,initial-scale=1"><title>',
		esc(title), " - Rumble</title><style>", CSS, "</style></head><body>",
		"<header><b>Rumble</b> web admin</header>", nav, "<main><h1>", esc(title), "</h1>",
		msg, body, "</main></body></html>"}
end

local function table_html(head, rows)
	local t = {"<table><tr>"}
	for _, h in ipairs(head) do
		t[#t + 1] = "<th>" .. esc(h) .. "</th>"
	end
	t[#t + 1] = "</tr>"
	for _, r in ipairs(rows) do
		t[#t + 1] = "<tr><td>" .. concat(r, "</td><td>") .. "</td></tr>"
	end
	return concat(t) .. "</table>"
end

-- ctx.msg for the page that follows an action; ok: it went well.
local function say(ctx, ok, msg)
	ctx.ok, ctx.msg = ok, msg
end

-- ---- pages ----

local function login_page(ctx, code)
	local pre = api.random()
	local note = ""
	if api.admins() == 0 then
		note = '<p class="msg err">No administrator yet: add a line <code>WebAdmin ' ..
			"user@domain</code> naming a mailbox account to rumble.conf and restart. " ..
			"Mailbox users can log in to their own account page.</p>"
	end
	local body = concat {note, '<form method="post" action="/login"><fieldset>',
		'<input type="hidden" name="pre" value="', pre, '">',
		'<label>Address <input name="user" autocomplete="username" required></label>',
		'<label>Password <input type="password" name="password" ',
		'autocomplete="current-password" required></label>',
		"<button>Log in</button></fieldset></form>"}
	return code or 200, page(ctx, "Log in", body),
		{"Set-Cookie: wa_pre=" .. pre .. cookie_attrs()}
end

-- ---- the dashboard's figures (api.status: stats.c's summary) ----

local KINDS = {{"Received", "#2e7d32"}, {"Sent out", "#1565c0"}, {"Refused", "#c62828"}}
local CHART_W, CHART_H, BAR = 12, 120, 3 -- px per hour, plot height, bar width

-- The hours ({in, out, refused}, oldest first) as an inline SVG bar chart:
-- no script; each bar's <title> says its hour and count.
local function chart(hours, now)
	local top, n = 1, #hours
	for _, h in ipairs(hours) do
		top = max(top, h[1], h[2], h[3])
	end
	local w = n * CHART_W + 50
	local t = {fmt('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ' ..
		'role="img" aria-label="messages per hour, last %d hours">', w, CHART_H + 40, n),
		fmt('<line x1="40" y1="%d" x2="%d" y2="%d" stroke="#888"/>', CHART_H + 5, w, CHART_H + 5),
		fmt('<text x="36" y="14" font-size="11" text-anchor="end">%d</text>', top),
		'<text x="36" y="' .. (CHART_H + 5) .. '" font-size="11" text-anchor="end">0</text>'}
	for i, h in ipairs(hours) do
		local x0 = 40 + (i - 1) * CHART_W
		local hour = date("!%Y-%m-%d %H:00", now - (n - i) * 3600)
		for k, kind in ipairs(KINDS) do
			local v = tonumber(h[k]) or 0
			if v > 0 then
				local bh = max(1, floor(v * CHART_H / top + 0.5))
				t[#t + 1] = fmt('<rect x="%d" y="%d" width="%d" height="%d" fill="%s">' ..
					"<title>%s UTC: %d %s</title></rect>", x0 + (k - 1) * BAR + 1,
					CHART_H + 5 - bh, BAR, bh, kind[2], hour, v, kind[1]:lower())
			end
		end
		if (n - i) % 12 == 0 then
			t[#t + 1] = fmt('<text x="%d" y="%d" font-size="11" text-anchor="middle">%s</text>',
				x0 + CHART_W / 2, CHART_H + 20, n == i and "now" or ("-" .. (n - i) .. " h"))
		end
	end
	for k, kind in ipairs(KINDS) do
		t[#t + 1] = fmt('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' ..
			'<text x="%d" y="%d" font-size="11">%s</text>', 40 + (k - 1) * 110, CHART_H + 28,
			kind[2], 54 + (k - 1) * 110, CHART_H + 37, kind[1])
	end
	return concat(t) .. "</svg>"
end

local function boxes_table(head, list)
	local rows = {}
	for _, b in ipairs(list) do
		rows[#rows + 1] = {esc(b.name), bytes(b.bytes), num(b.msgs)}
	end
	return table_html({head, "Size", "Messages"}, rows)
end

-- What the dashboard answers: disk, queue, certificate, mail per hour,
-- mailboxes, last errors.
local function status_html(st)
	local sums = {0, 0, 0}
	for _, h in ipairs(st.hours) do
		for k = 1, 3 do
			sums[k] = sums[k] + h[k]
		end
	end
	local pct = st.disk_total > 0 and fmt(" (%d%%)", floor(100 * st.disk_avail / st.disk_total)) or ""
	local cert = "none"
	if st.cert_until > 0 then
		local days = floor((st.cert_until - st.now) / 86400)
		cert = fmt('<span class="%s">valid until %s (%d days)</span>', days < 14 and "off" or "on",
			esc(when(st.cert_until)), days)
	end
	local oldest = st.queued > 0 and (", oldest " .. esc(duration(st.now - st.queue_oldest))) or ""
	local errors = {}
	for i, e in ipairs(st.errors) do
		errors[i] = esc(e)
	end
	return concat {"<h2>Now</h2>", table_html({"", ""}, {
			{"Disk free", esc(bytes(st.disk_avail) .. " of " .. bytes(st.disk_total) .. pct)},
			{"Queue", '<a href="/queue">' .. num(st.queued) .. (st.queued == 1 and " message" or
				" messages") .. "</a>, " ..
				bytes(st.queue_bytes) .. oldest},
			{"Certificate", cert}}),
		"<h2>Mail, last ", num(#st.hours), " hours</h2>", chart(st.hours, st.now),
		table_html({"", "Messages"}, {{KINDS[1][1], num(sums[1])}, {KINDS[2][1], num(sums[2])},
			{KINDS[3][1], num(sums[3])}}),
		"<h2>Mailboxes</h2>", boxes_table("Domain", st.domains), boxes_table("Mailbox", st.accounts),
		"<h2>Last errors</h2>", #errors > 0 and ("<pre>" .. concat(errors, "\n") .. "</pre>") or
			"<p>None.</p>"}
end

local function dashboard(ctx)
	local info = Rumble.serverInfo()
	local rows = {}
	for _, name in ipairs(SERVICES) do
		local s = Rumble.serviceInfo(name)
		if s then
			local on = s.enabled
			rows[#rows + 1] = {esc(name),
				on and '<span class="on">running</span>' or '<span class="off">stopped</span>',
				(tonumber(s.port) or 0) > 0 and num(s.port) or "-", num(s.sessions), num(s.messages), num(s.rejected),
				bytes(s.received), bytes(s.sent),
				button(ctx, "/service", {{"name", name}, {"action", on and "stop" or "start"}},
					on and "Stop" or "Start")}
		end
	end
	local body = concat {"<p>Rumble ", esc(info.version), " on ", esc(info.os), "/",
		esc(info.arch), ", server name ", esc(info.name), ", up ", esc(duration(info.uptime)),
		".</p><h2>Services</h2>",
		table_html({"Service", "State", "Port", "Sessions", "Messages", "Rejected", "Received",
			"Sent", ""}, rows), status_html(api.status())}
	return 200, page(ctx, "Dashboard", body)
end

local function service_action(ctx)
	local name, action = ctx.form.name, ctx.form.action
	local known = false
	for _, s in ipairs(SERVICES) do
		known = known or s == name
	end
	if not known or (action ~= "start" and action ~= "stop") then
		say(ctx, false, "Unknown service or action.")
		return 400, select(2, dashboard(ctx))
	end
	local ok, why
	if action == "stop" then
		ok, why = Rumble.stopService(name)
	else
		ok, why = Rumble.startService(name)
	end
	say(ctx, ok and true or false,
		ok and (name .. (action == "stop" and " stopped." or " started."))
		or ("Cannot " .. action .. " " .. name .. ": " .. tostring(why)))
	return ok and 200 or 500, select(2, dashboard(ctx))
end

local function domain_list()
	local list = Mailman.listDomains() or {}
	sort(list)
	return list
end

local function domains(ctx, code)
	local rows = {}
	for _, d in ipairs(domain_list()) do
		local n = #(Mailman.listAccounts(d) or {})
		rows[#rows + 1] = {'<a href="/accounts?domain=' .. esc(urlenc(d)) .. '">' .. esc(d) .. "</a>",
			num(n), '<a href="/dns?domain=' .. esc(urlenc(d)) .. '">DNS records</a>',
			button(ctx, "/domain/delete", {{"domain", d}}, "Delete")}
	end
	local body = concat {table_html({"Domain", "Accounts", "", ""}, rows),
		'<form method="post" action="/domain/add"><fieldset><legend>Add a domain</legend>',
		csrf_field(ctx), '<label>Domain <input name="domain" required maxlength="253"></label>',
		"<button>Add domain</button></fieldset></form>"}
	return code or 200, page(ctx, "Domains", body)
end

local function valid_domain(d)
	return type(d) == "string" and #d > 0 and #d <= 253 and d:match("^[%w][%w%.%-]*$") ~= nil
end

local function domain_add(ctx)
	local d = (ctx.form.domain or ""):lower()
	if not valid_domain(d) then
		say(ctx, false, "Not a domain name: " .. d)
		return domains(ctx, 400)
	end
	local ok, why = Mailman.createDomain(d)
	local warn = ""
	if ok and #domain_list() == 2 then -- as the CLI says (MM_SECOND_DOMAIN_WARNING)
		warn = " Warning: two domains now: logins by bare user name (alice) no longer work, " ..
			"clients must log in with the full address (alice@example.org)."
	end
	say(ctx, ok and true or false, ok and ("Domain " .. d .. " added." .. warn) or tostring(why))
	return domains(ctx, ok and 200 or 400)
end

-- The page that asks before a delete: its button posts the same form
-- again with confirm=yes.
local function confirm(ctx, action, fields, question, back, yes)
	fields[#fields + 1] = {"confirm", "yes"}
	local body = concat {"<p>", esc(question), "</p><p>", button(ctx, action, fields, yes or "Yes, delete"),
		' <a href="', esc(back), '">Cancel</a></p>'}
	return 200, page(ctx, "Confirm", body)
end

local function domain_delete(ctx)
	local d = ctx.form.domain or ""
	local ok, why = false, "no such domain"
	if valid_domain(d) and ctx.form.confirm ~= "yes" then
		local n = #(Mailman.listAccounts(d) or {})
		return confirm(ctx, "/domain/delete", {{"domain", d}}, fmt("Delete the domain %s and " ..
			"its %d account%s? Their mail stays on disk.", d, n, n == 1 and "" or "s"), "/domains")
	end
	if valid_domain(d) then
		ok, why = Mailman.deleteDomain(d)
	end
	say(ctx, ok and true or false, ok and ("Domain " .. d .. " deleted.") or tostring(why))
	return domains(ctx, ok and 200 or 400)
end

local function domain_exists(d)
	for _, x in ipairs(domain_list()) do
		if x == d then
			return true
		end
	end
	return false
end

-- The records of rumble dns DOMAIN --check, each with its mark: green
-- when found as it should be, red when a required one is missing or wrong.
local MARKS = {ok = "ok", MISSING = "err", WRONG = "err"}

local function dns_page(ctx)
	local d = ctx.query.domain or ""
	if not valid_domain(d) or not domain_exists(d) then
		say(ctx, false, "No such domain: " .. d)
		return domains(ctx, 404)
	end
	local text, problems = api.dns(d)
	if not text then
		say(ctx, false, "DNS: " .. tostring(problems))
		return domains(ctx, 500)
	end
	local rows, notes = {}, {}
	for line in text:gmatch("[^\n]+") do
		local mark, rest = line:match("^(%S+)%s+(.*)$")
		local bare = line:match("^%s*(.-)$")
		if bare:sub(1, 1) == ";" then
			notes[#notes + 1] = "<li>" .. esc(bare:sub(3)) .. "</li>"
		elseif mark and MARKS[mark] then
			rows[#rows + 1] = {fmt('<span class="msg %s">%s</span>', MARKS[mark], esc(mark)),
				"<code>" .. esc(rest) .. "</code>"}
		elseif mark == "-" then
			rows[#rows + 1] = {"optional", "<code>" .. esc(rest) .. "</code>"}
		else
			rows[#rows + 1] = {"not checked", "<code>" .. esc(bare) .. "</code>"}
		end
	end
	say(ctx, problems == 0, problems == 0 and "Every required record is in place." or
		fmt("%d record%s missing or wrong (marked red).", problems, problems == 1 and " is" or
			"s are"))
	local body = concat {"<p>Publish these records at the domain's DNS provider ",
		"(<code>rumble dns ", esc(d), "</code> prints them ready to paste).</p>",
		table_html({"", "Record"}, rows), "<ul>", concat(notes), "</ul>"}
	return 200, page(ctx, "DNS records of " .. d, body)
end

local function accounts(ctx, code)
	local d = ctx.domain or ctx.query.domain or ""
	if not valid_domain(d) or not domain_exists(d) then
		say(ctx, false, "No such domain: " .. d)
		return domains(ctx, 404)
	end
	local list = Mailman.listAccounts(d) or {}
	sort(list, function(a, b) return a.name < b.name end)
	local rows = {}
	for _, a in ipairs(list) do
		local who = {{"domain", d}, {"name", a.name}}
		local pw, quota = "", ""
		if a.type == "mailbox" then
			local set, used = api.quota(d, a.name)
			quota = concat {'<form class="inline" method="post" action="/account/quota">',
				csrf_field(ctx), '<input type="hidden" name="domain" value="', esc(d), '">',
				'<input type="hidden" name="name" value="', esc(a.name), '">',
				'<input name="quota" size="14" value="', esc(set or ""), '" ',
				'title="storage (100M, 2G, none, default) and messages"> <button>Set quota</button>',
				"</form> ", esc(used or "")}
			pw = concat {'<form class="inline" method="post" action="/account/password">',
				csrf_field(ctx), '<input type="hidden" name="domain" value="', esc(d), '">',
				'<input type="hidden" name="name" value="', esc(a.name), '">',
				'<input type="password" name="password" placeholder="new password" ',
				'autocomplete="new-password" required> <button>Set password</button></form>'}
		end
		local profile = ""
		if a.type == "mailbox" and not a.name:find("[*?]") then
			profile = concat {'<a href="/account/mobileconfig?domain=', esc(urlenc(d)), "&amp;name=",
				esc(urlenc(a.name)), '" title="a .mobileconfig for iPhone, iPad and Mac">',
				"Apple profile</a> "}
		end
		rows[#rows + 1] = {esc(a.name .. "@" .. d), esc(a.type), esc(a.arguments), pw, quota,
			profile .. button(ctx, "/account/delete", who, "Delete")}
	end
	local body = concat {table_html({"Address", "Type", "Delivers to", "Password", "Quota", ""},
			rows),
		'<form method="post" action="/account/add"><fieldset><legend>Add an account</legend>',
		csrf_field(ctx), '<input type="hidden" name="domain" value="', esc(d), '">',
		'<label>Name <input name="name" required maxlength="64"> @', esc(d), "</label>",
		'<label>Type <select name="type"><option value="mailbox">mailbox</option>',
		'<option value="alias">alias</option></select></label>',
		'<label>Password (mailbox) <input type="password" name="password" ',
		'autocomplete="new-password"></label>',
		'<label>Deliver to (alias: addresses, separated by spaces) <input name="targets" ',
		'size="50"></label><button>Add account</button></fieldset></form>'}
	return code or 200, page(ctx, "Accounts of " .. d, body)
end

local function valid_name(n)
	return type(n) == "string" and #n > 0 and #n <= 64 and n:match("^[%w%.%-_+=*?]+$") ~= nil
end

-- The alias targets: "a@x b@y" checked; nil and why when one is wrong.
local function targets(s)
	local t = {}
	for a in (s or ""):gmatch("[^%s,]+") do
		if not a:match("^[%w%.%-_+=]+@[%w][%w%.%-]*$") or #a > 320 then
			return nil, "Not an address: " .. a
		end
		t[#t + 1] = a:lower()
	end
	if #t == 0 or #t > 50 then
		return nil, "An alias needs 1 to 50 addresses."
	end
	return concat(t, " ")
end

local function account_add(ctx)
	local f = ctx.form
	local d, name = f.domain or "", (f.name or ""):lower()
	ctx.domain = d
	if not valid_domain(d) or not domain_exists(d) then
		say(ctx, false, "No such domain: " .. d)
		return domains(ctx, 400)
	end
	if not valid_name(name) then
		say(ctx, false, "Not an account name: " .. name)
		return accounts(ctx, 400)
	end
	if Mailman.accountExists(d, name) then
		say(ctx, false, name .. "@" .. d .. " exists already.")
		return accounts(ctx, 400)
	end
	local acct = {name = name, domain = d, type = f.type}
	if f.type == "mailbox" then
		if ctx.pw_why then
			say(ctx, false, ctx.pw_why .. ".")
			return accounts(ctx, 400)
		end
		if not ctx.hash then
			say(ctx, false, "A mailbox needs a password (1 to 256 characters).")
			return accounts(ctx, 400)
		end
		acct.password = ctx.hash
	elseif f.type == "alias" then
		local args, why = targets(f.targets)
		if not args then
			say(ctx, false, why)
			return accounts(ctx, 400)
		end
		acct.arguments = args
	else
		say(ctx, false, "Unknown account type.")
		return accounts(ctx, 400)
	end
	local ok, why = Mailman.saveAccount(acct)
	say(ctx, ok and true or false, ok and (name .. "@" .. d .. " added.") or tostring(why))
	return accounts(ctx, ok and 200 or 400)
end

-- The domain and name an account form names; nil (the page says why)
-- when they are not valid.
local function account_named(ctx)
	local d, name = ctx.form.domain or "", ctx.form.name or ""
	ctx.domain = d
	if valid_domain(d) and valid_name(name) then
		return d, name
	end
	say(ctx, false, "No such account.")
end

local function account_password(ctx)
	local d, name = account_named(ctx)
	if not d then
		return domains(ctx, 400)
	end
	local a = Mailman.readAccount(d, name)
	if not a or a.type ~= "mailbox" then
		say(ctx, false, "No such mailbox: " .. name .. "@" .. d)
		return accounts(ctx, 400)
	end
	if ctx.pw_why then
		say(ctx, false, ctx.pw_why .. ".")
		return accounts(ctx, 400)
	end
	if not ctx.hash then
		say(ctx, false, "The password must have 1 to 256 characters.")
		return accounts(ctx, 400)
	end
	local ok, why = Mailman.saveAccount({id = a.id, password = ctx.hash})
	say(ctx, ok and true or false,
		ok and ("Password of " .. name .. "@" .. d .. " changed.") or tostring(why))
	return accounts(ctx, ok and 200 or 400)
end

-- A mailbox's own quota: "STORAGE [MESSAGES]" (100M 5000, none, default).
local function account_quota(ctx)
	local d, name = account_named(ctx)
	if not d then
		return domains(ctx, 400)
	end
	local q = ctx.form.quota or ""
	if #q > 60 or not q:match("^[%w ]+$") then
		say(ctx, false, "A quota is a size (100M, 2G, none, default) and optionally a message count.")
		return accounts(ctx, 400)
	end
	local ok, why = api.setquota(d, name, q)
	say(ctx, ok and true or false,
		ok and ("Quota of " .. name .. "@" .. d .. " set: " .. q .. ".") or tostring(why))
	return accounts(ctx, ok and 200 or 400)
end

local function account_delete(ctx)
	local d, name = account_named(ctx)
	if not d then
		return domains(ctx, 400)
	end
	if ctx.form.confirm ~= "yes" then
		return confirm(ctx, "/account/delete", {{"domain", d}, {"name", name}},
			"Delete the account " .. name .. "@" .. d .. "? Its mail stays on disk.",
			"/accounts?domain=" .. urlenc(d))
	end
	local ok, why = Mailman.deleteAccount(d, name)
	say(ctx, ok and true or false, ok and (name .. "@" .. d .. " deleted.") or tostring(why))
	return accounts(ctx, ok and 200 or 400)
end

-- GET /account/mobileconfig?domain=&name=: the mailbox's Apple profile
-- (iPhone, iPad, macOS: Settings installs it), as a download.
local function account_mobileconfig(ctx)
	local d, name = ctx.query.domain or "", ctx.query.name or ""
	local doc = valid_domain(d) and valid_name(name) and api.mobileconfig(d, name)
	if not doc then
		return 404, error_body(404)
	end
	local file = (name .. "@" .. d):gsub("[^%w%.%-_@+=]", "_")
	return 200, doc, {'Content-Disposition: attachment; filename="' .. file .. '.mobileconfig"'},
		"application/x-apple-aspen-config"
end

-- ---- my account: what any mailbox user may see and change ----

-- ---- my filters: rules and vacation kept as a Sieve script ----

local FORM_MARK = "# Made by Rumble's web admin filter form; edit it there."
local RULE_FIELDS = {from = "From", to = "To", subject = "Subject", header = "header"}
local RULE_ACTIONS = {move = "move to folder", forward = "forward a copy to",
	read = "mark as read", discard = "delete"}
local RULES_MAX = 50

local function sq(s) -- a Sieve quoted string
	return '"' .. (tostring(s):gsub('[\\"]', "\\%0")) .. '"'
end

local function words(list)
	local t = {}
	for _, w in ipairs(list) do
		t[#t + 1] = urlenc(w or "")
	end
	return concat(t, " ")
end

local function unwords(line)
	local t = {}
	for w in (line .. " "):gmatch("([^ ]*) ") do
		t[#t + 1] = urldec(w)
	end
	return t
end

-- The script of rules ({field, header, op, value, action, arg}) and vac
-- ({days, subject, text} or nil). The form's own comments come first in
-- each part, so the form can read them back.
local function rule_test(r)
	return fmt("header :%s %s %s", r.op, sq(r.field == "header" and r.header or r.field), sq(r.value))
end

-- The away message comes first, so that a rule's stop does not skip it,
-- but not for mail a rule deletes.
local function vacation_part(rules, vac, t)
	local drop = {}
	for _, r in ipairs(rules) do
		if r.action == "discard" then
			drop[#drop + 1] = rule_test(r)
		end
	end
	t[#t + 1] = "# vacation: " .. words {tostring(vac.days), vac.subject, vac.text}
	local v = fmt("vacation :days %d :subject %s %s;", vac.days, sq(vac.subject), sq(vac.text))
	t[#t + 1] = #drop == 0 and v or fmt("if not anyof (%s) { %s }", concat(drop, ", "), v)
end

local function rules_script(rules, vac)
	local t = {FORM_MARK, 'require ["fileinto", "imap4flags", "mailbox", "copy", "vacation"];'}
	if vac then
		vacation_part(rules, vac, t)
	end
	for _, r in ipairs(rules) do
		t[#t + 1] = "# rule: " .. words {r.field, r.header, r.op, r.value, r.action, r.arg}
		local act = r.action == "move" and "fileinto :create " .. sq(r.arg) .. "; stop;"
			or r.action == "forward" and "redirect :copy " .. sq(r.arg) .. ";"
			or r.action == "read" and 'addflag "\\\\Seen";' or "discard; stop;"
		t[#t + 1] = fmt("if %s { %s }", rule_test(r), act)
	end
	return concat(t, "\r\n") .. "\r\n"
end

-- The rules and vacation of a script the form made; nil when there is a
-- script the form did not make.
local function script_rules(text)
	local rules, vac = {}, nil
	if text and text:sub(1, #FORM_MARK) ~= FORM_MARK then
		return nil
	end
	for line in (text or ""):gmatch("[^\r\n]+") do
		local r, v = line:match("^# rule: (.*)$"), line:match("^# vacation: (.*)$")
		if r then
			local f = unwords(r)
			rules[#rules + 1] = {field = f[1], header = f[2], op = f[3], value = f[4], action = f[5],
				arg = f[6]}
		elseif v then
			local f = unwords(v)
			vac = {days = tonumber(f[1]) or 7, subject = f[2] or "", text = f[3] or ""}
		end
	end
	return rules, vac
end

local function option(value, label, selected)
	return fmt('<option value="%s"%s>%s</option>', esc(value), value == selected and " selected" or "",
		esc(label))
end

local function rule_row(ctx, i, r)
	local what = r.field == "header" and r.header or RULE_FIELDS[r.field] or r.field
	return {esc(what .. " " .. (r.op == "is" and "is" or "contains") .. ' "' .. r.value .. '"'),
		esc((RULE_ACTIONS[r.action] or r.action) .. (r.arg and r.arg ~= "" and " " .. r.arg or "")),
		button(ctx, "/me/rule/delete", {{"n", tostring(i)}}, "Delete")}
end

-- The filter part of the My account page.
local function filters_html(ctx, d, name)
	local text = api.sieve(d, name)
	local rules, vac = script_rules(text)
	local t = {"<h2>Filters</h2>"}
	if not rules then
		t[#t + 1] = "<p>Your filter script was written by hand: edit it below. " ..
			button(ctx, "/me/sieve", {{"script", ""}}, "Start over with the form") ..
			" (removes the script).</p>"
	else
		local rows = {}
		for i, r in ipairs(rules) do
			rows[#rows + 1] = rule_row(ctx, i, r)
		end
		if #rows > 0 then
			t[#t + 1] = table_html({"When", "Then", ""}, rows)
		end
		local fields, actions = {}, {}
		for _, k in ipairs {"from", "to", "subject", "header"} do
			fields[#fields + 1] = option(k, k == "header" and "the header named" or RULE_FIELDS[k])
		end
		for _, k in ipairs {"move", "forward", "read", "discard"} do
			actions[#actions + 1] = option(k, RULE_ACTIONS[k])
		end
		t[#t + 1] = concat {'<form method="post" action="/me/rule/add"><fieldset>',
			"<legend>Add a rule</legend>", csrf_field(ctx),
			'<label>When <select name="field">', concat(fields), "</select> ",
			'<input name="header" size="16" placeholder="header name"></label>',
			'<label><select name="op">', option("contains", "contains"), option("is", "is"),
			'</select> <input name="value" size="30" required maxlength="200"></label>',
			'<label>Then <select name="action">', concat(actions), "</select> ",
			'<input name="arg" size="30" placeholder="folder or address"></label>',
			"<button>Add rule</button></fieldset></form>"}
		local v = vac or {days = 7, subject = "Away", text = ""}
		t[#t + 1] = concat {'<form method="post" action="/me/vacation"><fieldset>',
			"<legend>Away message</legend>", csrf_field(ctx),
			'<label><input type="checkbox" name="on" value="1"', vac and " checked" or "",
			"> Answer mail while I am away (once per sender every few days)</label>",
			'<label>Subject <input name="subject" size="40" maxlength="200" value="', esc(v.subject),
			'"></label><label>Every <input name="days" size="3" value="', num(v.days),
			'"> days</label><label>Message <textarea name="text" rows="4" cols="60" maxlength="4000">',
			esc(v.text), "</textarea></label><button>Save away message</button></fieldset></form>"}
	end
	t[#t + 1] = concat {'<form method="post" action="/me/sieve"><fieldset>',
		"<legend>Sieve script</legend>", csrf_field(ctx),
		'<textarea name="script" rows="12" cols="80" spellcheck="false">', esc(text or ""),
		"</textarea><p>Saving replaces the rules above; errors say line:column.</p>",
		"<button>Save script</button></fieldset></form>"}
	return concat(t)
end

-- The logged-in mailbox's domain, name and account.
local function me(ctx)
	local name, d = ctx.user:match("^(.*)@([^@]*)$")
	return d, name, Mailman.readAccount(d, name)
end

local function my_account(ctx, code)
	local d, name, a = me(ctx)
	if not a then
		return 404, error_body(404)
	end
	local _, used = api.quota(d, name)
	local profile = concat {'<a href="/account/mobileconfig?domain=', esc(urlenc(d)), "&amp;name=",
		esc(urlenc(name)), '">Apple profile</a> (iPhone, iPad, Mac: sets up mail)'}
	local body = concat {"<p>Address <b>", esc(ctx.user), "</b>. Mailbox use: ",
		esc(used or "unknown"), ".</p><p>", profile, "</p>",
		'<form method="post" action="/me/password"><fieldset><legend>Change password</legend>',
		csrf_field(ctx),
		'<label>Current password <input type="password" name="current" ',
		'autocomplete="current-password" required></label>',
		'<label>New password <input type="password" name="password" ',
		'autocomplete="new-password" required></label>',
		'<label>New password again <input type="password" name="again" ',
		'autocomplete="new-password" required></label>',
		"<button>Change password</button></fieldset></form>",
		'<form method="post" action="/me/forward"><fieldset><legend>Forwarding</legend>',
		csrf_field(ctx),
		"<p>Mail to you is also sent to these addresses (a copy stays here). ",
		"Leave it empty to stop forwarding.</p>",
		'<label>Forward to <input name="targets" size="50" value="', esc(a.arguments or ""),
		'"></label><button>Save forwarding</button></fieldset></form>', filters_html(ctx, d, name)}
	return code or 200, page(ctx, "My account", body)
end

-- Stores the form's rules and vacation (none: no script).
local function save_rules(ctx, rules, vac, done)
	local d, name = me(ctx)
	local ok, why = true, nil
	if #rules == 0 and not vac then
		api.sieve_off(d, name)
	else
		ok, why = api.sieve_put(d, name, rules_script(rules, vac))
	end
	say(ctx, ok and true or false, ok and done or "Not saved: " .. tostring(why))
	return ok
end

local function form_rules(ctx)
	local d, name = me(ctx)
	return script_rules(api.sieve(d, name))
end

-- POST /me/rule/add: field, header, op, value, action, arg.
local function me_rule_add(ctx)
	local f, rules = ctx.form, form_rules(ctx)
	local _, vac = form_rules(ctx)
	local r = {field = f.field, header = f.header or "", op = f.op, value = f.value or "",
		action = f.action, arg = (f.arg or ""):gsub("^%s+", ""):gsub("%s+$", "")}
	local why = not rules and "Your script was written by hand: edit it, or start over."
		or #rules >= RULES_MAX and "At most " .. RULES_MAX .. " rules."
		or not RULE_FIELDS[r.field] and "Choose From, To, Subject or a header."
		or r.field == "header" and not r.header:match("^[%w%-]+$") and "A header name is letters, digits and '-'."
		or (r.op ~= "is" and r.op ~= "contains") and "Choose contains or is."
		or (#r.value == 0 or #r.value > 200 or r.value:find("[%c]")) and "The text to look for: 1 to 200 characters."
		or not RULE_ACTIONS[r.action] and "Choose what to do."
		or r.action == "move" and (#r.arg == 0 or #r.arg > 100 or r.arg:find("[%c]")) and "Name the folder."
		or r.action == "forward" and not targets(r.arg) and "Forward to one address."
		or nil
	if not why and r.action == "forward" and r.arg:find("%s") then
		why = "Forward to one address."
	end
	if why then
		say(ctx, false, why)
		return my_account(ctx, 400)
	end
	rules[#rules + 1] = r
	return my_account(ctx, save_rules(ctx, rules, vac, "Rule added.") and 200 or 400)
end

-- POST /me/rule/delete: n.
local function me_rule_delete(ctx)
	local rules, vac = form_rules(ctx)
	local n = tonumber(ctx.form.n or "")
	if not rules or not n or not rules[n] then
		say(ctx, false, "No such rule.")
		return my_account(ctx, 400)
	end
	table.remove(rules, n)
	return my_account(ctx, save_rules(ctx, rules, vac, "Rule deleted.") and 200 or 400)
end

-- POST /me/vacation: on, days, subject, text.
local function me_vacation(ctx)
	local f, rules = ctx.form, form_rules(ctx)
	local days = tonumber(f.days or "")
	local why = not rules and "Your script was written by hand: edit it, or start over."
		or f.on and (not days or days < 1 or days > 60 or days % 1 ~= 0) and "Every 1 to 60 days."
		or f.on and (#(f.subject or "") > 200 or (f.subject or ""):find("[%c]")) and "A subject of up to 200 characters."
		or f.on and (#(f.text or "") == 0 or #f.text > 4000) and "A message of 1 to 4,000 characters."
		or nil
	if why then
		say(ctx, false, why)
		return my_account(ctx, 400)
	end
	local vac = f.on and {days = days, subject = f.subject or "", text = f.text} or nil
	return my_account(ctx, save_rules(ctx, rules, vac,
		vac and "Away message on." or "Away message off.") and 200 or 400)
end

-- POST /me/sieve: script ("" removes it).
local function me_sieve(ctx)
	local d, name = me(ctx)
	local text = ctx.form.script or ""
	if not text:find("%S") then
		api.sieve_off(d, name)
		say(ctx, true, "No filters: mail goes to your inbox.")
		return my_account(ctx)
	end
	local ok, why = api.sieve_put(d, name, text)
	say(ctx, ok and true or false, ok and "Script saved." or "Not saved: " .. tostring(why))
	return my_account(ctx, ok and 200 or 400)
end

-- POST /me/password: current, password, again. The current password is
-- checked (a left-open browser cannot take the account over).
local function me_password(ctx)
	local f = ctx.form
	if f.password ~= f.again then
		say(ctx, false, "The new passwords differ.")
		return my_account(ctx, 400)
	end
	if ctx.pw_why then
		say(ctx, false, ctx.pw_why .. ".")
		return my_account(ctx, 400)
	end
	if not ctx.hash then
		say(ctx, false, "The password must have 1 to 256 characters.")
		return my_account(ctx, 400)
	end
	if not ctx.current_ok then
		say(ctx, false, "The current password is wrong.")
		return my_account(ctx, 403)
	end
	local _, _, a = me(ctx)
	local ok, why = Mailman.saveAccount({id = a.id, password = ctx.hash})
	say(ctx, ok and true or false, ok and "Password changed." or tostring(why))
	return my_account(ctx, ok and 200 or 400)
end

-- POST /me/forward: targets ("" stops forwarding).
local function me_forward(ctx)
	local d, name, a = me(ctx)
	local list, why = "", nil
	if (ctx.form.targets or ""):find("%S") then
		list, why = targets(ctx.form.targets)
	end
	if list and (" " .. list .. " "):find(" " .. (name .. "@" .. d):lower() .. " ", 1, true) then
		list, why = nil, "Forwarding to yourself would loop."
	end
	if not list then
		say(ctx, false, (why:gsub("An alias needs", "Forwarding takes")))
		return my_account(ctx, 400)
	end
	local ok, err = Mailman.saveAccount({id = a.id, arguments = list})
	say(ctx, ok and true or false, not ok and tostring(err) or
		list == "" and "Forwarding stopped." or "Mail is now forwarded to " .. list .. ".")
	return my_account(ctx, ok and 200 or 400)
end

local function queue(ctx, status)
	local q, why = Mailman.getQueue()
	if not q then
		say(ctx, false, "Cannot read the queue: " .. tostring(why))
		q = {}
	end
	local rows = {}
	for _, m in ipairs(q) do
		local f = {{"id", m.id}}
		rows[#rows + 1] = {esc(m.id), esc(m.from == "" and "<>" or m.from),
			esc(concat(m.recipients or {}, ", ")), esc(when(m.date)), num(m.attempts),
			esc(when(m.next)), esc(m.last ~= "" and m.last or "-"), esc(bytes(m.size)),
			button(ctx, "/queue/flush", f, "Retry now") .. button(ctx, "/queue/bounce", f, "Bounce") ..
			button(ctx, "/queue/delete", f, "Delete")}
	end
	local body = fmt("<p>%d message%s waiting.</p>", #q, #q == 1 and "" or "s") ..
		table_html({"Id", "From", "To", "Queued", "Attempts", "Next try", "Deferred because",
			"Size", ""}, rows)
	return status or 200, page(ctx, "Queue", body)
end

-- POST /queue/flush|delete|bounce with id: the deliverer applies it at
-- once (after the attempt under way when the message is being sent).
local function queue_action(verb, done)
	return function(ctx)
		local id = ctx.form.id or ""
		if verb ~= "flush" and ctx.form.confirm ~= "yes" then
			return confirm(ctx, "/queue/" .. verb, {{"id", id}},
				(verb == "delete" and "Delete message " or
					"Return message to its sender: ") .. id .. "?", "/queue",
				verb == "delete" and "Yes, delete" or "Yes, bounce")
		end
		local ok, why = api.queue(verb, id, ctx.user)
		say(ctx, ok and true or false, ok and (id .. ": " .. done) or tostring(why))
		return queue(ctx, ok and 200 or 400)
	end
end

local function log_page(ctx)
	local lines = Rumble.getLog() or {}
	local t = {}
	for i = max(1, #lines - 199), #lines do
		t[#t + 1] = esc(lines[i])
	end
	return 200, page(ctx, "Log", "<p>The last " .. #t .. " lines.</p><pre>" ..
		concat(t, "\n") .. "</pre>")
end

local GET = {["/"] = dashboard, ["/domains"] = domains, ["/accounts"] = accounts,
	["/queue"] = queue, ["/log"] = log_page, ["/dns"] = dns_page,
	["/account/mobileconfig"] = account_mobileconfig, ["/me"] = my_account}
local POST = {["/service"] = service_action, ["/domain/add"] = domain_add,
	["/domain/delete"] = domain_delete, ["/account/add"] = account_add,
	["/account/password"] = account_password, ["/account/delete"] = account_delete,
	["/account/quota"] = account_quota, ["/queue/flush"] = queue_action("flush", "delivery started."),
	["/queue/delete"] = queue_action("delete", "deleted."),
	["/queue/bounce"] = queue_action("bounce", "returned to its sender."),
	["/me/password"] = me_password, ["/me/forward"] = me_forward, ["/me/rule/add"] = me_rule_add,
	["/me/rule/delete"] = me_rule_delete, ["/me/vacation"] = me_vacation, ["/me/sieve"] = me_sieve}
-- What a mailbox user who is not an admin may reach (the mobileconfig of
-- their own mailbox only: see dispatch).
local MINE = {["/"] = true, ["/me"] = true, ["/me/password"] = true, ["/me/forward"] = true,
	["/account/mobileconfig"] = true, ["/me/rule/add"] = true, ["/me/rule/delete"] = true,
	["/me/vacation"] = true, ["/me/sieve"] = true}

-- ---- login, logout ----

local function redirect(to, cookie)
	local h = {"Location: " .. to}
	if cookie then
		h[2] = "Set-Cookie: " .. cookie
	end
	return 303, "", h
end

-- POST /login: may wait (password hashing on a helper thread, then the
-- delay after a failure), so it runs outside pcall.
local function login(ctx)
	local f = ctx.form
	if not f.pre or #f.pre ~= 32 or f.pre ~= ctx.cookies.wa_pre then
		say(ctx, false, "The login form was not the latest one; please log in again.")
		return login_page(ctx, 403)
	end
	local token, csrf, user = api.login(f.user or "", f.password or "")
	if token then
		return redirect("/", "wa_sid=" .. token .. cookie_attrs())
	end
	if user and user > 0 then
		api.sleep(user) -- the delay for this failure, as POP3 and IMAP wait
	end
	if csrf == "blocked" then
		say(ctx, false, "Too many failed logins from your address; try again later.")
		return login_page(ctx, 429)
	end
	say(ctx, false, "Login failed.")
	return login_page(ctx, 403)
end

-- ---- client autoconfiguration: no login, mail clients ask ----

-- Thunderbird's autoconfig and Outlook's autodiscover (autoconf.c makes
-- the documents): status, body, content type; nil when the client went.
local function autoconf(session, req)
	local h, body = req.headers, ""
	if h["transfer-encoding"] then
		return 501, error_body(501)
	end
	local len = h["content-length"]
	if len then
		if not len:match("^%d+$") then
			return 400, error_body(400)
		end
		if #len > 9 or tonumber(len) > AUTOCONF_BODY_MAX then
			return 413, error_body(413)
		end
		len = tonumber(len)
		if len > 0 then
			local got
			body, got = session:receivebytes(len)
			if got ~= len then
				return nil
			end
		end
	end
	local target = req.path .. (req.rawquery ~= "" and "?" .. req.rawquery or "")
	local code, doc, ctype = api.autoconf(req.method, target, h.host, body)
	if code ~= 200 then
		return code, error_body(code)
	end
	return code, doc, ctype
end

-- ---- /metrics: Prometheus' text format, no login (MetricsFrom, MetricsToken) ----

local function metrics(req, ip)
	if req.method ~= "GET" then
		return 405, error_body(405), {"Allow: GET"}
	end
	local text, why = api.metrics(ip, req.headers.authorization)
	if not text then
		if why == "off" then
			return 404, error_body(404)
		end
		return 401, error_body(401), {'WWW-Authenticate: Bearer realm="rumble"'}
	end
	return 200, text, nil, "text/plain; version=0.0.4; charset=utf-8"
end

-- ---- one connection ----

local function dispatch(session, req, ip)
	local ctx = {query = req.query, form = req.form, cookies = parse_cookies(req.headers.cookie),
		ip = ip}
	local sid = ctx.cookies.wa_sid
	if sid then
		ctx.user, ctx.csrf, ctx.admin = api.session(sid)
	end
	local post = req.method == "POST"
	if req.path == "/metrics" then
		return metrics(req, ip)
	end
	if req.path == "/login" then
		if post then
			return login(ctx)
		end
		if ctx.user then
			return redirect("/")
		end
		return login_page(ctx)
	end
	if not ctx.user then
		return redirect("/login")
	end
	if post and (not ctx.form.csrf or ctx.form.csrf ~= ctx.csrf) then
		return 403, error_body(403)
	end
	if req.path == "/logout" then
		if not post then
			return 405, error_body(405), {"Allow: POST"}
		end
		api.logout(sid)
		return redirect("/login", "wa_sid=; Max-Age=0" .. cookie_attrs())
	end
	if not ctx.admin and not MINE[req.path] then
		return 403, error_body(403)
	end
	if not ctx.admin and req.path == "/account/mobileconfig" and
		((ctx.query.name or "") .. "@" .. (ctx.query.domain or "")):lower() ~= ctx.user:lower() then
		return 403, error_body(403)
	end
	local fn = (post and POST or GET)[req.path]
	if not ctx.admin and req.path == "/" then
		fn = my_account
	end
	if not fn then
		local other = (post and GET or POST)[req.path]
		if other then
			return 405, error_body(405), {"Allow: " .. (post and "GET" or "POST")}
		end
		return 404, error_body(404)
	end
	local pw = ctx.form.password
	if post and pw and #pw > 0 and #pw <= 256 and not pw:find("%z") then
		ctx.pw_why = api.password_why(pw) -- MinPasswordLength, common passwords
		if not ctx.pw_why then
			ctx.hash = api.hash(pw) -- on a helper thread, before the (non-yielding) page code
		end
	end
	if post and req.path == "/me/password" and ctx.hash and ctx.form.password == ctx.form.again then
		local cur = ctx.form.current or ""
		local ok, _, delay = api.check(ctx.user, cur)
		ctx.current_ok = ok
		if not ok and delay and delay > 0 then
			api.sleep(delay) -- as after a failed login
		end
	end
	local ok, code, body, extra, ctype = pcall(fn, ctx)
	if post and ctx.msg then -- an action was tried (not a confirmation page): the log says who
		api.audit(ctx.user, req.path, ctx.ok, ctx.msg)
	end
	if not ok then
		print("web admin: " .. tostring(code))
		return 500, error_body(500)
	end
	return code, body, extra, ctype
end

return function(session)
	local ip = api.setup()
	local req, code = read_head(session)
	if req and api.autoconf_path(req.path) then
		local c, body, ctype = autoconf(session, req)
		api.read_done()
		if c then
			respond(session, c, body, c == 405 and {"Allow: " ..
				(req.path:lower():find("autodiscover") and "POST" or "GET")} or nil, ctype)
		end
		return
	end
	if req then
		local ok
		ok, code = read_body(session, req)
		api.read_done()
		if ok then
			local c, body, extra, ctype = dispatch(session, req, ip)
			respond(session, c, body, extra, ctype)
			return
		end
	end
	if code then
		local extra = code == 405 and {"Allow: GET, POST"} or nil
		respond(session, code, error_body(code), extra)
	end
end
