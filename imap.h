/*
 * imap.h - what the files of the IMAP session share (imap.c, and
 * imap_search.c and imap_store.c, which hold commands split from it): the
 * session's state and the helpers its commands answer and read arguments
 * with. Nothing outside those files includes it; the parts of IMAP that
 * need no session (parsing, FETCH, LIST, ...) are declared in rumble.h.
 */
#ifndef RUMBLE_IMAP_H
#define RUMBLE_IMAP_H

#include "rumble.h"

#define IMAP_TAG_MAX 64
#define LOGIN_MAX (MM_USER_MAX + MM_DOMAIN_MAX + 2)

enum imap_state { I_NOAUTH, I_AUTH, I_SELECTED, I_LOGOUT };

struct args {
	const struct imap_cmd *c;
	uint32_t i;
	int uid; /* UID FETCH, UID STORE, ... */
};

struct imap {
	enum imap_state state;
	struct imap_cmd cmd;
	char tag[IMAP_TAG_MAX + 1];
	/* a literal being received */
	uint64_t lit_left;
	struct spool *sp; /* APPEND's message literal, while it is received and used */
	char *spdir;
	unsigned skip_line : 1, lit_discard : 1, lit_spool : 1, kicking : 1, resume : 1, idling : 1,
	        condstore : 1, qresync : 1, /* RFC 7162, once turned on */
	        rev2 : 1;                   /* ENABLE IMAP4rev2 */
	struct sasl *sasl; /* AUTHENTICATE under way (NULL otherwise: an idle session
	                      keeps no room for a password) */
	/* a Lua hook waiting for the client (RL_WAIT): the command (in cmd,
	 * kept until then) or the greeting (hook_cmd NULL) */
	int hook_wait;
	const struct cmd *hook_cmd;
	struct args hook_args;
	int errors, commands;
	char login[LOGIN_MAX]; /* user@domain once logged in */
	char user[MM_USER_MAX + 1], domain[MM_DOMAIN_MAX + 1];
	/* SELECTED */
	struct mm_folder *f;
	struct mm_view *v;
	char box[MM_FOLDER_MAX + 1];
	int readonly;
	uint32_t uidvalidity;
	uint32_t kw_told; /* the folder's keyword slots the client was told of (FLAGS) */
	struct imap_set saved; /* SEARCH RETURN (SAVE)'s result as UID ranges: "$" */
	int64_t idle_since;
	struct session_bell *bell; /* IDLE's wake-up, made at the first IDLE */
	struct imap_fetch *job;
	uint32_t *job_seqs;
	int job_uid;
	struct scan *scan; /* a SEARCH, SORT or THREAD under way */
};

/* Replies: the tagged OK, and NO or BAD (before login each counts, and
 * too many close the session). */
void imap__ok(struct session *s, struct imap *st, const char *fmt, ...) RL_PRINTF(3, 4);
void imap__fail(struct session *s, struct imap *st, const char *what, const char *fmt, ...)
	RL_PRINTF(4, 5);
#define ok(s, st, ...) imap__ok(s, st, __VA_ARGS__)
#define no(s, st, ...) imap__fail(s, st, "NO", __VA_ARGS__)
#define bad(s, st, ...) imap__fail(s, st, "BAD", __VA_ARGS__)

/* A command's arguments, through the cursor: at the end; the type of the
 * next token (-1 at the end); an astring, an atom, a parenthesis of type
 * (taken when it is there: 1). */
int imap__arg_end(const struct args *a);
int imap__arg_type(const struct args *a);
const char *imap__arg_astring(struct args *a);
const char *imap__arg_atom(struct args *a);
int imap__arg_paren(struct args *a, int type);
/* A sequence set (or UID set, "$") as sequence numbers; answers BAD and
 * returns -1 when it is invalid. */
int imap__arg_set(struct session *s, struct imap *st, struct args *a, uint32_t **seqs,
	uint32_t *n);
/* A flag list "(a b)" or, where bare allows, flags to the end: system
 * flags into *fl, keywords (made in f) into *kw; -1 when invalid. */
int imap__parse_flags(struct args *a, struct mm_folder *f, uint32_t *fl, uint32_t *kw, int bare);

/* The selected folder: FLAGS again when its keywords changed; what
 * changed since the client was told (EXPUNGE only when expunge is 1); -1
 * when the folder is gone (the session is closing then). */
void imap__tell_new_keywords(struct session *s, struct imap *st);
int imap__view_sync(struct session *s, struct imap *st, int expunge, int poll);

/* imap_search.c: SEARCH, SORT and THREAD, run in slices; scan_free ends
 * one under way (the session closes). imap_store.c: STORE. */
void imap__cmd_search(struct session *s, struct imap *st, struct args *a);
void imap__cmd_sort(struct session *s, struct imap *st, struct args *a);
void imap__cmd_thread(struct session *s, struct imap *st, struct args *a);
void imap__scan_free(struct imap *st);
void imap__cmd_store(struct session *s, struct imap *st, struct args *a);

#endif
