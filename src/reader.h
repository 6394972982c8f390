/*
 * reader.h
 *		The worker's read of new events into delivery_state rows (reader.c).
 */
#ifndef WEBHOOK_READER_H
#define WEBHOOK_READER_H

#include "access/htup.h"
#include "access/tupdesc.h"

/*
 * The time a claim covers, as webhook._claim_lease's argument, in SQL over
 * the endpoint's row ep (the claim's and the read's).  OAuth2 (oauth.c): a
 * delivery may wait for a token request, and after a 401 for a second one
 * and a second request, each bounded by the endpoint's timeout_ms, so its
 * claim covers four of them.
 */
#define LEASE_TIMEOUT_MS \
	"ep.timeout_ms * CASE WHEN ep.oauth_token_url IS NULL THEN 1 ELSE 4 END"

/*
 * The worker's read may make the rows of its own endpoints already claimed,
 * and hand them over with the columns the claim statement would return,
 * saving the claim a statement (the rule is fan_out_head's, in reader.c).
 */
typedef struct ReaderClaim
{
	bool		enabled;		/* make rows claimed at all */
	int			limit;			/* at most this many */
	int			default_cap;	/* webhook.max_in_flight_per_endpoint */
	int			workers;		/* webhook.workers */
	int			me;				/* the calling worker's number */
	Datum		busy_ids;		/* bigint[]: endpoints with requests in flight */
	Datum		busy_counts;	/* integer[]: how many each */
	const char *columns;		/* SQL over d (the row), ep and ev, from 1 */
	void		(*take) (HeapTuple tuple, TupleDesc desc, void *arg);	/* each row */
	void	   *take_arg;
	/* returned */
	int			n_claimed;		/* rows made claimed, all taken */
	int			left;			/* rows of the worker's endpoints made pending */
	int			made;			/* rows made in all */
} ReaderClaim;

extern int	reader_read_events(int page, bool *ordered, bool *more, ReaderClaim *claim);

#endif							/* WEBHOOK_READER_H */
