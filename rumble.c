/*
 * rumble.c - the host: command line, start-up and shutdown of the server,
 * and the administration commands (domain, user, alias) that work on the
 * same storage folder while the server runs.
 */
#include <string.h>

#include "admin.h"
#include "sieve.h"
#include "stats.h"

static const char usage[] =
	"usage: rumble [-c FILE] [--service]          run the server (foreground by default)\n"
	"       (--CONFIG-DIR=DIR instead of -c FILE: DIR/rumble.conf, as the original took it)\n"
	"       rumble [-c FILE] domain add|del NAME\n"
	"       rumble [-c FILE] domain list\n"
	"       rumble [-c FILE] domain quota NAME [STORAGE [MESSAGES]]  its accounts' default\n"
	"       rumble [-c FILE] user add|del|passwd USER@DOMAIN   (password read from stdin)\n"
	"       rumble [-c FILE] user list [DOMAIN]\n"
	"       rumble [-c FILE] user quota USER@DOMAIN [STORAGE [MESSAGES]] [--recalc]\n"
	"           show or set (STORAGE: 100M, 2G, ...; none; default) or count again\n"
	"       rumble [-c FILE] user sieve USER@DOMAIN SCRIPT [NAME]  filter its mail\n"
	"       rumble [-c FILE] user sieve USER@DOMAIN off|show\n"
	"       rumble [-c FILE] alias add ADDRESS TARGET...\n"
	"       rumble [-c FILE] feed add ADDRESS COMMAND...   (the message on its stdin)\n"
	"       rumble [-c FILE] relay add ADDRESS HOST[:PORT]  (sent on to that host)\n"
	"       rumble [-c FILE] alias|feed|relay list [DOMAIN]\n"
	"       rumble [-c FILE] alias|feed|relay del ADDRESS\n"
	"       rumble [-c FILE] dkim DOMAIN               the DNS record of its DKIM key\n"
	"       rumble [-c FILE] dns DOMAIN [--check]      every DNS record it needs; --check\n"
	"                                                  looks them up\n"
	"       rumble [-c FILE] acme revoke               revoke ACME's certificate; the\n"
	"                                                  server orders anew on SIGHUP\n"
	"       rumble [-c FILE] queue list                waiting messages and why\n"
	"       rumble [-c FILE] queue show|delete|bounce ID  (bounce: a DSN to the sender)\n"
	"       rumble [-c FILE] queue flush [ID]          try again now\n"
	"       rumble sieve check SCRIPT                  compile a Sieve script\n"
	"       rumble sieve test SCRIPT MESSAGE [FROM [TO]]  what it does to a message\n"
	"       rumble [-c FILE] backup FILE|-             the storage and settings as one\n"
	"                                                  tar, while the server runs\n"
	"       rumble [-c FILE] restore FILE|- [SETTINGS] into an empty StorageFolder\n"
	"       rumble [-c FILE] status                    disk, queue, mail per hour, mailboxes\n"
	"       rumble [-c FILE] import USER@DOMAIN MAILDIR|MBOX [FOLDER]  mail in, flags kept,\n"
	"                                                  no duplicates (FOLDER: an mbox's, INBOX)\n"
	"       rumble [-c FILE] export USER@DOMAIN DIR    every folder to a new Maildir++\n"
	"       rumble [-c FILE] compact [USER@DOMAIN]     expunged mail leaves the disk now\n"
	"       rumble [-c FILE] stop|reload               the server in PidFile (POSIX)\n"
	"       rumble [-c FILE] service install [NAME]   (Windows; NAME defaults to Rumble)\n"
	"       rumble service uninstall|start|stop|reload|status [NAME]\n"
	"       rumble --version | --help\n";

static struct service smtp_service = {.name = "smtp", .proto = &smtp_proto};
static struct service submission_service = {
	.name = "submission", .proto = &smtp_proto, .flags = SVC_AUTH_FIRST};
static struct service pop3_service = {.name = "pop3", .proto = &pop3_proto};
static struct service smtps_service = {.name = "smtps", .proto = &smtp_proto, .flags = SVC_TLS};
static struct service pop3s_service = {.name = "pop3s", .proto = &pop3_proto, .flags = SVC_TLS};
static struct service imap_service = {.name = "imap4", .proto = &imap_proto};
static struct service imaps_service = {.name = "imaps", .proto = &imap_proto, .flags = SVC_TLS};
static struct service managesieve_service = {.name = "managesieve", .proto = &managesieve_proto};

/* Every listening service, with the settings that switch it on. */
static const struct {
	struct service *svc;
	const int *enabled, *port;
} listeners[] = {
	{&smtp_service, &conf.smtp_enable, &conf.smtp_port},
	{&submission_service, &conf.submission_enable, &conf.submission_port},
	{&pop3_service, &conf.pop3_enable, &conf.pop3_port},
	{&smtps_service, &conf.smtps_enable, &conf.smtps_port},
	{&pop3s_service, &conf.pop3s_enable, &conf.pop3s_port},
	{&imap_service, &conf.imap_enable, &conf.imap_port},
	{&imaps_service, &conf.imaps_enable, &conf.imaps_port},
	{&managesieve_service, &conf.managesieve_enable, &conf.managesieve_port},
};

/* ---- configuration ---- */

/* -c FILE, else rumble.conf here, else conf/rumble.conf, else the
 * original's config/rumble.conf; NULL: built in. */
static const char *settings_path(const char *path)
{
	static const char *tries[] = {"rumble.conf", "conf/rumble.conf", "config/rumble.conf"};
	struct os_stat st;
	for (size_t i = 0; !path && i < sizeof tries / sizeof tries[0]; i++) {
		if (os_stat(tries[i], &st) == 0) {
			path = tries[i];
		}
	}
	return path;
}

static int load_settings(const char *path, char *err, size_t errlen)
{
	struct config c = {0};
	path = settings_path(path);
	admin_settings_set(path);
	int rc = path ? config_load(&c, path, err, errlen)
	              : config_parse(&c, config_default_text, "(built-in)", err, errlen);
	if (rc == 0) {
		rc = config_apply(&conf, &c, err, errlen);
	}
	config_free(&c);
	return rc;
}

static int fail(const char *fmt, const char *arg);

/* ---- the pid file ---- */

/* PidFile, else StorageFolder/rumble.pid; 0 when it is "none". */
static int pid_path(char *out, size_t len)
{
	if (!rl_strcasecmp(conf.pid_file, "none")) {
		return 0;
	}
	if (*conf.pid_file) {
		rl_strlcpy(out, conf.pid_file, len);
	} else {
		snprintf(out, len, "%s/rumble.pid", conf.storage);
	}
	return 1;
}

/* The process id in the file at path; 0 when there is none. */
static long pid_read(const char *path)
{
	char text[32] = "";
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		return 0;
	}
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	long pid = strtol(text, NULL, 10);
	return pid > 0 ? pid : 0;
}

/* The server keeps its pid file open and locked while it runs: a file
 * nobody holds is stale whatever its number says (after a reboot the
 * number may be another program's). 1 when a process holds it. */
static FILE *pid_lock;

static int pid_held(const char *path)
{
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		return 0;
	}
	int r = os_trylock(f);
	fclose(f); /* releases what it got */
	return r == 1;
}

/* After binding and detaching: a PidFile before privileges are dropped
 * (dropped 0: its folder may be root's, as /run is), the default one in
 * StorageFolder after (dropped 1: it is RunAs's folder, and the file stays
 * RunAs's). A stale file (a crash, a reboot) is replaced; one a running
 * server holds stops the start. */
static int pid_write(int dropped)
{
	char path[1100], text[32];
	if (!pid_path(path, sizeof path) || dropped != !*conf.pid_file) {
		return 0;
	}
	if (!*conf.pid_file) {
		os_mkdir_p(conf.storage);
	}
	long old = pid_read(path);
	if (pid_held(path)) {
		log_warnx("PidFile %s: a server runs already (pid %ld); stop it first", path, old);
		return -1;
	}
	if (old) {
		log_info(
		        "PidFile %s: replacing a stale one (pid %ld no longer runs it)", path, old);
	}
	int n = snprintf(text, sizeof text, "%ld\n", os_getpid());
	if (os_write_file_atomic(path, text, (size_t)n) != 0) {
		log_warn("PidFile %s: cannot write", path);
		return -1;
	}
	pid_lock = os_fopen(path, "rb");
	if (!pid_lock || os_trylock(pid_lock) != 0) {
		log_warn("PidFile %s: cannot lock", path);
	}
	return 0;
}

/* At a clean stop, when the file still names this process. */
static void pid_remove(void)
{
	char path[1100];
	if (!pid_lock) {
		return;
	}
	fclose(pid_lock);
	pid_lock = NULL;
	if (pid_path(path, sizeof path) && pid_read(path) == os_getpid() && os_remove(path) != 0) {
		log_warn("PidFile %s: cannot remove (the next start replaces it)", path);
	}
}

/* stop and reload: SIGTERM or SIGHUP to the server that holds the pid
 * file; stop waits (30 s at most) until it let go of the file. */
static int cmd_signal(const char *verb)
{
	char path[1100], err[256];
	int stop = !strcmp(verb, "stop");
	if (!pid_path(path, sizeof path)) {
		return fail("%s: PidFile is none: no pid file to find the server by", verb);
	}
	long pid = pid_read(path);
	if (!pid || !pid_held(path) || !os_process_alive(pid)) {
		fprintf(stderr, "rumble: %s: no server runs (%s %s)\n", verb, path,
		        pid ? "is stale" : "does not exist");
		return 1;
	}
	if (os_process_signal(pid, stop ? OS_SIG_STOP : OS_SIG_RELOAD, err, sizeof err) != 0) {
		return fail("%s", err);
	}
	for (int i = 0; stop && i < 300 && pid_held(path); i++) {
		os_sleep_ms(100);
	}
	if (stop && pid_held(path)) {
		fprintf(stderr, "rumble: stop: pid %ld did not stop within 30 s\n", pid);
		return 1;
	}
	printf("%s (pid %ld)\n", stop ? "stopped" : "reload requested", pid);
	return 0;
}

static int cmd_stop(int argc, char **argv)
{
	(void)argv;
	return argc == 0 ? cmd_signal("stop") : fail("stop: takes no arguments%s", "");
}

static int cmd_reload(int argc, char **argv)
{
	(void)argv;
	return argc == 0 ? cmd_signal("reload") : fail("reload: takes no arguments%s", "");
}

/* ---- the server ---- */

static void start_dns(void)
{
	char err[256];
	if (dns_init(conf.dns_server, err, sizeof err) != 0) {
		log_warnx("DNS: %s; lookups will fail until this is fixed", err);
	}
}

static void reload_tls(void);

static void on_reload(void)
{
	log_reopen(); /* SIGHUP is logrotate's usual postrotate too */
	log_info("reload: re-reading domains and accounts");
	mm_reload();
	start_dns(); /* resolv.conf may have changed; the cache stays */
	reload_tls();
	rl_reload();
	acme_kick();
}

static int listen_all(void)
{
	char err[256];
	for (size_t i = 0; i < sizeof listeners / sizeof listeners[0]; i++) {
		struct service *svc = listeners[i].svc;
		if (!*listeners[i].enabled) {
			continue;
		}
		svc->port = *listeners[i].port;
		if (server_listen(svc, conf.bind, conf.force_ipv4, err, sizeof err) != 0) {
			log_warnx("%s: cannot listen on port %d: %s", svc->name, svc->port, err);
			return -1;
		}
		log_info("%s listening on %s:%d", svc->name, *conf.bind ? conf.bind : "*", svc->port);
	}
	return 0;
}

/* The certificate and key files: TLSCertificate/TLSKey, or the ones in
 * StorageFolder/tls. */
static void tls_paths(char *cert, char *key, size_t len)
{
	if (*conf.tls_cert) {
		rl_strlcpy(cert, conf.tls_cert, len);
		rl_strlcpy(key, conf.tls_key, len);
	} else {
		snprintf(cert, len, "%s/tls/cert.pem", conf.storage);
		snprintf(key, len, "%s/tls/key.pem", conf.storage);
	}
}

/* What the loaded files looked like: a reload loads them again only when
 * one changed (a renewal, an admin's copy). */
static struct os_stat tls_seen[2];

static void tls_stamp(const char *cert, const char *key, struct os_stat st[2])
{
	memset(st, 0, 2 * sizeof *st);
	os_stat(cert, &st[0]);
	os_stat(key, &st[1]);
}

static int tls_same(const struct os_stat *a, const struct os_stat *b)
{
	return a->size == b->size && a->mtime == b->mtime && a->mtime_ns == b->mtime_ns &&
	       a->ctime == b->ctime;
}

/* On SIGHUP or the service's reload: new connections get the files'
 * certificate when they changed; sessions under way keep theirs. A file
 * that does not load leaves the old certificate in use. */
static void reload_tls(void)
{
	char err[512], cert[1100], key[1100];
	struct os_stat now[2];
	if (!server_has_tls()) {
		return;
	}
	tls_paths(cert, key, sizeof cert);
	tls_stamp(cert, key, now);
	if (tls_same(&now[0], &tls_seen[0]) && tls_same(&now[1], &tls_seen[1])) {
		return;
	}
	struct tls_ctx *c = tls_ctx_load(cert, key, err, sizeof err);
	if (!c) {
		log_warnx("TLS: reload: %s; the certificate in use stays", err);
		return;
	}
	memcpy(tls_seen, now, sizeof tls_seen);
	log_info("TLS: reloaded: %s", tls_ctx_describe(c));
	server_set_tls(c);
}

/* TLSCertificate/TLSKey when configured (read before privileges are
 * dropped: keys are often root's), else a self-signed certificate for
 * ServerName kept in the storage folder, made on first start. */
static int setup_tls(int configured_only)
{
	char err[512], cert[1100], key[1100];
	if (configured_only != (*conf.tls_cert != 0)) {
		return 0;
	}
	tls_paths(cert, key, sizeof cert);
	if (!*conf.tls_cert) {
		struct os_stat st;
		char dir[1100];
		snprintf(dir, sizeof dir, "%s/tls", conf.storage);
		os_mkdir_p(dir);
		if (os_stat(cert, &st) != 0 || os_stat(key, &st) != 0) {
			if (tls_selfsigned_create(cert, key, conf.server_name, err, sizeof err) != 0) {
				log_warnx("TLS: cannot create a certificate: %s", err);
				return -1;
			}
			log_info("TLS: created a self-signed certificate for %s in %s", conf.server_name,
				cert);
		}
	}
	tls_stamp(cert, key, tls_seen);
	struct tls_ctx *c = tls_ctx_load(cert, key, err, sizeof err);
	if (!c) {
		log_warnx("TLS: %s", err);
		return -1;
	}
	log_info("TLS: %s", tls_ctx_describe(c));
	server_set_tls(c);
	return 0;
}

/* As root with RunAs: what in the storage folder that user could not use
 * is given to it first (files made by the command line run as root are
 * root's), or one line says which path stays closed and the chown to run. */
static int give_storage(char *err, size_t errlen)
{
	long n = os_give_tree(conf.storage, conf.run_as, conf.run_as_group, err, errlen);
	if (n > 0) {
		log_info("RunAs: gave %ld files and folders in %s to %s", n, conf.storage,
		        conf.run_as);
	}
	return n < 0 ? -1 : 0;
}

static int run_dropped(int64_t t0);

static int run_server(int detach)
{
	char err[1200];
	int64_t t0 = os_now_ms();
	long fds = os_raise_fd_limit(); /* idle clients cost a descriptor each */
	if (fds > 0 && fds < 4096) {
		log_warnx("only %ld open files allowed: at most about that many connections", fds);
	}
	if (setup_tls(1) != 0) {
		return 1;
	}
	tls_alpn_init();
	wellknown_start();
	if (listen_all() != 0) {
		return 1;
	}
	if (give_storage(err, sizeof err) != 0) {
		log_warnx("RunAs: %s", err);
		return 1;
	}
	if (detach && os_daemonize() != 0) {
		log_warn("cannot detach");
		return 1;
	}
	if (pid_write(0) != 0) {
		return 1;
	}
	int rc = run_dropped(t0);
	pid_remove();
	return rc;
}

/* The server once its ports are bound: as RunAs from here. */
static int run_dropped(int64_t t0)
{
	char err[1200];
	if (os_drop_privileges(conf.run_as, conf.run_as_group, err, sizeof err) != 0) {
		log_warnx("RunAs: %s", err);
		return 1;
	}
	if (pid_write(1) != 0) {
		return 1;
	}
	if (mm_open(conf.storage, err, sizeof err) != 0) {
		log_warnx("storage: %s", err);
		return 1;
	}
	mm_upgrade_names(); /* before anything opens a folder */
	if (setup_tls(0) != 0) {
		return 1;
	}
	start_dns();
	greylist_load(os_time());
	work_start();
	stats_start();
	if (queue_start() != 0 || server_start(conf.workers) != 0) {
		return 1;
	}
	for (size_t i = 0; i < sizeof listeners / sizeof listeners[0]; i++) {
		rl_service_add(listeners[i].svc, *listeners[i].port);
	}
	if (rl_start(err, sizeof err) != 0) {
		log_warnx("lua: %s; scripts are off", err);
	}
	if (conf.acme_enable) {
		char cert[1100], key[1100];
		tls_paths(cert, key, sizeof cert);
		acme_start(cert, key);
	}
	log_info("rumble %s ready in %lld ms, storage %s, pid %ld", RUMBLE_VERSION,
		(long long)(os_now_ms() - t0), conf.storage, os_getpid());
	compact_start();
	os_service_ready();
	server_run(on_reload);
	log_info("stopping: waiting for sessions to finish");
	compact_stop();
	acme_stop();
	server_stop(5000);
	work_stop();
	if (conf.greylist && greylist_save(os_time()) != 0) {
		log_warn("greylist: cannot save");
	}
	greylist_free();
	rl_stop();
	queue_stop();
	stats_stop();
	dns_shutdown();
	mm_close();
	log_info("stopped");
	return 0;
}

/* ---- administration ---- */

static int fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "rumble: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return 1;
}

static int split(const char *addr, struct mm_account *a)
{
	const char *at = strrchr(addr, '@');
	if (!at || (size_t)(at - addr) > MM_USER_MAX || strlen(at + 1) > MM_DOMAIN_MAX) {
		return -1;
	}
	memset(a, 0, sizeof *a);
	memcpy(a->user, addr, (size_t)(at - addr));
	strcpy(a->domain, at + 1);
	rl_lower(a->user);
	rl_lower(a->domain);
	return 0;
}

static int print_domain(const struct mm_domain *d, void *arg)
{
	printf("%s\n", d->name);
	return 0;
}

static int print_account(const struct mm_account *a, void *arg)
{
	printf("%s@%s\t%s%s%s\n", a->user, a->domain, mm_type_name(a->type), *a->args ? "\t" : "",
		a->args);
	return 0;
}

/* A limit as set on an account or a domain. */
static const char *quota_text(uint64_t v, char *out, size_t len)
{
	if (v == 0 || v == MM_QUOTA_NONE) {
		return v ? "none" : "default";
	}
	snprintf(out, len, "%llu", (unsigned long long)v);
	return out;
}

/* STORAGE [MESSAGES] from argv into q (a message count left out stays). */
static int quota_args(int argc, char **argv, struct mm_quota *q)
{
	if (argc < 1 || argc > 2 || quota_parse_kib(argv[0], &q->kib) != 0 ||
	        (argc == 2 && quota_parse_msgs(argv[1], &q->msgs) != 0)) {
		return fail("%s", "quota: expected STORAGE (100M, 2G, none, default) and optionally "
		                  "MESSAGES (a count, none, default)");
	}
	return 0;
}

/* domain quota NAME [STORAGE [MESSAGES]]: the default of its accounts */
static int cmd_domain_quota(int argc, char **argv)
{
	char err[256], a[32], b[32];
	struct mm_domain d;
	if (argc < 1 || mm_domain_get(argv[0], &d) != 0) {
		return fail("domain: no such domain %s", argc ? argv[0] : "");
	}
	if (argc > 1 && quota_args(argc - 1, argv + 1, &d.quota) != 0) {
		return 1;
	}
	if (argc > 1 && mm_domain_set_quota(d.name, &d.quota, err, sizeof err) != 0) {
		return fail("domain: %s", err);
	}
	printf("%s: storage %s KiB, messages %s (its accounts' default)\n", d.name,
	        quota_text(d.quota.kib, a, sizeof a), quota_text(d.quota.msgs, b, sizeof b));
	return 0;
}

static int cmd_domain(int argc, char **argv)
{
	char err[256];
	if (argc == 1 && !strcmp(argv[0], "list")) {
		mm_domain_list(print_domain, NULL);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[0], "quota")) {
		return cmd_domain_quota(argc - 1, argv + 1);
	}
	if (argc != 2) {
		return fail("%s", "domain: expected add|del|quota NAME, or list");
	}
	int add = !strcmp(argv[0], "add");
	int rc = add                       ? mm_domain_add(argv[1], err, sizeof err)
	         : !strcmp(argv[0], "del") ? mm_domain_del(argv[1], err, sizeof err)
	                                   : (snprintf(err, sizeof err, "unknown verb %s", argv[0]), -1);
	if (rc != 0) {
		return fail("domain: %s", err);
	}
	printf("%s domain %s\n", add ? "added" : "deleted", argv[1]);
	if (add && mm_domain_count() == 2) {
		fprintf(stderr, "rumble: warning: %s\n", MM_SECOND_DOMAIN_WARNING);
	}
	return 0;
}

static void print_quota(const struct mm_account *a, const struct quota_state *q)
{
	unsigned long long kib = (q->bytes + 1023) / 1024;
	printf("%s@%s: storage %llu", a->user, a->domain, kib);
	if (q->kib_limit) {
		printf(" of %llu KiB (%llu%%)", (unsigned long long)q->kib_limit,
		        kib * 100 / q->kib_limit);
	} else {
		printf(" KiB (no limit)");
	}
	printf(", messages %llu", (unsigned long long)q->msgs);
	if (q->msgs_limit) {
		printf(" of %llu (%llu%%)\n", (unsigned long long)q->msgs_limit,
		        (unsigned long long)(q->msgs * 100 / q->msgs_limit));
	} else {
		printf(" (no limit)\n");
	}
}

/* user quota USER@DOMAIN [STORAGE [MESSAGES]] [--recalc] */
static int cmd_user_quota(int argc, char **argv)
{
	char err[256];
	struct mm_account a;
	struct quota_state q;
	int recalc = 0, n = 0;
	char *rest[3];
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--recalc")) {
			recalc = 1;
		} else if (n < 3) {
			rest[n++] = argv[i];
		} else {
			return fail("%s", "user: too many arguments to quota");
		}
	}
	if (n < 1 || split(rest[0], &a) != 0 || mm_account_get(a.domain, a.user, &a) != 0 ||
	        a.type != MM_MBOX) {
		return fail("user: no such mailbox %s", n ? rest[0] : "(none given)");
	}
	if (n > 1 && quota_args(n - 1, rest + 1, &a.quota) != 0) {
		return 1;
	}
	if (n > 1 && mm_account_save(&a, err, sizeof err) != 0) {
		return fail("user: %s", err);
	}
	if ((recalc ? quota_recalc(a.domain, a.user, &q) : quota_get(a.domain, a.user, &q)) != 0) {
		return fail("user: cannot read the folders of %s", rest[0]);
	}
	print_quota(&a, &q);
	return 0;
}

/* The password comes from standard input, never the command line. */
static int read_password(char *hash, size_t len)
{
	char pw[512], why[128];
	if (os_read_secret(pw, sizeof pw) < 0 || !*pw) {
		return fail("%s", "user: no password on standard input");
	}
	if (password_check(pw, why, sizeof why) != 0) {
		memset(pw, 0, sizeof pw);
		return fail("user: %s (MinPasswordLength)", why);
	}
	int rc = crypto_password_hash(pw, hash, len);
	memset(pw, 0, sizeof pw);
	return rc == 0 ? 0 : fail("%s", "user: cannot hash the password");
}

static int cmd_user(int argc, char **argv)
{
	char err[256];
	struct mm_account a;
	if (argc >= 1 && !strcmp(argv[0], "list") && argc <= 2) {
		mm_account_list(argc == 2 ? argv[1] : NULL, print_account, NULL);
		return 0;
	}
	if (argc >= 1 && !strcmp(argv[0], "quota")) {
		return cmd_user_quota(argc - 1, argv + 1);
	}
	if (argc >= 1 && !strcmp(argv[0], "sieve")) {
		return cmd_user_sieve(argc - 1, argv + 1);
	}
	if (argc != 2) {
		return fail("%s", "user: expected add|del|passwd USER@DOMAIN, or list [DOMAIN]");
	}
	if (split(argv[1], &a) != 0) {
		return fail("user: %s is not USER@DOMAIN", argv[1]);
	}
	if (!strcmp(argv[0], "del")) {
		if (mm_account_del(a.domain, a.user, err, sizeof err) != 0) {
			return fail("user: %s", err);
		}
		printf("deleted user %s@%s\n", a.user, a.domain);
		return 0;
	}
	int add = !strcmp(argv[0], "add");
	if (!add && strcmp(argv[0], "passwd") != 0) {
		return fail("user: unknown verb %s", argv[0]);
	}
	if (add && mm_account_get(a.domain, a.user, &a) == 0) {
		return fail("user: %s exists already", argv[1]);
	}
	if (!add && mm_account_get(a.domain, a.user, &a) != 0) {
		return fail("user: no such account %s", argv[1]);
	}
	if (read_password(a.password, sizeof a.password) != 0) {
		return 1;
	}
	if (mm_account_save(&a, err, sizeof err) != 0) {
		return fail("user: %s", err);
	}
	printf(add ? "added user %s@%s\n" : "changed the password of %s@%s\n", a.user, a.domain);
	return 0;
}

static int print_typed(const struct mm_account *a, void *arg)
{
	if (a->type == *(const enum mm_type *)arg) {
		printf("%s@%s\t%s\n", a->user, a->domain, a->args);
	}
	return 0;
}

/* alias|feed|relay list [DOMAIN] and del ADDRESS */
static int forward_list_del(enum mm_type type, int argc, char **argv)
{
	char err[256];
	struct mm_account a;
	const char *what = mm_type_name(type);
	if (!strcmp(argv[0], "list")) {
		mm_account_list(argc == 2 ? argv[1] : NULL, print_typed, &type);
		return 0;
	}
	if (split(argv[1], &a) != 0 || mm_account_get(a.domain, a.user, &a) != 0 ||
	        a.type != type) {
		fprintf(stderr, "rumble: %s: no such %s %s\n", what, what, argv[1]);
		return 1;
	}
	if (mm_account_del(a.domain, a.user, err, sizeof err) != 0) {
		fprintf(stderr, "rumble: %s: %s\n", what, err);
		return 1;
	}
	printf("deleted %s %s@%s\n", what, a.user, a.domain);
	return 0;
}

/* alias add ADDRESS TARGET... and feed add ADDRESS COMMAND...: accounts
 * whose arguments are the rest of the line; list and del too. */
static int cmd_forward(enum mm_type type, int argc, char **argv)
{
	char err[256];
	struct mm_account a;
	const char *what = mm_type_name(type);
	if ((argc == 1 || argc == 2) && !strcmp(argv[0], "list")) {
		return forward_list_del(type, argc, argv);
	}
	if (argc == 2 && !strcmp(argv[0], "del")) {
		return forward_list_del(type, argc, argv);
	}
	if (argc < 3 || strcmp(argv[0], "add") != 0) {
		fprintf(stderr, "rumble: %s: expected add ADDRESS %s..., list [DOMAIN] or del ADDRESS\n",
			what, type == MM_ALIAS ? "TARGET" : type == MM_RELAY ? "HOST[:PORT]" : "COMMAND");
		return 1;
	}
	if (split(argv[1], &a) != 0) {
		return fail("%s: not USER@DOMAIN", argv[1]);
	}
	struct mm_account old;
	int had = mm_account_get(a.domain, a.user, &old) == 0;
	if (had) {
		a.id = old.id; /* replaces the targets */
	}
	a.type = type;
	for (int i = 2; i < argc; i++) {
		if (strlen(a.args) + strlen(argv[i]) + 2 > sizeof a.args) {
			return fail("%s: arguments too long", what);
		}
		if (strpbrk(argv[i], "\t\r\n")) {
			return fail("%s: tabs and line breaks are not allowed", what);
		}
		strcat(strcat(a.args, i > 2 ? " " : ""), argv[i]);
	}
	if (mm_account_save(&a, err, sizeof err) != 0) {
		fprintf(stderr, "rumble: %s: %s\n", what, err);
		return 1;
	}
	printf("%s %s %s@%s: %s\n", had ? "changed" : "added", what, a.user, a.domain, a.args);
	return 0;
}

static int cmd_alias(int argc, char **argv)
{
	return cmd_forward(MM_ALIAS, argc, argv);
}

static int cmd_relay(int argc, char **argv)
{
	return cmd_forward(MM_RELAY, argc, argv);
}

static int cmd_feed(int argc, char **argv)
{
	return cmd_forward(MM_FEED, argc, argv);
}

/* dkim DOMAIN: the DNS record of the domain's DKIM key (made if missing). */
static int cmd_dkim(int argc, char **argv)
{
	char err[256], domain[MM_DOMAIN_MAX + 1];
	if (argc != 1 || rl_strlcpy(domain, argv[0], sizeof domain) >= sizeof domain) {
		return fail("usage: rumble dkim DOMAIN%s", "");
	}
	rl_lower(domain);
	if (!mm_domain_exists(domain)) {
		return fail("no such domain: %s", domain);
	}
	struct buf out;
	buf_init(&out);
	int rc = dkim_record(domain, &out, err, sizeof err);
	if (rc == 0) {
		fwrite(out.data, 1, out.len, stdout);
	}
	buf_free(&out);
	return rc == 0 ? 0 : fail("dkim: %s", err);
}

/* dns DOMAIN [--check]: the records to publish; with --check, looked up,
 * exit 1 when a required one is missing or wrong. */
static int cmd_dns(int argc, char **argv)
{
	char err[256], domain[MM_DOMAIN_MAX + 1];
	int check = argc == 2 && !strcmp(argv[1], "--check");
	if ((argc != 1 && !check) || rl_strlcpy(domain, argv[0], sizeof domain) >= sizeof domain) {
		return fail("usage: rumble dns DOMAIN [--check]%s", "");
	}
	rl_lower(domain);
	if (!mm_domain_exists(domain)) {
		return fail("no such domain: %s", domain);
	}
	if (check && dns_init(conf.dns_server, err, sizeof err) != 0) {
		return fail("DNS: %s", err);
	}
	struct buf out;
	buf_init(&out);
	int problems = dns_advice(domain, check, &out);
	fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	if (check) {
		dns_shutdown();
	}
	return problems ? 1 : 0;
}

/* service install|uninstall|start|stop|reload|status [NAME]: the Windows service
 * manager's entry for this server; os.h says what each does. */
static int cmd_service(const char *cfg, int argc, char **argv)
{
	char err[512], state[64];
	const char *name = argc == 2 ? argv[1] : "Rumble";
	if (argc < 1 || argc > 2) {
		return fail("%s", "service: expected install|uninstall|start|stop|reload|status [NAME]");
	}
	const char *verb = argv[0];
	int rc;
	if (!strcmp(verb, "install")) {
		/* the service reads the file each start: it has to exist and load */
		cfg = settings_path(cfg);
		if (!cfg) {
			return fail("%s", "service install: no rumble.conf here; give -c FILE");
		}
		if (load_settings(cfg, err, sizeof err) != 0) {
			return fail("service install: %s", err);
		}
		settings_free(&conf);
		rc = os_service_install(name, cfg, err, sizeof err);
	} else if (!strcmp(verb, "uninstall")) {
		rc = os_service_uninstall(name, err, sizeof err);
	} else if (!strcmp(verb, "start")) {
		rc = os_service_start(name, err, sizeof err);
	} else if (!strcmp(verb, "stop")) {
		rc = os_service_stop(name, err, sizeof err);
	} else if (!strcmp(verb, "reload")) {
		rc = os_service_reload(name, err, sizeof err);
	} else if (!strcmp(verb, "status")) {
		rc = os_service_status(name, state, sizeof state, err, sizeof err);
		if (rc >= 0) {
			printf("%s %s\n", name, state);
			return rc == 1 ? 0 : 3; /* 3: not running, as systemctl and LSB say */
		}
	} else {
		return fail("service: unknown verb %s", verb);
	}
	if (rc != 0) {
		fprintf(stderr, "rumble: service %s %s: %s\n", verb, name, err);
		return 1;
	}
	printf("%s: %s %s\n", name, verb, !strcmp(verb, "install") ? "done" : "ok");
	return 0;
}

/* acme revoke: the certificate ACME got is revoked at the CA. */
static int cmd_acme(int argc, char **argv)
{
	char err[600], cert[1100], key[1100];
	if (argc != 1 || strcmp(argv[0], "revoke") != 0) {
		return fail("usage: rumble acme revoke%s", "");
	}
	tls_paths(cert, key, sizeof cert);
	if (dns_init(conf.dns_server, err, sizeof err) != 0) { /* httpc asks DNSServer first */
		log_warnx("DNS: %s", err);
	}
	if (acme_revoke(cert, err, sizeof err) != 0) {
		return fail("acme: %s", err);
	}
	printf("revoked %s; a reload of the server (SIGHUP) orders a new one\n", cert);
	return 0;
}

/* "3m", "5h", "2d": how long ago t was, or how long until it. */
static const char *span(int64_t secs, char *out, size_t len)
{
	secs = secs < 0 ? 0 : secs;
	if (secs < 120) {
		snprintf(out, len, "%llds", (long long)secs);
	} else if (secs < 7200) {
		snprintf(out, len, "%lldm", (long long)(secs / 60));
	} else if (secs < 2 * 86400) {
		snprintf(out, len, "%lldh", (long long)(secs / 3600));
	} else {
		snprintf(out, len, "%lldd", (long long)(secs / 86400));
	}
	return out;
}

static int print_queued(const struct queue_info *q, void *arg)
{
	char age[32], next[32];
	int64_t now = os_time();
	printf("%016llx\t%s\t<%s>\t", (unsigned long long)q->qid,
	        span(now - q->date, age, sizeof age), q->from);
	for (int i = 0; i < q->nrcpt; i++) {
		printf("%s%s", i ? "," : "", q->rcpts[i]);
	}
	printf("\t%d\t%s\t%s\n", q->attempts,
	        q->next > now ? span(q->next - now, next, sizeof next) : "now",
	        *q->last ? q->last : "-");
	return 0;
}

/* Waits (10 s at most) for the server to apply the request; 0 when it did. */
static int queue_wait(uint64_t qid, const char *verb)
{
	for (int i = 0; i < 100 && queue_request_pending(qid, verb); i++) {
		os_sleep_ms(100);
	}
	return queue_request_pending(qid, verb);
}

/* queue flush [ID], delete ID, bounce ID: a request the running server
 * applies (see queue.c); with no server, delete is done here and the
 * others wait for the next start. */
static int cmd_queue_act(const char *verb, uint64_t qid)
{
	char err[256], by[64], user[40];
	int running = queue_server_running();
	if (!running && !strcmp(verb, "delete")) {
		if (queue_delete_offline(qid) != 0) {
			return fail("queue: cannot delete %s", "the entry");
		}
		printf("%016llx deleted\n", (unsigned long long)qid);
		return 0;
	}
	os_user_name(user, sizeof user);
	snprintf(by, sizeof by, "%s, command line, pid %ld", user, os_getpid());
	if (queue_request(qid, verb, by, err, sizeof err) != 0) {
		return fail("queue: %s", err);
	}
	if (!running) {
		printf("no server runs: the %s is done when it starts\n", verb);
	} else if (queue_wait(qid, verb) != 0) {
		printf("%s requested: the message is being sent; done after this attempt\n", verb);
	} else if (!strcmp(verb, "flush")) {
		printf("%s: delivery started\n", qid ? "flushed" : "queue flushed");
	} else {
		printf("%016llx %s\n", (unsigned long long)qid,
		        !strcmp(verb, "delete") ? "deleted" : "bounced");
	}
	return 0;
}

static int cmd_queue(int argc, char **argv)
{
	uint64_t qid = 0;
	const char *verb = argc ? argv[0] : "";
	int needs_id = !strcmp(verb, "show") || !strcmp(verb, "delete") || !strcmp(verb, "bounce");
	if (argc == 1 && !strcmp(verb, "list")) {
		printf("ID\tAGE\tFROM\tTO\tATTEMPTS\tNEXT\tLAST REPLY\n");
		return queue_list(print_queued, NULL) < 0
		               ? fail("%s", "queue: cannot read the queue folder")
		               : 0;
	}
	if (!(needs_id && argc == 2) && !(!strcmp(verb, "flush") && argc <= 2)) {
		return fail(
		        "%s", "queue: expected list, show ID, flush [ID], delete ID or bounce ID");
	}
	if (argc == 2 && (queue_parse_id(argv[1], &qid) != 0 || !queue_exists(qid))) {
		return fail("queue: no such message in the queue: %s", argv[1]);
	}
	if (!strcmp(verb, "show")) {
		struct buf out;
		buf_init(&out);
		int rc = queue_show(qid, &out);
		fwrite(out.data, 1, out.len, stdout);
		buf_free(&out);
		return rc == 0 ? 0 : fail("queue: cannot read %s", argv[1]);
	}
	return cmd_queue_act(verb, qid);
}

/* rumble COMMAND ARGS...: run gets the arguments after the command's
 * name. CMD_STORAGE: it runs as the server would (RunAs), on its open
 * storage; without it, after the settings only. service (run NULL) comes
 * before any settings are read. */
enum { CMD_STORAGE = 1 };
static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	int flags;
} commands[] = {
	{"domain", cmd_domain, CMD_STORAGE},
	{"user", cmd_user, CMD_STORAGE},
	{"alias", cmd_alias, CMD_STORAGE},
	{"feed", cmd_feed, CMD_STORAGE},
	{"relay", cmd_relay, CMD_STORAGE},
	{"dkim", cmd_dkim, CMD_STORAGE},
	{"dns", cmd_dns, CMD_STORAGE},
	{"acme", cmd_acme, CMD_STORAGE},
	{"queue", cmd_queue, CMD_STORAGE},
	{"sieve", cmd_sieve, 0},
	{"backup", cmd_backup, CMD_STORAGE},
	{"restore", cmd_restore, 0}, /* into an empty folder: nothing opened */
	{"status", cmd_status, CMD_STORAGE},
	{"import", cmd_import, CMD_STORAGE},
	{"export", cmd_export, CMD_STORAGE},
	{"compact", cmd_compact, CMD_STORAGE},
	{"stop", cmd_stop, 0},
	{"reload", cmd_reload, 0},
	{"service", NULL, 0},
};

static const struct command *command_find(const char *name)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (!strcmp(commands[i].name, name)) {
			return &commands[i];
		}
	}
	return NULL;
}

static int run_admin(const struct command *cmd, int argc, char **argv)
{
	char err[1200];
	admin_audit_open(argc, argv); /* the log may be root's: before dropping */
	/* as the server will run: what this makes stays the server's */
	if (give_storage(err, sizeof err) != 0 ||
	        os_drop_privileges(conf.run_as, conf.run_as_group, err, sizeof err) != 0) {
		return fail("RunAs: %s", err);
	}
	if (mm_open(conf.storage, err, sizeof err) != 0) {
		return fail("storage: %s", err);
	}
	mm_upgrade_names(); /* so that backup or import see the names of now */
	int rc = cmd->run(argc - 1, argv + 1);
	admin_audit(argc, argv, rc);
	mm_close();
	return rc;
}

/* Loads the settings and runs the administration command in argv, or
 * the server when argc is 0; detach: 1 --service (POSIX: daemon), 2 under
 * the Windows service manager. */
static int serve(const char *cfg, int argc, char **argv, int detach)
{
	char err[512];
	log_open(NULL);
	log_set_level(argc > 0 ? LOG_WARN : LOG_INFO); /* a command shows no Comment lines */
	if (load_settings(cfg, err, sizeof err) != 0) {
		fprintf(stderr, "rumble: %s\n", err);
		return 2;
	}
	if (argc > 0) {
		const struct command *cmd = command_find(argv[0]);
		int rc = cmd->flags & CMD_STORAGE ? run_admin(cmd, argc, argv)
		                                  : cmd->run(argc - 1, argv + 1);
		settings_free(&conf);
		return rc;
	}
	/* a service has no console: the log goes to a file, by default in the
	 * storage folder */
	if (detach == 2 && !*conf.log_file && os_mkdir_p(conf.storage) == 0 &&
		snprintf(conf.log_file, sizeof conf.log_file, "%s/rumble.log", conf.storage) >=
			(int)sizeof conf.log_file) {
		return 2;
	}
	if (log_open(conf.log_file) != 0) {
		fprintf(stderr, "rumble: LogFile %s: %s\n", conf.log_file, os_strerror());
		return 2;
	}
	log_set_level(conf.log_level);
	log_rotate(*conf.log_file ? conf.log_max_size : 0, conf.log_keep);
	int rc = run_server(detach == 1);
	settings_free(&conf);
	return rc;
}

/* The server's entry under the Windows service manager (os_service_run). */
static int serve_service(const char *cfg)
{
	return serve(cfg, 0, NULL, 2);
}

static int bad_usage(const char *what, const char *arg)
{
	fprintf(stderr, "rumble: %s%s (rumble --help lists the options)\n", what, arg);
	return 2;
}

/* -c FILE or --CONFIG-DIR=DIR (in any case, as the original took it: it
 * means DIR/rumble.conf), once. 0, or 2 after a one-line complaint. */
static int config_option(int argc, char **argv, int *i, const char **cfg)
{
	static char path[1100];
	const char *arg = argv[*i];
	if (*cfg) {
		return bad_usage("give -c FILE or --CONFIG-DIR=DIR once", "");
	}
	if (arg[1] == 'c') {
		*cfg = *i + 1 < argc ? argv[++*i] : NULL;
		return *cfg ? 0 : bad_usage("-c needs a FILE", "");
	}
	const char *dir = arg[12] == '=' ? arg + 13 : ""; /* after "--config-dir=" */
	size_t n = strlen(dir);
	if (!n) {
		return bad_usage("--CONFIG-DIR needs a folder: --CONFIG-DIR=DIR", "");
	}
	const char *sep = dir[n - 1] == '/' || dir[n - 1] == '\\' ? "" : "/";
	if (snprintf(path, sizeof path, "%s%srumble.conf", dir, sep) >= (int)sizeof path) {
		return bad_usage("--CONFIG-DIR: folder name too long", "");
	}
	*cfg = path;
	return 0;
}

/* The options before the command: the command's index (argc when there is
 * none), or -1 with the exit code in *rc. */
static int options(int argc, char **argv, const char **cfg, int *detach, int *rc)
{
	int i = 1;
	for (*rc = 0; i < argc && argv[i][0] == '-' && *rc == 0; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-c") ||
			(!rl_strncasecmp(a, "--config-dir", 12) && (a[12] == '=' || !a[12]))) {
			*rc = config_option(argc, argv, &i, cfg);
		} else if (!strcmp(a, "--service")) {
			*detach = 1;
		} else if (!strcmp(a, "--version")) {
			printf("rumble %s (%s/%s)\n", RUMBLE_VERSION, os_name(), os_arch());
			return -1;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage, stdout);
			return -1;
		} else {
			*rc = bad_usage("unknown option ", a);
		}
	}
	return *rc ? -1 : i;
}

int main(int argc, char **argv)
{
	os_args_utf8(&argc, &argv);
	const char *cfg = NULL;
	int detach = 0, rc, i = options(argc, argv, &cfg, &detach, &rc);
	if (i < 0) {
		return rc;
	}
	int admin = i < argc;
	const struct command *cmd = admin ? command_find(argv[i]) : NULL;
	if (admin && !cmd) {
		fprintf(stderr, "rumble: unknown command %s (rumble --help lists them)\n", argv[i]);
		return 2;
	}
	os_init();
	if (cmd && cmd->run == NULL) { /* service: before any settings */
		return cmd_service(cfg, argc - i - 1, argv + i + 1);
	}
	if (admin) {
		return serve(cfg, argc - i, argv + i, 0);
	}
	os_signals_install();
	if (detach) {
		rc = os_service_run(cfg, serve_service);
		if (rc != OS_NOT_SERVICE) {
			if (rc < 0) {
				fprintf(stderr, "rumble: --service: %s\n", os_strerror());
			}
			return rc < 0 ? 1 : rc;
		}
	}
	return serve(cfg, 0, NULL, detach);
}
