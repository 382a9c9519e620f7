/*
 * The SigV4 signer (adapters/aws/aws_sigv4.c) against signatures that
 * botocore computed for the same requests (botocore.auth.SigV4Auth:
 * canonical_request, string_to_sign, signature; the AWS documentation's
 * example key pair, 2015-08-30T12:36:00Z).  Every live test also sends
 * its requests through tests/aws/sigv4_proxy.py, which verifies them
 * with botocore; these pin the cases it rarely sees: a session token,
 * a query to sort, a path to encode again, a key kept across calls.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "aws/aws_sigv4.h"
#include "cart/error.h"
#include "unit/suites.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T0 ((time_t)1440938160)    /* 2015-08-30T12:36:00Z */

static const char *const GETITEM =
	"{\"TableName\":\"cart\",\"Key\":{\"PK\":{\"S\":\"CART#u1\"},"
	"\"SK\":{\"S\":\"CART\"}},\"ConsistentRead\":true}";

static cart_aws_sigv4_request dynamo_get(void)
{
	return (cart_aws_sigv4_request){
		.method = "POST", .path = "/", .host = "dynamodb.us-east-1.amazonaws.com",
		.content_type = "application/x-amz-json-1.0",
		.target = "DynamoDB_20120810.GetItem",
		.body = GETITEM, .body_len = strlen(GETITEM),
		.region = "us-east-1", .service = "dynamodb",
		.access_key_id = AKID, .secret_access_key = SECRET, .now = T0,
	};
}

static void sign_ok(cart_aws_signer *s, const cart_aws_sigv4_request *r,
		    const char *want_auth)
{
	char date[CART_AWS_AMZ_DATE_LEN + 1], auth[640];

	ck_assert_int_eq(cart_aws_sigv4_sign(s, r, date, auth, sizeof(auth)), CART_OK);
	ck_assert_str_eq(date, "20150830T123600Z");
	ck_assert_str_eq(auth, want_auth);
}

START_TEST(test_sigv4_json_post)
{
	cart_aws_signer *s;
	cart_aws_sigv4_request r = dynamo_get();
	const char *want =
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/dynamodb/"
		"aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
		"Signature=1d82764a7f4566aa100492b5154162cfab8097316a4186da8a0063a83cd6b57d";

	ck_assert_int_eq(cart_aws_signer_new(&s), CART_OK);
	sign_ok(s, &r, want);
	sign_ok(s, &r, want);           /* the kept key signs alike */
	cart_aws_signer_free(s);
}
END_TEST

START_TEST(test_sigv4_session_token)
{
	cart_aws_signer *s;
	const char *body = "{\"Entries\":[]}";
	cart_aws_sigv4_request r = {
		.method = "POST", .path = "/", .host = "127.0.0.1:4567",
		.content_type = "application/x-amz-json-1.0", .target = "AWSEvents.PutEvents",
		.body = body, .body_len = strlen(body), .region = "eu-west-1",
		.service = "events", .access_key_id = AKID, .secret_access_key = SECRET,
		.session_token = "IQoJb3JpZ2luX2VjEXAMPLE/TOKEN+=", .now = T0,
	};

	ck_assert_int_eq(cart_aws_signer_new(&s), CART_OK);
	sign_ok(s, &r,
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/events/"
		"aws4_request, SignedHeaders=content-type;host;x-amz-date;"
		"x-amz-security-token;x-amz-target, "
		"Signature=bbcba9e522ca0d476b05138d033628ca6778b4f2c99d115af92e35493ddac8ab");
	cart_aws_signer_free(s);
}
END_TEST

START_TEST(test_sigv4_rest_get_sorts_the_query)
{
	cart_aws_signer *s;
	cart_aws_sigv4_request r = {
		.method = "GET",
		.path = "/configuration?configuration_token=abc%2Bdef%3D&b=2&a=1&a=0",
		.host = "127.0.0.1:4567", .region = "us-east-1", .service = "appconfig",
		.access_key_id = AKID, .secret_access_key = SECRET, .now = T0,
	};

	ck_assert_int_eq(cart_aws_signer_new(&s), CART_OK);
	sign_ok(s, &r,
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/appconfig/"
		"aws4_request, SignedHeaders=host;x-amz-date, "
		"Signature=300107dd47b29e5b1f4387d32ce8b6a319694ebb006ab69b362467a5db752523");
	cart_aws_signer_free(s);
}
END_TEST

START_TEST(test_sigv4_path_encoded_again)
{
	cart_aws_signer *s;
	const char *body = "{\"ApplicationIdentifier\":\"cart\"}";
	cart_aws_sigv4_request r = {
		.method = "POST", .path = "/base/x%2Fy~z/configurationsessions",
		.host = "127.0.0.1:4567", .content_type = "application/json",
		.body = body, .body_len = strlen(body), .region = "us-east-1",
		.service = "appconfig", .access_key_id = AKID,
		.secret_access_key = SECRET, .now = T0,
	};

	ck_assert_int_eq(cart_aws_signer_new(&s), CART_OK);
	sign_ok(s, &r,
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/appconfig/"
		"aws4_request, SignedHeaders=content-type;host;x-amz-date, "
		"Signature=09c8f0b5fa9520d413633e589bd723fdc93c13c549a0e9f75ea70796d07a6dae");
	cart_aws_signer_free(s);
}
END_TEST

/* The kept key follows the date, the secret, the region and the service. */
START_TEST(test_sigv4_key_follows_its_inputs)
{
	cart_aws_signer *s, *fresh;
	cart_aws_sigv4_request r = dynamo_get();
	char d1[CART_AWS_AMZ_DATE_LEN + 1], d2[CART_AWS_AMZ_DATE_LEN + 1];
	char a1[640], a2[640];
	const char *secrets[] = { SECRET, "another-secret", SECRET };

	ck_assert_int_eq(cart_aws_signer_new(&s), CART_OK);
	for (int i = 0; i < 3; i++) {
		r.secret_access_key = secrets[i];
		for (int day = 0; day < 2; day++) {
			r.now = T0 + day * 86400;
			for (int k = 0; k < 2; k++) {
				r.region = k ? "eu-west-1" : "us-east-1";
				r.service = k ? "events" : "dynamodb";
				ck_assert_int_eq(cart_aws_sigv4_sign(s, &r, d1, a1, sizeof(a1)), CART_OK);
				ck_assert_int_eq(cart_aws_signer_new(&fresh), CART_OK);
				ck_assert_int_eq(cart_aws_sigv4_sign(fresh, &r, d2, a2, sizeof(a2)),
						 CART_OK);
				cart_aws_signer_free(fresh);
				ck_assert_str_eq(d1, d2);
				ck_assert_str_eq(a1, a2);
			}
		}
	}
	ck_assert_str_eq(d1, "20150831T123600Z");
	cart_aws_signer_free(s);
}
END_TEST

START_TEST(test_sigv4_refuses_what_does_not_fit)
{
	cart_aws_signer *s;
	cart_aws_sigv4_request r = dynamo_get();
	char date[CART_AWS_AMZ_DATE_LEN + 1], auth[640], q[CART_AWS_QUERY_PAIRS_MAX * 4 + 8];
	size_t n = 0;

	ck_assert_int_eq(cart_aws_signer_new(&s), CART_OK);
	ck_assert_int_eq(cart_aws_sigv4_sign(s, &r, date, auth, 100), CART_EINVALID);
	r.path = "configuration";
	ck_assert_int_eq(cart_aws_sigv4_sign(s, &r, date, auth, sizeof(auth)), CART_EINVALID);
	n += (size_t)snprintf(q, sizeof(q), "/?");
	for (int i = 0; i <= CART_AWS_QUERY_PAIRS_MAX; i++)
		n += (size_t)snprintf(q + n, sizeof(q) - n, "%s%c", i ? "&" : "", 'a' + i % 26);
	r.path = q;
	ck_assert_int_eq(cart_aws_sigv4_sign(s, &r, date, auth, sizeof(auth)), CART_EINVALID);
	r = dynamo_get();
	r.region = "a-region-name-longer-than-the-key-cache-keeps";
	ck_assert_int_eq(cart_aws_sigv4_sign(s, &r, date, auth, sizeof(auth)), CART_EINVALID);
	r = dynamo_get();               /* and the signer still works */
	ck_assert_int_eq(cart_aws_sigv4_sign(s, &r, date, auth, sizeof(auth)), CART_OK);
	cart_aws_signer_free(s);
	cart_aws_signer_free(NULL);
}
END_TEST

Suite *sigv4_suite(void)
{
	Suite *s = suite_create("sigv4");
	TCase *tc = tcase_create("sign");

	tcase_add_test(tc, test_sigv4_json_post);
	tcase_add_test(tc, test_sigv4_session_token);
	tcase_add_test(tc, test_sigv4_rest_get_sorts_the_query);
	tcase_add_test(tc, test_sigv4_path_encoded_again);
	tcase_add_test(tc, test_sigv4_key_follows_its_inputs);
	tcase_add_test(tc, test_sigv4_refuses_what_does_not_fit);
	suite_add_tcase(s, tc);
	return s;
}
