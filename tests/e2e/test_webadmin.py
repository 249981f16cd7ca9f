"""End-to-end tests of the web admin (lua/webadmin.lua, lua/webadmin.c):
login and its throttling, sessions, CSRF, escaping, the HTTP limits, every
page, and changes made through the forms that SMTP and POP3 then see."""
import http.client
import os
import poplib
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
import urllib.parse

from harness import ROOT, TMP, Server, free_port, wait_port


def admin_server(conf="", users=("alice@example.org", "bob@example.org")):
    port, pop3 = free_port(), free_port()
    s = Server(conf="EnableWebAdmin 1\nWebAdminPort %d\nWebAdmin alice@example.org\nEnablePOP3 1\nPOP3Port %d\n%s"
               % (port, pop3, conf), users=users)
    s.web_port, s.pop3_port = port, pop3
    s.start()
    assert wait_port(port), s.stderr()
    return s


class Browser:
    """http.client with a cookie jar, one connection per request."""

    def __init__(self, port, source="127.0.0.1"):
        self.port, self.source, self.cookies = port, source, {}

    def req(self, method, path, form=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20,
                                       source_address=(self.source, 0))
        h = dict(headers or {})
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            h["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read().decode("utf-8")
        self.last_cookies = r.headers.get_all("Set-Cookie") or []
        for v in self.last_cookies:
            k, val = v.split(";", 1)[0].split("=", 1)
            if "Max-Age=0" in v:
                self.cookies.pop(k, None)
            else:
                self.cookies[k] = val
        c.close()
        return r.status, r.headers, data

    def login(self, user="alice@example.org", pw="secret"):
        st, _, html = self.req("GET", "/login")
        assert st == 200, st
        pre = re.search(r'name="pre" value="([0-9a-f]{32})"', html).group(1)
        return self.req("POST", "/login", form={"pre": pre, "user": user, "password": pw})

    def page(self, path):
        st, _, html = self.req("GET", path)
        assert st == 200, (path, st, html[:500])
        self.csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', html).group(1)
        return html

    def post(self, path, form, page="/"):
        """A POST from the form of page: its CSRF token goes along."""
        self.page(page)
        form = dict(form, csrf=self.csrf)
        return self.req("POST", path, form=form)


def logged_in(s):
    b = Browser(s.web_port)
    st, h, _ = b.login()
    assert st == 303 and h["Location"] == "/", st
    return b


def raw(port, data, timeout=10):
    """Sends data as is; returns the whole answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        sock.close()


def status(answer):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert m, answer[:200]
    return int(m.group(1))


def wait_for(fn, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    return fn()


def test_login():
    """Web admin: a wrong password and an unknown name fail; alice logs in with a safe cookie (bob, a mailbox only: test_myaccount)"""
    s = admin_server()
    b = Browser(s.web_port)
    st, _, html = b.login(pw="wrong")
    assert st == 403 and "Login failed" in html, (st, html)
    assert "wa_sid" not in b.cookies
    st, _, html = b.login(user="bob@example.org", pw="wrong")
    assert st == 403 and "wa_sid" not in b.cookies
    st, _, _ = b.login(user="nobody@example.org", pw="secret")
    assert st == 403
    st, _, _ = b.login(user="x\r\n2026-01-01 00:00:00 info  forged", pw="secret")
    assert st == 403
    st, h, _ = b.login()
    assert st == 303 and h["Location"] == "/"
    cookie = [c for c in b.last_cookies if c.startswith("wa_sid=")][0]
    assert re.match(r"wa_sid=[0-9a-f]{64}; ", cookie), cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
    html = b.page("/")
    assert "Dashboard" in html and "alice@example.org" in html
    log = s.stderr()
    assert "webadmin result=refused client=127.0.0.1 cmd=login user=bob@example.org" in log
    assert "webadmin result=login client=127.0.0.1 user=alice@example.org" in log
    assert "secret" not in log  # no password in the log
    assert "\n2026-01-01 00:00:00 info  forged" not in log and "user=x??2026" in log
    # a forged token, and the real one from another address, are nobody
    other = Browser(s.web_port)
    other.cookies["wa_sid"] = "0" * 64
    assert other.req("GET", "/")[0] == 303
    other = Browser(s.web_port, source="127.0.0.2")
    other.cookies = dict(b.cookies)
    assert other.req("GET", "/")[0] == 303
    # log out: the token is dead even if kept
    sid = b.cookies["wa_sid"]
    st, h, _ = b.post("/logout", {})
    assert st == 303 and h["Location"] == "/login" and "wa_sid" not in b.cookies
    b.cookies["wa_sid"] = sid
    st, h, _ = b.req("GET", "/")
    assert st == 303 and h["Location"] == "/login"
    s.stop()


def test_not_logged_in_redirects():
    """Web admin: without a session every page redirects to /login and a POST changes nothing"""
    s = admin_server()
    b = Browser(s.web_port)
    for path in ("/", "/domains", "/accounts?domain=example.org", "/queue", "/log", "/nope"):
        st, h, _ = b.req("GET", path)
        assert st == 303 and h["Location"] == "/login", (path, st)
    st, h, _ = b.req("POST", "/domain/add", form={"domain": "evil.example", "csrf": "x"})
    assert st == 303 and h["Location"] == "/login"
    assert "evil.example" not in s.cli("domain", "list").stdout
    st, _, html = b.req("GET", "/login")
    assert st == 200 and 'name="password"' in html
    s.stop()


def test_throttling():
    """Web admin: failed logins are delayed and, after LoginAttempts, refused even with the right password"""
    s = admin_server(conf="LoginAttempts 3\nQuarantine 60")
    b = Browser(s.web_port, source="127.0.0.2")  # a remote client (loopback is not exempt anyway)
    t0 = time.time()
    for i in range(3):
        st, _, _ = b.login(pw="wrong%d" % i)
        assert st == 403, st
    took = time.time() - t0
    assert took >= 1.5, took  # 250 + 500 + 1000 ms
    st, _, html = b.login()  # the right password, too late
    assert st == 429 and "Too many failed logins" in html, (st, html)
    assert "wa_sid" not in b.cookies
    assert ('webadmin result=refused client=127.0.0.2 cmd=login reason="too many failed logins"'
            in s.stderr())
    # another address is not shut out
    assert Browser(s.web_port).login()[0] == 303
    s.stop()


def test_pages_render():
    """Web admin: dashboard, domains, accounts, queue and log render, values escaped"""
    s = admin_server(conf="DNSServer 127.0.0.1:%d\nRelayHost 127.0.0.1:%d\n" % (free_port(), free_port()))
    Browser(s.web_port).login(user="<i>evil</i>", pw="x")  # logged as given
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        c.login("alice@example.org", "secret")
        c.sendmail("alice@example.org", ["far@remote.test"], "Subject: q\r\n\r\nqueued\r\n")
    b = logged_in(s)
    html = b.page("/")
    for word in ("Services", "smtp", "pop3", "running", "stopped", "Sessions", "Rejected", "up "):
        assert word in html, word
    html = b.page("/domains")
    assert "example.org" in html and 'action="/domain/add"' in html
    html = b.page("/accounts?domain=example.org")
    assert "alice@example.org" in html and "bob@example.org" in html and "mailbox" in html
    html = b.page("/queue")
    assert "1 message waiting" in html and "far@remote.test" in html, html
    assert "alice@example.org" in html
    html = b.page("/log")
    assert "result=login client=127.0.0.1" in html and "<pre>" in html
    assert "user=&lt;i&gt;evil&lt;/i&gt;" in html and "<i>evil" not in html
    st, _, _ = b.req("GET", "/accounts?domain=nosuch.example")
    assert st == 404
    st, _, _ = b.req("GET", "/no/such/page")
    assert st == 404
    st, h, _ = b.req("GET", "/domain/add")
    assert st == 405 and h["Allow"] == "POST"
    for h in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"):
        assert h in b.req("GET", "/")[1], h
    s.stop()


def test_domain_account_mail_pop3():
    """Web admin: a domain and mailbox added in the forms get mail over SMTP; POP3 takes the form's password, then the changed one; alias; delete"""
    s = admin_server()
    b = logged_in(s)
    st, _, html = b.post("/domain/add", {"domain": "New.Example"}, page="/domains")
    assert st == 200 and "Domain new.example added." in html, html
    assert "new.example" in s.cli("domain", "list").stdout
    st, _, html = b.post("/account/add", {"domain": "new.example", "name": "Carol", "type": "mailbox",
                                          "password": "pw from the form", "targets": ""},
                         page="/accounts?domain=new.example")
    assert st == 200 and "carol@new.example added." in html, html
    st, _, html = b.post("/account/add", {"domain": "new.example", "name": "carol", "type": "mailbox",
                                          "password": "again"}, page="/accounts?domain=new.example")
    assert st == 400 and "exists already" in html
    st, _, html = b.post("/account/add", {"domain": "new.example", "name": "info", "type": "alias",
                                          "targets": "carol@new.example"},
                         page="/accounts?domain=new.example")
    assert st == 200 and "info@new.example added." in html, html
    html = b.page("/accounts?domain=new.example")
    assert "carol@new.example" in html and "info@new.example" in html
    # the stored password is a PBKDF2 hash, not the text
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        c.sendmail("x@example.org", ["carol@new.example"], "Subject: one\r\n\r\nhello carol\r\n")
        c.sendmail("x@example.org", ["info@new.example"], "Subject: two\r\n\r\nvia the alias\r\n")
    assert wait_for(lambda: len(s.messages("carol@new.example")) == 2), s.stderr()[-3000:]
    p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=20)
    p.user("carol@new.example")
    assert p.pass_("pw from the form").startswith(b"+OK")
    assert p.stat()[0] == 2
    body = b"\r\n".join(p.retr(1)[1])
    assert b"hello carol" in body
    p.quit()
    # change the password: the new one works, the old one no more
    st, _, html = b.post("/account/password", {"domain": "new.example", "name": "carol",
                                               "password": "n3w"}, page="/accounts?domain=new.example")
    assert st == 200 and "Password of carol@new.example changed." in html, html
    p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=20)
    p.user("carol@new.example")
    try:
        p.pass_("pw from the form")
        raise AssertionError("the old password still works")
    except poplib.error_proto:
        pass
    p.quit()
    p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=20)
    p.user("carol@new.example")
    assert p.pass_("n3w").startswith(b"+OK")
    p.quit()
    # delete the accounts, then the domain; each asks first
    st, _, html = b.post("/account/delete", {"domain": "new.example", "name": "carol"},
                         page="/accounts?domain=new.example")
    assert st == 200 and "Delete the account carol@new.example?" in html, html
    assert 'name="confirm" value="yes"' in html
    assert "carol@new.example" in s.cli("user", "list", "new.example").stdout
    for name in ("carol", "info"):
        st, _, html = b.post("/account/delete", {"domain": "new.example", "name": name,
                                                 "confirm": "yes"}, page="/accounts?domain=new.example")
        assert st == 200 and "%s@new.example deleted." % name in html, html
    html = b.page("/accounts?domain=new.example")
    assert "carol@new.example" not in html
    st, _, html = b.post("/domain/delete", {"domain": "new.example"}, page="/domains")
    assert st == 200 and "Delete the domain new.example and its 0 accounts?" in html, html
    assert "new.example" in s.cli("domain", "list").stdout
    st, _, html = b.post("/domain/delete", {"domain": "new.example", "confirm": "yes"}, page="/domains")
    assert st == 200 and "Domain new.example deleted." in html, html
    assert "new.example" not in s.cli("domain", "list").stdout
    s.stop()


def test_csrf():
    """Web admin: a POST without the session's CSRF token, or a login without its form token, is refused with 403"""
    s = admin_server()
    b = logged_in(s)
    st, _, _ = b.req("POST", "/domain/add", form={"domain": "csrf.example"})
    assert st == 403
    st, _, _ = b.req("POST", "/domain/add", form={"domain": "csrf.example", "csrf": "0" * 64})
    assert st == 403
    st, _, _ = b.req("POST", "/service", form={"name": "smtp", "action": "stop"})
    assert st == 403
    assert "csrf.example" not in s.cli("domain", "list").stdout
    assert wait_port(s.smtp_port)
    # login: the hidden token must match the cookie set with the form
    c = Browser(s.web_port)
    st, _, _ = c.req("POST", "/login", form={"user": "alice@example.org", "password": "secret"})
    assert st == 403 and "wa_sid" not in c.cookies
    c.req("GET", "/login")
    st, _, html = c.req("POST", "/login", form={"pre": "1" * 32, "user": "alice@example.org",
                                                 "password": "secret"})
    assert st == 403 and "wa_sid" not in c.cookies and "not the latest one" in html
    s.stop()


def test_escaping():
    """Web admin: <script> in a domain, account or alias target is refused and shown escaped"""
    s = admin_server()
    b = logged_in(s)
    st, _, html = b.post("/domain/add", {"domain": "<script>alert(1)</script>.example"}, page="/domains")
    assert st == 400 and "<script>alert" not in html and "&lt;script&gt;alert(1)" in html, html
    st, _, html = b.post("/account/add", {"domain": "example.org", "name": "<script>x", "type": "alias",
                                          "targets": "alice@example.org"},
                         page="/accounts?domain=example.org")
    assert st == 400 and "<script>x" not in html and "&lt;script&gt;x" in html, html
    st, _, html = b.post("/account/add", {"domain": "example.org", "name": "a1", "type": "alias",
                                          "targets": "\"><script>@x.org"},
                         page="/accounts?domain=example.org")
    assert st == 400 and "<script>" not in html and "&quot;&gt;&lt;script&gt;" in html, html
    # a query value is escaped where it is shown
    st, _, html = b.req("GET", "/accounts?domain=%3Cimg%20src%3Dx%3E")
    assert st == 404 and "<img" not in html and "&lt;img src=x&gt;" in html, html
    # what a script stored behind the admin's back is escaped too
    s.cli("alias", "add", "odd@example.org", "<b>bold</b>@example.org")
    html = b.page("/accounts?domain=example.org")
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;@example.org" in html, html
    s.stop()


def test_http_limits():
    """Web admin: bad requests get 400, long lines 414, too many or big headers 431, big bodies 413, other methods 405, POST without length 411"""
    s = admin_server()
    p = s.web_port
    assert status(raw(p, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == 303
    assert status(raw(p, b"garbage\r\n\r\n")) == 400
    assert status(raw(p, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")) == 400
    assert status(raw(p, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n")) == 414
    assert status(raw(p, b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n")) == 431
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    assert status(raw(p, b"GET / HTTP/1.1\r\n" + many + b"\r\n")) == 431
    sized = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 3000) for i in range(8))
    assert status(raw(p, b"GET / HTTP/1.1\r\n" + sized + b"\r\n")) == 431
    assert status(raw(p, b"POST /login HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n")) == 413
    assert status(raw(p, b"POST /login HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\n")) == 413
    assert status(raw(p, b"POST /login HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")) == 400
    assert status(raw(p, b"POST /login HTTP/1.1\r\nHost: x\r\n\r\n")) == 411
    assert status(raw(p, b"POST /login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")) == 501
    for m in (b"DELETE", b"PUT", b"HEAD", b"OPTIONS", b"TRACE", b"BREW"):
        answer = raw(p, m + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status(answer) == 405 and b"Allow: GET, POST" in answer, (m, answer)
    # a client that says nothing is dropped (the service stays up)
    sock = socket.create_connection(("127.0.0.1", p), timeout=40)
    sock.sendall(b"GET / HTTP/1.1\r\n")
    t0 = time.time()
    assert sock.recv(100) == b""
    assert 10 < time.time() - t0 < 35
    sock.close()
    assert status(raw(p, b"GET /login HTTP/1.0\r\n\r\n")) == 200
    s.stop()


def test_stop_start_service():
    """Web admin: the dashboard's Stop closes the SMTP port and Start opens it again"""
    s = admin_server()
    b = logged_in(s)
    st, _, html = b.post("/service", {"name": "smtp", "action": "stop"})
    assert st == 200 and "smtp stopped." in html, html

    def refused():
        try:
            socket.create_connection(("127.0.0.1", s.smtp_port), timeout=2).close()
            return False
        except OSError:
            return True
    assert wait_for(refused, 5)
    html = b.page("/")
    row = re.search(r"<td>smtp</td><td>(.*?)</td>", html).group(1)
    assert "stopped" in row, row
    st, _, html = b.post("/service", {"name": "smtp", "action": "start"})
    assert st == 200 and "smtp started." in html, html
    assert wait_port(s.smtp_port, 5)
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        assert c.noop()[0] == 250
    st, _, html = b.post("/service", {"name": "webadmin", "action": "stop"})
    assert st == 400 and "Unknown service" in html
    s.stop()


def test_disabled_and_no_admins():
    """Web admin: EnableWebAdmin 0 opens no port; without WebAdmin lines the login page says how to add one"""
    port = free_port()
    s = Server(conf="EnableWebAdmin 0\nWebAdminPort %d" % port)
    s.start()
    time.sleep(0.3)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        raise AssertionError("the web admin listens though disabled")
    except ConnectionRefusedError:
        pass
    s.stop()
    port = free_port()
    s = Server(conf="EnableWebAdmin 1\nWebAdminPort %d" % port)
    s.start()
    assert wait_port(port)
    st, _, html = Browser(port).req("GET", "/login")
    assert st == 200 and "No administrator yet" in html
    assert Browser(port).login(pw="wrong")[0] == 403
    assert "web admin: http://127.0.0.1:%d/" % port in s.stderr()
    s.stop()


def chromium(skip):
    """A headless Chromium under chromedriver, loopback only, and selenium's
    By; raises skip (the calling test's Skip) when they are not installed."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
    except ImportError:
        raise skip("python3-selenium not installed")
    chromium_bin, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium_bin or not driver_bin:
        raise skip("chromium or chromium-driver not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium_bin
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--disable-extensions", "--disable-background-networking",
              "--proxy-server=direct://", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(a)
    service = Service(executable_path=driver_bin, port=free_port())
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(30)
    return d, By


def test_browser():
    """Web admin in headless Chromium: log in, add an account, see it listed"""
    d, By = chromium(Skip)
    s = admin_server()
    try:
        base = "http://127.0.0.1:%d" % s.web_port
        d.get(base + "/")
        assert "/login" in d.current_url
        d.find_element(By.NAME, "user").send_keys("alice@example.org")
        d.find_element(By.NAME, "password").send_keys("secret")
        d.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        assert wait_for(lambda: "Dashboard" in d.title, 10), d.page_source[:500]
        d.get(base + "/accounts?domain=example.org")
        d.find_element(By.CSS_SELECTOR, "form[action='/account/add'] input[name='name']").send_keys("dave")
        d.find_element(By.CSS_SELECTOR, "form[action='/account/add'] input[name='password']").send_keys("pw")
        d.find_element(By.CSS_SELECTOR, "form[action='/account/add'] button").click()
        assert wait_for(lambda: "dave@example.org added." in d.page_source, 10), d.page_source[-800:]
        d.get(base + "/accounts?domain=example.org")
        cells = [td.text for td in d.find_elements(By.TAG_NAME, "td")]
        assert "dave@example.org" in cells, cells
    finally:
        d.quit()
    assert "dave@example.org" in s.cli("user", "list", "example.org").stdout
    s.stop()


def test_windows_build_serves_login_under_wine():
    """Web admin: rumble.exe (./build.sh windows) serves the login page under wine"""
    exe = os.path.join(ROOT, "build", "win", "rumble.exe")
    wine = "/usr/lib/wine/wine64"
    if not os.path.exists(exe) or not os.path.exists(wine):
        raise Skip("needs build/win/rumble.exe (./build.sh windows) and wine64")
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="wine-")
    env = dict(os.environ, WINEDEBUG="-all", WINEPREFIX=os.path.join(TMP, "wineprefix"))
    smtp, web = free_port(), free_port()
    conf = os.path.join(d, "rumble.conf")
    with open(conf, "w") as f:
        f.write("ServerName win.test\nStorageFolder Z:%s\nBindToAddress 127.0.0.1\nSMTPPort %d\n"
                "EnablePOP3 0\nEnableIMAP4 0\nWebAdminPort %d\n"
                % (os.path.join(d, "data").replace("/", "\\"), smtp, web))
    log = open(os.path.join(d, "stderr"), "wb")
    p = subprocess.Popen([wine, exe, "-c", "Z:" + conf.replace("/", "\\")], env=env,
                         stdout=log, stderr=log)
    try:
        assert wait_port(web, 60), open(os.path.join(d, "stderr"), "rb").read()
        st, _, html = Browser(web).req("GET", "/login")
        assert st == 200 and 'name="password"' in html, (st, html[:300])
        assert Browser(web).req("GET", "/")[0] == 303
    finally:
        p.kill()
        p.wait(30)
        log.close()
        subprocess.run(["/usr/lib/wine/wineserver", "-k"], env=env, timeout=30)
    shutil.rmtree(d, ignore_errors=True)


def test_client_leaves_mid_login():
    """Web admin: clients that hang up while their login is checked or delayed leave the server sound"""
    s = admin_server()
    pre = "ab" * 16
    body = urllib.parse.urlencode({"pre": pre, "user": "alice@example.org", "password": "wrong"})
    req = ("POST /login HTTP/1.1\r\nHost: x\r\nCookie: wa_pre=%s\r\n"
           "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
           % (pre, len(body), body)).encode()
    socks = []
    for i in range(4):
        sock = socket.create_connection(("127.0.0.1", s.web_port), timeout=10)
        sock.sendall(req)
        socks.append(sock)
    time.sleep(0.1)  # the checks are out on helper threads, or the delays running
    for sock in socks:
        sock.close()
    time.sleep(2.5)
    st, h, _ = Browser(s.web_port, source="127.0.0.2").login()
    assert st == 303, st
    # one more that waits in its delay while the server stops
    sock = socket.create_connection(("127.0.0.1", s.web_port), timeout=10)
    sock.sendall(req)
    time.sleep(0.3)
    assert s.stop() == 0
    sock.close()
