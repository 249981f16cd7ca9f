/*
 * x509.c - trust anchors for verified TLS clients (HTTPS for ACME and
 * MTA-STS): a PEM bundle of CA certificates (the system's, or a file the
 * configuration names) made into BearSSL trust anchors. Besides crypto.c
 * the only file that includes BearSSL for TLS; crypto.c's
 * tls_client_new_verified takes the anchors made here.
 *
 * An anchor keeps the certificate's subject DN and public key, which is
 * all BearSSL's X.509 engine (br_x509_minimal) needs: it checks the
 * chain up to one of them, the dates against the clock and the server's
 * name against the leaf's subjectAltName (or CN). A certificate that is
 * not a CA (basicConstraints) becomes an anchor for that certificate
 * itself (a self-signed server certificate trusted on purpose).
 */
#include <string.h>

#include <bearssl.h>

#include "rumble.h"

#define ANCHORS_FILE_MAX (4 * 1024 * 1024) /* Debian's bundle is ~220 KB */
#define ANCHORS_MAX 2000                   /* and ~150 certificates */

struct tls_anchors {
	br_x509_trust_anchor *ta;
	size_t n, cap;
};

struct tls_anchors *tls_anchors_new(void)
{
	return xcalloc(1, sizeof(struct tls_anchors));
}

static void free_anchor(br_x509_trust_anchor *ta)
{
	free(ta->dn.data);
	if (ta->pkey.key_type == BR_KEYTYPE_RSA) {
		free(ta->pkey.key.rsa.n);
		free(ta->pkey.key.rsa.e);
	} else {
		free(ta->pkey.key.ec.q);
	}
}

void tls_anchors_free(struct tls_anchors *a)
{
	if (!a) {
		return;
	}
	for (size_t i = 0; i < a->n; i++) {
		free_anchor(&a->ta[i]);
	}
	free(a->ta);
	free(a);
}

size_t tls_anchors_count(const struct tls_anchors *a)
{
	return a ? a->n : 0;
}

/* see rumble.h (the array crypto.c hands BearSSL) */
const void *tls__anchors_raw(const struct tls_anchors *a, size_t *n)
{
	*n = a ? a->n : 0;
	return a ? a->ta : NULL;
}

static unsigned char *dup_bytes(const unsigned char *p, size_t n)
{
	unsigned char *d = xmalloc(n ? n : 1);
	memcpy(d, p, n);
	return d;
}

static void dn_append(void *ctx, const void *data, size_t len)
{
	buf_append(ctx, data, len);
}

/* One DER certificate made an anchor; -1 when BearSSL cannot decode it
 * (an unsupported key type: the certificate is skipped). */
static int add_der(struct tls_anchors *a, const unsigned char *der, size_t n)
{
	br_x509_decoder_context xd;
	struct buf dn;
	buf_init(&dn);
	br_x509_decoder_init(&xd, dn_append, &dn);
	br_x509_decoder_push(&xd, der, n);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&xd);
	if (!pk || br_x509_decoder_last_error(&xd) != 0 || a->n >= ANCHORS_MAX) {
		buf_free(&dn);
		return -1;
	}
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		a->ta = xrealloc(a->ta, a->cap * sizeof *a->ta);
	}
	br_x509_trust_anchor *ta = &a->ta[a->n++];
	memset(ta, 0, sizeof *ta);
	ta->dn.data = dup_bytes((unsigned char *)dn.data, dn.len);
	ta->dn.len = dn.len;
	ta->flags = br_x509_decoder_isCA(&xd) ? BR_X509_TA_CA : 0;
	ta->pkey = *pk;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		ta->pkey.key.rsa.n = dup_bytes(pk->key.rsa.n, pk->key.rsa.nlen);
		ta->pkey.key.rsa.e = dup_bytes(pk->key.rsa.e, pk->key.rsa.elen);
	} else {
		ta->pkey.key.ec.q = dup_bytes(pk->key.ec.q, pk->key.ec.qlen);
	}
	buf_free(&dn);
	return 0;
}

/* see rumble.h */
int tls_anchors_add_pem(struct tls_anchors *a, const char *text, size_t len)
{
	br_pem_decoder_context pc;
	struct buf der;
	int added = 0, inside = 0, tail = 0;
	buf_init(&der);
	br_pem_decoder_init(&pc);
	for (;;) {
		if (len == 0) {
			if (tail) {
				break;
			}
			text = "\n"; /* an END line counts once a newline follows */
			len = 1;
			tail = 1;
		}
		size_t k = br_pem_decoder_push(&pc, text, len);
		text += k;
		len -= k;
		int ev = br_pem_decoder_event(&pc);
		if (ev == BR_PEM_BEGIN_OBJ) {
			buf_reset(&der);
			br_pem_decoder_setdest(&pc, dn_append, &der);
			inside = 1;
		} else if (ev == BR_PEM_END_OBJ && inside) {
			inside = 0;
			const char *name = br_pem_decoder_name(&pc);
			if ((!strcmp(name, "CERTIFICATE") || !strcmp(name, "TRUSTED CERTIFICATE")) &&
			        add_der(a, (unsigned char *)der.data, der.len) == 0) {
				added++;
			}
		} else if (ev == BR_PEM_ERROR) {
			added = -1;
			break;
		}
	}
	buf_free(&der);
	return added;
}

/* see rumble.h */
int tls_anchors_add_file(struct tls_anchors *a, const char *path, char *err, size_t errlen)
{
	struct buf text;
	char chunk[8192];
	size_t n;
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, os_strerror());
		return -1;
	}
	buf_init(&text);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && text.len <= ANCHORS_FILE_MAX) {
		buf_append(&text, chunk, n);
	}
	int bad = ferror(f) || text.len > ANCHORS_FILE_MAX;
	fclose(f);
	int added = bad ? -1 : tls_anchors_add_pem(a, text.data ? text.data : "", text.len);
	buf_free(&text);
	if (added <= 0) {
		snprintf(err, errlen, "%s: %s", path,
		        bad ? "unreadable or too big" : added < 0 ? "malformed PEM" : "no certificate");
		return -1;
	}
	return added;
}

/* Where systems keep the bundle: Debian/Ubuntu/Alpine/Arch, Fedora/RHEL,
 * openSUSE and the BSDs (macOS), FreeBSD. */
static const char *const system_bundles[] = {
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
        "/usr/local/share/certs/ca-root-nss.crt",
};

static os_mutex *system_lock;
static struct tls_anchors *system_anchors;
static char system_err[256];

/* The lock, made by whichever thread asks first. */
static os_mutex *lock_get(void)
{
	os_mutex *m = os_atomic_load_ptr((void *volatile *)&system_lock);
	if (!m) {
		os_mutex *fresh = os_mutex_new();
		if (os_atomic_cas_ptr((void *volatile *)&system_lock, NULL, fresh)) {
			return fresh;
		}
		os_mutex_free(fresh);
		m = os_atomic_load_ptr((void *volatile *)&system_lock);
	}
	return m;
}

/* see rumble.h */
const struct tls_anchors *tls_anchors_system(const char *path, char *err, size_t errlen)
{
	os_mutex *lock = lock_get();
	os_mutex_lock(lock);
	if (!system_anchors) {
		struct tls_anchors *a = tls_anchors_new();
		int got = -1;
		if (path && *path) {
			got = tls_anchors_add_file(a, path, system_err, sizeof system_err);
		}
		for (size_t i = 0; (!path || !*path) && got < 0 && i < sizeof system_bundles /
		                                                       sizeof system_bundles[0];
		        i++) {
			got = tls_anchors_add_file(a, system_bundles[i], system_err, sizeof system_err);
		}
		if (got > 0) {
			system_anchors = a;
		} else {
			tls_anchors_free(a);
			if (!path || !*path) {
				snprintf(system_err, sizeof system_err,
				        "no CA bundle found (/etc/ssl/certs/ca-certificates.crt ...)");
			}
		}
	}
	const struct tls_anchors *a = system_anchors;
	if (!a) {
		snprintf(err, errlen, "%s", system_err);
	}
	os_mutex_unlock(lock);
	return a;
}
