"""End-to-end tests of waiting Lua calls (DNS lookups, sendMail, socket.smtp,
session:receive) made inside pcall/xpcall and from functions Lua calls from
C (string.gsub callbacks, table.sort comparators, metamethods, iterators):
inside pcall they wait without holding the worker, as outside; behind a C
function they run in place, once, and say so in the log; never a crash."""
import socket
import time

from harness import SMTPRaw, wait_port
from test_lua import FakeDNS, connect, lua_server, read_all, stopped, wait_log

PCALL_WAITS = """
local function lookup(session)
    local q = session:receive()
    local ok, mx, err = pcall(network.getMX, q)
    local ok2, mx2 = xpcall(function() return network.getMX(q) end, debug.traceback)
    local ok3, ok4, mx3 = pcall(pcall, network.getMX, q)
    local okr, line = pcall(function() return session:receive() end)
    session:send(table.concat({tostring(ok), mx and mx[1].host or tostring(err),
        tostring(ok2), mx2 and mx2[1].host or "-", tostring(ok3), tostring(ok4),
        mx3 and mx3[1].host or "-", tostring(okr), tostring(line)}, " ") .. "\\r\\n")
end
Rumble.createService(lookup, tonumber(Rumble.readConfig("TestPort")))
local function onHELO(session, name)
    local ok, ip = pcall(network.getHostByName, name)
    if not ok or not ip then
        session:send("550 5.7.1 " .. name .. " has no address\\r\\n")
        return false
    end
end
Rumble.setHook(onHELO, "smtp", "command", "helo")
"""


def test_waits_inside_pcall_and_xpcall_do_not_hold_the_worker():
    """getMX in pcall, xpcall and pcall(pcall, ...), and receive in pcall, wait while the worker serves others"""
    dns = FakeDNS()
    s = lua_server(PCALL_WAITS, conf="DNSServer 127.0.0.1:%d\nWorkers 1" % dns.port)
    try:
        assert wait_port(s.port)
        slow = connect(s.port)
        t0 = time.time()
        slow.sendall(b"slow.test\r\n")
        time.sleep(0.2)
        r = SMTPRaw(s.smtp_port)  # same (only) worker
        assert r.cmd("NOOP")[0] == 250
        assert time.time() - t0 < 1.2, "the worker waited for a lookup made inside pcall"
        assert r.cmd("HELO mail.lua.test")[0] == 250
        r2 = SMTPRaw(s.smtp_port)
        assert r2.cmd("HELO nx.lua.test") == (550, "5.7.1 nx.lua.test has no address")
        time.sleep(2)  # the slow lookup (1.5 s), then the others from the cache
        slow.sendall(b"the line\r\n")
        got = read_all(slow)
        assert got == (b"true mx.slow.test true mx.slow.test true true mx.slow.test"
                       b" true the line\r\n"), got
        slow.close()
        assert time.time() - t0 >= 1.4
        # a client that leaves while a lookup inside pcall is out
        gone = connect(s.port)
        gone.sendall(b"slow.test\r\n")
        time.sleep(0.1)
        gone.close()
        time.sleep(2)
        r = SMTPRaw(s.smtp_port)
        assert r.cmd("HELO mail.lua.test")[0] == 250
        assert r.cmd("QUIT")[0] == 221
        assert "cannot wait here" not in s.stderr()
    finally:
        stopped(s)
        dns.stop()


C_BOUNDARIES = """
local function onHELO(session, name)
    local out = {}
    -- a string.gsub replacement function
    out[#out + 1] = (string.gsub("mail.lua.test", "^.*$", function(h)
        return network.getHostByName(h) or "?" end))
    -- a table.sort comparator
    local t = {"b", "a"}
    table.sort(t, function(x, y) network.getMX("lua.test"); return x < y end)
    out[#out + 1] = t[1] .. t[2]
    -- a metamethod, and an iterator
    local m = setmetatable({}, {__index = function(_, k) return network.getMX(k)[1].host end})
    out[#out + 1] = m["lua.test"]
    for mx in function(_, prev) if not prev then return network.getMX("lua.test")[2].host end end do
        out[#out + 1] = mx
    end
    -- receive cannot wait there: nil and why
    local got, why
    string.gsub("x", "x", function() got, why = session:receive() end)
    out[#out + 1] = tostring(got) .. "/" .. tostring(why ~= nil)
    -- inside pcall inside a gsub callback: in place as well
    string.gsub("x", "x", function() out[#out + 1] = select(2, pcall(network.getHostByName, "mail.lua.test")) end)
    session:send("250 " .. table.concat(out, " ") .. "\\r\\n")
    return "ignore"
end
Rumble.setHook(onHELO, "smtp", "command", "helo")
"""


def test_waits_behind_a_c_function_run_in_place_once():
    """Lookups from gsub callbacks, sort comparators, metamethods and iterators run in place; receive there says why; logged once"""
    dns = FakeDNS()
    s = lua_server(C_BOUNDARIES, conf="DNSServer 127.0.0.1:%d\nWorkers 1" % dns.port)
    try:
        for _ in range(2):
            r = SMTPRaw(s.smtp_port)
            assert r.cmd("HELO x.example") == (
                250, "192.0.2.25 ab mx1.lua.test mx2.lua.test nil/true 192.0.2.25")
            assert r.cmd("QUIT")[0] == 221
        assert wait_log(s, "cannot wait here")
        log = s.stderr()
        assert log.count("getHostByName cannot wait here") == 1, log[-3000:]
        assert "test.lua:6: getHostByName cannot wait here" in log.replace(s.script, "test.lua")
    finally:
        stopped(s)
        dns.stop()


SEND_ONCE = """
local function onHELO(session, name)
    local ok, sent, err = pcall(Mailman.sendMail, "", "alice@example.org",
        "Subject: from pcall\\n\\nSent from inside pcall.\\n")
    local n = select(2, string.gsub("x", "x", function()
        return tostring(Mailman.sendMail("", "alice@example.org",
            "Subject: from gsub\\n\\nSent from a gsub callback.\\n")) end))
    session:send("250 " .. tostring(ok) .. " " .. tostring(sent) .. " " .. tostring(err) .. "\\r\\n")
    return "ignore"
end
Rumble.setHook(onHELO, "smtp", "command", "helo")
"""


def test_send_mail_inside_pcall_or_gsub_sends_exactly_once():
    """Mailman.sendMail inside pcall waits and sends once; from a gsub callback it runs in place and sends once"""
    s = lua_server(SEND_ONCE)
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("HELO x.example") == (250, "true true nil")
    assert r.cmd("QUIT")[0] == 221
    end = time.time() + 10
    while time.time() < end and len(s.messages("alice@example.org")) < 2:
        time.sleep(0.1)
    time.sleep(0.5)
    msgs = s.messages("alice@example.org")
    assert len(msgs) == 2, [m[:200] for m in msgs]
    assert sum(b"Sent from inside pcall." in m for m in msgs) == 1
    assert sum(b"Sent from a gsub callback." in m for m in msgs) == 1
    stopped(s)


SOCKET_SMTP = """
local smtp = require("socket.smtp")
local function onHELO(session, name)
    local ok, r, e = pcall(smtp.send, {from = "<a@example.org>", rcpt = "<b@example.org>",
        server = "127.0.0.1", port = tonumber(Rumble.readConfig("TestPort")),
        source = smtp.message({headers = {subject = "x"}, body = "y"})})
    session:send("250 " .. tostring(ok) .. " " .. tostring(r) .. " " .. tostring(e ~= nil) .. "\\r\\n")
    return "ignore"
end
Rumble.setHook(onHELO, "smtp", "command", "helo")
"""


def test_socket_smtp_send_inside_pcall_fails_cleanly():
    """socket.smtp's send inside pcall to a port that takes nothing gives nil and why, once"""
    s = lua_server(SOCKET_SMTP)  # nothing listens on TestPort
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("HELO x.example") == (250, "true nil true")
    assert r.cmd("NOOP")[0] == 250
    assert r.cmd("QUIT")[0] == 221
    stopped(s)


SILENT_TOP_LEVEL = """
local smtp = require("socket.smtp")
smtp.TIMEOUT = 60
local t0 = os.time()
local r, e = smtp.send{from = "<a@example.org>", rcpt = "<b@example.org>",
    server = "127.0.0.1", port = tonumber(Rumble.readConfig("TestPort")),
    source = smtp.message({headers = {subject = "x"}, body = "y"})}
print("top-level send: " .. tostring(r) .. " " .. tostring(e) .. " after " .. os.time() - t0)
"""


def test_socket_smtp_send_in_place_gives_up_at_the_time_limit():
    """smtp.send in top-level code to a server that never answers gives up at LuaTimeLimit, not smtp.TIMEOUT: the server starts"""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts (the kernel does), never says a word
    t0 = time.time()
    s = lua_server(SILENT_TOP_LEVEL, conf="LuaTimeLimit 2", port=silent.getsockname()[1])
    try:
        r = SMTPRaw(s.smtp_port, timeout=20)
        assert time.time() - t0 < 12, "start-up waited %.0f s for smtp.send" % (time.time() - t0)
        assert r.cmd("QUIT")[0] == 221
    finally:
        stopped(s)
        silent.close()
    err = s.stderr()
    assert "top-level send: nil gave up at the script's time limit (LuaTimeLimit 2 s)" in err, err[-2000:]
