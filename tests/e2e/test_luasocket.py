"""End-to-end tests of LuaSocket's socket.smtp, mime and ltn12 in Rumble:
the reference's two examples (shared/reference/luasocket-smtp.txt) run
unchanged from a Rumble.createService handler, once to Rumble itself (the
default server) and once to an aiosmtpd sink on 127.0.0.1; envelope and
bytes are checked (dot-stuffing, the multipart parsed back, the base64
part decoded), AUTH against Rumble, the failures: a refused connection, a
5xx to RCPT, a wrong password; and create= with an object that talks over
the service's own connection."""
import base64
import email
import email.policy
import os
import time
import warnings

from harness import Server, free_port, wait_port
from test_lua import connect, read_all, script, stopped
from harness import TMP
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from test_outbound import Silent, Sink, make_cert, wait_for

# The service runs one of these by name ("name port arg" on one line) and
# answers "r e". SERVER and PORT are set before each run, so that the
# examples' code stays as the reference gives it.
SCRIPT = r'''
local smtp = require("socket.smtp")
local mime = require("mime")
local ltn12 = require("ltn12")
local run = {}
smtp.TIMEOUT = 15

function run.example1()
-- the reference's first example, unchanged
from = "<luasocket@example.com>"

rcpt = {
  "<fulano@example.com>",
  "<beltrano@example.com>",
  "<sicrano@example.com>"
}

mesgt = {
  headers = {
    to = "Fulano da Silva <fulano@example.com>",
    cc = '"Beltrano F. Nunes" <beltrano@example.com>',
    subject = "My first message"
  },
  body = "I hope this works. If it does, I can send you another 1000 copies."
}

r, e = smtp.send{
  from = from,
  rcpt = rcpt,
  source = smtp.message(mesgt)
}
return r, e
end

function run.example2(file)
-- the reference's second example, with a real file for image.png
source = smtp.message{
  headers = {
     -- Remember that headers are *ignored* by smtp.send.
     from = "Sicrano de Oliveira <sicrano@example.com>",
     to = "Fulano da Silva <fulano@example.com>",
     subject = "Here is a message with attachments"
  },
  body = {
    preamble = "If your client doesn't understand attachments, \r\n" ..
               "it will still display the preamble and the epilogue.\r\n" ..
               "Preamble will probably appear even in a MIME enabled client.",
    -- first part: no headers means plain text, us-ascii.
    -- The mime.eol low-level filter normalizes end-of-line markers.
    [1] = {
      body = mime.eol(0, [[
        Lines in a message body should always end with CRLF.
        The smtp module will *NOT* perform translation. However, the
        send function *DOES* perform SMTP stuffing, whereas the message
        function does *NOT*.
      ]])
    },
    -- second part: headers describe content to be a png image,
    -- sent under the base64 transfer content encoding.
    -- notice that nothing happens until the message is actually sent.
    -- small chunks are loaded into memory right before transmission and
    -- translation happens on the fly.
    [2] = {
      headers = {
        ["content-type"] = 'image/png; name="image.png"',
        ["content-disposition"] = 'attachment; filename="image.png"',
        ["content-description"] = 'a beautiful image',
        ["content-transfer-encoding"] = "BASE64"
      },
      body = ltn12.source.chain(
        ltn12.source.file(io.open(file, "rb")),
        ltn12.filter.chain(
          mime.encode("base64"),
          mime.wrap()
        )
      )
    },
    epilogue = "This might also show up, but after the attachments"
  }
}

-- finally send it
r, e = smtp.send{
    from = "<sicrano@example.com>",
    rcpt = "<fulano@example.com>",
    source = source,
}
return r, e
end

-- lines that start with dots, and one that is only a dot
function run.dots()
  return smtp.send{from = "<dots@example.com>", rcpt = {"<a@remote.test>", "b@remote.test"},
    source = ltn12.source.string(
      "Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\nmiddle . dot\r\n.")}
end

-- to a sink: arg is "password"
function run.authsink(password)
  return smtp.send{from = "<alice@example.org>", rcpt = "<x@remote.test>",
    user = "bob", password = password, source = ltn12.source.string("Subject: s\r\n\r\nhi\r\n")}
end

function run.auth(password)
  return smtp.send{from = "<alice@example.org>", rcpt = "<fulano@example.com>",
    user = "alice@example.org", password = password,
    source = smtp.message{headers = {subject = "authenticated"}, body = "by AUTH"}}
end

-- a server that never answers, with smtp.TIMEOUT = arg
function run.silent(timeout)
  smtp.TIMEOUT = tonumber(timeout)
  local r, e = run.dots()
  smtp.TIMEOUT = 15
  return r, e
end

-- create: the "socket" is this very connection and the test plays the
-- server; receive() waits for its lines as a service's session does
function run.created(arg, session)
  local function create()
    return {settimeout = function() return 1 end, connect = function() return 1 end,
      send = function(_, data) return session:send(data) end,
      receive = function() return session:receive() end, close = function() return 1 end}
  end
  return smtp.send{from = "<a@example.org>", rcpt = {"<b@remote.test>", "c@remote.test"},
    domain = "me.example", create = create,
    source = smtp.message{headers = {subject = "created"}, body = ".dot\r\nend\r\n"}}
end

-- port 0: smtp's defaults (Rumble itself)
local default_server, default_port = smtp.SERVER, smtp.PORT
local function serve(session)
  local line = session:receive()
  local name, port, arg = line:match("^(%S+) (%d+) ?(.*)$")
  smtp.SERVER, smtp.PORT = default_server, default_port
  if port ~= "0" then
    smtp.SERVER, smtp.PORT = "127.0.0.1", tonumber(port)
  end
  local r, e = run[name](arg, session)
  session:send(tostring(r) .. " " .. tostring(e) .. "\r\n")
end
Rumble.createService(serve, tonumber(Rumble.readConfig("TestPort")))
'''

USERS = ("alice@example.org", "fulano@example.com", "beltrano@example.com",
         "sicrano@example.com")


def server(conf=""):
    """Rumble with the script; Workers 1, so that a send that held the
    worker could never reach Rumble itself."""
    port = free_port()
    s = Server(conf="TestPort %d\nWorkers 1\n%s\nLoadScript @SCRIPT@" % (port, conf),
               domains=("example.org", "example.com"), users=USERS)
    path = script(s.dir, "test.lua", SCRIPT)
    with open(s.conf) as f:
        c = f.read().replace("@SCRIPT@", path)
    with open(s.conf, "w") as f:
        f.write(c)
    s.port = port
    s.start()
    assert wait_port(s.port)
    return s


def call(s, name, port, arg=""):
    c = connect(s.port, timeout=60)
    c.sendall(("%s %d %s\r\n" % (name, port, arg)).encode())
    out = read_all(c).decode()
    c.close()
    return out


def test_example1_reaches_rumble_itself_for_three_recipients():
    """LuaSocket: the reference's first example, unchanged, delivers to its three recipients on Rumble (the default server)"""
    s = server()
    try:
        assert call(s, "example1", 0) == "1 nil\r\n"
        for u in USERS[1:]:
            assert wait_for(lambda: s.messages(u)), u
            msg = s.messages(u)[0]
            assert b"Subject: My first message\r\n" in msg, msg
            assert b"\r\n\r\nI hope this works. If it does" in msg, msg
            assert b"Bcc" not in msg and b"sicrano" not in msg.split(b"\r\n\r\n")[0], msg
    finally:
        stopped(s)


def test_example1_envelope_and_bytes_at_a_sink():
    """LuaSocket: the first example at an aiosmtpd sink: envelope, headers (Date, MIME-Version, X-Mailer), body"""
    sink = Sink()
    s = server()
    try:
        assert call(s, "example1", sink.port) == "1 nil\r\n"
        assert len(sink.got) == 1
        mail_from, rcpts, data, tls = sink.got[0]
        assert mail_from == "luasocket@example.com"
        assert rcpts == ["fulano@example.com", "beltrano@example.com", "sicrano@example.com"]
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert msg["To"] == "Fulano da Silva <fulano@example.com>"
        assert msg["Cc"] == '"Beltrano F. Nunes" <beltrano@example.com>'
        assert msg["MIME-Version"] == "1.0" and msg["X-Mailer"].startswith("LuaSocket")
        assert msg["Date"].datetime is not None
        assert msg.get_content_type() == "text/plain"
        assert data.endswith(b"\r\n\r\nI hope this works. If it does, I can send you another "
                             b"1000 copies.\r\n"), data
    finally:
        stopped(s)
        sink.stop()


def check_example2(data, png):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed", msg["Content-Type"]
    assert msg["Subject"] == "Here is a message with attachments"
    assert msg.preamble.startswith("If your client doesn't understand attachments,")
    assert msg.epilogue.strip() == "This might also show up, but after the attachments"
    parts = list(msg.iter_parts())
    assert len(parts) == 2
    assert parts[0].get_content_type() == "text/plain"
    assert "The smtp module will *NOT* perform translation." in parts[0].get_content()
    assert parts[1].get_content_type() == "image/png"
    assert parts[1].get_filename() == "image.png"
    assert parts[1].get_payload(decode=True) == png
    raw = parts[1].get_payload(decode=False)
    assert max(len(l) for l in raw.split("\n")) <= 77, "base64 wrapped at 76"


def test_example2_multipart_with_a_base64_file():
    """LuaSocket: the second example (a real file for image.png): multipart parsed back, the base64 part decodes to the file, at a sink and at Rumble"""
    sink = Sink()
    s = server()
    try:
        png = bytes(range(256)) * 20 + b"\x89PNG\r\n.\r\n"
        path = os.path.join(s.dir, "image.png")
        with open(path, "wb") as f:
            f.write(png)
        assert call(s, "example2", sink.port, path) == "1 nil\r\n"
        mail_from, rcpts, data, _ = sink.got[0]
        assert (mail_from, rcpts) == ("sicrano@example.com", ["fulano@example.com"])
        check_example2(data, png)
        assert call(s, "example2", 0, path) == "1 nil\r\n"
        assert wait_for(lambda: s.messages("fulano@example.com"))
        check_example2(s.messages("fulano@example.com")[0], png)
    finally:
        stopped(s)
        sink.stop()


def test_send_dot_stuffs_the_data():
    """LuaSocket: smtp.send dot-stuffs; the sink reads back the exact bytes, bare and bracketed addresses alike"""
    sink = Sink()
    s = server()
    try:
        assert call(s, "dots", sink.port) == "1 nil\r\n"
        mail_from, rcpts, data, _ = sink.got[0]
        assert rcpts == ["a@remote.test", "b@remote.test"]
        assert data == b"Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\nmiddle . dot\r\n.\r\n", data
    finally:
        stopped(s)
        sink.stop()


def test_send_uses_starttls_when_offered():
    """LuaSocket: smtp.send uses STARTTLS when the server offers it (as outbound delivery does)"""
    os.makedirs(TMP, exist_ok=True)
    sink = Sink(tls=make_cert(TMP))
    s = server()
    try:
        assert call(s, "dots", sink.port) == "1 nil\r\n"
        assert sink.got[0][3] is True, "over TLS"
        assert sink.got[0][2].endswith(b"\r\n.leading\r\n..two\r\n.\r\nmiddle . dot\r\n.\r\n")
    finally:
        stopped(s)
        sink.stop()


def test_auth_against_rumble_and_a_wrong_password():
    """LuaSocket: smtp.send with user/password authenticates to Rumble (ESMTPA); a wrong password gives nil and the 535"""
    s = server()
    try:
        assert call(s, "auth", 0, "secret") == "1 nil\r\n"
        assert wait_for(lambda: s.messages("fulano@example.com"))
        msg = s.messages("fulano@example.com")[0]
        assert b"with ESMTPA" in msg or b"with ESMTPSA" in msg, msg[:400]
        assert b"\r\n\r\nby AUTH" in msg
        out = call(s, "auth", 0, "wrong")
        assert out.startswith("nil 535"), out
        log = s.stderr()
        for pw in ("secret", "wrong"):
            plain = base64.b64encode(b"\0alice@example.org\0" + pw.encode()).decode()
            assert plain not in log and base64.b64encode(pw.encode()).decode() not in log, pw
        assert "AUTH PLAIN" in log, "the client used PLAIN, logged without its argument"
    finally:
        stopped(s)


def test_refused_connection_and_rcpt_5xx_give_nil_and_why():
    """LuaSocket: a refused connection and a 5xx to RCPT give nil and a message; nothing is sent"""
    sink = Sink(rcpt_codes={"b@remote.test": "550 5.1.1 no such user here"})
    s = server()
    try:
        closed = free_port()
        out = call(s, "dots", closed)
        assert out.startswith("nil connect to 127.0.0.1") and "refused" in out.lower(), out
        out = call(s, "dots", sink.port)
        assert out == "nil 550 5.1.1 no such user here\r\n", out
        assert sink.got == []
        # the server goes on serving
        assert call(s, "example1", sink.port) == "1 nil\r\n"
    finally:
        stopped(s)
        sink.stop()


def test_a_silent_server_times_out_and_a_gone_client_is_harmless():
    """LuaSocket: a server that never answers gives nil after smtp.TIMEOUT; a client that leaves while smtp.send waits does no harm, and the server stops promptly"""
    silent = Silent()
    sink = Sink()
    s = server()
    try:
        t0 = time.time()
        out = call(s, "silent", silent.port, "1")
        assert out == "nil connection lost or timed out\r\n", out
        assert 0.9 < time.time() - t0 < 10
        c = connect(s.port)
        c.sendall(b"silent %d 5\r\n" % silent.port)
        time.sleep(0.3)
        c.close()  # gone while the send waits on its helper thread
        assert call(s, "dots", sink.port) == "1 nil\r\n", "the worker goes on"
        c = connect(s.port)
        c.sendall(b"silent %d 30\r\n" % silent.port)
        time.sleep(0.3)
        t0 = time.time()
        stopped(s)  # with a send waiting
        assert time.time() - t0 < 10, "stop waited for the send"
        c.close()
    finally:
        stopped(s) if s.proc else None
        silent.stop()
        sink.stop()


class LoginOnly:
    """An aiosmtpd server that offers AUTH LOGIN only (no TLS) and requires
    it; keeps (user, data) per message."""

    def __init__(self):
        self.got = []
        self.port = free_port()
        box = self

        def check(server, session, envelope, mechanism, auth_data):
            ok = (mechanism == "LOGIN" and auth_data.login == b"bob"
                  and auth_data.password == b"pa ss:word")
            return AuthResult(success=ok)

        class Handler:  # aiosmtpd 1.4 does not answer a failed LOGIN: not tested here
            async def handle_DATA(self, server, session, envelope):
                box.got.append((session.login_data, envelope.original_content))
                return "250 OK"

        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        self.ctl = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                              authenticator=check, auth_require_tls=False, auth_required=True,
                              auth_exclude_mechanism=["PLAIN"])
        self.ctl.start()

    def stop(self):
        self.ctl.stop()


def test_auth_login_when_plain_is_not_offered():
    """LuaSocket: smtp.send falls back to AUTH LOGIN when PLAIN is not offered (the sink requires AUTH)"""
    box = LoginOnly()
    s = server()
    try:
        assert call(s, "authsink", box.port, "pa ss:word") == "1 nil\r\n"
        assert len(box.got) == 1 and box.got[0][1].endswith(b"\r\n\r\nhi\r\n")
    finally:
        stopped(s)
        box.stop()


def test_create_talks_smtp_through_the_object_it_returns():
    """LuaSocket: smtp.send{create = f} talks SMTP through f's object; here one whose receive() waits on the service's own connection, with the test as the server"""
    s = server()
    try:
        c = connect(s.port, timeout=15)
        f = c.makefile("rb")
        c.sendall(b"created 1\r\n220 test server\r\n")
        got = []

        def answer(reply):
            got.append(f.readline())
            c.sendall(reply)
        answer(b"250-test server\r\n250 8BITMIME\r\n")
        answer(b"250 sender\r\n")
        answer(b"250 one\r\n")
        answer(b"250 two\r\n")
        answer(b"354 go on\r\n")
        data = b""
        while not data.endswith(b"\r\n.\r\n"):
            data += f.readline()
        c.sendall(b"250 queued\r\n")
        answer(b"221 bye\r\n")
        assert got == [b"EHLO me.example\r\n", b"MAIL FROM:<a@example.org>\r\n",
                       b"RCPT TO:<b@remote.test>\r\n", b"RCPT TO:<c@remote.test>\r\n",
                       b"DATA\r\n", b"QUIT\r\n"], got
        assert b"Subject: created\r\n" in data and data.endswith(b"\r\n\r\n..dot\r\nend\r\n.\r\n"), data
        assert f.read() == b"1 nil\r\n"
        c.close()
    finally:
        stopped(s)
