"""End-to-end tests of the SMTPScript directive: a VPOP3-style SMTP server
script (SMTPSVR.LUA) with its callbacks and IN/OUT globals, written as a
VPOP3 user would write it."""
import base64
import os
import signal
import smtplib
import socket
import time

from harness import SMTPRaw, Server


def vp_server(text, conf="", users=("alice@example.org", "bob@example.org")):
    """A Server whose SMTPScript is text (written as SMTPSVR.LUA)."""
    s = Server(conf=conf + "\nSMTPScript @SCRIPT@\n", users=users)
    path = os.path.join(s.dir, "SMTPSVR.LUA")
    with open(path, "w") as f:
        f.write(text)
    with open(s.conf) as f:
        c = f.read().replace("@SCRIPT@", path)
    with open(s.conf, "w") as f:
        f.write(c)
    s.script = path
    s.start()
    return s


def raw_from(port, src):
    """SMTPRaw from source address src (a loopback alias)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((src, 0))
    sock.connect(("127.0.0.1", port))
    c = SMTPRaw.__new__(SMTPRaw)
    c.sock, c.buf = sock, b""
    c.greeting = c.reply()
    return c


def stopped(s):
    assert s.stop() == 0, s.stderr()[-3000:]


def msg(subject="hi", to="alice@example.org", body="hello\r\n", extra=""):
    return ("From: carol@elsewhere.example\r\nTo: %s\r\nSubject: %s\r\n%s\r\n%s"
            % (to, subject, extra, body))


def send(s, rcpts, text, sender="carol@elsewhere.example"):
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        return c.sendmail(sender, rcpts, text)


def test_start_refuses_an_ip_with_554():
    """Start() refusing one client address with 554 ends its connection; others get the default"""
    s = vp_server("""
function Start()
    if IPAddress == "127.0.0.2" then
        return "554 5.7.1 Not welcome here"
    end
    return ""
end
""")
    try:
        c = raw_from(s.smtp_port, "127.0.0.2")
    except OSError:
        stopped(s)
        raise Skip("cannot bind 127.0.0.2")  # noqa: F821
    assert c.greeting == (554, "5.7.1 Not welcome here"), c.greeting
    assert c.closed()
    c.close()
    c = SMTPRaw(s.smtp_port)
    assert c.greeting[0] == 220 and "Rumble" in c.greeting[1], c.greeting
    c.close()
    stopped(s)


def test_dohelo_refuses_and_answers():
    """DoHELO() refuses a HELO name with its own reply and replaces the HELO answer"""
    s = vp_server("""
function DoHELO(host, bRefuse, bEHLO)
    if host == "spammer.example" then
        return true, "550 5.7.1 Go away " .. host
    end
    if not bEHLO then
        return bRefuse, "250 Welcome " .. host
    end
    return bRefuse, ""
end
""")
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("HELO spammer.example") == (550, "5.7.1 Go away spammer.example")
    assert c.cmd("MAIL FROM:<a@b.example>")[0] == 503  # the HELO did not count
    assert c.cmd("HELO good.example") == (250, "Welcome good.example")
    code, text = c.cmd("EHLO good.example")
    assert code == 250 and "Hello good.example" in text and "PIPELINING" in text, text
    c.close()
    stopped(s)


def test_ehlo_capabilities_can_be_removed_and_added():
    """GetEHLOCapabilities() removes 8BITMIME and adds a keyword"""
    s = vp_server("""
function GetEHLOCapabilities(host, caps)
    caps = string.gsub(caps, "8BITMIME\\r\\n", "")
    return caps .. "X-VPOP3-TEST\\r\\n"
end
""")
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("client.example")
        assert not c.has_extn("8bitmime"), c.esmtp_features
        assert c.has_extn("x-vpop3-test") and c.has_extn("pipelining"), c.esmtp_features
    stopped(s)


def test_max_message_size_lowered():
    """GetMaxMessageSize() lowers SIZE; a bigger message is refused, a small one delivered"""
    s = vp_server("""
function GetMaxMessageSize(host, size)
    if host == "small.example" then
        return 2000
    end
    return size
end
""")
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("big.example")
        assert int(c.esmtp_features["size"]) > 2000
        c.ehlo("small.example")
        assert c.esmtp_features["size"] == "2000", c.esmtp_features
        code, _ = c.mail("carol@elsewhere.example", ["SIZE=5000"])
        assert code == 552
        c.rset()
        c.sendmail("carol@elsewhere.example", ["alice@example.org"], msg(subject="small"))
    c = SMTPRaw(s.smtp_port)  # no SIZE parameter: the size counted in DATA
    c.cmd("HELO small.example")
    c.cmd("MAIL FROM:<carol@elsewhere.example>")
    c.cmd("RCPT TO:<alice@example.org>")
    assert c.cmd("DATA")[0] == 354
    c.send(msg(subject="big", body="x" * 5000 + "\r\n").encode() + b".\r\n")
    assert c.reply()[0] == 552
    c.close()
    m = s.messages("alice@example.org")
    assert len(m) == 1 and b"Subject: small" in m[0]
    stopped(s)


def test_domailfrom_rejects_and_rewrites():
    """DoMAILFROM() rejects a sender, sees the parameters and rewrites the return path"""
    s = vp_server("""
function DoMAILFROM(data, mailfrom, params, spf, authsender)
    if mailfrom == "spammer@bad.example" then
        return params, "550 5.7.1 Sender refused by script"
    end
    if params["SIZE"] == "999" then
        return params, "552 5.3.4 Size " .. params.SIZE .. " seen in " .. data
    end
    if mailfrom == "old@elsewhere.example" then
        params["MAILFROM"] = "new@elsewhere.example"
    end
    return params, ""
end
""")
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("client.example")
        code, text = c.mail("spammer@bad.example")
        assert (code, text) == (550, b"5.7.1 Sender refused by script")
        code, text = c.mail("x@elsewhere.example", ["SIZE=999"])
        assert code == 552 and b"Size 999 seen in <x@elsewhere.example> SIZE=999" in text, text
        c.sendmail("old@elsewhere.example", ["alice@example.org"], msg())
    mbox = open(s.mbox("alice@example.org"), "rb").read()
    assert mbox.startswith(b"From new@elsewhere.example "), mbox[:80]
    stopped(s)


def test_dorcptto_rejects_and_answers():
    """DoRCPTTO() rejects a recipient, sees the list so far and gives its own 250"""
    s = vp_server("""
function DoRCPTTO(data, rcpt, params, list)
    if rcpt == "bob@example.org" then
        return params, "550 5.7.1 Bob takes no mail"
    end
    return params, "250 2.1.5 Fine, " .. #list .. " before " .. data
end
""")
    c = SMTPRaw(s.smtp_port)
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<carol@elsewhere.example>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.org>") == (550, "5.7.1 Bob takes no mail")
    assert c.cmd("RCPT TO:<alice@example.org>") == (250, "2.1.5 Fine, 0 before <alice@example.org>")
    assert c.cmd("RCPT TO:<Alice@example.org>") == (250, "2.1.5 Fine, 1 before <Alice@example.org>")
    assert c.cmd("RCPT TO:<nobody@example.org>")[0] == 550  # the server's own check still runs
    c.close()
    stopped(s)


def test_dodatastart_adds_a_header():
    """DoDATAStart() adds header lines that arrive in the mailbox, or refuses DATA"""
    s = vp_server("""
function DoDATAStart(list)
    if #list > 1 then
        return "554 5.7.1 One recipient only", ""
    end
    return "", "X-Scanned: by SMTPSVR\\r\\nX-Recipients: " .. list[1]
end
""")
    send(s, ["alice@example.org"], msg(subject="one"))
    try:
        send(s, ["alice@example.org", "bob@example.org"], msg(subject="two"))
        assert False, "accepted"
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 554 and b"One recipient only" in e.smtp_error
    m = s.messages("alice@example.org")
    assert len(m) == 1, m
    assert b"\r\nX-Scanned: by SMTPSVR\r\nX-Recipients: alice@example.org\r\n" in m[0], m[0]
    assert b"Subject: one" in m[0]
    stopped(s)


PROCESS = """
function ProcessMessage(mailfrom, subject, list, actions, mime, size, attachments)
    if subject == "blackhole" then
        actions.Ignore = true
    elseif subject == "reject" then
        actions.Ignore = true
        actions.Delete = true
        actions.Reason = "No thanks"
    elseif subject == "copy" then
        table.insert(actions.Recipients, "bob@example.org")
    elseif subject == "redirect" then
        actions.SendToOriginalRecipients = false
        actions.Recipients = { "bob@example.org" }
    elseif subject == "modify" then
        local parts, names = {}, {}
        for _, p in ipairs(mime) do
            table.insert(parts, "[" .. p.Path .. "]" .. p.ContentType .. "/" .. p.ContentSubtype)
        end
        for _, a in ipairs(attachments) do
            table.insert(names, a.Name .. ":" .. a.MIMEType .. ":" .. a.MIMESection)
        end
        actions.HeaderModifiers = {
            "Subject: modified",
            "X-Parts: " .. table.concat(parts, " "),
            "X-Attachments: " .. table.concat(names, " "),
            "X-From: " .. mailfrom .. " " .. #list .. " " .. size,
        }
    end
    return actions, ""
end
"""

MULTIPART = ('MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n',
             "--b1\r\nContent-Type: text/plain\r\n\r\nbody text\r\n"
             "--b1\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
             "Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\nJVBERi0=\r\n--b1--\r\n")


def test_processmessage_actions():
    """ProcessMessage() blackholes, rejects with 5xx, adds and replaces recipients, modifies headers"""
    s = vp_server(PROCESS)
    send(s, ["alice@example.org"], msg(subject="blackhole"))
    try:
        send(s, ["alice@example.org"], msg(subject="reject"))
        assert False, "accepted"
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 554 and b"No thanks" in e.smtp_error, e
    send(s, ["alice@example.org"], msg(subject="copy"))
    send(s, ["alice@example.org"], msg(subject="redirect"))
    send(s, ["alice@example.org"], msg(subject="modify", extra=MULTIPART[0], body=MULTIPART[1]))
    alice = s.messages("alice@example.org")
    bob = s.messages("bob@example.org")
    assert [b"Subject: copy" in m for m in alice] == [True, False], alice
    assert len(bob) == 2 and b"Subject: copy" in bob[0] and b"Subject: redirect" in bob[1], bob
    m = alice[1]
    assert b"Subject: modified\r\n" in m and b"Subject: modify" not in m, m
    assert b"X-Parts: []multipart/mixed [1]text/plain [2]application/pdf\r\n" in m, m
    assert b"X-Attachments: a.pdf:application/pdf:3\r\n" in m, m
    assert b"X-From: carol@elsewhere.example 1 " in m
    assert m.endswith(b"JVBERi0=\r\n--b1--\r\n"), m[-60:]
    big = "".join("line %06d %s\r\n" % (i, "z" * 60) for i in range(8000))  # spilled to a file
    send(s, ["alice@example.org"], msg(subject="modify", body=big))
    m = s.messages("alice@example.org")[2]
    assert b"Subject: modified\r\n" in m and m.endswith(big.encode()), len(m)
    stopped(s)


def test_processmessage_reason_as_text_or_as_a_reply():
    """ProcessMessage()'s Reason as plain text gives 554 with it and no script error; a 5xx reply is used whole"""
    s = vp_server("""
function ProcessMessage(mailfrom, subject, list, actions)
    actions.Ignore = true
    actions.Delete = true
    actions.Reason = subject == "text" and "No thanks" or "550 5.7.0 Go away"
    return actions, ""
end
""")
    for subject, code, text in (("text", 554, b"5.7.1 No thanks"), ("reply", 550, b"5.7.0 Go away")):
        try:
            send(s, ["alice@example.org"], msg(subject=subject))
            assert False, "accepted"
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == code and e.smtp_error == text, e
    assert s.messages("alice@example.org") == []
    assert "script error" not in s.stderr(), s.stderr()[-2000:]
    stopped(s)


def test_attachment_size_is_the_decoded_size():
    """ProcessMessage()'s attachment Size is the decoded size of a base64 and of a quoted-printable attachment"""
    s = vp_server("""
function ProcessMessage(mailfrom, subject, list, actions, mime, size, attachments)
    local sizes = {}
    for _, a in ipairs(attachments) do
        table.insert(sizes, a.Name .. "=" .. a.Size)
    end
    actions.HeaderModifiers = { "X-Sizes: " .. table.concat(sizes, " ") }
    return actions, ""
end
""")
    data = base64.encodebytes(bytes(range(256)) * 4).replace(b"\n", b"\r\n").decode()
    # "Caf\xc3\xa9 = 12": 10 bytes (the last CRLF belongs to the boundary)
    qp = "Caf=C3=A9 =3D 1=\r\n2\r\n"
    body = ("--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            "--b1\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"k.bin\"\r\n\r\n" + data +
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n"
            "Content-Disposition: attachment; filename=\"q.txt\"\r\n\r\n" + qp + "--b1--\r\n")
    send(s, ["alice@example.org"], msg(extra=MULTIPART[0], body=body))
    m = s.messages("alice@example.org")
    assert len(m) == 1 and b"\r\nX-Sizes: k.bin=1024 q.txt=10\r\n" in m[0], m
    stopped(s)


def test_checkrecipients_refuses_bcc():
    """CheckRecipients() refuses a message with Bcc recipients; To and Cc ones pass"""
    s = vp_server("""
function CheckRecipients(list, to, cc, bcc, ip, authsender, sender, subject, isLocal, size)
    if #bcc > 0 then
        return "550 5.7.1 Bcc to " .. bcc[1] .. " not allowed (" .. subject .. ")"
    end
end
""")
    send(s, ["alice@example.org", "bob@example.org"],
         msg(subject="ok", extra="Cc: Bob <bob@example.org>\r\n"))
    try:
        send(s, ["alice@example.org", "bob@example.org"], msg(subject="hidden"))
        assert False, "accepted"
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 550 and b"Bcc to bob@example.org not allowed (hidden)" in e.smtp_error
    assert len(s.messages("bob@example.org")) == 1
    assert len(s.messages("alice@example.org")) == 1
    stopped(s)


def test_force_disconnect():
    """Setting ForceDisconnect drops the connection after the command"""
    s = vp_server("""
function DoNOOP()
    ForceDisconnect = true
    return "250 2.0.0 Bye now"
end
""")
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("NOOP") == (250, "2.0.0 Bye now")
    assert c.closed()
    c.close()
    stopped(s)


def test_sessions_have_their_own_globals():
    """Two simultaneous sessions on one worker each see their own IPAddress and script globals"""
    s = vp_server("""
count = 0
function DoNOOP()
    count = count + 1
    return "250 " .. IPAddress .. " " .. count
end
""", conf="Workers 1")
    a = SMTPRaw(s.smtp_port)
    assert a.cmd("NOOP") == (250, "127.0.0.1 1")
    try:
        b = raw_from(s.smtp_port, "127.0.0.2")
    except OSError:
        b = SMTPRaw(s.smtp_port)
    ip = b.sock.getsockname()[0]
    assert b.cmd("NOOP") == (250, "%s 1" % ip)
    assert a.cmd("NOOP") == (250, "127.0.0.1 2")
    assert b.cmd("NOOP") == (250, "%s 2" % ip)
    a.close()
    b.close()
    assert "SMTPScript instance:" in s.stderr()
    sizes = [int(l.split("SMTPScript instance: ")[1].split()[0])
             for l in s.stderr().splitlines() if "SMTPScript instance:" in l]
    assert sizes and max(sizes) < 8192, sizes
    stopped(s)


def test_script_error_falls_back_to_default():
    """A failing callback is logged with file:line and the server's default answer is used"""
    s = vp_server("""
function DoMAILFROM(data, mailfrom, params)
    local x = nil
    return x.field, "550 never"
end
""")
    send(s, ["alice@example.org"], msg())
    assert len(s.messages("alice@example.org")) == 1
    err = s.stderr()
    assert "script error:" in err and "SMTPSVR.LUA:4:" in err and "DoMAILFROM" in err, err[-2000:]
    stopped(s)


def test_end_is_called():
    """End() runs when the session ends, after QUIT and after a dropped connection"""
    s = vp_server("""
function DoHELO(host, bRefuse, bEHLO)
    who = host
    return bRefuse, ""
end
function End()
    local f = io.open(OUT, "a")
    f:write("end " .. tostring(who) .. " " .. IPAddress .. "\\n")
    f:close()
end
""")
    out = os.path.join(s.dir, "end.txt")
    with open(s.script) as f:
        text = f.read()
    with open(s.script, "w") as f:
        f.write('OUT = "%s"\n' % out + text)
    s.stop()
    s.start()
    c = SMTPRaw(s.smtp_port)
    c.cmd("HELO one.example")
    c.cmd("QUIT")
    c.close()
    c = SMTPRaw(s.smtp_port)
    c.cmd("HELO two.example")
    c.close()
    want = ["end one.example 127.0.0.1", "end two.example 127.0.0.1"]
    end = time.time() + 10
    while time.time() < end:
        got = open(out).read().splitlines() if os.path.exists(out) else []
        if all(w in got for w in want):
            break
        time.sleep(0.05)
    assert all(w in got for w in want), got
    stopped(s)


def test_simple_commands():
    """DoHELP, DoNOOP, DoRSET, DoQUIT, DoVRFY, DoEXPN and DoUnrecognised replace the replies"""
    s = vp_server("""
function DoHELP(text) return "214 Help yourself (" .. string.sub(text, 1, 3) .. ")" end
function DoRSET() return "250 2.0.0 Reset by script" end
function DoVRFY(list, resp)
    if #list == 1 then return "250 2.1.5 " .. list[1] end
    return resp
end
function DoEXPN(list, resp) return "550 5.7.1 No lists here" end
function DoUnrecognised(line) return "502 5.5.1 What is " .. line .. "?" end
function DoQUIT() return "221 2.0.0 See you" end
""")
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("HELP") == (214, "Help yourself (214)")
    assert c.cmd("NOOP") == (250, "2.0.0 Ok")  # no DoNOOP: the default
    assert c.cmd("RSET") == (250, "2.0.0 Reset by script")
    assert c.cmd("VRFY alice@example.org") == (250, "2.1.5 alice@example.org")
    assert c.cmd("VRFY nobody@example.org")[0] == 252
    assert c.cmd("EXPN staff") == (550, "5.7.1 No lists here")
    assert c.cmd("XYZZY plugh") == (502, "5.5.1 What is XYZZY plugh?")
    assert c.cmd("QUIT") == (221, "2.0.0 See you")
    assert c.closed()
    c.close()
    stopped(s)


def test_recipient_and_line_limits():
    """MaxRecipientsPerIncomingMessage and MaxLineLength take effect, bounded by MaxRecipients"""
    s = vp_server("""
function DoHELO(host, bRefuse, bEHLO)
    if host == "one.example" then
        MaxRecipientsPerIncomingMessage = 1
    elseif host == "many.example" then
        MaxRecipientsPerIncomingMessage = 1000
    elseif host == "short.example" then
        MaxLineLength = 50
    end
    return bRefuse, ""
end
""", conf="MaxRecipients 2")
    c = SMTPRaw(s.smtp_port)
    c.cmd("EHLO one.example")
    c.cmd("MAIL FROM:<carol@elsewhere.example>")
    assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.org>")[0] == 452
    c.cmd("RSET")
    c.cmd("EHLO many.example")
    c.cmd("MAIL FROM:<carol@elsewhere.example>")
    assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<Alice@example.org>")[0] == 452  # never above MaxRecipients
    c.cmd("RSET")
    c.cmd("EHLO short.example")
    c.cmd("MAIL FROM:<carol@elsewhere.example>")
    c.cmd("RCPT TO:<alice@example.org>")
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: long\r\n\r\n" + b"y" * 80 + b"\r\n.\r\n")
    assert c.reply()[0] == 552
    c.cmd("MAIL FROM:<carol@elsewhere.example>")
    c.cmd("RCPT TO:<alice@example.org>")
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: short\r\n\r\n" + b"y" * 40 + b"\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    assert len(s.messages("alice@example.org")) == 1
    stopped(s)


def test_authentication_globals():
    """AuthenticationRequired asks for AUTH; AllowedUsers refuses others; AuthenticatedUser is set"""
    s = vp_server("""
function Start()
    AuthenticationRequired = true
    AllowedUsers = "alice"
    return ""
end
function DoMAILFROM(data, mailfrom, params, spf, authsender)
    return params, "250 2.1.0 Hello " .. AuthenticatedUser .. "/" .. authsender
end
""")
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("client.example")
        assert c.mail("carol@elsewhere.example")[0] == 530
        try:
            c.login("bob@example.org", "secret")
            assert False, "bob logged in"
        except smtplib.SMTPAuthenticationError as e:
            assert e.smtp_code == 535
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("client.example")
        c.login("alice@example.org", "secret")
        code, text = c.mail("alice@example.org")
        assert code == 250 and text == b"2.1.0 Hello alice@example.org/alice@example.org", text
    stopped(s)


def test_local_client_address_allows_relay():
    """LocalClientAddress set by the script lets an unauthenticated client relay"""
    s = vp_server("""
function DoHELO(host, bRefuse, bEHLO)
    LocalClientAddress = (host ~= "outside.example")
    ValidClientAddress = (host ~= "invalid.example")
    return bRefuse, ""
end
""")
    c = SMTPRaw(s.smtp_port)
    c.cmd("EHLO outside.example")
    c.cmd("MAIL FROM:<carol@elsewhere.example>")
    assert c.cmd("RCPT TO:<dave@remote.example>")[0] == 554
    c.cmd("RSET")
    c.cmd("EHLO office.example")
    c.cmd("MAIL FROM:<carol@elsewhere.example>")
    assert c.cmd("RCPT TO:<dave@remote.example>")[0] == 250
    c.cmd("RSET")
    c.cmd("EHLO invalid.example")  # ValidClientAddress false: no relay even after AUTH
    assert c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==")[0] == 235
    c.cmd("MAIL FROM:<alice@example.org>")
    assert c.cmd("RCPT TO:<dave@remote.example>")[0] == 554
    c.close()
    stopped(s)


def test_script_that_does_not_compile():
    """An SMTPScript with a syntax error is logged at start and SMTP works as without it"""
    s = vp_server("function Start(\n  return '554 no'\nend\n")
    send(s, ["alice@example.org"], msg())
    assert len(s.messages("alice@example.org")) == 1
    assert "SMTPSVR.LUA:2:" in s.stderr() and "(in SMTPScript)" in s.stderr()
    stopped(s)


def test_endless_callback_is_stopped():
    """A callback that loops forever hits LuaInstructionLimit and the default reply is given"""
    s = vp_server("""
function DoNOOP()
    while true do end
end
""", conf="LuaInstructionLimit 100000")
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("NOOP") == (250, "2.0.0 Ok")
    assert c.cmd("NOOP") == (250, "2.0.0 Ok")
    c.close()
    assert "script ran too long" in s.stderr()
    stopped(s)


def test_reload_picks_up_a_changed_script():
    """After SIGHUP new sessions run the changed SMTPScript"""
    s = vp_server('function DoNOOP() return "250 version 1" end\n')
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("NOOP") == (250, "version 1")
    with open(s.script, "w") as f:
        f.write('function DoNOOP() return "250 version 2" end\n')
    s.proc.send_signal(signal.SIGHUP)
    end = time.time() + 10
    got = None
    while time.time() < end and got != (250, "version 2"):
        d = SMTPRaw(s.smtp_port)
        got = d.cmd("NOOP")
        d.close()
        time.sleep(0.05)
    assert got == (250, "version 2"), got
    assert c.cmd("NOOP") == (250, "version 1")  # a running session keeps its instance
    c.close()
    stopped(s)


def test_message_line_callbacks():
    """StartMessage, MessageLineRaw, MessageLine and EndMessage see each body line"""
    s = vp_server("""
local lines, raw, first
function StartMessage() lines, raw, first = 0, 0, nil end
function MessageLineRaw(line)
    raw = raw + 1
    if string.sub(line, 1, 2) == ".." then first = line end
end
function MessageLine(line) lines = lines + 1 end
function EndMessage() done = true end
function ProcessMessage(mailfrom, subject, list, actions)
    actions.HeaderModifiers = { "X-Lines: " .. lines .. " " .. raw .. " " .. tostring(first) ..
        " " .. tostring(done) }
    return actions, ""
end
""")
    send(s, ["alice@example.org"], msg(body="one\r\n.dot\r\nthree\r\n"))
    m = s.messages("alice@example.org")
    assert b"X-Lines: 7 7 ..dot true\r\n" in m[0], m[0]
    stopped(s)


def test_messages_per_local_session():
    """MaxMessagesPerLocalSession stops a local client after its messages"""
    s = vp_server("""
function Start()
    LocalClientAddress = true
    MaxMessagesPerLocalSession = 1
    return ""
end
""")
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.sendmail("carol@elsewhere.example", ["alice@example.org"], msg(subject="first"))
        code, _ = c.mail("carol@elsewhere.example")
        assert code == 452
    assert len(s.messages("alice@example.org")) == 1
    stopped(s)


def test_encryption_globals():
    """Encryption and EncryptionDetails tell a STARTTLS session from a plain one"""
    s = vp_server("""
function DoMAILFROM(data, mailfrom, params)
    return params, "250 2.1.0 " .. tostring(Encryption) .. " [" .. EncryptionDetails .. "] " ..
        ServerName .. " " .. ServerID
end
""")
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("client.example")
        assert c.mail("carol@elsewhere.example") == (
            250, b"2.1.0 false [] smtp %d" % s.smtp_port)
        c.rset()
        c.starttls()
        c.ehlo("client.example")
        code, text = c.mail("carol@elsewhere.example")
        assert code == 250 and text.startswith(b"2.1.0 true [TLS"), text
    stopped(s)


def test_smtp_send_in_a_callback_fails_at_once_rather_than_hold_the_worker():
    """socket.smtp's send in Start() (it would wait for its own worker) gives nil and why at once; the client is served"""
    s = vp_server("""
function Start()
    local smtp = require("socket.smtp")
    local r, e = smtp.send{from = "<a@example.org>", rcpt = "<alice@example.org>",
        server = "127.0.0.1", port = @PORT@,
        source = smtp.message({headers = {subject = "self"}, body = "x"})}
    print("Start send: " .. tostring(r) .. " " .. tostring(e))
end
""".replace("@PORT@", "0"), conf="Workers 1")
    s.stop()
    with open(s.script) as f:
        text = f.read().replace("port = 0", "port = %d" % s.smtp_port)
    with open(s.script, "w") as f:
        f.write(text)
    s.start()
    t0 = time.time()
    c = SMTPRaw(s.smtp_port, timeout=30)
    assert c.greeting[0] == 220, c.greeting
    assert time.time() - t0 < 3, "Start() held the worker %.1f s" % (time.time() - t0)
    assert c.cmd("QUIT")[0] == 221
    stopped(s)
    err = s.stderr()
    assert "Start send: nil send cannot wait on a worker outside a Rumble hook or service" in err, \
        err[-2000:]
    assert not s.messages("alice@example.org")
