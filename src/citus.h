/*
 * citus.h
 *		What webhook knows of Citus (citus.c): read from Citus's catalogs
 *		through SQL, never by linking with it.
 */
#ifndef WEBHOOK_CITUS_H
#define WEBHOOK_CITUS_H

#include "postgres.h"

#include "utils/relcache.h"

extern bool webhook_citus_installed(void);
extern bool webhook_is_citus_table(Oid relid);
extern Oid	webhook_citus_shard_parent(Relation rel, bool *emits);
extern void webhook_citus_ddl(const char *sql);
extern void webhook_citus_drop_watch_triggers(Oid relid);

#endif							/* WEBHOOK_CITUS_H */
