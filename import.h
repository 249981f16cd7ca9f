/*
 * import.h - what import.c (rumble import, rumble export) shows its unit
 * tests: how mail flags are read from and written to an mbox's state
 * fields and a Maildir file's name.
 */
#ifndef RUMBLE_IMPORT_H
#define RUMBLE_IMPORT_H

#include "rumble.h"

/* A header line of a message from an mbox (the start of a field, line end
 * or not): 1 when it is one of the mbox state fields an import drops
 * (Status, X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase,
 * X-Mozilla-Status, X-Mozilla-Status2), with the flags it says added to
 * *flags (MM_SEEN ...); 0 for any other field. */
int import_mbox_field(const char *line, size_t n, uint32_t *flags);
/* The flags of a Maildir file name's info, ":2,FRS" (';' or '!' for ':'
 * as written where ':' cannot be in a name): D F R S T; 0 without one. */
uint32_t import_maildir_flags(const char *name);
/* Dovecot's keywords in that info: bit i for the letter 'a' + i, the
 * keyword on line i of the folder's dovecot-keywords file. */
uint32_t import_maildir_letters(const char *name);
/* The info a Maildir file name ends in: sep, "2,", the flags' letters,
 * then the keyword letters (bit i: 'a' + i, up to 26), in ASCII order
 * (as the Maildir specification wants them). */
void import_maildir_info(uint32_t flags, uint32_t letters, char sep, char out[40]);

#endif
