/*
 * cluster_sync.c
 *		The sync worker: on a Citus coordinator, a background worker that
 *		keeps every worker node's endpoints and event types the
 *		coordinator's (webhook._cluster_tick() and webhook.sync_cluster(),
 *		sql/src/09_cluster.sql).
 *
 * Delivery worker 0 of a database where Citus is installed starts it, and
 * ends it when it leaves itself, so the sync worker steps aside with the
 * delivery workers (DROP DATABASE, ALTER EXTENSION).  It is a process of
 * its own because a sync talks to other servers: a node that is slow or
 * down holds up this worker, never a delivery.  Each turn is one short
 * transaction.  A commit that changes endpoints or event types wakes it
 * (wake.c, through worker 0's slot); otherwise it looks every 5 seconds,
 * for new nodes and for the nodes' own decisions.  It leaves for good when
 * the database is no coordinator (a worker node) or has no webhook schema
 * at this version, and the postmaster starts it again after an error.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "citus.h"
#include "cluster_sync.h"
#include "shmem.h"

/*
 * Between two turns of the sync worker, unless a change to the
 * configuration wakes it at commit: the longest a new node waits.
 */
#define SYNC_INTERVAL_MS 5000
/* After an error, the postmaster starts the sync worker again after this. */
#define SYNC_RESTART_S 10

extern PGDLLEXPORT void webhook_cluster_sync_main(Datum main_arg);

/* The sync worker this delivery worker started, if any. */
static BackgroundWorkerHandle *sync_handle = NULL;

/* The delivery worker leaves: the sync worker goes with it. */
static void
stop_sync_worker(int code, Datum arg)
{
	if (sync_handle != NULL)
		TerminateBackgroundWorker(sync_handle);
}

/*
 * Is Citus installed in this database?  Reads the catalog in a transaction,
 * and the database's name for the worker's, into *dbname.
 */
static bool
citus_here(char *dbname)
{
	bool		installed;

	StartTransactionCommand();
	installed = webhook_citus_installed();
	strlcpy(dbname, get_database_name(MyDatabaseId), NAMEDATALEN);
	CommitTransactionCommand();
	return installed;
}

/*
 * Called by delivery worker 0 once the extension is ready: start the sync
 * worker where Citus is installed, unless it runs already.
 */
void
webhook_cluster_sync_start(void)
{
	BackgroundWorker worker;
	pid_t		pid;
	char		dbname[NAMEDATALEN];
	static bool registered_exit = false;

	if (sync_handle != NULL &&
		GetBackgroundWorkerPid(sync_handle, &pid) != BGWH_STOPPED)
		return;
	if (!citus_here(dbname))
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = SYNC_RESTART_S;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "webhook");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "webhook_cluster_sync_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "webhook cluster sync for %s", dbname);
	snprintf(worker.bgw_type, BGW_MAXLEN, "webhook cluster sync");
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &sync_handle))
	{
		sync_handle = NULL;
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("webhook could not start its cluster sync worker"),
				 errdetail("Worker nodes keep the configuration they have until it starts."),
				 errhint("Raise max_worker_processes.")));
		return;
	}
	if (!registered_exit)
		on_proc_exit(stop_sync_worker, (Datum) 0);
	registered_exit = true;
}

/* The sync worker leaves: commits wake nobody now. */
static void
sync_detach(int code, Datum arg)
{
	(void) webhook_sync_attach(MyDatabaseId, NULL);
}

/* One turn: webhook._cluster_tick() in a transaction of its own. */
static char *
sync_turn(void)
{
	char	   *verdict = "leave";
	int			ret;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "SELECT webhook._cluster_tick()");

	/* The schema of an older version has no tick: wait for a new start. */
	ret = SPI_execute("SELECT CASE WHEN pg_catalog.to_regprocedure('webhook._cluster_tick()') IS NOT NULL"
					  " THEN webhook._cluster_tick() ELSE 'leave' END", false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not run webhook._cluster_tick()");
	verdict = MemoryContextStrdup(TopMemoryContext,
								  SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return verdict;
}

/*
 * Background worker entry point; main_arg is the database OID.  Connects
 * as the bootstrap superuser, as the delivery workers do: Citus reaches
 * the other nodes as that same user.
 */
void
webhook_cluster_sync_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg), InvalidOid, 0);
	pgstat_report_appname("webhook cluster sync");
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/* Woken by commits that change the configuration (wake.c). */
	if (!webhook_sync_attach(MyDatabaseId, MyLatch))
		proc_exit(0);
	before_shmem_exit(sync_detach, (Datum) 0);

	for (;;)
	{
		char	   *verdict;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		verdict = sync_turn();
		if (strcmp(verdict, "leave") == 0)
			proc_exit(0);
		pfree(verdict);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 SYNC_INTERVAL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
