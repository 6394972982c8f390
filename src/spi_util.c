/*
 * spi_util.c
 *		SPI plans prepared once and kept for the life of the process, for
 *		statements a process runs again and again (the worker's claim, the
 *		watch trigger's insert), and statements run in a subtransaction.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/guc.h"
#include "utils/resowner.h"

#include "spi_util.h"

/*
 * Prepare a statement once, and keep it for the life of the process: the
 * parse and plan are paid once, not per call.  The plan is generic (made
 * without the parameters' values): left to choose, the plan cache planned
 * the worker's statements anew on most calls, since over the queue's
 * partitioned tables a generic plan's estimate looks dearer than a custom
 * one, and that planning was the largest part of an idle worker's wake-up.
 */
SPIPlanPtr
webhook_prepare_once(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

/*
 * Run one of the worker's saved queue statements with the planner kept off
 * whole-table reads, for whenever its plan is made: the first execution,
 * and again each time the queue's tables are analyzed.  The statistics are
 * a moment's.  After a VACUUM ANALYZE of the empty tables (or of an emptied
 * generation), the read's plan hashed every pending delivery_state row at
 * each page, a quarter of the worker's time once the backlog filled; plans
 * chosen on a burst's lagging statistics compared every outcome with every
 * row of a batch.  Each of these statements works on one batch of rows
 * that it reaches by key, so with sequential, bitmap and merge-join scans
 * of the tables priced out it probes them by index at any size.  Hash
 * joins stay: they join the statement's own lists (the busy endpoints, the
 * batch) in linear time, and a table cannot be their inner side without a
 * full scan.  The settings are saved and restored around the statement
 * (GUC_ACTION_SAVE), so nothing after it in the transaction plans with
 * them.
 */
int
webhook_execute_by_probes(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only,
						  long count)
{
	static const char *const off[] = {"enable_seqscan", "enable_bitmapscan", "enable_mergejoin"};
	int			nest_level = NewGUCNestLevel();
	int			ret;

	for (int i = 0; i < lengthof(off); i++)
		(void) set_config_option(off[i], "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	ret = SPI_execute_plan(plan, values, nulls, read_only, count);
	AtEOXact_GUC(true, nest_level);
	return ret;
}

/*
 * Run fn in a subtransaction and return the error it raised, or NULL, so
 * that one row's failure rolls back that row's work only.  A cancel (a
 * user's, or the worker's own stop: worker.c) is no row's failure: it is
 * raised again, once the subtransaction is gone, and ends the caller's
 * work as well, rather than letting it go on row by row.
 */
ErrorData *
webhook_try_in_subtransaction(void (*fn) (void *), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	if (edata != NULL && edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(edata);
	return edata;
}
