"""imapgrammar.py - a strict checker of IMAP server responses against the
formal syntax of RFC 3501 section 9 (with what RFC 9051 and the extensions
Rumble speaks add: UIDPLUS, BINARY, ENABLE, ID, NAMESPACE, METADATA, ESEARCH).

    frame(f)             one whole response (literals included) from a
                         buffered binary file (socket.makefile("rb"))
    check(resp)          parses one response (bytes ending in CRLF), raises
                         GrammarError saying where and what was expected;
                         returns (kind, name): ("tagged", "OK"),
                         ("untagged", "FETCH"), ("continue", "+")
    check(resp, rev2=True)  the same for a session that did ENABLE
                         IMAP4rev2 (RFC 9051): quoted strings may be UTF-8;
                         no RECENT or SEARCH response, no \Recent flag, no
                         UNSEEN response code (all gone from its grammar)

Stricter than clients are, on purpose: resp-text must have text after a
response code (RFC 3501 "text = 1*TEXT-CHAR"), quoted strings and text are
7-bit, a literal holds no NUL, numbers fit 32 bits, nz-numbers are not 0,
FETCH data items follow their grammar down to BODYSTRUCTURE's extension
data and ENVELOPE's addresses. Written from the RFCs' ABNF for Rumble's
tests; it knows nothing of Rumble."""
import re


class GrammarError(Exception):
    pass


ATOM_SPECIALS = set(b'(){ %*"\\]')
MONTHS = {b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
          b"Nov", b"Dec"}


def frame(f):
    """One response from f (a buffered binary file, as socket.makefile
    gives): lines up to a CRLF that does not end in a literal's "{n}" or
    "~{n}", each literal's n bytes with them."""
    out = b""
    while True:
        line = f.readline(1 << 20)
        if not line.endswith(b"\r\n"):
            raise GrammarError("a line ending in CRLF, got %r" % line[-200:])
        out += line
        m = re.search(rb"~?\{(\d+)\}\r\n$", line)
        if not m:
            return out
        data = f.read(int(m.group(1)))
        if len(data) != int(m.group(1)):
            raise EOFError("connection closed in a literal")
        out += data


class Parser:
    """A cursor over one response; each method consumes one grammar rule
    or raises GrammarError."""

    def __init__(self, data, rev2=False):
        self.d = data
        self.i = 0
        self.rev2 = rev2

    # ---- the cursor ----

    def fail(self, what):
        near = self.d[max(0, self.i - 40):self.i] + b"<HERE>" + self.d[self.i:self.i + 40]
        raise GrammarError("expected %s at byte %d: %r" % (what, self.i, near))

    def peek(self, s):
        return self.d.startswith(s, self.i)

    def peek_ci(self, s):
        return self.d[self.i:self.i + len(s)].upper() == s.upper()

    def lit(self, s, what=None):
        """The exact bytes s (case-insensitive, as RFC 3501 9 says of
        the grammar's strings)."""
        if not self.peek_ci(s):
            self.fail(what or repr(s))
        self.i += len(s)

    def sp(self):
        self.lit(b" ", "SP")

    def crlf(self):
        self.lit(b"\r\n", "CRLF")
        if self.i != len(self.d):
            self.fail("the end of the response")

    def take_while(self, ok):
        j = self.i
        while j < len(self.d) and ok(self.d[j]):
            j += 1
        out, self.i = self.d[self.i:j], j
        return out

    # ---- lexical rules ----

    def atom(self, what="atom"):
        a = self.take_while(lambda c: 0x20 < c < 0x7f and c not in ATOM_SPECIALS)
        if not a:
            self.fail(what)
        return a

    def astring(self):
        if self.peek(b'"') or self.peek(b"{"):
            return self.string()
        a = self.take_while(lambda c: 0x20 < c < 0x7f and (c not in ATOM_SPECIALS or c == ord("]")))
        if not a:
            self.fail("astring")
        return a

    def number(self, nz=False):
        n = self.take_while(lambda c: 0x30 <= c <= 0x39)
        if not n:
            self.fail("number")
        if int(n) > 0xFFFFFFFF:
            self.fail("a 32-bit number, not %s" % n.decode())
        if nz and (n[0] == 0x30):
            self.fail("nz-number, not %s" % n.decode())
        return int(n)

    def nz(self):
        return self.number(nz=True)

    def modseq(self):
        """mod-sequence-value (RFC 7162): 1 to 2^63-1."""
        n = self.take_while(lambda c: 0x30 <= c <= 0x39)
        if not n or n[0] == 0x30 or int(n) >= 1 << 63:
            self.fail("mod-sequence-value")
        return int(n)

    def quoted(self):
        self.lit(b'"')
        out = b""
        while True:
            if self.i >= len(self.d):
                self.fail('closing DQUOTE')
            c = self.d[self.i]
            if c == ord('"'):
                self.i += 1
                return out
            if c == ord("\\"):
                if self.i + 1 >= len(self.d) or self.d[self.i + 1] not in b'"\\':
                    self.fail('quoted-special after "\\"')
                out += self.d[self.i + 1:self.i + 2]
                self.i += 2
                continue
            if c in (0, 0x0D, 0x0A) or (c > 0x7F and not self.rev2):
                self.fail("QUOTED-CHAR (7-bit, no CR/LF/NUL), not byte 0x%02x" % c)
            if c > 0x7F:  # RFC 9051 9: UTF8-2 / UTF8-3 / UTF8-4
                n = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
                try:
                    self.d[self.i:self.i + n].decode("utf-8")
                except UnicodeDecodeError:
                    self.fail("UTF-8 in a quoted string")
                out += self.d[self.i:self.i + n]
                self.i += n
                continue
            out += bytes([c])
            self.i += 1

    def literal(self, binary=False):
        if binary:
            self.lit(b"~")
        self.lit(b"{")
        n = self.number()
        self.lit(b"}")
        self.lit(b"\r\n", "CRLF after a literal's size")
        data = self.d[self.i:self.i + n]
        if len(data) != n:
            self.fail("%d literal bytes" % n)
        if not binary and 0 in data:
            self.fail("CHAR8 (a NUL needs a literal8)")
        self.i += n
        return data

    def string(self):
        if self.peek(b'"'):
            return self.quoted()
        if self.peek(b"{"):
            return self.literal()
        self.fail("string")

    def nil(self):
        if self.peek_ci(b"NIL"):
            self.i += 3
            return True
        return False

    def nstring(self):
        return None if self.nil() else self.string()

    def text(self):
        """1*TEXT-CHAR up to the CRLF: 7-bit, and never empty."""
        t = self.take_while(lambda c: c not in (0x0D, 0x0A))
        if not t:
            self.fail("text (RFC 3501: at least one TEXT-CHAR)")
        bad = [c for c in t if c == 0 or c > 0x7F]
        if bad:
            self.fail("TEXT-CHAR (7-bit), not byte 0x%02x" % bad[0])
        return t

    def paren_list(self, item, empty_ok=True):
        """"(" [item *(SP item)] ")"."""
        self.lit(b"(")
        out = []
        if self.peek(b")"):
            if not empty_ok:
                self.fail("a list item")
        else:
            out.append(item())
            while self.peek(b" "):
                self.sp()
                out.append(item())
        self.lit(b")")
        return out

    # ---- flags ----

    def flag(self, extra=()):
        """flag / flag-fetch ("\\Recent") / flag-perm ("\\*")."""
        if self.peek(b"\\"):
            self.i += 1
            if b"\\*" in extra and self.peek(b"*"):
                self.i += 1
                return b"\\*"
            f = b"\\" + self.atom("flag-extension")
            if self.rev2 and f.lower() == b"\\recent":
                self.fail("no \\Recent in IMAP4rev2 (RFC 9051 E.12)")
            return f
        return self.atom("flag-keyword")

    def flag_list(self, extra=()):
        flags = self.paren_list(lambda: self.flag(extra))
        if len(set(f.lower() for f in flags)) != len(flags):
            self.fail("no flag twice: %r" % flags)
        return flags

    # ---- responses ----

    def response(self):
        if self.peek(b"+"):
            self.lit(b"+")
            self.sp()
            if not self.peek(b"\r\n"):  # else an empty base64 (a SASL challenge)
                self.resp_text()
            self.crlf()
            return ("continue", "+")
        if self.peek(b"* "):
            self.i += 2
            name = self.response_data()
            self.crlf()
            return ("untagged", name)
        self.take_while(lambda c: 0x20 < c < 0x7f and (c not in ATOM_SPECIALS or c == ord("]"))
                        and c != ord("+"))
        if self.i == 0:
            self.fail("tag")
        self.sp()
        kind = self.atom().upper()
        if kind not in (b"OK", b"NO", b"BAD"):
            self.i -= len(kind)
            self.fail("OK, NO or BAD")
        self.sp()
        self.resp_text()
        self.crlf()
        return ("tagged", kind.decode())

    def resp_text(self):
        if self.peek(b"["):
            self.i += 1
            self.resp_text_code()
            self.lit(b"]")
            self.lit(b" ", "SP and text after a response code")
        self.text()

    def resp_text_code(self):
        code = self.atom("resp-text-code").upper()
        simple = {b"ALERT", b"PARSE", b"READ-ONLY", b"READ-WRITE", b"TRYCREATE", b"UIDNOTSTICKY",
                  b"AUTHENTICATIONFAILED", b"AUTHORIZATIONFAILED", b"EXPIRED", b"PRIVACYREQUIRED",
                  b"CONTACTADMIN", b"NOPERM", b"INUSE", b"EXPUNGEISSUED", b"CORRUPTION",
                  b"SERVERBUG", b"CLIENTBUG", b"CANNOT", b"LIMIT", b"OVERQUOTA", b"ALREADYEXISTS",
                  b"NONEXISTENT", b"UNAVAILABLE", b"HASCHILDREN", b"CLOSED", b"UNKNOWN-CTE",
                  b"TOOBIG", b"NOMODSEQ"}
        if code in simple:
            return
        if code == b"UNSEEN" and self.rev2:
            self.fail("no UNSEEN response code in IMAP4rev2 (RFC 9051 E.11)")
        if code in (b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN"):
            self.sp()
            self.nz()
        elif code == b"HIGHESTMODSEQ":  # RFC 7162
            self.sp()
            self.modseq()
        elif code == b"MODIFIED":
            self.sp()
            self.uid_set()
        elif code == b"PERMANENTFLAGS":
            self.sp()
            self.flag_list(extra=(b"\\*",))
        elif code == b"CAPABILITY":
            self.capabilities()
        elif code == b"BADCHARSET":
            if self.peek(b" "):
                self.sp()
                self.paren_list(self.astring, empty_ok=False)
        elif code == b"APPENDUID":
            self.sp()
            self.nz()
            self.sp()
            self.uid_set()
        elif code == b"COPYUID":
            self.sp()
            self.nz()
            self.sp()
            a = self.uid_set()
            self.sp()
            b = self.uid_set()
            if a != b:
                self.fail("as many UIDs in both COPYUID sets (%d, %d)" % (a, b))
        elif code == b"METADATA":
            self.sp()
            sub = self.atom().upper()
            if sub in (b"LONGENTRIES", b"MAXSIZE"):
                self.sp()
                self.number()
            elif sub not in (b"TOOMANY", b"NOPRIVATE"):
                self.fail("a METADATA response code")
        elif self.peek(b" "):  # atom [SP 1*<any TEXT-CHAR except "]">]
            self.sp()
            if not self.take_while(lambda c: c not in (0x0D, 0x0A, ord("]")) and 0 < c < 0x80):
                self.fail("text of a response code")

    def uid_set(self):
        """uid-set; returns how many UIDs it names."""
        count = 0
        while True:
            a = self.nz()
            b = a
            if self.peek(b":"):
                self.i += 1
                b = self.nz()
            count += abs(b - a) + 1
            if not self.peek(b","):
                return count
            self.i += 1

    def capabilities(self):
        caps = []
        while self.peek(b" "):
            self.sp()
            caps.append(self.atom("capability").upper())
        if b"IMAP4REV1" not in caps and b"IMAP4REV2" not in caps:
            self.fail("IMAP4rev1 among the capabilities")

    def response_data(self):
        if self.peek(b"0") or self.d[self.i:self.i + 1].isdigit():
            n = self.number()
            self.sp()
            what = self.atom().upper()
            if what == b"RECENT" and self.rev2:
                self.fail("no RECENT response in IMAP4rev2 (RFC 9051 E.12)")
            if what in (b"EXISTS", b"RECENT"):
                return what.decode()
            if n == 0:
                self.fail("nz-number for %s" % what.decode())
            if what == b"EXPUNGE":
                return "EXPUNGE"
            if what == b"FETCH":
                self.sp()
                self.msg_att()
                return "FETCH"
            self.fail("EXISTS, RECENT, EXPUNGE or FETCH")
        name = self.atom("response name").upper()
        if name in (b"OK", b"NO", b"BAD", b"BYE", b"PREAUTH"):
            self.sp()
            self.resp_text()
        elif name == b"CAPABILITY":
            self.capabilities()
        elif name == b"FLAGS":
            self.sp()
            self.flag_list()
        elif name in (b"LIST", b"LSUB"):
            self.sp()
            self.mailbox_list()
        elif name == b"SEARCH" and self.rev2:
            self.i -= len(name)
            self.fail("ESEARCH, not SEARCH, in IMAP4rev2 (RFC 9051 6.4.4)")
        elif name == b"SEARCH":
            while self.peek(b" ") and not self.peek(b" ("):
                self.sp()
                self.nz()
            if self.peek(b" ("):  # RFC 7162: search-sort-mod-seq
                self.lit(b" (MODSEQ ")
                self.modseq()
                self.lit(b")")
        elif name == b"VANISHED":  # RFC 7162 3.2.10
            self.sp()
            if self.peek(b"("):
                self.lit(b"(EARLIER) ")
            self.uid_set()
        elif name == b"ESEARCH":
            self.esearch()
        elif name == b"STATUS":
            self.sp()
            self.astring()
            self.sp()
            self.paren_list(self.status_att)
        elif name == b"ENABLED":
            while self.peek(b" "):
                self.sp()
                self.atom("capability")
        elif name == b"ID":
            self.sp()
            self.id_params()
        elif name == b"NAMESPACE":
            for k in range(3):
                self.sp()
                self.namespace()
        elif name == b"METADATA":
            self.sp()
            self.astring()
            self.sp()
            self.metadata()
        else:
            self.i -= len(name)
            self.fail("a known untagged response")
        return name.decode()

    def mailbox_list(self):
        flags = self.paren_list(lambda: self.flag(), empty_ok=True)
        if any(not f.startswith(b"\\") for f in flags):
            self.fail("mbx-list-flags: each one \\atom")
        sflags = [f for f in flags if f.lower() in (b"\\noselect", b"\\marked", b"\\unmarked")]
        if len(sflags) > 1:
            self.fail("at most one of \\Noselect, \\Marked, \\Unmarked: %r" % flags)
        low = set(f.lower() for f in flags)
        if {b"\\haschildren", b"\\hasnochildren"} <= low:
            self.fail("not both \\HasChildren and \\HasNoChildren")
        self.sp()
        if not self.nil():
            sep = self.quoted()
            if len(sep) != 1:
                self.fail("a one-character hierarchy delimiter")
        self.sp()
        self.astring()

    def status_att(self):
        att = self.atom("status-att").upper()
        self.sp()
        if att in (b"UIDNEXT", b"UIDVALIDITY"):
            self.nz()
        elif att in (b"MESSAGES", b"RECENT", b"UNSEEN", b"DELETED", b"SIZE", b"HIGHESTMODSEQ"):
            self.take_while(lambda c: 0x30 <= c <= 0x39) or self.fail("number")
        else:
            self.fail("a status-att")

    def esearch(self):
        if self.peek(b" ("):
            self.sp()
            self.lit(b"(")
            self.lit(b"TAG ")
            self.string()
            self.lit(b")")
        if self.peek_ci(b" UID") and not self.peek_ci(b" UIDX"):
            self.i += 4
        while self.peek(b" "):
            self.sp()
            what = self.atom("search-return-data").upper()
            self.sp()
            if what in (b"MIN", b"MAX", b"COUNT"):
                self.number()
            elif what == b"MODSEQ":  # RFC 7162
                self.modseq()
            elif what == b"ALL":
                self.uid_set()
            else:
                self.fail("MIN, MAX, COUNT, MODSEQ or ALL")

    def id_params(self):
        if self.nil():
            return
        self.lit(b"(")
        first = True
        while not self.peek(b")"):
            if not first:
                self.sp()
            first = False
            self.string()
            self.sp()
            self.nstring()
        self.lit(b")")

    def namespace(self):
        if self.nil():
            return

        def descr():
            self.lit(b"(")
            self.string()
            self.sp()
            if not self.nil():
                if len(self.quoted()) != 1:
                    self.fail("a one-character delimiter")
            self.lit(b")")
        self.lit(b"(")
        descr()
        while not self.peek(b")"):
            descr()
        self.lit(b")")

    def metadata(self):
        if not self.peek(b"("):  # entry-list: names only (unsolicited)
            self.astring()
            while self.peek(b" "):
                self.sp()
                self.astring()
            return
        self.lit(b"(")
        while True:
            self.astring()
            self.sp()
            if self.peek(b"~"):
                self.literal(binary=True)
            else:
                self.nstring()
            if self.peek(b")"):
                break
            self.sp()
        self.lit(b")")

    # ---- FETCH ----

    def msg_att(self):
        self.lit(b"(")
        seen = set()
        while True:
            name = self.fetch_item()
            if name in seen:
                self.fail("each FETCH item once: %s twice" % name)
            seen.add(name)
            if self.peek(b")"):
                break
            self.sp()
        self.lit(b")")

    def fetch_item(self):
        start = self.i
        name = self.take_while(lambda c: c not in (0x20, ord("["), ord("(")) and 0x20 < c < 0x7f)
        up = name.upper()
        if up in (b"BODY", b"BINARY", b"BINARY.SIZE") and self.peek(b"["):
            self.section(binary=up != b"BODY")
            if up != b"BINARY.SIZE" and self.peek(b"<"):
                self.i += 1
                self.number()
                self.lit(b">")
            label = self.d[start:self.i].upper()  # BODY[1]<0> and BODY[1]<3> are two
            self.sp()
            if up == b"BINARY.SIZE":
                self.number()
            elif up == b"BINARY" and self.peek(b"~"):
                self.literal(binary=True)
            else:
                self.nstring()
            return label
        self.sp()
        if up == b"FLAGS":
            self.flag_list(extra=(b"\\recent",))
        elif up == b"UID":
            self.nz()
        elif up == b"RFC822.SIZE":
            self.number()
        elif up == b"INTERNALDATE":
            self.date_time()
        elif up == b"MODSEQ":  # RFC 7162: "(" mod-sequence-value ")"
            self.lit(b"(")
            self.modseq()
            self.lit(b")")
        elif up == b"SAVEDATE":  # RFC 8514
            if not self.nil():
                self.date_time()
        elif up in (b"RFC822", b"RFC822.HEADER", b"RFC822.TEXT"):
            self.nstring()
        elif up == b"ENVELOPE":
            self.envelope()
        elif up == b"BODY":
            self.body(ext=False)
        elif up == b"BODYSTRUCTURE":
            self.body(ext=True)
        else:
            self.i = start
            self.fail("a FETCH data item")
        return up

    def section(self, binary):
        self.lit(b"[")
        if binary:  # section-binary: [section-part]
            if not self.peek(b"]"):
                self.section_part()
            self.lit(b"]")
            return
        if self.peek(b"]"):
            self.i += 1
            return
        if self.d[self.i:self.i + 1].isdigit():
            self.section_part()
            if self.peek(b"."):
                self.i += 1
                if self.peek_ci(b"MIME"):
                    self.i += 4
                else:
                    self.section_msgtext()
        else:
            self.section_msgtext()
        self.lit(b"]")

    def section_part(self):
        self.nz()
        while self.peek(b".") and self.d[self.i + 1:self.i + 2].isdigit():
            self.i += 1
            self.nz()

    def section_msgtext(self):
        if self.peek_ci(b"HEADER.FIELDS"):
            self.i += len(b"HEADER.FIELDS")
            if self.peek_ci(b".NOT"):
                self.i += 4
            self.sp()
            self.paren_list(self.astring, empty_ok=False)
        elif self.peek_ci(b"HEADER"):
            self.i += 6
        elif self.peek_ci(b"TEXT"):
            self.i += 4
        else:
            self.fail("HEADER, HEADER.FIELDS, TEXT or MIME")

    def date_time(self):
        self.lit(b'"')
        day = self.d[self.i:self.i + 2]
        if not re.match(rb"^( \d|\d\d)$", day):
            self.fail("date-day-fixed")
        self.i += 2
        self.lit(b"-")
        if self.d[self.i:self.i + 3] not in MONTHS:
            self.fail("date-month")
        self.i += 3
        self.lit(b"-")
        rest = self.d[self.i:self.i + 20]
        if not re.match(rb'^\d{4} \d\d:\d\d:\d\d [+-]\d{4}"', rest):
            self.fail("date-year SP time SP zone")
        self.i += 20

    def envelope(self):
        self.lit(b"(")
        self.nstring()  # date
        self.sp()
        self.nstring()  # subject
        for _ in range(6):  # from sender reply-to to cc bcc
            self.sp()
            self.addresses()
        self.sp()
        self.nstring()  # in-reply-to
        self.sp()
        self.nstring()  # message-id
        self.lit(b")")

    def addresses(self):
        """"(" 1*address ")" / nil: no SP between addresses (RFC 3501 9);
        groups open with a NIL host and close with all four NIL."""
        if self.nil():
            return
        self.lit(b"(")
        depth = 0
        while True:
            self.lit(b"(")
            name = self.nstring()
            self.sp()
            adl = self.nstring()
            self.sp()
            mailbox = self.nstring()
            self.sp()
            host = self.nstring()
            self.lit(b")")
            if host is None and mailbox is not None:
                depth += 1
            elif host is None and mailbox is None:
                if name is not None or adl is not None or depth == 0:
                    self.fail("a group's end (NIL NIL NIL NIL) after its start")
                depth -= 1
            elif mailbox is None:
                self.fail("an address with a mailbox")
            if self.peek(b")"):
                break
        self.lit(b")")
        if depth:
            self.fail("an end to every group")

    def body(self, ext):
        self.lit(b"(")
        if self.peek(b"("):
            self.body_mpart(ext)
        else:
            self.body_1part(ext)
        self.lit(b")")

    def body_mpart(self, ext):
        while self.peek(b"("):
            self.body(ext)
        self.sp()
        self.string()  # media-subtype
        if ext and self.peek(b" "):
            self.sp()
            self.body_fld_param()
            self.body_ext_tail()

    def body_1part(self, ext):
        mtype = self.string().upper()
        self.sp()
        subtype = self.string().upper()
        self.sp()
        self.body_fld_param()  # body-fields
        self.sp()
        self.nstring()  # id
        self.sp()
        self.nstring()  # description
        self.sp()
        self.string()  # encoding
        self.sp()
        self.number()  # octets
        if mtype == b"MESSAGE" and subtype in (b"RFC822", b"GLOBAL"):
            self.sp()
            self.envelope()
            self.sp()
            self.body(ext)
            self.sp()
            self.number()
        elif mtype == b"TEXT":
            self.sp()
            self.number()
        if ext and self.peek(b" "):
            self.sp()
            self.nstring()  # md5
            self.body_ext_tail()

    def body_ext_tail(self):
        """[SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc *(SP body-extension)]]]"""
        if not self.peek(b" "):
            return
        self.sp()
        if not self.nil():
            self.lit(b"(")
            self.string()
            self.sp()
            self.body_fld_param()
            self.lit(b")")
        if not self.peek(b" "):
            return
        self.sp()
        if not self.nil():
            if self.peek(b"("):
                self.paren_list(self.string, empty_ok=False)
            else:
                self.string()
        if not self.peek(b" "):
            return
        self.sp()
        self.nstring()
        while self.peek(b" "):
            self.sp()
            self.body_extension()

    def body_extension(self):
        if self.peek(b"("):
            self.paren_list(self.body_extension, empty_ok=False)
        elif self.d[self.i:self.i + 1].isdigit():
            self.number()
        else:
            self.nstring()

    def body_fld_param(self):
        if self.nil():
            return
        items = self.paren_list(self.string, empty_ok=False)
        if len(items) % 2:
            self.fail("attribute and value pairs")


def check(resp, rev2=False):
    """Parses one response (see frame); GrammarError when it is not one.
    rev2: as a session that did ENABLE IMAP4rev2 gets them."""
    return Parser(resp, rev2).response()


def check_greeting(resp):
    """greeting = "*" SP (resp-cond-auth / resp-cond-bye) CRLF."""
    kind, name = check(resp)
    if kind != "untagged" or name not in ("OK", "PREAUTH", "BYE"):
        raise GrammarError("a greeting is * OK, * PREAUTH or * BYE: %r" % resp)
    return kind, name
