/*
 * launcher.c
 *		One launcher per server starts a delivery worker for every database
 *		where the extension is installed, with no database name to configure.
 *
 * The launcher reads pg_database (a shared catalog, so it needs no database
 * of its own) and starts a worker per database; a worker that finds no
 * extension says so and leaves, and is not started again until some
 * CREATE EXTENSION webhook commits and asks for a rescan.  A worker that
 * stops for any other reason is started again shortly after.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "webhook.h"

/* Wait before starting again a worker that stopped unexpectedly. */
#define RESTART_DELAY_MS 1000
/* Wait before looking again at a database whose drop asked its worker to go. */
#define DROPPED_RECHECK_MS 10000

static BackgroundWorkerHandle *handles[WEBHOOK_MAX_DATABASES];

/* Register the launcher at server start. */
void
WebhookLauncherRegister(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "webhook");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "webhook_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "webhook launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "webhook launcher");
	RegisterBackgroundWorker(&worker);
}

/* Start the delivery worker for a database in a free slot. */
static void
start_worker(Oid dboid, const char *dbname)
{
	BackgroundWorker worker;
	int			slot_index = -1;

	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < WEBHOOK_MAX_DATABASES; i++)
	{
		if (webhook_shared->slots[i].dboid == InvalidOid)
		{
			slot_index = i;
			memset(&webhook_shared->slots[i], 0, sizeof(WebhookWorkerSlot));
			webhook_shared->slots[i].dboid = dboid;
			break;
		}
	}
	LWLockRelease(webhook_shared->lock);
	if (slot_index < 0)
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("webhook cannot deliver for database \"%s\": all %d worker slots are taken",
						dbname, WEBHOOK_MAX_DATABASES)));
		return;
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "webhook");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "webhook_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "webhook delivery worker for %s", dbname);
	snprintf(worker.bgw_type, BGW_MAXLEN, "webhook delivery worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	memcpy(worker.bgw_extra, &slot_index, sizeof(int));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handles[slot_index]))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the webhook delivery worker for database \"%s\"", dbname),
				 errhint("Raise max_worker_processes.")));
		LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
		webhook_shared->slots[slot_index].dboid = InvalidOid;
		LWLockRelease(webhook_shared->lock);
		handles[slot_index] = NULL;
	}
}

/* Is a worker (running or starting) already assigned to this database? */
static bool
has_slot(Oid dboid)
{
	bool		found = false;

	LWLockAcquire(webhook_shared->lock, LW_SHARED);
	for (int i = 0; i < WEBHOOK_MAX_DATABASES && !found; i++)
		found = webhook_shared->slots[i].dboid == dboid;
	LWLockRelease(webhook_shared->lock);
	return found;
}

/*
 * Start a worker for every connectable database that has none.  Workers in
 * databases without the extension leave at once.
 */
static void
scan_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	List	   *dbs = NIL;
	List	   *names = NIL;
	ListCell   *lc1,
			   *lc2;
	MemoryContext caller = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate || db->datconnlimit == -2)
			continue;
		old = MemoryContextSwitchTo(caller);
		dbs = lappend_oid(dbs, db->oid);
		names = lappend(names, pstrdup(NameStr(db->datname)));
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	forboth(lc1, dbs, lc2, names)
	{
		if (!has_slot(lfirst_oid(lc1)))
			start_worker(lfirst_oid(lc1), (char *) lfirst(lc2));
	}
}

/*
 * Free the slots of workers that have stopped.  Returns how long until a
 * rescan is needed to start some of them again (-1: none needed).
 */
static long
reap_workers(void)
{
	long		rescan_ms = -1;

	for (int i = 0; i < WEBHOOK_MAX_DATABASES; i++)
	{
		pid_t		pid;
		WebhookWorkerSlot *slot = &webhook_shared->slots[i];
		long		delay;

		if (handles[i] == NULL ||
			GetBackgroundWorkerPid(handles[i], &pid) != BGWH_STOPPED)
			continue;

		LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
		if (slot->no_extension)
			delay = -1;
		else if (slot->stop_requested)
			delay = DROPPED_RECHECK_MS;
		else
			delay = RESTART_DELAY_MS;
		slot->dboid = InvalidOid;
		slot->pid = 0;
		slot->latch = NULL;
		LWLockRelease(webhook_shared->lock);
		pfree(handles[i]);
		handles[i] = NULL;

		if (delay >= 0 && (rescan_ms < 0 || delay < rescan_ms))
			rescan_ms = delay;
	}
	return rescan_ms;
}

/* Background worker entry point of the launcher. */
void
webhook_launcher_main(Datum main_arg)
{
	TimestampTz rescan_at = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("webhook launcher");

	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	webhook_shared->launcher_latch = MyLatch;
	/* After a launcher restart, no worker of ours is known to be running. */
	memset(webhook_shared->slots, 0, sizeof(webhook_shared->slots));
	webhook_shared->rescan_requested = true;
	LWLockRelease(webhook_shared->lock);

	for (;;)
	{
		bool		rescan;
		long		reap_ms;
		long		timeout_ms = -1;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		reap_ms = reap_workers();
		if (reap_ms >= 0)
		{
			TimestampTz at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), reap_ms);

			if (rescan_at == 0 || at < rescan_at)
				rescan_at = at;
		}

		LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
		rescan = webhook_shared->rescan_requested;
		webhook_shared->rescan_requested = false;
		LWLockRelease(webhook_shared->lock);

		if (rescan_at != 0 && GetCurrentTimestamp() >= rescan_at)
		{
			rescan = true;
			rescan_at = 0;
		}
		if (rescan)
		{
			pgstat_report_activity(STATE_RUNNING, "starting delivery workers");
			scan_databases();
			pgstat_report_activity(STATE_IDLE, NULL);
		}

		if (rescan_at != 0)
		{
			long		secs;
			int			usecs;

			TimestampDifference(GetCurrentTimestamp(), rescan_at, &secs, &usecs);
			timeout_ms = secs * 1000 + usecs / 1000 + 1;
		}
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (timeout_ms >= 0 ? WL_TIMEOUT : 0),
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
