/*
 * watch_trigger.c
 *		The statement-level trigger behind webhook.watch(): turns the rows a
 *		statement changed into events, set-based, whatever their number.  One
 *		payload query per table and operation selects the changed rows with
 *		the watch's filters and condition; its rows go straight into
 *		webhook.events through an EventWriter (enqueue.c).
 *
 * The watch's options are read, and the events written, as the owner of the
 * extension's tables; the changed rows are selected, and the condition
 * evaluated, as the owner of the watched table, who wrote that condition.
 */
#include "postgres.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "compat.h"
#include "enqueue.h"
#include "spi_util.h"
#include "citus.h"
#include "watch.h"
#include "watch_lookup.h"
#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_watch_trigger);

/*
 * Saved plans, so that a one-row INSERT does not plan its statements: the
 * enqueue call once per backend, the payload query once per table,
 * operation and query text (the text names the columns as they are now, so
 * a rename makes a new plan).  The watch itself comes from watch_lookup.c.
 */
typedef struct PayloadPlan
{
	char		key[NAMEDATALEN * 2];	/* "relid/operation" */
	char	   *sql;			/* the text the plan was made from */
	SPIPlanPtr	plan;
} PayloadPlan;

/* The parameters of a payload query: excluded columns' names, and whether to pair. */
#define PAYLOAD_NARGS 2
static Oid	payload_argtypes[PAYLOAD_NARGS] = {TEXTARRAYOID, BOOLOID};

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

/*
 * The table a watched table's events name: itself, or for a shard of a
 * table that Citus distributes, that table ("orders", not "orders_102008").
 * InvalidOid for a copy of a shard (of a reference table, say) whose
 * events another copy makes.
 */
static Oid
named_table(Relation rel)
{
	bool		emits;
	Oid			parent = webhook_citus_shard_parent(rel, &emits);

	if (!emits)
		return InvalidOid;
	return OidIsValid(parent) ? parent : RelationGetRelid(rel);
}

/* A row image as jsonb, NULL when the FULL JOIN of an UPDATE found none. */
static char *
row_image(const char *alias, const char *present, const char *excl)
{
	char	   *image = psprintf("(pg_catalog.to_jsonb(%s.*) OPERATOR(pg_catalog.-) %s)", alias, excl);

	return present ? psprintf("CASE WHEN %s THEN %s END", present, image) : image;
}

/*
 * A changed row's ordering key, from the row image alias: the table's name
 * (quoted where needed) and the key's value, '<schema>.<table>:<value>', or
 * for several columns their values as a JSON array ('...:[v1, v2]', so that
 * no two keys read alike): one row's events go in order on ordered
 * endpoints, and different rows in parallel.  A single column that is NULL
 * gives no key.  The key columns are the watch's ordering_key, or else the
 * table's primary key (watch_key_columns); NULL (the endpoint's own
 * sequence) when there are none.
 */
static char *
ordering_key_expr(Relation rel, const WatchOptions *opts, const char *alias)
{
	List	   *names = watch_key_columns(rel, opts);
	StringInfoData e;
	ListCell   *lc;

	if (names == NIL)
		return "NULL::pg_catalog.text";
	initStringInfo(&e);
	appendStringInfo(&e, "(%s OPERATOR(pg_catalog.||) ",
					 quote_literal_cstr(psprintf("%s:", quote_qualified_identifier(get_namespace_name(get_rel_namespace(opts->relid)),
																				   get_rel_name(opts->relid)))));
	/* One column, the usual primary key: its text, cheaper than an array. */
	if (list_length(names) == 1)
	{
		appendStringInfo(&e, "%s.%s::pg_catalog.text)", alias, quote_identifier(linitial(names)));
		return e.data;
	}
	appendStringInfoString(&e, "pg_catalog.jsonb_build_array(");
	foreach(lc, names)
		appendStringInfo(&e, "%s%s.%s", foreach_current_index(lc) > 0 ? ", " : "", alias,
						 quote_identifier(lfirst(lc)));
	appendStringInfoString(&e, ")::pg_catalog.text)");
	return e.data;
}

/*
 * A watch's condition as SQL over the names of the table whose watch it is
 * (a Citus shard's rows have the same names, not always the same numbers).
 */
static char *
condition_sql(Relation rel, const WatchOptions *opts)
{
	Relation	watched;
	char	   *sql;

	if (opts->relid == RelationGetRelid(rel))
		return watch_deparse_condition(rel, opts->condition);
	watched = relation_open(opts->relid, AccessShareLock);
	sql = watch_deparse_condition(watched, opts->condition);
	relation_close(watched, AccessShareLock);
	return sql;
}

/*
 * The SELECT that makes one payload per changed row, and its ordering key.  NEW and OLD name the
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
					 "'record', %s, 'old_record', %s), %s FROM ",
					 quote_literal_cstr(operation),
					 quote_literal_cstr(get_namespace_name(get_rel_namespace(opts->relid))),
					 quote_literal_cstr(get_rel_name(opts->relid)),
					 strcmp(operation, "DELETE") == 0 ? "NULL::pg_catalog.jsonb" :
					 row_image("new", is_update ? "webhook_n.present" : NULL, excl),
					 strcmp(operation, "INSERT") == 0 ? "NULL::pg_catalog.jsonb" :
					 row_image("old", is_update ? "webhook_o.present" : NULL, excl),
					 strcmp(operation, "DELETE") == 0 ? ordering_key_expr(rel, opts, "old") :
					 !is_update ? ordering_key_expr(rel, opts, "new") :
					 psprintf("CASE WHEN webhook_n.present THEN %s ELSE %s END",
							  ordering_key_expr(rel, opts, "new"), ordering_key_expr(rel, opts, "old")));

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
			foreach(lc, watch_column_names(opts->relid, opts->columns))
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
		appendStringInfo(&q, " AND (%s)", condition_sql(rel, opts));
	return q.data;
}

/* The values of a payload query's parameters ($1 is NULL when it is unused). */
static void
payload_args(Oid relid, const WatchOptions *opts, bool paired, Datum *values, char *nulls)
{
	values[0] = opts->exclude_columns ? watch_column_names_array(relid, opts->exclude_columns) : (Datum) 0;
	nulls[0] = opts->exclude_columns ? ' ' : 'n';
	values[1] = BoolGetDatum(paired);
	nulls[1] = ' ';
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
	int			save_nestlevel = watch_pin_search_path();

	opts.relid = RelationGetRelid(rel);
	opts.event_prefix = def->prefix;
	opts.wants_operation = true;
	opts.columns = def->columns[0];
	opts.condition = def->condition ? nodeToString(def->condition) : NULL;
	opts.exclude_columns = def->columns[1];
	opts.ordering_key = def->columns[2];

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
	errcallback.arg = watch_table_name(RelationGetRelid(rel));
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	for (int k = 0; k < WATCH_OPS; k++)
		if ((def->ops & (1 << k)) &&
			watch_execute_as(watch_relation_owner(RelationGetRelid(rel)), SECURITY_RESTRICTED_OPERATION,
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
						watch_table_name(RelationGetRelid(rel)), edata->message),
				 errdetail("A restore grants privileges after it creates triggers."),
				 errhint("Writes to the table fail until its owner has the privileges the condition needs.")));
	}
	PG_END_TRY();
}

/*
 * Try a watch's payload queries once, as its trigger will run them: at
 * watch() any error refuses the watch; at a restore, a missing privilege
 * only warns (see dry_run_restored_payload_queries).
 */
void
watch_dry_run(Relation rel, const WatchDef *def, bool restored)
{
	if (restored)
		dry_run_restored_payload_queries(rel, def);
	else
		dry_run_payload_queries(rel, def);
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

/* A payload query's parameters, as SPI_execute_plan_extended takes them. */
static ParamListInfo
payload_params(const Datum *values, const char *nulls)
{
	ParamListInfo params = makeParamList(PAYLOAD_NARGS);

	for (int i = 0; i < PAYLOAD_NARGS; i++)
	{
		params->params[i].value = values[i];
		params->params[i].isnull = nulls[i] == 'n';
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = payload_argtypes[i];
	}
	return params;
}

/*
 * Run a payload query (planned once per backend), hiding its text from
 * errors.  Its rows go to dest, or into SPI_tuptable when dest is NULL.
 */
static int
select_payloads(Relation rel, const char *operation, const char *sql, Datum *values, const char *nulls,
				DestReceiver *dest)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	char	   *watch = psprintf("webhook watch of table %s", watch_table_name(RelationGetRelid(rel)));
	SPIExecuteOptions options;
	int			ret;

	memset(&options, 0, sizeof(options));
	options.params = payload_params(values, nulls);
	options.dest = dest;
	PG_TRY();
	{
		ret = SPI_execute_plan_extended(payload_plan(RelationGetRelid(rel), operation, sql,
													 PAYLOAD_NARGS, payload_argtypes),
										&options);
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

/* Refuse to run as anything but a watch trigger: AFTER ... FOR EACH STATEMENT. */
static void
check_trigger_protocol(FunctionCallInfo fcinfo)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("webhook._watch_trigger() must be an AFTER ... FOR EACH STATEMENT trigger"),
				 errhint("Use webhook.watch() to install it.")));
}

/*
 * The entry of watch_ops for the statement that fired the trigger, or -1
 * (TRUNCATE) when there is nothing to emit.
 */
static int
fired_operation(const TriggerData *trigdata)
{
	const char *event;

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		event = "INSERT";
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		event = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		event = "DELETE";
	else
		return -1;
	for (int k = 0; k < WATCH_OPS; k++)
		if (strcmp(watch_ops[k].event, event) == 0)
			return k;
	return -1;
}

/* Did the statement change any row?  An UPDATE matching none costs nothing. */
static bool
changed_any_row(const TriggerData *trigdata)
{
	return (trigdata->tg_newtable != NULL && tuplestore_tuple_count(trigdata->tg_newtable) > 0) ||
		(trigdata->tg_oldtable != NULL && tuplestore_tuple_count(trigdata->tg_oldtable) > 0);
}

/* A trigger with no watch, as after a restore: say so, do not guess. */
static void
warn_no_watch(const TriggerData *trigdata)
{
	ereport(WARNING,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("trigger %s on table %s has no webhook watch: no event was made",
					trigdata->tg_trigger->tgname, watch_table_name(RelationGetRelid(trigdata->tg_relation))),
			 errhint("Call webhook.watch() for the table, or drop the trigger.")));
}

/*
 * Select one payload per changed row, with the watch's filters and
 * condition, into dest (or SPI_tuptable when dest is NULL); returns their
 * number.  Runs as the caller set it: the table's owner.
 */
static uint64
select_changed_rows(const TriggerData *trigdata, int op, const WatchOptions *opts, DestReceiver *dest)
{
	Relation	rel = trigdata->tg_relation;
	const char *operation = watch_ops[op].event;
	char	   *sql = payload_query(rel, operation, opts);
	Datum		values[PAYLOAD_NARGS];
	char		nulls[PAYLOAD_NARGS];
	bool		paired = true;
	int			ret;

	if (trigdata->tg_newtable != NULL && trigdata->tg_oldtable != NULL)
		paired = tuplestore_tuple_count(trigdata->tg_newtable) ==
			tuplestore_tuple_count(trigdata->tg_oldtable);
	payload_args(opts->relid, opts, paired, values, nulls);
	ret = select_payloads(rel, operation, sql, values, nulls, dest);

	/*
	 * SPI says SPI_OK_UTILITY for a SELECT whose rows went to a DestNone
	 * receiver.
	 */
	if (ret != (dest != NULL ? SPI_OK_UTILITY : SPI_OK_SELECT))
		elog(ERROR, "could not select the changed rows: %s", SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * Write the statement's events: made in C for the common watch
 * (watch_payload.c), or else the payload query's rows, straight into
 * webhook.events.  The watch was read, and the events are written, as the
 * extension's owner; the rows are selected as the table's owner.  A schema
 * older than the library (before ALTER EXTENSION webhook UPDATE) takes its
 * own path (compat.c).
 */
static void
emit_events(TriggerData *trigdata, int op, const WatchOptions *opts, Oid webhook_owner, int sec_context)
{
	Oid			table_owner = watch_relation_owner(RelationGetRelid(trigdata->tg_relation));
	int			restricted = sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION;
	text	   *event_type = cstring_to_text(psprintf("%s.%s", opts->event_prefix, watch_ops[op].suffix));
	EventWriter w;
	uint64		nrows;

	if (!event_writer_begin(&w, event_type, true))
	{
		SetUserIdAndSecContext(table_owner, restricted);
		nrows = select_changed_rows(trigdata, op, opts, NULL);
		SetUserIdAndSecContext(webhook_owner, sec_context | SECURITY_LOCAL_USERID_CHANGE);
		if (nrows > 0)
			webhook_compat_enqueue_many(SPI_tuptable, nrows, text_to_cstring(event_type));
		return;
	}
	SetUserIdAndSecContext(table_owner, restricted);
	if (!watch_payload_write(trigdata, watch_ops[op].event, opts, &w))
		select_changed_rows(trigdata, op, opts, event_writer_receiver(&w));
	SetUserIdAndSecContext(webhook_owner, sec_context | SECURITY_LOCAL_USERID_CHANGE);

	/* The catalogue may have changed since watch() checked the type. */
	if (w.written + w.nbuffered > 0)
		webhook_check_sendable_event_type(event_type);
	event_writer_end(&w);
}

/*
 * Trigger entry point: AFTER INSERT/UPDATE/DELETE FOR EACH STATEMENT with
 * transition tables webhook_new / webhook_old.  The watch's options are read
 * and the events written as the extension's owner; the rows are selected as
 * the table's owner (see the head of this file).
 */
Datum
webhook_watch_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			webhook_owner;
	Oid			watched;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	WatchOptions opts;
	int			op;

	check_trigger_protocol(fcinfo);
	op = fired_operation(trigdata);
	if (op < 0 || !changed_any_row(trigdata))
		return PointerGetDatum(NULL);

	webhook_owner = watch_extension_owner();
	GetUserIdAndSecContext(&save_userid, &save_sec_context);

	/*
	 * Everything below resolves names in pg_catalog only, whatever the
	 * writer's search_path: nobody's planted function or operator runs.  And
	 * nothing set below, by the condition either, outlives the trigger.
	 */
	save_nestlevel = watch_pin_search_path();
	SPI_connect();
	SPI_register_trigger_data(trigdata);

	SetUserIdAndSecContext(webhook_owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	watched = named_table(trigdata->tg_relation);
	/* InvalidOid: another copy of this shard makes the events. */
	if (OidIsValid(watched))
	{
		if (!watch_lookup(watched, watch_ops[op].name, &opts) || !opts.wants_operation)
			warn_no_watch(trigdata);
		else
			emit_events(trigdata, op, &opts, webhook_owner, save_sec_context);
	}

	SetUserIdAndSecContext(save_userid, save_sec_context);
	SPI_finish();
	AtEOXact_GUC(false, save_nestlevel);
	return PointerGetDatum(NULL);
}
