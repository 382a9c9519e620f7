#ifndef APP_LOG_H
#define APP_LOG_H

/*
 * Structured logs: one JSON object per line on stdout, each written with a
 * single write(2) so lines from worker threads never interleave.  The
 * level is set once in main before threads start.
 */

#include "config.h"

void log_setup(log_level min_level, int fd);
int log_enabled(log_level level);
/*
 * Writes {"time","level","msg"<fields>}.  fields is NULL or a run of JSON
 * members each starting with a comma: ",\"k\":1,\"s\":\"x\"".
 */
void log_write(log_level level, const char *msg, const char *fields);

#endif
