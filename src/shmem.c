/*
 * shmem.c
 *		The state that the launcher, the delivery workers and ordinary
 *		backends share, and the only code that touches it.
 *
 * There is one slot per delivery worker: webhook.workers of them per
 * database being delivered for, numbered from 0.  The launcher
 * reserves a slot and starts a worker; the worker attaches by recording its
 * PID, and from then on only that process changes the slot, until it leaves
 * it for the launcher to free.  So a launcher that restarts adopts the
 * workers that run instead of starting second ones, a second worker for a
 * database and number leaves at once, and an exiting worker never clears
 * the slot of another.  A backend whose DDL needs a database to itself
 * (DROP DATABASE, ALTER DATABASE ... RENAME, CREATE DATABASE ... TEMPLATE)
 * marks the database's slots "aside" with its own PID: its workers leave
 * and are not started again until that backend's transaction ends.  It also remembers the transforms that
 * ignored their cancel (transform.c), so that the worker started after one
 * ended itself does not run them again.  The launcher records its PID too,
 * so that a second launcher leaves rather than take over (autoprewarm's
 * guard).  The delivery counters are read by webhook_worker_stats().
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/builtins.h"

#include "shmem.h"

/* Where a database's slot stands. */
typedef enum WebhookSlotState
{
	WEBHOOK_SLOT_FREE = 0,
	WEBHOOK_SLOT_STARTING,		/* the launcher started a worker for it */
	WEBHOOK_SLOT_RUNNING,		/* the worker with this pid delivers */
	WEBHOOK_SLOT_EXITED			/* the worker left; the launcher decides */
} WebhookSlotState;

/* One delivery worker of a database. */
typedef struct WebhookWorkerSlot
{
	Oid			dboid;
	int			worker;			/* its number in the database, from 0 */
	WebhookSlotState state;
	pid_t		pid;			/* the attached worker, 0 if none */
	Latch	   *latch;			/* its latch, set to wake it */
	bool		no_extension;	/* it left: the extension is not installed */
	pid_t		aside_for;		/* backend whose DDL needs the database alone */
	Latch	   *sync_latch;		/* worker 0's: the Citus sync worker's latch */
} WebhookWorkerSlot;

/* Stalled transforms remembered; beyond, the oldest is forgotten. */
#define WEBHOOK_MAX_STALLED_TRANSFORMS 256

/* State in shared memory, protected by lock. */
typedef struct WebhookShared
{
	LWLock	   *lock;
	pid_t		launcher_pid;	/* the launcher running, 0 if none */
	Latch	   *launcher_latch;
	bool		rescan_requested;	/* a database may have gained the
									 * extension */
	WebhookWorkerSlot slots[WEBHOOK_MAX_SLOTS];
	WebhookDbStats stats[WEBHOOK_MAX_SLOTS];
	WebhookStalledTransform stalled[WEBHOOK_MAX_STALLED_TRANSFORMS];
	int			next_stalled;	/* the entry to fill next */
} WebhookShared;

/* NULL unless the library was preloaded. */
static WebhookShared *webhook_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* The slot this worker process attached to, if any. */
static WebhookWorkerSlot *my_slot = NULL;

/* Ask the postmaster for our shared state (PG15: only in this hook). */
static void
webhook_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(WebhookShared)));
	RequestNamedLWLockTranche("webhook", 1);
}

/* Create or attach to the shared state. */
static void
webhook_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	webhook_shared = ShmemInitStruct("webhook", sizeof(WebhookShared), &found);
	if (!found)
	{
		memset(webhook_shared, 0, sizeof(WebhookShared));
		webhook_shared->lock = &(GetNamedLWLockTranche("webhook"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Install the shared memory hooks; only while preloading. */
void
WebhookShmemInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = webhook_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = webhook_shmem_startup;
}

/*
 * Is there shared state to use?  Only when the library was preloaded; the
 * SQL functions work without it, and nothing delivers.
 */
bool
webhook_shmem_attached(void)
{
	return webhook_shared != NULL;
}

/*
 * The slot of a database's worker number worker (-1: any of its workers),
 * or NULL; the caller holds the lock.
 */
static WebhookWorkerSlot *
slot_of(Oid dboid, int worker)
{
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
		if (webhook_shared->slots[i].state != WEBHOOK_SLOT_FREE &&
			webhook_shared->slots[i].dboid == dboid &&
			(worker < 0 || webhook_shared->slots[i].worker == worker))
			return &webhook_shared->slots[i];
	return NULL;
}

/* Is a backend holding the database aside?  The caller holds the lock. */
static bool
database_aside(Oid dboid)
{
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
		if (webhook_shared->slots[i].state != WEBHOOK_SLOT_FREE &&
			webhook_shared->slots[i].dboid == dboid && webhook_shared->slots[i].aside_for != 0)
			return true;
	return false;
}

/* A free slot taken for a database's worker, or NULL; the caller holds the lock. */
static WebhookWorkerSlot *
slot_take(Oid dboid, int worker, WebhookSlotState state)
{
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
	{
		WebhookWorkerSlot *slot = &webhook_shared->slots[i];

		if (slot->state == WEBHOOK_SLOT_FREE)
		{
			memset(slot, 0, sizeof(WebhookWorkerSlot));
			slot->dboid = dboid;
			slot->worker = worker;
			slot->state = state;
			return slot;
		}
	}
	return NULL;
}

/* Set the launcher's latch; with rescan, it also looks for new databases. */
void
webhook_wake_launcher(bool rescan)
{
	Latch	   *latch;

	if (webhook_shared == NULL)
		return;
	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	if (rescan)
		webhook_shared->rescan_requested = true;
	latch = webhook_shared->launcher_latch;
	LWLockRelease(webhook_shared->lock);
	if (latch)
		SetLatch(latch);
}

/*
 * Set the latches of the workers delivering for a database: any of them
 * may read the new events, and each delivers to its own endpoints.  Cheap
 * enough to do on every commit that queued events: a scan of a small array.
 * Returns whether a worker was running there.
 */
bool
webhook_wake_worker(Oid dboid)
{
	Latch	   *latches[WEBHOOK_MAX_SLOTS];
	int			n = 0;

	if (webhook_shared == NULL)
		return false;
	LWLockAcquire(webhook_shared->lock, LW_SHARED);
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
	{
		WebhookWorkerSlot *slot = &webhook_shared->slots[i];

		if (slot->state == WEBHOOK_SLOT_RUNNING && slot->dboid == dboid && slot->latch)
			latches[n++] = slot->latch;
	}
	LWLockRelease(webhook_shared->lock);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
	return n > 0;
}

/*
 * The Citus sync worker of a database (cluster_sync.c) hangs its latch on
 * the slot of the database's worker 0, which started it; NULL to take it
 * off.  False when that worker is gone.
 */
bool
webhook_sync_attach(Oid dboid, Latch *latch)
{
	bool		found = false;

	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
	{
		WebhookWorkerSlot *slot = &webhook_shared->slots[i];

		if (slot->state == WEBHOOK_SLOT_RUNNING && slot->dboid == dboid && slot->worker == 0)
		{
			slot->sync_latch = latch;
			found = true;
		}
	}
	LWLockRelease(webhook_shared->lock);
	return found;
}

/* Wake a database's Citus sync worker, if it runs: its configuration changed. */
void
webhook_wake_sync(Oid dboid)
{
	Latch	   *latch = NULL;

	if (webhook_shared == NULL)
		return;
	LWLockAcquire(webhook_shared->lock, LW_SHARED);
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
	{
		WebhookWorkerSlot *slot = &webhook_shared->slots[i];

		if (slot->state == WEBHOOK_SLOT_RUNNING && slot->dboid == dboid && slot->worker == 0)
			latch = slot->sync_latch;
	}
	LWLockRelease(webhook_shared->lock);
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * Ask the workers of a database to leave and not to come back until this
 * backend's transaction ends (webhook_end_aside).  A database with no worker
 * gets a slot anyway, so that the launcher starts none meanwhile.
 */
void
webhook_step_aside(Oid dboid)
{
	Latch	   *latches[WEBHOOK_MAX_SLOTS];
	int			n = 0;

	if (webhook_shared == NULL || !OidIsValid(dboid))
		return;
	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	if (slot_of(dboid, -1) == NULL)
		(void) slot_take(dboid, 0, WEBHOOK_SLOT_EXITED);
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
	{
		WebhookWorkerSlot *slot = &webhook_shared->slots[i];

		if (slot->state != WEBHOOK_SLOT_FREE && slot->dboid == dboid)
		{
			slot->aside_for = MyProcPid;
			if (slot->latch)
				latches[n++] = slot->latch;
		}
	}
	LWLockRelease(webhook_shared->lock);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

/*
 * The transaction that asked workers to step aside has ended: let them come
 * back (under a new name, or into a copy too) by asking for a rescan.
 */
void
webhook_end_aside(void)
{
	if (webhook_shared == NULL)
		return;
	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
		if (webhook_shared->slots[i].aside_for == MyProcPid)
			webhook_shared->slots[i].aside_for = 0;
	LWLockRelease(webhook_shared->lock);
	webhook_wake_launcher(true);
}

/* Forget the launcher's latch when it exits, unless another launcher took over. */
static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	if (webhook_shared->launcher_pid == MyProcPid)
	{
		webhook_shared->launcher_pid = 0;
		webhook_shared->launcher_latch = NULL;
	}
	LWLockRelease(webhook_shared->lock);
}

/*
 * The launcher starts: adopt running workers as they are.  Slots whose
 * worker was started by an earlier launcher but has not attached are
 * dropped: that worker finds no reservation and leaves, and this launcher
 * starts another.  Returns 0, or the PID of another launcher that is still
 * running, in which case nothing changes and this one should leave.
 */
pid_t
webhook_launcher_attach(void)
{
	pid_t		other;

	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	other = webhook_shared->launcher_pid;
	if (other != 0 && other != MyProcPid && BackendPidGetProc(other) != NULL)
	{
		LWLockRelease(webhook_shared->lock);
		return other;
	}
	webhook_shared->launcher_pid = MyProcPid;
	webhook_shared->launcher_latch = MyLatch;
	webhook_shared->rescan_requested = true;
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
	{
		WebhookWorkerSlot *slot = &webhook_shared->slots[i];

		if (slot->state == WEBHOOK_SLOT_STARTING)
			slot->state = slot->aside_for ? WEBHOOK_SLOT_EXITED : WEBHOOK_SLOT_FREE;
	}
	LWLockRelease(webhook_shared->lock);
	before_shmem_exit(launcher_detach, (Datum) 0);
	return 0;
}

/* Has a backend asked for a rescan since the launcher last looked? */
bool
webhook_take_rescan_request(void)
{
	bool		rescan;

	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	rescan = webhook_shared->rescan_requested;
	webhook_shared->rescan_requested = false;
	LWLockRelease(webhook_shared->lock);
	return rescan;
}

/*
 * Reserve a slot for a database's worker number worker, which the launcher
 * is about to start.  Returns its index, or -1: *exists tells whether that
 * worker already has a slot (running, starting, or stepping aside), or the
 * database is held aside, or else all are taken.
 */
int
webhook_slot_reserve(Oid dboid, int worker, bool *exists)
{
	WebhookWorkerSlot *slot;

	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	*exists = slot_of(dboid, worker) != NULL || database_aside(dboid);
	slot = *exists ? NULL : slot_take(dboid, worker, WEBHOOK_SLOT_STARTING);
	LWLockRelease(webhook_shared->lock);
	return slot ? (int) (slot - webhook_shared->slots) : -1;
}

/*
 * Decide what becomes of a slot: free it once its worker has left (or,
 * worker_stopped, died before attaching) and no backend holds it aside.
 * Returns what the launcher should do about the database, *dboid.
 */
WebhookReap
webhook_slot_reap(int index, bool worker_stopped, Oid *dboid)
{
	WebhookWorkerSlot *slot = &webhook_shared->slots[index];
	WebhookReap reap = WEBHOOK_REAP_NONE;

	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	*dboid = slot->dboid;
	/* A backend that ended without releasing (it cannot, but be sure). */
	if (slot->aside_for != 0 && BackendPidGetProc(slot->aside_for) == NULL)
		slot->aside_for = 0;
	if (slot->state == WEBHOOK_SLOT_STARTING && worker_stopped)
		slot->state = WEBHOOK_SLOT_EXITED;
	if (slot->state == WEBHOOK_SLOT_EXITED && slot->aside_for == 0)
	{
		reap = slot->no_extension ? WEBHOOK_REAP_NO_EXTENSION : WEBHOOK_REAP_RESTART;
		memset(slot, 0, sizeof(WebhookWorkerSlot));
	}
	LWLockRelease(webhook_shared->lock);
	return reap;
}

/* Leave the slot so nobody sets a latch that is about to go away. */
static void
worker_detach(int code, Datum arg)
{
	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	if (my_slot->pid == MyProcPid)
	{
		my_slot->state = WEBHOOK_SLOT_EXITED;
		my_slot->pid = 0;
		my_slot->latch = NULL;
	}
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
	{
		WebhookDbStats *stats = &webhook_shared->stats[i];

		if (stats->pid == MyProcPid)
		{
			stats->pid = 0;
			stats->in_flight = 0;
		}
	}
	LWLockRelease(webhook_shared->lock);
	my_slot = NULL;
	webhook_wake_launcher(false);
}

/*
 * A worker starts: take the slot the launcher reserved for its database and
 * number.  Returns false, changing nothing, when there is none to take:
 * another worker delivers as that number there, or the database is held
 * aside.  *stats points to the worker's counters, which live as long as the
 * server.
 */
bool
webhook_worker_attach(Oid dboid, int worker, WebhookDbStats **stats)
{
	WebhookWorkerSlot *slot;

	*stats = NULL;
	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	slot = slot_of(dboid, worker);
	if (slot == NULL || slot->state != WEBHOOK_SLOT_STARTING || slot->aside_for != 0)
	{
		LWLockRelease(webhook_shared->lock);
		return false;
	}
	slot->state = WEBHOOK_SLOT_RUNNING;
	slot->pid = MyProcPid;
	slot->latch = MyLatch;
	for (int i = 0; i < WEBHOOK_MAX_SLOTS && *stats == NULL; i++)
		if (webhook_shared->stats[i].dboid == dboid && webhook_shared->stats[i].worker == worker)
			*stats = &webhook_shared->stats[i];
	for (int i = 0; i < WEBHOOK_MAX_SLOTS && *stats == NULL; i++)
		if (webhook_shared->stats[i].dboid == InvalidOid)
		{
			*stats = &webhook_shared->stats[i];
			(*stats)->dboid = dboid;
			(*stats)->worker = worker;
		}
	if (*stats)
		(*stats)->pid = MyProcPid;
	LWLockRelease(webhook_shared->lock);
	my_slot = slot;
	before_shmem_exit(worker_detach, (Datum) 0);
	return true;
}

/* Has a backend asked this worker to step aside? */
bool
webhook_worker_asked_to_leave(void)
{
	bool		leave;

	LWLockAcquire(webhook_shared->lock, LW_SHARED);
	leave = my_slot->aside_for != 0;
	LWLockRelease(webhook_shared->lock);
	return leave;
}

/* The worker found no extension: the launcher need not start it again. */
void
webhook_worker_no_extension(void)
{
	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	my_slot->no_extension = true;
	LWLockRelease(webhook_shared->lock);
}

/* The same transform, at the same versions of its endpoint and function? */
static bool
same_transform(const WebhookStalledTransform *a, const WebhookStalledTransform *b)
{
	return a->dboid == b->dboid && a->endpoint_id == b->endpoint_id &&
		a->endpoint_xmin == b->endpoint_xmin && a->func == b->func &&
		a->func_xmin == b->func_xmin;
}

/*
 * Remember a transform that ignored its cancel, for the worker that comes
 * after this one: shared memory outlives the worker, not the server.
 */
void
webhook_remember_stalled_transform(const WebhookStalledTransform *stalled)
{
	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	webhook_shared->stalled[webhook_shared->next_stalled] = *stalled;
	webhook_shared->next_stalled = (webhook_shared->next_stalled + 1) % WEBHOOK_MAX_STALLED_TRANSFORMS;
	LWLockRelease(webhook_shared->lock);
}

/* Has this transform, at these versions, ignored its cancel before? */
bool
webhook_is_stalled_transform(const WebhookStalledTransform *transform)
{
	bool		stalled = false;

	if (webhook_shared == NULL)
		return false;
	LWLockAcquire(webhook_shared->lock, LW_SHARED);
	for (int i = 0; i < WEBHOOK_MAX_STALLED_TRANSFORMS && !stalled; i++)
		stalled = same_transform(&webhook_shared->stalled[i], transform);
	LWLockRelease(webhook_shared->lock);
	return stalled;
}

PG_FUNCTION_INFO_V1(webhook_worker_stats);

/*
 * A database's counters: the sum over its workers; pid is the lowest
 * numbered running worker's (0 when none runs).
 */
static WebhookDbStats
database_stats(const WebhookDbStats *all, Oid dboid)
{
	WebhookDbStats sum;
	int			pid_worker = WEBHOOK_MAX_WORKERS;

	memset(&sum, 0, sizeof(sum));
	sum.dboid = dboid;
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
	{
		const WebhookDbStats *w = &all[i];

		if (w->dboid != dboid)
			continue;
		sum.attempts += w->attempts;
		sum.succeeded += w->succeeded;
		sum.failed += w->failed;
		sum.retries += w->retries;
		sum.bytes_sent += w->bytes_sent;
		sum.in_flight += w->in_flight;
		if (w->pid != 0 && w->worker < pid_worker)
		{
			sum.pid = w->pid;
			pid_worker = w->worker;
		}
	}
	return sum;
}

/* Was this database's row already made, from an earlier worker's entry? */
static bool
database_seen(const WebhookDbStats *all, int upto, Oid dboid)
{
	for (int i = 0; i < upto; i++)
		if (all[i].dboid == dboid)
			return true;
	return false;
}

/*
 * SQL: one row per database that has had a delivery worker since the server
 * started, with its workers' counters added up.  Empty when the library is
 * not preloaded.
 */
Datum
webhook_worker_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WebhookDbStats *all;

	InitMaterializedSRF(fcinfo, 0);
	if (webhook_shared == NULL)
		return (Datum) 0;

	all = palloc(sizeof(webhook_shared->stats));
	LWLockAcquire(webhook_shared->lock, LW_SHARED);
	memcpy(all, webhook_shared->stats, sizeof(webhook_shared->stats));
	LWLockRelease(webhook_shared->lock);
	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
	{
		WebhookDbStats stats;
		Datum		values[8];
		bool		nulls[8] = {0};
		char	   *dbname;

		if (all[i].dboid == InvalidOid || database_seen(all, i, all[i].dboid))
			continue;
		stats = database_stats(all, all[i].dboid);
		dbname = get_database_name(stats.dboid);
		if (dbname == NULL)
			continue;
		values[0] = CStringGetDatum(dbname);
		values[0] = DirectFunctionCall1(namein, values[0]);
		values[1] = Int32GetDatum(stats.pid);
		nulls[1] = stats.pid == 0;
		values[2] = Int64GetDatum((int64) stats.attempts);
		values[3] = Int64GetDatum((int64) stats.succeeded);
		values[4] = Int64GetDatum((int64) stats.failed);
		values[5] = Int64GetDatum((int64) stats.retries);
		values[6] = Int64GetDatum((int64) stats.bytes_sent);
		values[7] = Int32GetDatum(stats.in_flight);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
