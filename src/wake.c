/*
 * wake.c
 *		Wake the delivery worker when a transaction that queued work commits
 *		(COMMIT PREPARED included), start or stop workers as databases gain
 *		or lose the extension, tell the worker when the extension is created
 *		or updated, and have a worker step aside for DDL that needs its
 *		database to itself.
 *
 * Nothing here wakes at rollback: an aborted transaction wakes nobody.  The
 * hooks act only once PostgreSQL's own permission checks have passed (or
 * would pass), so no role can stop a worker it could not drop.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/elog.h"
#include "utils/inval.h"

#include "shmem.h"
#include "wake.h"

PG_FUNCTION_INFO_V1(webhook_wake_worker_at_commit);
PG_FUNCTION_INFO_V1(webhook_cluster_changed);
PG_FUNCTION_INFO_V1(webhook_start_worker_at_commit);

/* What this backend's current transaction asked for at commit. */
static bool wake_worker_at_commit = false;
static bool wake_sync_at_commit = false;	/* the Citus configuration changed */
static bool rescan_at_commit = false;
static bool start_worker_at_commit = false; /* after COMMIT PREPARED */
static bool end_aside_at_end = false;
static bool callback_registered = false;
static bool warned_not_preloaded = false;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

/*
 * At commit, act on what the transaction asked for; at abort, forget it.  A
 * prepared transaction wakes nobody yet: COMMIT PREPARED will.  Workers
 * asked to step aside come back however the transaction ends.
 */
static void
webhook_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_worker_at_commit &&
				!webhook_wake_worker(MyDatabaseId) && start_worker_at_commit)
				rescan_at_commit = true;
			if (rescan_at_commit)
				webhook_wake_launcher(true);
			if (wake_sync_at_commit)
				webhook_wake_sync(MyDatabaseId);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	if (end_aside_at_end)
		webhook_end_aside();
	wake_worker_at_commit = false;
	wake_sync_at_commit = false;
	rescan_at_commit = false;
	start_worker_at_commit = false;
	end_aside_at_end = false;
}

/* The transaction callback is registered on first use, once per backend. */
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
 * Called by whatever writes events (enqueue.c): only a flag is set here;
 * the worker is woken when the transaction commits, so that it finds the
 * events visible.
 */
void
webhook_wake_worker_at_commit_flag(void)
{
	register_callback_once();
	wake_worker_at_commit = true;
}

/* SQL: the same, for events written by SQL (webhook._enqueue, pings). */
Datum
webhook_wake_worker_at_commit(PG_FUNCTION_ARGS)
{
	webhook_wake_worker_at_commit_flag();
	PG_RETURN_VOID();
}

/*
 * SQL: the statement trigger webhook._cluster_changed() on endpoints and
 * event types.  On a Citus coordinator the sync worker sends them to the
 * nodes as soon as this transaction commits; elsewhere nobody listens.
 */
Datum
webhook_cluster_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "webhook._cluster_changed() must be called as a trigger");
	register_callback_once();
	wake_sync_at_commit = true;
	return PointerGetDatum(NULL);
}

/*
 * SQL: called by the install script so that the launcher starts a worker for
 * this database once CREATE EXTENSION commits.  Without the library preloaded
 * nothing will deliver, so say so.
 */
Datum
webhook_start_worker_at_commit(PG_FUNCTION_ARGS)
{
	if (!webhook_shmem_attached())
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
 * Ask the worker of a database to step aside until this transaction ends,
 * because the DDL being run needs the database to itself.
 */
static void
step_aside_for_ddl(Oid dboid)
{
	register_callback_once();
	end_aside_at_end = true;
	webhook_step_aside(dboid);
}

/*
 * CREATE EXTENSION webhook or ALTER EXTENSION webhook (UPDATE) ran: at
 * commit, wake the worker, and have it look again at the installed version
 * (version_gate.c), which an update of pg_extension alone would not make it
 * do.  Right after the insert the new extension's name is not visible yet:
 * then it may be ours, and a needless wake-up costs little.
 */
static void
extension_changed(Oid extoid)
{
	char	   *name = get_extension_name(extoid);

	if (name != NULL && strcmp(name, "webhook") != 0)
		return;
	register_callback_once();
	wake_worker_at_commit = true;
	CacheInvalidateRelcacheByRelid(ExtensionRelationId);
}

/*
 * DROP DATABASE waits for other sessions to leave, and our worker is one.
 * The drop hook runs once PostgreSQL has checked that the role may drop it.
 * The post-create and post-alter hooks of an extension run for CREATE and
 * ALTER EXTENSION, once they have done their work.
 */
static void
webhook_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					  int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (!webhook_shmem_attached())
		return;
	if (access == OAT_DROP && classId == DatabaseRelationId)
		step_aside_for_ddl(objectId);
	else if ((access == OAT_POST_CREATE || access == OAT_POST_ALTER) &&
			 classId == ExtensionRelationId && subId == 0)
		extension_changed(objectId);
}

/* The value of a CREATE/ALTER DATABASE option, or NULL. */
static char *
database_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, name) == 0 && def->arg != NULL)
			return defGetString(def);
	}
	return NULL;
}

/*
 * The database that a statement copies, renames or moves, which must have
 * no other session; InvalidOid for other statements.  PostgreSQL gives no
 * hook between its permission checks and its wait for other sessions here.
 */
static Oid
database_needed_alone(Node *parsetree)
{
	const char *dbname = NULL;

	if (IsA(parsetree, CreatedbStmt))
		dbname = database_option(((CreatedbStmt *) parsetree)->options, "template");
	else if (IsA(parsetree, RenameStmt) &&
			 ((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
		dbname = ((RenameStmt *) parsetree)->subname;
	else if (IsA(parsetree, AlterDatabaseStmt) &&
			 database_option(((AlterDatabaseStmt *) parsetree)->options, "tablespace"))
		dbname = ((AlterDatabaseStmt *) parsetree)->dbname;
	return dbname ? get_database_oid(dbname, true) : InvalidOid;
}

/*
 * Before CREATE DATABASE ... TEMPLATE, ALTER DATABASE ... RENAME or SET
 * TABLESPACE, have the worker step aside, but only for a role that owns the
 * database: one that could drop it anyway.  DROP EXTENSION webhook wakes the
 * worker so that it sees the extension is gone and exits.
 *
 * Afterwards, COMMIT PREPARED wakes the worker at commit, as the prepared
 * transaction may have sent events or dropped the extension, and has one
 * started if the database has the extension but no worker (it may have
 * created it).  A new database may have the extension from its template.
 */
static void
webhook_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (webhook_shmem_attached())
	{
		Oid			alone = database_needed_alone(parsetree);

		if (OidIsValid(alone) && pg_database_ownercheck(alone, GetUserId()))
			step_aside_for_ddl(alone);
		if (IsA(parsetree, DropStmt) &&
			((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
		{
			register_callback_once();
			wake_worker_at_commit = true;
		}
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (!webhook_shmem_attached())
		return;
	if (IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
	{
		register_callback_once();
		wake_worker_at_commit = true;
		start_worker_at_commit = OidIsValid(get_extension_oid("webhook", true));
	}
	else if (IsA(parsetree, CreatedbStmt))
	{
		register_callback_once();
		rescan_at_commit = true;
	}
}

/* Install the hooks in every backend that loads the library. */
void
WebhookWakeInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = webhook_ProcessUtility;
	prev_object_access_hook = object_access_hook;
	object_access_hook = webhook_object_access;
}
