"""End-to-end tests of session objects as the original Rumble had them: one
table per session that scripts may write to and key tables by, a real
session.id, setHook names in any case, HELO hooks that see EHLO,
session:lock() held across waits, stopService ending open sessions."""
import re
import socket
import time

from harness import SMTPRaw, wait_port
from test_lua import connect, lua_server, read_all, stopped, wait_log

SAME_TABLE = """
local seen = {}
local function onAccept(session)
    session.sender = "set by the script"   -- a field of the script's own
    session.count = 1
    seen[session] = session.id
end
local function onCommand(session, arg, verb)
    session.count = session.count + 1
    if verb == "noop" then
        session:send("250 " .. tostring(seen[session] == session.id) .. " " .. session.count ..
            " " .. session.sender .. " " .. session.id .. "\\r\\n")
        return "ignore"
    end
end
Rumble.setHook(onAccept, "SMTP", "Accept")
Rumble.setHook(onCommand, "Smtp", "COMMAND")
"""


def test_session_is_one_table_for_the_whole_session():
    """Hooks get the same session table all session long: fields of the script's own, a table key, a real id"""
    s = lua_server(SAME_TABLE)
    ids = []
    for _ in range(2):
        r = SMTPRaw(s.smtp_port)
        assert r.cmd("EHLO a.example")[0] == 250
        code, text = r.cmd("NOOP")
        assert code == 250, text
        m = re.match(r"^true 3 set by the script ([0-9a-f]{8})$", text)
        assert m, text
        ids.append(m.group(1))
        assert r.cmd("QUIT")[0] == 221
    assert ids[0] != ids[1]
    assert "%s smtp connected" % ids[0] in s.stderr()  # the id the log uses
    stopped(s)


HELO_SEES_EHLO = """
Rumble.setHook(function(session, name, verb)
    session:send("250 helo hook saw " .. name .. "\\r\\n")
    return "ignore"
end, "smtp", "command", "HELO")
"""

BOTH = HELO_SEES_EHLO + """
Rumble.setHook(function(session, name)
    session:send("250 ehlo hook saw " .. name .. "\\r\\n")
    return "ignore"
end, "smtp", "command", "ehlo")
"""


def test_a_helo_hook_fires_on_ehlo_unless_ehlo_has_its_own():
    """A HELO command hook also runs for EHLO; with an EHLO hook of its own, EHLO runs that one"""
    s = lua_server(HELO_SEES_EHLO)
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("EHLO a.example") == (250, "helo hook saw a.example")
    assert r.cmd("HELO b.example") == (250, "helo hook saw b.example")
    stopped(s)
    s = lua_server(BOTH)
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("EHLO a.example") == (250, "ehlo hook saw a.example")
    assert r.cmd("HELO b.example") == (250, "helo hook saw b.example")
    stopped(s)


LOCKS = """
local function svc(session)
    local who = session:receive()
    session:lock()
    session:send("locked " .. who .. "\\r\\n")
    session:receive()          -- waits for its client, holding the lock
    if who == "A" then session:unlock() end
    session:send("done " .. who .. "\\r\\n")
    session:receive()          -- B keeps it until its session ends
end
Rumble.createService(svc, tonumber(Rumble.readConfig("TestPort")))
"""


def lines(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(1000)
    except socket.timeout:
        return b""


def test_session_lock_is_held_across_waits():
    """session:lock() excludes other sessions while its holder waits for input, until unlock() or the end of the session"""
    for workers in (1, 2):
        s = lua_server(LOCKS, conf="Workers %d" % workers)
        try:
            assert wait_port(s.port)
            a, b, c = connect(s.port), connect(s.port), connect(s.port)
            a.sendall(b"A\r\n")
            assert lines(a, 5) == b"locked A\r\n"
            b.sendall(b"B\r\n")
            assert lines(b, 1) == b"", "B took the lock A holds while A waits"
            c.sendall(b"C\r\n")  # queued after B
            assert lines(c, 0.5) == b""
            a.sendall(b"go\r\n")
            assert lines(a, 5) == b"done A\r\n"  # A unlocked
            assert lines(b, 5) == b"locked B\r\n"
            assert lines(c, 1) == b""
            b.sendall(b"go\r\n")
            assert lines(b, 5) == b"done B\r\n"
            assert lines(c, 1) == b"", "C took the lock B still holds"
            b.close()  # the end of B's session lets C in
            assert lines(c, 5) == b"locked C\r\n"
            c.close()
            a.close()
        finally:
            stopped(s)


STOP = """
local function svc(session)
    session:send("hello\\r\\n")
    session:receive()
    session:send("still here\\r\\n")
end
Rumble.createService(svc, tonumber(Rumble.readConfig("TestPort")))
Rumble.setHook(function(session, name)
    if name == "stop.example" then
        session:send("250 " .. tostring(Rumble.stopService("lua:" .. Rumble.readConfig("TestPort"))) .. "\\r\\n")
        return "ignore"
    elseif name == "stop.smtp" then
        Rumble.stopService("smtp")
    end
end, "smtp", "command", "helo")
"""


def test_stop_service_ends_its_open_sessions():
    """Rumble.stopService closes the port and ends the sessions it has open"""
    s = lua_server(STOP)
    try:
        assert wait_port(s.port)
        idle = connect(s.port)
        assert idle.recv(100) == b"hello\r\n"
        r = SMTPRaw(s.smtp_port)
        assert r.cmd("HELO stop.example") == (250, "true")
        t0 = time.time()
        assert read_all(idle) == b"", "the open session went on"
        assert time.time() - t0 < 5
        end = time.time() + 5
        while time.time() < end:
            try:
                connect(s.port, timeout=1).close()
                time.sleep(0.1)
            except OSError:
                break
        else:
            raise AssertionError("the port still takes connections")
        assert wait_log(s, "stopped by a script")
        # and a built-in one: SMTP's open sessions end with it
        idle = SMTPRaw(s.smtp_port)
        r = SMTPRaw(s.smtp_port)
        assert r.cmd("HELO smtp.example")[0] == 250
        r.send(b"HELO stop.smtp\r\n")
        idle.sock.settimeout(5)
        try:
            bye = read_all(idle.sock)
        except socket.timeout:
            raise AssertionError("an open SMTP session went on")
        assert bye.startswith(b"421 "), bye
    finally:
        stopped(s)
