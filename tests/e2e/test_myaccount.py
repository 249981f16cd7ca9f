"""End-to-end tests of the web admin's "my account" page: any mailbox
user logs in, sees their quota use, changes their own password (the
current one asked again) and forwarding, and reaches nothing else."""
import poplib
import smtplib

from harness import free_port, imap_folder
from test_webadmin import Browser, admin_server, chromium, wait_for

NEW_PW = "violet tram 7 lantern"


def pop3_count(s, user, pw):
    """The number of messages in user's INBOX, or None when pw is refused."""
    p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=20)
    try:
        p.user(user)
        try:
            p.pass_(pw)
        except poplib.error_proto:
            return None
        return p.stat()[0]
    finally:
        p.quit()


def bob(s):
    b = Browser(s.web_port)
    st, h, _ = b.login(user="bob@example.org", pw="secret")
    assert st == 303 and h["Location"] == "/", st
    return b


def test_mailbox_user_sees_only_own_page():
    """My account: bob (a mailbox, not WebAdmin) gets his own page with his quota use; every admin page, and alice's profile, is 403"""
    s = admin_server(conf="DefaultQuota 10M", users=("alice@example.org", "bob@example.org",
                                                     "carol@example.org"))
    b = bob(s)
    html = b.page("/")
    assert "My account" in html and "bob@example.org" in html, html[:800]
    assert "of 10 MiB" in html or "10 MiB" in html or "KiB" in html, html
    assert "Dashboard" not in html and "/domains" not in html
    assert b.page("/me") and "Change password" in b.page("/me")
    for path in ("/domains", "/queue", "/log", "/accounts?domain=example.org", "/dns?domain=example.org",
                 "/account/mobileconfig?domain=example.org&name=alice"):
        st, _, _ = b.req("GET", path)
        assert st == 403, (path, st)
    b.page("/")
    for path, form in (("/account/password", {"domain": "example.org", "name": "alice",
                                               "password": "taken over 123"}),
                       ("/domain/add", {"domain": "evil.example"}),
                       ("/service", {"name": "smtp", "action": "stop"})):
        st, _, _ = b.req("POST", path, form=dict(form, csrf=b.csrf))
        assert st == 403, (path, st)
    assert pop3_count(s, "alice@example.org", "secret") is not None  # alice's password unchanged
    assert "evil.example" not in s.cli("domain", "list").stdout
    st, h, body = b.req("GET", "/account/mobileconfig?domain=example.org&name=bob")
    assert st == 200 and "bob@example.org" in body, st
    # alice, an admin, keeps every page and has "My account" too
    a = Browser(s.web_port)
    assert a.login()[0] == 303
    assert "Dashboard" in a.page("/") and "Change password" in a.page("/me")
    assert "webadmin result=login client=127.0.0.1 user=bob@example.org admin=no" in s.stderr()
    s.stop()


def test_password_change():
    """My account: a wrong current password, differing or common new ones are refused; the right change makes POP3 take the new password only"""
    s = admin_server(conf="MinPasswordLength 10", users=())
    old = "first pass 1 of bob"
    s.cli("user", "add", "bob@example.org", input=old + "\n")
    b = Browser(s.web_port)
    assert b.login(user="bob@example.org", pw=old)[0] == 303
    st, _, html = b.post("/me/password", {"current": "wrong", "password": NEW_PW, "again": NEW_PW})
    assert st == 403 and "current password is wrong" in html, (st, html[-600:])
    st, _, html = b.post("/me/password", {"current": old, "password": NEW_PW, "again": NEW_PW + "x"})
    assert st == 400 and "differ" in html
    st, _, html = b.post("/me/password", {"current": old, "password": "password123",
                                          "again": "password123"})
    assert st == 400 and "common" in html.lower(), html[-600:]
    st, _, html = b.post("/me/password", {"current": old, "password": "short", "again": "short"})
    assert st == 400
    assert pop3_count(s, "bob@example.org", old) == 0
    st, _, html = b.post("/me/password", {"current": old, "password": NEW_PW, "again": NEW_PW})
    assert st == 200 and "Password changed." in html, html[-600:]
    assert pop3_count(s, "bob@example.org", old) is None
    assert pop3_count(s, "bob@example.org", NEW_PW) == 0
    s.stop()


def test_forwarding():
    """My account: forwarding sends carol a copy while bob keeps his; forwarding to oneself is refused; emptied, it stops"""
    s = admin_server(users=("alice@example.org", "bob@example.org", "carol@example.org"))
    b = bob(s)
    st, _, html = b.post("/me/forward", {"targets": "bob@example.org"})
    assert st == 400 and "loop" in html
    st, _, html = b.post("/me/forward", {"targets": "not an address"})
    assert st == 400 and "Not an address" in html
    st, _, html = b.post("/me/forward", {"targets": "carol@example.org"})
    assert st == 200 and "forwarded to carol@example.org" in html, html[-600:]
    assert 'value="carol@example.org"' in b.page("/")
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        c.sendmail("x@example.org", ["bob@example.org"], "Subject: one\r\n\r\nfor bob\r\n")
    assert wait_for(lambda: pop3_count(s, "carol@example.org", "secret") == 1), s.stderr()[-2000:]
    assert pop3_count(s, "bob@example.org", "secret") == 1
    # carol forwards back to bob: a loop ends at the first mailbox seen twice
    c = Browser(s.web_port)
    assert c.login(user="carol@example.org", pw="secret")[0] == 303
    assert c.post("/me/forward", {"targets": "bob@example.org"})[0] == 200
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        c.sendmail("x@example.org", ["bob@example.org"], "Subject: loop\r\n\r\nfor bob\r\n")
    assert wait_for(lambda: pop3_count(s, "carol@example.org", "secret") == 2), s.stderr()[-2000:]
    assert pop3_count(s, "bob@example.org", "secret") == 2
    assert "nested too deep" not in s.stderr()
    st, _, html = b.post("/me/forward", {"targets": ""})
    assert st == 200 and "Forwarding stopped." in html
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        c.sendmail("x@example.org", ["bob@example.org"], "Subject: two\r\n\r\nfor bob\r\n")
    assert wait_for(lambda: pop3_count(s, "bob@example.org", "secret") == 3)
    assert pop3_count(s, "carol@example.org", "secret") == 2
    s.stop()


def test_browser_password_and_forwarding():
    """My account in headless Chromium: bob logs in, changes his password and sets forwarding with the forms"""
    d, By = chromium(Skip)
    s = admin_server(users=("alice@example.org", "bob@example.org", "carol@example.org"))
    try:
        base = "http://127.0.0.1:%d" % s.web_port
        d.get(base + "/")
        d.find_element(By.NAME, "user").send_keys("bob@example.org")
        d.find_element(By.NAME, "password").send_keys("secret")
        d.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        assert wait_for(lambda: "My account" in d.title, 10), d.page_source[:500]
        form = "form[action='/me/password'] "
        d.find_element(By.CSS_SELECTOR, form + "input[name='current']").send_keys("secret")
        d.find_element(By.CSS_SELECTOR, form + "input[name='password']").send_keys(NEW_PW)
        d.find_element(By.CSS_SELECTOR, form + "input[name='again']").send_keys(NEW_PW)
        d.find_element(By.CSS_SELECTOR, form + "button").click()
        assert wait_for(lambda: "Password changed." in d.page_source, 10), d.page_source[-800:]
        field = d.find_element(By.CSS_SELECTOR, "form[action='/me/forward'] input[name='targets']")
        field.clear()
        field.send_keys("carol@example.org")
        d.find_element(By.CSS_SELECTOR, "form[action='/me/forward'] button").click()
        assert wait_for(lambda: "forwarded to carol@example.org" in d.page_source, 10)
    finally:
        d.quit()
    assert pop3_count(s, "bob@example.org", NEW_PW) == 0
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        c.sendmail("x@example.org", ["bob@example.org"], "Subject: b\r\n\r\nhi\r\n")
    assert wait_for(lambda: pop3_count(s, "carol@example.org", "secret") == 1), s.stderr()[-2000:]
    s.stop()


def test_filters_form():
    """My account filters: rules and an away message from the form become a Sieve script that files, flags and answers mail; a hand-written script with an error is refused with its line:column"""
    port = free_port()
    s = admin_server(conf="EnableIMAP4 1\nIMAP4Port %d" % port)
    b = bob(s)
    assert "Add a rule" in b.page("/")
    for form in ({"field": "subject", "op": "contains", "value": "report", "action": "move", "arg": "Reports"},
                 {"field": "header", "header": "X-Boss", "op": "is", "value": "yes", "action": "read", "arg": ""},
                 {"field": "from", "op": "contains", "value": "spam", "action": "discard", "arg": ""}):
        st, _, html = b.post("/me/rule/add", form)
        assert st == 200 and "Rule added." in html, (st, html[-800:])
    st, _, html = b.post("/me/rule/add", {"field": "subject", "op": "contains", "value": "", "action": "move",
                                          "arg": "X"})
    assert st == 400
    st, _, html = b.post("/me/rule/add", {"field": "to", "op": "is", "value": "x", "action": "forward",
                                          "arg": "not an address"})
    assert st == 400 and "Forward to one address." in html
    st, _, html = b.post("/me/vacation", {"on": "1", "days": "3", "subject": "Away", "text": "Back soon."})
    assert st == 200 and "Away message on." in html, html[-800:]
    assert 'X-Boss is &quot;yes&quot;' in html and "move to folder Reports" in html
    assert "webadmin" in s.cli("user", "sieve", "bob@example.org", "show").stdout
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        c.sendmail("alice@example.org", ["bob@example.org"],
                   "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: Q3 report\r\n\r\nhi\r\n")
        c.sendmail("x@example.net", ["bob@example.org"], "To: bob@example.org\r\nX-Boss: yes\r\n"
                   "Subject: boss\r\n\r\nhi\r\n")
        c.sendmail("spam@example.net", ["bob@example.org"], "From: spam@example.net\r\nSubject: buy\r\n\r\nhi\r\n")


    assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "Reports")) == 1), s.stderr()[-2000:]
    inbox = imap_folder(port, "bob@example.org", "INBOX")
    assert len(inbox) == 1 and "boss" in inbox[0][1] and "\\Seen" in inbox[0][0], inbox
    # alice got the away message once
    assert wait_for(lambda: any("Away" in sub for _, sub in imap_folder(port, "alice@example.org", "INBOX")))
    # delete the first rule: a report now stays in INBOX
    st, _, html = b.post("/me/rule/delete", {"n": "1"})
    assert st == 200 and "Rule deleted." in html and "move to folder Reports" not in html
    # a hand-written script: errors say where; a good one replaces the form
    st, _, html = b.post("/me/sieve", {"script": "require \"fileinto\";\r\nfileinto \"x\"\r\n"})
    assert st == 400 and "Not saved: 3:1:" in html, html[-800:]
    st, _, html = b.post("/me/sieve", {"script": "require \"fileinto\";\r\nfileinto \"Hand\";\r\n"})
    assert st == 200 and "Script saved." in html and "written by hand" in html
    st, _, html = b.post("/me/rule/add", {"field": "subject", "op": "is", "value": "x", "action": "discard",
                                          "arg": ""})
    assert st == 400 and "written by hand" in html
    st, _, html = b.post("/me/sieve", {"script": ""})
    assert st == 200 and "No filters" in html
    assert "no active script" in s.cli("user", "sieve", "bob@example.org", "show").stdout
    s.stop()
