/*
 * queue.h
 *		The delivery worker's SQL, each call one short transaction (queue.c).
 */
#ifndef WEBHOOK_QUEUE_H
#define WEBHOOK_QUEUE_H

#include "lib/ilist.h"

#include "delivery.h"
#include "endpoint_load.h"
#include "version_gate.h"

extern void queue_init_worker(int worker, int workers);
extern ExtensionState queue_start(void);

/* One claim's turn (queue_claim): what the worker knows, what it found. */
typedef struct QueueClaimTurn
{
	bool		claim_all;		/* something besides new events may be due */
	int			events_read;	/* returned: new events read */
	bool		more_events;	/* returned: more new events may wait */
	bool		claim_again;	/* returned: this claim filled its limit */
	bool		claimed_due;	/* returned: the claim statement ran */
} QueueClaimTurn;

extern int	queue_claim(int limit, dlist_head *out, const EndpointLoadSnapshot *load,
						int n_held, Delivery **held, ExtensionState *state,
						QueueClaimTurn *t);
extern void queue_flush_claim(bool sent);
extern int	queue_record(Delivery **done, int n, bool *recorded);
extern TimestampTz queue_next_due(int n_busy, int64 *busy_ids, double *rates);
extern void queue_housekeeping(bool had_failures);

#endif							/* WEBHOOK_QUEUE_H */
