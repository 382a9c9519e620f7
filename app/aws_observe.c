/*
 * Where every AWS call's report goes (cart_aws_observer, one per process):
 * each consumer (metrics, X-Ray subsegments) adds one call here.  Runs on
 * the calling thread: a request worker for the store's calls, a relay
 * thread for the publisher's; must not block.
 */
#include "aws_observe.h"
#include "metrics.h"
#include "xray.h"

static void call_done(void *self, const cart_aws_call_info *info)
{
	(void)self;
	/* consumers, one line each (issue 9) */
	app_metrics_aws_call(app_metrics_process(), info);
	app_xray_aws_call(info, app_xray_now());   /* the request's subsegment */
}

const cart_aws_observer app_aws_observer = { call_done, NULL };
