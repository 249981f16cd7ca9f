/* test_lua.c - the Lua modules that need no session (lua/lstring.c,
 * lfile.c, lnetwork.c, lmailman.c) in a plain lua_State: one test per
 * function and per field, the examples of the reference
 * (shared/reference/rumble-lua-api.txt, real names filled in) run as
 * scripts, bad calls that must raise or return nil/false, and calls made
 * while a capped allocator fails, which must neither crash nor leak. DNS
 * answers come from a small server on 127.0.0.1 that this file runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/rl.h"
#include "tests/unit.h"

static lua_State *L;
static char lerr[1024];
static char err[256];
static const char *dir; /* the storage folder of the running test */

/* print() collects lines in out; eq() says what differed. */
static const char prelude[] =
        "out = {}\n"
        "function print(...)\n"
        "  local t = {}\n"
        "  for i = 1, select('#', ...) do t[#t + 1] = tostring((select(i, ...))) end\n"
        "  out[#out + 1] = table.concat(t, '\\t')\n"
        "end\n"
        "function eq(got, want, what)\n"
        "  if got ~= want then\n"
        "    error((what or 'value') .. ': expected ' .. tostring(want) .. ', got ' ..\n"
        "      tostring(got), 2)\n"
        "  end\n"
        "end\n";

static void state_close(void)
{
	if (L) {
		lua_close(L);
		L = NULL;
	}
}

static void state_open(void)
{
	state_close();
	L = luaL_newstate();
	luaL_openlibs(L);
	rl_open_string(L);
	rl_open_file(L);
	rl_open_network(L);
	rl_open_mailman(L);
	luaL_dostring(L, prelude);
	lua_pushstring(L, dir ? dir : ".");
	lua_setglobal(L, "dir");
}

/* Runs code: 0, or -1 with its error in lerr. */
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

/* 1 when code raises an error that mentions what */
static int raises(const char *code, const char *what)
{
	return run(code) != 0 && strstr(lerr, what) != NULL;
}

#define LUA_OK(code)                                                                               \
	do {                                                                                       \
		if (run(code) != 0) {                                                              \
			unit_fail(__FILE__, __LINE__, lerr);                                       \
			return;                                                                    \
		}                                                                                  \
	} while (0)

/* code must raise an error that mentions what */
#define LUA_ERR(code, what)                                                                        \
	do {                                                                                       \
		if (run(code) == 0 || !strstr(lerr, what)) {                                       \
			char m_[1300];                                                             \
			snprintf(m_, sizeof m_, "%s: wanted an error with \"%s\", got \"%s\"",     \
			        code, what, lerr);                                                 \
			unit_fail(__FILE__, __LINE__, m_);                                         \
			return;                                                                    \
		}                                                                                  \
	} while (0)

static void set_num(const char *name, double v)
{
	lua_pushnumber(L, v);
	lua_setglobal(L, name);
}

/* A fresh storage folder and state: example.org with john (a mailbox,
 * password "secret"), jane, and sales-* (a GLOB alias to john). */
static int setup(void)
{
	dir = unit_tmpdir();
	if (mm_open(dir, err, sizeof err) != 0 || mm_domain_add("example.org", err, sizeof err)) {
		return -1;
	}
	state_open();
	return 0;
}

static uint32_t add_account(
        const char *domain, const char *user, enum mm_type type, const char *args)
{
	struct mm_account a;
	memset(&a, 0, sizeof a);
	rl_strlcpy(a.domain, domain, sizeof a.domain);
	rl_strlcpy(a.user, user, sizeof a.user);
	a.type = type;
	rl_strlcpy(a.args, args, sizeof a.args);
	if (type == MM_MBOX && crypto_password_hash("secret", a.password, sizeof a.password)) {
		return 0;
	}
	return mm_account_save(&a, err, sizeof err) == 0 ? a.id : 0;
}

/* The usual accounts; john's uid in the global uid. */
static uint32_t people(void)
{
	uint32_t john = add_account("example.org", "john", MM_MBOX, "");
	if (!john || !add_account("example.org", "jane", MM_MBOX, "") ||
	        !add_account("example.org", "sales-*", MM_ALIAS, "john")) {
		return 0;
	}
	set_num("uid", john);
	return john;
}

/* Appends msg (wire form) to a folder of domain/user; its UID, 0 on error. */
static uint32_t deliver(
        const char *domain, const char *user, const char *folder, const char *msg, uint32_t flags)
{
	struct mm_folder *f;
	struct spool sp;
	uint32_t uid = 0;
	if (mm_folder_open(domain, user, folder, 1, &f) != 0) {
		return 0;
	}
	spool_init(&sp, dir);
	spool_write(&sp, msg, strlen(msg));
	if (mm_folder_append(f, &sp, "alice@example.net", 1795000000, flags, 0, &uid) != 0 ||
	        mm_folder_sync(f) != 0) {
		uid = 0;
	}
	spool_free(&sp);
	mm_folder_close(f);
	return uid;
}

static uint32_t flags_of(const char *domain, const char *user, uint32_t uid)
{
	struct mm_folder *f;
	uint32_t flags = 0xffffffffu;
	if (mm_folder_open(domain, user, "INBOX", 0, &f) != 0) {
		return flags;
	}
	for (uint32_t i = 0; i < mm_folder_count(f); i++) {
		if (mm_folder_msg(f, i)->uid == uid) {
			flags = mm_folder_msg(f, i)->flags;
		}
	}
	mm_folder_close(f);
	return flags;
}

static const char simple_msg[] = "Received: from a\r\n"
                                 "Received: from b\r\n"
                                 "From: Alice <alice@example.net>\r\n"
                                 "To: john@example.org,\r\n"
                                 "  jane@example.org\r\n"
                                 "Subject: =?utf-8?q?Caf=C3=A9?= menu\r\n"
                                 "Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
                                 "Content-Type: text/plain; charset=utf-8\r\n"
                                 "X-Empty:\r\n"
                                 "\r\n"
                                 "body\r\n";

static const char qp_msg[] = "From: Alice <alice@example.net>\r\n"
                             "To: John <john@example.org>\r\n"
                             "Subject: Lunch\r\n"
                             "Content-Type: text/plain; charset=iso-8859-1\r\n"
                             "Content-Transfer-Encoding: quoted-printable\r\n"
                             "\r\n"
                             "See you at caf=E9 =\r\n"
                             "at noon.\r\n";

static const char multi_msg[] = "From: Alice <alice@example.net>\r\n"
                                "To: john@example.org\r\n"
                                "Subject: =?iso-8859-1?q?Gr=FC=DFe?=\r\n"
                                "Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
                                "MIME-Version: 1.0\r\n"
                                "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
                                "\r\n"
                                "preamble\r\n"
                                "--outer\r\n"
                                "Content-Type: text/plain; charset=utf-8\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n"
                                "\r\n"
                                "Caf=C3=A9 au lait\r\n"
                                "--outer\r\n"
                                "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
                                "\r\n"
                                "--inner\r\n"
                                "Content-Type: text/plain\r\n"
                                "\r\n"
                                "plain version\r\n"
                                "--inner\r\n"
                                "Content-Type: text/html; charset=utf-8\r\n"
                                "\r\n"
                                "<p>html version</p>\r\n"
                                "--inner--\r\n"
                                "--outer\r\n"
                                "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
                                "Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
                                "Content-Transfer-Encoding: base64\r\n"
                                "\r\n"
                                "AAECAwQF/w==\r\n"
                                "--outer\r\n"
                                "Content-Type: message/rfc822\r\n"
                                "\r\n"
                                "Subject: inner message\r\n"
                                "From: bob@example.net\r\n"
                                "\r\n"
                                "inner body\r\n"
                                "--outer--\r\n";

/* ---- string ---- */

static void sha256_gives_lower_case_hex(void)
{
	ASSERT(setup() == 0);
	LUA_OK("eq(string.SHA256('some text'),"
	       " 'b94f6f125c79e3a5ffaa826f584c10d52ada669e6762051b826b55776d05aed2')\n"
	       "eq(string.SHA256(''),"
	       " 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')\n"
	       "eq(('abc'):SHA256(),"
	       " 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')\n"
	       "eq(#string.SHA256('a\\0b'), 64)\n"
	       "assert(string.SHA256('a\\0b') ~= string.SHA256('a'), 'NUL bytes count')\n");
}

static void sha256_reference_example_runs(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local text = 'some text';\n"
	       "local digest = text:SHA256(); -- The same as string.SHA256(text);\n"
	       "-- yields: b94f6f125c79e3a5ffaa826f584c10d52ada669e6762051b826b55776d05aed2\n"
	       "eq(digest, 'b94f6f125c79e3a5ffaa826f584c10d52ada669e6762051b826b55776d05aed2')\n"
	       "eq(digest, string.SHA256(text))\n");
}

static void base64_encodes_and_decodes_rfc4648_vectors(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local v = {[''] = '', f = 'Zg==', fo = 'Zm8=', foo = 'Zm9v', foob = 'Zm9vYg==',\n"
	       "  fooba = 'Zm9vYmE=', foobar = 'Zm9vYmFy'}\n"
	       "for plain, enc in pairs(v) do\n"
	       "  eq(string.encode64(plain), enc, 'encode64 ' .. plain)\n"
	       "  eq(string.decode64(enc), plain, 'decode64 ' .. enc)\n"
	       "  eq(plain:encode64(), enc, 'as a method')\n"
	       "end\n");
}

static void base64_round_trips_binary_of_every_length(void)
{
	ASSERT(setup() == 0);
	LUA_OK("math.randomseed(7)\n"
	       "for n = 0, 1200, 7 do\n"
	       "  local t = {}\n"
	       "  for i = 1, n do t[i] = string.char(math.random(0, 255)) end\n"
	       "  local s = table.concat(t)\n"
	       "  local e = s:encode64()\n"
	       "  eq(#e, math.ceil(n / 3) * 4, 'length for ' .. n)\n"
	       "  assert(not e:find('[^A-Za-z0-9+/=]'), 'alphabet')\n"
	       "  eq(e:decode64(), s, 'round trip of ' .. n)\n"
	       "end\n"
	       "local big = string.rep('\\0\\255x', 70000)\n"
	       "eq(big:encode64():decode64(), big, 'a big string')\n");
}

static void decode64_skips_blanks_adds_padding_refuses_junk(void)
{
	ASSERT(setup() == 0);
	LUA_OK("eq(('Zm9v\\r\\nYmFy'):decode64(), 'foobar', 'line breaks')\n"
	       "eq((' Zm9vYg'):decode64(), 'foob', 'missing ==')\n"
	       "eq(('Zm9vYmE'):decode64(), 'fooba', 'missing =')\n"
	       "local v, msg = ('Zm9v!'):decode64()\n"
	       "eq(v, nil) assert(type(msg) == 'string')\n"
	       "eq(('Z'):decode64(), nil, 'one character')\n"
	       "eq(('Zm9v\\0'):decode64(), nil, 'a NUL byte')\n");
}

static void base64_reference_example_runs(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local text = 'This is a test!';\n"
	       "local enc = text:encode64(); -- base64-encode it\n"
	       "local dec = enc:decode64(); -- decode the string again\n"
	       "print(dec); -- prints 'This is a test!'\n"
	       "eq(out[1], 'This is a test!')\n"
	       "eq(enc, 'VGhpcyBpcyBhIHRlc3Qh')\n");
}

static void string_functions_raise_on_bad_arguments(void)
{
	ASSERT(setup() == 0);
	LUA_ERR("string.SHA256()", "bad argument #1");
	LUA_ERR("string.SHA256({})", "string expected");
	LUA_ERR("string.encode64(nil)", "bad argument #1");
	LUA_ERR("string.decode64(print)", "bad argument #1");
	LUA_OK("eq(string.SHA256(12), ('12'):SHA256(), 'numbers are strings to Lua')");
}

/* ---- file ---- */

static void file_stat_gives_every_field(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local p = dir .. '/myfile.cfg'\n"
	       "local f = assert(io.open(p, 'wb')) f:write('12345') f:close()\n"
	       "local st = file.stat(p)\n"
	       "eq(type(st), 'table')\n"
	       "eq(st.size, 5, 'size')\n"
	       "assert(math.abs(st.modified - os.time()) < 60, 'modified')\n"
	       "assert(math.abs(st.created - os.time()) < 60, 'created')\n"
	       "assert(math.abs(st.accessed - os.time()) < 60, 'accessed')\n"
	       "eq(type(st.mode), 'number')\n"
	       "eq(math.floor(st.mode / 256) % 2, 1, 'the owner may read it')\n"
	       "eq(file.stat(dir).size ~= nil, true, 'folders too')\n");
}

static void file_stat_of_a_missing_file_is_nil(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local st, msg = file.stat(dir .. '/nothing-here')\n"
	       "eq(st, nil) eq(type(msg), 'string')\n"
	       "eq(file.stat(dir .. '/nothing\\0here'), nil, 'a NUL byte names no file')\n");
}

static void file_exists_says_true_or_false(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local p = dir .. '/somefile.txt'\n"
	       "eq(file.exists(p), false)\n"
	       "local f = assert(io.open(p, 'wb')) f:close()\n"
	       "eq(file.exists(p), true)\n"
	       "eq(file.exists(dir), true, 'a folder')\n");
}

static void file_reference_examples_run(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local f = assert(io.open(dir .. '/myfile.cfg', 'wb')) f:write('abc') f:close()\n"
	       "local info = file.stat(dir .. '/myfile.cfg');\n"
	       "print('myfile.cfg has a size of:' .. info.size .. ' bytes');\n"
	       "print('myfile.cfg was created at ' .. info.created);\n"
	       "if ( file.exists(dir .. '/somefile.txt') ) then\n"
	       "   print('somefile.txt exists!');\n"
	       "else\n"
	       "   print(\"somefile.txt doesn't exist :(\");\n"
	       "end\n"
	       "eq(out[1], 'myfile.cfg has a size of:3 bytes')\n"
	       "assert(out[2]:match('^myfile.cfg was created at %d+$'), out[2])\n"
	       "eq(out[3], \"somefile.txt doesn't exist :(\")\n");
}

static void file_functions_raise_on_bad_arguments(void)
{
	ASSERT(setup() == 0);
	LUA_ERR("file.stat()", "bad argument #1");
	LUA_ERR("file.exists({})", "bad argument #1");
}

/* ---- network, against a fake DNS server ---- */

struct fake_dns {
	os_fd fd;
	int port;
	volatile int stop;
	os_thread *t;
};

struct pkt {
	uint8_t p[1024];
	size_t n;
};

static void put16(struct pkt *b, unsigned v)
{
	b->p[b->n++] = (uint8_t)(v >> 8);
	b->p[b->n++] = (uint8_t)v;
}

static void put_name(struct pkt *b, const char *name)
{
	while (*name) {
		size_t l = strcspn(name, ".");
		b->p[b->n++] = (uint8_t)l;
		memcpy(b->p + b->n, name, l);
		b->n += l;
		name += l + (name[l] == '.');
	}
	b->p[b->n++] = 0;
}

/* A record owned by the question's name (pointer 0xc00c); rdata follows. */
static size_t rr_begin(struct pkt *b, int type)
{
	put16(b, 0xc00c);
	put16(b, (unsigned)type);
	put16(b, 1);
	put16(b, 0);
	put16(b, 300);
	put16(b, 0);
	return b->n;
}

static void rr_end(struct pkt *b, size_t at)
{
	b->p[at - 2] = (uint8_t)((b->n - at) >> 8);
	b->p[at - 1] = (uint8_t)(b->n - at);
}

static void rr_mx(struct pkt *b, int pref, const char *host)
{
	size_t at = rr_begin(b, DNS_T_MX);
	put16(b, (unsigned)pref);
	put_name(b, host);
	rr_end(b, at);
}

static void rr_a(struct pkt *b, uint8_t last)
{
	size_t at = rr_begin(b, DNS_T_A);
	uint8_t a[4] = {192, 0, 2, last};
	memcpy(b->p + b->n, a, 4);
	b->n += 4;
	rr_end(b, at);
}

static void rr_soa(struct pkt *b)
{
	size_t at = rr_begin(b, DNS_T_SOA);
	put_name(b, "ns.lua.test");
	put_name(b, "admin.lua.test");
	for (int i = 0; i < 5; i++) {
		put16(b, 0);
		put16(b, 60);
	}
	rr_end(b, at);
}

/* The zone: mx.lua.test MX 20 backup, 10 mail; mail.lua.test A .25;
 * implicit.lua.test A .26 and no MX; other names do not exist. */
static void fake_answer(const uint8_t *q, size_t qlen, struct pkt *b)
{
	char name[256];
	size_t pos = 12, n = 0;
	while (pos < qlen && q[pos] && q[pos] < 64 && pos + 1 + q[pos] < qlen && n + q[pos] < 250) {
		if (n) {
			name[n++] = '.';
		}
		memcpy(name + n, q + pos + 1, q[pos]);
		n += q[pos];
		pos += 1 + (size_t)q[pos];
	}
	name[n] = '\0';
	if (pos + 5 > qlen || pos + 5 > sizeof b->p / 2) {
		b->n = 0;
		return;
	}
	unsigned type = (unsigned)q[pos + 1] << 8 | q[pos + 2];
	memcpy(b->p, q, pos + 5);
	b->n = pos + 5;
	int an = 0, ns = 0, rcode = 0;
	if (!rl_strcasecmp(name, "mx.lua.test") && type == DNS_T_MX) {
		rr_mx(b, 20, "backup.lua.test");
		rr_mx(b, 10, "mail.lua.test");
		an = 2;
	} else if (!rl_strcasecmp(name, "mail.lua.test") && type == DNS_T_A) {
		rr_a(b, 25);
		an = 1;
	} else if (!rl_strcasecmp(name, "implicit.lua.test") && type == DNS_T_A) {
		rr_a(b, 26);
		an = 1;
	} else {
		int known = !rl_strcasecmp(name, "mx.lua.test") ||
		            !rl_strcasecmp(name, "mail.lua.test") ||
		            !rl_strcasecmp(name, "implicit.lua.test");
		rcode = known ? 0 : 3;
		rr_soa(b);
		ns = 1;
	}
	b->p[2] = 0x81;
	b->p[3] = (uint8_t)(0x80 | rcode);
	b->p[4] = 0;
	b->p[5] = 1;
	b->p[6] = 0;
	b->p[7] = (uint8_t)an;
	b->p[8] = 0;
	b->p[9] = (uint8_t)ns;
	b->p[10] = b->p[11] = 0;
}

static void fake_main(void *arg)
{
	struct fake_dns *f = arg;
	uint8_t q[512];
	char from[64];
	int port;
	struct pkt *b = xmalloc(sizeof *b);
	while (!f->stop) {
		if (os_wait_readable(f->fd, 20) <= 0) {
			continue;
		}
		long n = os_udp_recvfrom(f->fd, q, sizeof q, from, sizeof from, &port);
		if (n > 12) {
			fake_answer(q, (size_t)n, b);
			if (b->n) {
				os_udp_sendto(f->fd, b->p, b->n, from, port);
			}
		}
	}
	free(b);
}

static struct fake_dns fake = {OS_BADFD, 0, 0, NULL};

static int fake_start(void)
{
	char list[64];
	fake.fd = os_udp_bind("127.0.0.1", 0);
	fake.port = fake.fd == OS_BADFD ? -1 : os_sock_port(fake.fd);
	if (fake.port <= 0) {
		return -1;
	}
	fake.stop = 0;
	fake.t = os_thread_start(fake_main, &fake);
	snprintf(list, sizeof list, "127.0.0.1:%d", fake.port);
	dns__cache_clear();
	dns__set_timeout(500, 2);
	return fake.t && dns_init(list, err, sizeof err) == 0 ? 0 : -1;
}

static void fake_stop(void)
{
	if (fake.t) {
		fake.stop = 1;
		os_thread_join(fake.t);
		fake.t = NULL;
	}
	if (fake.fd != OS_BADFD) {
		os_close(fake.fd);
		fake.fd = OS_BADFD;
	}
	dns_shutdown();
}

static void gethostbyname_gives_the_first_address(void)
{
	ASSERT(setup() == 0);
	LUA_OK("eq(network.getHostByName('mail.lua.test'), '192.0.2.25')\n"
	       "eq(network.getHostByName('MAIL.lua.test'), '192.0.2.25', 'any case')\n"
	       "eq(network.getHostByName('localhost'), '127.0.0.1')\n"
	       "eq(network.getHostByName('192.0.2.9'), '192.0.2.9', 'an address as it is')\n"
	       "local ip, msg = network.getHostByName('nx.lua.test')\n"
	       "eq(ip, nil) assert(msg:find('no such domain'), msg)\n");
}

static void getmx_lists_hosts_by_preference(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local mx = network.getMX('mx.lua.test')\n"
	       "eq(#mx, 2)\n"
	       "eq(mx[1].host, 'mail.lua.test') eq(mx[1].preference, 10)\n"
	       "eq(mx[2].host, 'backup.lua.test') eq(mx[2].preference, 20)\n");
}

static void getmx_falls_back_to_the_address(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local mx = network.getMX('implicit.lua.test')\n"
	       "eq(#mx, 1) eq(mx[1].host, 'implicit.lua.test') eq(mx[1].preference, 0)\n"
	       "local none, msg = network.getMX('nx.lua.test')\n"
	       "eq(none, nil) eq(type(msg), 'string')\n");
}

static void network_reference_examples_run(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local IP = network.getHostByName('mail.lua.test');\n"
	       "print('mail.lua.test is ' .. IP); -- lua org is\n"
	       "local mxlist = network.getMX('mx.lua.test');\n"
	       "for k, entry in pairs(mxlist) do\n"
	       "   print('I found mail server ' .. entry.host .. ' with pref ' .. "
	       "entry.preference);\n"
	       "end\n"
	       "eq(out[1], 'mail.lua.test is 192.0.2.25')\n"
	       "eq(out[2], 'I found mail server mail.lua.test with pref 10')\n"
	       "eq(out[3], 'I found mail server backup.lua.test with pref 20')\n");
}

static void network_functions_raise_on_bad_arguments(void)
{
	ASSERT(setup() == 0);
	LUA_ERR("network.getMX()", "bad argument #1");
	LUA_ERR("network.getHostByName({})", "bad argument #1");
}

/* ---- Mailman: domains and accounts ---- */

static void account_exists_wants_the_exact_name(void)
{
	ASSERT(setup() == 0 && people());
	LUA_OK("eq(Mailman.accountExists('example.org', 'john'), true)\n"
	       "eq(Mailman.accountExists('EXAMPLE.org', 'John'), true, 'names are not "
	       "case-sensitive')\n"
	       "eq(Mailman.accountExists('example.org', 'sales-eu'), false, 'a GLOB is no "
	       "account')\n"
	       "eq(Mailman.accountExists('example.org', 'sales-*'), true, 'the pattern itself "
	       "is')\n"
	       "eq(Mailman.accountExists('example.org', 'nobody'), false)\n"
	       "eq(Mailman.accountExists('example.net', 'john'), false)\n");
}

static void address_exists_follows_glob_accounts(void)
{
	ASSERT(setup() == 0 && people());
	LUA_OK("eq(Mailman.addressExists('example.org', 'john'), true)\n"
	       "eq(Mailman.addressExists('example.org', 'sales-eu'), true, 'sales-* takes it')\n"
	       "eq(Mailman.addressExists('example.org', 'nobody'), false)\n"
	       "eq(Mailman.addressExists('example.net', 'sales-eu'), false)\n");
	ASSERT(add_account("example.org", "*", MM_ALIAS, "john"));
	LUA_OK("eq(Mailman.addressExists('example.org', 'nobody'), true, '*@example.org')\n"
	       "eq(Mailman.accountExists('example.org', 'nobody'), false)\n");
}

static void exists_reference_example_runs(void)
{
	ASSERT(setup() == 0 && mm_domain_add("mydomain.tld", err, sizeof err) == 0);
	ASSERT(add_account("mydomain.tld", "*", MM_ALIAS, "john@example.org"));
	LUA_OK("if ( Mailman.accountExists('mydomain.tld', 'someuser') ) then\n"
	       "    print ('someuser@mydomain.tld is a real account!');\n"
	       "else\n"
	       "    print ('someuser@mydomain.tld is not a valid account!');\n"
	       "    if ( Mailman.addressExists('mydomain.tld', 'someuser') ) then\n"
	       "        print ('...but it is a valid address!');\n"
	       "    end\n"
	       "end\n"
	       "eq(out[1], 'someuser@mydomain.tld is not a valid account!')\n"
	       "eq(out[2], '...but it is a valid address!')\n");
}

static void create_and_delete_domain_report_what_happened(void)
{
	ASSERT(setup() == 0);
	LUA_OK("eq(Mailman.createDomain('mynewdomain.tld'), true)\n"
	       "assert(Mailman.addressExists('mynewdomain.tld', 'x') == false)\n"
	       "local ok, msg = Mailman.createDomain('MyNewDomain.tld')\n"
	       "eq(ok, false, 'twice') assert(msg:find('exists'), msg)\n"
	       "ok, msg = Mailman.createDomain('not a domain')\n"
	       "eq(ok, false) eq(type(msg), 'string')\n"
	       "ok, msg = Mailman.createDomain('other.tld', '/somewhere/else')\n"
	       "eq(ok, false, 'a path cannot be set yet')\n"
	       "eq(Mailman.createDomain('third.tld', '', 0), true, 'the defaults are fine')\n"
	       "eq(Mailman.deleteDomain('mynewdomain.tld'), true)\n"
	       "eq(Mailman.deleteDomain('mynewdomain.tld'), false, 'gone already')\n");
	ASSERT(!mm_domain_exists("mynewdomain.tld"));
	ASSERT(!mm_domain_exists("other.tld"));
	ASSERT(mm_domain_exists("third.tld"));
}

static void domain_reference_example_runs(void)
{
	ASSERT(setup() == 0);
	LUA_OK("Mailman.createDomain('mynewdomain.tld'); -- Make a new domain, just for fun.\n"
	       "eq(Mailman.listDomains()[2], 'mynewdomain.tld')\n"
	       "Mailman.deleteDomain('mynewdomain.tld'); -- Delete it again.\n"
	       "eq(#Mailman.listDomains(), 1)\n");
}

static void update_domain_renames_with_accounts_and_mail(void)
{
	ASSERT(setup() == 0 && mm_domain_add("old.tld", err, sizeof err) == 0);
	uint32_t bob = add_account("old.tld", "bob", MM_MBOX, "");
	ASSERT(bob && deliver("old.tld", "bob", "INBOX", simple_msg, 0));
	set_num("bob", bob);
	LUA_OK("eq(Mailman.updateDomain('old.tld', 'new.tld'), true)\n"
	       "eq(Mailman.accountExists('new.tld', 'bob'), true)\n"
	       "eq(Mailman.accountExists('old.tld', 'bob'), false)\n"
	       "eq(Mailman.readAccount('new.tld', 'bob').id, bob, 'the id stays')\n"
	       "eq(#Mailman.listHeaders(bob), 1, 'the mail moved along')\n"
	       "local names = table.concat(Mailman.listDomains(), ' ')\n"
	       "eq(names, 'example.org new.tld')\n"
	       "local ok, msg = Mailman.updateDomain('nope.tld', 'x.tld')\n"
	       "eq(ok, false) assert(msg:find('no such domain'), msg)\n"
	       "eq(Mailman.updateDomain('new.tld', 'example.org'), false, 'taken')\n"
	       "eq(Mailman.updateDomain('new.tld', 'bad name'), false, 'invalid')\n"
	       "eq(Mailman.updateDomain('new.tld', 'NEW.tld'), true, 'the same name')\n"
	       "eq(Mailman.updateDomain('new.tld', 'x.tld', '/elsewhere'), false, 'a path')\n"
	       "eq(#Mailman.listHeaders(bob), 1, 'nothing changed')\n");
}

static void list_domains_gives_names(void)
{
	ASSERT(setup() == 0 && mm_domain_add("example.net", err, sizeof err) == 0);
	LUA_OK("local d = Mailman.listDomains()\n"
	       "eq(#d, 2) eq(d[1], 'example.org') eq(d[2], 'example.net')\n"
	       "for id, domain in pairs(Mailman.listDomains()) do\n"
	       "    print('I found ' .. domain);\n"
	       "end\n"
	       "eq(out[1], 'I found example.org') eq(out[2], 'I found example.net')\n");
}

static void list_accounts_gives_every_field(void)
{
	ASSERT(setup() == 0);
	uint32_t john = people();
	ASSERT(john);
	LUA_OK("local list = Mailman.listAccounts('example.org')\n"
	       "eq(#list, 3)\n"
	       "local a = list[1]\n"
	       "eq(a.id, uid, 'id') eq(a.uid, uid, 'uid') eq(a.name, 'john', 'name')\n"
	       "eq(a.domain, 'example.org', 'domain') eq(a.type, 'mailbox', 'type')\n"
	       "eq(a.arguments, '', 'arguments')\n"
	       "assert(a.password:find('^pbkdf2%-sha256%$'), 'password: ' .. a.password)\n"
	       "eq(list[3].name, 'sales-*') eq(list[3].type, 'alias') eq(list[3].arguments, "
	       "'john')\n"
	       "eq(#Mailman.listAccounts('nowhere.tld'), 0, 'no such domain: empty')\n");
}

static void list_accounts_reference_example_runs(void)
{
	ASSERT(setup() == 0 && mm_domain_add("mydomain.tld", err, sizeof err) == 0);
	uint32_t id = add_account("mydomain.tld", "johndoe", MM_MBOX, "");
	ASSERT(id);
	set_num("id", id);
	LUA_OK("for id, account in pairs(Mailman.listAccounts('mydomain.tld')) do\n"
	       "    print(('Account: %s@%s, UID: %u, type: %s'):format(account.name,\n"
	       "        account.domain, account.uid, account.type));\n"
	       "end\n"
	       "eq(out[1], 'Account: johndoe@mydomain.tld, UID: ' .. id .. ', type: mailbox')\n");
}

static void read_account_by_uid_or_name(void)
{
	ASSERT(setup() == 0 && people());
	LUA_OK("local a = Mailman.readAccount(uid)\n"
	       "eq(a.name, 'john') eq(a.domain, 'example.org') eq(a.uid, uid)\n"
	       "local b = Mailman.readAccount('example.org', 'JOHN')\n"
	       "eq(b.id, uid) eq(b.password, a.password)\n"
	       "eq(Mailman.readAccount(tostring(uid)).name, 'john', 'a uid as a string')\n"
	       "eq(Mailman.readAccount(uid, 'example.org', 'jane').name, 'john', '[uid,] wins')\n"
	       "eq(Mailman.readAccount(99999), false, 'unknown uid')\n"
	       "eq(Mailman.readAccount(-1), false) eq(Mailman.readAccount(1.5), false)\n"
	       "eq(Mailman.readAccount('example.org', 'nobody'), false)\n");
}

static void read_account_reference_example_runs(void)
{
	ASSERT(setup() == 0 && mm_domain_add("mydomain.tld", err, sizeof err) == 0);
	ASSERT(add_account("mydomain.tld", "johndoe", MM_MBOX, ""));
	LUA_OK("local myAccount = Mailman.readAccount('mydomain.tld', 'johndoe');\n"
	       "if (myAccount) then\n"
	       "    print( string.format('I found %s@%s!', myAccount.name, myAccount.domain));\n"
	       "end\n"
	       "eq(out[1], 'I found johndoe@mydomain.tld!')\n");
}

static void save_account_with_sha256_password_can_log_in(void)
{
	ASSERT(setup() == 0);
	struct mm_account a;
	LUA_OK("local t = {name = 'newuser', domain = 'example.org', type = 'mbox',\n"
	       "  password = ('mypass'):SHA256()}\n"
	       "eq(Mailman.saveAccount(t), true)\n"
	       "assert(t.id and t.id == t.uid, 'the table learns its id')\n"
	       "local r = Mailman.readAccount(t.id)\n"
	       "eq(r.password, ('mypass'):SHA256(), 'stored as given')\n"
	       "eq(r.type, 'mailbox')\n");
	/* what POP3, IMAP and SMTP AUTH check */
	ASSERT_EQ(mm_login("newuser@example.org", "mypass", &a), 0);
	ASSERT_EQ(mm_login("newuser@example.org", "wrong", &a), -1);
}

static void save_account_updates_and_keeps_what_is_left_out(void)
{
	ASSERT(setup() == 0 && people());
	struct mm_account a;
	LUA_OK("eq(Mailman.saveAccount({name = 'john', domain = 'example.org',\n"
	       "  arguments = 'note'}), true, 'no id: the existing account')\n"
	       "local j = Mailman.readAccount(uid)\n"
	       "eq(j.arguments, 'note') eq(j.type, 'mailbox')\n"
	       "assert(j.password:find('^pbkdf2'), 'the password stays')\n"
	       "eq(#Mailman.listAccounts('example.org'), 3, 'no new account')\n"
	       "eq(Mailman.saveAccount({id = uid, type = 'module'}), true)\n"
	       "eq(Mailman.readAccount(uid).type, 'module')\n"
	       "eq(Mailman.saveAccount({id = uid, type = 'mailbox', password = 'plain'}), true)\n"
	       "assert(Mailman.readAccount(uid).password:find('^pbkdf2'), 'plain text is hashed')\n"
	       "local ok, msg = Mailman.saveAccount({id = 99999, name = 'x'})\n"
	       "eq(ok, false) eq(type(msg), 'string')\n"
	       "ok, msg = Mailman.saveAccount({name = 'x', domain = 'example.org', type = "
	       "'bogus'})\n"
	       "eq(ok, false) assert(msg:find('type'), msg)\n"
	       "ok, msg = Mailman.saveAccount({name = 'x', domain = 'nowhere.tld'})\n"
	       "eq(ok, false) assert(msg:find('no such domain'), msg)\n"
	       "ok, msg = Mailman.saveAccount({name = 'jane', domain = 'example.org', id = uid})\n"
	       "eq(ok, false, 'renaming onto another account') assert(msg:find('exists'), msg)\n");
	ASSERT_EQ(mm_login("john@example.org", "plain", &a), 0);
}

static void save_account_reference_example_runs(void)
{
	ASSERT(setup() == 0 && mm_domain_add("mydomain.tld", err, sizeof err) == 0);
	struct mm_account a;
	uint32_t old = add_account("mydomain.tld", "olduser", MM_MBOX, "");
	ASSERT(old && deliver("mydomain.tld", "olduser", "INBOX", simple_msg, 0));
	set_num("old", old);
	LUA_OK("-- Make a new account\n"
	       "local newAccount = {\n"
	       "    name = 'newuser', domain = 'mydomain.tld',\n"
	       "    type = 'mbox', password = ('mypass'):SHA256()\n"
	       "}\n"
	       "Mailman.saveAccount(newAccount);\n"
	       "-- Update an existing account\n"
	       "local oldAccount = Mailman.readAccount('mydomain.tld', 'olduser');\n"
	       "if (oldAccount) then\n"
	       "   oldAccount.name = 'updatedName';\n"
	       "   Mailman.saveAccount(oldAccount); -- updated!\n"
	       "end\n"
	       "eq(Mailman.accountExists('mydomain.tld', 'newuser'), true)\n"
	       "eq(Mailman.accountExists('mydomain.tld', 'olduser'), false)\n"
	       "eq(Mailman.readAccount('mydomain.tld', 'updatedname').id, old)\n"
	       "eq(#Mailman.listHeaders(old), 1, 'the mail follows the new name')\n");
	ASSERT_EQ(mm_login("newuser@mydomain.tld", "mypass", &a), 0);
}

static void save_account_raises_on_bad_tables(void)
{
	ASSERT(setup() == 0);
	LUA_ERR("Mailman.saveAccount()", "bad argument #1");
	LUA_ERR("Mailman.saveAccount('john')", "table expected");
	LUA_ERR("Mailman.saveAccount({domain = 'example.org'})", "needs a name");
	LUA_ERR("Mailman.saveAccount({name = {}, domain = 'example.org'})",
	        "'name' must be a string");
	LUA_ERR("Mailman.saveAccount({id = 'x'})", "'id' must be a number");
}

static void delete_account_by_uid_or_name(void)
{
	ASSERT(setup() == 0);
	uint32_t john = people();
	ASSERT(john);
	LUA_OK("eq(Mailman.deleteAccount(uid), true)\n"
	       "eq(Mailman.accountExists('example.org', 'john'), false)\n"
	       "eq(Mailman.deleteAccount('example.org', 'jane'), true)\n"
	       "eq(Mailman.accountExists('example.org', 'jane'), false)\n"
	       "local ok, msg = Mailman.deleteAccount(uid)\n"
	       "eq(ok, nil) eq(type(msg), 'string')\n"
	       "eq(Mailman.deleteAccount('example.org', 'nobody'), nil)\n");
}

static void delete_account_reference_example_runs(void)
{
	ASSERT(setup() == 0 && mm_domain_add("mydomain.tld", err, sizeof err) == 0);
	uint32_t other = add_account("mydomain.tld", "other", MM_MBOX, "");
	ASSERT(other && add_account("mydomain.tld", "johndoe", MM_MBOX, ""));
	set_num("other", other);
	LUA_OK("Mailman.deleteAccount('mydomain.tld', 'johndoe'); -- Delete johndoe@mydomain.tld\n"
	       "Mailman.deleteAccount(other); -- Delete the account with UID 1673\n"
	       "eq(#Mailman.listAccounts('mydomain.tld'), 0)\n");
}

/* ---- Mailman: mail ---- */

static void list_folders_gives_inbox_first(void)
{
	ASSERT(setup() == 0 && people());
	LUA_OK("local f = Mailman.listFolders(uid)\n"
	       "eq(#f, 1) eq(f[1], 'INBOX')\n");
	ASSERT(deliver("example.org", "john", "Sent", simple_msg, 0));
	ASSERT(deliver("example.org", "john", "Archive", simple_msg, 0));
	LUA_OK("local f = Mailman.listFolders(uid)\n"
	       "eq(table.concat(f, ' '), 'INBOX Archive Sent')\n"
	       "local none, msg = Mailman.listFolders(99999)\n"
	       "eq(none, nil) eq(type(msg), 'string')\n");
}

static void list_headers_gives_every_field(void)
{
	ASSERT(setup() == 0 && people());
	uint32_t u1 = deliver("example.org", "john", "INBOX", simple_msg, 0);
	uint32_t u2 = deliver("example.org", "john", "INBOX", qp_msg, MM_SEEN | MM_FLAGGED);
	ASSERT(u1 && u2);
	set_num("u1", u1);
	set_num("u2", u2);
	set_num("size1", (double)strlen(simple_msg));
	LUA_OK("local list = Mailman.listHeaders(uid)\n"
	       "eq(#list, 2)\n"
	       "local h = list[1]\n"
	       "eq(h.id, u1, 'id') eq(h.size, size1, 'size')\n"
	       "eq(h.sent, 1764064800, 'sent, from the Date header')\n"
	       "eq(h.read, false, 'read')\n"
	       "eq(h.subject, 'Caf\\195\\169 menu', 'RFC 2047 decoded')\n"
	       "eq(h.from, 'Alice <alice@example.net>')\n"
	       "eq(h.to, 'john@example.org,  jane@example.org', 'unfolded')\n"
	       "eq(h['content-type'], 'text/plain; charset=utf-8')\n"
	       "eq(h.received, 'from a', 'the first of repeated fields')\n"
	       "eq(h['x-empty'], '')\n"
	       "eq(list[2].id, u2) eq(list[2].read, true)\n"
	       "eq(list[2].sent, 1795000000, 'no Date: when it arrived')\n");
}

static void list_headers_of_folders_and_unknown_accounts(void)
{
	ASSERT(setup() == 0 && people());
	LUA_OK("eq(#Mailman.listHeaders(uid), 0, 'an INBOX without mail')\n"
	       "eq(#Mailman.listHeaders(uid, 'INBOX'), 0)\n"
	       "local none, msg = Mailman.listHeaders(uid, 'Nothing')\n"
	       "eq(none, nil) assert(msg:find('no folder'), msg)\n"
	       "none, msg = Mailman.listHeaders(99999)\n"
	       "eq(none, nil) assert(msg:find('no account'), msg)\n");
	ASSERT(deliver("example.org", "john", "Sent", qp_msg, 0));
	ASSERT(deliver("example.org", "john", "INBOX", simple_msg, 0));
	LUA_OK("eq(Mailman.listHeaders(uid, 'Sent')[1].subject, 'Lunch')\n"
	       "eq(#Mailman.listHeaders(uid, 0), 1, 'folder 0 is the INBOX')\n"
	       "eq(Mailman.listHeaders(uid, 7), nil, 'no other folder numbers')\n");
}

static void list_headers_reference_example_runs(void)
{
	ASSERT(setup() == 0 && mm_domain_add("mydomain.tld", err, sizeof err) == 0);
	ASSERT(add_account("mydomain.tld", "johndoe", MM_MBOX, ""));
	ASSERT(deliver("mydomain.tld", "johndoe", "INBOX", simple_msg, 0));
	LUA_OK("-- get johndoe@mydomain.tld's account info\n"
	       "local account = Mailman.readAccount('mydomain.tld', 'Johndoe');\n"
	       "-- Get the messages\n"
	       "local headers = Mailman.listHeaders(account.id);\n"
	       "for id, header in pairs(headers) do\n"
	       "    local text = string.format('Message no. %d - From: %s, Subject: %s, "
	       "Content-type: %s',\n"
	       "    header.id, header.from, header.subject, header['content-type']) ;\n"
	       "    print(text)\n"
	       "    if (not header.read) then print(\"This message hasn't been read yet!\"); end\n"
	       "end\n"
	       "eq(out[1], 'Message no. 1 - From: Alice <alice@example.net>, Subject: "
	       "Caf\\195\\169 menu, Content-type: text/plain; charset=utf-8')\n"
	       "eq(out[2], \"This message hasn't been read yet!\")\n");
}

static void read_mail_decodes_a_single_part_and_marks_it_seen(void)
{
	ASSERT(setup() == 0 && people());
	uint32_t other = deliver("example.org", "john", "INBOX", simple_msg, 0);
	uint32_t lid = deliver("example.org", "john", "INBOX", qp_msg, MM_FLAGGED);
	ASSERT(other && lid);
	set_num("lid", lid);
	LUA_OK("local m = Mailman.readMail(uid, lid)\n"
	       "eq(m.headers.from, 'Alice <alice@example.net>')\n"
	       "eq(m.headers.subject, 'Lunch')\n"
	       "eq(m.headers['content-transfer-encoding'], 'quoted-printable')\n"
	       "eq(m.body, 'See you at caf\\233 at noon.\\r\\n', 'quoted-printable decoded')\n"
	       "eq(m.parts, nil)\n"
	       "eq(m.type, 'text') eq(m.subtype, 'plain') eq(m.charset, 'iso-8859-1')\n"
	       "eq(m.filename, nil)\n"
	       "eq(Mailman.listHeaders(uid)[2].read, true)\n"
	       "eq(Mailman.listHeaders(uid)[1].read, false, 'the other one is untouched')\n");
	ASSERT_EQ(flags_of("example.org", "john", lid), MM_SEEN | MM_FLAGGED);
	ASSERT_EQ(flags_of("example.org", "john", other), 0);
}

static void read_mail_gives_nested_parts_of_a_multipart(void)
{
	ASSERT(setup() == 0 && people());
	uint32_t lid = deliver("example.org", "john", "INBOX", multi_msg, 0);
	ASSERT(lid);
	set_num("lid", lid);
	LUA_OK("local m = Mailman.readMail(uid, lid)\n"
	       "eq(m.headers.subject, 'Gr\\195\\188\\195\\159e', 'decoded to UTF-8')\n"
	       "eq(m.type, 'multipart') eq(m.subtype, 'mixed') eq(m.body, nil)\n"
	       "eq(#m.parts, 4)\n"
	       "local p = m.parts[1]\n"
	       "eq(p.type, 'text') eq(p.subtype, 'plain') eq(p.charset, 'utf-8')\n"
	       "eq(p.body, 'Caf\\195\\169 au lait')\n"
	       "eq(p.headers['content-transfer-encoding'], 'quoted-printable')\n"
	       "local alt = m.parts[2]\n"
	       "eq(alt.subtype, 'alternative') eq(#alt.parts, 2) eq(alt.body, nil)\n"
	       "eq(alt.parts[1].body, 'plain version') eq(alt.parts[1].charset, 'us-ascii')\n"
	       "eq(alt.parts[2].subtype, 'html') eq(alt.parts[2].body, '<p>html version</p>')\n"
	       "local att = m.parts[3]\n"
	       "eq(att.type, 'application') eq(att.subtype, 'octet-stream')\n"
	       "eq(att.filename, 'report.pdf') eq(att.charset, nil)\n"
	       "eq(att.body, '\\0\\1\\2\\3\\4\\5\\255', 'base64 decoded')\n"
	       "local inner = m.parts[4]\n"
	       "eq(inner.type, 'message') eq(inner.subtype, 'rfc822')\n"
	       "assert(inner.body:find('^Subject: inner message'), 'the message as it is')\n"
	       "eq(inner.message.headers.subject, 'inner message')\n"
	       "eq(inner.message.body, 'inner body')\n");
}

static void read_mail_reference_example_runs(void)
{
	ASSERT(setup() == 0);
	uint32_t john = people();
	uint32_t lid = deliver("example.org", "john", "INBOX", qp_msg, 0);
	ASSERT(john && lid);
	set_num("lid", lid);
	LUA_OK("local message = Mailman.readMail(uid, lid);\n"
	       "print('From: ' .. message.headers.from);\n"
	       "print('Message reads:');\n"
	       "print(message.body);\n"
	       "eq(out[1], 'From: Alice <alice@example.net>')\n"
	       "eq(out[3], 'See you at caf\\233 at noon.\\r\\n')\n");
}

static void read_mail_of_unknown_ids_is_nil(void)
{
	ASSERT(setup() == 0 && people());
	uint32_t lid = deliver("example.org", "john", "INBOX", qp_msg, 0);
	ASSERT(lid);
	set_num("lid", lid);
	LUA_OK("local m, msg = Mailman.readMail(uid, lid + 1)\n"
	       "eq(m, nil) assert(msg:find('no message'), msg)\n"
	       "eq(Mailman.readMail(99999, lid), nil, 'unknown account')\n"
	       "eq(Mailman.readMail(uid, 0), nil) eq(Mailman.readMail(uid, -3), nil)\n"
	       "eq(Mailman.readMail(uid, lid, 'Nothing'), nil, 'unknown folder')\n"
	       "eq(Mailman.readMail(uid, lid, 'INBOX').headers.subject, 'Lunch')\n");
}

static void delete_mail_removes_that_message_only(void)
{
	ASSERT(setup() == 0 && people());
	uint32_t keep = deliver("example.org", "john", "INBOX", simple_msg, MM_DELETED);
	uint32_t lid = deliver("example.org", "john", "INBOX", qp_msg, 0);
	ASSERT(keep && lid);
	set_num("lid", lid);
	set_num("keep", keep);
	LUA_OK("eq(Mailman.deleteMail(uid, lid), true)\n"
	       "local list = Mailman.listHeaders(uid)\n"
	       "eq(#list, 1) eq(list[1].id, keep, 'a message flagged \\\\Deleted stays')\n"
	       "local ok, msg = Mailman.deleteMail(uid, lid)\n"
	       "eq(ok, nil) assert(msg:find('no message'), msg)\n"
	       "eq(Mailman.deleteMail(99999, keep), nil)\n"
	       "eq(Mailman.deleteMail(uid, keep, 'Nothing'), nil)\n");
	ASSERT_EQ(flags_of("example.org", "john", keep), MM_DELETED);
}

static void send_mail_delivers_locally_and_queues_the_rest(void)
{
	ASSERT(setup() == 0 && people());
	ASSERT_EQ(queue_start(), 0);
	conf.block_outgoing = 1; /* Mailman.sendMail goes out anyway */
	int rc = run("eq(Mailman.sendMail('script@example.org', 'john@example.org',\n"
	             "  'Subject: Hello!\\n\\nTesting 123'), true)\n"
	             "local h = Mailman.listHeaders(uid)\n"
	             "eq(#h, 1) eq(h[1].subject, 'Hello!')\n"
	             "assert(h[1].received:find('Rumble'), 'a Received: line')\n"
	             "eq(Mailman.readMail(uid, h[1].id).body, 'Testing 123\\r\\n', 'CRLF')\n"
	             "eq(Mailman.sendMail('', {'john@example.org', '<jane@example.org>',\n"
	             "  'sales-eu@example.org'}, 'Subject: two\\r\\n\\r\\nx\\r\\n'), true)\n"
	             "eq(#Mailman.listHeaders(uid), 2, 'one copy for john (sales-* too)')\n"
	             "eq(#Mailman.listHeaders(Mailman.readAccount('example.org', 'jane').id), 1)\n"
	             "eq(#Mailman.getQueue(), 0, 'local mail is not queued')\n"
	             "eq(Mailman.sendMail('John <john@example.org>', 'friend@remote.test',\n"
	             "  'Subject: out\\n\\nbye\\n'), true)\n"
	             "local q = Mailman.getQueue()\n"
	             "eq(#q, 1)\n"
	             "assert(q[1].id:find('^%x+$') and #q[1].id == 16, 'id ' .. q[1].id)\n"
	             "eq(q[1].from, 'john@example.org')\n"
	             "eq(#q[1].recipients, 1) eq(q[1].recipients[1], 'friend@remote.test')\n"
	             "assert(math.abs(q[1].date - os.time()) < 60, 'date')\n"
	             "eq(type(q[1].attempts), 'number') eq(type(q[1].next), 'number')\n"
	             "assert(q[1].size > 20, 'size')\n");
	conf.block_outgoing = 0;
	queue_stop();
	if (rc != 0) {
		unit_fail(__FILE__, __LINE__, lerr);
	}
}

static void send_mail_reference_example_runs(void)
{
	ASSERT(setup() == 0 && people());
	ASSERT_EQ(queue_start(), 0);
	int rc = run("local message = [[\n"
	             "Subject: Hello!\n"
	             "\n"
	             "Testing 123\n"
	             "]]\n"
	             "-- Now send the email:\n"
	             "Mailman.sendMail('me@example.org', 'john@example.org', message);\n"
	             "eq(Mailman.listHeaders(uid)[1].subject, 'Hello!')\n");
	queue_stop();
	if (rc != 0) {
		unit_fail(__FILE__, __LINE__, lerr);
	}
}

static void send_mail_refuses_bad_addresses_and_raises_on_bad_types(void)
{
	ASSERT(setup() == 0 && people());
	ASSERT_EQ(queue_start(), 0);
	int rc =
	        run("local ok, msg = Mailman.sendMail('a b@example.org', 'john@example.org', 'x')\n"
	            "eq(ok, nil) assert(msg:find('sender'), msg)\n"
	            "ok, msg = Mailman.sendMail('', 'nobody@example.org', 'x')\n"
	            "eq(ok, nil) assert(msg:find('no such local address'), msg)\n"
	            "ok, msg = Mailman.sendMail('', {'john@example.org', 'not-an-address'}, 'x')\n"
	            "eq(ok, nil) assert(msg:find('bad recipient'), msg)\n"
	            "ok, msg = Mailman.sendMail('', {}, 'x')\n"
	            "eq(ok, nil) assert(msg:find('no recipients'), msg)\n"
	            "ok, msg = Mailman.sendMail('', 'john@example.org\\r\\nRCPT TO:<x@y>', 'x')\n"
	            "eq(ok, nil, 'no line breaks in addresses')\n"
	            "eq(#Mailman.listHeaders(uid), 0, 'nothing was sent')\n");
	const char *bad = rc ? lerr : NULL;
	if (!bad && !raises("Mailman.sendMail('a@example.org', 5, 'x')", "string or table")) {
		bad = "a number as 'to' did not raise";
	}
	if (!bad && !raises("Mailman.sendMail('a@example.org', {'john@example.org', {}}, 'x')",
	                    "recipient 2")) {
		bad = "a table in the list of recipients did not raise";
	}
	if (!bad && !raises("Mailman.sendMail('a@example.org', 'john@example.org')",
	                    "bad argument #3")) {
		bad = "a missing message did not raise";
	}
	queue_stop();
	if (bad) {
		unit_fail(__FILE__, __LINE__, bad);
	}
}

static void get_queue_of_an_empty_queue_is_empty(void)
{
	ASSERT(setup() == 0);
	LUA_OK("local q = Mailman.getQueue() eq(type(q), 'table') eq(#q, 0)\n");
}

static void mailman_bad_calls_raise_or_return_nil(void)
{
	ASSERT(setup() == 0 && people());
	static const char *const raise[] = {
	        "Mailman.accountExists('example.org')",
	        "Mailman.accountExists(nil, 'john')",
	        "Mailman.addressExists({}, 'john')",
	        "Mailman.createDomain()",
	        "Mailman.createDomain('a.tld', {})",
	        "Mailman.updateDomain('example.org')",
	        "Mailman.deleteDomain()",
	        "Mailman.listAccounts()",
	        "Mailman.readAccount()",
	        "Mailman.readAccount({})",
	        "Mailman.readAccount('example.org')",
	        "Mailman.deleteAccount()",
	        "Mailman.listFolders()",
	        "Mailman.listFolders('john')",
	        "Mailman.listHeaders()",
	        "Mailman.listHeaders(uid, {})",
	        "Mailman.readMail(uid)",
	        "Mailman.readMail('x', 1)",
	        "Mailman.deleteMail(uid)",
	        "Mailman.sendMail()",
	        "Mailman.accountExists('example.org', 'jo\\0hn')",
	};
	for (size_t i = 0; i < sizeof raise / sizeof raise[0]; i++) {
		if (run(raise[i]) == 0 || !strstr(lerr, "bad argument")) {
			char m[1200];
			snprintf(m, sizeof m, "%s: wanted \"bad argument\", got \"%s\"", raise[i],
			        lerr);
			unit_fail(__FILE__, __LINE__, m);
			return;
		}
	}
	LUA_OK("eq(Mailman.readAccount(0), false)\n"
	       "eq(Mailman.listFolders(0), nil)\n"
	       "eq(Mailman.listHeaders(4294967296), nil)\n"
	       "eq(Mailman.readMail(0 / 0, 1), nil, 'NaN')\n"
	       "eq(Mailman.deleteMail(uid, 1e300), nil)\n");
}

/* ---- failing allocations ---- */

/* Runs code in states with less and less room: every run either works or
 * fails with Lua's memory error, and lua_close frees what the call held
 * (LeakSanitizer checks the sanitizer build). 0, or -1 with lerr set. */
static int run_starved(const char *code)
{
	for (size_t room = 0; room < 96 * 1024; room += 128) {
		struct unit_cap c = {0, (size_t)-1};
		lua_State *s = lua_newstate(unit_cap_alloc, &c);
		luaL_openlibs(s);
		rl_open_string(s);
		rl_open_mailman(s);
		lua_pushnumber(s, 1);
		lua_setglobal(s, "uid");
		if (luaL_loadstring(s, code) != 0) {
			snprintf(lerr, sizeof lerr, "%s", lua_tostring(s, -1));
			lua_close(s);
			return -1;
		}
		lua_gc(s, LUA_GCCOLLECT, 0);
		c.limit = c.used + room;
		int rc = lua_pcall(s, 0, 0, 0);
		if (rc != 0 && rc != LUA_ERRMEM) {
			snprintf(lerr, sizeof lerr, "room %zu: %s", room, lua_tostring(s, -1));
			lua_close(s);
			return -1;
		}
		c.limit = (size_t)-1;
		lua_close(s);
		if (rc == 0) {
			return 0; /* enough room: it worked */
		}
	}
	snprintf(lerr, sizeof lerr, "never had room enough");
	return -1;
}

static void calls_survive_failing_allocations(void)
{
	ASSERT(setup() == 0 && people());
	ASSERT(deliver("example.org", "john", "INBOX", multi_msg, 0));
	ASSERT(deliver("example.org", "john", "INBOX", simple_msg, 0));
	ASSERT(deliver("example.org", "john", "Sent", simple_msg, 0));
	static const char *const calls[] = {
	        "assert(Mailman.readMail(uid, 1).parts[4].message)",
	        "assert(#Mailman.listHeaders(uid) == 2)",
	        "assert(#Mailman.listAccounts('example.org') == 3)",
	        "assert(#Mailman.listFolders(uid) == 2)",
	        "assert(#Mailman.listDomains() == 1)",
	        "assert(#Mailman.getQueue() == 0)",
	        "assert(#string.rep('x', 3000):encode64():decode64() == 3000)",
	};
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		if (run_starved(calls[i]) != 0) {
			char m[1300];
			snprintf(m, sizeof m, "%s: %s", calls[i], lerr);
			unit_fail(__FILE__, __LINE__, m);
			return;
		}
	}
}

void tests_lua(void)
{
	RUN(sha256_gives_lower_case_hex, "lua string.SHA256 gives 64 lower-case hex digits");
	RUN(sha256_reference_example_runs, "lua string.SHA256: the reference's example runs");
	RUN(base64_encodes_and_decodes_rfc4648_vectors,
	        "lua string.encode64/decode64 give RFC 4648's vectors, also as methods");
	RUN(base64_round_trips_binary_of_every_length,
	        "lua string.encode64/decode64 round-trip binary strings of every length");
	RUN(decode64_skips_blanks_adds_padding_refuses_junk,
	        "lua string.decode64 skips blanks, adds missing padding, refuses junk with nil");
	RUN(base64_reference_example_runs,
	        "lua string.encode64/decode64: the reference's example runs");
	RUN(string_functions_raise_on_bad_arguments, "lua string functions raise on bad arguments");

	RUN(file_stat_gives_every_field,
	        "lua file.stat gives size, created, modified, accessed, mode");
	RUN(file_stat_of_a_missing_file_is_nil, "lua file.stat of a missing file is nil");
	RUN(file_exists_says_true_or_false, "lua file.exists says true or false");
	RUN(file_reference_examples_run, "lua file.stat/exists: the reference's examples run");
	RUN(file_functions_raise_on_bad_arguments, "lua file functions raise on bad arguments");

	if (fake_start() != 0) {
		unit_fail(__FILE__, __LINE__, "the fake DNS server did not start");
	} else {
		RUN(gethostbyname_gives_the_first_address,
		        "lua network.getHostByName gives the first address, nil for no such host");
		RUN(getmx_lists_hosts_by_preference, "lua network.getMX lists hosts by preference");
		RUN(getmx_falls_back_to_the_address,
		        "lua network.getMX falls back to the domain's address, nil for no domain");
		RUN(network_reference_examples_run, "lua network: the reference's examples run");
		RUN(network_functions_raise_on_bad_arguments,
		        "lua network functions raise on bad arguments");
	}
	fake_stop();

	RUN(account_exists_wants_the_exact_name, "lua Mailman.accountExists wants the exact name");
	RUN(address_exists_follows_glob_accounts,
	        "lua Mailman.addressExists follows GLOB accounts");
	RUN(exists_reference_example_runs,
	        "lua Mailman.accountExists/addressExists: the reference's example runs");
	RUN(create_and_delete_domain_report_what_happened,
	        "lua Mailman.createDomain/deleteDomain say true, or false and why");
	RUN(domain_reference_example_runs,
	        "lua Mailman.createDomain/deleteDomain: the reference's example runs");
	RUN(update_domain_renames_with_accounts_and_mail,
	        "lua Mailman.updateDomain renames a domain with its accounts and mail");
	RUN(list_domains_gives_names,
	        "lua Mailman.listDomains gives names (the reference's example)");
	RUN(list_accounts_gives_every_field,
	        "lua Mailman.listAccounts gives id, uid, name, domain, password, type, arguments");
	RUN(list_accounts_reference_example_runs,
	        "lua Mailman.listAccounts: the reference's example runs");
	RUN(read_account_by_uid_or_name,
	        "lua Mailman.readAccount by uid or by name, false if none");
	RUN(read_account_reference_example_runs,
	        "lua Mailman.readAccount: the reference's example runs");
	RUN(save_account_with_sha256_password_can_log_in,
	        "lua Mailman.saveAccount with a SHA256 password makes a login that works");
	RUN(save_account_updates_and_keeps_what_is_left_out,
	        "lua Mailman.saveAccount updates, keeping fields left out");
	RUN(save_account_reference_example_runs,
	        "lua Mailman.saveAccount: the reference's example runs (a rename keeps the mail)");
	RUN(save_account_raises_on_bad_tables, "lua Mailman.saveAccount raises on bad tables");
	RUN(delete_account_by_uid_or_name, "lua Mailman.deleteAccount by uid or by name");
	RUN(delete_account_reference_example_runs,
	        "lua Mailman.deleteAccount: the reference's example runs");

	RUN(list_folders_gives_inbox_first, "lua Mailman.listFolders gives INBOX first");
	RUN(list_headers_gives_every_field,
	        "lua Mailman.listHeaders gives id, size, sent, read and decoded headers");
	RUN(list_headers_of_folders_and_unknown_accounts,
	        "lua Mailman.listHeaders of other folders, nil for unknown ones");
	RUN(list_headers_reference_example_runs,
	        "lua Mailman.listHeaders: the reference's example runs");
	RUN(read_mail_decodes_a_single_part_and_marks_it_seen,
	        "lua Mailman.readMail decodes a single part and sets \\Seen, nothing else");
	RUN(read_mail_gives_nested_parts_of_a_multipart,
	        "lua Mailman.readMail gives the nested parts of a multipart message");
	RUN(read_mail_reference_example_runs, "lua Mailman.readMail: the reference's example runs");
	RUN(read_mail_of_unknown_ids_is_nil, "lua Mailman.readMail of unknown ids is nil");
	RUN(delete_mail_removes_that_message_only,
	        "lua Mailman.deleteMail removes that message only");
	RUN(send_mail_delivers_locally_and_queues_the_rest,
	        "lua Mailman.sendMail delivers locally, queues the rest despite BlockOutgoingMail");
	RUN(send_mail_reference_example_runs, "lua Mailman.sendMail: the reference's example runs");
	RUN(send_mail_refuses_bad_addresses_and_raises_on_bad_types,
	        "lua Mailman.sendMail refuses bad addresses, raises on bad types");
	RUN(get_queue_of_an_empty_queue_is_empty,
	        "lua Mailman.getQueue of an empty queue is empty");
	RUN(mailman_bad_calls_raise_or_return_nil,
	        "lua Mailman bad calls raise, unknown ids give nil or false");
	RUN(calls_survive_failing_allocations,
	        "lua calls survive failing allocations without crash or leak");
	state_close();
	mm_close();
}
