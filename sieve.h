/*
 * sieve.h - Sieve mail filtering (RFC 5228): the script compiler
 * (sieve_parse.c) and the interpreter (sieve_run.c). Pure modules: the
 * message and the envelope come from the caller, the actions go back to
 * it; nothing here delivers, reads files or sends mail.
 */
#ifndef RUMBLE_SIEVE_H
#define RUMBLE_SIEVE_H

#include "rumble.h"

#define SIEVE_SCRIPT_MAX (256 * 1024) /* bytes of one script */
#define SIEVE_NODES_MAX 20000         /* commands, tests and arguments of one script */
#define SIEVE_DEPTH_MAX 32            /* nesting of blocks and tests */
#define SIEVE_STRING_MAX (64 * 1024)  /* one string, after variables are expanded */
#define SIEVE_STEPS_MAX 100000        /* commands and tests run for one message */
#define SIEVE_ACTIONS_MAX 32          /* actions one message can get */
#define SIEVE_REDIRECTS_MAX 4         /* redirects per message (Pigeonhole's default) */
#define SIEVE_VARS_MAX 128            /* variables of one run */
#define SIEVE_INCLUDE_DEPTH 8        /* scripts including scripts (RFC 6609) */
#define SIEVE_INCLUDES_MAX 32        /* includes run for one message */
#define SIEVE_HEADER_MAX (256 * 1024) /* the header editheader leaves, in bytes */
#define SIEVE_DUPLICATE_DEFAULT (14 * 86400) /* duplicate's period without :seconds */
#define SIEVE_DUPLICATE_MAX (30 * 86400)     /* and the longest one (RFC 7352 3.3) */

/* Extensions a script may require (the "require" names). */
enum {
	SX_FILEINTO = 1 << 0, SX_REJECT = 1 << 1, SX_ENVELOPE = 1 << 2, SX_IMAP4FLAGS = 1 << 3,
	SX_VARIABLES = 1 << 4, SX_RELATIONAL = 1 << 5, SX_SUBADDRESS = 1 << 6, SX_COPY = 1 << 7,
	SX_BODY = 1 << 8, SX_MAILBOX = 1 << 9, SX_EREJECT = 1 << 10, SX_NUMERIC = 1 << 11,
	SX_VACATION = 1 << 12, SX_VACATION_SECONDS = 1 << 13, SX_DATE = 1 << 14, SX_INDEX = 1 << 15,
	SX_DUPLICATE = 1 << 16, SX_EDITHEADER = 1 << 17, SX_INCLUDE = 1 << 18
};

struct sieve_script; /* compiled: a tree of checked commands */

/* Compiles src[0..len). 0 with *out, or -1 with err "LINE:COL: what" (the
 * first error; 1-based, columns in bytes). */
int sieve_compile(const char *src, size_t len, struct sieve_script **out, char *err,
	size_t errlen);
void sieve_free(struct sieve_script *s);
/* The extensions the script requires (SX_*). */
unsigned sieve_requires(const struct sieve_script *s);

/* What a script sees of a message. msg[0..len) is the message in wire
 * form, at least its whole header; body_cut says the body was cut short
 * (body tests see what is there). size is the whole message's size. */
struct sieve_input {
	const char *msg;
	size_t len;
	uint64_t size;
	int body_cut;
	const char *from; /* envelope: MAIL FROM ("" for <>) */
	const char *to;   /* envelope: the recipient being delivered to */
	/* mailboxexists: 1 when the folder exists; NULL: only INBOX does */
	int (*folder_exists)(void *arg, const char *name);
	void *arg;
	int64_t now; /* currentdate's clock (seconds since the epoch); 0: os_time() */
	/* duplicate (RFC 7352): 1 when key (64 hex digits) was tracked and
	 * has not expired; NULL: nothing was */
	int (*seen)(void *arg, const char *key);
	/* include (RFC 6609): the text of script name (valid: letters, digits,
	 * . _ -), the user's own or (global) a global one, appended to out;
	 * 0, or -1 when there is none. NULL: there are none. */
	int (*load)(void *arg, int global, const char *name, struct buf *out);
};

enum sieve_kind { SA_KEEP, SA_FILEINTO, SA_REDIRECT, SA_DISCARD, SA_REJECT, SA_EREJECT,
	SA_VACATION, SA_DUPLICATE };
struct sieve_action {
	enum sieve_kind kind;
	char *arg;   /* folder (keep: "INBOX"), address, reason, vacation text,
	              * duplicate: the key to track (64 hex digits) */
	char *flags; /* IMAP flags to set, space-separated; NULL: none */
	int copy;    /* :copy (the implicit keep is kept) */
	int create;  /* fileinto :create */
	/* vacation, duplicate (:handle, :seconds; last: duplicate :last) */
	int64_t seconds;
	int last;
	char *subject, *from, *handle;
	char *addresses; /* :addresses, space-separated; NULL when none */
	int mime;
};
struct sieve_result {
	struct sieve_action *v;
	int n;
	int keep;         /* the implicit keep stands */
	char *keep_flags; /* the flags it stores with; NULL: none */
	char error[256];  /* a run-time error ("" if none): deliver as the implicit keep */
	/* editheader (RFC 5293): the header every action delivers or sends
	 * (its fields, each ending in CRLF, without the empty line), in place
	 * of the message's up to body_off (where its body starts); NULL when
	 * the script edited nothing. */
	char *header;
	size_t header_len, body_off;
};

/* Runs s on in. 0, or -1 with r->error (the actions so far are in r;
 * RFC 5228 2.10.6: the caller keeps the message in INBOX). Free r with
 * sieve_result_free either way. */
int sieve_run(const struct sieve_script *s, const struct sieve_input *in,
	struct sieve_result *r);
/* Runs the n scripts of s in turn on in, as if a script included each
 * (RFC 6609): one result, stop ends them all, global variables shared. */
int sieve_run_all(const struct sieve_script *const *s, int n, const struct sieve_input *in,
	struct sieve_result *r);
void sieve_result_free(struct sieve_result *r);
/* Appends the actions as Pigeonhole's sieve-test prints them ("Performed
 * actions:" and "Implicit keep:" with their lines), for differential
 * tests and `rumble sieve test`. */
void sieve_result_print(const struct sieve_result *r, struct buf *out);

/* ---- at delivery (sieve.c) ---- */

/* Runs the active script of user@domain on the message in sp (its header
 * and first 256 KB: body tests see no more); to is the address it came
 * to (envelope "to": user+detail@ for :detail), NULL for user@domain. 1 with r filled (free it
 * with sieve_result_free), 0 when the user has no script or it does not
 * compile (logged): deliver to INBOX. */
struct spool;
int sieve_decide(const char *domain, const char *user, const char *to, struct spool *sp,
	const char *from, struct sieve_result *r);
/* The active script of user@domain: its text appended to out and its
 * name into name; 0, or -1 when there is none. */
int sieve_script_get(const char *domain, const char *user, struct buf *out, char *name,
	size_t len);
/* Stores text as script name (letters, digits, . _ -) and makes it the
 * active one; it must compile: else -1 with err ("LINE:COL: what"). */
int sieve_script_put(const char *domain, const char *user, const char *name, const char *text,
	size_t len, char *err, size_t errlen);
/* No active script: mail goes to INBOX. */
int sieve_script_off(const char *domain, const char *user);

/* ---- scripts by name, for ManageSieve (sieve.c) ----
 * A name is UTF-8 without control characters (RFC 5804 1.6), at most
 * SIEVE_NAME_MAX bytes. Its file is <stem>.sieve in the user's sieve
 * folder: letters, digits, '_', '-' and '.' (not first) stay, every other
 * byte is %XX, so names stored before (the web admin's "webadmin") are
 * their own stems. */
#define SIEVE_NAME_MAX 64
#define SIEVE_SCRIPTS_MAX 20 /* scripts one user may have */
/* name as a stem into out; 0, or -1 when it is not a valid name. */
int sieve_name_encode(const char *name, char *out, size_t len);
/* A stem back to its name; 0, or -1 when it is not a stem. */
int sieve_name_decode(const char *stem, char *out, size_t len);
/* The active script's name into name; 0, or -1 ("") when none. */
int sieve_script_active(const char *domain, const char *user, char *name, size_t len);
int sieve_script_exists(const char *domain, const char *user, const char *name);
/* Appends script name's text to out; 0, or -1 when there is none. */
int sieve_script_read(const char *domain, const char *user, const char *name, struct buf *out);
/* Stores text as script name (created or replaced) if it compiles: 0,
 * -1 with err "LINE:COL: what", -2 when it cannot be written (err). */
int sieve_script_store(const char *domain, const char *user, const char *name, const char *text,
	size_t len, char *err, size_t errlen);
/* Makes name the active script ("": none); 0, -1 no such script, -2 I/O. */
int sieve_script_activate(const char *domain, const char *user, const char *name);
/* 0, -1 no such script, -2 it is the active one, -3 I/O. */
int sieve_script_delete(const char *domain, const char *user, const char *name);
/* 0, -1 no script from, -2 to exists, -3 I/O, -4 to is not a valid name.
 * The active script stays active under its new name. */
int sieve_script_rename(const char *domain, const char *user, const char *from, const char *to);
/* Calls fn for each script (fn may be NULL); returns how many, -1 when
 * the user's folder cannot be named. */
int sieve_script_list(const char *domain, const char *user,
	void (*fn)(const char *name, int active, void *arg), void *arg);

/* ---- managesieve.c: ManageSieve (RFC 5804) ---- */
extern const struct proto managesieve_proto;
/* Vacation (RFC 5230): 1 with the answer to send to from (envelope
 * sender <>) in reply, 0 when none is due: lists, bulk and automatic
 * mail, daemons, mail not addressed to the user, or the same answer sent
 * to from within the period (remembered in the user's sieve folder). */
int sieve_vacation(const char *domain, const char *user, const struct sieve_action *a,
	struct spool *sp, const char *from, struct buf *reply);
/* Tracks the duplicate keys of r (RFC 7352) in the user's sieve folder
 * once the message was delivered: a new key for its period, a tracked
 * one again only with :last. */
void sieve_duplicate_commit(const char *domain, const char *user, const struct sieve_result *r);
/* What scripts see of the message in sp: its first 256 KB (malloc'd,
 * *len bytes). */
char *sieve_head(struct spool *sp, size_t *len);
/* The MM_* bits of the system flags in flags; the keywords into keywords
 * (space-separated, cut at len). */
uint32_t sieve_flag_bits(const char *flags, char *keywords, size_t len);

/* ---- shared by sieve_parse.c and sieve_run.c only ---- */

enum sv_arg_kind { SV_TAG, SV_NUM, SV_STRS };
struct sv_arg {
	enum sv_arg_kind kind;
	int line, col;
	char *tag;   /* SV_TAG: lower case, without the ':' */
	uint64_t num;
	char **s;    /* SV_STRS: the strings (a single string is a list of one) */
	int n;
	int single;  /* written as one string, not a [list] */
};

/* Match types, comparators, address parts, relational operators. */
enum { SV_IS, SV_CONTAINS, SV_MATCHES, SV_COUNT, SV_VALUE };
enum { SV_CASEMAP, SV_OCTET, SV_NUMERIC };
enum { SV_ALL, SV_LOCALPART, SV_DOMAIN, SV_USER, SV_DETAIL };
enum { SV_GT, SV_GE, SV_LT, SV_LE, SV_EQ, SV_NE };
enum { SV_BODY_TEXT, SV_BODY_RAW, SV_BODY_CONTENT };

struct sv_node {
	int id; /* SV_C_* / SV_T_* in sieve_parse.c */
	int line, col;
	struct sv_arg *pos[3]; /* the positional arguments, in order */
	int npos;
	struct sv_node **tests; /* the test, or the tests of a test list */
	int ntests;
	struct sv_node *block;  /* the first command of its block */
	struct sv_node *next;   /* the next command */
	/* from the tagged arguments */
	int match, rel, cmp, part, body, over, copy, create, mime;
	uint32_t mods;          /* set's modifiers (SV_MOD_*) */
	struct sv_arg *flags;   /* :flags */
	struct sv_arg *types;   /* body :content */
	struct sv_arg *addresses; /* vacation :addresses */
	struct sv_arg *subject, *from, *handle;
	struct sv_arg *header, *uniqueid; /* duplicate :header, :uniqueid */
	int64_t seconds;        /* vacation :days / :seconds, -1 when not given */
	struct sv_arg *zone;    /* date, currentdate :zone */
	int origzone;           /* date :originalzone */
	uint64_t index;         /* :index N (RFC 5260 index), 0 when not given */
	int last;               /* :last */
	int global, once, optional; /* include :global (else :personal), :once, :optional */
};

enum {
	SV_C_REQUIRE, SV_C_IF, SV_C_ELSIF, SV_C_ELSE, SV_C_STOP, SV_C_KEEP, SV_C_DISCARD,
	SV_C_FILEINTO, SV_C_REDIRECT, SV_C_REJECT, SV_C_EREJECT, SV_C_SETFLAG, SV_C_ADDFLAG,
	SV_C_REMOVEFLAG, SV_C_SET, SV_C_VACATION, SV_C_ADDHEADER, SV_C_DELETEHEADER,
	SV_C_INCLUDE, SV_C_RETURN, SV_C_GLOBAL,
	SV_T_ADDRESS, SV_T_HEADER, SV_T_ENVELOPE, SV_T_EXISTS, SV_T_SIZE, SV_T_ALLOF, SV_T_ANYOF,
	SV_T_NOT, SV_T_TRUE, SV_T_FALSE, SV_T_BODY, SV_T_HASFLAG, SV_T_STRING,
	SV_T_MAILBOXEXISTS, SV_T_DATE, SV_T_CURRENTDATE, SV_T_DUPLICATE
};

/* set's modifiers, in RFC 5229 precedence order (applied low to high) */
enum { SV_MOD_LOWER = 1, SV_MOD_UPPER = 2, SV_MOD_LOWERFIRST = 4, SV_MOD_UPPERFIRST = 8,
	SV_MOD_QUOTEWILDCARD = 16, SV_MOD_LENGTH = 32 };

/* A script name include may load: letters, digits, . _ - (sieve_parse.c). */
int sieve_name_ok(const char *s);
/* A header field name: printable ASCII without ':' (sieve_parse.c). */
int sieve_field_name_ok(const char *s);

struct sieve_script {
	struct sv_node *first;
	unsigned requires;
	/* every allocation, freed together */
	void **mem;
	size_t nmem, capmem;
	size_t nodes;
};

#endif
