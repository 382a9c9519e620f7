#ifndef CART_AWS_BUF_H
#define CART_AWS_BUF_H

/* Private to adapters/aws: collecting a response body from libcurl. */

#include <stddef.h>

typedef struct aws_membuf {
	char *p;            /* malloc'd, NUL-terminated; NULL while empty */
	size_t len;
	size_t max;         /* a longer body fails the transfer */
} aws_membuf;

/* CURLOPT_WRITEFUNCTION for an aws_membuf (CURLOPT_WRITEDATA). */
size_t aws_membuf_collect(char *data, size_t size, size_t n, void *arg);

#endif
