"""End-to-end tests of the Dovecot-style Lua API: i_* logging, dovecot.event()
events, dovecot.storage, and the mail_user / mailbox objects a script gets in
mail_user_created() when an IMAP or POP3 user logs in."""
import imaplib
import os
import poplib
import smtplib
import time

from harness import free_port
from test_lua import lua_server, stopped, wait_log

SCRIPT = r"""
function script_load()
    i_info("dovecot script loaded")
    return 0
end

local function say(fmt, ...) i_info(string.format(fmt, ...)) end

function mail_user_created(user)
    local e = dovecot.event()
    e:set_name("login"):add_str("service", user.service):add_int("n", 5)
    e:inc_int("n", 2)
    e:append_log_prefix(user.username .. ": ")
    e:log_info("created service=" .. user.service .. " session=" .. user.session_id)
    local child = dovecot.event(e)
    child:append_log_prefix("child: ")
    child:log_warning("hello")
    local r = dovecot.event(child)
    r:replace_log_prefix("only: ")
    r:log_error("replaced")
    local p = e:passthrough_event()
    p:add_str("k", "v"):log_debug("passing")
    say("pass-pass %s", tostring(p.passthrough_event))

    local S = dovecot.storage
    local box = user:mailbox("inbox")
    box:open()
    local st = box:status(S.STATUS_MESSAGES, S.STATUS_UNSEEN, S.STATUS_UIDNEXT)
    say("status %s messages=%d unseen=%d uidnext=%d first_unseen=%d recent=%d",
        st.mailbox, st.messages, st.unseen, st.uidnext, st.first_unseen_seq, st.recent)
    box:metadata_set("/private/comment", "hi there")
    say("boxmeta %s tostring=%s eq=%s", tostring(box:metadata_get("/private/comment")),
        tostring(box), tostring(box == user:mailbox("INBOX")))
    box:close()
    box:free()
    say("freed-use %s", tostring(pcall(box.status, box)))

    local n = tonumber(user:metadata_get("/private/vendor/rumble/logins")) or 0
    user:metadata_set("/private/vendor/rumble/logins", tostring(n + 1))
    user:metadata_set("/private/vendor/rumble/tmp", "x")
    user:metadata_unset("/private/vendor/rumble/tmp")
    say("logins %s list=%s", user:metadata_get("/private/vendor/rumble/logins"),
        table.concat(user:metadata_list("/private/vendor"), ","))
    say("expand [%s]", user:var_expand("%n at %d via %s (%u) 100%% %{domain} %x"))
    say("user %s home=%s uid=%s anon=%s", tostring(user), tostring(user.home ~= nil and
        user.home:find(user.username:match("^[^@]+"), 1, true) ~= nil), type(user.uid),
        tostring(user.anonymous))
    say("env %s %s", tostring(user:plugin_getenv("ServerName")), tostring(user:plugin_getenv("NoSuch")))
    say("badkey %s", tostring(pcall(user.metadata_get, user, "/bad/key")))
    say("nope %s", tostring(pcall(function() user:mailbox("Nope"):open() end)))
    local auto = user:mailbox("Archive", S.MAILBOX_FLAG_AUTO_CREATE)
    auto:open()
    say("auto %d", auto:status().messages)
    auto:free()
end

function mail_user_deinit_pre(user) i_info("deinit_pre " .. user.username) end
function mail_user_deinit(user) i_info("deinit " .. user.username) end
"""


def dovecot_server(script):
    imap, pop = free_port(), free_port()
    s = lua_server(script, conf="EnableIMAP4 1\nIMAP4Port %d\nEnablePOP3 1\nPOP3Port %d"
                   % (imap, pop))
    s.imap_port, s.pop_port = imap, pop
    return s


def test_mail_user_created_gets_a_user_its_mailboxes_and_metadata():
    """dovecot: an IMAP then a POP3 login call mail_user_created(user) with events, mailbox status and metadata; logout calls the deinit hooks"""
    s = dovecot_server(SCRIPT)
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        for i in range(3):
            c.sendmail("x@remote.test", ["alice@example.org"], b"Subject: %d\r\n\r\nbody\r\n" % i)
    assert wait_log(s, "script: dovecot script loaded")
    m = imaplib.IMAP4("127.0.0.1", s.imap_port)
    m.login("alice@example.org", "secret")
    assert wait_log(s, "script: auto 0"), s.stderr()[-4000:]
    log = s.stderr()
    assert "script: alice@example.org: created service=imap session=" in log, log[-4000:]
    # children show their ancestors' prefixes, name and fields (LogLevel debug)
    assert "script: alice@example.org: child: hello {login n=7 service=imap}" in log
    assert "script: only: replaced {login n=7 service=imap}" in log
    assert "script: alice@example.org: passing {login k=v n=7 service=imap}" in log, log[-4000:]
    assert "script: pass-pass nil" in log
    assert "script: status INBOX messages=3 unseen=3 uidnext=4 first_unseen=1 recent=0" in log
    assert "script: boxmeta hi there tostring=INBOX eq=true" in log
    assert "script: freed-use false" in log
    assert "script: logins 1 list=/private/vendor/rumble/logins" in log
    assert "script: expand [alice at example.org via imap (alice@example.org) 100% example.org %x]" in log
    assert "script: user alice@example.org home=true uid=number anon=false" in log
    assert "script: env test.example nil" in log
    assert "script: badkey false" in log
    assert "script: nope false" in log
    typ, data = m.list()
    assert any(b"Archive" in d for d in data), data  # MAILBOX_FLAG_AUTO_CREATE made it
    m.select("INBOX")
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]  # status() changed nothing
    m.logout()
    assert wait_log(s, "script: deinit alice@example.org")
    log = s.stderr()
    assert log.index("script: deinit_pre alice") < log.index("script: deinit alice")

    p = poplib.POP3("127.0.0.1", s.pop_port, timeout=10)
    p.user("alice@example.org")
    p.pass_("secret")
    assert wait_log(s, "script: logins 2"), s.stderr()[-3000:]  # metadata kept
    assert "created service=pop3" in s.stderr()
    p.quit()
    end = time.time() + 10
    while s.stderr().count("script: deinit alice@example.org") < 2 and time.time() < end:
        time.sleep(0.05)
    assert s.stderr().count("script: deinit alice@example.org") == 2, s.stderr()[-3000:]
    stopped(s)


BAD = r"""
function script_load() return 1 end
function mail_user_created(user)
    error("boom in created")
end
"""


def test_a_failing_user_hook_is_logged_and_the_login_goes_on():
    """dovecot: script_load() returning non-zero and an error in mail_user_created are logged; the login still works"""
    s = dovecot_server(BAD)
    assert wait_log(s, "script_load() reports a problem"), s.stderr()[-3000:]
    m = imaplib.IMAP4("127.0.0.1", s.imap_port)
    typ, _ = m.login("alice@example.org", "secret")
    assert typ == "OK"
    assert wait_log(s, "boom in created")
    assert "test.lua:4" in s.stderr()
    m.select("INBOX")
    m.logout()
    stopped(s)


WRONG = r"""
local results = {}
local function try(name, f) results[#results + 1] = name .. "=" .. tostring((pcall(f))) end
try("event-parent", function() dovecot.event("x") end)
try("add_int", function() dovecot.event():add_int("k", "abc") end)
try("log", function() dovecot.event():log_info() end)
try("i_info", function() i_info() end)
try("pt", function() dovecot.event():passthrough_event():passthrough_event() end)
try("storage", function() assert(dovecot.storage.STATUS_MESSAGES ~= dovecot.storage.STATUS_UNSEEN) end)
try("prefix", function() assert(dovecot.storage.MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT == "vendor/vendor.dovecot/pvt/") end)
function mail_user_created(user)
    try("mailbox-name", function() user:mailbox("../etc") end)
    try("status-arg", function() user:mailbox("INBOX"):status({}) end)
    try("method-on-table", function() user.mailbox({}, "INBOX") end)
    try("sync-missing", function() user:mailbox("Nope"):sync() end)
    try("big", function() user:metadata_set("/private/big", string.rep("x", 70000)) end)
    i_info("results " .. table.concat(results, " "))
end
"""


def test_bad_calls_raise_lua_errors():
    """dovecot: wrong types, bad names and keys raise Lua errors; the server goes on"""
    s = dovecot_server(WRONG)
    m = imaplib.IMAP4("127.0.0.1", s.imap_port)
    m.login("alice@example.org", "secret")
    assert wait_log(s, "script: results"), s.stderr()[-3000:]
    log = s.stderr()
    line = log[log.index("script: results"):].splitlines()[0]
    for name in ("event-parent", "add_int", "log", "i_info", "pt", "mailbox-name", "status-arg",
                 "method-on-table", "sync-missing", "big"):
        assert name + "=false" in line, (name, line)
    assert "storage=true" in line and "prefix=true" in line, line
    m.logout()
    stopped(s)


UNOPENED = r"""
function mail_user_created(user)
    local S = dovecot.storage
    local box = user:mailbox("INBOX")
    box:sync(S.MAILBOX_SYNC_FLAG_EXPUNGE) -- not opened first: sync() opens it
    local other = user:mailbox("INBOX")
    local st = other:status(S.STATUS_MESSAGES)
    other:sync()
    i_info(string.format("unopened %s messages=%d unseen=%d", user.service, st.messages, st.unseen))
    box:free()
    other:free()
end
"""


def test_sync_and_status_open_a_mailbox_the_script_did_not():
    """dovecot: mailbox:sync() and mailbox:status() open a mailbox the script did not open, as Dovecot does (sync(EXPUNGE) expunges)"""
    s = dovecot_server(UNOPENED)
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        for i in range(2):
            c.sendmail("x@remote.test", ["alice@example.org"], b"Subject: %d\r\n\r\nbody\r\n" % i)
    m = imaplib.IMAP4("127.0.0.1", s.imap_port)
    m.login("alice@example.org", "secret")
    assert wait_log(s, "script: unopened imap messages=2 unseen=2"), s.stderr()[-3000:]
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.logout()
    m = imaplib.IMAP4("127.0.0.1", s.imap_port)
    m.login("alice@example.org", "secret")
    assert wait_log(s, "script: unopened imap messages=1 unseen=1"), s.stderr()[-3000:]
    assert m.select("INBOX")[1] == [b"1"]
    m.logout()
    assert "script error" not in s.stderr(), s.stderr()[-3000:]
    stopped(s)
