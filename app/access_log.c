/* The LOG phase: one JSON line per request (5xx at error level); log_write
 * adds its request_id and trace_id (log_request_begin). */
#include <stdio.h>

#include "app.h"
#include "log.h"

int app_stage_access_log(app_request *r, void *self)
{
	const http_response *res = r->res;
	log_level lvl = res->status >= 500 ? LOG_ERROR :
			r->auth_log_only ? LOG_WARN : LOG_INFO;
	char fields[1024];
	buf b;

	(void)self;
	if (!log_enabled(lvl))
		return APP_NEXT;
	buf_init_on(&b, fields, sizeof(fields), sizeof(fields) - 1);
	buf_puts(&b, ",\"method\":");
	buf_json_str(&b, r->http->method ? r->http->method : "");
	buf_puts(&b, ",\"route\":");
	buf_json_str(&b, res->route);
	buf_puts(&b, ",\"status\":");
	buf_json_i64(&b, res->status);
	buf_puts(&b, ",\"duration_ms\":");
	buf_put_ms3(&b, app_request_end_ns(r) - r->start_ns);
	buf_puts(&b, ",\"bytes\":");
	buf_put_u64(&b, res->body.len);
	buf_puts(&b, ",\"remote\":");
	buf_json_str(&b, r->http->remote_addr ? r->http->remote_addr : "");
	if (r->authenticated) {
		buf_puts(&b, ",\"sub\":");
		buf_json_str(&b, r->sub);
	}
	if (r->error) {
		buf_puts(&b, ",\"error\":");
		buf_json_str(&b, r->error);
	}
	if (r->auth_failure) {
		buf_puts(&b, ",\"auth_failure\":");
		buf_json_str(&b, r->auth_failure);
		if (r->auth_log_only)
			buf_puts(&b, ",\"auth_enforced\":false");
	}
	log_write(lvl, "request", b.failed ? NULL : fields);
	return APP_NEXT;
}
