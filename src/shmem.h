/*
 * shmem.h
 *		The state that the launcher, the delivery workers and ordinary
 *		backends share, behind a small API: worker slots, wake-ups, requests
 *		to stop, delivery counters and stalled transforms (shmem.c).  The
 *		layout itself stays private to shmem.c.
 */
#ifndef WEBHOOK_SHMEM_H
#define WEBHOOK_SHMEM_H

#include "postgres.h"

/* Delivery workers per database (webhook.workers), and in all. */
#define WEBHOOK_MAX_WORKERS 8
#define WEBHOOK_MAX_SLOTS 128

/* What the launcher should do about a database whose slot it looked at. */
typedef enum WebhookReap
{
	WEBHOOK_REAP_NONE,			/* nothing: the slot is in use */
	WEBHOOK_REAP_RESTART,		/* freed: start a worker again shortly */
	WEBHOOK_REAP_NO_EXTENSION	/* freed: no extension there, do not */
} WebhookReap;

/*
 * Counters of one delivery worker's deliveries since the server started
 * (webhook_worker_stats adds up a database's).  Written only by that
 * worker; read without a lock (aligned 64-bit).
 */
typedef struct WebhookDbStats
{
	Oid			dboid;
	int			worker;			/* its number in the database, from 0 */
	pid_t		pid;
	uint64		attempts;
	uint64		succeeded;
	uint64		failed;
	uint64		retries;
	uint64		bytes_sent;
	int32		in_flight;
} WebhookDbStats;

/*
 * A transform that went on running after its cancel: the worker ended
 * itself, and runs this one no more until the endpoint row or the function
 * changes (a new row version).
 */
typedef struct WebhookStalledTransform
{
	Oid			dboid;
	int64		endpoint_id;
	TransactionId endpoint_xmin;
	Oid			func;
	TransactionId func_xmin;
} WebhookStalledTransform;

/* Set-up, while preloading */
extern void WebhookShmemInit(void);
extern bool webhook_shmem_attached(void);

/* Any backend: wake-ups and DDL that needs a database alone */
extern void webhook_wake_launcher(bool rescan);
extern bool webhook_wake_worker(Oid dboid);
extern void webhook_step_aside(Oid dboid);
extern void webhook_end_aside(void);
extern void webhook_wake_sync(Oid dboid);

/* The Citus sync worker (cluster_sync.c) */
extern bool webhook_sync_attach(Oid dboid, struct Latch *latch);

/* The launcher */
extern pid_t webhook_launcher_attach(void);
extern bool webhook_take_rescan_request(void);
extern int	webhook_slot_reserve(Oid dboid, int worker, bool *exists);
extern WebhookReap webhook_slot_reap(int index, bool worker_stopped, Oid *dboid);

/* A delivery worker */
extern bool webhook_worker_attach(Oid dboid, int worker, WebhookDbStats **stats);
extern bool webhook_worker_asked_to_leave(void);
extern void webhook_worker_no_extension(void);
extern void webhook_remember_stalled_transform(const WebhookStalledTransform *stalled);
extern bool webhook_is_stalled_transform(const WebhookStalledTransform *transform);

#endif							/* WEBHOOK_SHMEM_H */
