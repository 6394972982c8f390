/*
 * watch_options.c
 *		The checks of a watch's options, written once for webhook.watch() and
 *		for a watch trigger that a restore creates: which tables can be
 *		watched, the event prefix and operations, the event types they make,
 *		and the dry run of the watch's queries; their result is the WatchDef
 *		that watch_def.c stores and watch_ddl.c turns into triggers.
 */
#include "postgres.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "event_checks.h"
#include "watch.h"

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

/*
 * Check the options of watch() (or of a restored watch trigger) as the
 * table's owner gave them, and turn them into what a watch keeps: column
 * numbers and a parsed condition.  Every check is here, so that a restore
 * cannot make a watch that watch() refuses (but for the privileges it has
 * yet to grant: restored is true for a CREATE TRIGGER).  Needs SPI.
 */
void
watch_make_def(Relation rel, const char *prefix, ArrayType *operations, ArrayType *columns,
			   const char *condition, ArrayType *exclude_columns, ArrayType *ordering_key,
			   bool restored, WatchDef *def)
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
	def->operations = watch_text_array(op_names, nops);
	def->columns[0] = watch_column_numbers(rel, columns, "columns");
	def->columns[1] = watch_column_numbers(rel, exclude_columns, "exclude_columns");
	def->columns[2] = watch_column_numbers(rel, ordering_key, "ordering_key");
	def->condition = NULL;
	def->rtable = NIL;
	if (condition != NULL)
		def->condition = watch_parse_condition(rel, condition, &def->rtable);
	watch_dry_run(rel, def, restored);
}
