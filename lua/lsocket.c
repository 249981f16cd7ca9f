/*
 * lsocket.c - "socket" and "socket.smtp" of LuaSocket for scripts:
 * require("socket.smtp") gives smtp.send, smtp.message and the constants
 * SERVER, PORT, DOMAIN, TIMEOUT and ZONE as LuaSocket documents them
 * (shared/reference/luasocket-smtp.txt); require("socket") a table with
 * _VERSION and smtp. There is no general socket API: scripts talk to
 * clients through session handles, and to other servers only this way.
 *
 * smtp.message is Lua (SMTP_LUA below): a coroutine walks the message
 * table and yields chunks. smtp.send pulls the whole source in Lua first
 * (at most MessageSizeLimit bytes), then hands the SMTP dialogue to the
 * client of outbound.c (outbound_submit) as a job on a helper thread
 * (jobs.c): the session's coroutine waits, its worker goes on. Outside a
 * session (top-level code) the dialogue runs in place and blocks.
 *
 * With create, as in LuaSocket, the dialogue is Lua (send_created) and
 * goes through the object create() returns (connect, settimeout, send,
 * receive, close), the source streamed through mime.stuff(): no pcall,
 * so that the object's methods may wait as session:receive() does.
 *
 * Where the reference is silent: the default server is the server itself
 * (SERVER "localhost" = 127.0.0.1, PORT Rumble's SMTP port), DOMAIN is
 * ServerName; the client uses STARTTLS when offered and AUTH PLAIN, else
 * LOGIN (with create: no STARTTLS, the object is the transport).
 */
#include <string.h>

#include "rl.h"

#define SUBMIT_SIZE_MAX (64u << 20) /* without a MessageSizeLimit */
#define SUBMIT_RCPT_MAX 1000        /* recipients of one smtp.send */
#define SUBMIT_TIMEOUT_MAX 600      /* s: the largest smtp.TIMEOUT used */
#define HOST_MAX 255

static const char SMTP_LUA[] =
        "local M, core, ltn12 = ...\n"
        "M.SERVER = \"localhost\"\n"
        "M.PORT = core.port\n"
        "M.DOMAIN = core.domain\n"
        "M.TIMEOUT = 60\n"
        "M.ZONE = \"-0000\"\n"
        "local DEPTH_MAX = 100 -- nesting of multipart bodies\n"
        "\n"
        "local function lower_headers(h)\n"
        "  local t = {}\n"
        "  if h ~= nil and type(h) ~= \"table\" then error(\"headers must be a table\", 0) end\n"
        "  for k, v in pairs(h or {}) do t[string.lower(tostring(k))] = v end\n"
        "  return t\n"
        "end\n"
        "\n"
        "local special = {[\"mime-version\"] = \"MIME-Version\", [\"message-id\"] = "
        "\"Message-ID\"}\n"
        "local function canonic(name)\n"
        "  return special[name] or (string.gsub(name, \"(%w)(%w*)\", function(a, b)\n"
        "    return string.upper(a) .. b\n"
        "  end))\n"
        "end\n"
        "\n"
        "-- The header block: fields sorted by name (their order carries no\n"
        "-- meaning), each \"Name: value\", then the empty line.\n"
        "local function header_text(h)\n"
        "  local names, t = {}, {}\n"
        "  for k in pairs(h) do names[#names + 1] = k end\n"
        "  table.sort(names)\n"
        "  for _, k in ipairs(names) do\n"
        "    t[#t + 1] = canonic(k) .. \": \" .. tostring(h[k]) .. \"\\r\\n\"\n"
        "  end\n"
        "  t[#t + 1] = \"\\r\\n\"\n"
        "  return table.concat(t)\n"
        "end\n"
        "\n"
        "local yield = coroutine.yield\n"
        "local send_message\n"
        "\n"
        "local function send_multipart(mesgt, h, depth)\n"
        "  local body, bd = mesgt.body, core.boundary()\n"
        "  h[\"content-type\"] = (h[\"content-type\"] or \"multipart/mixed\") ..\n"
        "    '; boundary=\"' .. bd .. '\"'\n"
        "  yield(header_text(h))\n"
        "  if body.preamble then\n"
        "    yield(tostring(body.preamble))\n"
        "    yield(\"\\r\\n\")\n"
        "  end\n"
        "  local i = 1\n"
        "  while body[i] ~= nil do\n"
        "    yield(\"\\r\\n--\" .. bd .. \"\\r\\n\")\n"
        "    send_message(body[i], depth + 1)\n"
        "    i = i + 1\n"
        "  end\n"
        "  yield(\"\\r\\n--\" .. bd .. \"--\\r\\n\\r\\n\")\n"
        "  if body.epilogue then\n"
        "    yield(tostring(body.epilogue))\n"
        "    yield(\"\\r\\n\")\n"
        "  end\n"
        "end\n"
        "\n"
        "local function send_source(mesgt, h)\n"
        "  h[\"content-type\"] = h[\"content-type\"] or 'text/plain; charset=\"iso-8859-1\"'\n"
        "  yield(header_text(h))\n"
        "  while true do\n"
        "    local chunk, err = mesgt.body()\n"
        "    if err then\n"
        "      yield(nil, err)\n"
        "      return\n"
        "    end\n"
        "    if not chunk then return end\n"
        "    yield(chunk)\n"
        "  end\n"
        "end\n"
        "\n"
        "local function send_string(mesgt, h)\n"
        "  h[\"content-type\"] = h[\"content-type\"] or 'text/plain; charset=\"iso-8859-1\"'\n"
        "  yield(header_text(h) .. tostring(mesgt.body or \"\"))\n"
        "end\n"
        "\n"
        "function send_message(mesgt, depth)\n"
        "  if type(mesgt) ~= \"table\" then error(\"message part is not a table\", 0) end\n"
        "  if depth > DEPTH_MAX then error(\"message nested too deeply\", 0) end\n"
        "  local h, kind = lower_headers(mesgt.headers), type(mesgt.body)\n"
        "  if kind == \"table\" then\n"
        "    send_multipart(mesgt, h, depth)\n"
        "  elseif kind == \"function\" then\n"
        "    send_source(mesgt, h)\n"
        "  elseif kind == \"string\" or kind == \"number\" or kind == \"nil\" then\n"
        "    send_string(mesgt, h)\n"
        "  else\n"
        "    error(\"invalid message body (\" .. kind .. \")\", 0)\n"
        "  end\n"
        "end\n"
        "\n"
        "-- The top level's headers: a date, a mailer and MIME-Version 1.0.\n"
        "local function adjust_headers(mesgt)\n"
        "  local h = lower_headers(mesgt.headers)\n"
        "  h[\"date\"] = h[\"date\"] or os.date(\"!%a, %d %b %Y %H:%M:%S \") .. (mesgt.zone or "
        "M.ZONE)\n"
        "  h[\"x-mailer\"] = h[\"x-mailer\"] or core.mailer\n"
        "  h[\"mime-version\"] = \"1.0\"\n"
        "  return h\n"
        "end\n"
        "\n"
        "-- A simple LTN12 source of the message mesgt: nothing is read or encoded\n"
        "-- before it is asked for.\n"
        "function M.message(mesgt)\n"
        "  if type(mesgt) ~= \"table\" then\n"
        "    error(\"bad argument #1 to 'message' (table expected, got \" .. type(mesgt) .. \")\", "
        "2)\n"
        "  end\n"
        "  local top = {headers = adjust_headers(mesgt), body = mesgt.body}\n"
        "  local co = coroutine.create(function() send_message(top, 1) end)\n"
        "  return function()\n"
        "    if coroutine.status(co) == \"dead\" then return nil end\n"
        "    local ok, chunk, err = coroutine.resume(co)\n"
        "    if not ok then error(chunk, 0) end\n"
        "    return chunk, err\n"
        "  end\n"
        "end\n"
        "\n"
        "-- The message, pulled in whole first: its chunks, at most core.size_max\n"
        "-- bytes (C joins them outside the script's memory).\n"
        "local function pull(src, step)\n"
        "  local chunks, size = {}, 0\n"
        "  local ok, err = ltn12.pump.all(src, function(chunk)\n"
        "    if chunk then\n"
        "      size = size + #chunk\n"
        "      if size > core.size_max then return nil, \"message too large (MessageSizeLimit)\" "
        "end\n"
        "      chunks[#chunks + 1] = chunk\n"
        "    end\n"
        "    return 1\n"
        "  end, step)\n"
        "  if not ok then return nil, err end\n"
        "  return chunks\n"
        "end\n"
        "\n"
        "local function recipients(rcpt)\n"
        "  if type(rcpt) == \"string\" then return {rcpt} end\n"
        "  if type(rcpt) ~= \"table\" then return nil, \"no recipient (rcpt)\" end\n"
        "  local list = {}\n"
        "  for i, r in ipairs(rcpt) do\n"
        "    if type(r) ~= \"string\" then return nil, \"recipient \" .. i .. \" is not a string\" "
        "end\n"
        "    if i > core.rcpt_max then return nil, \"too many recipients\" end\n"
        "    list[i] = r\n"
        "  end\n"
        "  if #list == 0 then return nil, \"no recipient (rcpt)\" end\n"
        "  return list\n"
        "end\n"
        "\n"
        "-- smtp.send with create: LuaSocket's dialogue through the object that\n"
        "-- create() returns (connect, settimeout, send, receive, close), streamed.\n"
        "local REPLY_LINES_MAX = 100\n"
        "\n"
        "-- One reply, its lines joined by \"\\n\": the code and the text, or nil and\n"
        "-- what failed.\n"
        "local function reply(c)\n"
        "  local line, err = c:receive()\n"
        "  if not line then return nil, err or \"closed\" end\n"
        "  local code, sep = string.match(line, \"^(%d%d%d)(.?)\")\n"
        "  if not code then return nil, \"invalid server reply\" end\n"
        "  local text, n = line, 1\n"
        "  while sep == \"-\" do\n"
        "    line, err = c:receive()\n"
        "    if not line then return nil, err or \"closed\" end\n"
        "    n = n + 1\n"
        "    if n > REPLY_LINES_MAX then return nil, \"server reply too long\" end\n"
        "    local cur\n"
        "    cur, sep = string.match(line, \"^(%d%d%d)(.?)\")\n"
        "    if cur ~= code then sep = \"-\" end\n"
        "    text = text .. \"\\n\" .. line\n"
        "  end\n"
        "  return tonumber(code), text\n"
        "end\n"
        "\n"
        "-- A reply of class want (2 or 3); else nil and the reply, or what failed.\n"
        "local function check(c, want)\n"
        "  local code, text = reply(c)\n"
        "  if code and math.floor(code / 100) ~= want then return nil, text end\n"
        "  return code, text\n"
        "end\n"
        "\n"
        "local function command(c, line, want)\n"
        "  local ok, err = c:send(line .. \"\\r\\n\")\n"
        "  if not ok then return nil, err end\n"
        "  return check(c, want)\n"
        "end\n"
        "\n"
        "-- The greeting, then EHLO (HELO when EHLO is refused): the EHLO reply.\n"
        "local function greet(c, domain)\n"
        "  local ok, ext = check(c, 2)\n"
        "  if not ok then return nil, ext end\n"
        "  ok, ext = command(c, \"EHLO \" .. domain, 2)\n"
        "  if not ok and string.match(ext or \"\", \"^5\") then\n"
        "    ok, ext = command(c, \"HELO \" .. domain, 2)\n"
        "  end\n"
        "  if not ok then return nil, ext end\n"
        "  return ext\n"
        "end\n"
        "\n"
        "-- AUTH PLAIN, else LOGIN, when both user and password are given.\n"
        "local function auth(c, user, password, ext)\n"
        "  if not user or not password then return 1 end\n"
        "  local b64 = require(\"mime\").b64\n"
        "  user, password = tostring(user), tostring(password)\n"
        "  if string.find(ext, \"AUTH[^\\n]+PLAIN\") then\n"
        "    return command(c, \"AUTH PLAIN \" .. b64(\"\\0\" .. user .. \"\\0\" .. password), 2)\n"
        "  elseif string.find(ext, \"AUTH[^\\n]+LOGIN\") then\n"
        "    local ok, err = command(c, \"AUTH LOGIN\", 3)\n"
        "    if ok then ok, err = command(c, b64(user), 3) end\n"
        "    if ok then ok, err = command(c, b64(password), 2) end\n"
        "    return ok, err\n"
        "  end\n"
        "  return nil, \"authentication not supported\"\n"
        "end\n"
        "\n"
        "-- DATA: the source dot-stuffed, then the dot on a line of its own.\n"
        "local function data(c, src, step)\n"
        "  local ok, err = command(c, \"DATA\", 3)\n"
        "  if not ok then return nil, err end\n"
        "  local last = \"\\r\\n\"\n"
        "  local function sink(chunk)\n"
        "    if chunk and chunk ~= \"\" then\n"
        "      local sent, e = c:send(chunk)\n"
        "      if not sent then return nil, e end\n"
        "      last = string.sub(last .. chunk, -2)\n"
        "    end\n"
        "    return 1\n"
        "  end\n"
        "  local stuffed = ltn12.source.chain(src, require(\"mime\").stuff())\n"
        "  ok, err = ltn12.pump.all(stuffed, sink, step)\n"
        "  if ok then ok, err = c:send(last == \"\\r\\n\" and \".\\r\\n\" or"
        " \"\\r\\n.\\r\\n\") end\n"
        "  if not ok then return nil, err end\n"
        "  return check(c, 2)\n"
        "end\n"
        "\n"
        "local function dialogue(c, mailt, domain, from, list)\n"
        "  local ext, err = greet(c, domain)\n"
        "  local ok = ext\n"
        "  if ok then ok, err = auth(c, mailt.user, mailt.password, ext) end\n"
        "  if ok then ok, err = command(c, \"MAIL FROM:\" .. from, 2) end\n"
        "  for _, r in ipairs(list) do\n"
        "    if ok then ok, err = command(c, \"RCPT TO:\" .. r, 2) end\n"
        "  end\n"
        "  if ok then ok, err = data(c, mailt.source, mailt.step) end\n"
        "  -- the message is taken: QUIT's reply changes nothing\n"
        "  if ok then command(c, \"QUIT\", 2) end\n"
        "  return ok, err\n"
        "end\n"
        "\n"
        "-- \"<a@b>\" for \"a@b\" or \"<a@b>\"; nil for what would break the command.\n"
        "local function path(a)\n"
        "  local bare = string.match(a, \"^<(.*)>$\") or a\n"
        "  if #bare > 320 or string.find(bare, \"[%c <>]\") then return nil end\n"
        "  return \"<\" .. bare .. \">\"\n"
        "end\n"
        "\n"
        "local function send_created(mailt, list)\n"
        "  local from, paths, domain = path(mailt.from), {}, mailt.domain or M.DOMAIN\n"
        "  if not from then return nil, \"bad sender address: \" .. mailt.from end\n"
        "  for i, r in ipairs(list) do\n"
        "    paths[i] = path(r)\n"
        "    if not paths[i] then return nil, \"bad recipient address: \" .. r end\n"
        "  end\n"
        "  if type(domain) ~= \"string\" or string.find(domain, \"[%c ]\") then\n"
        "    return nil, \"bad domain\"\n"
        "  end\n"
        "  local c, err = mailt.create()\n"
        "  if not c then return nil, err or \"create gave no socket\" end\n"
        "  c:settimeout(M.TIMEOUT)\n"
        "  local ok\n"
        "  ok, err = c:connect(mailt.server or M.SERVER, mailt.port or M.PORT)\n"
        "  if ok then ok, err = dialogue(c, mailt, domain, from, paths) end\n"
        "  c:close()\n"
        "  if not ok then return nil, err end\n"
        "  return 1\n"
        "end\n"
        "\n"
        "-- smtp.send{from, rcpt, source, [user, password, server, port, domain,\n"
        "-- step, create]}: 1, or nil and the reply or error that stopped it.\n"
        "function M.send(mailt)\n"
        "  if type(mailt) ~= \"table\" then\n"
        "    error(\"bad argument #1 to 'send' (table expected, got \" .. type(mailt) .. \")\", "
        "2)\n"
        "  end\n"
        "  if type(mailt.from) ~= \"string\" then return nil, \"no sender (from)\" end\n"
        "  local list, err = recipients(mailt.rcpt)\n"
        "  if not list then return nil, err end\n"
        "  if type(mailt.source) ~= \"function\" then return nil, \"no message source (source)\" "
        "end\n"
        "  if mailt.create ~= nil then return send_created(mailt, list) end\n"
        "  local data\n"
        "  data, err = pull(mailt.source, mailt.step)\n"
        "  if not data then return nil, err end\n"
        "  return core.send(mailt.server or M.SERVER, mailt.port or M.PORT, mailt.domain or "
        "M.DOMAIN,\n"
        "    mailt.from, list, data, mailt.user, mailt.password, M.TIMEOUT)\n"
        "end\n"
        "\n"
        "return M\n";

/* smtp.send's dialogue on a helper thread (jobs.c). */
struct submit {
	struct rl_job j;
	struct ob_submit m;
	char host[HOST_MAX + 1], helo[HOST_MAX + 1], from[OB_ADDR_MAX + 1];
	char user[OB_AUTH_MAX + 1], password[OB_AUTH_MAX + 1];
	char **rcpt;
	char *data;
	int rc;
	char err[OB_REPLY_MAX + 128];
};

static void submit_run(struct rl_job *j)
{
	struct submit *s = (struct submit *)j;
	s->m.deadline = j->deadline;
	s->rc = outbound_submit(&s->m, s->err, sizeof s->err);
	if (s->rc != 0 && j->deadline && os_now_ms() >= j->deadline) {
		snprintf(s->err, sizeof s->err,
		        "gave up at the script's time limit (LuaTimeLimit %d s): smtp.send waits "
		        "in place here (top-level code or the mailman hook)",
		        conf.lua_time_limit);
	}
}

static int submit_push(lua_State *L, struct rl_job *j)
{
	struct submit *s = (struct submit *)j;
	if (s->rc != 0) {
		return rl_fail(L, "%s", s->err);
	}
	lua_pushinteger(L, 1);
	return 1;
}

static void submit_done(struct rl_job *j)
{
	struct submit *s = (struct submit *)j;
	for (int i = 0; i < s->m.nrcpt; i++) {
		free(s->rcpt[i]);
	}
	free(s->rcpt);
	free(s->data);
	memset(s->password, 0, sizeof s->password);
}

/* An address as "<a@b>" or "a@b" without the brackets into out (room
 * for OB_ADDR_MAX); -1 when it is too long or holds what would break
 * the command line (controls, spaces, brackets inside). */
static int bare_addr(const char *a, char *out)
{
	size_t n = strlen(a);
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		a++;
		n -= 2;
	}
	if (n > OB_ADDR_MAX) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c <= ' ' || c == 0x7f || c == '<' || c == '>') {
			return -1;
		}
	}
	memcpy(out, a, n);
	out[n] = '\0';
	return 0;
}

/* A string argument that fits in n bytes with no control character
 * (a NUL would cut it short; CR/LF would start another command). */
static int clean_str(const char *s, size_t len, size_t n)
{
	if (len >= n) {
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < ' ') {
			return 0;
		}
	}
	return 1;
}

/* Arguments 1-3 and 7-9 into s: 0, or -1 with the reason pushed. */
static int submit_server(lua_State *L, struct submit *s)
{
	size_t hl, dl, ul = 0, pl = 0;
	const char *host = luaL_checklstring(L, 1, &hl);
	lua_Integer port = luaL_checkinteger(L, 2);
	const char *helo = luaL_checklstring(L, 3, &dl);
	const char *user = luaL_optlstring(L, 7, NULL, &ul);
	const char *pass = luaL_optlstring(L, 8, NULL, &pl);
	lua_Number tmo = luaL_optnumber(L, 9, 60);
	if (!clean_str(host, hl, sizeof s->host) || !clean_str(helo, dl, sizeof s->helo) ||
	        strchr(helo, ' ') || port < 1 || port > 65535) {
		rl_fail(L, "bad server, port or domain");
		return -1;
	}
	if ((user && !clean_str(user, ul, sizeof s->user)) ||
	        (pass && !clean_str(pass, pl, sizeof s->password))) {
		rl_fail(L, "bad user or password");
		return -1;
	}
	memcpy(s->host, host, hl + 1);
	memcpy(s->helo, helo, dl + 1);
	s->m.port = (int)port;
	s->m.timeout_ms = 1000 * (tmo < 1                           ? 1
	                                 : tmo > SUBMIT_TIMEOUT_MAX ? SUBMIT_TIMEOUT_MAX
	                                                            : (int)tmo);
	if (user && pass) { /* as LuaSocket: AUTH only with both */
		memcpy(s->user, user, ul + 1);
		memcpy(s->password, pass, pl + 1);
		s->m.user = s->user;
		s->m.password = s->password;
	}
	return 0;
}

/* The size of the chunks in table i (strings), or -1. */
static long chunks_size(lua_State *L, int i)
{
	size_t total = 0, len;
	int n = (int)lua_objlen(L, i);
	for (int k = 1; k <= n; k++) {
		lua_rawgeti(L, i, k);
		if (lua_type(L, -1) != LUA_TSTRING) {
			return -1;
		}
		lua_tolstring(L, -1, &len);
		lua_pop(L, 1);
		total += len;
		if (total > SUBMIT_SIZE_MAX) {
			return -1;
		}
	}
	return (long)total;
}

/* The chunks of table i joined into new C memory of len bytes. */
static char *chunks_join(lua_State *L, int i, size_t len)
{
	char *p = xmalloc(len + 1);
	size_t off = 0, n;
	for (int k = 1; k <= (int)lua_objlen(L, i); k++) {
		lua_rawgeti(L, i, k);
		const char *s = lua_tolstring(L, -1, &n);
		memcpy(p + off, s, n);
		off += n;
		lua_pop(L, 1);
	}
	p[off] = '\0';
	return p;
}

/* core.send(server, port, domain, from, rcpts, chunks, user, password,
 * timeout): what smtp.send does once the message is pulled (SMTP_LUA
 * checked the types of from and rcpts; chunks: the message's strings). */
static int smtp_core_send(lua_State *L)
{
	const char *from = luaL_checkstring(L, 4);
	luaL_checktype(L, 5, LUA_TTABLE);
	luaL_checktype(L, 6, LUA_TTABLE);
	long len = chunks_size(L, 6);
	if (len < 0) {
		return rl_fail(L, "message too large or not strings");
	}
	int n = (int)lua_objlen(L, 5);
	if (n < 1 || n > SUBMIT_RCPT_MAX) {
		return rl_fail(L, "%s", n < 1 ? "no recipient (rcpt)" : "too many recipients");
	}
	/* the job is C memory: every check that may fail comes first */
	struct submit *s = lua_newuserdata(L, sizeof *s);
	memset(s, 0, sizeof *s);
	if (bare_addr(from, s->from) != 0) {
		return rl_fail(L, "bad sender address: %s", from);
	}
	char tmp[OB_ADDR_MAX + 1];
	for (int i = 1; i <= n; i++) {
		lua_rawgeti(L, 5, i);
		const char *r = lua_tostring(L, -1);
		if (!r || bare_addr(r, tmp) != 0) {
			return rl_fail(L, "bad recipient address: %s", r ? r : "(not a string)");
		}
		lua_pop(L, 1);
	}
	if (submit_server(L, s) != 0) {
		return 2;
	}
	struct submit *j = xcalloc(1, sizeof *j);
	*j = *s;
	memset(s->password, 0, sizeof s->password);
	j->j.run = submit_run;
	j->j.push = submit_push;
	j->j.slow = 1; /* the server decides how long */
	j->j.done = submit_done;
	j->rcpt = xcalloc((size_t)n, sizeof *j->rcpt);
	for (int i = 1; i <= n; i++) {
		lua_rawgeti(L, 5, i);
		bare_addr(lua_tostring(L, -1), tmp);
		j->rcpt[i - 1] = xstrdup(tmp);
		lua_pop(L, 1);
	}
	j->data = chunks_join(L, 6, (size_t)len);
	j->m = (struct ob_submit){.host = j->host,
	        .helo = j->helo,
	        .port = s->m.port,
	        .timeout_ms = s->m.timeout_ms,
	        .user = s->m.user ? j->user : NULL,
	        .password = s->m.user ? j->password : NULL,
	        .from = j->from,
	        .rcpt = (const char *const *)j->rcpt,
	        .nrcpt = n,
	        .data = j->data,
	        .len = (size_t)len,
	        .stopping = server_stopping};
	return rl_job_call(L, &j->j);
}

/* core.boundary(): a MIME boundary no text is likely to hold (RFC 2046
 * 5.1.1: at most 70 characters; "=_" cannot occur in quoted-printable
 * or base64). */
static int smtp_core_boundary(lua_State *L)
{
	unsigned char r[12];
	char out[2 + 2 * sizeof r + 1] = "=_";
	os_random(r, sizeof r);
	for (size_t i = 0; i < sizeof r; i++) {
		out[2 + 2 * i] = "0123456789abcdef"[r[i] >> 4];
		out[3 + 2 * i] = "0123456789abcdef"[r[i] & 15];
	}
	lua_pushlstring(L, out, sizeof out - 1);
	return 1;
}

#define SOCKET_VERSION "LuaSocket 3.0 (Rumble)"

/* package.preload["socket.smtp"]: SMTP_LUA run with the module table,
 * the private core and ltn12. */
static int smtp_load(lua_State *L)
{
	if (luaL_loadbuffer(L, SMTP_LUA, sizeof SMTP_LUA - 1, "=socket.smtp") != 0) {
		return lua_error(L);
	}
	lua_newtable(L);          /* the module */
	lua_createtable(L, 0, 8); /* core */
	lua_pushcfunction(L, smtp_core_send);
	lua_setfield(L, -2, "send");
	lua_pushcfunction(L, smtp_core_boundary);
	lua_setfield(L, -2, "boundary");
	lua_pushinteger(L, conf.smtp_enable ? conf.smtp_port : 25);
	lua_setfield(L, -2, "port");
	lua_pushstring(L, conf.server_name[0] ? conf.server_name : "localhost");
	lua_setfield(L, -2, "domain");
	uint64_t size_max = conf.message_size_limit; /* 0: none set */
	lua_pushnumber(L,
	        (lua_Number)(size_max && size_max < SUBMIT_SIZE_MAX ? size_max : SUBMIT_SIZE_MAX));
	lua_setfield(L, -2, "size_max");
	lua_pushinteger(L, SUBMIT_RCPT_MAX);
	lua_setfield(L, -2, "rcpt_max");
	lua_pushliteral(L, SOCKET_VERSION);
	lua_setfield(L, -2, "mailer");
	lua_getglobal(L, "require");
	lua_pushliteral(L, "ltn12");
	lua_call(L, 1, 1);
	lua_call(L, 3, 1);
	return 1;
}

/* package.preload.socket: a table with _VERSION and smtp. */
static int socket_load(lua_State *L)
{
	lua_createtable(L, 0, 2);
	lua_pushliteral(L, SOCKET_VERSION);
	lua_setfield(L, -2, "_VERSION");
	lua_getglobal(L, "require");
	lua_pushliteral(L, "socket.smtp");
	lua_call(L, 1, 1);
	lua_setfield(L, -2, "smtp");
	return 1;
}

/* see rl.h */
void rl_open_socket(lua_State *L)
{
	rl_preload(L, "socket", socket_load);
	rl_preload(L, "socket.smtp", smtp_load);
}
