/*
 * watch.h
 *		What the files of webhook.watch() share: the operations a watch can
 *		emit, a watch's options, and the helpers each file needs of the ones
 *		below it.  The files call only downward, bottom first:
 *		watch_condition.c reads a watch's condition; watch_def.c says what a
 *		watch is (operations, owners, columns, its row); watch_payload.c makes
 *		the common watch's INSERT and DELETE payloads in C; watch_trigger.c
 *		turns a statement's changed rows into events; watch_options.c checks a
 *		watch's options into a WatchDef; watch_ddl.c keeps the watch's
 *		triggers (creation, dependencies, dump and restore); watch.c is the
 *		SQL API (webhook.watch(), unwatch()).
 */
#ifndef WEBHOOK_WATCH_H
#define WEBHOOK_WATCH_H

#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/relcache.h"

/* An operation a watch can emit. */
typedef struct WatchOp
{
	const char *name;			/* as in webhook.table_watches.operations */
	const char *trigger;		/* the statement-level trigger emitting it */
	const char *event;			/* its CREATE TRIGGER event */
	const char *transitions;	/* its REFERENCING clause */
	const char *suffix;			/* of the event type it makes */
} WatchOp;

/* The operations, in the order watches list them (see watch_def.c). */
#define WATCH_OPS 3
extern const WatchOp watch_ops[WATCH_OPS];

/* The options of one watch, as read from webhook.table_watches. */
typedef struct WatchOptions
{
	Oid			relid;			/* the table whose watch this is: the one
								 * written to, or the distributed table of a
								 * Citus shard written to; events name it */
	char	   *event_prefix;
	bool		wants_operation;
	Datum		columns;		/* int2[] of column numbers, or 0 */
	char	   *condition;		/* pg_node_tree text, or NULL */
	Datum		exclude_columns;	/* int2[] of column numbers, or 0 */
	Datum		ordering_key;	/* int2[] of column numbers ('{}': none), or 0
								 * for the primary key */
} WatchOptions;

/*
 * A watch row's ordering_key (int2[]; NULL: the primary key) as SQL over the
 * row w, read through to_jsonb so that a schema before 0.6.0, without the
 * column, reads NULL (until ALTER EXTENSION webhook UPDATE).
 */
#define WATCH_ORDERING_KEY_SQL \
	"CASE WHEN pg_catalog.jsonb_typeof(pg_catalog.to_jsonb(w.*) OPERATOR(pg_catalog.->) 'ordering_key')" \
	" OPERATOR(pg_catalog.=) 'array' THEN ARRAY(SELECT v::pg_catalog.int2 FROM pg_catalog.jsonb_array_elements_text(" \
	"pg_catalog.to_jsonb(w.*) OPERATOR(pg_catalog.->) 'ordering_key') AS v) END"

/* A watch as watch() checked it, before it is stored. */
typedef struct WatchDef
{
	char	   *prefix;
	int			ops;			/* a bit per entry of watch_ops */
	Datum		operations;		/* the same as text[] */
	Datum		columns[3];		/* int2[] of columns, exclude_columns and
								 * ordering_key, or 0 */
	Node	   *condition;		/* parsed, or NULL */
	List	   *rtable;			/* the condition's range table */
} WatchDef;

/* watch_def.c */
extern void watch_check_relation_exists(Oid relid);
extern void webhook_require_table_owner(Oid relid, const char *action);
extern Oid	watch_relation_owner(Oid relid);
extern Oid	watch_extension_owner(void);
extern char *watch_table_name(Oid relid);
extern int	watch_execute_as(Oid role, int sec_flags, const char *sql, int nargs, Oid *argtypes,
							 Datum *values, const char *nulls);
extern int	watch_pin_search_path(void);
extern Datum watch_column_numbers(Relation rel, ArrayType *names, const char *what);
extern List *watch_column_names(Oid relid, Datum attnums);
extern Datum watch_text_array(const char **items, int n);
extern Datum watch_column_names_array(Oid relid, Datum attnums);
extern void watch_store(Oid relid, const WatchDef *def);
extern bool watch_remove(Oid relid);

/* watch_condition.c */
extern Node *watch_parse_condition(Relation rel, const char *text, List **rtable);
extern char *watch_deparse_condition(Relation rel, const char *stored);

/* watch_payload.c */
struct TriggerData;
struct EventWriter;
extern List *watch_key_columns(Relation rel, const WatchOptions *opts);
extern bool watch_payload_write(struct TriggerData *trigdata, const char *operation,
								const WatchOptions *opts, struct EventWriter *w);

/* watch_trigger.c */
extern void watch_dry_run(Relation rel, const WatchDef *def, bool restored);

/* watch_options.c */
extern void watch_make_def(Relation rel, const char *prefix, ArrayType *operations, ArrayType *columns,
						   const char *condition, ArrayType *exclude_columns, ArrayType *ordering_key,
						   bool restored,
						   WatchDef *def);

/* watch_ddl.c */
extern void watch_drop_triggers(Oid relid);
extern void watch_replace_citus_triggers(Relation rel, const WatchDef *def);
extern void watch_replace_triggers(Relation rel, const WatchDef *def);

#endif							/* WEBHOOK_WATCH_H */
