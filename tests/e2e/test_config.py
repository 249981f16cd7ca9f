"""rumble.conf as the original Rumble wrote it: its directives start up, --CONFIG-DIR,
unknown directives are warnings, OutgoingBindToAddress and IgnoreMX act."""
import os
import smtplib
import subprocess
import time

from aiosmtpd.controller import Controller

from harness import BIN, Server, free_port, wait_port
from test_outbound import FakeDNS, send, wait_for

# Every directive name of the original's shipped config/rumble.conf and its
# block structure, with values of our own; @...@ are filled in per test. The
# listeners the original did not have are switched off after it.
ORIGINAL = """\
#+++++++++++++++++++++++++++++++#
# Configuration for Rumble      #
#+++++++++++++++++++++++++++++++#
ServerName          mail.example.test
RunAs               root
RunAsGroup\t\t\troot
DatabaseEngine      sqlite
DataFolder          db
<if compare(databaseengine = mysql)>
\tComment \t\t\tAdding MySQL directives
\tMySQLHost\t\t\tlocalhost
\tMySQLPort\t\t\t3306
\tMySQLUser\t\t\trumble
\tMySQLPass\t\t\tnot-a-password
\tMySQLDB\t\t\t\trumble
\tMySQLConnections\t8
</if>
<if defined(windows)>
\tComment\t\t\t\tUsing the Windows storage path
\tStorageFolder       C:/Mail/storage
<else>
\tComment\t\t\t\tUsing the UNIX storage path
\tStorageFolder      @STORAGE@
</if>
ForceIPv4              1
BindToAddress          127.0.0.1
OutgoingBindToAddress  0.0.0.0
EnableSMTP          1
SMTPPort            @SMTP@
MessageSizeLimit    104857600
EnforceFQDN\t\t\t1
EnablePOP3          1
POP3Port            @POP3@
EnableIMAP4         1
IMAP4Port           @IMAP@
IgnoreMX                mx.fakemx.test mx.fakemx.example
DeliveryAttempts\t\t5
RetryInterval\t\t\t360
LoadScript           @SCRIPT@
<if defined(unix)>
    Comment              Loading UNIX configuration
    LoadModule           modules/foreman.so
    LoadModule           modules/greylist.so
\tLoadModule           modules/starttls.so
<else-if defined(cygwin)>
    Comment              Loading Cygwin configuration
    LoadModule           modules/foreman_cygwin.dll
\t<if exists(modules/starttls_cygwin.dll)>
\t\tLoadModule           modules/starttls_cygwin.dll
\t</if>
<else-if defined(windows)>
    <if compare(architecture = 64)>
        Comment              Loading Windows (64 bit) configuration
        LoadModule           modules/greylist_win64.dll
        <if exists(modules/starttls_win64.dll)>
            LoadModule       modules/starttls_win64.dll
        <else>
            Comment          starttls_win64.dll was not found
        </if>
    <else>
        LoadModule           modules/greylist_win32.dll
    </if>
</if>
EnableSubmission 0
EnableSMTPS 0
EnablePOP3S 0
EnableIMAPS 0
EnableWebAdmin 0
EnableManageSieve 0
"""


def original_conf(s):
    script = os.path.join(s.dir, "admin.lua")
    with open(script, "w") as f:
        f.write('ORIGINAL_SCRIPT_LOADED = true\n')
    s.pop3_port, s.imap_port = free_port(), free_port()
    text = ORIGINAL
    for k, v in (("STORAGE", s.storage), ("SMTP", s.smtp_port), ("POP3", s.pop3_port),
                 ("IMAP", s.imap_port), ("SCRIPT", script)):
        text = text.replace("@%s@" % k, str(v))
    with open(s.conf, "w") as f:
        f.write(text)


def test_the_originals_rumble_conf_starts():
    """config: a rumble.conf with every directive of the original's starts up (IgnoreMX list, Comment, LoadModule, ...)"""
    s = Server(domains=(), users=())
    original_conf(s)
    s.cli("domain", "add", "example.org")
    s.start()
    assert wait_port(s.pop3_port) and wait_port(s.imap_port)
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        assert c.ehlo("client.example.org")[0] == 250
        assert c.ehlo("nodots")[0] != 250  # EnforceFQDN 1
    err = s.stderr()
    assert "unknown directive" not in err, err
    assert "Using the UNIX storage path" in err and "Loading UNIX configuration" in err, err
    assert "LoadModule has no effect here" in err, err
    assert s.stop() == 0


def test_config_dir_option_picks_the_folder():
    """config: --CONFIG-DIR=DIR (any case) reads DIR/rumble.conf; without a folder it is one line and exit 2"""
    s = Server(domains=("configdir.example",), users=())
    for opt in ("--CONFIG-DIR=", "--config-dir=", "--Config-Dir="):
        r = subprocess.run([BIN, opt + s.dir, "domain", "list"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0 and r.stdout == "configdir.example\n", (opt, r)
    r = subprocess.run([BIN, "--CONFIG-DIR=" + s.dir + "/", "domain", "list"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "configdir.example\n", r
    for bad in (["--CONFIG-DIR"], ["--CONFIG-DIR="], ["-c"], ["-c", s.conf, "--CONFIG-DIR=/"]):
        r = subprocess.run([BIN] + bad + ["domain", "list"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (bad, r)
    errf = open(os.path.join(s.dir, "dir.stderr"), "wb")
    p = subprocess.Popen([BIN, "--config-dir=" + s.dir], stdout=errf, stderr=errf)
    try:
        assert wait_port(s.smtp_port), open(os.path.join(s.dir, "dir.stderr")).read()
    finally:
        p.terminate()
        assert p.wait(timeout=20) == 0
        errf.close()


def test_unknown_directive_is_a_warning_with_the_closest_name():
    """config: a misspelled directive is a start-up warning with file:line and the closest name; the server runs"""
    s = Server(conf="ServerNmae mx.example.org\nMaxRecipent 5\nCompletelyUnheardOf 1")
    lines = open(s.conf).read().splitlines()
    s.start()
    err = s.stderr()
    for key, near in (("ServerNmae", "ServerName"), ("MaxRecipent", "MaxRecipients")):
        where = "%s:%d" % (s.conf, lines.index(next(l for l in lines if l.startswith(key))) + 1)
        want = "warn  %s: unknown directive '%s' (did you mean '%s'?)" % (where, key, near)
        assert want in err, (want, err)
    assert "unknown directive 'CompletelyUnheardOf'" in err, err
    assert s.stop() == 0


def test_a_bad_outgoing_bind_address_stops_start_up():
    """config: OutgoingBindToAddress that is not an address of this host stops start-up with file:line"""
    s = Server()
    with open(s.conf, "a") as f:
        f.write("OutgoingBindToAddress 192.0.2.77\n")
    n = len(open(s.conf).read().splitlines())
    try:
        r = subprocess.run([BIN, "-c", s.conf], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError("the server started")
    assert r.returncode == 2, r
    assert "%s:%d: OutgoingBindToAddress" % (s.conf, n) in r.stderr, r.stderr


class PeerSink:
    """An SMTP server on 127.0.0.1 that keeps each message's client address."""

    def __init__(self):
        self.peers, self.rcpts = [], []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.peers.append(session.peer[0])
                sink.rcpts.extend(envelope.rcpt_tos)
                return "250 OK"

        self.port = free_port()
        self.ctl = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.ctl.start()

    def stop(self):
        self.ctl.stop()


ZONE = """
remote.test. 60 IN MX 10 mx1.remote.test.
mx1.remote.test. 60 IN A 127.0.0.1
bogus.test. 60 IN MX 10 mx.fakemx.test.
bogus.test. 60 IN MX 20 real.bogus.test.
mx.fakemx.test. 60 IN A 127.0.0.1
real.bogus.test. 60 IN A 127.0.0.1
allfake.test. 60 IN MX 10 mx.fakemx.test.
allfake.test. 60 IN MX 20 MX.FAKEMX.EXAMPLE.
MX.FAKEMX.EXAMPLE. 60 IN A 127.0.0.1
"""


def outbound(extra):
    sink = PeerSink()
    dns = FakeDNS(ZONE)
    s = Server(conf="DNSServer 127.0.0.1:%d\nOutboundPort %d\nRetryInterval 1\n"
                    "MaxRetryInterval 1\nOutboundTimeout 10\n%s" % (dns.port, sink.port, extra))
    return sink, dns, s.start()


def test_outgoing_bind_address_is_the_source_of_outbound_mail():
    """config: OutgoingBindToAddress 127.0.0.2 makes outbound SMTP connect from 127.0.0.2"""
    sink, dns, s = outbound("OutgoingBindToAddress 127.0.0.2")
    try:
        send(s, ["bob@remote.test"], b"Subject: bound\r\n\r\nbody\r\n")
        assert wait_for(lambda: sink.peers), s.stderr()
        assert sink.peers == ["127.0.0.2"], sink.peers
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_ignore_mx_list_skips_those_mx_hosts():
    """config: IgnoreMX with host names skips those MX hosts; a domain with only those bounces"""
    sink, dns, s = outbound("IgnoreMX mx.fakemx.test, mx.fakemx.example.")
    try:
        send(s, ["x@bogus.test", "y@allfake.test"], b"Subject: mx\r\n\r\nbody\r\n")
        assert wait_for(lambda: sink.rcpts), s.stderr()
        assert sink.rcpts == ["x@bogus.test"], sink.rcpts
        assert wait_for(lambda: s.messages("alice@example.org")), s.stderr()
        bounce = s.messages("alice@example.org")[0]
        assert b"y@allfake.test" in bounce and b"IgnoreMX" in bounce, bounce
        err = s.stderr()
        assert "bogus.test: MX mx.fakemx.test skipped (IgnoreMX)" in err, err
        assert "host=mx.fakemx.test" not in err and "host=real.bogus.test" in err, err
        time.sleep(0.5)
        assert sink.rcpts == ["x@bogus.test"], sink.rcpts
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()
