#ifndef CART_TEST_JWKS_SERVER_H
#define CART_TEST_JWKS_SERVER_H

/*
 * A tiny HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for JWKS tests:
 * every request, whatever its path, gets the current body and status, and
 * is counted.  One connection at a time, Connection: close.
 */

#include <stddef.h>

typedef struct jwks_server jwks_server;

/* Starts the server thread.  NULL if the socket or thread failed. */
jwks_server *jwks_server_start(void);
void jwks_server_stop(jwks_server *s);   /* accepts NULL; joins the thread */

/* The URL of the document, e.g. "http://127.0.0.1:41234/.well-known/jwks.json". */
const char *jwks_server_url(const jwks_server *s);
/* Serves body (copied) with status from now on. */
void jwks_server_set(jwks_server *s, int status, const char *body);
int jwks_server_requests(const jwks_server *s);
/* Path of the last request ("" if none); copied into out. */
void jwks_server_last_path(jwks_server *s, char *out, size_t cap);

#endif
