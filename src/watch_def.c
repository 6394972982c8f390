/*
 * watch_def.c
 *		What a watch is, below every other watch file: the operations a watch
 *		can emit, the one rule of who manages a table's watch, the roles its
 *		SQL runs as, the columns it keeps by number, and its row in
 *		webhook.table_watches, which only this file writes (the guard
 *		trigger of that table is here too, beside the flag it reads).
 *		Calls no other watch file but watch_condition.c.
 *
 * Privileges follow the foreign-key triggers' model: the watch's options are
 * read, and the events written, as the owner of the extension's tables; the
 * changed rows are selected, and the user's condition evaluated, as the
 * owner of the watched table, who wrote that condition.  The role running
 * the INSERT/UPDATE/DELETE needs no rights on the webhook schema.
 */
#include "postgres.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "compat.h"
#include "watch.h"

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
void
watch_check_relation_exists(Oid relid)
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

	watch_check_relation_exists(relid);
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
	watch_check_relation_exists(relid);
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
Datum
watch_column_numbers(Relation rel, ArrayType *names, const char *what)
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

	kept_columns[0] = watch_column_numbers(rel, columns, "columns");
	kept_columns[1] = watch_column_numbers(rel, exclude_columns, "exclude_columns");
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
Datum
watch_text_array(const char **items, int n)
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
	return watch_text_array(items, n);
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
 * Has webhook.table_watches the ordering_key column (0.6.0)?  A schema not
 * updated yet has not: watch() then keeps no ordering key.
 */
static bool
watches_have_ordering_key(void)
{
	Oid			relid = get_relname_relid("table_watches", get_namespace_oid("webhook", false));

	return OidIsValid(relid) && get_attnum(relid, "ordering_key") != InvalidAttrNumber;
}

/* Write (or replace) a table's watch row, as the extension's owner. */
void
watch_store(Oid relid, const WatchDef *def)
{
	Oid			argtypes[7] = {REGCLASSOID, TEXTOID, TEXTARRAYOID, INT2ARRAYOID, PG_NODE_TREEOID, INT2ARRAYOID,
	INT2ARRAYOID};
	Datum		values[7];
	char		nulls[8] = "       ";

	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(def->prefix);
	values[2] = def->operations;
	values[3] = def->columns[0];
	nulls[3] = def->columns[0] ? ' ' : 'n';
	values[4] = def->condition ? CStringGetTextDatum(nodeToString(def->condition)) : (Datum) 0;
	nulls[4] = def->condition ? ' ' : 'n';
	values[5] = def->columns[1];
	nulls[5] = def->columns[1] ? ' ' : 'n';
	values[6] = def->columns[2];
	nulls[6] = def->columns[2] ? ' ' : 'n';
	if (!watches_have_ordering_key())
		write_watches("INSERT INTO webhook.table_watches AS w"
					  " (table_oid, event_prefix, operations, columns, condition, exclude_columns)"
					  " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (table_oid) DO UPDATE"
					  " SET event_prefix = EXCLUDED.event_prefix, operations = EXCLUDED.operations,"
					  " columns = EXCLUDED.columns, condition = EXCLUDED.condition,"
					  " exclude_columns = EXCLUDED.exclude_columns, updated_at = pg_catalog.now()",
					  6, argtypes, values, nulls);
	else
		write_watches("INSERT INTO webhook.table_watches AS w"
					  " (table_oid, event_prefix, operations, columns, condition, exclude_columns, ordering_key)"
					  " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (table_oid) DO UPDATE"
					  " SET event_prefix = EXCLUDED.event_prefix, operations = EXCLUDED.operations,"
					  " columns = EXCLUDED.columns, condition = EXCLUDED.condition,"
					  " exclude_columns = EXCLUDED.exclude_columns, ordering_key = EXCLUDED.ordering_key,"
					  " updated_at = pg_catalog.now()",
					  7, argtypes, values, nulls);
}

/* Remove a table's watch row, as the extension's owner; true when there was one. */
bool
watch_remove(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	return write_watches("DELETE FROM webhook.table_watches"
						 " WHERE table_oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
						 1, argtypes, values, NULL) > 0;
}
