#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

/* Process-wide, written once by main before any worker thread starts. */
static log_level g_min_level = LOG_INFO;
static int g_fd = 1;

void log_setup(log_level min_level, int fd)
{
	g_min_level = min_level;
	g_fd = fd;
}

int log_enabled(log_level level)
{
	return level >= g_min_level;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void log_write(log_level level, const char *msg, const char *fields)
{
	char stack[2048];
	buf b;
	const char *p;
	size_t left;

	if (!log_enabled(level))
		return;
	buf_init_on(&b, stack, sizeof(stack), 64 * 1024);
	buf_puts(&b, "{\"time\":");
	buf_json_time(&b, now_ms());
	buf_puts(&b, ",\"level\":\"");
	buf_puts(&b, log_level_name(level));
	buf_puts(&b, "\",\"msg\":");
	buf_json_str(&b, msg);
	if (fields)
		buf_puts(&b, fields);
	buf_puts(&b, "}\n");
	if (!b.failed) {
		for (p = b.data, left = b.len; left;) {
			ssize_t n = write(g_fd, p, left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			p += n;
			left -= (size_t)n;
		}
	}
	buf_release(&b);
}
