/*
 * admin.h - what the administration commands share: the commands that
 * live outside rumble.c (rumble.c's table runs them), and the progress
 * bar the long ones draw on a terminal (admin.c).
 */
#ifndef RUMBLE_ADMIN_H
#define RUMBLE_ADMIN_H

#include "rumble.h"

/* ---- commands in other files: run with the arguments after the name,
 * settings loaded and (CMD_STORAGE in rumble.c's table) mailman open;
 * 0, or non-zero after a one-line message on stderr ---- */
int cmd_sieve(int argc, char **argv); /* sieve.c: check|test */
int cmd_user_sieve(int argc, char **argv); /* sieve.c: user sieve USER@DOMAIN FILE|off|show */
int cmd_backup(int argc, char **argv);  /* backup.c: FILE */
int cmd_restore(int argc, char **argv); /* backup.c: FILE [SETTINGS-FILE] */
/* The settings file the command runs with (rumble.c sets it); NULL: built in. */
void admin_settings_set(const char *path);
const char *admin_settings_path(void);
int cmd_status(int argc, char **argv); /* stats.c: rumble status */
/* import USER@DOMAIN PATH, export USER@DOMAIN DIR (import.c) */
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);

/* ---- the log of administration actions (admin.c) ----
 * A command that changes something (add, del, passwd, a quota set, a
 * queue action, revoke; restore, import, compact) is one line in the
 * server's log: "admin via=cli by=USER client=local action="..." result=ok".
 * admin_audit_open (before privileges are dropped: the log may be root's)
 * opens LogFile, or StorageFolder/rumble.log when it exists (the Windows
 * service's default), for that line; argv starts at the command's name. */
void admin_audit_open(int argc, char **argv);
void admin_audit(int argc, char **argv, int rc);

/* rumble compact [USER@DOMAIN] (compact.c) */
int cmd_compact(int argc, char **argv);
/* The server's daily compaction in the hour CompactHour (compact.c). */
void compact_start(void);
void compact_stop(void);

/* ---- progress (admin.c) ----
 * A bar on stderr while it is a terminal, redrawn at most ten times a
 * second: "what [=====     ]  42% 12.3 MB/30.0 MB". Nothing on a pipe or
 * a file, so scripts and logs see only the final line the command prints. */
struct progress {
	const char *what;
	uint64_t total, done; /* in bytes (or items when total counts items) */
	int64_t drawn_ms;     /* when the bar was last drawn */
	int tty, bytes;
};
/* total 0: unknown (the bar shows only what is done). bytes: 1 to show
 * sizes, 0 to show counts. */
void progress_start(struct progress *p, const char *what, uint64_t total, int bytes);
void progress_add(struct progress *p, uint64_t n);
/* Clears the bar's line. */
void progress_end(struct progress *p);

#endif
