/* test_luasocket.c - LuaSocket's ltn12, mime and socket.smtp modules
 * (lua/lltn12.c, lmime.c, lsocket.c) in a plain lua_State: known answers
 * for the low-level mime functions (RFC 4648 and RFC 2045 examples, split
 * at every place), the filters, sources, sinks and pumps of ltn12,
 * smtp.message's layout, smtp.send's refusals of bad calls, and its SMTP
 * dialogue through the object of a create function (a fake socket). The
 * dialogue of outbound.c's client is tested end to end
 * (tests/e2e/test_luasocket.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/rl.h"
#include "tests/unit.h"

static lua_State *L;
static char lerr[1024];

static const char prelude[] =
        "function eq(got, want, what)\n"
        "  if got ~= want then\n"
        "    error((what or 'value') .. ': expected ' .. string.format('%q', tostring(want)) ..\n"
        "      ', got ' .. string.format('%q', tostring(got)), 2)\n"
        "  end\n"
        "end\n"
        "ltn12 = require('ltn12')\n"
        "mime = require('mime')\n"
        "smtp = require('socket.smtp')\n"
        /* a whole source as one string */
        "function drain(src)\n"
        "  local t = {}\n"
        "  local snk = ltn12.sink.table(t)\n"
        "  assert(ltn12.pump.all(src, snk))\n"
        "  return table.concat(t)\n"
        "end\n";

static void state_close(void)
{
	if (L) {
		lua_close(L);
		L = NULL;
	}
}

static int run(const char *code)
{
	int rc = luaL_dostring(L, code);
	lerr[0] = '\0';
	if (rc != 0) {
		const char *m = lua_tostring(L, -1);
		snprintf(lerr, sizeof lerr, "%s", m ? m : "(error without a message)");
	}
	lua_settop(L, 0);
	return rc ? -1 : 0;
}

static void state_open(void)
{
	state_close();
	L = luaL_newstate();
	luaL_openlibs(L);
	rl_open_string(L);
	rl_open_ltn12(L);
	rl_open_mime(L);
	rl_open_socket(L);
	if (run(prelude) != 0) {
		fprintf(stderr, "prelude: %s\n", lerr);
	}
}

#define LUA_OK(code)                                                                               \
	do {                                                                                       \
		state_open();                                                                      \
		if (run(code) != 0) {                                                              \
			unit_fail(__FILE__, __LINE__, lerr);                                       \
			return;                                                                    \
		}                                                                                  \
	} while (0)

static void modules_load_by_require(void)
{
	LUA_OK("local socket = require('socket')\n"
	       "eq(socket.smtp, smtp, 'socket.smtp')\n"
	       "eq(require('mime.core'), mime, 'mime.core')\n"
	       "eq(type(ltn12.pump.all), 'function')\n"
	       "eq(smtp.SERVER, 'localhost', 'SERVER')\n"
	       "eq(type(smtp.PORT), 'number', 'PORT')\n"
	       "eq(type(smtp.DOMAIN), 'string', 'DOMAIN')\n"
	       "eq(smtp.TIMEOUT, 60, 'TIMEOUT')\n");
}

static void b64_gives_rfc4648_vectors_at_every_split(void)
{
	LUA_OK("local v = {[''] = '', f = 'Zg==', fo = 'Zm8=', foo = 'Zm9v', foob = 'Zm9vYg==',\n"
	       "  fooba = 'Zm9vYmE=', foobar = 'Zm9vYmFy'}\n"
	       "eq(mime.b64(''), nil, 'empty')\n"
	       "eq(select('#', mime.b64(nil)), 2)\n"
	       "for plain, enc in pairs(v) do\n"
	       "  if plain ~= '' then eq(mime.b64(plain), enc, plain) end\n"
	       "  eq(mime.unb64(enc) or '', plain, enc)\n"
	       "  for i = 0, #plain do\n"
	       "    local a, rest = mime.b64(plain:sub(1, i), plain:sub(i + 1))\n"
	       "    eq(#rest, #plain % 3, 'rest of ' .. plain)\n"
	       "    eq(a .. (mime.b64(rest) or ''), enc, plain .. ' split at ' .. i)\n"
	       "  end\n"
	       "end\n"
	       "local a, rest = mime.unb64('Zm9', 'vYm\\r\\nE*')\n"
	       "eq(a, 'foo', 'junk and breaks skipped') eq(rest, 'YmE')\n"
	       "eq(mime.unb64(rest .. '='), 'ba')\n");
}

static void qp_quotes_equals_8bit_and_trailing_blanks(void)
{
	LUA_OK("eq(mime.qp('a=b caf\\233'), 'a=3Db caf=E9')\n"
	       "eq(mime.qp('x \\r\\ny\\t\\r\\nz'), 'x=20\\r\\ny=09\\r\\nz')\n"
	       "eq(mime.qp('two  \\r\\n'), 'two =20\\r\\n')\n"
	       "eq(mime.qp('end '), 'end=20', 'a blank at the end')\n"
	       "eq(mime.qp('lone\\rcr\\nlf'), 'lone=0Dcr=0Alf')\n"
	       "eq(mime.qp('a\\r\\nb', nil, '=0D=0A'), 'a=0D=0Ab', 'binary marker')\n"
	       "local a, rest = mime.qp('', 'keep ')\n"
	       "eq(a, 'keep') eq(rest, ' ', 'an undecided blank')\n"
	       "a, rest = mime.qp(rest, '\\r')\n"
	       "eq(a, '') eq(rest, ' \\r')\n"
	       "a, rest = mime.qp(rest, '\\nnext')\n"
	       "eq(a, '=20\\r\\nnext') eq(rest, '')\n");
}

static void unqp_decodes_and_drops_soft_breaks(void)
{
	LUA_OK("eq(mime.unqp('a=3Db=\\r\\nc=e9=\\nd'), 'a=bc\\233d')\n"
	       "eq(mime.unqp('100% =zz'), '100% =zz', 'a bad sequence stays')\n"
	       "local a, rest = mime.unqp('', 'x=4')\n"
	       "eq(a, 'x') eq(rest, '=4')\n"
	       "eq(mime.unqp(rest, '1'), 'A')\n"
	       "for i = 0, 255 do\n"
	       "  local c = string.char(i)\n"
	       "  eq(mime.unqp(mime.qp(c)), c, 'byte ' .. i)\n"
	       "end\n");
}

static void wrp_and_qpwrp_break_long_lines(void)
{
	LUA_OK("local a, left = mime.wrp(76, string.rep('a', 100))\n"
	       "eq(a, string.rep('a', 76) .. '\\r\\n' .. string.rep('a', 24)) eq(left, 52)\n"
	       "eq(mime.wrp(left, nil), '\\r\\n', 'an open line is ended')\n"
	       "eq(mime.wrp(76, nil), nil, 'nothing to end')\n"
	       "a, left = mime.wrp(10, 'ab\\ncd\\r\\nef', 10)\n"
	       "eq(a, 'ab\\r\\ncd\\r\\nef') eq(left, 8)\n"
	       "a, left = mime.qpwrp(5, 'abc=3D', 5)\n"
	       "eq(a, 'abc=\\r\\n=3D', 'never splits =XX') eq(left, 2)\n"
	       "eq(mime.qpwrp(left, nil, 5), '=\\r\\n')\n");
}

static void eol_normalizes_every_break_across_chunks(void)
{
	LUA_OK("eq(mime.eol(0, 'a\\nb\\r\\nc\\rd\\n\\re\\n\\nf'), "
	       "'a\\r\\nb\\r\\nc\\r\\nd\\r\\ne\\r\\n\\r\\nf')\n"
	       "local a, ctx = mime.eol(0, 'x\\r')\n"
	       "eq(a, 'x\\r\\n') eq(ctx, 13)\n"
	       "eq(mime.eol(ctx, '\\ny'), 'y', 'the pair split between chunks')\n"
	       "eq(mime.eol(0, 'a\\nb', '\\n'), 'a\\nb', 'marker')\n"
	       "local a2, c2 = mime.eol(0, nil) eq(a2, nil) eq(c2, 0)\n");
}

static void dot_stuffs_leading_dots(void)
{
	LUA_OK("local a, m = mime.dot(2, '.a\\r\\n.b\\r\\nc.d\\r\\n')\n"
	       "eq(a, '..a\\r\\n..b\\r\\nc.d\\r\\n') eq(m, 2)\n"
	       "a, m = mime.dot(2, 'x\\r') eq(m, 1)\n"
	       "eq(mime.dot(m, '\\n.'), '\\n..', 'CRLF split between chunks')\n"
	       "eq(mime.dot(0, '.'), '.', 'inside a line')\n"
	       "eq(drain(ltn12.source.chain(ltn12.source.string('.\\r\\n.'), mime.stuff())),\n"
	       "  '..\\r\\n..')\n");
}

static void encode_wrap_and_decode_filters_round_trip(void)
{
	LUA_OK("local t = {}\n"
	       "for i = 1, 5000 do t[i] = string.char((i * 7) % 256) end\n"
	       "local data = table.concat(t)\n"
	       "local enc = drain(ltn12.source.chain(ltn12.source.string(data),\n"
	       "  ltn12.filter.chain(mime.encode('base64'), mime.wrap())))\n"
	       "eq(enc, (data:encode64():gsub(string.rep('.', 76), '%0\\r\\n')) .. '\\r\\n', "
	       "'wrapped')\n"
	       "eq(drain(ltn12.source.chain(ltn12.source.string(enc), mime.decode('base64'))), "
	       "data)\n"
	       "local text = 'caf\\233 = ok  \\nline two\\n' .. string.rep('x', 200) .. '\\n'\n"
	       "local qp = drain(ltn12.source.chain(ltn12.source.string(text),\n"
	       "  mime.normalize(), mime.encode('quoted-printable'), "
	       "mime.wrap('quoted-printable')))\n"
	       "for line in qp:gmatch('([^\\r\\n]*)\\r\\n') do assert(#line <= 76, line) end\n"
	       "eq(drain(ltn12.source.chain(ltn12.source.string(qp), "
	       "mime.decode('quoted-printable'))),\n"
	       "  (text:gsub('\\n', '\\r\\n')))\n"
	       "assert(not pcall(mime.encode, 'rot13'), 'unknown encoding')\n");
}

static void ltn12_sources_sinks_and_pumps(void)
{
	LUA_OK("eq(drain(ltn12.source.cat(ltn12.source.string('ab'), ltn12.source.empty(),\n"
	       "  ltn12.source.string('cd'))), 'abcd', 'cat')\n"
	       "local r = ltn12.source.rewind(ltn12.source.string('xy'))\n"
	       "local c = r() r(c) eq(r(), 'xy', 'rewind') eq(r(), nil)\n"
	       "local ok, err = ltn12.pump.all(ltn12.source.error('boom'), ltn12.sink.null())\n"
	       "eq(ok, nil) eq(err, 'boom', 'a source error stops the pump')\n"
	       "ok, err = ltn12.pump.all(ltn12.source.string('x'), ltn12.sink.error('full'))\n"
	       "eq(err, 'full', 'a sink error stops the pump')\n"
	       "local t = {}\n"
	       "local up = ltn12.filter.cycle(function(ctx, chunk) return chunk and chunk:upper(), "
	       "ctx end)\n"
	       "assert(ltn12.pump.all(ltn12.source.string('abc'), ltn12.sink.chain(up, "
	       "(ltn12.sink.table(t)))))\n"
	       "eq(table.concat(t), 'ABC', 'sink.chain')\n"
	       "local n = 0\n"
	       "local fancy\n"
	       "fancy = function() n = n + 1 if n < 3 then return 'c' .. n, fancy end end\n"
	       "eq(drain(ltn12.source.simplify(fancy)), 'c1c2', 'source.simplify')\n"
	       "local got = {}\n"
	       "local snk = ltn12.sink.simplify(function(chunk) got[#got + 1] = chunk return 1 "
	       "end)\n"
	       "assert(ltn12.pump.all(ltn12.source.string('q'), snk)) eq(got[1], 'q')\n"
	       "local path = os.tmpname()\n"
	       "assert(ltn12.pump.all(ltn12.source.string(string.rep('z', 5000)),\n"
	       "  ltn12.sink.file(io.open(path, 'wb'))))\n"
	       "eq(drain(ltn12.source.file(io.open(path, 'rb'))), string.rep('z', 5000), 'file')\n"
	       "os.remove(path)\n"
	       "ok, err = ltn12.pump.all(ltn12.source.file(io.open(path, 'rb')), "
	       "ltn12.sink.null())\n"
	       "eq(ok, nil) assert(err:find('No such file'), err)\n"
	       "local steps = 0\n"
	       "local function step(src, snk) steps = steps + 1 return ltn12.pump.step(src, snk) "
	       "end\n"
	       "assert(ltn12.pump.all(ltn12.source.string(string.rep('s', 4100)), "
	       "ltn12.sink.null(), step))\n"
	       "eq(steps, 4, 'three blocks and the end')\n"
	       "eq(ltn12.filter.chain(up, up)(nil), nil, 'the end of an empty chain')\n"
	       "assert(not pcall(ltn12.filter.chain, up, 'x'), 'not a filter')\n");
}

/* The message of the reference's first example, and a multipart one. */
static void message_adds_date_mailer_and_mime_version(void)
{
	LUA_OK("local m = drain(smtp.message{headers = {to = 'Fulano <f@example.com>',\n"
	       "  Subject = 'My first message'}, body = 'I hope this works.'})\n"
	       "local head, body = m:match('^(.-\\r\\n)\\r\\n(.*)$')\n"
	       "eq(body, 'I hope this works.')\n"
	       "assert(head:find('\\r\\nSubject: My first message\\r\\n'), head)\n"
	       "assert(head:find('To: Fulano <f@example.com>\\r\\n'), head)\n"
	       "assert(head:find('MIME%-Version: 1.0\\r\\n'), head)\n"
	       "assert(head:find('Date: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d "
	       "%-0000\\r\\n'), head)\n"
	       "assert(head:find('X%-Mailer: LuaSocket'), head)\n"
	       "assert(head:find('Content%-Type: text/plain; charset=\"iso%-8859%-1\"\\r\\n'), "
	       "head)\n"
	       "m = drain(smtp.message{headers = {date = 'then', ['content-type'] = "
	       "'text/html'}})\n"
	       "assert(m:find('Date: then\\r\\n'), 'a date given is kept')\n"
	       "assert(m:find('Content%-Type: text/html\\r\\n'), 'a type given is kept')\n");
}

static void message_nests_multiparts_with_boundaries(void)
{
	LUA_OK("local m = drain(smtp.message{headers = {subject = 's'}, body = {\n"
	       "  preamble = 'PRE', epilogue = 'EPI',\n"
	       "  [1] = {body = 'one'},\n"
	       "  [2] = {headers = {['content-type'] = 'multipart/alternative'}, body = {\n"
	       "    [1] = {body = ltn12.source.string('two')}, [2] = {body = 'three'}}}}})\n"
	       "local bd = m:match('Content%-Type: multipart/mixed; boundary=\"([^\"]+)\"\\r\\n')\n"
	       "assert(bd, m)\n"
	       "local inner = m:match('Content%-Type: multipart/alternative; "
	       "boundary=\"([^\"]+)\"')\n"
	       "assert(inner and inner ~= bd, 'a boundary per level')\n"
	       "local q = function(s) return (s:gsub('%p', '%%%0')) end\n"
	       "assert(m:find('\\r\\n\\r\\nPRE\\r\\n\\r\\n%-%-' .. q(bd) .. '\\r\\n'), m)\n"
	       "assert(m:find('\\r\\n%-%-' .. q(bd) .. '%-%-\\r\\n\\r\\nEPI\\r\\n$'), m)\n"
	       "assert(m:find('\\r\\n\\r\\ntwo\\r\\n%-%-' .. q(inner) .. '\\r\\n'), m)\n"
	       "local _, n = m:gsub('MIME%-Version', '') eq(n, 1, 'MIME-Version at the top only')\n"
	       "local src = smtp.message{body = function() return nil, 'disk on fire' end}\n"
	       "assert(src()) local c, e = src() eq(c, nil) eq(e, 'disk on fire')\n"
	       "local deep = {body = 'x'}\n"
	       "for i = 1, 150 do deep = {body = {deep}} end\n"
	       "local ok, err = pcall(drain, smtp.message(deep))\n"
	       "assert(not ok and err:find('too deeply'), err)\n"
	       "assert(not pcall(smtp.message, 'x'), 'not a table')\n");
}

static void send_refuses_bad_calls(void)
{
	uint64_t limit = conf.message_size_limit;
	conf.message_size_limit = 100000; /* read when socket.smtp loads */
	state_open();
	int rc = run("assert(not pcall(smtp.send, 'x'), 'not a table raises')\n"
	             "local src = ltn12.source.string('x')\n"
	             "local r, e = smtp.send{rcpt = 'a@b', source = src}\n"
	             "eq(r, nil) assert(e:find('from'), e)\n"
	             "r, e = smtp.send{from = 'a@b', source = src} assert(e:find('rcpt'), e)\n"
	             "r, e = smtp.send{from = 'a@b', rcpt = {}, source = src} "
	             "assert(e:find('rcpt'), e)\n"
	             "r, e = smtp.send{from = 'a@b', rcpt = {'c@d', 7}, source = src} "
	             "assert(e:find('2'), e)\n"
	             "r, e = smtp.send{from = 'a@b', rcpt = 'c@d'} assert(e:find('source'), e)\n"
	             "r, e = smtp.send{from = 'a@b', rcpt = 'c@d', source = src, create = print}\n"
	             "assert(e:find('create'), e)\n"
	             "r, e = smtp.send{from = 'a@b\\r\\nRSET', rcpt = 'c@d', source = src}\n"
	             "assert(e:find('bad sender'), e)\n"
	             "r, e = smtp.send{from = '<a@b>', rcpt = 'c d@e', source = src}\n"
	             "assert(e:find('bad recipient'), e)\n"
	             "r, e = smtp.send{from = '<a@b>', rcpt = 'c@d', source = src, port = 70000}\n"
	             "assert(e:find('port'), e)\n"
	             "r, e = smtp.send{from = '<a@b>', rcpt = 'c@d', source = "
	             "ltn12.source.error('no')}\n"
	             "eq(e, 'no', 'a source error')\n"
	             "local big = ltn12.source.string(string.rep('x', 100001))\n"
	             "r, e = smtp.send{from = '<a@b>', rcpt = 'c@d', source = big}\n"
	             "assert(e and e:find('MessageSizeLimit'), e)\n");
	conf.message_size_limit = limit;
	if (rc != 0) {
		unit_fail(__FILE__, __LINE__, lerr);
	}
}

static void send_to_a_closed_port_says_why(void)
{
	LUA_OK("local r, e = smtp.send{from = '<a@b>', rcpt = '<c@d>', server = '127.0.0.1',\n"
	       "  port = 1, source = smtp.message{body = 'x'}}\n"
	       "eq(r, nil) assert(e:find('127.0.0.1') and e:find('failed'), e)\n");
}

/* A socket-like object for smtp.send's create: it records what is sent
 * (f.sent) and answers with the canned lines in replies, then "closed". */
#define FAKE_SOCKET                                                                                \
	"local function fake(replies)\n"                                                           \
	"  local f = {sent = {}, closed = 0, n = 0}\n"                                             \
	"  function f.create()\n"                                                                  \
	"    f.made = (f.made or 0) + 1\n"                                                         \
	"    local c = {}\n"                                                                       \
	"    function c:settimeout(t) f.timeout = t return 1 end\n"                                \
	"    function c:connect(host, port)\n"                                                     \
	"      f.host, f.port = host, port\n"                                                      \
	"      if f.refuse then return nil, 'connection refused' end\n"                            \
	"      return 1\n"                                                                         \
	"    end\n"                                                                                \
	"    function c:send(data) f.sent[#f.sent + 1] = data return #data end\n"                  \
	"    function c:receive()\n"                                                               \
	"      f.n = f.n + 1\n"                                                                    \
	"      if replies[f.n] == nil then return nil, 'closed' end\n"                             \
	"      return replies[f.n]\n"                                                              \
	"    end\n"                                                                                \
	"    function c:close() f.closed = f.closed + 1 return 1 end\n"                            \
	"    return c\n"                                                                           \
	"  end\n"                                                                                  \
	"  function f.text() return table.concat(f.sent) end\n"                                    \
	"  return f\n"                                                                             \
	"end\n"

static void send_drives_the_dialogue_through_create(void)
{
	LUA_OK(FAKE_SOCKET
	        "local f = fake{'220 fake ESMTP', '250-fake.example hello', '250-SIZE 1000',\n"
	        "  '250 AUTH LOGIN PLAIN', '235 ok', '250 sender ok', '250 one', '250 two',\n"
	        "  '354 go on', '250 queued as 7', '221 bye'}\n"
	        "local r, e = smtp.send{from = 'a@b.example',\n"
	        "  rcpt = {'<c@d.example>', 'e@f.example'}, user = 'u', password = 'p',\n"
	        "  domain = 'me.example', server = 'mx.example',\n"
	        "  port = 2525, create = f.create,\n"
	        "  source = ltn12.source.string('Subject: x\\r\\n\\r\\n.dot\\r\\nend\\r\\n')}\n"
	        "eq(r, 1, 'result') eq(e, nil, 'error')\n"
	        "eq(f.text(), 'EHLO me.example\\r\\n' ..\n"
	        "  'AUTH PLAIN ' .. mime.b64('\\0u\\0p') .. '\\r\\n' ..\n"
	        "  'MAIL FROM:<a@b.example>\\r\\n' ..\n"
	        "  'RCPT TO:<c@d.example>\\r\\nRCPT TO:<e@f.example>\\r\\n' ..\n"
	        "  'DATA\\r\\nSubject: x\\r\\n\\r\\n..dot\\r\\nend\\r\\n.\\r\\n' ..\n"
	        "  'QUIT\\r\\n', 'sent')\n"
	        "eq(f.host, 'mx.example') eq(f.port, 2525) eq(f.timeout, smtp.TIMEOUT)\n"
	        "eq(f.made, 1, 'one socket') eq(f.closed, 1, 'closed once')\n"
	        /* defaults, HELO after a refused EHLO, an unended last line */
	        "f = fake{'220 old', '502 what?', '250 old.example', '250', '250', '354', '250',\n"
	        "  '221'}\n"
	        "r, e = smtp.send{from = '<a@b>', rcpt = 'c@d', create = f.create,\n"
	        "  source = ltn12.source.string('.a\\r\\nb')}\n"
	        "eq(r, 1, 'HELO') eq(f.host, smtp.SERVER) eq(f.port, smtp.PORT)\n"
	        "local d = smtp.DOMAIN\n"
	        "eq(f.text(), 'EHLO ' .. d .. '\\r\\nHELO ' .. d .. '\\r\\n' ..\n"
	        "  'MAIL FROM:<a@b>\\r\\nRCPT TO:<c@d>\\r\\n' ..\n"
	        "  'DATA\\r\\n..a\\r\\nb\\r\\n.\\r\\nQUIT\\r\\n', 'sent after HELO')\n"
	        /* AUTH LOGIN when PLAIN is not offered */
	        "f = fake{'220', '250-x', '250 AUTH LOGIN', '334 VXNlcm5hbWU6',\n"
	        "  '334 UGFzc3dvcmQ6', '235 in', '250', '250', '354', '250', '221'}\n"
	        "r, e = smtp.send{from = '<a@b>', rcpt = 'c@d', user = 'u', password = 'p',\n"
	        "  create = f.create, source = ltn12.source.string('x')}\n"
	        "eq(r, 1, 'AUTH LOGIN')\n"
	        "assert(f.text():find('\\r\\nAUTH LOGIN\\r\\ndQ==\\r\\ncA==\\r\\nMAIL', 1, true),\n"
	        "  f.text())\n"
	        /* a message taken but no answer to QUIT: sent all the same */
	        "f = fake{'220', '250 x', '250', '250', '354', '250 queued'}\n"
	        "r, e = smtp.send{from = '<a@b>', rcpt = 'c@d', create = f.create,\n"
	        "  source = ltn12.source.string('')}\n"
	        "eq(r, 1, 'QUIT unanswered') eq(f.closed, 1)\n"
	        "assert(f.text():find('DATA\\r\\n%.\\r\\nQUIT\\r\\n$'), f.text())\n");
}

static void send_through_create_gives_nil_and_why(void)
{
	LUA_OK(FAKE_SOCKET
	        "local function try(replies, mailt)\n"
	        "  local f = fake(replies)\n"
	        "  mailt.create = f.create\n"
	        "  mailt.from = mailt.from or '<a@b>'\n"
	        "  mailt.rcpt = mailt.rcpt or {'<c@d>', '<e@f>'}\n"
	        "  mailt.source = mailt.source or ltn12.source.string('x\\r\\n')\n"
	        "  local r, e = smtp.send(mailt)\n"
	        "  eq(r, nil, 'result') eq(f.closed, f.made and 1 or 0, 'closed')\n"
	        "  return e, f\n"
	        "end\n"
	        "local e, f = try({'220', '250 x', '250 ok', '550-5.1.1 no such user',\n"
	        "  '550 5.1.1 c@d'}, {})\n"
	        "eq(e, '550-5.1.1 no such user\\n550 5.1.1 c@d', 'a multi-line refusal')\n"
	        "assert(not f.text():find('e@f'), 'nothing after the refusal')\n"
	        "f = fake{} f.refuse = true\n"
	        "local r\n"
	        "r, e = smtp.send{from = 'a@b', rcpt = 'c@d', create = f.create,\n"
	        "  source = ltn12.source.string('x')}\n"
	        "eq(r, nil) eq(e, 'connection refused') eq(f.closed, 1)\n"
	        "eq(try({'220', '250 x', '250 ok'}, {}), 'closed', 'a lost connection')\n"
	        "eq(try({'220', '250 x', 'hello?'}, {}), 'invalid server reply')\n"
	        "eq(try({'554 go away'}, {}), '554 go away', 'greeting')\n"
	        "eq(try({'220', '250 x', '250', '250', '250', '354', '451 later'}, {}),\n"
	        "  '451 later')\n"
	        "eq(try({'220', '250 x'}, {user = 'u', password = 'p'}),\n"
	        "  'authentication not supported')\n"
	        "eq(try({'220', '250 AUTH PLAIN', '535 no'}, {user = 'u', password = 'p'}),\n"
	        "  '535 no')\n"
	        "local long = {'220', '250-x'}\n"
	        "for i = 1, 200 do long[#long + 1] = '250-more' end\n"
	        "eq(try(long, {}), 'server reply too long')\n"
	        "eq(try({'220', '250 x', '250', '250', '250', '354'},\n"
	        "  {source = ltn12.source.error('disk on fire')}), 'disk on fire',\n"
	        "  'a source error')\n"
	        "e, f = try({}, {from = 'a@b\\r\\nRSET'}) assert(e:find('bad sender'), e)\n"
	        "eq(f.made, nil, 'no socket for a bad call')\n"
	        "e = try({}, {rcpt = 'c d@e'}) assert(e:find('bad recipient'), e)\n"
	        "e = try({}, {domain = 'a\\r\\nb'}) assert(e:find('domain'), e)\n"
	        "r, e = smtp.send{from = 'a@b', rcpt = 'c@d', source = ltn12.source.string('x'),\n"
	        "  create = function() return nil, 'no sockets today' end}\n"
	        "eq(e, 'no sockets today', 'create failed')\n");
}

/* Runs code in states with more and more room until it works: each run
 * works or fails for want of memory (the message may come through
 * smtp.message's coroutine as a plain error), never crashes, and
 * lua_close frees all (LeakSanitizer checks the sanitizer build). */
static int run_starved(const char *code)
{
	for (size_t room = 0; room < 512 * 1024; room += 512) {
		struct unit_cap c = {0, (size_t)-1};
		lua_State *s = lua_newstate(unit_cap_alloc, &c);
		luaL_openlibs(s);
		rl_open_string(s);
		rl_open_ltn12(s);
		rl_open_mime(s);
		rl_open_socket(s);
		if (luaL_loadstring(s, code) != 0) {
			snprintf(lerr, sizeof lerr, "%s", lua_tostring(s, -1));
			lua_close(s);
			return -1;
		}
		lua_gc(s, LUA_GCCOLLECT, 0);
		c.limit = c.used + room;
		int rc = lua_pcall(s, 0, 0, 0);
		const char *m = rc ? lua_tostring(s, -1) : NULL;
		if (rc != 0 && rc != LUA_ERRMEM && !(m && strstr(m, "not enough memory"))) {
			snprintf(lerr, sizeof lerr, "room %zu: %s", room, m ? m : "?");
			c.limit = (size_t)-1;
			lua_close(s);
			return -1;
		}
		c.limit = (size_t)-1;
		lua_close(s);
		if (rc == 0) {
			return 0;
		}
	}
	snprintf(lerr, sizeof lerr, "never had room enough");
	return -1;
}

static void calls_survive_failing_allocations(void)
{
	static const char code[] =
	        "local ltn12, mime, smtp = require('ltn12'), require('mime'), "
	        "require('socket.smtp')\n"
	        "local text = string.rep('caf\\233 = x .\\n', 400)\n"
	        "local t = {}\n"
	        "local src = ltn12.source.chain(ltn12.source.string(text), mime.normalize(),\n"
	        "  mime.encode('quoted-printable'), mime.wrap('quoted-printable'))\n"
	        "local snk = ltn12.sink.table(t)\n"
	        "assert(ltn12.pump.all(src, snk))\n"
	        "src = ltn12.source.chain(ltn12.source.string(text), mime.encode('base64'),\n"
	        "  mime.wrap(), mime.decode('base64'), mime.stuff())\n"
	        "snk = ltn12.sink.table(t)\n"
	        "assert(ltn12.pump.all(src, snk))\n"
	        "local m = smtp.message{headers = {subject = 's'}, body = {preamble = 'p',\n"
	        "  {body = text}, {body = ltn12.source.string(text)}}}\n"
	        "snk = ltn12.sink.table(t)\n"
	        "assert(ltn12.pump.all(m, snk))\n"
	        "local r, e = smtp.send{from = 'a@b', rcpt = {'c@d', 'e@f'}, server = "
	        "'127.0.0.1',\n"
	        "  port = 1, source = ltn12.source.string(text)}\n"
	        "assert(r == nil and e, 'a closed port')\n";
	if (run_starved(code) != 0) {
		unit_fail(__FILE__, __LINE__, lerr);
	}
}

void tests_luasocket(void)
{
	RUN(modules_load_by_require, "luasocket: require gives socket, socket.smtp, mime, ltn12");
	RUN(b64_gives_rfc4648_vectors_at_every_split,
	        "luasocket mime.b64/unb64 give the RFC 4648 vectors, split at every place");
	RUN(qp_quotes_equals_8bit_and_trailing_blanks,
	        "luasocket mime.qp quotes =, 8-bit and blanks that end a line");
	RUN(unqp_decodes_and_drops_soft_breaks,
	        "luasocket mime.unqp decodes =XX and drops soft line breaks");
	RUN(wrp_and_qpwrp_break_long_lines, "luasocket mime.wrp/qpwrp break long lines");
	RUN(eol_normalizes_every_break_across_chunks,
	        "luasocket mime.eol normalizes CR, LF, CRLF, LFCR, across chunks");
	RUN(dot_stuffs_leading_dots, "luasocket mime.dot/stuff double a dot that starts a line");
	RUN(encode_wrap_and_decode_filters_round_trip,
	        "luasocket mime encode/wrap/decode filters round-trip base64 and quoted-printable");
	RUN(ltn12_sources_sinks_and_pumps, "luasocket ltn12 sources, sinks, filters and pumps");
	RUN(message_adds_date_mailer_and_mime_version,
	        "luasocket smtp.message adds Date, X-Mailer, MIME-Version, a text type");
	RUN(message_nests_multiparts_with_boundaries,
	        "luasocket smtp.message nests multiparts with a boundary per level");
	RUN(send_refuses_bad_calls, "luasocket smtp.send refuses bad calls and messages over "
	                            "MessageSizeLimit with nil, message");
	RUN(calls_survive_failing_allocations,
	        "luasocket calls survive failing allocations without crash or leak");
	RUN(send_drives_the_dialogue_through_create,
	        "luasocket smtp.send with create talks SMTP through the object it returns");
	RUN(send_through_create_gives_nil_and_why,
	        "luasocket smtp.send with create gives nil and the reply or error, and closes");
	RUN(send_to_a_closed_port_says_why,
	        "luasocket smtp.send to a closed port gives nil and why");
	state_close();
}
