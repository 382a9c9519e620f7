/*
 * Strict base64url (RFC 4648 section 5, as RFC 7515 section 2 uses it):
 * no padding, no whitespace, canonical trailing bits.  A lenient decoder
 * would let one signed token have many spellings.
 */
#include "jwt/jwt_internal.h"

/* Value of c in the base64url alphabet, or -1. */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

size_t jwt_b64url_decoded_len(size_t n)
{
	if (n % 4 == 1)
		return (size_t)-1;
	return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

int jwt_b64url_decode(uint8_t *out, size_t *out_len, const char *in, size_t n)
{
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0;

	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (out)
				out[o] = (uint8_t)(acc >> bits);
			o++;
			acc &= (1u << bits) - 1;
		}
	}
	/* The 2 or 4 bits left over must be zero: no second spelling. */
	if (acc != 0)
		return -1;
	if (out_len)
		*out_len = o;
	return 0;
}
