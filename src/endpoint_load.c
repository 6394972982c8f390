/*
 * endpoint_load.c
 *		What the delivery worker knows of the endpoints it is sending to:
 *		requests in flight against each endpoint's cap, and the token bucket
 *		of each rate-limited one (whose arithmetic is in schedule.c).  The
 *		claim and next-due queries take a snapshot of it.
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "endpoint_load.h"

/* Endpoints being sent to, by id. */
static HTAB *endpoint_load = NULL;

/* The table lives as long as the worker. */
void
endpoint_load_init(void)
{
	HASHCTL		hctl;

	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(int64);
	hctl.entrysize = sizeof(EndpointLoad);
	endpoint_load = hash_create("webhook endpoint load", 256, &hctl, HASH_ELEM | HASH_BLOBS);
}

/* The worker's record of an endpoint, created on first use. */
static EndpointLoad *
endpoint_load_get(Delivery *d)
{
	bool		found;
	EndpointLoad *load = hash_search(endpoint_load, &d->endpoint_id, HASH_ENTER, &found);

	if (!found)
	{
		load->in_flight = 0;
		load->bucket.tokens = schedule_bucket_burst(d->rate_limit_per_s);
		load->bucket.refilled_at = GetCurrentTimestamp();
	}
	load->max_in_flight = d->max_in_flight;
	load->bucket.rate_per_s = d->rate_limit_per_s;
	return load;
}

/*
 * Count a request against its endpoint's cap (delta +1 at start, -1 at the
 * end); starting one also takes a token from a rate-limited endpoint.
 * Entries of idle endpoints are dropped unless they carry a token bucket.
 */
void
endpoint_load_add(Delivery *d, int delta)
{
	EndpointLoad *load = endpoint_load_get(d);

	load->in_flight += delta;
	if (delta > 0 && load->bucket.rate_per_s > 0)
		load->bucket.tokens -= 1.0;
	if (load->in_flight <= 0 && load->bucket.rate_per_s <= 0)
		hash_search(endpoint_load, &d->endpoint_id, HASH_REMOVE, NULL);
}

/*
 * Refill token buckets, and list the endpoints being sent to for the claim
 * query; also those that can take nothing now, which the next-due query must
 * skip.  snap->throttle_wake is when the first empty bucket holds a token
 * again.  An idle endpoint with a full bucket is forgotten: a new entry
 * would start the same.  The arrays are allocated in the current context.
 */
void
endpoint_load_snapshot(EndpointLoadSnapshot *snap)
{
	long		n = hash_get_num_entries(endpoint_load);
	HASH_SEQ_STATUS status;
	EndpointLoad *load;
	TimestampTz now = GetCurrentTimestamp();

	snap->busy = palloc(sizeof(EndpointLoad *) * Max(n, 1));
	snap->saturated = palloc(sizeof(int64) * Max(n, 1));
	snap->n_busy = 0;
	snap->n_saturated = 0;
	snap->throttle_wake = 0;
	hash_seq_init(&status, endpoint_load);
	while ((load = hash_seq_search(&status)) != NULL)
	{
		bool		full = load->in_flight >= load->max_in_flight;
		int64_t		wake_at;

		if (schedule_refill(&load->bucket, now, &wake_at))
		{
			full = true;
			snap->throttle_wake = schedule_earliest(snap->throttle_wake, wake_at);
		}
		else if (load->bucket.rate_per_s > 0 && load->in_flight <= 0 &&
				 load->bucket.tokens >= schedule_bucket_burst(load->bucket.rate_per_s))
		{
			hash_search(endpoint_load, &load->endpoint_id, HASH_REMOVE, NULL);
			continue;
		}
		snap->busy[snap->n_busy++] = load;
		if (full)
			snap->saturated[snap->n_saturated++] = load->endpoint_id;
	}
}

/*
 * Take the current rate limits of the endpoints that could take nothing
 * (rates[i] for ids[i], 0 for none), and forget idle ones that no longer
 * have a limit: deleted, deactivated or unlimited since.
 */
void
endpoint_load_refresh(int64 *ids, double *rates, int n)
{
	for (int i = 0; i < n; i++)
	{
		EndpointLoad *load = hash_search(endpoint_load, &ids[i], HASH_FIND, NULL);

		if (load == NULL)
			continue;
		load->bucket.rate_per_s = rates[i];
		if (load->in_flight <= 0 && load->bucket.rate_per_s <= 0)
			hash_search(endpoint_load, &ids[i], HASH_REMOVE, NULL);
	}
}
