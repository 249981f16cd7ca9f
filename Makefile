# GNU make; build.sh drives it. Objects go to $(OUT) so that the release,
# sanitizer and Windows builds live side by side.
CC      ?= cc
OUT     ?= build/rel
PLAT    ?= posix
OPT     ?= -O2 -g
EXE     ?=
LUA_INC ?= /usr/include/lua5.1
LUA_A   ?= /usr/lib/$(shell $(CC) -dumpmachine 2>/dev/null)/liblua5.1.a
SSL_INC ?= /usr/include
SSL_A   ?= /usr/lib/$(shell $(CC) -dumpmachine 2>/dev/null)/libbearssl.a
SYSLIBS ?= -lpthread -lm -ldl
WARN     = -Wall -Wextra -Werror -Wundef -Wshadow -Wno-unused-parameter
# 64-bit off_t and time_t on 32-bit glibc too (an INTERNALDATE past 2038);
# other C libraries ignore both.
CFLAGS  += $(OPT) $(WARN) -std=c11 -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 \
           -I. -I$(OUT)/gen -isystem $(LUA_INC) -isystem $(SSL_INC) $(EXTRA_CFLAGS)
LDFLAGS += $(EXTRA_LDFLAGS)
# Objects depend on the compiler and flags they were made with: OUT/.flags
# changes (and everything is rebuilt) when those change.
STAMP   := $(OUT)/.flags
$(shell mkdir -p $(OUT) && echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $(STAMP) || \
        echo '$(CC) $(CFLAGS) $(LDFLAGS)' >$(STAMP))

CORE  = admin.c sieve.c managesieve.c sieve_parse.c sieve_run.c compact.c authcache.c backup.c import.c password.c config.c log.c buf.c session.c smtp.c policy.c pop3.c imap.c imap_fetch.c imap_msg.c imap_parse.c imap_meta.c imap_special.c imap_list.c imap_sort.c imap_search.c imap_store.c imap_quota.c quota.c imap_sync.c imap_utf8.c imap_esearch.c queue.c outbound.c mtasts.c mailman.c names.c mbox.c mbox_read.c metadata.c work.c dnsbl.c dkim.c dkim_verify.c dmarc.c ed25519.c autoconf.c dnsadvice.c greylist.c stats.c spf.c crypto.c der.c eckey.c json.c acme.c x509.c httpc.c wellknown.c mime.c mime_text.c dns.c $(PLAT)/os.c $(PLAT)/service.c \
        lua/runtime.c lua/pcall.c lua/sandbox.c lua/handle.c lua/lpattern.c lua/lio.c lua/hooks.c lua/services.c lua/jobs.c lua/lrumble.c \
        lua/lstring.c lua/lfile.c lua/lnetwork.c lua/lmailman.c lua/lmisc.c lua/ldovecot.c \
        lua/vpop3.c lua/lltn12.c lua/lmime.c lua/lsocket.c lua/webadmin.c
UNIT  = $(wildcard tests/test_*.c) tests/unit.c
OBJ   = $(CORE:%.c=$(OUT)/%.o)
UOBJ  = $(UNIT:%.c=$(OUT)/%.o)
HDRS  = rumble.h imap.h os.h policy.h admin.h import.h sieve.h lua/rl.h $(wildcard $(PLAT)/*.h)

all: $(OUT)/rumble$(EXE)

$(OUT)/rumble$(EXE): $(OUT)/rumble.o $(OBJ) $(STAMP) $(wildcard $(LUA_A) $(SSL_A))
	$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(LUA_A) $(SSL_A) $(LDFLAGS) $(SYSLIBS)

$(OUT)/unit$(EXE): $(UOBJ) $(OBJ) $(STAMP) $(wildcard $(LUA_A) $(SSL_A))
	$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(LUA_A) $(SSL_A) $(LDFLAGS) $(SYSLIBS)

$(OUT)/%.o: %.c $(HDRS) tests/unit.h $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The web admin's Lua source as a C array (webadmin.c includes it), made by
# tools/embed.c (Makefile.msvc uses it too), built for the machine that
# builds (HOSTCC) even when CC cross-compiles.
HOSTCC ?= cc
$(OUT)/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(HOSTCC) -O2 -o $@ tools/embed.c

$(OUT)/gen/webadmin_lua.h: lua/webadmin.lua $(OUT)/embed
	@mkdir -p $(dir $@)
	$(OUT)/embed webadmin_lua lua/webadmin.lua $@

$(OUT)/lua/webadmin.o: $(OUT)/gen/webadmin_lua.h

# The 10,000 most common passwords (password.c), made once for every target
# from Debian's python3-zxcvbn (build.sh installs it; never committed).
PASSWORDS ?= build/passwords.txt
$(PASSWORDS): tools/passwords.py
	@mkdir -p $(dir $@)
	/usr/bin/python3 tools/passwords.py $@

$(OUT)/gen/passwords_list.h: $(PASSWORDS) $(OUT)/embed
	@mkdir -p $(dir $@)
	$(OUT)/embed common_passwords $(PASSWORDS) $@

$(OUT)/password.o: $(OUT)/gen/passwords_list.h

# The public suffix list (Debian's publicsuffix package) as a packed C
# table for dmarc.c, made by tools/pslgen.c; the list is never committed.
PSL ?= /usr/share/publicsuffix/public_suffix_list.dat
$(OUT)/pslgen: tools/pslgen.c
	@mkdir -p $(dir $@)
	$(HOSTCC) -O2 -o $@ tools/pslgen.c

$(OUT)/gen/psl_table.h: $(PSL) $(OUT)/pslgen
	@mkdir -p $(dir $@)
	$(OUT)/pslgen $(PSL) $@

$(OUT)/dmarc.o: $(OUT)/gen/psl_table.h

unit: $(OUT)/unit$(EXE)

# libFuzzer targets over in-memory sessions (./build.sh fuzz): the core
# is compiled with -fsanitize=fuzzer-no-link in EXTRA_CFLAGS, the harness
# linked with the fuzzer's main.
FUZZ  = $(OUT)/fuzz_smtp$(EXE) $(OUT)/fuzz_pop3$(EXE) $(OUT)/fuzz_sieve$(EXE) \
        $(OUT)/fuzz_managesieve$(EXE)
$(OUT)/fuzz_%$(EXE): $(OUT)/tests/fuzz_%.o $(OBJ) $(STAMP) $(wildcard $(LUA_A) $(SSL_A))
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.o,$^) $(LUA_A) $(SSL_A) $(LDFLAGS) $(SYSLIBS)

$(OUT)/tests/fuzz_%.o: tests/fuzz.h

fuzz: $(FUZZ)

.PHONY: all unit fuzz
