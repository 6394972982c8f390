/*
 * transform.c
 *		Endpoint transforms: reshape an event's body for one endpoint.
 *
 * An endpoint's transform is called through its wrapper function,
 * webhook._transform_<endpoint id>, which the endpoints triggers keep in step
 * with endpoints.transform; the wrapper makes PostgreSQL record what the
 * transform relies on (its function, its role).  The worker runs transforms
 * after the claim has committed, in a transaction of their own, each in a
 * subtransaction under webhook.transform_timeout_ms, as the wrapper's owner
 * and restricted as PostgreSQL runs index expressions, read-only: an error,
 * a timeout or a bad result fails that delivery alone, and nothing a
 * transform sets or writes outlives it.  A transform that catches its cancel
 * and runs on makes the worker end itself; the launcher starts another,
 * which fails that endpoint's deliveries without running the transform
 * until the endpoint row or the function changes.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "shmem.h"
#include "spi_util.h"
#include "transform.h"
#include "webhook.h"

/* Longest a transform may run, per delivery. */

/*
 * A transform still running this long after its cancel has caught it: the
 * worker ends itself, the only way to take back control.
 */
#define TRANSFORM_CANCEL_GRACE_MS 1000

/* Our timers, registered on first use; set when they fired. */
static TimeoutId transform_timeout_id = MAX_TIMEOUTS;
static TimeoutId transform_abandon_id = MAX_TIMEOUTS;
static volatile sig_atomic_t transform_timed_out = false;
static volatile sig_atomic_t transform_abandoned = false;

/* The transform running, as the worker's successor should know it. */
static WebhookStalledTransform running;
static bool running_set = false;

PG_FUNCTION_INFO_V1(webhook_attach_transform_wrapper);

/*
 * Is fn the wrapper of an existing endpoint, webhook._transform_<id> calling
 * that endpoint's transform, and is it attached to the extension already?
 * Anyone granted every function of the schema can call
 * _attach_transform_wrapper: only such a wrapper may be attached.
 */
static bool
is_transform_wrapper(Oid fn, Oid extension, bool *attached)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		values[2] = {ObjectIdGetDatum(fn), ObjectIdGetDatum(extension)};
	bool		found;
	bool		isnull;
	int			ret;

	SPI_connect();
	ret = SPI_execute_plan(webhook_prepare_once(&plan,
												"SELECT EXISTS (SELECT FROM pg_catalog.pg_depend x"
												"                WHERE x.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND x.objid = p.oid"
												"                  AND x.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass"
												"                  AND x.refobjid = $2 AND x.deptype = 'a')"
												"  FROM pg_catalog.pg_proc p, webhook.endpoints e"
												" WHERE p.oid = $1 AND p.pronamespace = 'webhook'::pg_catalog.regnamespace"
												"   AND e.id = pg_catalog.substring(p.proname, '^_transform_([0-9]{1,18})$')::bigint"
												"   AND p.oid = pg_catalog.to_regprocedure(pg_catalog.format("
												"                 'webhook.%I(text, timestamptz, jsonb)', p.proname))"
												"   AND EXISTS (SELECT FROM pg_catalog.pg_depend t"
												"                WHERE t.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND t.objid = p.oid"
												"                  AND t.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass"
												"                  AND t.refobjid = e.transform AND t.deptype = 'n')",
												2, argtypes),
						   values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not look up transform wrapper: %s", SPI_result_code_string(ret));
	found = SPI_processed == 1;
	*attached = found &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return found;
}

/*
 * Make a wrapper depend on the extension, so that DROP EXTENSION takes it
 * along instead of refusing because of it.  Called by the endpoints trigger
 * after each CREATE OR REPLACE, which forgets such dependencies.  Anything
 * but an endpoint's wrapper is refused: a builtin attached would block DROP
 * EXTENSION, someone else's function would vanish with the extension.
 */
Datum
webhook_attach_transform_wrapper(PG_FUNCTION_ARGS)
{
	Oid			fn = PG_GETARG_OID(0);
	ObjectAddress wrapper;
	ObjectAddress extension;
	bool		attached;

	ObjectAddressSet(wrapper, ProcedureRelationId, fn);
	ObjectAddressSet(extension, ExtensionRelationId, get_extension_oid("webhook", false));
	if (!is_transform_wrapper(fn, extension.objectId, &attached))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("function %s is not the transform wrapper of an endpoint", format_procedure(fn)),
				 errdetail("Only an endpoint's webhook._transform_<id> function, which the endpoints triggers make, can be attached to the extension.")));
	if (!attached)
		recordDependencyOn(&wrapper, &extension, DEPENDENCY_AUTO);
	PG_RETURN_VOID();
}

/*
 * Keep what the transform of a claimed delivery needs, so that it can run
 * after the claim has committed.  Called in the claim transaction.
 */
void
transform_defer(Delivery *d, Oid func, TransactionId endpoint_xmin,
				TimestampTz created_at, Datum payload)
{
	MemoryContext old = MemoryContextSwitchTo(d->cxt);

	d->transform = func;
	d->endpoint_xmin = endpoint_xmin;
	d->created_at = created_at;
	d->payload = PG_DETOAST_DATUM_COPY(payload);
	MemoryContextSwitchTo(old);
}

/* Like StatementTimeoutHandler, but without a signal someone may have ignored. */
static void
transform_timeout_handler(void)
{
	transform_timed_out = true;
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/*
 * The transform caught its cancel and runs on: end the worker, as SIGTERM
 * would.  A FATAL error cannot be caught; the next check for interrupts
 * (any loop, any wait) raises it.
 */
static void
transform_abandon_handler(void)
{
	transform_abandoned = true;
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/*
 * The worker is ending: if a transform would not stop, tell the worker that
 * comes next not to run it again.  Runs before the worker leaves its slot,
 * so before the launcher can start that successor.
 */
static void
transform_at_exit(int code, Datum arg)
{
	if (!transform_abandoned || !running_set)
		return;
	webhook_remember_stalled_transform(&running);
	ereport(WARNING,
			(errcode(ERRCODE_QUERY_CANCELED),
			 errmsg("the transform of endpoint " INT64_FORMAT " ignored its cancel", running.endpoint_id),
			 errdetail("The delivery worker ended itself %d ms after canceling it; the endpoint's deliveries fail without running the transform until the endpoint or its transform function changes.",
					   TRANSFORM_CANCEL_GRACE_MS)));
}

/* Start the time limit of one transform, and what follows if it is ignored. */
static void
transform_timer_start(void)
{
	if (transform_timeout_id == MAX_TIMEOUTS)
	{
		transform_timeout_id = RegisterTimeout(USER_TIMEOUT, transform_timeout_handler);
		transform_abandon_id = RegisterTimeout(USER_TIMEOUT, transform_abandon_handler);
		before_shmem_exit(transform_at_exit, (Datum) 0);
	}
	enable_timeout_after(transform_timeout_id, webhook_transform_timeout_ms);
	enable_timeout_after(transform_abandon_id, webhook_transform_timeout_ms + TRANSFORM_CANCEL_GRACE_MS);
}

/*
 * Stop the timers.  If the first fired just as the transform returned, its
 * cancel is still pending: take it back, and count the transform as too
 * slow.  Once the second fired, the worker is ending: keep what it runs.
 */
static void
transform_timer_stop(bool check)
{
	if (transform_timeout_id == MAX_TIMEOUTS)
		return;
	disable_timeout(transform_timeout_id, false);
	disable_timeout(transform_abandon_id, false);
	if (!transform_abandoned)
		running_set = false;
	if (check && transform_timed_out)
	{
		QueryCancelPending = false;
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling transform due to timeout")));
	}
}

/*
 * The endpoint's wrapper, locked against a concurrent DROP, and its owner.
 * An endpoint whose wrapper is gone (dropped while event triggers were off)
 * fails its delivery with a reason.
 */
static Oid
transform_wrapper(int64 endpoint_id, Oid *owner)
{
	char		name[NAMEDATALEN];
	Oid			argtypes[3] = {TEXTOID, TIMESTAMPTZOID, JSONBOID};
	Oid			fn;
	HeapTuple	tuple;

	snprintf(name, sizeof(name), "_transform_" INT64_FORMAT, endpoint_id);
	fn = LookupFuncName(list_make2(makeString("webhook"), makeString(name)), 3, argtypes, true);
	if (OidIsValid(fn))
		LockDatabaseObject(ProcedureRelationId, fn, 0, AccessShareLock);
	tuple = OidIsValid(fn) ? SearchSysCache1(PROCOID, ObjectIdGetDatum(fn)) : NULL;
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the endpoint's transform no longer exists (webhook.%s is missing)", name)));
	*owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
	ReleaseSysCache(tuple);
	return fn;
}

/*
 * Note which transform is about to run, at which versions of its endpoint
 * row and function.  One that ignored its cancel at these versions, making
 * an earlier worker end itself, is not run again.
 */
static void
transform_identify(Delivery *d)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(d->transform));

	memset(&running, 0, sizeof(running));
	running.dboid = MyDatabaseId;
	running.endpoint_id = d->endpoint_id;
	running.endpoint_xmin = d->endpoint_xmin;
	running.func = d->transform;
	if (HeapTupleIsValid(tuple))
	{
		running.func_xmin = HeapTupleHeaderGetRawXmin(tuple->t_data);
		ReleaseSysCache(tuple);
	}
	if (webhook_is_stalled_transform(&running))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("it ignored its cancel at webhook.transform_timeout_ms before, so it is not run again until the endpoint or its transform function changes")));
}

/*
 * Call the wrapper as its owner, restricted as PostgreSQL runs index
 * expressions: the transform can leave nothing behind (deferred triggers,
 * temp objects, settings) that would later run or apply as the worker's
 * superuser.  And read-only: what it wrote would commit with the transforms'
 * transaction (an event it sent to its own endpoint, again and again).  Set
 * inside the caller's subtransaction, where no transform can set it back.
 * Returns the new body, allocated in the delivery's context.
 */
static char *
transform_call(Delivery *d)
{
	LOCAL_FCINFO(fcinfo, 3);
	FmgrInfo	flinfo;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	Datum		result;
	text	   *body;

	fmgr_info(transform_wrapper(d->endpoint_id, &owner), &flinfo);
	transform_identify(d);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 3, DEFAULT_COLLATION_OID, NULL, NULL);
	fcinfo->args[0].value = CStringGetTextDatum(d->event_type);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = TimestampTzGetDatum(d->created_at);
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = PointerGetDatum(d->payload);
	fcinfo->args[2].isnull = false;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("transaction_read_only", "on", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	running_set = true;
	transform_timer_start();
	result = FunctionCallInvoke(fcinfo);
	transform_timer_stop(true);
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	if (fcinfo->isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("it returned NULL")));
	body = DatumGetTextPP(result);
	if (VARSIZE_ANY_EXHDR(body) > webhook_max_payload_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("its result of %d bytes is larger than webhook.max_payload_bytes (%d)",
						(int) VARSIZE_ANY_EXHDR(body), webhook_max_payload_bytes)));
	return MemoryContextStrdup(d->cxt, text_to_cstring(body));
}

/* Why a transform failed, as the delivery log shows it. */
static char *
transform_failure(Delivery *d, ErrorData *edata)
{
	char	   *name = get_func_name(d->transform);

	if (transform_timed_out)
		return psprintf("transform %s ran longer than webhook.transform_timeout_ms (%d ms)",
						name ? name : "(dropped)", webhook_transform_timeout_ms);
	if (name == NULL)
		return pstrdup(edata->message);
	if (edata->sqlerrcode == ERRCODE_READ_ONLY_SQL_TRANSACTION)
		return psprintf("transform %s failed: %s (transforms run read-only)", name, edata->message);
	return psprintf("transform %s failed: %s", name, edata->message);
}

/*
 * Run one delivery's transform in a subtransaction: any error fails this
 * delivery only.  Session locks it took are released either way.
 */
static void
transform_one(Delivery *d)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;

	transform_timed_out = false;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller_cxt);
	PG_TRY();
	{
		char	   *body = transform_call(d);

		d->body = body;
		d->body_len = strlen(body);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		transform_timer_stop(false);
		MemoryContextSwitchTo(caller_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		d->transform_error = MemoryContextStrdup(d->cxt, transform_failure(d, edata));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller_cxt);
	CurrentResourceOwner = caller_owner;
	LockReleaseSession(USER_LOCKMETHOD);
	pfree(d->payload);
	d->payload = NULL;
}

/* How many of the claimed deliveries have a transform still to run. */
static int
transforms_pending(dlist_head *claimed)
{
	dlist_iter	iter;
	int			n = 0;

	dlist_foreach(iter, claimed)
		n += dlist_container(Delivery, node, iter.cur)->payload != NULL;
	return n;
}

/*
 * Give deliveries whose transform did not get a turn back to the queue,
 * untried, so that the next claim offers them again.  First attempts the
 * read made become pending delivery_state rows, released.
 */
static void
transform_unclaim(Delivery **untried, int n)
{
	static SPIPlanPtr first_plan = NULL;
	static SPIPlanPtr plan = NULL;
	Oid			type = INT8ARRAYOID;
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum		value;
	int			ret;

	for (int i = 0; i < n; i++)
		ids[i] = Int64GetDatum(untried[i]->id);
	value = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
	SPI_connect();
	ret = SPI_execute_plan(webhook_prepare_once(&first_plan,
												"SELECT webhook._first_attempts_to_state($1::bigint[], true)",
												1, &type),
						   &value, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not give back first attempts: %s", SPI_result_code_string(ret));
	ret = SPI_execute_plan(webhook_prepare_once(&plan,
												"UPDATE webhook.delivery_state SET claimed_at = NULL"
												" WHERE id = ANY ($1::bigint[]) AND status = 'pending'",
												1, &type),
						   &value, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not give back deliveries: %s", SPI_result_code_string(ret));
	SPI_finish();
}

/*
 * Run the transforms of a claimed batch, or as many as fit in
 * webhook.transform_timeout_ms (the first always runs), so that the worker
 * is never held for long; those that do not fit go back to the queue.
 * Returns how many went back: they are in untried, still on the list.
 */
static int
transform_batch(dlist_head *claimed, Delivery **untried)
{
	TimestampTz start = GetCurrentTimestamp();
	dlist_iter	iter;
	bool		ran = false;
	int			n_untried = 0;

	dlist_foreach(iter, claimed)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);

		if (d->payload == NULL)
			continue;
		if (ran && TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
											  webhook_transform_timeout_ms))
			untried[n_untried++] = d;
		else
		{
			transform_one(d);
			ran = true;
		}
	}
	if (n_untried > 0)
	{
		transform_unclaim(untried, n_untried);
		ereport(DEBUG1,
				(errmsg_internal("%d deliveries went back to the queue: their transforms did not start within webhook.transform_timeout_ms",
								 n_untried)));
	}
	return n_untried;
}

/*
 * Run the transforms of freshly claimed deliveries, after the claim has
 * committed, in a short transaction of their own.  Those given back leave
 * the list.  Never throws: should the transaction itself fail, the
 * deliveries whose transform did not run fail with that reason.
 */
void
transform_apply(dlist_head *claimed)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			n_pending = transforms_pending(claimed);
	Delivery  **untried;
	dlist_iter	iter;

	if (n_pending == 0)
		return;
	untried = palloc(sizeof(Delivery *) * n_pending);
	PG_TRY();
	{
		int			n_untried;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "running transforms");
		n_untried = transform_batch(claimed, untried);
		PopActiveSnapshot();
		CommitTransactionCommand();
		for (int i = 0; i < n_untried; i++)
		{
			dlist_delete(&untried[i]->node);
			MemoryContextDelete(untried[i]->cxt);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		dlist_foreach(iter, claimed)
		{
			Delivery   *d = dlist_container(Delivery, node, iter.cur);

			if (d->payload != NULL)
			{
				d->transform_error = MemoryContextStrdup(d->cxt, edata->message);
				d->payload = NULL;
			}
		}
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}
