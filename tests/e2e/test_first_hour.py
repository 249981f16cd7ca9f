"""The first hour, tried as a new user would: the command line says what it
did, aliases (and feeds and relays) can be listed and removed, adding a
second domain warns that bare-name logins stop (CLI and web admin), and the
example script the shipped rumble.conf names exists, loads and works."""
import os
import poplib
import socket

from harness import ROOT, SMTPRaw, Server, free_port, wait_port
from test_webadmin import admin_server, logged_in

WARNING = "logins by bare user name (alice) no longer work"


def test_add_commands_say_what_they_did():
    """first hour: domain, user, alias, feed and relay commands print what they did"""
    s = Server(domains=(), users=())
    r = s.cli("domain", "add", "example.org")
    assert r.stdout == "added domain example.org\n" and r.stderr == "", r
    r = s.cli("user", "add", "Bob@example.org", input="a long secret\n")
    assert r.stdout == "added user bob@example.org\n", r
    r = s.cli("user", "passwd", "bob@example.org", input="another secret\n")
    assert r.stdout == "changed the password of bob@example.org\n", r
    r = s.cli("alias", "add", "sales@example.org", "bob@example.org", "x@remote.test")
    assert r.stdout == "added alias sales@example.org: bob@example.org x@remote.test\n", r
    r = s.cli("alias", "add", "sales@example.org", "bob@example.org")
    assert r.stdout == "changed alias sales@example.org: bob@example.org\n", r
    assert s.cli("feed", "add", "in@example.org", "/bin/cat").stdout == \
        "added feed in@example.org: /bin/cat\n"
    assert s.cli("relay", "add", "out@example.org", "smtp.remote.test:587").stdout == \
        "added relay out@example.org: smtp.remote.test:587\n"
    assert s.cli("user", "del", "bob@example.org").stdout == "deleted user bob@example.org\n"
    s.cli("domain", "add", "gone.example")
    assert s.cli("domain", "del", "gone.example").stdout == "deleted domain gone.example\n"


def test_alias_feed_relay_list_and_del():
    """first hour: alias, feed and relay list [DOMAIN] show only their kind; del removes one"""
    s = Server(domains=("example.org", "other.org"))
    s.cli("alias", "add", "sales@example.org", "alice@example.org")
    s.cli("alias", "add", "info@other.org", "alice@example.org", "x@remote.test")
    s.cli("feed", "add", "in@example.org", "/bin/cat")
    s.cli("relay", "add", "out@other.org", "smtp.remote.test")
    assert s.cli("alias", "list").stdout.splitlines() == [
        "sales@example.org\talice@example.org", "info@other.org\talice@example.org x@remote.test"]
    assert s.cli("alias", "list", "other.org").stdout == "info@other.org\talice@example.org x@remote.test\n"
    assert s.cli("feed", "list").stdout == "in@example.org\t/bin/cat\n"
    assert s.cli("relay", "list").stdout == "out@other.org\tsmtp.remote.test\n"
    # del removes only its own kind
    r = s.cli("alias", "del", "in@example.org", check=False)
    assert r.returncode == 1 and "no such alias in@example.org" in r.stderr, r
    r = s.cli("alias", "del", "alice@example.org", check=False)
    assert r.returncode == 1 and "user list" not in r.stdout, r
    assert s.cli("alias", "del", "Sales@example.org").stdout == "deleted alias sales@example.org\n"
    assert s.cli("feed", "del", "in@example.org").stdout == "deleted feed in@example.org\n"
    assert s.cli("relay", "del", "out@other.org").stdout == "deleted relay out@other.org\n"
    left = s.cli("user", "list").stdout
    assert "sales@" not in left and "in@" not in left and "out@" not in left, left
    assert "info@other.org" in left and "alice@example.org" in left, left
    helptext = s.cli("--help").stdout
    assert "alias|feed|relay list [DOMAIN]" in helptext and "alias|feed|relay del ADDRESS" in helptext
    assert "dkim DOMAIN" in helptext


def pop3_login(s, user):
    c = poplib.POP3("127.0.0.1", s.pop3_port, timeout=10)
    try:
        c.user(user)
        c.pass_("secret")
        return True
    except poplib.error_proto:
        return False
    finally:
        c.close()


def test_second_domain_warns_on_the_command_line():
    """first hour: adding a second domain warns that bare-name logins stop, and they do"""
    s = Server(conf="EnablePOP3 1\nPOP3Port %d" % free_port())
    s.pop3_port = int(open(s.conf).read().split("POP3Port ")[1].split()[0])
    s.start()
    assert wait_port(s.pop3_port)
    assert pop3_login(s, "alice")  # one domain: the bare name works
    r = s.cli("domain", "add", "other.org")
    assert r.stdout == "added domain other.org\n" and WARNING in r.stderr, r
    assert not pop3_login(s, "alice") and pop3_login(s, "alice@example.org")
    assert WARNING not in s.cli("domain", "add", "third.org").stderr  # said at the second only
    assert s.stop() == 0


def test_second_domain_warns_in_the_web_admin():
    """first hour: the web admin says so too when a second domain is added"""
    s = admin_server()
    b = logged_in(s)
    st, _, html = b.post("/domain/add", {"domain": "other.org"}, page="/domains")
    assert st == 200 and "Domain other.org added." in html and WARNING in html, html
    st, _, html = b.post("/domain/add", {"domain": "third.org"}, page="/domains")
    assert st == 200 and "Domain third.org added." in html and WARNING not in html, html
    assert s.stop() == 0


def lines(sock):
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode()


def test_example_script_loads_and_works():
    """first hour: conf's LoadScript scripts/example.lua exists, loads and blocks, refuses and answers"""
    conf = open(os.path.join(ROOT, "conf", "rumble.conf")).read()
    assert "LoadScript         scripts/example.lua" in conf
    path = os.path.join(ROOT, "scripts", "example.lua")
    port = free_port()
    s = Server(conf="LoadScript %s\nExampleStatusPort %d" % (path, port)).start()
    assert wait_port(port), s.stderr()
    r = SMTPRaw(s.smtp_port)
    assert r.cmd("EHLO client.test")[0] == 250
    assert r.cmd("MAIL FROM:<Spammer@example.net>")[0] == 550
    assert r.cmd("MAIL FROM:<anyone@spam.example>")[0] == 550
    assert r.cmd("MAIL FROM:<friend@remote.test>")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.org>")[0] == 250
    # the server's own name from outside (127.0.0.2) is refused, from this host not
    sock = socket.create_connection(("127.0.0.1", s.smtp_port), timeout=10,
                                    source_address=("127.0.0.2", 0))
    assert lines(sock).startswith("220")
    sock.sendall(b"EHLO test.example\r\n")
    assert lines(sock).startswith("550 5.7.1 You are not test.example"), s.stderr()[-2000:]
    sock.close()
    assert SMTPRaw(s.smtp_port).cmd("HELO test.example")[0] == 250
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    status = lines(sock)
    sock.close()
    assert status.startswith("test.example: rumble ") and "domains: example.org" in status, status
    assert "example.lua:" not in s.stderr(), s.stderr()[-2000:]  # no script error logged
    assert s.stop() == 0
