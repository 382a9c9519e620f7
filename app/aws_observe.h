#ifndef APP_AWS_OBSERVE_H
#define APP_AWS_OBSERVE_H

#include "aws/aws.h"

/* Given to every AWS client the app makes (see aws_observe.c). */
extern const cart_aws_observer app_aws_observer;

#endif
