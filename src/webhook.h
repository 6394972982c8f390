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

/* Where a database's slot stands; see shared.c. */
typedef enum WebhookSlotState
{
	WEBHOOK_SLOT_FREE = 0,
	WEBHOOK_SLOT_STARTING,		/* the launcher started a worker for it */
	WEBHOOK_SLOT_RUNNING,		/* the worker with this pid delivers */
	WEBHOOK_SLOT_EXITED			/* the worker left; the launcher decides */
} WebhookSlotState;

/* The delivery worker of one database. */
typedef struct WebhookWorkerSlot
{
	Oid			dboid;
	WebhookSlotState state;
	pid_t		pid;			/* the attached worker, 0 if none */
	Latch	   *latch;			/* its latch, set to wake it */
	bool		no_extension;	/* it left: the extension is not installed */
	pid_t		aside_for;		/* backend whose DDL needs the database alone */
} WebhookWorkerSlot;

/* What the launcher should do about a database whose slot it looked at. */
typedef enum WebhookReap
{
	WEBHOOK_REAP_NONE,			/* nothing: the slot is in use */
	WEBHOOK_REAP_RESTART,		/* freed: start a worker again shortly */
	WEBHOOK_REAP_NO_EXTENSION	/* freed: no extension there, do not */
} WebhookReap;

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

/* Stalled transforms remembered; beyond, the oldest is forgotten. */
#define WEBHOOK_MAX_STALLED_TRANSFORMS 256

/* State in shared memory, protected by lock. */
typedef struct WebhookShared
{
	LWLock	   *lock;
	pid_t		launcher_pid;	/* the launcher running, 0 if none */
	Latch	   *launcher_latch;
	bool		rescan_requested;	/* a database may have gained the extension */
	WebhookWorkerSlot slots[WEBHOOK_MAX_DATABASES];
	WebhookDbStats stats[WEBHOOK_MAX_DATABASES];
	WebhookStalledTransform stalled[WEBHOOK_MAX_STALLED_TRANSFORMS];
	int			next_stalled;	/* the entry to fill next */
} WebhookShared;

/* NULL unless the library was preloaded. */
extern WebhookShared *webhook_shared;

/* queue.c */
extern SPIPlanPtr webhook_prepare_once(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes);

/* shared.c: the only code that touches the slots */
extern void WebhookSharedInit(void);
extern void webhook_wake_launcher(bool rescan);
extern bool webhook_wake_worker(Oid dboid);
extern void webhook_step_aside(Oid dboid);
extern void webhook_end_aside(void);
extern void webhook_launcher_attach(void);
extern bool webhook_take_rescan_request(void);
extern int	webhook_slot_reserve(Oid dboid, bool *exists);
extern WebhookReap webhook_slot_reap(int index, bool worker_stopped, Oid *dboid);
extern bool webhook_worker_attach(Oid dboid, WebhookDbStats **stats);
extern bool webhook_worker_asked_to_leave(void);
extern void webhook_worker_no_extension(void);
extern void webhook_remember_stalled_transform(const WebhookStalledTransform *stalled);
extern bool webhook_is_stalled_transform(const WebhookStalledTransform *transform);

/* wake.c */
extern void WebhookWakeInit(void);

/* transform.c */
extern void WebhookTransformGucInit(void);

/* launcher.c */
extern void WebhookLauncherRegister(void);
extern PGDLLEXPORT void webhook_launcher_main(Datum main_arg);

/* worker.c */
extern PGDLLEXPORT void webhook_worker_main(Datum main_arg);

#endif							/* WEBHOOK_H */
