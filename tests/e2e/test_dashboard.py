"""End-to-end tests of the dashboard (stats.c, lua/webadmin.lua): mail
received, sent out and refused counted per hour and kept over a restart,
the page's figures and its SVG chart, `rumble status`, and /metrics in
Prometheus' text format with its access rules."""
import os
import re
import smtplib
import urllib.request

from harness import Server, free_port, wait_port
from test_outbound import MSG, Sink, send, wait_for
from test_webadmin import Browser

SCRIPT = 'i_error("dashboard: an error for the test")\n'


def dashboard_server(sink_port, extra=""):
    port = free_port()
    s = Server(conf="EnableWebAdmin 1\nWebAdminPort %d\nWebAdmin alice@example.org\n"
                    "DNSServer 127.0.0.1:%d\nRelayHost 127.0.0.1:%d\nRetryInterval 3600\n"
                    "MaxRetryInterval 3600\nOutboundTimeout 10\n%s"
                    % (port, free_port(), sink_port, extra),
               users=("alice@example.org", "bob@example.org"))
    with open(os.path.join(s.dir, "err.lua"), "w") as f:
        f.write(SCRIPT)
    with open(s.conf, "a") as f:
        f.write("LoadScript %s\n" % os.path.join(s.dir, "err.lua"))
    s.web_port = port
    s.start()
    assert wait_port(port), s.stderr()
    return s


def traffic(s, sink):
    """3 in (2 local, 1 remote), 1 out, 1 deferred (queued), 3 refused."""
    send(s, ["bob@example.org"], MSG)
    send(s, ["bob@example.org"], MSG)
    send(s, ["carol@remote.test", "later@remote.test"], MSG)
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo()
        assert c.mail("x@sender.test")[0] == 250
        assert c.rcpt("nobody@example.org")[0] == 550      # unknown user
        assert c.rcpt("someone@elsewhere.test")[0] == 554  # relay denied
        assert c.rcpt("bad address")[0] == 501             # syntax: not counted
        c.rset()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo()
        c.login("alice@example.org", "secret")
        assert c.mail("bob@example.org")[0] == 553         # not alice's address
    assert wait_for(lambda: len(sink.got) == 1), s.stderr()
    assert wait_for(lambda: "deferred" in s.stderr() and "later@remote.test" in s.stderr()), \
        s.stderr()


def page_numbers(html):
    nums = dict(re.findall(r"<tr><td>(Received|Sent out|Refused)</td><td>(\d+)</td></tr>", html))
    return {k: int(v) for k, v in nums.items()}


def boxes(html):
    """{name: (size text, messages)} of the Domain and Mailbox tables."""
    return {n: (size, int(m)) for n, size, m in
            re.findall(r"<tr><td>([\w.@-]+)</td><td>([\d.]+ [KMG]?B)</td><td>(\d+)</td></tr>", html)}


def parse_prometheus(text):
    """Prometheus' text exposition format (0.0.4), strictly: HELP and TYPE
    before a metric's samples, known types, one TYPE per name, sample lines
    `name{label="value",...} number`. Returns ({name: type}, {(name,
    labels): value})."""
    types, samples, helped = {}, {}, set()
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)')
    assert text.endswith("\n"), "the last line ends with a line feed"
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helped, "HELP twice: " + name
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in types, "TYPE twice: " + name
            assert not any(n == name for n, _ in samples), "TYPE after samples: " + name
            types[name] = typ
        else:
            m = sample.match(line)
            assert m, "not a sample line: %r" % line
            name, labels = m.group(1), ()
            assert name in types, "a sample without TYPE: " + name
            if m.group(3):
                pairs = label.findall(m.group(3))
                assert "".join('%s="%s"%s' % p for p in pairs) == m.group(3), line
                labels = tuple((k, v) for k, v, _ in pairs)
            assert (name, labels) not in samples, "sample twice: " + line
            samples[(name, labels)] = float(m.group(4))
    for name, typ in types.items():
        if typ == "counter":
            assert name.endswith("_total"), name
    return types, samples


def metrics(port, token=None, source="127.0.0.1"):
    b = Browser(port, source=source)
    h = {"Authorization": "Bearer " + token} if token else {}
    return b.req("GET", "/metrics", headers=h)


def test_dashboard_counts_mail_and_answers_the_questions_across_a_restart():
    """dashboard: in/out/refused per hour, mailboxes, queue, certificate, errors, SVG; kept over a restart"""
    sink = Sink(rcpt_codes={"later@remote.test": "451 4.3.0 try later"})
    s = dashboard_server(sink.port)
    try:
        traffic(s, sink)
        b = Browser(s.web_port)
        assert b.login()[0] == 303
        html = b.page("/")
        assert page_numbers(html) == {"Received": 3, "Sent out": 1, "Refused": 3}, \
            page_numbers(html)
        svg = re.search(r"<svg [^>]*>.*?</svg>", html, re.S).group(0)
        assert "<script" not in html.lower()
        bars = re.findall(r'<rect x="\d+" y="\d+" width="\d+" height="(\d+)" fill="#[0-9a-f]{6}">'
                          r"<title>[-\d: ]+ UTC: (\d+) (received|sent out|refused)</title></rect>",
                          svg)
        assert sorted((k, int(n)) for _, n, k in bars) == [("received", 3), ("refused", 3),
                                                            ("sent out", 1)], bars
        heights = {k: int(h) for h, _, k in bars}
        assert heights["received"] == heights["refused"] > heights["sent out"] > 0, heights
        got = boxes(html)
        assert got["example.org"][1] == 2 and got["bob@example.org"][1] == 2, got
        assert got["alice@example.org"] == ("0 B", 0), got
        assert re.search(r"<td>Queue</td><td><a href=\"/queue\">1 message</a>, [\d.]+ [KMG]?B, "
                         r"oldest 0h 0m \d+s</td>", html), html
        assert re.search(r"<td>Disk free</td><td>[\d.]+ [KMG]?B of [\d.]+ [KMG]?B \(\d+%\)", html)
        assert re.search(r'<td>Certificate</td><td><span class="on">valid until \d{4}-\d\d-\d\d '
                         r"[\d:]+ UTC \(3\d{3} days\)", html), html  # the self-signed one: 10 years
        assert "dashboard: an error for the test" in html.split("<h2>Last errors</h2>")[1]
        st = s.cli("status").stdout
        assert "Server: running" in st and "Queue: 1 message," in st, st
        assert s.stop() == 0
        st = s.cli("status").stdout
        assert "Server: not running" in st, st
        assert "Messages in the last 48 hours: 3 in, 1 out, 3 refused" in st, st
        assert re.search(r"^  bob@example.org +[\d.]+ [KMG]?B +2 messages$", st, re.M), st
        assert re.search(r"^  example.org +[\d.]+ [KMG]?B +2 messages$", st, re.M), st
        assert re.search(r"^Disk: [\d.]+ [KMG]?B free of [\d.]+ [KMG]?B under ", st, re.M), st
        assert re.search(r"^Certificate: valid until \d{4}-\d\d-\d\d \(3\d{3} days\)$", st, re.M)
        errors = st.split("Last errors:")[1]
        assert "dashboard: an error for the test" in errors, st
        # a restart carries the counts on
        s.start()
        assert wait_port(s.web_port)
        b = Browser(s.web_port)
        assert b.login()[0] == 303
        assert page_numbers(b.page("/")) == {"Received": 3, "Sent out": 1, "Refused": 3}
        send(s, ["bob@example.org"], MSG)
        assert page_numbers(b.page("/"))["Received"] == 4
        assert s.stop() == 0
    finally:
        sink.stop()


def test_metrics_is_prometheus_text_behind_its_token():
    """dashboard: /metrics parses as Prometheus text; 401 without the token; wrong tokens lock the address out"""
    sink = Sink()
    s = dashboard_server(sink.port, "MetricsToken 0123456789abcdef0123456789abcdef\n"
                                    "LoginAttempts 3\n")
    try:
        send(s, ["bob@example.org"], MSG)
        send(s, ["carol@remote.test"], MSG)
        assert wait_for(lambda: len(sink.got) == 1), s.stderr()
        for token in (None, "wrong", "0123456789abcdef0123456789abcdeF"):
            st, h, _ = metrics(s.web_port, token)
            assert st == 401 and h["WWW-Authenticate"].startswith("Bearer"), (token, st)
        st, h, text = metrics(s.web_port, "0123456789abcdef0123456789abcdef")
        assert st == 200 and h["Content-Type"].startswith("text/plain; version=0.0.4"), st
        types, v = parse_prometheus(text)
        assert types["rumble_messages_total"] == "counter"
        for g in ("rumble_queue_messages", "rumble_queue_oldest_seconds", "rumble_disk_free_bytes",
                  "rumble_certificate_expiry_seconds", "rumble_mailbox_bytes",
                  "rumble_mailbox_messages"):
            assert types[g] == "gauge", g
        assert v[("rumble_messages_total", (("direction", "in"),))] == 2
        assert v[("rumble_messages_total", (("direction", "out"),))] == 1
        assert v[("rumble_messages_total", (("direction", "refused"),))] == 0
        assert v[("rumble_queue_messages", ())] == 0
        assert v[("rumble_mailbox_messages", (("domain", "example.org"),))] == 1
        assert v[("rumble_mailbox_bytes", (("domain", "example.org"),))] > len(MSG)
        assert v[("rumble_disk_free_bytes", ())] > 0
        assert 9 * 365 * 86400 < v[("rumble_certificate_expiry_seconds", ())] < 11 * 365 * 86400
        # two wrong tokens above, a third: the address is shut out, right token or not
        assert metrics(s.web_port, "guess")[0] == 401
        assert metrics(s.web_port, "0123456789abcdef0123456789abcdef")[0] == 401
        assert s.stop() == 0
    finally:
        sink.stop()


def test_metrics_is_off_by_default_and_metricsfrom_needs_no_token():
    """dashboard: /metrics is 404 unless configured; MetricsFrom addresses need no token"""
    port = free_port()
    s = Server(conf="EnableWebAdmin 1\nWebAdminPort %d\n" % port)
    s.start()
    assert wait_port(port)
    assert metrics(port)[0] == 404
    assert s.stop() == 0
    s = Server(conf="EnableWebAdmin 1\nWebAdminPort %d\nWebAdminBind 127.0.0.1\n"
                    "MetricsFrom 127.0.0.1\n" % port)
    s.start()
    assert wait_port(port)
    st, _, text = metrics(port)
    assert st == 200 and parse_prometheus(text)[1][("rumble_queue_messages", ())] == 0
    assert metrics(port, source="127.0.0.2")[0] == 401
    assert s.stop() == 0
