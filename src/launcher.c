/*
 * launcher.c
 *		One launcher per server starts the delivery workers (webhook.workers
 *		of them) for every database where the extension is installed, with no
 *		database name to configure.
 *
 * The launcher reads pg_database (a shared catalog, so it needs no database
 * of its own) and starts the workers of each database; a worker that finds no
 * extension says so and leaves, and is not started again until some backend
 * asks for a rescan (CREATE EXTENSION webhook, CREATE DATABASE, ...).  A
 * worker that stops for any other reason is started again shortly after.  A
 * database refused a worker (no slot, max_worker_processes reached) is tried
 * again as soon as one of our workers exits, and every second while any
 * waits.  What runs is recorded in shared memory (shmem.c), so a restarted
 * launcher adopts the running workers, and a second launcher leaves.
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

#include "launcher.h"
#include "schedule.h"
#include "shmem.h"
#include "webhook.h"

/* Wait before starting again a worker that stopped unexpectedly. */
#define RESTART_DELAY_MS 1000
/* While a database waits for a worker, look for a free slot this often. */
#define REFUSED_RETRY_MS 1000

/* The workers this launcher started, by slot. */
static BackgroundWorkerHandle *handles[WEBHOOK_MAX_SLOTS];

/* Databases whose worker found no extension: skipped until a rescan request. */
static List *no_extension = NIL;

/* Databases refused a worker at the last scan, so warned about already. */
static List *refused = NIL;

extern PGDLLEXPORT void webhook_launcher_main(Datum main_arg);

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

/* Add a database to one of the launcher's lists, which outlive every scan. */
static void
remember(List **list, Oid dboid)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	*list = list_append_unique_oid(*list, dboid);
	MemoryContextSwitchTo(old);
}

/*
 * Note that a database could not get a worker; warn only when it starts
 * waiting, not at every retry.
 */
static void
refuse(Oid dboid, const char *dbname, bool no_slot, List **waiting)
{
	if (!list_member_oid(refused, dboid))
	{
		if (no_slot)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("webhook cannot deliver for database \"%s\": all %d worker slots are taken",
							dbname, WEBHOOK_MAX_SLOTS),
					 errdetail("The database gets a worker as soon as a slot frees up.")));
		else
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start the webhook delivery worker for database \"%s\"", dbname),
					 errdetail("The launcher tries again as soon as a background worker slot frees up."),
					 errhint("Raise max_worker_processes.")));
	}
	remember(waiting, dboid);
}

/*
 * Start a database's delivery worker number n unless it has one (running,
 * starting, or stepping aside for some DDL).  A database refused one is
 * added to *waiting.  The number goes to the worker in bgw_extra.
 */
static void
start_worker(Oid dboid, const char *dbname, int n, List **waiting)
{
	BackgroundWorker worker;
	bool		exists;
	int			index = webhook_slot_reserve(dboid, n, &exists);
	Oid			ignored;

	if (exists)
		return;
	if (index < 0)
	{
		refuse(dboid, dbname, true, waiting);
		return;
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "webhook");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "webhook_worker_main");
	if (webhook_workers > 1)
		snprintf(worker.bgw_name, BGW_MAXLEN, "webhook delivery worker %d for %s", n, dbname);
	else
		snprintf(worker.bgw_name, BGW_MAXLEN, "webhook delivery worker for %s", dbname);
	memcpy(worker.bgw_extra, &n, sizeof(n));
	snprintf(worker.bgw_type, BGW_MAXLEN, "webhook delivery worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handles[index]))
	{
		/* As if the worker had died before attaching: the slot is freed. */
		(void) webhook_slot_reap(index, true, &ignored);
		handles[index] = NULL;
		refuse(dboid, dbname, false, waiting);
	}
}

/*
 * Start a worker for every connectable database that has none, except those
 * known to lack the extension.  Workers in databases without the extension
 * leave at once.
 */
static void
scan_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	List	   *dbs = NIL;
	List	   *names = NIL;
	List	   *waiting = NIL;
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

		if (!db->datallowconn || db->datistemplate || db->datconnlimit == -2 ||
			list_member_oid(no_extension, db->oid))
			continue;
		old = MemoryContextSwitchTo(caller);
		dbs = lappend_oid(dbs, db->oid);
		names = lappend(names, pstrdup(NameStr(db->datname)));
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);

	forboth(lc1, dbs, lc2, names)
		for (int n = 0; n < webhook_workers; n++)
		start_worker(lfirst_oid(lc1), (char *) lfirst(lc2), n, &waiting);
	/* Databases dropped meanwhile stop waiting. */
	list_free(refused);
	refused = waiting;
	list_free(dbs);
	list_free_deep(names);
}

/*
 * Look at every slot: drop the handles of workers that stopped and free the
 * slots that workers left.  Returns how long until a rescan is needed (-1:
 * none).
 */
static long
reap_workers(void)
{
	long		rescan_ms = -1;

	for (int i = 0; i < WEBHOOK_MAX_SLOTS; i++)
	{
		pid_t		pid;
		bool		stopped = handles[i] != NULL &&
		GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED;
		Oid			dboid;
		WebhookReap reap = webhook_slot_reap(i, stopped, &dboid);

		if (handles[i] != NULL && (stopped || reap != WEBHOOK_REAP_NONE))
		{
			pfree(handles[i]);
			handles[i] = NULL;
		}
		if (reap == WEBHOOK_REAP_NO_EXTENSION)
			remember(&no_extension, dboid);
		else if (reap == WEBHOOK_REAP_RESTART && rescan_ms < 0)
			rescan_ms = RESTART_DELAY_MS;
		/* A slot is free again: a waiting database may take it now. */
		if ((stopped || reap != WEBHOOK_REAP_NONE) && refused != NIL)
			rescan_ms = 0;
	}
	return rescan_ms;
}

/*
 * When the databases should be scanned next, given the last choice: sooner
 * if a worker left (to start it again, or let a waiting database take its
 * slot), now if a backend asked for a rescan.
 */
static TimestampTz
next_rescan(TimestampTz rescan_at)
{
	long		reap_ms = reap_workers();

	if (reap_ms >= 0)
		rescan_at = schedule_earliest(rescan_at,
									  TimestampTzPlusMilliseconds(GetCurrentTimestamp(), reap_ms));
	if (webhook_take_rescan_request())
	{
		/* Some database may have gained the extension: look at all. */
		list_free(no_extension);
		no_extension = NIL;
		rescan_at = GetCurrentTimestamp();
	}
	return rescan_at;
}

/*
 * Sleep until the latch is set or rescan_at (0: none) comes; the latch is
 * set when a worker leaves or a backend asks for a rescan.
 */
static void
launcher_sleep(TimestampTz rescan_at)
{
	long		timeout_ms = -1;

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

/*
 * Background worker entry point of the launcher.  A second launcher (there
 * is one per server) leaves at once.
 */
void
webhook_launcher_main(Datum main_arg)
{
	TimestampTz rescan_at = 0;
	pid_t		other;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	/* A cancel has nothing to stop here: scans are short and repeatable. */
	pqsignal(SIGINT, SIG_IGN);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("webhook launcher");
	other = webhook_launcher_attach();
	if (other != 0)
	{
		ereport(LOG,
				(errmsg("webhook launcher is already running under PID %d", (int) other)));
		proc_exit(0);
	}

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		rescan_at = next_rescan(rescan_at);
		if (rescan_at != 0 && GetCurrentTimestamp() >= rescan_at)
		{
			rescan_at = 0;
			pgstat_report_activity(STATE_RUNNING, "starting delivery workers");
			scan_databases();
			pgstat_report_activity(STATE_IDLE, NULL);
			if (refused != NIL)
				rescan_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), REFUSED_RETRY_MS);
		}
		launcher_sleep(rescan_at);
	}
}
