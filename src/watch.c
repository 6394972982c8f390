/*
 * watch.c
 *		webhook.watch() and webhook.unwatch(): who may watch a table, the
 *		checks of a watch's options, and the watch row they store.  The
 *		condition is read in watch_condition.c, the events are made in
 *		watch_trigger.c, the triggers are kept in watch_ddl.c.
 *
 * Privileges follow the foreign-key triggers' model: the watch's options are
 * read, and the events written, as the owner of the extension's tables; the
 * changed rows are selected, and the user's condition evaluated, as the
 * owner of the watched table, who wrote that condition.  The role running
 * the INSERT/UPDATE/DELETE needs no rights on the webhook schema.
 */
#include "postgres.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "compat.h"
#include "event_checks.h"
#include "watch.h"
#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_watch);
PG_FUNCTION_INFO_V1(webhook_unwatch);
PG_FUNCTION_INFO_V1(webhook_watch_condition);
PG_FUNCTION_INFO_V1(webhook_watches_guard);
PG_FUNCTION_INFO_V1(webhook_owns_table_sql);

/* The operations, in the order watches list them. */
const WatchOp watch_ops[WATCH_OPS] = {
	{"delete", "webhook_watch_delete", "DELETE", "OLD TABLE AS webhook_old", "deleted"},
	{"insert", "webhook_watch_insert", "INSERT", "NEW TABLE AS webhook_new", "created"},
	{"update", "webhook_watch_update", "UPDATE", "OLD TABLE AS webhook_old NEW TABLE AS webhook_new", "updated"},
};

/* True while watch() writes webhook.table_watches: no other write is let in. */
static bool writing_watches = false;

/* An OID of no relation, as watch(0) gives, is the caller's mistake. */
static void
check_relation_exists(Oid relid)
{
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errhint("Pass a table by name, such as webhook.watch('orders').")));
}

/* The owner of a relation, to run SQL with that role's rights. */
Oid
watch_relation_owner(Oid relid)
{
	HeapTuple	tuple;
	Oid			owner;

	check_relation_exists(relid);
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/* The owner of the extension's tables, who alone writes them. */
Oid
watch_extension_owner(void)
{
	return watch_relation_owner(get_relname_relid("table_watches",
												  get_namespace_oid("webhook", false)));
}

/* A table's name as regclass prints it, for messages. */
char *
watch_table_name(Oid relid)
{
	return DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid)));
}

/*
 * The one rule of who manages a table's watch, and sees it in
 * webhook.table_watches: the table's owner, or a role with the owner's
 * privileges (as for ALTER TABLE).  False for no such table: a leftover
 * watch row has no owner.
 */
static bool
webhook_owns_table(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		return false;
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return has_privs_of_role(GetUserId(), owner);
}

/* Refuse to manage the watch of a table that the current role does not own. */
void
webhook_require_table_owner(Oid relid, const char *action)
{
	check_relation_exists(relid);
	if (!webhook_owns_table(relid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s to %s it", watch_table_name(relid), action)));
}

/*
 * SQL: webhook._owns_table(tbl), the row level security policy of
 * webhook.table_watches.
 */
Datum
webhook_owns_table_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(webhook_owns_table(PG_GETARG_OID(0)));
}

/*
 * Refuse a table no watch can serve.  A temporary table goes at the end of
 * its session without the event that removes its watch; the extension's own
 * tables (or anything in its schema) would feed events back into the queue
 * or ship endpoint secrets; system catalogs take no triggers.
 */
static void
check_watchable(Relation rel)
{
	Oid			extension = get_extension_oid("webhook", false);
	const char *why = NULL;

	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		why = "Temporary tables cannot be watched.";
	else if (IsCatalogRelation(rel))
		why = "System catalogs cannot be watched.";
	else if (RelationGetNamespace(rel) == get_namespace_oid("webhook", false) ||
			 getExtensionOfObject(RelationRelationId, RelationGetRelid(rel)) == extension)
		why = "The tables of the webhook extension, and any table in its schema, cannot be watched.";
	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot watch table %s", watch_table_name(RelationGetRelid(rel))),
				 errdetail("%s", why),
				 errhint("Watch a permanent table of the application; to get events from a function, call webhook.send().")));
}

/*
 * Run one statement as another role: the extension's owner, who alone reads
 * and writes its tables, or a table's owner, whose rights a condition has.
 * An error leaves the role to the transaction's abort to restore.
 */
int
watch_execute_as(Oid role, int sec_flags, const char *sql, int nargs, Oid *argtypes,
				 Datum *values, const char *nulls)
{
	Oid			save_userid;
	int			save_sec_context;
	int			ret;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(role, save_sec_context | SECURITY_LOCAL_USERID_CHANGE | sec_flags);
	ret = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return ret;
}

/*
 * Run one statement on webhook.table_watches as the owner of the extension's
 * tables: nobody else may write them, so no watch skips watch()'s checks.
 */
static uint64
write_watches(const char *sql, int nargs, Oid *argtypes, Datum *values, const char *nulls)
{
	int			ret;

	writing_watches = true;
	PG_TRY();
	{
		ret = watch_execute_as(watch_extension_owner(), 0, sql, nargs, argtypes, values, nulls);
	}
	PG_FINALLY();
	{
		writing_watches = false;
	}
	PG_END_TRY();
	if (ret < 0)
		elog(ERROR, "could not write the watch: %s", SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * SQL: BEFORE INSERT OR UPDATE trigger of webhook.table_watches.  A row keeps
 * column numbers and a parsed condition, which only watch() can make right:
 * a row written by hand, or copied from a dump into a table whose columns
 * were renumbered, could exclude the wrong column or run any expression.
 */
Datum
webhook_watches_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "webhook._watches_guard() must be called as a trigger");
	if (!writing_watches)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("webhook.table_watches can only be changed by webhook.watch() and webhook.unwatch()"),
				 errdetail("A watch keeps column numbers and a parsed condition, which only webhook.watch() makes."),
				 errhint("Call webhook.watch() for the table.")));
	return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
						   trigdata->tg_newtuple : trigdata->tg_trigtuple);
}

/* The column numbers of the names given in columns or exclude_columns; 0 for NULL. */
static Datum
column_numbers(Relation rel, ArrayType *names, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (names == NULL)
		return (Datum) 0;
	deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *name = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
		AttrNumber	attnum = name ? get_attnum(RelationGetRelid(rel), name) : InvalidAttrNumber;

		if (attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of %s does not exist",
							name ? name : "NULL", watch_table_name(RelationGetRelid(rel))),
					 errhint("Check the names given in %s.", what)));
		elems[i] = Int16GetDatum(attnum);
	}
	return PointerGetDatum(construct_array(elems, n, INT2OID, sizeof(int16), true, TYPALIGN_SHORT));
}

/*
 * What watch() keeps of these options: column numbers, and the condition
 * parsed (pg_node_tree text), with watch()'s errors.  For src/compat.c,
 * which reads the watches that version 0.1.0 kept by name and as SQL text.
 */
void
webhook_watch_kept_form(Relation rel, ArrayType *columns, const char *condition,
						ArrayType *exclude_columns, Datum kept_columns[2], char **kept_condition)
{
	List	   *rtable;

	kept_columns[0] = column_numbers(rel, columns, "columns");
	kept_columns[1] = column_numbers(rel, exclude_columns, "exclude_columns");
	*kept_condition = condition ? nodeToString(watch_parse_condition(rel, condition, &rtable)) : NULL;
}

/* The current names of the columns a watch keeps by number. */
List *
watch_column_names(Oid relid, Datum attnums)
{
	Datum	   *elems;
	int			n;
	List	   *names = NIL;

	deconstruct_array(DatumGetArrayTypeP(attnums), INT2OID, sizeof(int16), true, TYPALIGN_SHORT,
					  &elems, NULL, &n);
	for (int i = 0; i < n; i++)
		names = lappend(names, get_attname(relid, DatumGetInt16(elems[i]), false));
	return names;
}

/* A text[] Datum from C strings. */
static Datum
text_array(const char **items, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(items[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* The current names of columns kept by number, as a text[]. */
Datum
watch_column_names_array(Oid relid, Datum attnums)
{
	List	   *names = watch_column_names(relid, attnums);
	const char **items = palloc(sizeof(char *) * Max(list_length(names), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, names)
		items[n++] = lfirst(lc);
	return text_array(items, n);
}

/* The operations asked for, as a bit per entry of watch_ops. */
static int
parse_operations(ArrayType *operations)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n = 0;
	int			wanted = 0;

	if (operations != NULL)
		deconstruct_array(operations, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operations must name at least one of insert, update, delete"),
				 errhint("To stop watching the table, use webhook.unwatch().")));
	for (int i = 0; i < n; i++)
	{
		char	   *op = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
		int			found = -1;

		for (int k = 0; op != NULL && k < WATCH_OPS; k++)
			if (pg_strcasecmp(op, watch_ops[k].name) == 0)
				found = k;
		if (found < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown operation \"%s\"", op ? op : "NULL"),
					 errhint("Use insert, update and delete.")));
		wanted |= 1 << found;
	}
	return wanted;
}

/* Refuse an event prefix that would make invalid or reserved event type names. */
static void
check_event_prefix(const char *prefix)
{
	Oid			argtypes[1] = {TEXTOID};

	/* The longest suffix, ".created", must still fit. */
	Datum		values[1] = {CStringGetTextDatum(psprintf("%s.created", prefix))};
	bool		isnull;

	if (SPI_execute_with_args("SELECT webhook._is_event_type_name($1)", 1, argtypes, values,
							  NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not check the event prefix");
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid event prefix \"%s\"", prefix),
				 errdetail("Event types are dot-separated segments of letters, digits, \"_\" and \"-\"."),
				 errhint("Pass event_prefix => 'orders', for example.")));
	webhook_require_unreserved(prefix, "event prefix");
}

/*
 * Under webhook.strict_event_types, the event types a watch makes must be in
 * the catalogue, as for send(): checked here, and again by every statement
 * that emits them (the catalogue and the setting may change meanwhile).
 * Read as the extension's owner, the catalogue's reader.
 */
static void
check_event_types(const char *prefix, int ops)
{
	Oid			argtypes[1] = {TEXTOID};

	for (int k = 0; k < WATCH_OPS; k++)
	{
		Datum		values[1];

		if (!(ops & (1 << k)))
			continue;
		values[0] = CStringGetTextDatum(psprintf("%s.%s", prefix, watch_ops[k].suffix));
		if (watch_execute_as(watch_extension_owner(), 0, "SELECT webhook._check_event_type($1)",
							 1, argtypes, values, NULL) != SPI_OK_SELECT)
			elog(ERROR, "could not check the event types");
	}
}

/* Resolve names in pg_catalog only, until AtEOXact_GUC(false, <result>). */
int
watch_pin_search_path(void)
{
	int			save_nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return save_nestlevel;
}

/*
 * Check the options of watch() (or of a restored watch trigger) as the
 * table's owner gave them, and turn them into what a watch keeps: column
 * numbers and a parsed condition.  Every check is here, so that a restore
 * cannot make a watch that watch() refuses (but for the privileges it has
 * yet to grant: restored is true for a CREATE TRIGGER).  Needs SPI.
 */
void
watch_make_def(Relation rel, const char *prefix, ArrayType *operations, ArrayType *columns,
			   const char *condition, ArrayType *exclude_columns, bool restored, WatchDef *def)
{
	int			ops;
	const char *op_names[WATCH_OPS];
	int			nops = 0;

	check_watchable(rel);
	def->prefix = prefix ? pstrdup(prefix) : pstrdup(RelationGetRelationName(rel));
	check_event_prefix(def->prefix);
	ops = parse_operations(operations);
	check_event_types(def->prefix, ops);
	for (int k = 0; k < WATCH_OPS; k++)
		if (ops & (1 << k))
			op_names[nops++] = watch_ops[k].name;
	def->ops = ops;
	def->operations = text_array(op_names, nops);
	def->columns[0] = column_numbers(rel, columns, "columns");
	def->columns[1] = column_numbers(rel, exclude_columns, "exclude_columns");
	def->condition = NULL;
	def->rtable = NIL;
	if (condition != NULL)
		def->condition = watch_parse_condition(rel, condition, &def->rtable);
	watch_dry_run(rel, def, restored);
}

/* Write (or replace) a table's watch row, as the extension's owner. */
void
watch_store(Oid relid, const WatchDef *def)
{
	Oid			argtypes[6] = {REGCLASSOID, TEXTOID, TEXTARRAYOID, INT2ARRAYOID, PG_NODE_TREEOID, INT2ARRAYOID};
	Datum		values[6];
	char		nulls[7] = "      ";

	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(def->prefix);
	values[2] = def->operations;
	values[3] = def->columns[0];
	nulls[3] = def->columns[0] ? ' ' : 'n';
	values[4] = def->condition ? CStringGetTextDatum(nodeToString(def->condition)) : (Datum) 0;
	nulls[4] = def->condition ? ' ' : 'n';
	values[5] = def->columns[1];
	nulls[5] = def->columns[1] ? ' ' : 'n';
	write_watches("INSERT INTO webhook.table_watches AS w"
				  " (table_oid, event_prefix, operations, columns, condition, exclude_columns)"
				  " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (table_oid) DO UPDATE"
				  " SET event_prefix = EXCLUDED.event_prefix, operations = EXCLUDED.operations,"
				  " columns = EXCLUDED.columns, condition = EXCLUDED.condition,"
				  " exclude_columns = EXCLUDED.exclude_columns, updated_at = pg_catalog.now()",
				  6, argtypes, values, nulls);
}

/*
 * SQL: webhook.watch(tbl, event_prefix, operations, columns, condition,
 * exclude_columns).  Checks everything, then writes the watch row (as the
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
	check_relation_exists(relid);
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
				   false, &def);

	/* Names are bound: from here on, resolve them in pg_catalog only. */
	save_nestlevel = watch_pin_search_path();
	watch_store(relid, &def);
	watch_replace_triggers(rel, &def);

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
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
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
	found = write_watches("DELETE FROM webhook.table_watches"
						  " WHERE table_oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
						  1, argtypes, values, NULL) > 0;
	if (exists)
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
