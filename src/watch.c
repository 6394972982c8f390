/*
 * watch.c
 *		The SQL API of watches: webhook.watch(), webhook.unwatch() and
 *		webhook._watch_condition().  Each is a short sequence of the steps
 *		below it: who may watch (watch_def.c), the checks of the options
 *		(watch_options.c), the watch row (watch_def.c), the triggers
 *		(watch_ddl.c) and the condition as SQL (watch_condition.c).  Nothing
 *		below calls back into this file.
 */
#include "postgres.h"
#include "access/relation.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "citus.h"
#include "watch.h"

PG_FUNCTION_INFO_V1(webhook_watch);
PG_FUNCTION_INFO_V1(webhook_unwatch);
PG_FUNCTION_INFO_V1(webhook_watch_condition);

/*
 * SQL: webhook.watch(tbl, event_prefix, operations, columns, condition,
 * exclude_columns, ordering_key).  Checks everything, then writes the watch row (as the
 * extension's owner), the triggers (as the caller, the table's owner) and
 * their dependencies.  Calling it again replaces the watch's options.
 */
Datum
webhook_watch(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Relation	rel;
	WatchDef	def;
	int			save_nestlevel;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the table to watch must not be null"),
				 errhint("Pass a table, such as webhook.watch('orders').")));
	relid = PG_GETARG_OID(0);
	watch_check_relation_exists(relid);
	if (get_rel_relkind(relid) != RELKIND_RELATION && get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a table", watch_table_name(relid)),
				 errhint("Only ordinary and partitioned tables can be watched; for a partitioned table, watch the parent.")));
	webhook_require_table_owner(relid, "watch");
	/* The lock DROP TRIGGER takes, at once: no upgrade, no deadlock. */
	rel = relation_open(relid, AccessExclusiveLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	watch_make_def(rel,
				   PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
				   PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2),
				   PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3),
				   PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4)),
				   PG_ARGISNULL(5) ? NULL : PG_GETARG_ARRAYTYPE_P(5),
				   PG_NARGS() < 7 || PG_ARGISNULL(6) ? NULL : PG_GETARG_ARRAYTYPE_P(6),
				   false, &def);

	/* Names are bound: from here on, resolve them in pg_catalog only. */
	save_nestlevel = watch_pin_search_path();
	if (webhook_is_citus_table(relid))
		watch_replace_citus_triggers(rel, &def);
	else
	{
		watch_store(relid, &def);
		watch_replace_triggers(rel, &def);
	}

	SPI_finish();
	AtEOXact_GUC(false, save_nestlevel);
	relation_close(rel, NoLock);
	PG_RETURN_VOID();
}

/*
 * SQL: webhook.unwatch(tbl).  True when the table had a watch; STRICT, so
 * NULL for NULL, like PostgreSQL's own functions.
 */
Datum
webhook_unwatch(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	bool		found;
	bool		exists = SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid));

	/*
	 * With no table, only a leftover watch row can be removed (nobody owns
	 * it, and it emits nothing): unwatch(0) is simply false.
	 */
	if (exists)
	{
		webhook_require_table_owner(relid, "unwatch");
		LockRelationOid(relid, AccessExclusiveLock);
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	found = watch_remove(relid);
	if (exists && webhook_is_citus_table(relid))
	{
		Relation	rel = relation_open(relid, NoLock);
		int			save_nestlevel = watch_pin_search_path();

		watch_replace_citus_triggers(rel, NULL);
		AtEOXact_GUC(false, save_nestlevel);
		relation_close(rel, NoLock);
	}
	else if (exists)
		watch_drop_triggers(relid);
	SPI_finish();
	PG_RETURN_BOOL(found);
}

/*
 * SQL: webhook._watch_condition(tbl), for the watches view: the condition of
 * a table's watch as SQL with today's names; NULL when the caller may not see
 * the watch (row level security), it has no condition or its table is gone.
 */
Datum
webhook_watch_condition(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	char	   *stored = NULL;
	char	   *sql = NULL;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT condition FROM webhook.table_watches"
							  " WHERE table_oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the watch condition");
	if (SPI_processed > 0)
		stored = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (stored != NULL)
	{
		Relation	rel = try_relation_open(relid, AccessShareLock);

		if (rel != NULL)
		{
			sql = watch_deparse_condition(rel, stored);
			relation_close(rel, AccessShareLock);
		}
	}
	SPI_finish();
	if (sql == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(sql));
}
