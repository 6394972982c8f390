/*
 * wake.c
 *		Wake the delivery worker when a transaction that queued work commits,
 *		and start or stop workers as databases gain or lose the extension.
 *
 * Nothing here runs at rollback: an aborted transaction wakes nobody.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/elog.h"

#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_wake_worker_at_commit);
PG_FUNCTION_INFO_V1(webhook_start_worker_at_commit);

/* What this backend's current transaction asked for at commit. */
static bool wake_worker_at_commit = false;
static bool rescan_at_commit = false;
static bool callback_registered = false;
static bool warned_not_preloaded = false;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/*
 * Set the latch of the worker delivering for a database.  Cheap enough to do
 * on every commit that queued deliveries: a scan of a small array.
 */
void
webhook_wake_worker(Oid dboid)
{
	Latch	   *latch = NULL;

	if (webhook_shared == NULL)
		return;
	LWLockAcquire(webhook_shared->lock, LW_SHARED);
	for (int i = 0; i < WEBHOOK_MAX_DATABASES; i++)
	{
		if (webhook_shared->slots[i].dboid == dboid)
		{
			latch = webhook_shared->slots[i].latch;
			break;
		}
	}
	LWLockRelease(webhook_shared->lock);
	if (latch)
		SetLatch(latch);
}

/* Ask the worker of a database to leave, and the launcher not to restart it. */
static void
webhook_stop_worker(Oid dboid)
{
	Latch	   *latch = NULL;

	if (webhook_shared == NULL || !OidIsValid(dboid))
		return;
	LWLockAcquire(webhook_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < WEBHOOK_MAX_DATABASES; i++)
	{
		WebhookWorkerSlot *slot = &webhook_shared->slots[i];

		if (slot->dboid == dboid)
		{
			slot->stop_requested = true;
			latch = slot->latch;
			break;
		}
	}
	LWLockRelease(webhook_shared->lock);
	if (latch)
		SetLatch(latch);
}

/* At commit, act on what the transaction asked for; at abort, forget it. */
static void
webhook_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_worker_at_commit)
				webhook_wake_worker(MyDatabaseId);
			if (rescan_at_commit)
				webhook_wake_launcher(true);
			wake_worker_at_commit = false;
			rescan_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			wake_worker_at_commit = false;
			rescan_at_commit = false;
			break;
		default:
			break;
	}
}

static void
register_callback_once(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(webhook_xact_callback, NULL);
		callback_registered = true;
	}
}

/*
 * SQL: called by webhook.send and the table triggers after queueing
 * deliveries.  Only a flag is set here; the wake happens at commit.
 */
Datum
webhook_wake_worker_at_commit(PG_FUNCTION_ARGS)
{
	register_callback_once();
	wake_worker_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * SQL: called by the install script so that the launcher starts a worker for
 * this database once CREATE EXTENSION commits.  Without the library preloaded
 * nothing will deliver, so say so.
 */
Datum
webhook_start_worker_at_commit(PG_FUNCTION_ARGS)
{
	if (webhook_shared == NULL)
	{
		if (!warned_not_preloaded)
			ereport(NOTICE,
					(errmsg("webhook is not in shared_preload_libraries, so events will queue but not be delivered"),
					 errhint("Add webhook to shared_preload_libraries in postgresql.conf and restart the server.")));
		warned_not_preloaded = true;
		PG_RETURN_VOID();
	}
	register_callback_once();
	rescan_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * DROP DATABASE waits for other sessions to leave; our worker is one, so ask
 * it to go first.  DROP EXTENSION webhook wakes the worker so that it sees the
 * extension is gone and exits.
 */
static void
webhook_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (webhook_shared != NULL && IsA(parsetree, DropdbStmt))
	{
		DropdbStmt *stmt = (DropdbStmt *) parsetree;

		webhook_stop_worker(get_database_oid(stmt->dbname, true));
	}
	else if (webhook_shared != NULL && IsA(parsetree, DropStmt) &&
			 ((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
	{
		register_callback_once();
		wake_worker_at_commit = true;
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/* Install the utility hook in every backend that loads the library. */
void
WebhookWakeInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = webhook_ProcessUtility;
}
