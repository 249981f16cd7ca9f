"""The Sieve corpus that test_sieve.py runs through both Rumble and
Pigeonhole's sieve-test: messages, and (name, script, message) cases.
Envelope: from sender@example.com, to bob+work@example.org."""

PLAIN = (b"Return-Path: <sender@example.com>\r\n"
         b"From: Alice Example <alice@Example.COM>\r\n"
         b"To: bob+work@example.org, \"Carol\" <carol@example.net>\r\n"
         b"Cc: dave@example.org\r\n"
         b"Subject: Quarterly report for Q3\r\n"
         b"X-Spam-Score: 7\r\n"
         b"X-Priority: 1\r\n"
         b"Received: from a by b; Mon, 1 Dec 2026 10:00:00 +0000\r\n"
         b"Received: from c by d; Mon, 1 Dec 2026 09:00:00 +0000\r\n"
         b"Message-ID: <r1@example.com>\r\n"
         b"Date: Mon, 1 Dec 2026 10:00:00 +0000\r\n"
         b"\r\n"
         b"Hello Bob,\r\nthe report is attached. Regards, Alice\r\n")

LIST = (b"From: list-owner@lists.example.net\r\n"
        b"To: dev@lists.example.net\r\n"
        b"Subject: [dev-list] Build broken again\r\n"
        b"List-Id: Developers <dev.lists.example.net>\r\n"
        b"Precedence: list\r\n"
        b"\r\n"
        b"The build is broken.\r\n")

ENCODED = (b"From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>\r\n"
           b"To: bob@example.org\r\n"
           b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_M=FCnchen?=\r\n"
           b"\r\n"
           b"Servus\r\n")

MULTIPART = (b"From: shop@example.com\r\n"
             b"To: bob@example.org\r\n"
             b"Subject: Your order\r\n"
             b"MIME-Version: 1.0\r\n"
             b"Content-Type: multipart/alternative; boundary=\"XX\"\r\n"
             b"\r\n"
             b"preamble\r\n"
             b"--XX\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n"
             b"\r\n"
             b"Your order 4711 has shipped. Tracking: ABC=3D123\r\n"
             b"--XX\r\n"
             b"Content-Type: text/html; charset=utf-8\r\n"
             b"\r\n"
             b"<p>Your order <b>4711</b> has shipped.</p>\r\n"
             b"--XX\r\n"
             b"Content-Type: application/pdf\r\n"
             b"Content-Transfer-Encoding: base64\r\n"
             b"\r\n"
             b"SW52b2ljZSBQREY=\r\n"
             b"--XX--\r\n")

DATED = (b"From: night@example.com\r\n"
         b"To: bob@example.org\r\n"
         b"Received: from x by y; Sun, 28 Feb 2027 23:59:30 -0500 (EST)\r\n"
         b"Received: from z by x (comment; with a semicolon); 1 Mar 2027 04:00:00 GMT\r\n"
         b"Date: Sun, 28 Feb 2027 23:30:00 -0800\r\n"
         b"Subject: late\r\n"
         b"\r\n"
         b"Late.\r\n")

MESSAGES = {"dated": DATED, "plain": PLAIN, "list": LIST, "encoded": ENCODED, "multipart": MULTIPART}

R = 'require ["fileinto", "imap4flags", "variables", "relational", "comparator-i;ascii-numeric", ' \
    '"subaddress", "copy", "envelope", "body", "mailbox", "reject"];\n'

D = 'require ["date", "index", "fileinto", "variables", "relational"];\n'
E = 'require ["editheader", "variables", "fileinto", "index", "relational", "body"];\n'
I = 'require ["include", "variables", "fileinto", "imap4flags"];\n'
INCLUDES = {
    "inc-file": 'require "fileinto"; fileinto "from-personal";',
    "global/inc-file": 'require "fileinto"; fileinto "from-global";',
    "inc-vars": 'require ["include", "variables", "fileinto"]; global "g"; set "g" "${g}+inc"; '
                'set "l" "local-inc"; fileinto "v-${g}-${l}";',
    "inc-return": 'require ["fileinto", "include"]; fileinto "r1"; return; fileinto "r2";',
    "inc-stop": 'require "fileinto"; fileinto "s1"; stop;',
    "inc-flags": 'require "imap4flags"; addflag "$inc";',
    "inc-test": 'require "fileinto"; if header :contains "subject" "report" { fileinto "inc-report"; }',
    "inc-loop-a": 'require "include"; include "inc-loop-b";',
    "inc-loop-b": 'require "include"; include "inc-loop-a";',
    "inc-broken": 'if true {',
}
DATE_PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601",
              "std11", "zone", "weekday")

CASES = [
    # the base language
    ("empty", "", "plain"),
    ("keep", "keep;", "plain"),
    ("discard", "discard;", "plain"),
    ("redirect", 'redirect "someone@example.net";', "plain"),
    ("stop", 'stop; discard;', "plain"),
    ("header-is", R + 'if header :is "subject" "Quarterly report for Q3" { fileinto "Reports"; }', "plain"),
    ("header-is-case", R + 'if header :is "SUBJECT" "quarterly REPORT for q3" { fileinto "Reports"; }', "plain"),
    ("header-octet", R + 'if header :comparator "i;octet" :is "subject" "quarterly report for q3" '
     '{ fileinto "Reports"; }', "plain"),
    ("header-contains", R + 'if header :contains ["subject", "x-foo"] ["nothing", "report"] { discard; }', "plain"),
    ("header-matches", R + 'if header :matches "subject" "*report*Q?" { fileinto "M"; }', "plain"),
    ("header-matches-no", R + 'if header :matches "subject" "report*" { fileinto "M"; }', "plain"),
    ("header-matches-escape", R + 'if header :matches "subject" "\\\\*" { fileinto "M"; } '
     'else { fileinto "N"; }', "plain"),
    ("header-missing", R + 'if header :contains "x-missing" "" { discard; }', "plain"),
    ("header-empty-key", R + 'if header :contains "subject" "" { fileinto "E"; }', "plain"),
    ("exists", R + 'if exists ["x-spam-score", "x-priority"] { fileinto "S"; }', "plain"),
    ("exists-not", R + 'if exists ["x-spam-score", "x-nope"] { fileinto "S"; } else { keep; }', "plain"),
    ("size-over", 'if size :over 100 { discard; }', "plain"),
    ("size-under", 'if size :under 1K { discard; } else { keep; }', "plain"),
    ("allof", R + 'if allof (header :contains "from" "alice", size :under 10M) { fileinto "A"; }', "plain"),
    ("anyof", R + 'if anyof (false, header :contains "to" "carol") { fileinto "A"; }', "plain"),
    ("not", R + 'if not header :contains "subject" "spam" { fileinto "Clean"; }', "plain"),
    ("elsif", R + 'if header :is "subject" "x" { fileinto "1"; } elsif header :contains "subject" "Q3" '
     '{ fileinto "2"; } else { fileinto "3"; }', "plain"),
    ("else", R + 'if false { fileinto "1"; } elsif false { fileinto "2"; } else { fileinto "3"; }', "plain"),
    ("nested", R + 'if true { if header :contains "subject" "report" { if false { discard; } '
     'else { fileinto "Deep"; } } }', "plain"),
    ("comments", '# a comment\r\n/* a block\r\n comment */ keep; # end', "plain"),
    ("text-multiline", R + 'if header :contains "subject" text:\r\nreport\r\n.\r\n { fileinto "T"; }', "plain"),
    ("string-escapes", R + 'fileinto "a\\"b\\\\c";', "plain"),
    # addresses
    ("address-all", R + 'if address :is "from" "alice@example.com" { fileinto "Alice"; }', "plain"),
    ("address-domain", R + 'if address :domain :is "to" "example.net" { fileinto "Net"; }', "plain"),
    ("address-localpart", R + 'if address :localpart :is ["to", "cc"] "dave" { fileinto "Dave"; }', "plain"),
    ("address-user-detail", R + 'if address :detail "to" "work" { fileinto "Work"; }', "plain"),
    ("address-user", R + 'if address :user :is "to" "bob" { fileinto "Bob"; }', "plain"),
    ("address-matches", R + 'if address :matches :domain "from" "*.com" { fileinto "Com"; }', "plain"),
    ("address-encoded", R + 'if address :is "from" "joerg@example.de" { fileinto "J"; }', "encoded"),
    # envelope
    ("envelope-from", R + 'if envelope :is "from" "sender@example.com" { fileinto "Env"; }', "plain"),
    ("envelope-to-detail", R + 'if envelope :detail "to" "work" { fileinto "Work"; }', "plain"),
    ("envelope-domain", R + 'if envelope :domain :is "to" "example.org" { fileinto "Org"; }', "plain"),
    # flags
    ("flags-set", R + 'setflag "\\\\Seen"; keep;', "plain"),
    ("flags-add-remove", R + 'addflag ["\\\\Seen", "$Work"]; addflag "\\\\Flagged"; removeflag "\\\\Seen"; '
     'fileinto "F";', "plain"),
    ("flags-param", R + 'fileinto :flags ["\\\\Answered", "$x"] "F"; keep;', "plain"),
    ("flags-implicit", R + 'addflag "\\\\Flagged $Important";', "plain"),
    ("hasflag", R + 'addflag "$Work"; if hasflag :is "$work" { fileinto "W"; }', "plain"),
    ("hasflag-var", R + 'addflag "mine" "$A $B"; if hasflag :count "eq" :comparator "i;ascii-numeric" '
     '"mine" "2" { fileinto "Two"; }', "plain"),
    # copy, create, reject, mailbox
    ("copy", R + 'fileinto :copy "Archive"; redirect :copy "x@example.net";', "plain"),
    ("create", R + 'fileinto :create "New/Sub";', "plain"),
    ("duplicate-fileinto", R + 'fileinto "A"; fileinto "A"; keep; keep;', "plain"),
    ("duplicate-redirect", R + 'redirect "a@example.net"; redirect "a@example.net";', "plain"),
    ("reject", R + 'if header :contains "subject" "report" { reject "No reports, please."; }', "plain"),
    ("mailboxexists", R + 'if mailboxexists "INBOX" { fileinto "Exists"; }', "plain"),
    # variables
    ("variables-set", R + 'set "folder" "Lists"; fileinto "${folder}";', "plain"),
    ("variables-modifiers", R + 'set :upper "a" "work"; set :lowerfirst "b" "XYZ"; set :length "c" "abcd"; '
     'fileinto "${a}-${b}-${c}";', "plain"),
    ("variables-match", R + 'if header :matches "list-id" "*<*.*>" { fileinto "lists.${2}"; }', "list"),
    ("variables-match-subject", R + 'if header :matches "subject" "[*] *" { fileinto "${1}"; }', "list"),
    ("variables-unknown", R + 'fileinto "x${nothing}y";', "plain"),
    ("variables-string", R + 'set "a" "hello"; if string :is "${a}" "hello" { fileinto "Yes"; }', "plain"),
    ("variables-quotewildcard", R + 'set :quotewildcard "p" "a*b"; if string :matches "axxb" "${p}" '
     '{ fileinto "Wild"; } else { fileinto "Quoted"; }', "plain"),
    ("variables-case", R + 'set "Name" "v"; fileinto "${name}";', "plain"),
    # relational
    ("count-received", R + 'if header :count "ge" :comparator "i;ascii-numeric" "received" "2" '
     '{ fileinto "Two"; }', "plain"),
    ("count-to", R + 'if address :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "3" '
     '{ fileinto "Three"; }', "plain"),
    ("value-spam", R + 'if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" '
     '{ fileinto "Junk"; }', "plain"),
    ("value-lt", R + 'if header :value "lt" :comparator "i;ascii-numeric" "x-spam-score" "5" '
     '{ fileinto "Junk"; } else { keep; }', "plain"),
    ("value-string", R + 'if header :value "gt" "subject" "P" { fileinto "After"; }', "plain"),
    # encoded headers
    ("encoded-subject", R + 'if header :contains "subject" "Grüße" { fileinto "German"; }', "encoded"),
    ("encoded-from", R + 'if header :contains "from" "Jörg" { fileinto "Joerg"; }', "encoded"),
    # body
    ("body-contains", R + 'if body :contains "shipped" { fileinto "Orders"; }', "multipart"),
    ("body-text-decoded", R + 'if body :contains "ABC=123" { fileinto "QP"; }', "multipart"),
    ("body-raw", R + 'if body :raw :contains "ABC=3D123" { fileinto "Raw"; }', "multipart"),
    ("body-content-html", R + 'if body :content "text/html" :contains "<b>4711</b>" { fileinto "Html"; }',
     "multipart"),
    ("body-content-pdf", R + 'if body :content "application/pdf" :contains "Invoice" { fileinto "Pdf"; } '
     'else { keep; }', "multipart"),
    ("body-plain", R + 'if body :contains "attached" { fileinto "B"; }', "plain"),
    ("body-not", R + 'if body :contains "nowhere" { fileinto "B"; }', "plain"),
    # a realistic filter
    ("realistic", R + 'if header :contains "list-id" "dev.lists" { fileinto :create "Lists/dev"; stop; }\r\n'
     'if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" { fileinto "Junk"; stop; }\r\n'
     'if address :domain :is "from" "example.com" { addflag "$Customer"; }\r\nkeep;', "list"),
    # compile errors: both must refuse
    ("err-unknown-test", 'if foo { keep; }', "plain"),
    ("err-no-require", 'fileinto "x";', "plain"),
    ("err-missing-semicolon", 'keep\r\ndiscard;', "plain"),
    ("err-unterminated", 'if header :is "a" "b { keep; }', "plain"),
    ("err-else-alone", 'else { keep; }', "plain"),
    ("err-require-late", 'keep; require "fileinto";', "plain"),
    ("err-unknown-ext", 'require "nonexistent-extension";', "plain"),
    ("err-bad-tag", 'if header :bogus "a" "b" { keep; }', "plain"),
    ("err-size-no-tag", 'if size 100 { keep; }', "plain"),
    ("err-numeric-contains", 'require "comparator-i;ascii-numeric"; if header :contains :comparator '
     '"i;ascii-numeric" "a" "1" { keep; }', "plain"),
    ("err-two-match-types", 'if header :is :contains "a" "b" { keep; }', "plain"),
    ("err-unclosed-block", 'if true { keep;', "plain"),
    # edge cases of matching
    ("matches-question-utf8", R + 'if header :matches "subject" "Gr??e aus *" { fileinto "Q"; }', "encoded"),
    ("matches-star-only", R + 'if header :matches "subject" "*" { fileinto "Any"; }', "plain"),
    ("matches-empty", R + 'if header :matches "x-none" "*" { fileinto "Any"; } else { keep; }', "plain"),
    ("matches-captures", R + 'if header :matches "from" "* <*@*>" { fileinto "${1}/${2}/${3}"; }', "plain"),
    ("matches-case", R + 'if header :matches "subject" "QUARTERLY*" { fileinto "Q"; }', "plain"),
    ("contains-octet", R + 'if header :contains :comparator "i;octet" "subject" "report" { fileinto "O"; }',
     "plain"),
    ("is-multiple-received", R + 'if header :contains "received" "from c" { fileinto "C"; }', "plain"),
    ("count-casemap", R + 'if header :count "gt" "received" "10" { fileinto "Str"; } else { keep; }', "plain"),
    ("count-missing", R + 'if header :count "eq" :comparator "i;ascii-numeric" "x-none" "0" '
     '{ fileinto "Zero"; }', "plain"),
    ("string-count", R + 'set "a" ""; set "b" "x"; if string :count "eq" :comparator "i;ascii-numeric" '
     '["${a}", "${b}"] "1" { fileinto "One"; }', "plain"),
    ("value-ne", R + 'if header :value "ne" "x-priority" "1" { fileinto "N"; } else { fileinto "E"; }', "plain"),
    ("numeric-nondigit", R + 'if header :value "gt" :comparator "i;ascii-numeric" "subject" "99999" '
     '{ fileinto "Inf"; }', "plain"),
    ("address-list-header", R + 'if address :is :all "to" "carol@example.net" { fileinto "C"; }', "plain"),
    ("address-case", R + 'if address :is :domain "from" "EXAMPLE.com" { fileinto "D"; }', "plain"),
    ("detail-none", R + 'if address :detail "cc" "" { fileinto "X"; } else { keep; }', "plain"),
    ("envelope-all", R + 'if envelope :all :is "to" "bob+work@example.org" { fileinto "T"; }', "plain"),
    ("envelope-user", R + 'if envelope :user :is "to" "bob" { fileinto "T"; }', "plain"),
    # actions together
    ("keep-and-fileinto-inbox", R + 'fileinto "INBOX"; keep;', "plain"),
    ("discard-then-keep", 'discard; keep;', "plain"),
    ("redirect-and-keep", 'redirect "a@example.net"; keep;', "plain"),
    ("fileinto-copy-only", R + 'fileinto :copy "A";', "plain"),
    ("flags-then-fileinto-twice", R + 'addflag "\\\\Seen"; fileinto "A"; removeflag "\\\\Seen"; fileinto "B";',
     "plain"),
    ("flags-keep-explicit", R + 'setflag "\\\\Deleted"; keep :flags "\\\\Seen";', "plain"),
    ("flags-dupes", R + 'addflag ["$a", "$A", "$a $b"];', "plain"),
    ("set-then-match-var", R + 'set "x" "pre"; if header :matches "subject" "Quarterly *" '
     '{ fileinto "${x}-${1}"; }', "plain"),
    ("match-var-kept", R + 'if header :matches "subject" "* report *" {} if header :matches "subject" "zzz*" {} '
     'fileinto "${1}";', "plain"),
    ("var-in-header-name", R + 'set "h" "subject"; if header :contains "${h}" "report" { fileinto "H"; }', "plain"),
    ("upperfirst-lower", R + 'set :upperfirst :lower "v" "hELLO"; fileinto "${v}";', "plain"),
    ("bad-var-ref", R + 'fileinto "a${}b${1x}c${";', "plain"),
    ("body-multiline-key", R + 'if body :contains text:\r\norder 4711\r\n.\r\n { fileinto "M"; }', "multipart"),
    ("body-is", R + 'if body :is "Servus" { fileinto "Exact"; } else { keep; }', "encoded"),
    ("body-content-text", R + 'if body :content "text" :contains "4711" { fileinto "T"; }', "multipart"),
    ("size-exact", 'if size :over 0 { keep; }', "list"),
    # date and index (RFC 5260); without :zone the local zone applies (both run here)
] + [("date-part-" + p, D + 'if date :originalzone :matches "date" "%s" "*" { fileinto "x${1}"; }' % p,
      m) for p in DATE_PARTS for m in ("plain", "dated")] + [
    ("date-zone-iso", D + 'if date :zone "+0130" :matches "date" "iso8601" "*" { fileinto "x${1}"; }', "dated"),
    ("date-zone-julian", D + 'if date :zone "+1400" :matches "date" "julian" "*" { fileinto "x${1}"; }', "dated"),
    ("date-zone-odd", D + 'if date :zone "+0160" :matches "date" "std11" "*" { fileinto "x${1}"; }', "plain"),
    ("date-zone-bad", D + 'if date :zone "0100" :matches "date" "hour" "*" { fileinto "x${1}"; }', "plain"),
    ("date-zone-var", D + 'set "z" "-0800"; if date :zone "${z}" :matches "date" "std11" "*" '
     '{ fileinto "x${1}"; }', "plain"),
    ("date-local", D + 'if date :matches "date" "date" "*" { fileinto "x${1}"; }', "dated"),
    ("date-received-first", D + 'if date :is "received" "hour" "09" { discard; }', "plain"),
    ("date-received-comment", D + 'if date :originalzone :index 2 :matches "received" "std11" "*" '
     '{ fileinto "x${1}"; }', "dated"),
    ("date-index-last", D + 'if date :index 1 :last :is "received" "hour" "09" { discard; }', "plain"),
    ("date-index-past", D + 'if date :index 3 "received" "hour" "09" { discard; }', "plain"),
    ("date-count", D + 'if date :count "eq" "received" "year" "1" { discard; }', "plain"),
    ("date-missing", D + 'if date :count "eq" "x-nope" "year" "0" { discard; }', "plain"),
    ("date-unparsable", D + 'if date :matches "subject" "year" "*" { discard; } else { keep; }', "plain"),
    ("date-value", D + 'if date :value "lt" :originalzone "date" "date" "2027-03-01" { discard; }', "dated"),
    ("date-bad-part", D + 'if date "date" "fortnight" "1" { discard; }', "plain"),
    ("currentdate-year", D + 'if currentdate :value "ge" "year" "2020" { discard; }', "plain"),
    ("currentdate-zone", D + 'if currentdate :zone "-0330" :matches "zone" "*" { fileinto "x${1}"; }', "plain"),
    ("index-header-names", D + 'if header :index 3 :matches ["received", "to"] "*" { fileinto "x${1}"; }',
     "plain"),
    ("index-header-last", D + 'if header :index 2 :last :matches "received" "*" { fileinto "x${1}"; }',
     "plain"),
    ("index-address", D + 'if address :index 1 :last :domain :matches ["to", "cc"] "*" { fileinto "x${1}"; }',
     "plain"),
    ("err-index-last-alone", D + 'if header :last "to" "x" { keep; }', "plain"),
    ("err-index-zero", D + 'if header :index 0 "to" "x" { keep; }', "plain"),
    ("err-index-no-require", 'require "date"; if header :index 1 "to" "x" { keep; }', "plain"),
    ("err-date-no-require", 'require "index"; if date "date" "year" "2026" { keep; }', "plain"),
    ("err-date-two-zones", D + 'if date :originalzone :zone "+0100" "date" "year" "1" { keep; }', "plain"),
    ("err-currentdate-originalzone", D + 'if currentdate :originalzone "zone" "x" { keep; }', "plain"),
    # duplicate (RFC 7352): sieve-test has no memory: never a duplicate, the tracking shows
    ("duplicate-default", 'require ["duplicate", "fileinto"]; fileinto "a"; if duplicate { discard; }', "plain"),
    ("duplicate-no-message-id", 'require "duplicate"; if duplicate { discard; }', "list"),
    ("duplicate-handles", 'require "duplicate"; if duplicate :last :handle "b" {} if duplicate :handle "b" {} '
     'if duplicate :handle "" :header "subject" {}', "plain"),
    ("duplicate-header-missing", 'require "duplicate"; if duplicate :header "x-none" { discard; }', "plain"),
    ("duplicate-uniqueid", 'require ["duplicate", "variables"]; set "h" "v"; if duplicate :handle "${h}" '
     ':uniqueid "" :seconds 9999999999 { discard; } else { keep; }', "plain"),
    ("err-duplicate-header-and-id", 'require "duplicate"; if duplicate :header "s" :uniqueid "x" {}', "plain"),
    ("err-duplicate-two-last", 'require "duplicate"; if duplicate :last :last {}', "plain"),
    ("err-duplicate-handle-list", 'require "duplicate"; if duplicate :handle ["a", "b"] {}', "plain"),
    ("err-duplicate-argument", 'require "duplicate"; if duplicate "x" {}', "plain"),
    ("err-duplicate-no-require", 'if duplicate { discard; }', "plain"),
    # editheader (RFC 5293): later tests see the edited header
    ("edit-add-first", E + 'addheader "X-A" "1"; addheader "X-A" "2"; if header :index 1 :matches "x-a" "*" '
     '{ fileinto "x${1}"; }', "plain"),
    ("edit-add-last", E + 'addheader :last "X-A" "1"; addheader :last "X-A" "2"; if header :index 1 :matches '
     '"x-a" "*" { fileinto "x${1}"; }', "plain"),
    ("edit-add-subject-last", E + 'addheader :last "Subject" "two"; if header :index 2 :matches "subject" "*" '
     '{ fileinto "x${1}"; }', "plain"),
    ("edit-add-received", E + 'addheader "Received" "v1"; if header :count "eq" "received" "3" { discard; }',
     "plain"),
    ("edit-add-long", E + 'addheader "X-L" "aaaaaaaaaa bbbbbbbbbbbbbbbbbbb cccccccccccccccccccccccccc '
     'ddddddddddddddddddddddddddd eeeeeeeeeeeeeeeeeeeee ffffffffffffff"; if header :matches "x-l" "*" '
     '{ fileinto "x${1}"; }', "plain"),
    ("edit-add-utf8", E + 'addheader "X-U" "Gr\u00fc\u00dfe"; if header :matches "x-u" "*" { fileinto "x${1}"; }',
     "plain"),
    ("edit-add-fold", E + 'addheader "X-N" "a\r\n b"; if header :matches "x-n" "*" { fileinto "x${1}"; }', "plain"),
    ("edit-add-var-name", E + 'set "n" "X-V"; addheader "${n}" "1"; if exists "x-v" { discard; }', "plain"),
    ("edit-delete-all", E + 'deleteheader "subject"; if not exists "subject" { discard; }', "plain"),
    ("edit-delete-index-zero", E + 'deleteheader :index 0 "subject"; if exists "subject" { discard; }', "plain"),
    ("edit-delete-last-alone", E + 'deleteheader :last "subject"; if exists "subject" { discard; }', "plain"),
    ("edit-delete-received", E + 'deleteheader "received"; if header :count "eq" "received" "2" { discard; }',
     "plain"),
    ("edit-delete-auto-submitted", E + 'addheader "Auto-Submitted" "yes"; deleteheader "auto-submitted"; '
     'if exists "auto-submitted" { discard; }', "plain"),
    ("edit-delete-value", E + 'deleteheader :contains "to" "carol"; if exists "to" { keep; } else { discard; }',
     "plain"),
    ("edit-delete-value-no", E + 'deleteheader :contains "to" "nobody"; if header :matches "to" "*" '
     '{ fileinto "x${1}"; }', "plain"),
    ("edit-delete-index", E + 'addheader "X-A" "1"; addheader "X-A" "2"; addheader "X-A" "3"; '
     'deleteheader :index 2 "x-a"; if header :index 2 :matches "x-a" "*" { fileinto "y${1}"; }', "plain"),
    ("edit-delete-index-last", E + 'addheader "X-A" "1"; addheader "X-A" "2"; addheader "X-A" "3"; '
     'deleteheader :index 1 :last "x-a"; if header :index 2 :matches "x-a" "*" { fileinto "y${1}"; }', "plain"),
    ("edit-delete-index-value", E + 'addheader "X-A" "1"; addheader "X-A" "2"; deleteheader :index 1 :is "x-a" "1"; '
     'if header :count "eq" "x-a" "2" { discard; }', "plain"),
    ("edit-delete-list", E + 'deleteheader :matches "x-spam-score" ["1*", "7"]; if exists "x-spam-score" '
     '{ discard; }', "plain"),
    ("edit-delete-case", E + 'deleteheader "X-SPAM-score"; if exists "x-spam-score" { discard; }', "plain"),
    ("edit-size-unchanged", E + 'addheader "X-A" "1"; if size :over 700 { fileinto "big"; }', "plain"),
    ("edit-body-after", E + 'addheader "X-A" "1"; if body :contains "order 4711" { fileinto "b"; }', "multipart"),
    ("err-edit-name", E + 'addheader "X bad" "v";', "plain"),
    ("err-edit-name-delete", E + 'deleteheader "a:b";', "plain"),
    ("err-edit-name-list", E + 'deleteheader ["a", "b"];', "plain"),
    ("err-edit-value-list", E + 'addheader "x" ["a", "b"];', "plain"),
    ("err-edit-add-index", E + 'addheader :index 1 "x" "y";', "plain"),
    ("err-edit-name-var", E + 'set "n" "X V"; addheader "${n}" "1";', "plain"),
    ("err-edit-no-require", 'addheader "x" "y";', "plain"),
    # include (RFC 6609): the scripts of INCLUDES
    ("include-personal", I + 'include "inc-file";', "plain"),
    ("include-global", I + 'include :global "inc-file";', "plain"),
    ("include-both", I + 'include :personal "inc-file"; include :global "inc-file";', "plain"),
    ("include-optional", I + 'include :optional "inc-none"; keep;', "plain"),
    ("include-once", I + 'include :once "inc-file"; include :once "inc-file"; include "inc-file";', "plain"),
    ("include-globals", I + 'global "g"; set "g" "top"; set "l" "local-top"; include "inc-vars"; '
     'fileinto "after-${g}-${l}";', "plain"),
    ("include-not-global", I + 'set "g" "top"; include "inc-vars"; fileinto "after-${g}";', "plain"),
    ("include-return", I + 'include "inc-return"; fileinto "after";', "plain"),
    ("include-stop", I + 'include "inc-stop"; fileinto "after";', "plain"),
    ("include-return-top", I + 'fileinto "a"; return; fileinto "b";', "plain"),
    ("include-flags", I + 'include "inc-flags"; keep;', "plain"),
    ("include-tests-message", I + 'include "inc-test"; if string :is "${x}" "" { fileinto "none"; }', "plain"),
    ("err-include-missing", I + 'include "inc-none";', "plain"),
    ("err-include-loop", I + 'include "inc-loop-a";', "plain"),
    ("err-include-broken", I + 'include "inc-broken";', "plain"),
    ("err-include-two-locations", I + 'include :global :personal "inc-file";', "plain"),
    ("err-include-bad-name", I + 'include "a/b";', "plain"),
    ("err-include-name-list", I + 'include ["a", "b"];', "plain"),
    ("err-global-no-variables", 'require "include"; global "x";', "plain"),
    ("err-date-name-list", D + 'if date ["date", "received"] "year" "2026" { keep; }', "plain"),
    ("err-elsif-after-else", 'if true { keep; } else { keep; } elsif true { keep; }', "plain"),
    ("err-test-list-empty", 'if anyof () { keep; }', "plain"),
    ("err-fileinto-list", 'require "fileinto"; fileinto ["a", "b"];', "plain"),
    ("err-count-no-relational", 'if header :count "eq" "a" "1" { keep; }', "plain"),
    ("err-copy-no-require", 'redirect :copy "a@b.c";', "plain"),
    ("err-bad-relop", 'require "relational"; if header :value "xx" "a" "1" { keep; }', "plain"),
    ("err-unterminated-comment", '/* never ends', "plain"),
    ("err-text-unterminated", 'require "reject"; reject text:\r\nno end\r\n', "plain"),
]
