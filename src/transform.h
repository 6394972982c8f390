/*
 * transform.h
 *		Endpoint transforms, run by the worker after the claim has committed
 *		(transform.c).
 */
#ifndef WEBHOOK_TRANSFORM_H
#define WEBHOOK_TRANSFORM_H

#include "lib/ilist.h"

#include "delivery.h"


extern void transform_defer(Delivery *d, Oid func, TransactionId endpoint_xmin,
							TimestampTz created_at, Datum payload);
extern void transform_apply(dlist_head *claimed);

#endif							/* WEBHOOK_TRANSFORM_H */
