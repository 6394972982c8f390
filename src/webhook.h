/*
 * webhook.h
 *		Declarations shared by the webhook extension's source files.
 */
#ifndef WEBHOOK_H
#define WEBHOOK_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

/* One delivery worker per database; this many databases can deliver at once. */
#define WEBHOOK_MAX_DATABASES 64

/* GUCs (webhook.c) */
extern int	webhook_max_in_flight;
extern int	webhook_max_in_flight_per_endpoint;
extern int	webhook_batch_size;
extern int	webhook_connect_timeout_ms;
extern int	webhook_response_body_limit_kb;
extern double webhook_retry_delay_scale;
extern bool webhook_allow_private_networks;
extern char *webhook_allowed_networks;
extern bool webhook_require_https;
extern int	webhook_max_payload_bytes;
extern bool webhook_strict_event_types;
extern int	webhook_disable_after_s;
extern int	webhook_retention_succeeded_s;
extern int	webhook_retention_failed_s;
extern int	webhook_transform_timeout_ms;

/* What the launcher knows about the delivery worker of one database. */
typedef struct WebhookWorkerSlot
{
	Oid			dboid;			/* InvalidOid when the slot is free */
	pid_t		pid;			/* 0 until the worker has started */
	Latch	   *latch;			/* the worker's latch, set to wake it */
	bool		no_extension;	/* the worker found no extension and left */
	bool		stop_requested; /* DROP DATABASE/EXTENSION asked it to go */
} WebhookWorkerSlot;

/*
 * Counters of one database's deliveries since the server started.  Written
 * only by that database's worker; read without a lock (aligned 64-bit).
 */
typedef struct WebhookDbStats
{
	Oid			dboid;
	pid_t		pid;
	uint64		attempts;
	uint64		succeeded;
	uint64		failed;
	uint64		retries;
	uint64		bytes_sent;
	int32		in_flight;
} WebhookDbStats;

/* State in shared memory, protected by lock. */
typedef struct WebhookShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch;
	bool		rescan_requested;	/* a database may have gained the extension */
	WebhookWorkerSlot slots[WEBHOOK_MAX_DATABASES];
	WebhookDbStats stats[WEBHOOK_MAX_DATABASES];
} WebhookShared;

/* NULL unless the library was preloaded. */
extern WebhookShared *webhook_shared;

/* queue.c */
extern SPIPlanPtr webhook_prepare_once(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes);

/* webhook.c */
extern void webhook_wake_launcher(bool rescan);

/* wake.c */
extern void WebhookWakeInit(void);
extern void webhook_wake_worker(Oid dboid);

/* transform.c */
extern void WebhookTransformGucInit(void);

/* launcher.c */
extern void WebhookLauncherRegister(void);
extern PGDLLEXPORT void webhook_launcher_main(Datum main_arg);

/* worker.c */
extern PGDLLEXPORT void webhook_worker_main(Datum main_arg);

#endif							/* WEBHOOK_H */
