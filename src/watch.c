/*
 * watch.c
 *		The statement-level trigger behind webhook.watch(): turns the rows a
 *		statement changed into events, set-based, whatever their number.
 *
 * Privileges follow the foreign-key triggers' model: the watch's options are
 * read, and the events written, as the owner of the extension's tables; the
 * changed rows are selected, and the user's condition evaluated, as the
 * owner of the watched table, who wrote that condition.  The role running
 * the INSERT/UPDATE/DELETE needs no rights on the webhook schema.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/heap.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_func.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "event_checks.h"
#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_watch_trigger);
PG_FUNCTION_INFO_V1(webhook_watch);
PG_FUNCTION_INFO_V1(webhook_unwatch);
PG_FUNCTION_INFO_V1(webhook_watch_condition);
PG_FUNCTION_INFO_V1(webhook_watches_guard);
PG_FUNCTION_INFO_V1(webhook_watch_ddl_end);

/* An operation a watch can emit. */
typedef struct WatchOp
{
	const char *name;			/* as in webhook.table_watches.operations */
	const char *trigger;		/* the statement-level trigger emitting it */
	const char *event;			/* its CREATE TRIGGER event */
	const char *transitions;	/* its REFERENCING clause */
	const char *suffix;			/* of the event type it makes */
} WatchOp;

/* The operations, in the order watches list them. */
static const WatchOp watch_ops[] = {
	{"delete", "webhook_watch_delete", "DELETE", "OLD TABLE AS webhook_old", "deleted"},
	{"insert", "webhook_watch_insert", "INSERT", "NEW TABLE AS webhook_new", "created"},
	{"update", "webhook_watch_update", "UPDATE", "OLD TABLE AS webhook_old NEW TABLE AS webhook_new", "updated"},
};

#define WATCH_OPS lengthof(watch_ops)

#define CONDITION_HINT "Give one boolean SQL expression over the columns of NEW and OLD, such as NEW.status <> OLD.status."

/* The options of one watch, as read from webhook.table_watches. */
typedef struct WatchOptions
{
	char	   *event_prefix;
	bool		wants_operation;
	Datum		columns;		/* int2[] of column numbers, or 0 */
	char	   *condition;		/* pg_node_tree text, or NULL */
	Datum		exclude_columns;	/* int2[] of column numbers, or 0 */
} WatchOptions;

/* A watch as watch() checked it, before it is stored. */
typedef struct WatchDef
{
	char	   *prefix;
	int			ops;			/* a bit per entry of watch_ops */
	Datum		operations;		/* the same as text[] */
	Datum		columns[2];		/* int2[] of columns and exclude_columns, or 0 */
	Node	   *condition;		/* parsed, or NULL */
	List	   *rtable;			/* the condition's range table */
} WatchDef;

/*
 * Saved plans, so that a one-row INSERT does not plan three statements: the
 * options lookup and the enqueue call once per backend, the payload query
 * once per table, operation and query text (the text names the columns as
 * they are now, so a rename makes a new plan).
 */
typedef struct PayloadPlan
{
	char		key[NAMEDATALEN * 2];	/* "relid/operation" */
	char	   *sql;			/* the text the plan was made from */
	SPIPlanPtr	plan;
} PayloadPlan;

/* True while watch() writes webhook.table_watches: no other write is let in. */
static bool writing_watches = false;

/* The parameters of a payload query: excluded columns' names, and whether to pair. */
#define PAYLOAD_NARGS 2
static Oid	payload_argtypes[PAYLOAD_NARGS] = {TEXTARRAYOID, BOOLOID};

static char *payload_query(Relation rel, const char *operation, const WatchOptions *opts);
static void payload_args(Oid relid, const WatchOptions *opts, bool paired, Datum *values, char *nulls);

static SPIPlanPtr options_plan = NULL;
static SPIPlanPtr enqueue_plan = NULL;
static HTAB *payload_plans = NULL;

/*
 * The saved plan of a payload query, made anew when the query text changed.
 * An entry is made only once its plan exists, so a query that fails to
 * prepare (and raises an error) leaves nothing half-made behind.
 */
static SPIPlanPtr
payload_plan(Oid relid, const char *operation, const char *sql, int nargs, Oid *argtypes)
{
	char		key[NAMEDATALEN * 2];
	PayloadPlan *entry;
	SPIPlanPtr	plan = NULL;
	char	   *saved_sql;

	if (payload_plans == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(PayloadPlan);
		payload_plans = hash_create("webhook watch plans", 64, &ctl, HASH_ELEM | HASH_STRINGS);
	}
	memset(key, 0, sizeof(key));
	snprintf(key, sizeof(key), "%u/%s", relid, operation);
	entry = hash_search(payload_plans, key, HASH_FIND, NULL);
	if (entry != NULL && strcmp(entry->sql, sql) == 0)
		return entry->plan;
	if (entry != NULL)
	{
		SPI_freeplan(entry->plan);
		pfree(entry->sql);
		hash_search(payload_plans, key, HASH_REMOVE, NULL);
	}

	webhook_prepare_once(&plan, sql, nargs, argtypes);
	saved_sql = MemoryContextStrdup(TopMemoryContext, sql);
	entry = hash_search(payload_plans, key, HASH_ENTER, NULL);
	entry->sql = saved_sql;
	entry->plan = plan;
	return plan;
}

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
static Oid
relation_owner(Oid relid)
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
static Oid
extension_owner(void)
{
	return relation_owner(get_relname_relid("table_watches",
											get_namespace_oid("webhook", false)));
}

/* A table's name as regclass prints it, for messages. */
static char *
table_name(Oid relid)
{
	return DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid)));
}

/* Only a table's owner (or a member of its owning role) manages its watch. */
static void
check_table_owner(Oid relid, const char *action)
{
	if (!has_privs_of_role(GetUserId(), relation_owner(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s to %s it", table_name(relid), action)));
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
				 errmsg("cannot watch table %s", table_name(RelationGetRelid(rel))),
				 errdetail("%s", why),
				 errhint("Watch a permanent table of the application; to get events from a function, call webhook.send().")));
}

/*
 * Run one statement as another role: the extension's owner, who alone reads
 * and writes its tables, or a table's owner, whose rights a condition has.
 * An error leaves the role to the transaction's abort to restore.
 */
static int
execute_as(Oid role, int sec_flags, const char *sql, int nargs, Oid *argtypes,
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
		ret = execute_as(extension_owner(), 0, sql, nargs, argtypes, values, nulls);
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

/*
 * The parse state of a condition: OLD then NEW, both the watched table, as
 * PostgreSQL sets up a trigger's WHEN clause.  Its range table also serves
 * to record the condition's dependencies and to deparse it.
 */
static ParseState *
condition_parse_state(Relation rel, const char *text)
{
	ParseState *pstate = make_parsestate(NULL);
	const char *aliases[2] = {"old", "new"};

	pstate->p_sourcetext = text;
	for (int i = 0; i < 2; i++)
	{
		ParseNamespaceItem *nsitem;

		nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock,
											   makeAlias(aliases[i], NIL), false, false);
		addNSItemToQuery(pstate, nsitem, false, true, true);
	}
	return pstate;
}

/* Point parse errors into the condition, not into the statement calling watch(). */
static void
condition_error_callback(void *arg)
{
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery((const char *) arg);
	}
	errcontext("watch condition");
}

/* What system_column_walker needs: the parse state, for the error's position. */
typedef struct SystemColumnContext
{
	ParseState *pstate;
	int			sublevels_up;
} SystemColumnContext;

/*
 * Refuse NEW.xmin, OLD.ctid and the like, also inside subqueries: the rows
 * a watch reads come from transition tables, which have no system columns,
 * so such a condition would fail every write to the table.  A subquery's
 * own tables keep theirs.
 */
static bool
system_column_walker(Node *node, SystemColumnContext *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varlevelsup == context->sublevels_up && var->varattno < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
					 errmsg("watch condition cannot use system column \"%s\"",
							NameStr(SystemAttributeDefinition(var->varattno)->attname)),
					 errdetail("NEW and OLD are the rows a statement changed, without system columns."),
					 errhint(CONDITION_HINT),
					 parser_errposition(context->pstate, var->location)));
		return false;
	}
	if (IsA(node, Query))
	{
		bool		found;

		context->sublevels_up++;
		found = query_tree_walker((Query *) node, system_column_walker, context, 0);
		context->sublevels_up--;
		return found;
	}
	return expression_tree_walker(node, system_column_walker, context);
}

/*
 * A condition as PostgreSQL's own parser reads it: exactly one boolean
 * expression over NEW and OLD, names bound now (so renames do not matter).
 * Nothing of the text is ever pasted into a query.
 */
static Node *
parse_condition(Relation rel, const char *text, List **rtable)
{
	ErrorContextCallback errcallback;
	SelectStmt *sel;
	ResTarget  *target = NULL;
	ParseState *pstate;
	Node	   *expr;

	errcallback.callback = condition_error_callback;
	errcallback.arg = (void *) text;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	sel = castNode(SelectStmt,
				   linitial_node(RawStmt, raw_parser(text, RAW_PARSE_PLPGSQL_EXPR))->stmt);
	if (list_length(sel->targetList) == 1)
		target = linitial_node(ResTarget, sel->targetList);
	if (target == NULL || target->name != NULL ||
		sel->distinctClause || sel->fromClause || sel->whereClause ||
		sel->groupClause || sel->havingClause || sel->windowClause ||
		sel->sortClause || sel->limitOffset || sel->limitCount || sel->lockingClause)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("watch condition must be a single expression"),
				 errdetail("The condition was: %s", text),
				 errhint(CONDITION_HINT)));

	pstate = condition_parse_state(rel, text);
	expr = transformExpr(pstate, target->val, EXPR_KIND_WHERE);
	if (exprType(expr) != BOOLOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("watch condition must be of type boolean, not type %s",
						format_type_be(exprType(expr))),
				 errdetail("The condition was: %s", text),
				 errhint(CONDITION_HINT)));
	assign_expr_collations(pstate, expr);
	{
		SystemColumnContext context = {pstate, 0};

		(void) system_column_walker(expr, &context);
	}

	error_context_stack = errcallback.previous;
	*rtable = pstate->p_rtable;
	return expr;
}

/* A stored condition as SQL, with the names its columns and functions have now. */
static char *
deparse_condition(Relation rel, const char *stored)
{
	PlannedStmt *pstmt = makeNode(PlannedStmt);

	pstmt->rtable = condition_parse_state(rel, NULL)->p_rtable;
	return deparse_expression(stringToNode(stored),
							  deparse_context_for_plan_tree(pstmt, list_make2("old", "new")),
							  true, false);
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
							name ? name : "NULL", table_name(RelationGetRelid(rel))),
					 errhint("Check the names given in %s.", what)));
		elems[i] = Int16GetDatum(attnum);
	}
	return PointerGetDatum(construct_array(elems, n, INT2OID, sizeof(int16), true, TYPALIGN_SHORT));
}

/* The current names of the columns a watch keeps by number. */
static List *
column_names(Oid relid, Datum attnums)
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
		if (execute_as(extension_owner(), 0, "SELECT webhook._check_event_type($1)",
					   1, argtypes, values, NULL) != SPI_OK_SELECT)
			elog(ERROR, "could not check the event types");
	}
}

/*
 * Remove a watch's triggers, without an event of their own: watch() and
 * unwatch() update the watch row themselves.
 */
static void
drop_watch_triggers(Oid relid)
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
	for (int c = 0; c < 2; c++)
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
static Datum
column_names_array(Oid relid, Datum attnums)
{
	List	   *names = column_names(relid, attnums);
	const char **items = palloc(sizeof(char *) * Max(list_length(names), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, names)
		items[n++] = lfirst(lc);
	return text_array(items, n);
}

/* The same as a text[] literal; "" for none. */
static char *
column_names_literal(Oid relid, Datum attnums)
{
	if (attnums == (Datum) 0)
		return "";
	return OidOutputFunctionCall(F_ARRAY_OUT, column_names_array(relid, attnums));
}

/*
 * The arguments of a watch's triggers: the watch in the words watch() takes,
 * with today's names (prefix, operations, columns, condition as SQL,
 * exclude_columns; "" for an option not given).  pg_dump writes them with
 * the triggers, and a restore makes the watch again from them, as it
 * re-creates a trigger's WHEN clause from its deparsed text.  Deparse with
 * search_path = pg_catalog, so that every other name is qualified.
 */
static List *
watch_trigger_args(Relation rel, const char *prefix, Datum operations, Datum columns[2],
				   const char *stored_condition)
{
	Oid			relid = RelationGetRelid(rel);

	return list_make5(makeString(pstrdup(prefix)),
					  makeString(OidOutputFunctionCall(F_ARRAY_OUT, operations)),
					  makeString(column_names_literal(relid, columns[0])),
					  makeString(stored_condition ? deparse_condition(rel, stored_condition) : ""),
					  makeString(column_names_literal(relid, columns[1])));
}

/*
 * Create the trigger of one operation with the watch's arguments, by
 * CreateTrigger itself rather than a utility command, so that the extension's
 * own ddl_command_end trigger does not adopt it a second time.
 */
static Oid
create_watch_trigger(Relation rel, int op, List *args)
{
	StringInfoData sql;
	CreateTrigStmt *stmt;
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

	stmt = castNode(CreateTrigStmt,
					linitial_node(RawStmt, raw_parser(sql.data, RAW_PARSE_DEFAULT))->stmt);
	return CreateTrigger(stmt, sql.data, RelationGetRelid(rel), InvalidOid, InvalidOid,
						 InvalidOid, InvalidOid, InvalidOid, NULL, false, false).objectId;
}

/* Resolve names in pg_catalog only, until AtEOXact_GUC(false, <result>). */
static int
pin_search_path(void)
{
	int			save_nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return save_nestlevel;
}

/* Say that an error came from trying the payload queries at watch() time. */
static void
dry_run_error_callback(void *arg)
{
	errcontext("watch of table %s, run as the table's owner", (const char *) arg);
}

/*
 * Run each payload query of a watch once, as the trigger will, as the
 * table's owner, over empty transition tables: a condition the owner may not
 * run (a table it cannot read, a function it cannot call, a schema it cannot
 * use) is refused now, instead of failing every later write to the table.
 */
static void
dry_run_payload_queries(Relation rel, const WatchDef *def)
{
	const char *transitions[2] = {"webhook_old", "webhook_new"};
	WatchOptions opts;
	Datum		values[PAYLOAD_NARGS];
	char		nulls[PAYLOAD_NARGS];
	ErrorContextCallback errcallback;
	int			save_nestlevel = pin_search_path();

	opts.event_prefix = def->prefix;
	opts.wants_operation = true;
	opts.columns = def->columns[0];
	opts.condition = def->condition ? nodeToString(def->condition) : NULL;
	opts.exclude_columns = def->columns[1];

	for (int i = 0; i < 2; i++)
	{
		EphemeralNamedRelation enr = palloc0(sizeof(EphemeralNamedRelationData));

		enr->md.name = pstrdup(transitions[i]);
		enr->md.reliddesc = RelationGetRelid(rel);
		enr->md.enrtype = ENR_NAMED_TUPLESTORE;
		enr->reldata = tuplestore_begin_heap(false, false, work_mem);
		if (SPI_register_relation(enr) != SPI_OK_REL_REGISTER)
			elog(ERROR, "could not register transition table %s", transitions[i]);
	}
	payload_args(RelationGetRelid(rel), &opts, true, values, nulls);

	errcallback.callback = dry_run_error_callback;
	errcallback.arg = table_name(RelationGetRelid(rel));
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	for (int k = 0; k < WATCH_OPS; k++)
		if ((def->ops & (1 << k)) &&
			execute_as(relation_owner(RelationGetRelid(rel)), SECURITY_RESTRICTED_OPERATION,
					   payload_query(rel, watch_ops[k].event, &opts),
					   PAYLOAD_NARGS, payload_argtypes, values, nulls) != SPI_OK_SELECT)
			elog(ERROR, "could not run the payload query");
	error_context_stack = errcallback.previous;

	for (int i = 0; i < 2; i++)
		SPI_unregister_relation(transitions[i]);
	AtEOXact_GUC(false, save_nestlevel);
}

/*
 * The dry run of a watch trigger that a CREATE TRIGGER made: a restore
 * grants privileges only after it has created every trigger, so there a
 * privilege the condition lacks only warns (the watch is made, and writes to
 * the table fail until the grant comes).  Any other error still refuses it.
 */
static void
dry_run_restored_payload_queries(Relation rel, const WatchDef *def)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		dry_run_payload_queries(rel, def);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		SPI_unregister_relation("webhook_old");
		SPI_unregister_relation("webhook_new");
		if (edata->sqlerrcode != ERRCODE_INSUFFICIENT_PRIVILEGE)
			ReThrowError(edata);
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the owner of table %s cannot run its watch condition yet: %s",
						table_name(RelationGetRelid(rel)), edata->message),
				 errdetail("A restore grants privileges after it creates triggers."),
				 errhint("Writes to the table fail until its owner has the privileges the condition needs.")));
	}
	PG_END_TRY();
}

/*
 * Check the options of watch() (or of a restored watch trigger) as the
 * table's owner gave them, and turn them into what a watch keeps: column
 * numbers and a parsed condition.  Every check is here, so that a restore
 * cannot make a watch that watch() refuses (but for the privileges it has
 * yet to grant: restored is true for a CREATE TRIGGER).  Needs SPI.
 */
static void
make_watch_def(Relation rel, const char *prefix, ArrayType *operations, ArrayType *columns,
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
		def->condition = parse_condition(rel, condition, &def->rtable);
	if (restored)
		dry_run_restored_payload_queries(rel, def);
	else
		dry_run_payload_queries(rel, def);
}

/* Write (or replace) a table's watch row, as the extension's owner. */
static void
store_watch(Oid relid, const WatchDef *def)
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
	List	   *args;
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
				 errmsg("%s is not a table", table_name(relid)),
				 errhint("Only ordinary and partitioned tables can be watched; for a partitioned table, watch the parent.")));
	check_table_owner(relid, "watch");
	/* The lock DROP TRIGGER takes, at once: no upgrade, no deadlock. */
	rel = relation_open(relid, AccessExclusiveLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	make_watch_def(rel,
				   PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
				   PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2),
				   PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3),
				   PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4)),
				   PG_ARGISNULL(5) ? NULL : PG_GETARG_ARRAYTYPE_P(5),
				   false, &def);

	/* Names are bound: from here on, resolve them in pg_catalog only. */
	save_nestlevel = pin_search_path();
	store_watch(relid, &def);
	args = watch_trigger_args(rel, def.prefix, def.operations, def.columns,
							  def.condition ? nodeToString(def.condition) : NULL);
	drop_watch_triggers(relid);
	for (int k = 0; k < WATCH_OPS; k++)
		if (def.ops & (1 << k))
			record_watch_dependencies(create_watch_trigger(rel, k, args), relid, &def);
	CommandCounterIncrement();

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
		check_table_owner(relid, "unwatch");
		LockRelationOid(relid, AccessExclusiveLock);
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	found = write_watches("DELETE FROM webhook.table_watches"
						  " WHERE table_oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
						  1, argtypes, values, NULL) > 0;
	if (exists)
		drop_watch_triggers(relid);
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
			sql = deparse_condition(rel, stored);
			relation_close(rel, AccessShareLock);
		}
	}
	SPI_finish();
	if (sql == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(sql));
}

/* Read the watch of a table; false when it has none (watch was removed). */
static bool
read_watch_options(Oid relid, const char *operation, WatchOptions *opts)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2] = {ObjectIdGetDatum(relid), CStringGetTextDatum(operation)};
	int			ret;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	ret = SPI_execute_plan(webhook_prepare_once(&options_plan,
												"SELECT event_prefix, $2 OPERATOR(pg_catalog.=) ANY (operations), columns, condition, exclude_columns"
												"  FROM webhook.table_watches WHERE table_oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
												2, argtypes),
						   values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the watch options: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	opts->event_prefix = SPI_getvalue(tup, desc, 1);
	opts->wants_operation = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	opts->columns = isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
	opts->condition = SPI_getvalue(tup, desc, 4);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	opts->exclude_columns = isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
	return true;
}

/* A row image as jsonb, NULL when the FULL JOIN of an UPDATE found none. */
static char *
row_image(const char *alias, const char *present, const char *excl)
{
	char	   *image = psprintf("(pg_catalog.to_jsonb(%s.*) OPERATOR(pg_catalog.-) %s)", alias, excl);

	return present ? psprintf("CASE WHEN %s THEN %s END", present, image) : image;
}

/*
 * The SELECT that makes one payload per changed row.  NEW and OLD name the
 * row images; for INSERT, OLD is a row of NULLs (and NEW for DELETE), so that
 * a condition mentioning both still runs.  $1 is the excluded columns' names.
 *
 * UPDATE pairs old and new images by their position in the transition
 * tables, which PostgreSQL fills together, one pair per updated row, when $2
 * (the tables are of equal length) says so.  They are not when a row moved
 * to a partition whose BEFORE INSERT trigger dropped it: its old image has
 * no new one, and every later pair would be wrong.  Then nothing is paired
 * (neither a key, which the statement may have changed, nor anything else
 * can tell which rows belong together): each image is an event of its own,
 * with record or old_record null, and the columns and unchanged-row filters,
 * which compare a pair, let it through.  The pairing is kept out of NEW and
 * OLD, and every reference is qualified, so no column name collides with it.
 */
static char *
payload_query(Relation rel, const char *operation, const WatchOptions *opts)
{
	StringInfoData q;
	char	   *qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													   RelationGetRelationName(rel));
	const char *excl = "'{}'::pg_catalog.text[]";
	bool		is_update = strcmp(operation, "UPDATE") == 0;

	initStringInfo(&q);
	if (opts->exclude_columns)
		excl = "$1::pg_catalog.text[]";

	appendStringInfo(&q,
					 "SELECT pg_catalog.jsonb_build_object("
					 "'operation', %s, 'schema', %s, 'table', %s, "
					 "'record', %s, 'old_record', %s) FROM ",
					 quote_literal_cstr(operation),
					 quote_literal_cstr(get_namespace_name(RelationGetNamespace(rel))),
					 quote_literal_cstr(RelationGetRelationName(rel)),
					 strcmp(operation, "DELETE") == 0 ? "NULL::pg_catalog.jsonb" :
					 row_image("new", is_update ? "webhook_n.present" : NULL, excl),
					 strcmp(operation, "INSERT") == 0 ? "NULL::pg_catalog.jsonb" :
					 row_image("old", is_update ? "webhook_o.present" : NULL, excl));

	if (strcmp(operation, "INSERT") == 0)
		appendStringInfo(&q, "webhook_new AS new CROSS JOIN (SELECT (NULL::%s).*) AS old", qualified);
	else if (strcmp(operation, "DELETE") == 0)
		appendStringInfo(&q, "webhook_old AS old CROSS JOIN (SELECT (NULL::%s).*) AS new", qualified);
	else
		appendStringInfo(&q,
						 "(SELECT CASE WHEN $2 THEN pg_catalog.row_number() OVER () END AS i, true AS present,"
						 " t.*::%s AS r FROM webhook_new AS t) AS webhook_n "
						 "FULL JOIN (SELECT CASE WHEN $2 THEN pg_catalog.row_number() OVER () END AS i, true AS present,"
						 " t.*::%s AS r FROM webhook_old AS t) AS webhook_o "
						 "ON webhook_n.i OPERATOR(pg_catalog.=) webhook_o.i "
						 "CROSS JOIN LATERAL (SELECT (webhook_n.r).*) AS new "
						 "CROSS JOIN LATERAL (SELECT (webhook_o.r).*) AS old",
						 qualified, qualified);

	appendStringInfoString(&q, " WHERE true");
	if (is_update)
	{
		/* A pair that changed nothing visible emits nothing. */
		appendStringInfo(&q,
						 " AND (NOT $2 OR (pg_catalog.to_jsonb(new.*) OPERATOR(pg_catalog.-) %s)"
						 " IS DISTINCT FROM (pg_catalog.to_jsonb(old.*) OPERATOR(pg_catalog.-) %s))",
						 excl, excl);
		if (opts->columns)
		{
			ListCell   *lc;

			appendStringInfoString(&q, " AND (NOT $2");
			foreach(lc, column_names(RelationGetRelid(rel), opts->columns))
			{
				const char *col = quote_identifier(lfirst(lc));

				/* jsonb equality works for every type, json and point too. */
				appendStringInfo(&q, " OR pg_catalog.to_jsonb(new.%s) IS DISTINCT FROM pg_catalog.to_jsonb(old.%s)",
								 col, col);
			}
			appendStringInfoChar(&q, ')');
		}
	}
	if (opts->condition)
		appendStringInfo(&q, " AND (%s)", deparse_condition(rel, opts->condition));
	return q.data;
}

/* The values of a payload query's parameters ($1 is NULL when it is unused). */
static void
payload_args(Oid relid, const WatchOptions *opts, bool paired, Datum *values, char *nulls)
{
	values[0] = opts->exclude_columns ? column_names_array(relid, opts->exclude_columns) : (Datum) 0;
	nulls[0] = opts->exclude_columns ? ' ' : 'n';
	values[1] = BoolGetDatum(paired);
	nulls[1] = ' ';
}

/*
 * In an error of a payload query, name the watch where the query's text
 * would be quoted (as a CONTEXT line, or as the internal query of a planning
 * error): the text holds the owner's condition, which writers may not read.
 */
static void
hide_payload_query(ErrorData *edata, const char *sql, const char *watch)
{
	char	   *line = psprintf("SQL statement \"%s\"", sql);
	char	   *at = edata->context ? strstr(edata->context, line) : NULL;

	if (at != NULL)
		edata->context = psprintf("%.*s%s%s", (int) (at - edata->context), edata->context,
								  watch, at + strlen(line));
	else if (edata->internalquery != NULL && strcmp(edata->internalquery, sql) == 0)
	{
		edata->context = edata->context ? psprintf("%s\n%s", watch, edata->context) : pstrdup(watch);
		edata->internalquery = NULL;
		edata->internalpos = 0;
	}
}

/* Run a payload query (planned once per backend), hiding its text from errors. */
static int
select_payloads(Relation rel, const char *operation, const char *sql, Datum *values, const char *nulls)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	char	   *watch = psprintf("webhook watch of table %s", table_name(RelationGetRelid(rel)));
	int			ret;

	PG_TRY();
	{
		ret = SPI_execute_plan(payload_plan(RelationGetRelid(rel), operation, sql,
											PAYLOAD_NARGS, payload_argtypes),
							   values, nulls, false, 0);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		hide_payload_query(edata, sql, watch);
		ReThrowError(edata);
	}
	PG_END_TRY();
	return ret;
}

/*
 * Trigger entry point: AFTER INSERT/UPDATE/DELETE FOR EACH STATEMENT with
 * transition tables webhook_new / webhook_old.
 */
Datum
webhook_watch_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	const char *operation;
	const char *suffix;
	Oid			save_userid;
	int			save_sec_context;
	Oid			webhook_owner;
	WatchOptions opts;
	int			ret;
	uint64		nrows;
	Datum	   *payloads;
	int			save_nestlevel;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("webhook._watch_trigger() must be an AFTER ... FOR EACH STATEMENT trigger"),
				 errhint("Use webhook.watch() to install it.")));

	rel = trigdata->tg_relation;
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		operation = "INSERT", suffix = "created";
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		operation = "UPDATE", suffix = "updated";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		operation = "DELETE", suffix = "deleted";
	else
		return PointerGetDatum(NULL);

	/* Nothing changed (e.g. an UPDATE matching no row): no work at all. */
	if ((trigdata->tg_newtable == NULL || tuplestore_tuple_count(trigdata->tg_newtable) == 0) &&
		(trigdata->tg_oldtable == NULL || tuplestore_tuple_count(trigdata->tg_oldtable) == 0))
		return PointerGetDatum(NULL);

	webhook_owner = extension_owner();
	GetUserIdAndSecContext(&save_userid, &save_sec_context);

	/*
	 * Everything below resolves names in pg_catalog only, whatever the
	 * writer's search_path: nobody's planted function or operator runs.  And
	 * nothing set below, by the condition either, outlives the trigger.
	 */
	save_nestlevel = pin_search_path();

	SPI_connect();
	SPI_register_trigger_data(trigdata);

	SetUserIdAndSecContext(webhook_owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	if (!read_watch_options(RelationGetRelid(rel), suffix[0] == 'c' ? "insert" :
							suffix[0] == 'u' ? "update" : "delete", &opts) ||
		!opts.wants_operation)
	{
		/* A trigger with no watch, as after a restore: say so, do not guess. */
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("trigger %s on table %s has no webhook watch: no event was made",
						trigdata->tg_trigger->tgname, table_name(RelationGetRelid(rel))),
				 errhint("Call webhook.watch() for the table, or drop the trigger.")));
		SetUserIdAndSecContext(save_userid, save_sec_context);
		SPI_finish();
		AtEOXact_GUC(false, save_nestlevel);
		return PointerGetDatum(NULL);
	}

	/* Select the payloads as the table's owner, with the owner's condition. */
	SetUserIdAndSecContext(relation_owner(RelationGetRelid(rel)),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	{
		char	   *sql = payload_query(rel, operation, &opts);
		Datum		values[PAYLOAD_NARGS];
		char		nulls[PAYLOAD_NARGS];
		bool		paired = true;

		if (trigdata->tg_newtable != NULL && trigdata->tg_oldtable != NULL)
			paired = tuplestore_tuple_count(trigdata->tg_newtable) ==
				tuplestore_tuple_count(trigdata->tg_oldtable);
		payload_args(RelationGetRelid(rel), &opts, paired, values, nulls);
		ret = select_payloads(rel, operation, sql, values, nulls);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not select the changed rows: %s", SPI_result_code_string(ret));
	}
	nrows = SPI_processed;
	if (nrows > 0)
	{
		SPITupleTable *tuptable = SPI_tuptable;
		Oid			argtypes[2] = {TEXTOID, JSONBARRAYOID};
		Datum		values[2];
		int			dims[1];
		int			lbs[1] = {1};

		if (nrows > (uint64) (MaxAllocSize / sizeof(Datum)))
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many rows changed in one statement for webhook events")));
		payloads = palloc(sizeof(Datum) * nrows);
		for (uint64 i = 0; i < nrows; i++)
		{
			bool		isnull;

			payloads[i] = SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 1, &isnull);
		}
		dims[0] = (int) nrows;
		values[0] = CStringGetTextDatum(psprintf("%s.%s", opts.event_prefix, suffix));
		values[1] = PointerGetDatum(construct_md_array(payloads, NULL, 1, dims, lbs,
													   JSONBOID, -1, false, TYPALIGN_INT));

		/* Write the events as the extension's owner. */
		SetUserIdAndSecContext(webhook_owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
		ret = SPI_execute_plan(webhook_prepare_once(&enqueue_plan, "SELECT webhook._enqueue_many($1, $2)", 2, argtypes),
							   values, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not enqueue the events: %s", SPI_result_code_string(ret));
	}

	SetUserIdAndSecContext(save_userid, save_sec_context);
	SPI_finish();
	AtEOXact_GUC(false, save_nestlevel);
	return PointerGetDatum(NULL);
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
	char	   *args[5];
	int			op = -1;
	WatchDef	def;

	for (int i = 0; rel->trigdesc != NULL && i < rel->trigdesc->numtriggers; i++)
	{
		const Trigger *trigger = &rel->trigdesc->triggers[i];

		if (trigger->tgoid != trigoid || trigger->tgnargs != lengthof(args))
			continue;
		op = watch_op_of_trigger(trigger, fnoid);
		for (int a = 0; a < lengthof(args); a++)
			args[a] = pstrdup(trigger->tgargs[a]);
	}
	if (op < 0)
	{
		relation_close(rel, NoLock);
		return;
	}

	check_table_owner(relid, "watch");
	make_watch_def(rel, args[0], array_arg(args[1]), array_arg(args[2]),
				   args[3][0] != '\0' ? args[3] : NULL, array_arg(args[4]), true, &def);
	if (!(def.ops & (1 << op)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger %s on table %s does not watch %s",
						watch_ops[op].trigger, table_name(relid), watch_ops[op].name),
				 errhint("Use webhook.watch() to watch a table.")));
	store_watch(relid, &def);
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
	Datum		columns[2];
	List	   *args;
	bool		stale = false;

	columns[0] = SPI_getbinval(row, desc, 4, &isnull);
	columns[0] = isnull ? (Datum) 0 : columns[0];
	columns[1] = SPI_getbinval(row, desc, 6, &isnull);
	columns[1] = isnull ? (Datum) 0 : columns[1];
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
" SELECT table_oid, event_prefix, operations, columns, condition, exclude_columns"
"   FROM webhook.table_watches WHERE table_oid::pg_catalog.oid IN (SELECT tgrelid FROM affected)";

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
	SetUserIdAndSecContext(extension_owner(), save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
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

	save_nestlevel = pin_search_path();
	refresh_watches(fnoid);
	SPI_finish();
	AtEOXact_GUC(false, save_nestlevel);
	PG_RETURN_VOID();
}
