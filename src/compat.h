/*
 * compat.h
 *		What the library keeps for schemas of older versions (compat.c), and
 *		the rules of the watch files it delegates to.
 */
#ifndef WEBHOOK_COMPAT_H
#define WEBHOOK_COMPAT_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "executor/spi.h"
#include "nodes/nodes.h"
#include "utils/array.h"
#include "utils/relcache.h"

/* compat.c */
extern bool webhook_compat_sealed_secret_passes(const char *secret);
extern void webhook_compat_enqueue_many(SPITupleTable *tuptable, uint64 nrows, const char *event_type);

/* a watch row of a 0.1.0 schema, read as watch() keeps it now */
extern void webhook_compat_watch_row(Oid relid, HeapTuple tup, TupleDesc desc, Datum *columns,
									 char **condition, Datum *exclude_columns);

/* watch_condition.c */
extern Node *webhook_condition_expression(const char *text);

/* watch_def.c */
extern void webhook_watch_kept_form(Relation rel, ArrayType *columns, const char *condition,
									ArrayType *exclude_columns, Datum kept_columns[2],
									char **kept_condition);

#endif							/* WEBHOOK_COMPAT_H */
