"""New passwords: MinPasswordLength characters (10 by default) and none of
the 10,000 most common, for `rumble user add/passwd` and the web admin;
passwords set before keep working."""
import html as htmlmod
import imaplib

from harness import Server, free_port, wait_port
from test_webadmin import Browser

GOOD = "a long passphrase"


def test_cli_refuses_short_and_common_passwords():
    """passwords: user add/passwd refuse a short or common password with one line and exit 1; old passwords still log in"""
    s = Server(users=("alice@example.org",))  # "secret", set under the harness's MinPasswordLength 0
    with open(s.conf) as f:
        text = f.read()
    with open(s.conf, "w") as f:
        f.write(text.replace("MinPasswordLength 0\n", ""))  # the default, 10, from here on
    for pw, why in (("short", "too short: at least 10 characters"),
                    ("1234567890", "most common"), ("PassWord123", "most common"),
                    ("QWERTYUIOP", "most common")):
        r = s.cli("user", "add", "bob@example.org", input=pw + "\n", check=False)
        assert r.returncode != 0, pw
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and why in lines[0], (pw, r.stderr)
        r = s.cli("user", "passwd", "alice@example.org", input=pw + "\n", check=False)
        assert r.returncode != 0 and why in r.stderr, (pw, r.stderr)
    assert "bob@example.org" not in s.cli("user", "list").stdout
    assert s.cli("user", "add", "bob@example.org", input=GOOD + "\n").returncode == 0
    # alice's "secret" was never changed and still works
    imap = free_port()
    with open(s.conf) as f:
        text = f.read().replace("EnableIMAP4 0\n", "EnableIMAP4 1\nIMAP4Port %d\n" % imap)
    with open(s.conf, "w") as f:
        f.write(text)
    s.start()
    assert wait_port(imap)
    for user, pw in (("alice@example.org", "secret"), ("bob@example.org", GOOD)):
        m = imaplib.IMAP4("127.0.0.1", imap, timeout=20)
        assert m.login(user, pw)[0] == "OK"
        m.logout()
    assert s.cli("user", "passwd", "alice@example.org", input="MinPasswordLength\n").returncode == 0
    assert s.stop() == 0


def test_min_password_length_is_configurable():
    """passwords: MinPasswordLength 4 takes a 4-character password that is not common, still refuses a common one"""
    s = Server(conf="MinPasswordLength 4", users=())
    assert s.cli("user", "add", "bob@example.org", input="zq9k\n").returncode == 0
    r = s.cli("user", "add", "carol@example.org", input="abc\n", check=False)
    assert r.returncode != 0 and "at least 4" in r.stderr
    r = s.cli("user", "add", "carol@example.org", input="secret\n", check=False)
    assert r.returncode != 0 and "common" in r.stderr


def test_web_admin_refuses_short_and_common_passwords():
    """passwords: the web admin's add-mailbox and set-password forms say why a short or common password is refused"""
    port = free_port()
    s = Server(conf="MinPasswordLength 10\nEnableWebAdmin 1\nWebAdminPort %d\nWebAdmin alice@example.org"
               % port, users=())
    s.cli("user", "add", "alice@example.org", input="admin passphrase\n")
    s.start()
    assert wait_port(port)
    b = Browser(port)
    st, h, _ = b.login(pw="admin passphrase")
    assert st == 303, st
    page = "/accounts?domain=example.org"
    for pw, why in (("short", "too short: at least 10 characters"), ("MyPassword", "most common")):
        st, _, html = b.post("/account/add", {"domain": "example.org", "name": "carol",
                                              "type": "mailbox", "password": pw}, page=page)
        assert st == 400 and why in htmlmod.unescape(html), (pw, st, html[-2000:])
        st, _, html = b.post("/account/password", {"domain": "example.org", "name": "alice",
                                                   "password": pw}, page=page)
        assert st == 400 and why in htmlmod.unescape(html), (pw, st)
    assert "carol@example.org" not in s.cli("user", "list").stdout
    st, _, html = b.post("/account/add", {"domain": "example.org", "name": "carol",
                                          "type": "mailbox", "password": GOOD}, page=page)
    assert st == 200 and "carol@example.org added." in html
    assert s.stop() == 0
