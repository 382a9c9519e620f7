#ifndef CART_EVENTBRIDGE_PUBLISHER_H
#define CART_EVENTBRIDGE_PUBLISHER_H

/*
 * Event publisher on Amazon EventBridge: AWSEvents.PutEvents with one
 * entry per event (Source, DetailType = event type, Detail = the event
 * JSON of docs/events, EventBusName), at most 10 entries and 256 KB per
 * call.  Entries that come back failed (FailedEntryCount) are resent
 * alone, up to max_attempts rounds; whole-call failures are the AWS
 * client's to retry (standard mode, breaker).  publish succeeds only when
 * every event was accepted, so the relay keeps the rest pending;
 * publish_each (port version 2) also says which entries were accepted, so
 * the relay acks each cart's accepted prefix; publish_results (version 3)
 * also says which were refused for good, with the error code: per entry
 * any ErrorCode but throttling and InternalFailure (MalformedDetail,
 * InvalidArgument, ResourceNotFoundException, AccessDeniedException, ...),
 * per call any 4xx but throttling, credentials errors and configuration
 * errors (ValidationException), and an entry whose Detail cannot be
 * built.  Those are not resent within the call; 5xx, throttling, network
 * failures and whole calls refused for a missing bus
 * (ResourceNotFoundException) or a missing permission (AccessDenied...)
 * are failures for now: a configuration error must not send the whole
 * stream to the dead-letter list.
 *
 * Thread-safe.  The client (service "events",
 * application/x-amz-json-1.1) and log are borrowed.
 */

#include "aws/aws.h"
#include "cart/ports.h"

typedef struct cart_eventbridge_config {
	const char *bus;             /* name or ARN */
	const char *source;          /* e.g. "cart-service" */
	int max_attempts;            /* rounds for failed entries; default 3 */
} cart_eventbridge_config;

int cart_eventbridge_publisher_new(cart_publisher *out,
				   const cart_eventbridge_config *cfg,
				   cart_aws_client *client,
				   const cart_aws_log *log);

/*
 * Names another bus (its secret rotated): entries built from now on go
 * to it; a batch already built keeps the old name.  CART_EINVALID if pub
 * is not an EventBridge publisher or bus is empty or 256 bytes or more.
 * Thread-safe.
 */
int cart_eventbridge_publisher_set_bus(cart_publisher *pub, const char *bus);

#endif
