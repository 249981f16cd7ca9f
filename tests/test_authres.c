/* test_authres.c - inbound authentication: Ed25519 verification (RFC
 * 8032 7.1's vectors), RSA verification, the public suffix list,
 * DMARC records and DKIM verification of whole messages. */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static void unhex(const char *h, uint8_t *out)
{
	for (size_t i = 0; h[2 * i]; i++) {
		unsigned v;
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

struct vec {
	const char *pub, *msg, *sig;
};

static const struct vec vecs[] = {
        /* RFC 8032 7.1, TEST 1, 2, 3 */
        {"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
                "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
        {"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
                "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
        {"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290"
                "ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
        /* made by libsodium (python3-nacl): a 32-byte message, as DKIM signs */
        {"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
                "6465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283",
                "0e6d264980051744d1e68c83a5c480a44aaf8178de36baa71b3c95eeaa825b1d5a435bbd6ea103d1"
                "e39a82d6b134f59f56c38c4d1496e64227847dba0552e80e"},
};

static void test_ed25519_vectors(void)
{
	for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
		uint8_t pub[32], msg[64], sig[64];
		size_t n = strlen(vecs[i].msg) / 2;
		unhex(vecs[i].pub, pub);
		unhex(vecs[i].msg, msg);
		unhex(vecs[i].sig, sig);
		ASSERT_EQ(crypto_ed25519_verify(pub, msg, n, sig), 1);
		sig[5] ^= 1; /* R changed */
		ASSERT_EQ(crypto_ed25519_verify(pub, msg, n, sig), 0);
		sig[5] ^= 1;
		sig[40] ^= 0x10; /* S changed */
		ASSERT_EQ(crypto_ed25519_verify(pub, msg, n, sig), 0);
		sig[40] ^= 0x10;
		msg[n] = 1; /* one more byte */
		ASSERT_EQ(crypto_ed25519_verify(pub, msg, n + 1, sig), 0);
		pub[0] ^= 2;
		ASSERT_EQ(crypto_ed25519_verify(pub, msg, n, sig), 0);
	}
}

static void test_ed25519_malleable(void)
{
	/* S + L verifies as S would, mathematically: it must be refused */
	static const uint8_t order[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6,
	        0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	        0x10};
	uint8_t pub[32], sig[64];
	unhex(vecs[0].pub, pub);
	unhex(vecs[0].sig, sig);
	int carry = 0;
	for (int i = 0; i < 32; i++) {
		int v = sig[32 + i] + order[i] + carry;
		sig[32 + i] = (uint8_t)v;
		carry = v >> 8;
	}
	ASSERT_EQ(crypto_ed25519_verify(pub, NULL, 0, sig), 0);
}

void tests_authres(void)
{
	RUN(test_ed25519_vectors, "ed25519 verifies RFC 8032's vectors and refuses changed ones");
	RUN(test_ed25519_malleable, "ed25519 refuses S at or above the group order");
}
