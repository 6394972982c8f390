/*
 * watch_ddl.c
 *		A watch's triggers as catalog objects: creating them with their
 *		dependencies, and keeping a watch alive through DDL, pg_dump and
 *		restore.  pg_dump keeps a watch in its triggers' arguments (the
 *		options of watch() with today's names): the ddl_command_end event
 *		trigger refreshes them after renames, and makes the watch again from
 *		a restored CREATE TRIGGER.
 */
#include "postgres.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_func.h"
#include "parser/parser.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "citus.h"
#include "watch.h"

PG_FUNCTION_INFO_V1(webhook_watch_ddl_end);

/*
 * Remove a watch's triggers, without an event of their own: watch() and
 * unwatch() update the watch row themselves.
 */
void
watch_drop_triggers(Oid relid)
{
	for (int k = 0; k < WATCH_OPS; k++)
	{
		ObjectAddress trigger;

		ObjectAddressSet(trigger, TriggerRelationId, get_trigger_oid(relid, watch_ops[k].trigger, true));
		if (OidIsValid(trigger.objectId))
			performDeletion(&trigger, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
	}
	CommandCounterIncrement();
}

/*
 * Record what a watch trigger relies on, as PostgreSQL does for a trigger's
 * WHEN clause: DROP of a column, table or function the watch uses is
 * refused, or cascades to the trigger (and the sql_drop event trigger then
 * removes the watch row).
 */
static void
record_watch_dependencies(Oid trigoid, Oid relid, const WatchDef *def)
{
	ObjectAddress myself;

	ObjectAddressSet(myself, TriggerRelationId, trigoid);
	if (def->condition != NULL)
		recordDependencyOnExpr(&myself, def->condition, def->rtable, DEPENDENCY_NORMAL);
	for (int c = 0; c < lengthof(def->columns); c++)
	{
		Datum	   *elems;
		int			n;

		if (def->columns[c] == (Datum) 0)
			continue;
		deconstruct_array(DatumGetArrayTypeP(def->columns[c]), INT2OID, sizeof(int16), true,
						  TYPALIGN_SHORT, &elems, NULL, &n);
		for (int i = 0; i < n; i++)
		{
			ObjectAddress column;

			ObjectAddressSubSet(column, RelationRelationId, relid, DatumGetInt16(elems[i]));
			recordDependencyOn(&myself, &column, DEPENDENCY_NORMAL);
		}
	}
}

/* The same as a text[] literal; "" for none. */
static char *
column_names_literal(Oid relid, Datum attnums)
{
	if (attnums == (Datum) 0)
		return "";
	return OidOutputFunctionCall(F_ARRAY_OUT, watch_column_names_array(relid, attnums));
}

/*
 * The arguments of a watch's triggers: the watch in the words watch() takes,
 * with today's names (prefix, operations, columns, condition as SQL,
 * exclude_columns; "" for an option not given; then ordering_key, only when
 * given, so that a watch from before 0.6.0 keeps its five).  pg_dump writes them with
 * the triggers, and a restore makes the watch again from them, as it
 * re-creates a trigger's WHEN clause from its deparsed text.  Deparse with
 * search_path = pg_catalog, so that every other name is qualified.
 */
static List *
watch_trigger_args(Relation rel, const char *prefix, Datum operations, const Datum columns[3],
				   const char *stored_condition)
{
	Oid			relid = RelationGetRelid(rel);
	List	   *args = list_make5(makeString(pstrdup(prefix)),
								  makeString(OidOutputFunctionCall(F_ARRAY_OUT, operations)),
								  makeString(column_names_literal(relid, columns[0])),
								  makeString(stored_condition ? watch_deparse_condition(rel, stored_condition) : ""),
								  makeString(column_names_literal(relid, columns[1])));

	if (columns[2] != (Datum) 0)
		args = lappend(args, makeString(column_names_literal(relid, columns[2])));
	return args;
}

/* The CREATE TRIGGER of one operation's trigger with the watch's arguments. */
static char *
watch_trigger_sql(Relation rel, int op, List *args)
{
	StringInfoData sql;
	ListCell   *lc;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TRIGGER %s AFTER %s ON %s REFERENCING %s "
					 "FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger(",
					 watch_ops[op].trigger, watch_ops[op].event,
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)),
					 watch_ops[op].transitions);
	foreach(lc, args)
		appendStringInfo(&sql, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_literal_cstr(strVal(lfirst(lc))));
	appendStringInfoChar(&sql, ')');
	return sql.data;
}

/*
 * Create the trigger of one operation with the watch's arguments, by
 * CreateTrigger itself rather than a utility command, so that the extension's
 * own ddl_command_end trigger does not adopt it a second time.
 */
static Oid
create_watch_trigger(Relation rel, int op, List *args)
{
	char	   *sql = watch_trigger_sql(rel, op, args);
	CreateTrigStmt *stmt = castNode(CreateTrigStmt,
									linitial_node(RawStmt, raw_parser(sql, RAW_PARSE_DEFAULT))->stmt);

	return CreateTrigger(stmt, sql, RelationGetRelid(rel), InvalidOid, InvalidOid,
						 InvalidOid, InvalidOid, InvalidOid, NULL, false, false).objectId;
}

/*
 * Replace a table's watch triggers with those of def, each with its
 * dependencies.  Needs search_path = pg_catalog (see watch_trigger_args).
 */
void
watch_replace_triggers(Relation rel, const WatchDef *def)
{
	Oid			relid = RelationGetRelid(rel);
	List	   *args = watch_trigger_args(rel, def->prefix, def->operations, def->columns,
										  def->condition ? nodeToString(def->condition) : NULL);

	watch_drop_triggers(relid);
	for (int k = 0; k < WATCH_OPS; k++)
		if (def->ops & (1 << k))
			record_watch_dependencies(create_watch_trigger(rel, k, args), relid, def);
	CommandCounterIncrement();
}

/*
 * Replace the watch triggers of a table that Citus distributes, by utility
 * commands that Citus runs on every shard and node too (webhook_citus_ddl).
 * The watch row goes first, so that dropping the old triggers removes
 * nothing more; each new trigger is then adopted by the ddl_command_end
 * trigger, here as on every node, as a restored one is: the row and the
 * dependencies are made from its arguments, with the same checks.  Without
 * def, the triggers are only dropped (unwatch).  Needs search_path =
 * pg_catalog.
 */
void
watch_replace_citus_triggers(Relation rel, const WatchDef *def)
{
	Oid			relid = RelationGetRelid(rel);
	List	   *args = NIL;

	(void) watch_remove(relid);
	/* Also the shards' copies of triggers this table lost by CASCADE. */
	webhook_citus_drop_watch_triggers(relid);
	if (def == NULL)
		return;
	args = watch_trigger_args(rel, def->prefix, def->operations, def->columns,
							  def->condition ? nodeToString(def->condition) : NULL);
	for (int k = 0; k < WATCH_OPS; k++)
		if (def->ops & (1 << k))
			webhook_citus_ddl(watch_trigger_sql(rel, k, args));
	CommandCounterIncrement();
}

/* The function of every watch trigger, webhook._watch_trigger(). */
static Oid
watch_trigger_function(void)
{
	return LookupFuncName(list_make2(makeString("webhook"), makeString("_watch_trigger")),
						  0, NULL, false);
}

/* The watch operation a trigger fires for, by the name watch() gives it; -1 for none. */
static int
watch_op_of_trigger(const Trigger *trigger, Oid fnoid)
{
	if (trigger->tgfoid != fnoid)
		return -1;
	for (int k = 0; k < WATCH_OPS; k++)
		if (strcmp(trigger->tgname, watch_ops[k].trigger) == 0)
			return k;
	return -1;
}

/* A text[] trigger argument; NULL for "". */
static ArrayType *
array_arg(const char *arg)
{
	if (arg[0] == '\0')
		return NULL;
	return DatumGetArrayTypeP(OidInputFunctionCall(F_ARRAY_IN, (char *) arg, TEXTOID, -1));
}

/*
 * Make the watch of a watch trigger that a utility command created, as a
 * restored dump creates it: its arguments are the options of watch() and get
 * the same checks.  A trigger without them (or not named as watch() names
 * it) is left alone, and warns when it fires.
 */
static void
adopt_watch_trigger(Oid trigoid, Oid relid, Oid fnoid)
{
	Relation	rel = relation_open(relid, ShareRowExclusiveLock);
	char	   *args[6] = {0};
	int			op = -1;
	WatchDef	def;

	for (int i = 0; rel->trigdesc != NULL && i < rel->trigdesc->numtriggers; i++)
	{
		const Trigger *trigger = &rel->trigdesc->triggers[i];

		/* Five arguments, or six with ordering_key (0.6.0). */
		if (trigger->tgoid != trigoid || trigger->tgnargs < 5 || trigger->tgnargs > lengthof(args))
			continue;
		op = watch_op_of_trigger(trigger, fnoid);
		for (int a = 0; a < trigger->tgnargs; a++)
			args[a] = pstrdup(trigger->tgargs[a]);
	}
	if (op < 0)
	{
		relation_close(rel, NoLock);
		return;
	}

	webhook_require_table_owner(relid, "watch");
	watch_make_def(rel, args[0], array_arg(args[1]), array_arg(args[2]),
				   args[3][0] != '\0' ? args[3] : NULL, array_arg(args[4]),
				   args[5] ? array_arg(args[5]) : NULL, true, &def);
	if (!(def.ops & (1 << op)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger %s on table %s does not watch %s",
						watch_ops[op].trigger, watch_table_name(relid), watch_ops[op].name),
				 errhint("Use webhook.watch() to watch a table.")));
	watch_store(relid, &def);
	record_watch_dependencies(trigoid, relid, &def);
	relation_close(rel, NoLock);
}

/*
 * Replace the arguments of a trigger in pg_trigger, as ALTER TRIGGER ...
 * RENAME replaces its name: the trigger, and what depends on it, stay.
 */
static void
set_trigger_args(Relation rel, Oid trigoid, List *args)
{
	Relation	tgrel = table_open(TriggerRelationId, RowExclusiveLock);
	Datum		values[Natts_pg_trigger] = {0};
	bool		nulls[Natts_pg_trigger] = {0};
	bool		replace[Natts_pg_trigger] = {0};
	StringInfoData buf;
	ListCell   *lc;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;

	/* As CreateTrigger encodes them: "\" doubled, each ended by "\000". */
	initStringInfo(&buf);
	foreach(lc, args)
	{
		for (const char *c = strVal(lfirst(lc)); *c; c++)
		{
			if (*c == '\\')
				appendStringInfoChar(&buf, '\\');
			appendStringInfoChar(&buf, *c);
		}
		appendStringInfoString(&buf, "\\000");
	}
	values[Anum_pg_trigger_tgnargs - 1] = Int16GetDatum(list_length(args));
	values[Anum_pg_trigger_tgargs - 1] = DirectFunctionCall1(byteain, CStringGetDatum(buf.data));
	replace[Anum_pg_trigger_tgnargs - 1] = replace[Anum_pg_trigger_tgargs - 1] = true;

	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(trigoid));
	scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "could not find trigger %u", trigoid);
	tuple = heap_modify_tuple(tuple, RelationGetDescr(tgrel), values, nulls, replace);
	CatalogTupleUpdate(tgrel, &tuple->t_self, tuple);
	systable_endscan(scan);
	table_close(tgrel, RowExclusiveLock);
	CacheInvalidateRelcache(rel);
}

/*
 * Bring the arguments of one watch's triggers up to today's names; true when
 * some were stale.  With update false, only look.
 */
static bool
refresh_watch(Relation rel, HeapTuple row, TupleDesc desc, Oid fnoid, bool update)
{
	bool		isnull;
	Datum		columns[3];
	List	   *args;
	bool		stale = false;

	columns[0] = SPI_getbinval(row, desc, 4, &isnull);
	columns[0] = isnull ? (Datum) 0 : columns[0];
	columns[1] = SPI_getbinval(row, desc, 6, &isnull);
	columns[1] = isnull ? (Datum) 0 : columns[1];
	columns[2] = SPI_getbinval(row, desc, 7, &isnull);
	columns[2] = isnull ? (Datum) 0 : columns[2];
	args = watch_trigger_args(rel, SPI_getvalue(row, desc, 2), SPI_getbinval(row, desc, 3, &isnull),
							  columns, SPI_getvalue(row, desc, 5));

	for (int i = 0; rel->trigdesc != NULL && i < rel->trigdesc->numtriggers; i++)
	{
		const Trigger *trigger = &rel->trigdesc->triggers[i];
		bool		same = trigger->tgnargs == list_length(args);

		if (watch_op_of_trigger(trigger, fnoid) < 0)
			continue;
		for (int a = 0; same && a < trigger->tgnargs; a++)
			same = strcmp(trigger->tgargs[a], strVal(list_nth(args, a))) == 0;
		if (!same && update)
			set_trigger_args(rel, trigger->tgoid, args);
		stale |= !same;
	}
	return stale;
}

/*
 * The watches the current command may have renamed something of: those whose
 * triggers it created, or whose triggers depend on an object it changed (a
 * column, table, function, type...), or on an object of a schema or an
 * extension it changed.  pg_depend holds exactly what a watch names.
 */
static const char *const affected_watches_sql =
"WITH cmd AS (SELECT classid, objid FROM pg_catalog.pg_event_trigger_ddl_commands()),"
" changed AS (SELECT classid, objid FROM cmd"
"             UNION"
"             SELECT d.classid, d.objid FROM cmd JOIN pg_catalog.pg_depend d"
"                 ON d.refclassid = cmd.classid AND d.refobjid = cmd.objid"
"              WHERE cmd.classid IN ('pg_catalog.pg_namespace'::pg_catalog.regclass,"
"                                    'pg_catalog.pg_extension'::pg_catalog.regclass)),"
" affected AS (SELECT t.tgrelid FROM pg_catalog.pg_trigger t JOIN changed ch"
"                  ON ch.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND ch.objid = t.oid"
"               WHERE t.tgfoid = $1"
"              UNION"
"              SELECT t.tgrelid FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_depend d"
"                  ON d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND d.objid = t.oid"
"                JOIN changed ch ON ch.classid = d.refclassid AND ch.objid = d.refobjid"
"               WHERE t.tgfoid = $1)"
" SELECT table_oid, event_prefix, operations, columns, condition, exclude_columns, " WATCH_ORDERING_KEY_SQL
"   FROM webhook.table_watches w WHERE table_oid::pg_catalog.oid IN (SELECT tgrelid FROM affected)";

/*
 * Keep the arguments of a watch's triggers in step with today's names after
 * a command that may have renamed something the watch names (a column,
 * table, function, type or schema), so that pg_dump always writes watches
 * that restore.  Only the watches of affected_watches_sql are looked at, and
 * their tables are locked against writes only when their watch is stale.
 * Needs search_path = pg_catalog.
 */
static void
refresh_watches(Oid fnoid)
{
	Oid			save_userid;
	int			save_sec_context;
	int			ret;
	SPITupleTable *rows;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(fnoid)};

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(watch_extension_owner(), save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ret = SPI_execute_with_args(affected_watches_sql, 1, argtypes, values, NULL, false, 0);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the watches: %s", SPI_result_code_string(ret));

	rows = SPI_tuptable;
	for (uint64 i = 0; i < rows->numvals; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull));
		Relation	rel = try_relation_open(relid, AccessShareLock);
		bool		stale;

		if (rel == NULL)
			continue;
		stale = refresh_watch(rel, rows->vals[i], rows->tupdesc, fnoid, false);
		relation_close(rel, AccessShareLock);
		if (!stale)
			continue;
		rel = relation_open(relid, ShareRowExclusiveLock);
		refresh_watch(rel, rows->vals[i], rows->tupdesc, fnoid, true);
		relation_close(rel, NoLock);
	}
	CommandCounterIncrement();
}

/*
 * SQL: the extension's ddl_command_end event trigger.  A CREATE TRIGGER of a
 * watch trigger with its arguments (a restore) makes its watch; any command
 * that may rename something a watch names refreshes the triggers' arguments.
 */
Datum
webhook_watch_ddl_end(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;
	Oid			fnoid;
	int			save_nestlevel;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "webhook._watch_ddl_end() must be called as an event trigger");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	fnoid = watch_trigger_function();

	if (trigdata->tag == CMDTAG_CREATE_TRIGGER)
	{
		Oid			argtypes[1] = {OIDOID};
		Datum		values[1] = {ObjectIdGetDatum(fnoid)};
		uint64		n;
		Oid		   *triggers;
		Oid		   *tables;

		if (SPI_execute_with_args("SELECT t.oid, t.tgrelid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
								  "  JOIN pg_catalog.pg_trigger t ON t.oid OPERATOR(pg_catalog.=) c.objid"
								  " WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass"
								  "   AND t.tgfoid OPERATOR(pg_catalog.=) $1",
								  1, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the new triggers");
		n = SPI_processed;
		triggers = palloc(sizeof(Oid) * Max(n, 1));
		tables = palloc(sizeof(Oid) * Max(n, 1));
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			triggers[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			tables[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		}
		for (uint64 i = 0; i < n; i++)
			adopt_watch_trigger(triggers[i], tables[i], fnoid);
		CommandCounterIncrement();
	}

	save_nestlevel = watch_pin_search_path();
	refresh_watches(fnoid);
	SPI_finish();
	AtEOXact_GUC(false, save_nestlevel);
	PG_RETURN_VOID();
}
