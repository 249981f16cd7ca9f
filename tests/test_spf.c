/* test_spf.c - SPF's macro expansion against RFC 7208 section 7.4's
 * examples, and what needs no DNS. check_host() itself is tested end to
 * end against a DNS server (tests/e2e/test_spf.py). */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static const char *expand(const char *ip, const char *in)
{
	static char out[512];
	if (spf_expand_for(ip, "mx.example.org", "strong-bad@email.example.com",
	            "email.example.com", in, out, sizeof out) != 0) {
		return "(error)";
	}
	return out;
}

static void test_macros(void)
{
	static const char *const cases[][2] = {
	        {"%{s}", "strong-bad@email.example.com"},
	        {"%{o}", "email.example.com"},
	        {"%{d}", "email.example.com"},
	        {"%{d4}", "email.example.com"},
	        {"%{d3}", "email.example.com"},
	        {"%{d2}", "example.com"},
	        {"%{d1}", "com"},
	        {"%{dr}", "com.example.email"},
	        {"%{d2r}", "example.email"},
	        {"%{l}", "strong-bad"},
	        {"%{l-}", "strong.bad"},
	        {"%{lr}", "strong-bad"},
	        {"%{lr-}", "bad.strong"},
	        {"%{l1r-}", "strong"},
	        {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
	        {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
	        {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
	        {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
	        {"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
	        {"%{h}", "mx.example.org"},
	        {"a%%b%_c%-d", "a%b c%20d"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ASSERT_STR(expand("192.0.2.3", cases[i][0]), cases[i][1]);
	}
	ASSERT_STR(expand("2001:db8::cb01", "%{ir}.%{v}._spf.%{d2}"),
	        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
	ASSERT_STR(expand("192.0.2.3", "%{x}"), "(error)");
	ASSERT_STR(expand("192.0.2.3", "50%"), "(error)");
}

static void test_without_dns(void)
{
	ASSERT_STR(spf_name(SPF_SOFTFAIL), "softfail");
	ASSERT_EQ(spf_check("not-an-ip", "h.example", "a@b.example"), SPF_NONE);
	ASSERT_EQ(spf_check("192.0.2.1", "h.example", "a@not..valid"), SPF_NONE);
}

void tests_spf(void)
{
	RUN(test_macros, "spf macros expand as RFC 7208 7.4's examples, IPv6 by nibbles");
	RUN(test_without_dns, "spf gives none for a bad address or a domain that cannot be one");
}
