/*
 * The ceiling for `make bench`: bare civetweb with the service's options,
 * answering every request with a fixed cart-sized JSON body in one
 * mg_write.  Nothing the service does per request (routing, parsing, the
 * core, logging) happens here, so the ratio service/ceiling is the cost
 * of our own code.
 */
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char response[2048];
static size_t response_len;

static int on_request(struct mg_connection *conn, void *cbdata)
{
	mg_write(conn, response, response_len);
	return 200;
}

int main(int argc, char **argv)
{
	const char *body = "{\"cartId\":\"0b5cf45c-b68f-4374-89ed-f0e4dbd060c9\",\"userId\":\"bench\","
		"\"items\":[],\"itemCount\":0,\"subtotal\":{\"amount\":0,\"currency\":null},"
		"\"version\":0,\"createdAt\":null,\"updatedAt\":null,\"expiresAt\":null}";
	char ports[32];
	const char *options[] = { "listening_ports", ports, "num_threads", "128",
				  "tcp_nodelay", "1", "enable_keep_alive", "yes",
				  "keep_alive_timeout_ms", "5000", NULL };
	struct mg_context *ctx;
	sigset_t set;
	int sig;

	snprintf(ports, sizeof(ports), "127.0.0.1:%s", argc > 1 ? argv[1] : "18090");
	response_len = (size_t)snprintf(response, sizeof(response),
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		"Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	ctx = mg_start(NULL, NULL, options);
	if (!ctx)
		return 1;
	mg_set_request_handler(ctx, "/", on_request, NULL);
	sigwait(&set, &sig);
	mg_stop(ctx);
	return 0;
}
