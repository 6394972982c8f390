/*
 * endpoint_load.h
 *		What the worker knows of the endpoints it is sending to: requests in
 *		flight and token buckets (endpoint_load.c).
 */
#ifndef WEBHOOK_ENDPOINT_LOAD_H
#define WEBHOOK_ENDPOINT_LOAD_H

#include "datatype/timestamp.h"

#include "delivery.h"
#include "schedule.h"

typedef struct EndpointLoad
{
	int64		endpoint_id;	/* hash key */
	int32		in_flight;
	int32		max_in_flight;
	TokenBucket bucket;			/* rate_per_s 0: no limit */
} EndpointLoad;

/* The endpoints being sent to, as the claim and next-due queries need them. */
typedef struct EndpointLoadSnapshot
{
	int			n_busy;
	EndpointLoad **busy;		/* every endpoint with a request or a bucket */
	int			n_saturated;
	int64	   *saturated;		/* those that can take nothing now */
	TimestampTz throttle_wake;	/* when the first empty bucket refills, or 0 */
} EndpointLoadSnapshot;

extern void endpoint_load_init(void);
extern void endpoint_load_add(Delivery *d, int delta);
extern void endpoint_load_snapshot(EndpointLoadSnapshot *snap);
extern void endpoint_load_refresh(int64 *ids, double *rates, int n);

#endif							/* WEBHOOK_ENDPOINT_LOAD_H */
