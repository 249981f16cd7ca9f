/*
 * lnetwork.c - network.getHostByName and network.getMX of Rumble's Lua
 * API, on the DNS client of dns.c (its cache included).
 *
 * A lookup may take a few seconds when servers do not answer (dns.c: two
 * rounds of 2 s per server): in a hook or service session it runs on a
 * helper thread while the script's coroutine waits (jobs.c).
 */
#include <string.h>

#include "rl.h"

/* A lookup on a helper thread (jobs.c). */
struct lookup {
	struct rl_job j;
	char name[DNS_NAME_MAX];
	int n; /* what dns_addrs/dns_mx returned */
	char addr[4][DNS_ADDR_MAX];
	struct dns_mx mx[DNS_RR_MAX];
};

static struct lookup *lookup_new(lua_State *L, void (*run)(struct rl_job *),
	int (*push)(lua_State *, struct rl_job *))
{
	size_t n;
	const char *name = luaL_checklstring(L, 1, &n);
	if (n >= DNS_NAME_MAX) {
		return NULL;
	}
	struct lookup *k = xcalloc(1, sizeof *k);
	k->j.run = run;
	k->j.push = push;
	memcpy(k->name, name, n + 1);
	return k;
}

static void addrs_run(struct rl_job *j)
{
	struct lookup *k = (struct lookup *)j;
	k->n = dns_addrs(k->name, k->addr, 4);
}

static int addrs_push(lua_State *L, struct rl_job *j)
{
	struct lookup *k = (struct lookup *)j;
	if (k->n <= 0) {
		return rl_fail(L, "%s: %s", k->name, k->n == 0 ? "no address" : dns_strerror(k->n));
	}
	lua_pushstring(L, k->addr[0]);
	return 1;
}

/* network.getHostByName(host): the first address of host as text (IPv4
 * before IPv6, as the original's gethostbyname gave IPv4 only), or nil
 * and a message. "localhost" is the loopback address without a lookup
 * (RFC 6761 6.3); an address is returned as it is. */
static int net_gethostbyname(lua_State *L)
{
	const char *host = luaL_checkstring(L, 1);
	if (rl_strcasecmp(host, "localhost") == 0) {
		lua_pushliteral(L, "127.0.0.1");
		return 1;
	}
	struct lookup *k = lookup_new(L, addrs_run, addrs_push);
	if (!k) {
		return rl_fail(L, "%s: %s", host, "name too long");
	}
	return rl_job_call(L, &k->j);
}

static void mx_run(struct rl_job *j)
{
	struct lookup *k = (struct lookup *)j;
	k->n = dns_mx(k->name, k->mx, DNS_RR_MAX);
}

static int mx_push(lua_State *L, struct rl_job *j)
{
	struct lookup *k = (struct lookup *)j;
	if (k->n < 0) {
		return rl_fail(L, "%s: %s", k->name, dns_strerror(k->n));
	}
	lua_createtable(L, k->n, 0);
	for (int i = 0; i < k->n; i++) {
		lua_createtable(L, 0, 2);
		lua_pushstring(L, k->mx[i].host);
		lua_setfield(L, -2, "host");
		lua_pushinteger(L, k->mx[i].pref);
		lua_setfield(L, -2, "preference");
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

/* network.getMX(domain): {{host=, preference=}, ...} by preference, the
 * domain itself with preference 0 when it has an address but no MX
 * (dns_mx's implicit MX); an empty list when it has neither. nil and a
 * message for a domain that does not exist, a failed lookup, or a null
 * MX (the domain takes no mail). */
static int net_getmx(lua_State *L)
{
	struct lookup *k = lookup_new(L, mx_run, mx_push);
	if (!k) {
		return rl_fail(L, "%s: %s", lua_tostring(L, 1), "name too long");
	}
	return rl_job_call(L, &k->j);
}

static const luaL_Reg network_funcs[] = {
        {"getHostByName", net_gethostbyname},
        {"getMX", net_getmx},
        {NULL, NULL},
};

/* see rl.h */
void rl_open_network(lua_State *L)
{
	luaL_register(L, "network", network_funcs);
	lua_pop(L, 1);
}
