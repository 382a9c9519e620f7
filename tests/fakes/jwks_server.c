#include "fakes/jwks_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct jwks_server {
	int fd;
	pthread_t thread;
	atomic_bool stop;
	atomic_int requests;
	char url[96];
	pthread_mutex_t lock;   /* guards body, status, last_path */
	char *body;
	int status;
	char last_path[256];
};

/* Reads the request head (we never expect a body) and notes its path. */
static void read_request(jwks_server *s, int c)
{
	char req[4096];
	size_t n = 0;
	ssize_t r;

	while (n < sizeof(req) - 1 && (r = read(c, req + n, sizeof(req) - 1 - n)) > 0) {
		n += (size_t)r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	req[n] = '\0';
	pthread_mutex_lock(&s->lock);
	if (sscanf(req, "GET %255s", s->last_path) != 1)
		s->last_path[0] = '\0';
	pthread_mutex_unlock(&s->lock);
}

static void respond(jwks_server *s, int c)
{
	char head[256];
	char *body;
	int status, hl;
	size_t bl;

	pthread_mutex_lock(&s->lock);
	status = s->status;
	body = strdup(s->body ? s->body : "");
	pthread_mutex_unlock(&s->lock);
	if (!body)
		return;
	bl = strlen(body);
	hl = snprintf(head, sizeof(head),
		      "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		      "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, bl);
	if (write(c, head, (size_t)hl) == hl && bl)
		(void)!write(c, body, bl);
	free(body);
}

static void *serve(void *arg)
{
	jwks_server *s = arg;

	while (!atomic_load(&s->stop)) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		int c;

		if (poll(&p, 1, 20) <= 0)
			continue;
		c = accept(s->fd, NULL, NULL);
		if (c < 0)
			continue;
		read_request(s, c);
		atomic_fetch_add(&s->requests, 1);
		respond(s, c);
		close(c);
	}
	return NULL;
}

jwks_server *jwks_server_start(void)
{
	jwks_server *s = calloc(1, sizeof(*s));
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);

	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	s->status = 200;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(s->fd, 64) || getsockname(s->fd, (struct sockaddr *)&a, &al) ||
	    pthread_create(&s->thread, NULL, serve, s)) {
		if (s->fd >= 0)
			close(s->fd);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return NULL;
	}
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d/.well-known/jwks.json",
		 ntohs(a.sin_port));
	return s;
}

void jwks_server_stop(jwks_server *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	close(s->fd);
	free(s->body);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

const char *jwks_server_url(const jwks_server *s)
{
	return s->url;
}

void jwks_server_set(jwks_server *s, int status, const char *body)
{
	char *copy = strdup(body);

	pthread_mutex_lock(&s->lock);
	free(s->body);
	s->body = copy;
	s->status = status;
	pthread_mutex_unlock(&s->lock);
}

int jwks_server_requests(const jwks_server *s)
{
	return atomic_load(&s->requests);
}

void jwks_server_last_path(jwks_server *s, char *out, size_t cap)
{
	pthread_mutex_lock(&s->lock);
	snprintf(out, cap, "%s", s->last_path);
	pthread_mutex_unlock(&s->lock);
}
