"""End-to-end tests of the Lua runtime and the Rumble table: scripts loaded
with LoadScript, hooks on SMTP, services made with Rumble.createService,
limits, reload, and bad calls."""
import os
import resource
import shutil
import signal
import socket
import subprocess
import time

from harness import SMTPRaw, Server, free_port, wait_port


def script(server_dir, name, text):
    path = os.path.join(server_dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def lua_server(text, conf="", port=None):
    """A Server running the script text (written to a file first); the
    script may read its service port with Rumble.readConfig("TestPort")."""
    port = port or free_port()
    s = Server(conf="TestPort %d\n%s\nLoadScript %s" % (port, conf, "@SCRIPT@"))
    path = script(s.dir, "test.lua", text)
    with open(s.conf) as f:
        c = f.read().replace("@SCRIPT@", path)
    with open(s.conf, "w") as f:
        f.write(c)
    s.script, s.port = path, port
    s.start()
    return s


def connect(port, src=None, timeout=10):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if src:
        sock.bind((src, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_all(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def chunk_name(path):
    """How Lua 5.1 names a script file in messages (luaO_chunkid): a path
    longer than 52 bytes keeps its last 52, after "...", so the file name
    and the line survive however deep the clone is."""
    return path if len(path) <= 52 else "..." + path[-52:]


def wait_log(s, text, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if text in s.stderr():
            return True
        time.sleep(0.05)
    return False


def stopped(s):
    assert s.stop() == 0, s.stderr()[-3000:]


DNSBL = """
local blocked = { ["127.0.0.2"] = true }
local function onAccept(session, cmd)
    if blocked[session.address] then
        return false
    end
end
Rumble.setHook(onAccept, "smtp", "accept")
"""


def test_accept_hook_drops():
    """A DNSBL-style accept hook drops a listed client right after accept"""
    s = lua_server(DNSBL)
    sock = connect(s.smtp_port, src="127.0.0.2")
    assert read_all(sock) == b"", "a dropped client got a greeting"
    sock.close()
    r = SMTPRaw(s.smtp_port)  # 127.0.0.1 is not listed
    assert r.greeting[0] == 220
    assert r.cmd("QUIT")[0] == 221
    assert wait_log(s, "dropped by script hook smtp/accept/")
    stopped(s)


HELO = """
local function onHELO(session, cmd)
    if (cmd == "bad.example") then
        session:send("550 You sent a bad HELO!\\r\\n");
        return false;
    elseif cmd == "answered.example" then
        session:send(string.format("250 Hello there, %s!\\r\\n", cmd));
        return "ignore";
    end
    return true
end
Rumble.setHook(onHELO, "smtp", "command", "helo")
"""


def test_helo_hook_rejects_bad_name():
    """A HELO hook rejects a bad name with its own reply and drops the client"""
    s = lua_server(HELO)
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("HELO bad.example") == (550, "You sent a bad HELO!")
    assert r.sock.recv(100) == b""
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("HELO answered.example") == (250, "Hello there, answered.example!")
    assert r.cmd("NOOP")[0] == 250  # the session goes on
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("HELO good.example")[0] == 250  # true: the server answers
    stopped(s)


HTTP = """
function acceptCall(session)
    repeat
        local line = session:receive()
    until line == nil or line == ""
    session:send("HTTP/1.0 200 OK\\r\\nContent-Type: text/html\\r\\n\\r\\n");
    session:send("Hello there!");
end
Rumble.createService(acceptCall, tonumber(Rumble.readConfig("TestPort")), 10);
"""


def test_http_service_answers_curl():
    """A createService HTTP responder on a free port answers curl"""
    if not shutil.which("curl"):
        raise Skip("curl not installed")
    s = lua_server(HTTP)
    assert wait_port(s.port)
    out = subprocess.run(["curl", "-s", "-i", "http://127.0.0.1:%d/" % s.port],
                         capture_output=True, timeout=20)
    assert out.returncode == 0, out
    assert out.stdout.startswith(b"HTTP/1.0 200 OK"), out.stdout
    assert out.stdout.endswith(b"Hello there!"), out.stdout
    stopped(s)


ECHO = """
local function echo(session)
    session:send("hello " .. session.address .. "\\r\\n")
    while true do
        local line = session:receive()
        if not line or line == "quit" then break end
        if line == "bytes" then
            local data, n = session:receivebytes(5)
            session:send("got " .. n .. " " .. data .. "\\r\\n")
        else
            session:lock()
            session:send("you said: " .. line .. "\\r\\n")
            session:unlock()
        end
    end
    session:send("bye\\r\\n")
end
local created = Rumble.createService(echo, tonumber(Rumble.readConfig("TestPort")))
print("createService returned " .. tostring(created))
"""


def test_echo_service_holds_1000_idle_sessions():
    """An echo service with session:receive() holds 1,000 idle clients on 2 workers"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2200:
        raise Skip("open file limit %d too low" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2200), hard))
    s = lua_server(ECHO, conf="ThreadsPerIP 2000")
    assert wait_port(s.port)
    socks = []
    for i in range(1000):
        c = connect(s.port)
        socks.append(c)
    files = {}
    for c in socks:
        files[c] = c.makefile("rb")
        assert files[c].readline() == b"hello 127.0.0.1\r\n"
    # all idle in receive(): the workers are free for SMTP and for each other
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("NOOP")[0] == 250
    for i, c in enumerate(socks):
        c.sendall(b"line %d\r\n" % i)
    for i, c in enumerate(socks):
        assert files[c].readline() == b"you said: line %d\r\n" % i
    c = socks[0]
    c.sendall(b"bytes\r\nab")
    time.sleep(0.2)
    c.sendall(b"cde")
    assert files[c].readline() == b"got 5 abcde\r\n"
    c.sendall(b"quit\r\n")
    assert files[c].readline() == b"bye\r\n"
    for c in socks:
        c.close()
    stopped(s)
    err = s.stderr()  # print() output, flushed at exit
    assert err.count("createService returned true") == 1, err[-2000:]
    assert err.count("createService returned nil") == 2, err[-2000:]


INFO = """
local function show(session)
    local info = Rumble.serverInfo()
    session:send(("version=%s os=%s arch=%s uptime=%d path=%s\\r\\n"):format(
        info.version, info.os, info.arch, info.uptime, info.path))
    local svc = Rumble.serviceInfo("smtp")
    session:send(("smtp enabled=%s sessions=%d workers=%d bytes=%d caps=%d\\r\\n"):format(
        tostring(svc.enabled), svc.sessions, svc.workers, svc.received + svc.sent,
        #svc.capabilities))
    session:send("nosuch=" .. tostring(Rumble.serviceInfo("nosuch")) .. "\\r\\n")
    session:send("servername=" .. Rumble.readConfig("servername") .. "\\r\\n")
    session:send("unset=" .. tostring(Rumble.readConfig("NoSuchKey")) .. "\\r\\n")
    local log = Rumble.getLog()
    session:send("log=" .. #log .. " " .. tostring(log[#log] ~= nil) .. "\\r\\n")
    local mods = {}
    for id, module in pairs(Rumble.listModules()) do
        assert(module.description and module.file and module.author)
        mods[#mods + 1] = module.title
    end
    session:send("modules=" .. table.concat(mods, ",") .. "\\r\\n")
    local t = Rumble.trafficInfo("smtp")
    session:send("traffic=" .. tostring(t.received > 0 and t.sent > 0) .. "\\r\\n")
    Rumble.setmoduleconfig("smtp", "Greeting", "hi")
    session:send("module=" .. tostring(Rumble.getmoduleconfig("smtp").Greeting) .. " " ..
        tostring(Rumble.getmoduleconfig("smtp").SMTPPort) .. "\\r\\n")
    session:send("protocol=" .. session.protocol .. "\\r\\n")
end
Rumble.createService(show, tonumber(Rumble.readConfig("TestPort")))
"""


def test_info_functions_through_a_service():
    """serverInfo, serviceInfo, readConfig, getLog, listModules and trafficInfo answer"""
    s = lua_server(INFO)
    r = SMTPRaw(s.smtp_port)
    r.cmd("QUIT")
    time.sleep(0.2)
    assert wait_port(s.port)
    out = read_all(connect(s.port)).decode()
    assert "version=0.1.0 os=linux" in out, out
    assert "path=" + os.path.realpath(os.environ.get("RUMBLE_BIN", "build/rel/rumble")).split("/")[-1] in out or "path=/" in out, out
    assert "smtp enabled=true sessions=" in out and "workers=2" in out, out
    assert "nosuch=nil" in out and "servername=test.example" in out, out
    assert "unset=nil" in out and "log=" in out and " true" in out, out
    assert "modules=smtp,pop3,imap4,mailman,queue,dns,tls,lua" in out, out
    assert "traffic=true" in out and "module=hi " in out, out
    assert "protocol=lua:%d" % s.port in out, out
    stopped(s)


ERRORS = """
Rumble.setHook(function(session, cmd)
    local x = nil
    return x.field -- line 4
end, "smtp", "command", "helo")
Rumble.setHook(function(session, cmd)
    while true do end
end, "smtp", "command", "noop")
Rumble.setHook(function(session, cmd)
    local t = {}
    for i = 1, 1e9 do t[i] = string.rep("x", 100) .. i end
end, "smtp", "command", "vrfy")
"""


def test_script_errors_fall_back_to_default():
    """A script error, a runaway loop and a memory hog are stopped and logged; SMTP goes on"""
    s = lua_server(ERRORS, conf="LuaMemoryLimit 4M\nLuaInstructionLimit 1000000")
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("HELO a.example")[0] == 250
    assert wait_log(s, "script error: %s:4: attempt to index" % chunk_name(s.script)), s.stderr()[-2000:]
    t0 = time.time()
    assert r.cmd("NOOP")[0] == 250
    assert time.time() - t0 < 5
    assert wait_log(s, "%s:7: script ran too long" % chunk_name(s.script)), s.stderr()[-2000:]
    assert r.cmd("VRFY bob")[0] in (252, 502, 550, 551, 553)
    assert wait_log(s, "not enough memory"), s.stderr()[-2000:]
    # and again: the state is still usable after each of them
    assert r.cmd("NOOP")[0] == 250
    assert r.cmd("HELO b.example")[0] == 250
    assert r.cmd("QUIT")[0] == 221
    stopped(s)


def the_new_hook_answers(s):
    """After a reload of HELO with "worse.example": bad.example passes on
    every worker, worse.example is refused."""
    for _ in range(3):  # whichever worker takes it
        r = SMTPRaw(s.smtp_port)
        assert r.cmd("HELO bad.example")[0] == 250
        r.cmd("QUIT")
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("HELO worse.example")[0] == 550


def test_reload_on_sighup_changes_a_hook():
    """SIGHUP reloads the scripts: a changed hook takes effect"""
    s = lua_server(HELO)
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("HELO bad.example")[0] == 550
    with open(s.script, "w") as f:
        f.write(HELO.replace("bad.example", "worse.example"))
    s.proc.send_signal(signal.SIGHUP)
    assert wait_log(s, "lua: reloading")
    time.sleep(0.3)
    the_new_hook_answers(s)
    stopped(s)


RELOADER = """
Rumble.reloadConfiguration() -- top-level: the load in progress is the reload
local function reload(session)
    session:send(tostring(Rumble.reloadConfiguration()) .. "\\r\\n")
end
Rumble.createService(reload, tonumber(Rumble.readConfig("TestPort")))
"""


def test_reload_configuration_from_a_script():
    """Rumble.reloadConfiguration() reloads as SIGHUP does (accounts and scripts); from top-level code it does not loop"""
    s = lua_server(HELO + RELOADER)
    assert wait_log(s, "(Rumble.createService)")  # wait_port would call the service
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("HELO bad.example")[0] == 550
    with open(s.script, "w") as f:
        f.write(HELO.replace("bad.example", "worse.example") + RELOADER)
    c = connect(s.port)
    assert c.recv(100) == b"true\r\n"
    c.close()
    assert wait_log(s, "reload: re-reading domains and accounts")
    assert wait_log(s, "lua: reloading")
    time.sleep(0.6)  # a reload asked for by top-level code would show by now
    assert s.stderr().count("lua: reloading") == 1, s.stderr()[-5000:]
    the_new_hook_answers(s)
    stopped(s)


FIELDS = """
local function show(what, session)
    print(string.format("%s: tls=%s helo=%s user=%s sender=[%s] rcpts=%s proto=%s",
        what, tostring(session.tls), tostring(session.helo),
        tostring(session.user), tostring(session.sender),
        table.concat(session.recipients or {}, ","), session.protocol))
    return true
end
Rumble.setHook(function(s) return show("MAIL", s) end, "smtp", "command", "mail")
Rumble.setHook(function(s) return show("DATA", s) end, "smtp", "command", "data")
"""


def test_mail_hooks_see_helo_sender_recipients_user_and_tls():
    """SMTP hooks see session.helo, sender, recipients, user and tls as the dialogue sets them"""
    import smtplib
    import ssl
    s = lua_server(FIELDS, conf="DNSServer 127.0.0.1:%d" % free_port())
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("plain.test")
        c.sendmail("", ["alice@example.org"], b"Subject: a\r\n\r\nx\r\n")
    assert wait_log(s, "script: DATA:"), s.stderr()[-3000:]
    log = s.stderr()
    assert "script: MAIL: tls=false helo=plain.test user=nil sender=[nil] rcpts= proto=smtp" in log, log
    assert "script: DATA: tls=false helo=plain.test user=nil sender=[] rcpts=alice@example.org" in log
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("secure.test")
        c.starttls(context=ctx)
        c.ehlo("secure.test")
        c.login("alice@example.org", "secret")
        c.sendmail("alice@example.org", ["alice@example.org", "carol@remote.test"],
                   b"Subject: b\r\n\r\ny\r\n")
    assert wait_log(s, "script: DATA: tls=true"), s.stderr()[-3000:]
    log = s.stderr()
    assert ("script: DATA: tls=true helo=secure.test user=alice@example.org "
            "sender=[alice@example.org] rcpts=alice@example.org,carol@remote.test") in log, log
    stopped(s)


BAD = """
local function try(session, name, f, ...)
    local ok, err = pcall(f, ...)
    session:send(name .. "=" .. tostring(ok) .. "\\r\\n")
end
local function bad(session)
    try(session, "createService-noargs", Rumble.createService)
    try(session, "createService-string", Rumble.createService, "x", 1)
    try(session, "createService-port", Rumble.createService, function() end, 70000)
    try(session, "setHook-type", Rumble.setHook, 1, "smtp", "accept")
    try(session, "setHook-svc", Rumble.setHook, function() end, "nosuch", "accept")
    try(session, "setHook-when", Rumble.setHook, function() end, "smtp", "later")
    try(session, "readConfig-none", Rumble.readConfig)
    try(session, "serviceInfo-table", Rumble.serviceInfo, {})
    try(session, "send-none", session.send, session)
    try(session, "send-nosession", session.send, {}, "x")
    try(session, "receivebytes-neg", session.receivebytes, session, -1)
    try(session, "stopService-unknown", Rumble.stopService, "nosuch")
    session:send("done\\r\\n")
end
Rumble.createService(bad, tonumber(Rumble.readConfig("TestPort")))
"""


def test_bad_calls_raise_lua_errors():
    """Wrong types and missing arguments raise Lua errors; the server does not crash"""
    s = lua_server(BAD)
    assert wait_port(s.port)
    out = read_all(connect(s.port)).decode()
    for name in ("createService-noargs", "createService-string", "createService-port",
                 "setHook-type", "setHook-svc", "setHook-when", "readConfig-none",
                 "serviceInfo-table", "send-none", "send-nosession", "receivebytes-neg"):
        assert name + "=false" in out, (name, out)
    assert "stopService-unknown=true" in out  # returns nil, message: no error
    assert out.endswith("done\r\n")
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("NOOP")[0] == 250
    stopped(s)


SUSPEND = """
local function ctl(session)
    local cmd = session:receive()
    local name = session:receive()
    if cmd == "restart" then -- a stop and a start crossing the main thread's work
        for i = 1, 20 do
            Rumble.stopService(name)
            Rumble.startService(name)
        end
        session:send("restarted\\r\\n")
        return
    end
    session:send(tostring(Rumble[cmd](name)) .. "\\r\\n")
end
Rumble.createService(ctl, tonumber(Rumble.readConfig("TestPort")))
"""


def test_suspend_and_resume_service():
    """suspendService refuses new SMTP clients, resumeService lets them in again"""
    s = lua_server(SUSPEND)
    assert wait_port(s.port)

    def ctl(cmd):
        c = connect(s.port)
        c.sendall(("%s\r\nsmtp\r\n" % cmd).encode())
        return read_all(c).decode()

    live = SMTPRaw(s.smtp_port)
    assert ctl("suspendService") == "true\r\n"
    c = connect(s.smtp_port)
    assert read_all(c) == b""
    assert live.cmd("NOOP")[0] == 250  # running sessions go on
    assert ctl("resumeService") == "true\r\n"
    assert SMTPRaw(s.smtp_port).greeting[0] == 220
    stopped(s)


def test_stop_and_start_service():
    """stopService closes the port and ends running sessions; startService listens again"""
    s = lua_server(SUSPEND)
    assert wait_port(s.port)

    def ctl(cmd):
        c = connect(s.port)
        c.sendall(("%s\r\nsmtp\r\n" % cmd).encode())
        return read_all(c).decode()

    live = SMTPRaw(s.smtp_port)
    assert ctl("stopService") == "true\r\n"
    assert live.reply()[0] == 421  # the running session ends
    refused = False
    for _ in range(40):
        try:
            connect(s.smtp_port, timeout=1).close()
            time.sleep(0.05)
        except OSError:
            refused = True
            break
    assert refused, "port still open after stopService"
    assert ctl("startService") == "true\r\n"
    assert SMTPRaw(s.smtp_port).greeting[0] == 220
    for _ in range(5):
        assert ctl("restart") == "restarted\r\n"
        time.sleep(0.1)
    time.sleep(0.6)  # past the main thread's next look at stop requests
    assert SMTPRaw(s.smtp_port).greeting[0] == 220, "a start lost to a stop"
    stopped(s)


FEED = """
Mailman.saveAccount({ name = "robot", domain = "example.org", type = "mod" })
Rumble.setHook(function(message, account, rcpt, from)
    local f = io.open(Rumble.readConfig("FeedFile"), "ab")
    f:write(("to=%s from=%s account=%s@%s type=%s\\n"):format(rcpt, from, account.name,
        account.domain, account.type))
    f:write(message)
    f:close()
    return true
end, "mailman", "feed")
"""


def test_mod_account_hands_mail_to_a_feed_hook():
    """Mail for an account of type mod goes to the mailman feed hook"""
    s = Server(conf="")
    out = os.path.join(s.dir, "fed.txt")
    path = script(s.dir, "feed.lua", FEED)
    with open(s.conf, "a") as f:
        f.write("FeedFile %s\nLoadScript %s\n" % (out, path))
    s.start()
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("HELO client.example")[0] == 250
    assert r.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<robot@example.org>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    assert r.cmd("Subject: to the robot\r\n\r\nbeep\r\n.")[0] == 250
    r.cmd("QUIT")
    end = time.time() + 15
    while time.time() < end and not os.path.exists(out):
        time.sleep(0.1)
    time.sleep(0.3)
    data = open(out, "rb").read()
    assert data.startswith(b"to=robot@example.org from=sender@remote.test account=robot@example.org"
                           b" type=mod\n"), data
    assert b"Subject: to the robot" in data and b"beep" in data
    stopped(s)


WAITING_HOOKS = """
-- The reference's acceptCall, as an SMTP accept hook: it waits for the
-- client's line before the server greets.
local function onAccept(session)
    session:send("Hello there!\\r\\n")
    local response = session:receive()
    if response == "go away" then
        return false
    end
    session:send("You said: " .. tostring(response) .. "\\r\\n")
end
-- A HELO hook that asks a question and checks the answer, byte-counted.
local function onHELO(session, cmd)
    if cmd ~= "quiz.example" then
        return true
    end
    session:send("Say 5 bytes\\r\\n")
    local data, n = session:receivebytes(5)
    if data ~= "abcde" then
        session:send("550 wrong: " .. tostring(data) .. " " .. tostring(n) .. "\\r\\n")
        return "ignore"
    end
    local rest = session:receive() -- the line end after the bytes
    session:send("250 quiz passed" .. rest .. "\\r\\n")
    return "ignore"
end
local function onClose(session)
    print("close hook ran for " .. tostring(session.address))
end
local function onUser(session, arg)
    session:send("+OK which colour?\\r\\n")
    local c = session:receive()
    if c ~= "blue" then
        session:send("-ERR wrong colour\\r\\n")
        return "ignore"
    end
end
Rumble.setHook(onAccept, "smtp", "accept")
Rumble.setHook(onHELO, "smtp", "command", "helo")
Rumble.setHook(onClose, "smtp", "close")
Rumble.setHook(onUser, "pop3", "command", "user")
"""


def test_hooks_wait_for_the_client_with_receive():
    """Hooks suspend in session:receive()/receivebytes() and the protocol goes on after them, pipelined input included"""
    pop3_port = free_port()
    s = lua_server(WAITING_HOOKS, conf="EnablePOP3 1\nPOP3Port %d\nWorkers 1" % pop3_port)
    s.pop3_port = pop3_port
    sock = connect(s.smtp_port)
    f = sock.makefile("rb")
    assert f.readline() == b"Hello there!\r\n"
    time.sleep(0.2)  # the server waits: no greeting before the answer
    sock.setblocking(False)
    try:
        early = sock.recv(100)
    except BlockingIOError:
        early = b""
    sock.setblocking(True)
    assert early == b"", early
    # the answer, pipelined with SMTP commands that SMTP must then get
    sock.sendall(b"hi there\r\nHELO quiz.example\r\nabcde!\r\nNOOP\r\nQUIT\r\n")
    assert f.readline() == b"You said: hi there\r\n"
    assert f.readline().startswith(b"220 ")
    assert f.readline() == b"Say 5 bytes\r\n"
    assert f.readline() == b"250 quiz passed!\r\n"
    assert f.readline().startswith(b"250 ")  # NOOP
    assert f.readline().startswith(b"221 ")
    f.close()
    sock.close()
    # a wrong answer: the hook's own reply, the session goes on
    r = socket.create_connection(("127.0.0.1", s.smtp_port), timeout=10)
    f = r.makefile("rb")
    f.readline()
    r.sendall(b"x\r\n")
    f.readline(), f.readline()
    r.sendall(b"HELO quiz.example\r\nab")
    assert f.readline() == b"Say 5 bytes\r\n"
    time.sleep(0.1)
    r.sendall(b"zzz\r\nNOOP\r\n")  # 5 bytes over two packets
    assert f.readline() == b"550 wrong: abzzz 5\r\n"
    assert f.readline().startswith(b"500 ")  # the line end after the 5 bytes is SMTP's
    assert f.readline().startswith(b"250 ")  # NOOP
    f.close()
    r.close()
    # false from a waiting hook drops the client
    r = connect(s.smtp_port)
    r.sendall(b"go away\r\n")
    assert read_all(r) == b"Hello there!\r\n"
    r.close()
    # the client leaves while the hook waits: no crash, the close hook runs
    r = connect(s.smtp_port)
    r.recv(100)
    r.close()
    assert wait_log(s, "dropped by script hook smtp/accept/")
    # POP3 command hook
    p = socket.create_connection(("127.0.0.1", s.pop3_port), timeout=10)
    pf = p.makefile("rb")
    assert pf.readline().startswith(b"+OK")
    p.sendall(b"USER nobody\r\nred\r\nQUIT\r\n")
    assert pf.readline() == b"+OK which colour?\r\n"
    assert pf.readline() == b"-ERR wrong colour\r\n"
    assert pf.readline().startswith(b"+OK")  # QUIT
    pf.close()
    p.close()
    p = socket.create_connection(("127.0.0.1", s.pop3_port), timeout=10)
    pf = p.makefile("rb")
    pf.readline()
    p.sendall(b"USER nobody\r\nblue\r\nQUIT\r\n")
    assert pf.readline() == b"+OK which colour?\r\n"
    assert pf.readline().startswith(b"+OK")  # USER itself, answered by the server
    assert pf.readline().startswith(b"+OK")  # QUIT
    pf.close()
    p.close()
    assert wait_log(s, "close hook ran for 127.0.0.1")
    stopped(s)


class FakeDNS:
    """A DNS server on 127.0.0.1 (dnslib) for the names the Lua tests look
    up; names under slow.test are answered after a delay, each query in a
    thread of its own so that a slow one does not hold the others."""

    ZONE = {
        ("lua.test", "MX"): [("MX", "mx2.lua.test", 20), ("MX", "mx1.lua.test", 10)],
        ("slow.test", "MX"): [("MX", "mx.slow.test", 5)],
        ("mail.lua.test", "A"): [("A", "192.0.2.25")],
    }

    def __init__(self, delay=1.5):
        import threading
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop_flag = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def answer(self, data, addr):
        import dnslib
        q = dnslib.DNSRecord.parse(data)
        name = str(q.q.qname).rstrip(".").lower()
        qtype = dnslib.QTYPE[q.q.qtype]
        if name.endswith("slow.test"):
            time.sleep(self.delay)
        r = q.reply()
        rrs = self.ZONE.get((name, qtype))
        known = any(n == name for n, _ in self.ZONE)
        for rr in rrs or []:
            if rr[0] == "MX":
                r.add_answer(dnslib.RR(name, dnslib.QTYPE.MX, ttl=60,
                                       rdata=dnslib.MX(rr[1], rr[2])))
            else:
                r.add_answer(dnslib.RR(name, dnslib.QTYPE.A, ttl=60, rdata=dnslib.A(rr[1])))
        if not rrs and not known:
            r.header.rcode = dnslib.RCODE.NXDOMAIN
        try:
            self.sock.sendto(r.pack(), addr)
        except OSError:
            pass

    def serve(self):
        import threading
        while not self.stop_flag:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.answer, args=(data, addr), daemon=True).start()

    def stop(self):
        self.stop_flag = True
        self.thread.join(timeout=5)
        self.sock.close()


LOOKUPS = """
local function lookup(session)
    local q = session:receive()
    if q == "send" then
        local ok, err = Mailman.sendMail("", "alice@example.org",
            "Subject: from a service\\n\\nSent by a coroutine that waited.\\n")
        session:send("sent " .. tostring(ok) .. " " .. tostring(err) .. "\\r\\n")
        return
    end
    local mx, err = network.getMX(q)
    if not mx then
        session:send("ERR " .. err .. "\\r\\n")
        return
    end
    for i, entry in ipairs(mx) do
        session:send(entry.host .. " " .. entry.preference .. "\\r\\n")
    end
    session:send(".\\r\\n")
end
Rumble.createService(lookup, tonumber(Rumble.readConfig("TestPort")))
local function onHELO(session, name)
    local ip = network.getHostByName(name)
    if not ip then
        session:send("550 5.7.1 " .. name .. " has no address\\r\\n")
        return false
    end
end
Rumble.setHook(onHELO, "smtp", "command", "helo")
"""


def test_dns_lookups_wait_without_holding_the_worker():
    """network.getMX/getHostByName against a DNS server on 127.0.0.1; a slow lookup does not hold the worker's other sessions"""
    dns = FakeDNS()
    s = lua_server(LOOKUPS, conf="DNSServer 127.0.0.1:%d\nWorkers 1" % dns.port)
    try:
        assert wait_port(s.port)
        a = connect(s.port)
        a.sendall(b"lua.test\r\n")
        assert read_all(a) == b"mx1.lua.test 10\r\nmx2.lua.test 20\r\n.\r\n"
        a.close()
        a = connect(s.port)
        a.sendall(b"nowhere.test\r\n")
        assert read_all(a).startswith(b"ERR nowhere.test: no such domain"), "NXDOMAIN"
        a.close()
        # a slow lookup in one session; SMTP on the same (only) worker answers meanwhile
        slow = connect(s.port)
        t0 = time.time()
        slow.sendall(b"slow.test\r\n")
        time.sleep(0.2)
        r = SMTPRaw(s.smtp_port)
        assert r.cmd("EHLO mail.lua.test")[0] == 250  # the HELO hook sees EHLO too
        assert r.cmd("NOOP")[0] == 250
        assert time.time() - t0 < 1.2, "the worker waited for the lookup"
        assert r.cmd("HELO mail.lua.test")[0] == 250  # resolves: the hook lets it through
        r2 = SMTPRaw(s.smtp_port)
        assert r2.cmd("HELO nx.lua.test") == (550, "5.7.1 nx.lua.test has no address")
        assert r2.closed()
        assert read_all(slow) == b"mx.slow.test 5\r\n.\r\n"
        assert time.time() - t0 >= 1.4
        slow.close()
        # a client that leaves while its lookup is out: nothing breaks
        gone = connect(s.port)
        gone.sendall(b"slow.test\r\n")
        time.sleep(0.1)
        gone.close()
        h = socket.create_connection(("127.0.0.1", s.smtp_port), timeout=5)
        h.sendall(b"HELO gone.slow.test\r\n")
        h.close()  # a hook waiting on a lookup for a client that left
        time.sleep(2)
        r = SMTPRaw(s.smtp_port)
        assert r.cmd("HELO mail.lua.test")[0] == 250
        assert r.cmd("QUIT")[0] == 221
        # Mailman.sendMail waits for the group commit the same way
        a = connect(s.port)
        a.sendall(b"send\r\n")
        assert read_all(a) == b"sent true nil\r\n"
        a.close()
        msgs = s.messages("alice@example.org")
        assert len(msgs) == 1 and b"Sent by a coroutine that waited." in msgs[0]
    finally:
        stopped(s)
        dns.stop()


RECEIVEBYTES = """
function acceptCall(session)
   local response, length = session:receivebytes(100); -- Try to get 100 bytes.
   if ( length ~= -1 ) then
       print("We got a response! " .. #response .. " bytes, ends with " .. response:sub(-3))
   else
       print("Something went wrong, client aborted? " .. length .. " '" .. response .. "'")
   end
end
Rumble.setHook(acceptCall, "smtp", "accept")
"""


def test_receivebytes_example_from_the_reference():
    """The reference's receivebytes(100) accept hook: 100 bytes in pieces, or "" and -1 when the client aborts"""
    s = lua_server(RECEIVEBYTES)
    c = connect(s.smtp_port)
    c.sendall(b"x" * 60)
    time.sleep(0.1)
    c.sendall(b"y" * 37 + b"end" + b"QUIT\r\n")  # 100 bytes, then SMTP's own
    f = c.makefile("rb")
    assert f.readline().startswith(b"220 ")
    assert f.readline().startswith(b"221 ")
    f.close()
    c.close()
    assert wait_log(s, "We got a response! 100 bytes, ends with end")
    c = connect(s.smtp_port)
    c.sendall(b"only ten..")
    time.sleep(0.1)
    c.close()
    assert wait_log(s, "Something went wrong, client aborted? -1 ''")
    stopped(s)
