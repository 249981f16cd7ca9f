/*
 * lnetwork.c - network.getHostByName and network.getMX of Rumble's Lua
 * API, on the DNS client of dns.c (its cache included).
 *
 * Both block the calling thread for as long as the lookup takes: up to
 * a few seconds when servers do not answer (dns.c: two rounds of 2 s per
 * server). A script calling them from a hook holds its worker meanwhile;
 * moving the lookup to another thread and yielding the coroutine is the
 * runtime's business (runtime.c), which may wrap these later.
 */
#include <string.h>

#include "rl.h"

/* network.getHostByName(host): the first address of host as text (IPv4
 * before IPv6, as the original's gethostbyname gave IPv4 only), or nil
 * and a message. "localhost" is the loopback address without a lookup
 * (RFC 6761 6.3); an address is returned as it is. */
static int net_gethostbyname(lua_State *L)
{
	const char *host = luaL_checkstring(L, 1);
	char addr[4][DNS_ADDR_MAX];
	if (rl_strcasecmp(host, "localhost") == 0) {
		lua_pushliteral(L, "127.0.0.1");
		return 1;
	}
	int n = dns_addrs(host, addr, 4);
	if (n <= 0) {
		return rl_fail(L, "%s: %s", host, n == 0 ? "no address" : dns_strerror(n));
	}
	lua_pushstring(L, addr[0]);
	return 1;
}

/* network.getMX(domain): {{host=, preference=}, ...} by preference, the
 * domain itself with preference 0 when it has an address but no MX
 * (dns_mx's implicit MX); an empty list when it has neither. nil and a
 * message for a domain that does not exist, a failed lookup, or a null
 * MX (the domain takes no mail). */
static int net_getmx(lua_State *L)
{
	const char *domain = luaL_checkstring(L, 1);
	struct dns_mx mx[DNS_RR_MAX];
	int n = dns_mx(domain, mx, DNS_RR_MAX);
	if (n < 0) {
		return rl_fail(L, "%s: %s", domain, dns_strerror(n));
	}
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_createtable(L, 0, 2);
		lua_pushstring(L, mx[i].host);
		lua_setfield(L, -2, "host");
		lua_pushinteger(L, mx[i].pref);
		lua_setfield(L, -2, "preference");
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
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
