"""luagen.py - random Lua scripts over Rumble's whole script API, for the
fuzz driver (luafuzz.py).

Gen(seed, ports).script() gives the text of one fuzz script (hooks on smtp,
pop3 and imap4, a mailman feed hook, createService services, Dovecot's
mail_user_* globals, top-level code) and of one VPOP3 SMTPScript. The same
seed and ports give the same text. Bodies are random statements: calls of
every API function with random argument types and counts, session handle
methods and fields, nesting in pcall/xpcall, string.gsub callbacks,
table.sort comparators, metamethods, iterators and coroutines; and, at
some rate, the harmful cases of issue 10 (os.exit, collectgarbage, huge
string.rep, deep recursion, endless loops, memory bombs, the debug
library, __gc, stale handles, bytecode, flooding a client).

Each harmful case belongs to a class (CLASSES); Gen(skip=...) leaves the
named classes out, so that a known problem does not hide unknown ones.
"""
import random

# The classes of harmful statements; Gen.used says which a script has.
CLASSES = (
    "exit",      # os.exit in every form
    "gcstop",    # collectgarbage("stop") and GC settings that starve the state
    "rep",       # string.rep with a huge count, of "" too
    "debug",     # debug.sethook/getregistry/setmetatable/setupvalue/...
    "gc",        # newproxy(true) with a __gc doing things
    "bytecode",  # loadstring(string.dump(f)), also mangled
    "waitcb",    # a waiting call (DNS, sendMail, smtp.send, receive) in pcall or a C callback
    "flood",     # session:send in a loop: output the Lua memory cap does not see
    "recurse",   # deep recursion, Lua and C (metamethods, gsub, coroutines, patterns)
    "loop",      # endless loops, in Lua code and in callbacks
    "catchloop", # endless loops that catch the budget's error (pcall in a loop)
    "handlerloop",  # an xpcall message handler that loops (it runs when the budget's error is raised)
    "bomb",      # memory bombs (tables, strings, coroutines) the state frees again
    "fullstate", # memory bombs kept in a global: the state stays full for the next hooks
    "stale",     # a session handle or mail_user kept past its session
    "corotrick", # resuming a hook's or service's coroutine from elsewhere
    "meta",      # setmetatable/getmetatable on API objects, clobbered globals
    "gmeta",     # a metatable on _G whose __index raises or loops (the server looks up globals)
    "pattern",   # string patterns with deep recursion or backtracking in C
    "clib",      # loops inside the C library (table.insert/remove with far positions)
    "endless",   # line reads from an endless device (/dev/zero): a loop in liolib's read_line
    "selfsend",  # smtp.send to Rumble itself where it runs in place (top level, callbacks, ...)
    "slowop",    # loops of costly single operations (4 MB strings): few instructions, much time
    "helperhog", # smtp.send to a server that never answers where it runs in place (top level,
                 # SMTPScript, Dovecot and feed hooks): its thread held for smtp.TIMEOUT
)

# The calls that wait (run as a job, or for client input).
WAITING = ("network.getHostByName", "network.getMX", "Mailman.sendMail", "smtp.send",
           "receive", "receivebytes")

NAMES = ["", "x", "smtp", "pop3", "imap4", "mailman", "lua", "example.org", "alice",
         "alice@example.org", "robot@example.org", "fuzz.test", "bob", "a@b", "<>",
         "INBOX", "Sent", "/private/k", "/shared/k", "/private/", "%u %d %{user} %h %%",
         "ServerName", "SMTPPort", "LuaMemoryLimit", "nosuch", "*", "*@fuzz.test",
         "mailbox", "alias", "feed", "relay", "module", "mod", "mbox", "\r\n", "250 ok\r\n",
         "-ERR no\r\n", "+OK\r\n", "220 hi\r\n", "..", "../x", "/", "%", "%s%s%s", "%d",
         "*t", "!*t", "%c", "base64", "quoted-printable", "text", "default", "binary"]
PATTERNS = ["", ".", "x", "%w+", "(%w)(%w*)", "%s*", "()", "(.-)", "%b()", "%f[%w]", "[^%s]+",
            "(", "%", "[", "[a-", "(()", "%1", "(.)%1", ".-$", "^.*$", "(%d+)", "%z", "%Z+"]
CMDS = ["helo", "ehlo", "mail", "rcpt", "data", "noop", "quit", "rset", "vrfy", "help",
        "user", "pass", "stat", "list", "retr", "uidl", "top", "dele", "login", "select",
        "logout", "capability", "*", "", "HELO", "nosuch"]
WHENS = ["accept", "command", "close", "feed", "later", ""]
SERVICES = ["smtp", "pop3", "imap4", "mailman", "lua", "nosuch", "", "SMTP"]
# Paths a script may remove, rename or write: relative ones only (the
# server runs in its own folder), never a system file: the fuzz server may
# run as root (it drops to nobody when it can, see luafuzz.py).
SAFE_PATHS = ["scratch.txt", "scratch2.txt", "nosuch/x", ""]
# Paths a script may open with any mode.
OPEN_PATHS = SAFE_PATHS + ["/dev/null", "/dev/zero"]
# Paths a script may read lines from (not /dev/zero: class "endless").
READ_PATHS = SAFE_PATHS + ["/dev/null", "/etc/hostname", "/proc/self/status", "data", "."]
MODES = ["r", "w", "a", "r+", "w+", "rb", "wb", "x", "", "rw", "a+b"]
IO_FORMATS = ['"*l"', '"*a"', '"*n"', "0", "1", "100", "1e9", '"*x"', "-1"]
HOOKS = [("smtp", "accept", None), ("smtp", "close", None), ("smtp", "command", "helo"),
         ("smtp", "command", "ehlo"), ("smtp", "command", "mail"), ("smtp", "command", "rcpt"),
         ("smtp", "command", "data"), ("smtp", "command", "noop"), ("smtp", "command", "quit"),
         ("smtp", "command", "*"), ("smtp", "command", "vrfy"), ("smtp", "command", "rset"),
         ("pop3", "accept", None), ("pop3", "close", None), ("pop3", "command", "user"),
         ("pop3", "command", "pass"), ("pop3", "command", "stat"), ("pop3", "command", "*"),
         ("pop3", "command", "quit"), ("imap4", "accept", None), ("imap4", "command", "*"),
         ("imap4", "close", None), ("imap4", "command", "login")]
VP3_FUNCS = [("Start", ""), ("DoHELO", "name, ehlo"), ("GetEHLOCapabilities", "caps"),
             ("GetMaxMessageSize", "who"), ("DoMAILFROM", "data, params, spf"),
             ("DoRCPTTO", "data, params"), ("DoDATAStart", ""), ("StartMessage", ""),
             ("MessageLine", "line"), ("MessageLineRaw", "line"), ("EndMessage", ""),
             ("CheckRecipients", "to, cc, bcc, localsent"), ("ProcessMessage", "msg, actions"),
             ("DoVRFY", "addr, list"), ("DoEXPN", "addr, list"), ("DoHELP", "text"),
             ("DoUnrecognised", "line"), ("DoRSET", ""), ("DoQUIT", ""), ("End", "")]


def lua_str(b):
    """A Lua string literal for bytes (or str) b."""
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogateescape")
    out = ['"']
    for c in b:
        ch = chr(c)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= c < 127:
            out.append(ch)
        else:
            out.append("\\%03d" % c)
    out.append('"')
    return "".join(out)


class Ctx:
    """Where a statement goes: the names in scope and how deep it is."""

    def __init__(self, kind, sess=None, user=None, depth=0, prot=0, cb=0, co=0, loop=0,
                 handler=0):
        self.kind, self.sess, self.user = kind, sess, user
        self.depth, self.prot, self.cb, self.co, self.loop = depth, prot, cb, co, loop
        self.handler = handler  # inside an xpcall message handler

    def sub(self, **kw):
        c = Ctx(self.kind, self.sess, self.user, self.depth + 1, self.prot, self.cb, self.co,
                self.loop, self.handler)
        for k, v in kw.items():
            setattr(c, k, getattr(c, k) + v if k in ("prot", "cb", "co", "loop", "handler") else v)
        return c

    def direct(self):
        """A waiting call here is one the issue allows: in the hook or
        service function itself, not under pcall or a C callback."""
        return self.prot == 0 and self.cb == 0 and self.co == 0


class Gen:
    MAX_DEPTH = 3

    def __init__(self, seed, ports, skip=()):
        self.r = random.Random(seed)
        self.seed = seed
        self.ports = ports  # smtp, pop3, imap, closed, svc: [p1, p2]
        self.skip = frozenset(skip)
        self.used = set()
        self.nvar = 0
        self.harm_rate = 0.08

    # ---- helpers ----

    def ok(self, cls):
        return cls not in self.skip

    def use(self, cls):
        self.used.add(cls)

    def chance(self, p):
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(seq)

    def var(self):
        self.nvar += 1
        return "v%d" % self.nvar

    # ---- values ----

    def num(self):
        return self.pick(["0", "1", "-1", "2", "3", "7", "10", "100", "0.5", "-0.5", "1e12",
                          "-1e12", "2^31", "2^31-1", "-2^31", "2^32", "2^53", "2^63", "-2^63",
                          "1e308", "-1e308", "(1/0)", "(-1/0)", "(0/0)", "math.huge", "65535",
                          "65536", "1e9", "4294967295", "255", "256", "1e-300", "-0",
                          str(self.r.randint(-5, 300))])

    def small_int(self):
        return self.pick(["0", "1", "2", "3", "5", "-1", "10", str(self.r.randint(0, 50))])

    def string(self):
        k = self.r.random()
        if k < 0.45:
            return lua_str(self.pick(NAMES))
        if k < 0.6:
            return lua_str(self.pick(PATTERNS))
        if k < 0.75:
            n = self.r.randint(0, 24)
            return lua_str(bytes(self.r.randint(0, 255) for _ in range(n)))
        if k < 0.82:
            return "string.rep(%s, %d)" % (lua_str(self.pick(["x", "ab", "\r\n", "\0", "%"])),
                                          self.pick([100, 1000, 8191, 8192, 65536, 200000]))
        if k < 0.9:
            return lua_str("%s %d" % (self.pick(["HELO", "MAIL FROM:", "Subject:", "a1 NOOP"]),
                                      self.r.randint(0, 99)))
        return lua_str("".join(self.pick("abc%().[]*+-?^$ \r\n") for _ in range(self.r.randint(1, 12))))

    def table(self, ctx):
        k = self.r.random()
        if k < 0.2:
            return "{}"
        if k < 0.4:
            return "{%s}" % ", ".join(self.value(ctx) for _ in range(self.r.randint(1, 4)))
        if k < 0.55:
            return self.account()
        if k < 0.7:
            return self.mailt(ctx)
        if k < 0.8:
            return self.mesgt(ctx)
        if k < 0.9:
            return "setmetatable({}, %s)" % self.metatable(ctx)
        return "{%s}" % ", ".join("[%s] = %s" % (self.value(ctx), self.value(ctx))
                                  for _ in range(self.r.randint(1, 3)))

    def func(self, ctx, params="...", cb=0, ret=True, n=None, handler=0):
        c = ctx.sub(cb=cb, handler=handler)
        body = self.block(c, n if n is not None else self.r.randint(0, 3))
        tail = " return %s" % self.value(c) if ret and self.chance(0.8) else ""
        return "function(%s) %s%s end" % (params, body, tail)

    def handle(self, ctx):
        """A userdata or object of the API."""
        opts = ["newproxy(false)", "io.stdout", "dovecot.event()", "T.s", "G_s", "T.u", "G_b",
                "coroutine.running()", "T.co", "T.e"]
        if ctx.sess:
            opts += [ctx.sess] * 4
        if ctx.user:
            opts += [ctx.user, ctx.user + ".item"]
        return self.pick(opts)

    def value(self, ctx, d=0):
        k = self.r.random()
        if d > 1 or ctx.depth > self.MAX_DEPTH:
            k = k * 0.6  # no functions or tables too deep
        if k < 0.06:
            return "nil"
        if k < 0.1:
            return self.pick(["true", "false"])
        if k < 0.25:
            return self.num()
        if k < 0.5:
            return self.string()
        if k < 0.6:
            return self.handle(ctx)
        if k < 0.66:
            return self.pick(["G1", "G2", "T.x", "T[1]", "_G", "Rumble", "Mailman", "string",
                              "cmd" if ctx.kind == "hook" else "G3"])
        if k < 0.8:
            return self.table(ctx)
        if k < 0.9:
            return "(%s)" % self.func(ctx)
        if k < 0.95:
            return "coroutine.create(%s)" % self.func(ctx)
        return "(%s)" % self.call_expr(ctx)

    # ---- structured arguments ----

    def account(self):
        L = lua_str
        fields = (("name", lambda: L(self.pick(["fz", "fz2", "alice", "robot", "", "a b", "*",
                                                 "x" * 70]))),
                  ("domain", lambda: L(self.pick(["fuzz.test", "fuzz2.test", "example.org",
                                                   "nosuch.test", "", "../x"]))),
                  ("type", lambda: L(self.pick(["mailbox", "alias", "mod", "module", "relay",
                                                 "mbox", "feed", "x", ""]))),
                  ("password", lambda: self.pick(['"secret"', '("secret"):SHA256()', '""',
                                                  "string.rep('a', 300)"])),
                  ("arguments", lambda: L(self.pick(["alice@example.org", "true", "cat >/dev/null",
                                                      "", "127.0.0.1:%d" % self.ports["closed"]]))),
                  ("id", lambda: self.num()))
        f = ["%s = %s" % (k, gen()) for k, gen in fields if self.chance(0.7)]
        return "{%s}" % ", ".join(f)

    def addr(self):
        return lua_str(self.pick(["alice@example.org", "robot@example.org", "x@fuzz.test",
                                  "nobody@example.org", "", "<>", "a b@c", "x@nosuch.test",
                                  "<alice@example.org>", "a\r\nRCPT TO:<b@c>", "@", "x" * 300]))

    def msg(self):
        return self.pick([lua_str("Subject: fuzz\r\n\r\nbody\r\n"), lua_str(""),
                          lua_str("no header"), "string.rep('x', 100000)",
                          lua_str("From: a@b\nSubject: lf\n\n.\n..\nend\n")])

    def source(self, ctx):
        return self.pick(["ltn12.source.string(%s)" % self.string(),
                          "ltn12.source.empty()",
                          "ltn12.source.error(%s)" % self.string(),
                          "smtp.message(%s)" % self.mesgt(ctx),
                          "(%s)" % self.func(ctx, "", ret=True),
                          "ltn12.source.chain(ltn12.source.string(%s), mime.encode(%s))" % (
                              self.string(), lua_str(self.pick(["base64", "quoted-printable"]))),
                          "ltn12.source.cat(ltn12.source.string('a'), ltn12.source.string('b'))"])

    def mailt(self, ctx):
        f = ["from = %s" % self.addr(), "rcpt = %s" % self.pick(
            [self.addr(), "{%s, %s}" % (self.addr(), self.addr()), "{}"])]
        f.append("source = %s" % self.source(ctx))
        # Where smtp.send cannot wait it runs in place, holding its thread:
        # sending to Rumble itself from there is class "selfsend".
        inplace = ctx is None or ctx.kind in ("top", "feed", "user", "vp3") or not ctx.direct()
        if inplace and not self.ok("selfsend"):
            f.append("server = '127.0.0.1', port = %d" % self.ports["closed"])
        else:
            if inplace:
                self.use("selfsend")
            if self.chance(0.5):
                f.append("server = %s" % lua_str(self.pick(["127.0.0.1", "localhost", "nosuch.test",
                                                           "mail.fuzz.test", "", "::1"])))
            if self.chance(0.5):
                port = self.pick([str(self.ports["smtp"]), str(self.ports["closed"]), "silent",
                                  "0", "-1", "70000", '"x"'])
                if port == "silent":  # a server that never answers
                    if inplace and not self.ok("helperhog"):
                        port = str(self.ports["closed"])
                    else:
                        port = str(self.ports.get("silent", 9))
                        if inplace:
                            self.use("helperhog")
                f.append("port = %s" % port)
        if self.chance(0.2):
            f.append("user = %s, password = %s" % (lua_str("alice@example.org"),
                                                   lua_str(self.pick(["secret", "bad"]))))
        if self.chance(0.15):
            f.append("step = %s" % self.pick(["ltn12.pump.step", "(%s)" % self.func(ctx, "src, snk")]))
        if self.chance(0.05):
            f.append("create = function() end")
        self.r.shuffle(f)
        return "{%s}" % ", ".join(f)

    def mesgt(self, ctx, d=0):
        h = "headers = {subject = %s, [%s] = %s}" % (self.string(), self.string(), self.string())
        k = self.r.random()
        if k < 0.4 or d > 1:
            body = self.string()
        elif k < 0.6:
            body = self.source(ctx) if d == 0 else self.string()
        else:
            body = "{%s}" % ", ".join(self.mesgt(ctx, d + 1) for _ in range(self.r.randint(0, 2)))
        return "{%s, body = %s%s}" % (h, body, ", preamble = 'p', epilogue = 'e'"
                                      if self.chance(0.3) else "")

    def metatable(self, ctx):
        keys = ["__index", "__newindex", "__call", "__tostring", "__eq", "__lt", "__le",
                "__concat", "__add", "__unm", "__len", "__gc", "__mode", "__metatable"]
        f = []
        for key in self.r.sample(keys, self.r.randint(1, 5)):
            if key == "__mode":
                f.append('__mode = %s' % lua_str(self.pick(["k", "v", "kv"])))
            elif key == "__metatable":
                f.append("__metatable = %s" % self.value(ctx, 2))
            elif key == "__index" and self.chance(0.3):
                f.append("__index = %s" % self.pick(["_G", "string", "Rumble", "{}"]))
            else:
                f.append("%s = %s" % (key, self.func(ctx, "a, b", cb=1, n=self.r.randint(0, 2))))
        return "{%s}" % ", ".join(f)

    # ---- API calls ----

    def args(self, ctx, kinds):
        """Arguments of the kinds named, or random ones at some rate."""
        out = []
        for kind in kinds:
            if self.chance(0.12) and kind not in ("wpath", "opath"):  # never a random path
                out.append(self.value(ctx, 1))
            else:
                out.append(self.arg(ctx, kind))
        if out and self.chance(0.1):
            out = out[:self.r.randint(0, len(out) - 1)]
        if self.chance(0.08):
            out += [self.value(ctx, 1) for _ in range(self.r.randint(1, 3))]
        return ", ".join(out)

    def arg(self, ctx, kind):
        if kind == "s":
            return self.string()
        if kind == "n":
            return self.num()
        if kind == "i":
            return self.small_int()
        if kind == "a":
            return self.value(ctx, 1)
        if kind == "t":
            return self.table(ctx)
        if kind == "f":
            return "(%s)" % self.func(ctx, "...", cb=1)
        if kind == "svc":
            return lua_str(self.pick(SERVICES + ["lua:%d" % p for p in self.ports["svc"]]))
        if kind == "when":
            return lua_str(self.pick(WHENS))
        if kind == "cmd":
            return lua_str(self.pick(CMDS))
        if kind == "port":
            return self.pick([str(p) for p in self.ports["svc"]] * 3 + ["0", "-1", "70000",
                                                                         "(0/0)", '"x"', "2^53"])
        if kind == "dom":
            return lua_str(self.pick(["fuzz.test", "fuzz2.test", "example.org", "nosuch.test",
                                      "", "a/b", "..", "x" * 300, "FUZZ.TEST"]))
        if kind == "user":
            return lua_str(self.pick(["fz", "alice", "robot", "nobody", "", "*", "a/b"]))
        if kind == "uid":
            return self.pick(["1", "2", "3", "0", "-1", "2^32", "(0/0)", "1.5", '"1"',
                              "(Mailman.readAccount('example.org', 'alice') or {}).id"])
        if kind == "folder":
            return self.pick(['"INBOX"', '"Sent"', "0", "1", "nil", '"../x"', '"a\\0b"'])
        if kind == "addr":
            return self.addr()
        if kind == "rcpts":
            return self.pick([self.addr(), "{%s}" % self.addr(), "{%s, %s}" % (self.addr(),
                                                                               self.addr()), "{}"])
        if kind == "msg":
            return self.msg()
        if kind == "key":
            return lua_str(self.pick(["ServerName", "SMTPPort", "servername", "NoSuchKey", "",
                                      "LoadScript", "StorageFolder", "a b"]))
        if kind == "host":
            return lua_str(self.pick(["localhost", "mail.fuzz.test", "fuzz.test", "nosuch.test",
                                      "127.0.0.1", "", "x" * 300, "a..b", "slow.fuzz.test"]))
        if kind == "acct":
            return self.account()
        if kind == "mailt":
            return self.mailt(ctx)
        if kind == "mesgt":
            return self.mesgt(ctx)
        if kind == "pat":
            return lua_str(self.pick(PATTERNS))
        if kind == "path":
            return lua_str(self.pick(READ_PATHS))
        if kind == "wpath":
            return lua_str(self.pick(SAFE_PATHS))
        if kind == "opath":
            return lua_str(self.pick(OPEN_PATHS))
        if kind == "mode":
            return lua_str(self.pick(MODES))
        if kind == "mdkey":
            return lua_str(self.pick(["/private/k", "/shared/k", "/private/", "k", "",
                                      "/private/" + "x" * 300]))
        if kind == "gcopt":
            return lua_str(self.pick(["collect", "count", "step", "setpause", "setstepmul",
                                      "restart", "bogus", ""]))
        if kind == "src":
            return self.source(ctx)
        if kind == "filter":
            return self.pick(["mime.encode('base64')", "mime.decode('base64')",
                              "mime.encode('quoted-printable')", "mime.wrap()", "mime.normalize()",
                              "mime.stuff()", "(%s)" % self.func(ctx, "chunk", cb=0)])
        if kind == "sink":
            return self.pick(["ltn12.sink.table(T)", "ltn12.sink.null()", "ltn12.sink.error('e')",
                              "(%s)" % self.func(ctx, "chunk, err", cb=0)])
        raise ValueError(kind)

    # name, argument kinds, waiting
    API = [
        ("Rumble.createService", ["f", "port", "i"], False),
        ("Rumble.setHook", ["f", "svc", "when", "cmd"], False),
        ("Rumble.startService", ["svc"], False),
        ("Rumble.stopService", ["svc"], False),
        ("Rumble.suspendService", ["svc"], False),
        ("Rumble.resumeService", ["svc"], False),
        ("Rumble.serviceInfo", ["svc"], False),
        ("Rumble.trafficInfo", ["svc"], False),
        ("Rumble.serverInfo", [], False),
        ("Rumble.readConfig", ["key"], False),
        ("Rumble.getLog", [], False),
        ("Rumble.reloadConfiguration", [], False),
        ("Rumble.listModules", [], False),
        ("Rumble.getmoduleconfig", ["svc"], False),
        ("Rumble.setmoduleconfig", ["svc", "key", "s"], False),
        ("Mailman.accountExists", ["dom", "user"], False),
        ("Mailman.addressExists", ["dom", "user"], False),
        ("Mailman.createDomain", ["dom"], False),
        ("Mailman.updateDomain", ["dom", "dom"], False),
        ("Mailman.deleteDomain", ["dom"], False),
        ("Mailman.listDomains", [], False),
        ("Mailman.listAccounts", ["dom"], False),
        ("Mailman.readAccount", ["dom", "user"], False),
        ("Mailman.readAccount", ["uid"], False),
        ("Mailman.saveAccount", ["acct"], False),
        ("Mailman.deleteAccount", ["dom", "user"], False),
        ("Mailman.deleteAccount", ["uid"], False),
        ("Mailman.listFolders", ["uid"], False),
        ("Mailman.listHeaders", ["uid", "folder"], False),
        ("Mailman.readMail", ["uid", "uid"], False),
        ("Mailman.deleteMail", ["uid", "uid", "folder"], False),
        ("Mailman.sendMail", ["addr", "rcpts", "msg"], True),
        ("Mailman.getQueue", [], False),
        ("string.SHA256", ["s"], False),
        ("string.encode64", ["s"], False),
        ("string.decode64", ["s"], False),
        ("file.stat", ["path"], False),
        ("file.exists", ["path"], False),
        ("network.getHostByName", ["host"], True),
        ("network.getMX", ["host"], True),
        ("i_debug", ["s"], False), ("i_info", ["s"], False),
        ("i_warning", ["s"], False), ("i_error", ["s"], False),
        ("dovecot.event", ["a"], False),
        ("smtp.send", ["mailt"], True),
        ("smtp.message", ["mesgt"], False),
        ("mime.b64", ["s", "s"], False), ("mime.unb64", ["s", "s"], False),
        ("mime.qp", ["s", "s", "s"], False), ("mime.unqp", ["s", "s"], False),
        ("mime.wrp", ["n", "s", "n"], False), ("mime.qpwrp", ["n", "s", "n"], False),
        ("mime.eol", ["n", "s", "s"], False), ("mime.dot", ["n", "s"], False),
        ("mime.normalize", ["s"], False), ("mime.encode", ["s", "s"], False),
        ("mime.decode", ["s"], False), ("mime.wrap", ["s", "n"], False),
        ("mime.stuff", [], False),
        ("ltn12.pump.all", ["src", "sink"], False),
        ("ltn12.pump.step", ["src", "sink"], False),
        ("ltn12.source.chain", ["src", "filter"], False),
        ("ltn12.sink.chain", ["filter", "sink"], False),
        ("ltn12.filter.chain", ["filter", "filter"], False),
        ("ltn12.filter.cycle", ["f", "a", "a"], False),
        ("ltn12.source.rewind", ["src"], False),
        ("ltn12.source.simplify", ["src"], False),
        ("ltn12.sink.simplify", ["sink"], False),
        ("ltn12.source.file", ["a", "s"], False),
        ("ltn12.sink.file", ["a", "s"], False),
        ("print", ["a", "a"], False),
        ("tostring", ["a"], False), ("tonumber", ["a", "a"], False), ("type", ["a"], False),
        ("select", ["a", "a", "a"], False), ("unpack", ["t", "a", "a"], False, "clib"),
        ("pairs", ["a"], False), ("ipairs", ["a"], False), ("next", ["a", "a"], False),
        ("rawget", ["a", "a"], False), ("rawset", ["a", "a", "a"], False),
        ("rawequal", ["a", "a"], False), ("setmetatable", ["a", "t"], False),
        ("getmetatable", ["a"], False), ("getfenv", ["a"], False), ("setfenv", ["a", "t"], False),
        ("assert", ["a", "a"], False), ("error", ["a", "a"], False),
        ("loadstring", ["s", "s"], False), ("load", ["f", "s"], False),
        ("require", ["s"], False), ("gcinfo", [], False), ("newproxy", ["a"], False),
        ("collectgarbage", ["gcopt", "n"], False),
        ("string.byte", ["s", "n", "n"], False), ("string.char", ["n", "n"], False),
        ("string.find", ["s", "pat", "n", "a"], False), ("string.format", ["s", "a", "a"], False),
        ("string.gmatch", ["s", "pat"], False), ("string.gsub", ["s", "pat", "a", "n"], False),
        ("string.len", ["s"], False), ("string.lower", ["s"], False),
        ("string.match", ["s", "pat", "n"], False), ("string.rep", ["s", "i"], False),
        ("string.reverse", ["s"], False), ("string.sub", ["s", "n", "n"], False),
        ("string.upper", ["s"], False), ("string.dump", ["a"], False),
        ("table.concat", ["t", "s", "i", "i"], False), ("table.insert", ["t", "a", "a"], False, "clib"),
        ("table.maxn", ["t"], False), ("table.remove", ["t", "a"], False, "clib"),
        ("table.sort", ["t", "a"], False),
        ("math.floor", ["n"], False), ("math.random", ["n", "n"], False),
        ("math.fmod", ["n", "n"], False), ("math.ldexp", ["n", "n"], False),
        ("math.frexp", ["n"], False), ("math.max", ["n", "n"], False),
        ("math.randomseed", ["n"], False), ("math.log", ["n"], False),
        ("os.time", ["a"], False), ("os.date", ["s", "n"], False), ("os.clock", [], False),
        ("os.getenv", ["s"], False), ("os.difftime", ["n", "n"], False),
        ("os.setlocale", ["s", "s"], False),
        ("os.remove", ["wpath"], False), ("os.rename", ["wpath", "wpath"], False),
        ("io.open", ["opath", "mode"], False), ("io.lines", ["path"], False),
        ("io.write", ["s"], False), ("io.read", ["s"], False), ("io.type", ["a"], False),
        ("io.tmpfile", [], False),
        ("coroutine.create", ["f"], False), ("coroutine.resume", ["a", "a"], False),
        ("coroutine.wrap", ["f"], False), ("coroutine.status", ["a"], False),
        ("coroutine.running", [], False), ("coroutine.yield", ["a"], False),
    ]

    def api_call(self, ctx):
        """One API function and its arguments: (callee, args, waiting)."""
        while True:
            row = self.pick(self.API)
            name, kinds, waiting = row[:3]
            if name == "coroutine.yield" and not self.chance(0.2):
                continue
            if waiting and not ctx.direct() and not self.ok("waitcb"):
                continue
            if len(row) > 3 and not self.ok(row[3]):
                # the class is left out: small positions only, no random ones
                return name, ", ".join([self.arg(ctx, kinds[0])] +
                                       [self.small_int() for _ in kinds[1:]]), waiting
            if len(row) > 3:
                self.use(row[3])
            return name, self.args(ctx, kinds), waiting

    def call_expr(self, ctx):
        name, args, waiting = self.api_call(ctx)
        if not ctx.direct() and waiting:
            self.use("waitcb")
        return "%s(%s)" % (name, args)

    def stmt_call(self, ctx):
        name, args, waiting = self.api_call(ctx)
        k = self.r.random()
        if k < 0.55:
            if waiting:
                if not self.ok("waitcb"):
                    return "local %s = %s(%s)" % (self.var(), name, args) if ctx.direct() else ""
                self.use("waitcb")
            return "pcall(%s%s)" % (name, ", " + args if args else "")
        if waiting and not ctx.direct():
            self.use("waitcb")
        if k < 0.8:
            return "T.x = %s(%s)" % (name, args)
        return "%s(%s)" % (name, args)

    # ---- session handles ----

    def session_stmt(self, ctx, target=None):
        s = target or ctx.sess
        k = self.r.random()
        if k < 0.3:
            return "%s:send(%s)" % (s, self.pick([self.string(), lua_str("250 fuzz\r\n"),
                                                  lua_str("+OK fuzz\r\n"), self.value(ctx, 1)]))
        if k < 0.45:
            if not (ctx.direct() and s == ctx.sess) and not self.ok("waitcb"):
                return "local %s = %s.address" % (self.var(), s)
            if not (ctx.direct() and s == ctx.sess):
                self.use("waitcb")
            return "T.line = %s:receive()" % s
        if k < 0.55:
            if not (ctx.direct() and s == ctx.sess) and not self.ok("waitcb"):
                return "local %s = tostring(%s)" % (self.var(), s)
            if not (ctx.direct() and s == ctx.sess):
                self.use("waitcb")
            return "T.b, T.n = %s:receivebytes(%s)" % (s, self.pick(["0", "1", "5", "100", "-1",
                                                                       "2^31", "(0/0)", "16777216",
                                                                       "16777217", '"3"']))
        if k < 0.65:
            return "%s:%s()" % (s, self.pick(["lock", "unlock", "lock", "lock"]))
        if k < 0.9:
            field = self.pick(["address", "protocol", "helo", "sender", "recipients", "user",
                               "tls", "id", "port", "local", "nosuch", "send", "__index"])
            return "T.f = %s[%s]" % (s, lua_str(field))
        return "T.f = tostring(%s)" % s

    # ---- statements ----

    def block(self, ctx, n):
        out = []
        for _ in range(n):
            st = self.stmt(ctx)
            if st:
                out.append(st)
        return "\n".join(out) + ("\n" if out else "")

    def stmt(self, ctx):
        if ctx.depth > self.MAX_DEPTH:
            return self.stmt_call(ctx) if self.chance(0.5) else "T.x = %s" % self.value(ctx, 2)
        # a message handler runs without budget after the budget's own error
        # (class "handlerloop"): nothing harmful in one unless that class is on
        if self.chance(self.harm_rate) and (not ctx.handler or self.ok("handlerloop")):
            h = self.harm(ctx)
            if h:
                return h
        k = self.r.random()
        if k < 0.28:
            return self.stmt_call(ctx)
        if k < 0.42 and ctx.sess:
            return self.session_stmt(ctx)
        if k < 0.47:
            return self.pick(["G1", "G2", "T.x", "T[1]", "G3"]) + " = " + self.value(ctx)
        if k < 0.53:
            inner = self.block(ctx.sub(prot=1), self.r.randint(1, 3))
            if self.chance(0.6):
                return "pcall(function(...) %s end, %s)" % (inner, self.value(ctx, 1))
            return "xpcall(function() %s end, %s)" % (
                inner, self.func(ctx, "e", cb=1, n=self.r.randint(0, 2), handler=1))
        if k < 0.58:
            return "pcall(string.gsub, %s, %s, %s%s)" % (
                self.pick([self.string(), lua_str("abc def ghi"), "string.rep('ab ', 50)"]),
                lua_str(self.pick(["%w+", ".", "(%w)(%w*)", "x", "%s"])),
                self.func(ctx, "...", cb=1, n=self.r.randint(0, 2)),
                self.pick(["", ", 1", ", 3", ", 0", ", -1"]))
        if k < 0.62:
            return "pcall(table.sort, {%s}, %s)" % (
                ", ".join(self.pick(["3", "1", "2", '"a"', "5", "4"]) for _ in range(self.r.randint(2, 8))),
                self.func(ctx, "a, b", cb=1, n=self.r.randint(0, 2)))
        if k < 0.68:
            return self.meta_use(ctx)
        if k < 0.72:
            return ("pcall(function() for a, b in %s, %s, %s do %s break end end)"
                    % (self.func(ctx, "s, c", cb=1, n=self.r.randint(0, 2)), self.value(ctx, 1),
                       self.value(ctx, 1), self.block(ctx.sub(prot=1, loop=1), self.r.randint(0, 1))))
        if k < 0.78:
            return self.coroutine_stmt(ctx)
        if k < 0.82:
            return "if %s then %s else %s end" % (self.value(ctx, 1), self.block(ctx.sub(), 1),
                                                  self.block(ctx.sub(), 1))
        if k < 0.85:
            return "for i = 1, %d do %s end" % (self.r.randint(1, 4), self.block(ctx.sub(loop=1), self.r.randint(1, 2)))
        if k < 0.88:
            return self.dovecot_stmt(ctx)
        if k < 0.91:
            return self.io_stmt(ctx)
        if k < 0.93:
            return self.stash(ctx)
        if k < 0.96:
            return self.use_stash(ctx)
        if k < 0.98:
            return "do return %s end" % self.verdict(ctx)
        return "error(%s%s)" % (self.value(ctx, 1), self.pick(["", ", 0", ", 1", ", 2", ", 100"]))

    def verdict(self, ctx):
        return self.pick(["true", "false", '"ignore"', '"failure"', "nil", "1", "{}", '"x"',
                          '"IGNORE"', self.value(ctx, 2)])

    def meta_use(self, ctx):
        m = self.var()
        ops = ["local _ = %s.x" % m, "%s.y = 1" % m, "%s(1, 2)" % m, "local _ = tostring(%s)" % m,
               "local _ = %s == setmetatable({}, getmetatable(%s))" % (m, m),
               "local _ = %s < %s" % (m, m), "local _ = %s <= 1" % m, "local _ = %s .. 'x'" % m,
               "local _ = 'x' .. %s" % m, "local _ = %s + 1" % m, "local _ = -%s" % m,
               "local _ = #%s" % m, "for k, v in pairs(%s) do end" % m, "print(%s)" % m,
               "local _ = string.format('%%s', %s)" % m, "table.concat({%s})" % m,
               "error(%s)" % m]
        body = "; ".join("pcall(function() %s end)" % o
                         for o in self.r.sample(ops, self.r.randint(1, 4)))
        return "do local %s = setmetatable({}, %s); %s end" % (m, self.metatable(ctx.sub(prot=1)), body)

    def coroutine_stmt(self, ctx):
        c = ctx.sub(co=1)
        k = self.r.random()
        body = self.block(c, self.r.randint(1, 3))
        if k < 0.35:
            return ("do local co = coroutine.wrap(function(...) %s coroutine.yield(%s) %s end) "
                    "pcall(co, %s) pcall(co) pcall(co) end" % (body, self.value(c, 1),
                                                              self.block(c, 1), self.value(ctx, 1)))
        if k < 0.7:
            return ("do local co = coroutine.create(function(...) %s return %s end) "
                    "for i = 1, 3 do local ok = coroutine.resume(co, %s) if not ok then break end end "
                    "T.co2 = co end" % (body, self.value(c, 1), self.value(ctx, 1)))
        # yield across pcall inside a coroutine, and a coroutine inside a metamethod
        return ("do local co = coroutine.create(function() pcall(function() %s coroutine.yield(1) end) %s end) "
                "pcall(coroutine.resume, co) pcall(coroutine.resume, co) "
                "local m = setmetatable({}, {__index = function(t, k) return coroutine.wrap(function() %s end)() end}) "
                "pcall(function() return m.x end) end" % (body, self.block(c, 1), self.block(c, 1)))

    def dovecot_stmt(self, ctx):
        e = self.var()
        k = self.r.random()
        if k < 0.5:
            calls = []
            for _ in range(self.r.randint(1, 4)):
                m = self.pick(["append_log_prefix", "replace_log_prefix", "set_name", "add_str",
                               "add_int", "add_timeval", "inc_int", "log_debug", "log_info",
                               "log_warning", "log_error", "passthrough_event"])
                nargs = {"add_str": ["s", "s"], "add_int": ["s", "n"], "add_timeval": ["s", "n", "n"],
                         "inc_int": ["s", "n"], "passthrough_event": []}.get(m, ["s"])
                calls.append(":%s(%s)" % (m, self.args(ctx, nargs)))
            return "pcall(function() local %s = dovecot.event(%s) T.e = %s%s end)" % (
                e, self.pick(["", "T.e", "dovecot.event()", "nil", "{}"]), e, "".join(calls))
        u = ctx.user or self.pick(["T.u", "G_u"])
        if k < 0.75:
            m = self.pick(["plugin_getenv", "var_expand", "metadata_get", "metadata_set",
                           "metadata_unset", "metadata_list", "mailbox"])
            kinds = {"plugin_getenv": ["key"], "var_expand": ["s"], "metadata_get": ["mdkey"],
                     "metadata_set": ["mdkey", "s"], "metadata_unset": ["mdkey"],
                     "metadata_list": ["mdkey"], "mailbox": ["s", "n"]}[m]
            return "pcall(function() T.r = %s:%s(%s) end)" % (u, m, self.args(ctx, kinds))
        b = self.pick(["G_b", "T.b2"])
        ops = []
        for _ in range(self.r.randint(1, 4)):
            m = self.pick(["open", "close", "free", "sync", "status", "metadata_get",
                           "metadata_set", "metadata_unset", "metadata_list"])
            kinds = {"sync": ["n"], "status": ["n"], "metadata_get": ["mdkey"],
                     "metadata_set": ["mdkey", "s"], "metadata_unset": ["mdkey"],
                     "metadata_list": ["mdkey"]}.get(m, [])
            ops.append("pcall(function() T.r = %s:%s(%s) end)" % (b, m, self.args(ctx, kinds)))
        return "pcall(function() %s = %s:mailbox(%s, %s) end) %s" % (
            b, u, lua_str(self.pick(["INBOX", "Sent", "fz", "", "a/../b"])),
            self.pick(["0", "dovecot.storage.MAILBOX_FLAG_AUTO_CREATE", "0xff", "-1"]), " ".join(ops))

    def io_stmt(self, ctx):
        k = self.r.random()
        if k < 0.5:
            f = self.var()
            path = self.arg(ctx, "opath")
            ops = []
            for _ in range(self.r.randint(1, 3)):
                m = self.pick(["read", "write", "seek", "setvbuf", "flush", "close"]
                              + (["lines"] if "zero" not in path else []))
                a = {"read": self.pick(IO_FORMATS if "zero" not in path else IO_FORMATS[1:]),
                     "write": self.string(),
                     "seek": "%s, %s" % (lua_str(self.pick(["set", "cur", "end", "x"])), self.num()),
                     "setvbuf": lua_str(self.pick(["no", "full", "line", "x"]))}.get(m, "")
                ops.append("pcall(function() T.r = %s:%s(%s) end)" % (f, m, a))
            return "do local %s = io.open(%s, %s) if %s then %s pcall(%s.close, %s) end end" % (
                f, path, self.arg(ctx, "mode"), f, " ".join(ops), f, f)
        if k < 0.75:
            return "pcall(function() for l in io.lines(%s) do T.l = l break end end)" % self.arg(ctx, "path")
        return "pcall(function() for a in string.gmatch(%s, %s) do T.g = a end end)" % (
            self.string(), self.arg(ctx, "pat"))

    def stash(self, ctx):
        opts = ["T.co = coroutine.running()", "G_co = coroutine.running()",
                "T.f = %s" % self.func(ctx, "...", n=1)]
        if ctx.sess:
            opts += ["T.s = %s" % ctx.sess, "G_s = %s" % ctx.sess] * 2
        if ctx.user:
            opts += ["T.u = %s" % ctx.user, "G_u = %s" % ctx.user]
        st = self.pick(opts)
        if "T.s" in st or "G_s" in st or "T.u" in st or "G_u" in st:
            self.use("stale")
        return st

    def use_stash(self, ctx):
        k = self.r.random()
        if k < 0.5:
            s = self.pick(["T.s", "G_s"])
            self.use("stale")
            return "if %s then pcall(function() %s end) end" % (s, self.session_stmt(ctx.sub(prot=1), s))
        if k < 0.7:
            self.use("stale")
            return self.dovecot_stmt(Ctx(ctx.kind, ctx.sess, None, ctx.depth + 1, ctx.prot + 1,
                                         ctx.cb, ctx.co, ctx.loop))
        if not self.ok("corotrick"):
            return "T.st = coroutine.status(coroutine.running() or coroutine.create(print))"
        self.use("corotrick")
        co = self.pick(["T.co", "G_co", "T.co2"])
        return ("if type(%s) == 'thread' and %s ~= coroutine.running() then "
                "T.st = coroutine.status(%s) pcall(coroutine.resume, %s, %s) end" % (
                    co, co, co, co, self.value(ctx, 2)))

    # ---- the harmful cases ----

    def harm(self, ctx):
        cls = self.pick(CLASSES)
        if not self.ok(cls):
            return None
        fn = getattr(self, "harm_" + cls)
        st = fn(ctx)
        if st:
            self.use(cls)
        return st

    def harm_exit(self, ctx):
        return self.pick(["os.exit()", "os.exit(0)", "os.exit(1)", "os.exit(true)", "os.exit(-1)",
                          "pcall(os.exit, 3)", "local e = os.exit; e(2)",
                          "pcall(string.gsub, 'x', 'x', os.exit)",
                          "pcall(table.sort, {1, 2, 3}, function() os.exit(4) end)",
                          "setmetatable({}, {__index = function() os.exit(5) end}).x = nil",
                          "pcall(function() local _ = setmetatable({}, {__index = os.exit}).x end)",
                          "coroutine.wrap(function() os.exit(6) end)()"])

    def harm_gcstop(self, ctx):
        return self.pick(['collectgarbage("stop")',
                          'collectgarbage("stop") local t = {} for i = 1, 1e5 do t[i % 100] = {i} end',
                          'collectgarbage("setpause", 1e9)', 'collectgarbage("setstepmul", 0)',
                          'collectgarbage("setpause", 0) collectgarbage("setstepmul", 1e9)',
                          'collectgarbage("stop") collectgarbage("restart")',
                          'pcall(collectgarbage, "stop")'])

    def harm_rep(self, ctx):
        return self.pick(['local _ = string.rep("x", 1e12)', 'local _ = ("x"):rep(2^31)',
                          'local _ = string.rep("", 1e15)', 'local _ = string.rep("", 2^31)',
                          'pcall(string.rep, "", 1e12)', 'pcall(string.rep, "ab", 2^40)',
                          'local _ = string.rep("x", 1/0)', 'local _ = string.rep("x", 0/0)',
                          'local _ = string.rep("x", -1e12)',
                          'pcall(string.gsub, "x", "x", function() return string.rep("y", 1e12) end)'])

    def harm_debug(self, ctx):
        return self.pick([
            "debug.sethook()", "debug.sethook(function() end, '', 0)",
            "debug.sethook(function() end, 'crl', 1)", "debug.sethook() while true do end",
            "pcall(debug.sethook, coroutine.running(), nil)",
            "local r = debug.getregistry() for k, v in pairs(r) do if type(v) == 'thread' then r[k] = nil end end collectgarbage()",
            "local r = debug.getregistry() for k in pairs(r) do if type(k) == 'number' then r[k] = nil end end",
            "local r = debug.getregistry() for k, v in pairs(r) do if type(v) == 'table' then pcall(setmetatable, v, nil) end end",
            "local r = debug.getregistry() r['rumble.hooks'] = nil r['rumble.services'] = 1",
            "local r = debug.getregistry() r['rumble.session'] = {} r._LOADED = nil",
            "debug.setmetatable(nil, {__index = function() return 1 end})",
            "debug.setmetatable(1, {__index = string})", "debug.setmetatable('', nil)",
            "debug.setmetatable(print, {__index = _G})",
            "debug.setmetatable(true, {__call = function() error('b') end})",
            "pcall(debug.setupvalue, Mailman.sendMail, 1, nil)",
            "for i = 1, 5 do pcall(debug.setupvalue, require('socket.smtp').send, i, nil) end",
            "for i = 1, 5 do pcall(debug.setupvalue, require('ltn12').pump.all, i, 42) end",
            "pcall(debug.setfenv, %s, {})" % self.handle(ctx),
            "pcall(debug.setlocal, 2, 1, nil)", "pcall(debug.setlocal, 1, 1, 42)",
            "for i = 1, 20 do pcall(debug.getlocal, i, 1) end",
            "for i = 1, 10 do local f = debug.getinfo(i, 'f') if f then T.df = f.func end end",
            "pcall(debug.traceback, %s)" % self.pick(["T.co", "G_co", "coroutine.running()", "'x'"]),
            "pcall(debug.getinfo, T.co or 1, 1)", "debug.debug()",
            "pcall(debug.getupvalue, T.df, 1) pcall(debug.setupvalue, T.df, 1, {})",
            "debug.setmetatable(%s, nil)" % self.handle(ctx),
            "pcall(debug.setmetatable, %s, {__index = function() error('m') end})" % self.handle(ctx),
            "debug = nil", "debug.traceback = nil",
        ])

    def harm_gc(self, ctx):
        body = self.block(ctx.sub(cb=1, prot=0), self.r.randint(1, 3))
        extra = self.pick(["", " while true do end", " os.exit(7)", " error('gc')",
                           " local t = {} for i = 1, 1e7 do t[i] = i end",
                           " local p = newproxy(true) getmetatable(p).__gc = getmetatable(T.gp or p).__gc T.gp = p"])
        if "os.exit" in extra and not self.ok("exit"):
            extra = ""
        if "while" in extra:
            self.use("loop")
        return ("do local p = newproxy(true) getmetatable(p).__gc = function(u) %s%s end "
                "%s end" % (body, extra, self.pick(["p = nil collectgarbage()", "T.gp = p",
                                                    "G_gp = p", "p = nil", "p = nil collectgarbage('step')"])))

    def harm_bytecode(self, ctx):
        f = self.func(ctx, "...", n=1)
        return self.pick([
            "pcall(function() local d = string.dump(%s) T.bc = loadstring(d) T.bc() end)" % f,
            "pcall(function() local d = string.dump(%s) local i = %d d = d:sub(1, i) .. string.char(%d) .. d:sub(i + 2) T.bc = loadstring(d) if T.bc then T.bc() end end)" % (
                f, self.r.randint(1, 120), self.r.randint(0, 255)),
            "pcall(function() T.bc = loadstring(string.dump(%s):sub(1, %d)) end)" % (f, self.r.randint(0, 60)),
            "pcall(function() T.bc = loadstring('\\027Lua\\081\\000' .. string.rep('\\255', 64)) if T.bc then T.bc() end end)",
            "pcall(load, function() return string.dump(print) end)",
        ])

    def harm_waitcb(self, ctx):
        w = self.pick(["network.getHostByName(%s)" % self.arg(ctx, "host"),
                       "network.getMX(%s)" % self.arg(ctx, "host"),
                       "Mailman.sendMail('', 'alice@example.org', 'Subject: w\\r\\n\\r\\nx\\r\\n')",
                       "require('socket.smtp').send(%s)" % self.mailt(ctx.sub(cb=1))]
                      + (["%s:receive()" % ctx.sess, "%s:receivebytes(3)" % ctx.sess] if ctx.sess else []))
        return self.pick([
            "pcall(function() T.w = %s end)" % w,
            "xpcall(function() error('x') end, function(e) T.w = %s return e end)" % w,
            "xpcall(function() T.w = %s end, debug and debug.traceback or print)" % w,
            "pcall(string.gsub, 'ab', '%%w', function(c) T.w = %s end)" % w,
            "pcall(table.sort, {3, 1, 2}, function(a, b) T.w = %s return a < b end)" % w,
            "pcall(function() local _ = setmetatable({}, {__index = function() return %s end}).k end)" % w,
            "pcall(function() local _ = tostring(setmetatable({}, {__tostring = function() T.w = %s return '' end})) end)" % w,
            "pcall(function() for k in function() T.w = %s return nil end do end end)" % w,
            "pcall(coroutine.wrap(function() T.w = %s end))" % w,
            "pcall(function() local _ = setmetatable({}, {__concat = function() return %s end}) .. 'x' end)" % w,
        ])

    def harm_flood(self, ctx):
        if not ctx.sess:
            return None
        return self.pick([
            "local big = string.rep('x', 1000000) for i = 1, 1e6 do %s:send(big) end" % ctx.sess,
            "for i = 1, 1e7 do %s:send('flood flood flood flood\\r\\n') end" % ctx.sess,
            "local big = string.rep('y', 3000000) pcall(function() while true do %s:send(big) end end)" % ctx.sess,
        ])

    def harm_recurse(self, ctx):
        return self.pick([
            "local function f(n) return 1 + f(n + 1) end pcall(f, 1)",
            "local function f(n) return 1 + f(n + 1) end f(1)",
            "local function f(n) return f(n + 1) end f(1)",
            "local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) return t[k] end local _ = t.x",
            "local function g() return (string.gsub('x', 'x', g)) end pcall(g)",
            "local function s() table.sort({1, 2, 3}, function() s() return true end) end pcall(s)",
            "local function p() return pcall(p) end p()",
            "local function h(e) return xpcall(error, h) end xpcall(error, h)",
            "local function c() return coroutine.wrap(c)() end pcall(c)",
            "local t = setmetatable({}, {__tostring = function(t) return tostring(t) end}) pcall(tostring, t)",
            "pcall(loadstring, string.rep('(', 100000))",
            "pcall(loadstring, 'return ' .. string.rep('{', 10000))",
            "pcall(loadstring, string.rep('a=', 10000) .. '1')",
            "local t = {} t[1] = t pcall(table.concat, t) local m = setmetatable({}, {__concat = function(a, b) return a .. b end}) pcall(function() return m .. m end)",
            "local function e(n) error(setmetatable({}, {__tostring = function() return e(n + 1) end})) end pcall(e, 1)",
            "local t = setmetatable({}, {__eq = function(a, b) return a == b end}) local u = setmetatable({}, getmetatable(t)) pcall(function() return t == u end)",
            "local function f() local co = coroutine.create(f) coroutine.resume(co) end f()",
        ])

    def harm_loop(self, ctx):
        return self.pick([
            "while true do end", "repeat until false", "for i = 1, 1e18 do end",
            "pcall(function() while true do end end)",
            "pcall(string.gsub, string.rep('x', 100), 'x', function() while true do end end)",
            "pcall(table.sort, {1, 2, 3}, function() while true do end end)",
            "local t = setmetatable({}, {__index = function() while true do end end}) pcall(function() return t.x end)",
            "pcall(coroutine.wrap(function() while true do end end))",
            "local function f() return f() end f()",
        ])

    def harm_handlerloop(self, ctx):
        return self.pick([
            "xpcall(function() error('e') end, function() while true do end end)",
            "xpcall(function() while true do end end, function() while true do end end)",
            "xpcall(function() while true do end end, function(e) for i = 1, 1e9 do end return e end)",
            "pcall(xpcall, function() local t = {} for i = 1, 1e9 do t[i] = i end end, function() while true do end end)",
        ])

    def harm_catchloop(self, ctx):
        return self.pick([
            "while true do pcall(error) end",
            "while true do local ok = pcall(function() while true do end end) end",
            "for i = 1, 1e9 do pcall(string.rep, 'x', 10) end",
            "local co = coroutine.wrap(function() while true do pcall(function() while true do end end) end end) pcall(co)",
        ])

    def harm_bomb(self, ctx):
        return self.pick([
            "local t = {} for i = 1, 1e9 do t[i] = {} end",
            "local s = 'x' while true do s = s .. s end",
            "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 100) .. i end",
            "local t = {} while true do t[#t + 1] = coroutine.create(print) end",
            "local t = {} while true do t[#t + 1] = newproxy(true) end",
            "pcall(function() local s = 'x' while true do s = s .. s end end) local t = {} for i = 1, 1e5 do t[i] = i end",
            "local t = {} for i = 1, 1e6 do t[tostring(i) .. 'k'] = i end",
            "pcall(table.concat, setmetatable({}, {__index = function() return 'x' end}), '', 1, 1e8)",
            "pcall(unpack, {}, 1, 1e8)", "pcall(string.char, unpack({}, 1, 1e6))",
            "local s = string.rep('x', 1e6) local t = {} for i = 1, 100 do t[i] = s .. i end",
            "local t = {} for i = 1, 1e5 do t[i] = string.format('%99d', i) end",
            "local f = io.open('/dev/zero') if f then pcall(f.read, f, '*a') pcall(f.read, f, 2^40) f:close() end",
        ])

    def harm_fullstate(self, ctx):
        return self.pick([
            "G_full = {} for i = 1, 1e9 do G_full[i] = {} end",
            "T.full = T.full or {} for i = 1, 1e9 do T.full[#T.full + 1] = string.rep('x', 1000) .. i end",
            "G_full = G_full or {} pcall(function() for i = 1, 1e9 do G_full[#G_full + 1] = {i} end end)",
        ])

    def harm_selfsend(self, ctx):
        send = ("require('socket.smtp').send{from = 'a@fuzz.test', rcpt = 'alice@example.org', "
                "source = ltn12.source.string('Subject: self\\r\\n\\r\\nx\\r\\n')%s}"
                % self.pick(["", ", server = 'mail.fuzz.test'", ", port = %d" % self.ports["smtp"]]))
        return self.pick([
            "pcall(coroutine.wrap(function() %s end))" % send,
            "pcall(string.gsub, 'x', 'x', function() %s end)" % send,
            "pcall(function() local _ = setmetatable({}, {__index = function() return %s end}).k end)" % send,
        ])

    def harm_helperhog(self, ctx):
        return ("require('socket.smtp').TIMEOUT = %s pcall(require('socket.smtp').send, "
                "{from = 'a@fuzz.test', rcpt = 'alice@example.org', server = '127.0.0.1', "
                "port = %d, source = ltn12.source.string('x')})"
                % (self.pick(["600", "60", "1e9"]), self.ports.get("silent", 9)))

    def harm_slowop(self, ctx):
        return self.pick([
            "while true do local s = string.rep('x', 2^21) end",
            "local s = string.rep('x', 2^20) while true do local t = s .. 'y' end",
            "local s = string.rep('ab ', 2^18) while true do local n = #s:upper() end",
            "local t = {} for i = 1, 2^16 do t[i] = 'x' end while true do local s = table.concat(t) end",
        ])

    def harm_endless(self, ctx):
        return self.pick([
            "pcall(function() for l in io.lines('/dev/zero') do end end)",
            "local f = io.open('/dev/zero') if f then pcall(f.read, f, '*l') f:close() end",
            "local f = io.open('/dev/zero') if f then for l in f:lines() do break end f:close() end",
        ])

    def harm_stale(self, ctx):
        s = self.pick(["T.s", "G_s"])
        self.use("stale")
        return ("if %s then for i = 1, 3 do pcall(function() %s end) end end"
                % (s, self.session_stmt(ctx.sub(prot=1), s)))

    def harm_corotrick(self, ctx):
        return self.pick([
            "if type(T.co) == 'thread' then pcall(coroutine.resume, T.co, 'x', 1) end",
            "if type(G_co) == 'thread' then for i = 1, 3 do pcall(coroutine.resume, G_co) end end",
            "T.co = coroutine.running() coroutine.yield('yielded')",
            "G_co = coroutine.running() pcall(coroutine.yield)",
            "coroutine.yield()",
            "local co = coroutine.running() pcall(coroutine.resume, co)",
            "if type(T.co) == 'thread' then T.w = coroutine.wrap(function() return coroutine.resume(T.co) end) pcall(T.w) end",
            "local me = coroutine.running() local c = coroutine.create(function() return coroutine.resume(me) end) coroutine.resume(c)",
        ])

    def harm_meta(self, ctx):
        h = self.handle(ctx)
        return self.pick([
            "pcall(setmetatable, %s, {})" % h,
            "local m = getmetatable(%s) if type(m) == 'table' then m.__index = nil end" % h,
            "local m = getmetatable(%s) if type(m) == 'table' then m.__index = function() error('i') end end" % h,
            "local m = getmetatable(%s) if type(m) == 'table' then m.__gc = function() T.gcd = 1 end m.__tostring = nil end" % h,
            "local m = getmetatable(%s) if type(m) == 'table' then for k in pairs(m) do m[k] = nil end end" % h,
            "local m = getmetatable(%s) if type(m) == 'table' then m.send = m.receive m.receive = m.send end" % h,
            "local m = getmetatable('') if m then m.__index = nil end",
            "local m = getmetatable('') if m then m.__index = function() error('s') end end",
            "setmetatable(Rumble, {__index = function() while true do end end})",
            "Rumble = nil", "Mailman = {}", "string = nil", "pcall = error", "print = nil",
            "tostring = function() error('t') end", "type = nil", "setmetatable = nil",
            "coroutine = nil", "require = nil", "package.loaded['socket.smtp'] = nil package.preload = {}",
            "package.loaded.mime = 1 package.loaded.ltn12 = 'x'",
            "table = nil", "error = nil",
        ])

    def harm_gmeta(self, ctx):
        return self.pick([
            "setmetatable(_G, {__index = function(t, k) error('no ' .. tostring(k)) end, __newindex = function() end})",
            "setmetatable(_G, {__index = function(t, k) while true do end end})",
            "setmetatable(_G, {__index = function(t, k) return t[k] end})",
        ])

    def harm_pattern(self, ctx):
        n = self.pick([100, 1000, 10000, 50000, 200000])
        return self.pick([
            "pcall(string.find, string.rep('a', %d), string.rep('a?', %d) .. string.rep('a', %d))" % (n, n, n),
            "pcall(string.match, string.rep('a', 30), string.rep('a?', 30) .. string.rep('a', 30))",
            "pcall(string.find, string.rep('a', %d), string.rep('(', 40))" % n,
            "pcall(string.find, string.rep('a', 5000), '.-.-.-.-.-.-.-b')",
            "pcall(string.gsub, string.rep('a', %d), string.rep('%%w?', %d), 'x')" % (n, n),
            "pcall(string.match, string.rep('x', %d), string.rep('(x?)', 30))" % n,
            "pcall(string.find, string.rep('()', 33), string.rep('()', 33))",
            "pcall(string.gmatch(string.rep('ab', %d), string.rep('a-', %d) .. 'c'))" % (n, min(n, 5000)),
            "pcall(string.format, string.rep('%%', 1000))",
        ])

    def harm_clib(self, ctx):
        return self.pick([
            "pcall(table.insert, {}, -2^31, 1)", "pcall(table.insert, {1}, -2^53, 1)",
            "pcall(table.remove, {1}, -2^31)", "pcall(table.insert, {}, 2^31 - 1, 1)",
            "pcall(table.concat, {}, '', 1, 2^31)", "pcall(table.concat, {'a'}, '', -2^31, 1)",
            "pcall(string.byte, string.rep('x', 100), -2^31, 2^31)",
            "pcall(string.sub, 'x', -2^63, 2^63)", "pcall(select, -2^31, 1)",
            "pcall(unpack, {}, -2^31, 2^31 - 1)", "pcall(unpack, {}, 2^31 - 2, 2^31 - 1)",
            "pcall(string.char, 256)", "pcall(string.format, '%d', 2^63)",
            "pcall(string.format, '%c', -1)", "pcall(os.date, '*t', 2^60)",
            "pcall(os.date, '%%Ez')", "pcall(os.time, {year = 2^31, month = 1e10, day = -1e10})",
            "pcall(math.random, -2^31, 2^31)", "pcall(math.random, 0)",
            "pcall(tonumber, 'z', 36)", "pcall(tonumber, '1', 99)",
        ])

    # ---- a whole script ----

    def hook_fn(self, name, kind="hook"):
        ctx = Ctx(kind, sess="session")
        body = self.block(ctx, self.r.randint(1, 4))
        return "local function %s(session, cmd, verb)\n%sreturn %s\nend\n" % (name, body, self.verdict(ctx))

    def script(self):
        p = self.ports
        out = ["-- luafuzz seed %d" % self.seed,
               "local T = {}",
               "local smtp = require('socket.smtp')",
               "local mime = require('mime')",
               "local ltn12 = require('ltn12')",
               "smtp.TIMEOUT = %s" % self.pick(["2", "1", "5", "0", "-1", "1e9", "'x'"])]
        # hooks
        for i, (svc, when, cmd) in enumerate(self.r.sample(HOOKS, self.r.randint(1, 5))):
            name = "h%d" % i
            out.append(self.hook_fn(name))
            call = "Rumble.setHook(%s, %s, %s%s)" % (name, lua_str(svc), lua_str(when),
                                                      ", " + lua_str(cmd) if cmd else "")
            out.append(call if self.chance(0.85) else "pcall(Rumble.setHook, %s, %s, %s, %s)" % (
                name, self.arg(None, "svc"), self.arg(None, "when"), self.arg(None, "cmd")))
        # services
        for i, port in enumerate(p["svc"]):
            if self.chance(0.8):
                ctx = Ctx("service", sess="session")
                body = self.block(ctx, self.r.randint(1, 4))
                loop = ("while true do local l = session:receive() if not l or l == 'quit' then break end\n%s end\n"
                        % self.block(ctx.sub(loop=1), self.r.randint(1, 3))) if self.chance(0.6) else ""
                out.append("local function s%d(session)\n%s%s%s\nend" % (
                    i, body, loop, "return " + self.value(ctx, 2) if self.chance(0.3) else ""))
                out.append("Rumble.createService(s%d, %d%s)" % (i, port, self.pick(["", ", 1", ", 10", ", -1"])))
        # the mailman feed hook
        if self.chance(0.6):
            ctx = Ctx("feed")
            out.append("Rumble.setHook(function(message, account, rcpt, from)\n%sreturn %s\nend, 'mailman', 'feed')"
                       % (self.block(ctx, self.r.randint(1, 4)), self.verdict(ctx)))
        # Dovecot's globals
        for fn in ("mail_user_created", "mail_user_deinit_pre", "mail_user_deinit"):
            if self.chance(0.4):
                ctx = Ctx("user", user="user")
                out.append("function %s(user)\n%s\nend" % (fn, self.block(ctx, self.r.randint(1, 4))))
        if self.chance(0.15):
            out.append("function script_load()\n%sreturn %s\nend" % (
                self.block(Ctx("top"), 1), self.verdict(Ctx("top"))))
        # top-level code, at the end: an error there leaves the registrations made
        top = Ctx("top")
        out.append(self.block(top, self.r.randint(0, 4)))
        return "\n".join(out) + "\n"

    def vpop3(self):
        """An SMTPScript with some of VPOP3's callbacks."""
        out = ["-- luafuzz SMTPScript seed %d" % self.seed, "local T = {}",
               "local smtp = require('socket.smtp')", "local mime = require('mime')",
               "local ltn12 = require('ltn12')"]
        for name, params in self.r.sample(VP3_FUNCS, self.r.randint(0, 6)):
            ctx = Ctx("vp3")
            body = self.block(ctx, self.r.randint(0, 3))
            ret = self.pick(['"250 ok"', '"550 no"', '"451 later"', '"bad"', "nil", "true", "1",
                             '"250-a\\r\\n250 b"', "{}", '"421 bye"', self.value(ctx, 2)])
            sets = "".join("%s = %s\n" % (g, self.value(ctx, 2)) for g in self.r.sample(
                ["ForceDisconnect", "ValidClientAddress", "LocalClientAddress", "MaxLineLength",
                 "MaxMessagesPerLocalSession", "AuthenticationRequired", "AllowedUsers",
                 "GetMaxMessageSize", "Recipients", "HeaderModifiers", "Delete", "Ignore"],
                self.r.randint(0, 2)))
            out.append("function %s(%s)\n%s%sreturn %s\nend" % (name, params, body, sets, ret))
        return "\n".join(out) + "\n"
