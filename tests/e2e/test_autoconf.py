"""Client autoconfiguration (autoconf.c, served by the web admin's port
without a login): Thunderbird's autoconfig and Outlook's autodiscover over
HTTP, parsed with xml.etree, their ports checked against the listeners by
logging in with imaplib and smtplib; the Apple .mobileconfig download of the
web admin, parsed with plistlib, and refused without a login."""
import imaplib
import plistlib
import poplib
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

from harness import free_port
from test_webadmin import Browser, admin_server, logged_in

AD_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
HOSTILE = "<x>\"'&@example.org"


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def mail_server():
    imap, imaps, sub, smtps = free_port(), free_port(), free_port(), free_port()
    s = admin_server(conf="ServerName mail.example.org\nEnableIMAP4 1\nIMAP4Port %d\n"
                     "EnableIMAPS 1\nIMAPSPort %d\nEnableSubmission 1\nSubmissionPort %d\n"
                     "EnableSMTPS 1\nSMTPSPort %d\nEnablePOP3S 0\n" % (imap, imaps, sub, smtps))
    s.ports = {"imap": imap, "imaps": imaps, "submission": sub, "smtps": smtps}
    return s


def fetch(port, path, data=None, headers=None):
    """(status, content type, body) of a request without cookies."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def servers(root):
    """{(type, socketType): port} of a clientConfig's servers, their hosts."""
    got, hosts = {}, set()
    for kind in ("incomingServer", "outgoingServer"):
        for e in root.iter(kind):
            got[(e.get("type"), e.findtext("socketType"))] = int(e.findtext("port"))
            hosts.add(e.findtext("hostname"))
            assert e.findtext("username") == "%EMAILADDRESS%"
            assert e.findtext("authentication") == "password-cleartext"
    return got, hosts


def test_thunderbird_autoconfig_names_the_listeners():
    """autoconf: Thunderbird's config-v1.1.xml by emailaddress= and by the autoconfig. host, without a login, lists the enabled IMAP, POP3 and SMTP ports (SSL and STARTTLS), and imaplib/poplib/smtplib log in on each"""
    s = mail_server()
    try:
        p = s.ports
        for path, host in (("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress="
                            "alice%40example.org", "example.org"),
                           ("/mail/config-v1.1.xml", "autoconfig.example.org")):
            st, ctype, body = fetch(s.web_port, path, headers={"Host": host})
            assert st == 200 and ctype.startswith("text/xml"), (st, body)
            root = ET.fromstring(body)
            assert root.tag == "clientConfig" and root.get("version") == "1.1"
            assert root.find("emailProvider/domain").text == "example.org"
            got, hosts = servers(root)
            assert got == {("imap", "SSL"): p["imaps"], ("imap", "STARTTLS"): p["imap"],
                           ("pop3", "STARTTLS"): s.pop3_port, ("smtp", "SSL"): p["smtps"],
                           ("smtp", "STARTTLS"): p["submission"]}, got
            assert hosts == {"mail.example.org"}
        for typ, port in got.items():
            if typ == ("imap", "SSL"):
                c = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=client_ctx(), timeout=15)
            elif typ == ("imap", "STARTTLS"):
                c = imaplib.IMAP4("127.0.0.1", port, timeout=15)
                c.starttls(ssl_context=client_ctx())
            elif typ[0] == "pop3":
                c = poplib.POP3("127.0.0.1", port, timeout=15)
                c.stls(context=client_ctx())
                c.user("alice@example.org")
                assert c.pass_("secret").startswith(b"+OK")
                c.quit()
                continue
            if typ[0] == "imap":
                assert c.login("alice@example.org", "secret")[0] == "OK"
                c.logout()
                continue
            if typ[1] == "SSL":
                c = smtplib.SMTP_SSL("127.0.0.1", port, context=client_ctx(), timeout=15)
            else:
                c = smtplib.SMTP("127.0.0.1", port, timeout=15)
                c.starttls(context=client_ctx())
            assert c.login("alice@example.org", "secret")[0] == 235
            c.quit()
        st, _, _ = fetch(s.web_port, "/mail/config-v1.1.xml?emailaddress=a%40other.example")
        assert st == 404
        st, _, _ = fetch(s.web_port, "/mail/config-v1.1.xml", headers={"Host": "autoconfig.x.test"})
        assert st == 404
        st, _, _ = fetch(s.web_port, "/mail/config-v1.1.xml", data=b"x=1")
        assert st == 405
        st, _, body = fetch(s.web_port, "/accounts?domain=example.org")
        assert b"Log in" in body  # everything else still wants a login
    finally:
        s.stop()


def autodiscover_body(addr):
    return ('<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="http://schemas.'
            'microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request>'
            '<EMailAddress>%s</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.'
            'com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>'
            '</Request></Autodiscover>' % addr).encode()


def test_outlook_autodiscover_answers_a_post():
    """autoconf: Outlook's POX autodiscover POST (either case of the path) gets the 2006a Response with IMAPS and SMTPS, a hostile address comes back escaped; GET, a body not naming one of our domains and an oversize body are refused"""
    s = mail_server()
    try:
        p = s.ports
        hostile = HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        for path, addr, want in (("/autodiscover/autodiscover.xml", "alice@example.org",
                                  "alice@example.org"),
                                 ("/Autodiscover/Autodiscover.xml", hostile, HOSTILE)):
            st, ctype, body = fetch(s.web_port, path, data=autodiscover_body(addr),
                                    headers={"Content-Type": "text/xml"})
            assert st == 200 and ctype.startswith("text/xml"), (st, body)
            root = ET.fromstring(body)
            acct = root.find(AD_NS + "Response/" + AD_NS + "Account")
            assert acct.findtext(AD_NS + "Action") == "settings"
            prot = {e.findtext(AD_NS + "Type"): e for e in acct.iter(AD_NS + "Protocol")}
            assert sorted(prot) == ["IMAP", "SMTP"], body
            assert int(prot["IMAP"].findtext(AD_NS + "Port")) == p["imaps"]
            assert int(prot["SMTP"].findtext(AD_NS + "Port")) == p["smtps"]
            assert prot["IMAP"].findtext(AD_NS + "SSL") == "on"
            assert prot["IMAP"].findtext(AD_NS + "Server") == "mail.example.org"
            assert prot["IMAP"].findtext(AD_NS + "LoginName") == want, body
        c = imaplib.IMAP4_SSL("127.0.0.1", p["imaps"], ssl_context=client_ctx(), timeout=15)
        assert c.login("alice@example.org", "secret")[0] == "OK"
        c.logout()
        assert fetch(s.web_port, "/autodiscover/autodiscover.xml")[0] == 405
        assert fetch(s.web_port, "/autodiscover/autodiscover.xml",
                     data=autodiscover_body("bob@other.example"))[0] == 404
        assert fetch(s.web_port, "/autodiscover/autodiscover.xml", data=b"<nothing/>")[0] == 400
        assert fetch(s.web_port, "/autodiscover/autodiscover.xml", data=b"x" * 9000)[0] == 413
    finally:
        s.stop()


def test_mobileconfig_download():
    """autoconf: the web admin's account page links each mailbox's Apple profile; logged in it downloads as application/x-apple-aspen-config and parses with plistlib (IMAPS and SMTPS ports, SSL on); logged out it is refused"""
    s = mail_server()
    try:
        p = s.ports
        b = logged_in(s)
        html = b.page("/accounts?domain=example.org")
        link = "/account/mobileconfig?domain=example.org&amp;name=bob"
        assert link in html, html
        st, h, _ = b.req("GET", link.replace("&amp;", "&"))
        assert st == 200, st
        assert h["Content-Type"] == "application/x-apple-aspen-config"
        assert h["Content-Disposition"] == 'attachment; filename="bob@example.org.mobileconfig"'
        st, _, raw = fetch_with(b, link.replace("&amp;", "&"))
        prof = plistlib.loads(raw)
        assert prof["PayloadType"] == "Configuration"
        mail = prof["PayloadContent"][0]
        assert mail["PayloadType"] == "com.apple.mail.managed"
        assert mail["EmailAddress"] == "bob@example.org"
        assert mail["IncomingMailServerHostName"] == "mail.example.org"
        assert mail["IncomingMailServerPortNumber"] == p["imaps"]
        assert mail["IncomingMailServerUseSSL"] is True
        assert mail["OutgoingMailServerPortNumber"] == p["smtps"]
        assert mail["IncomingMailServerUsername"] == "bob@example.org"
        assert prof["PayloadUUID"] != mail["PayloadUUID"]
        again = plistlib.loads(fetch_with(b, link.replace("&amp;", "&"))[2])
        assert again["PayloadUUID"] == prof["PayloadUUID"]  # the same profile, replaced
        assert b.req("GET", "/account/mobileconfig?domain=example.org&name=nobody")[0] == 404
        out = Browser(s.web_port)
        st, h, body = out.req("GET", "/account/mobileconfig?domain=example.org&name=bob")
        assert st == 303 and h["Location"] == "/login" and "PayloadUUID" not in body
    finally:
        s.stop()


def fetch_with(b, path):
    """The raw bytes of a GET with b's cookies (Browser decodes text)."""
    cookie = "; ".join("%s=%s" % kv for kv in b.cookies.items())
    return fetch(b.port, path, headers={"Cookie": cookie})
