#ifndef APP_SERVER_H
#define APP_SERVER_H

/* The civetweb side: listens, reads requests, writes responses, logs. */

#include <stddef.h>

#include "app.h"

typedef struct server server;

/* Starts listening; app must outlive the server.  -1 with err on failure. */
int server_start(server **out, app_ctx *app, char *err, size_t err_len);
/*
 * Waits until no request is in flight (unbounded: the caller enforces the
 * shutdown timeout), then closes the listener and frees s.  Accepts NULL.
 */
void server_stop(server *s);

#endif
