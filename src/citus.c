/*
 * citus.c
 *		What webhook needs to know of Citus, read from Citus's own catalogs
 *		through SQL, so that the library neither links with Citus nor needs
 *		it: whether a table is one Citus distributes, and which distributed
 *		table a shard belongs to.
 *
 * On a Citus cluster a watch's triggers live on every shard of the watched
 * table (Citus copies them there), and each shard's trigger writes its
 * events into the queue of the node that holds the shard.  A shard is a
 * table of its own ("orders_102008"), so the payload and the ordering key
 * name the distributed table instead: webhook_citus_shard_parent().
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "citus.h"
#include "spi_util.h"

/* The shard-to-table answers of this backend, by the shard's oid. */
typedef struct ShardParent
{
	Oid			relid;			/* the key */
	Oid			parent;			/* InvalidOid: not a shard */
	bool		emits;			/* false: a copy of a shard whose first copy
								 * makes the events */
} ShardParent;

static HTAB *shard_parents = NULL;
static SPIPlanPtr shard_plan = NULL;
static SPIPlanPtr partition_plan = NULL;

/* Is the Citus extension installed in this database? */
bool
webhook_citus_installed(void)
{
	return OidIsValid(get_extension_oid("citus", true));
}

/* Any relation cache reset may be a shard dropped or moved: forget all. */
static void
shard_parents_reset(Datum arg, Oid relid)
{
	if (shard_parents != NULL)
		hash_destroy(shard_parents);
	shard_parents = NULL;
}

/*
 * The shard id a shard's name ends with ("orders_102008", or for long
 * names a truncated name, a hash and then the id); 0 for none.
 */
static int64
shard_id_of_name(const char *relname)
{
	const char *us = strrchr(relname, '_');
	const char *p;

	if (us == NULL || us[1] == '\0')
		return 0;
	for (p = us + 1; *p; p++)
		if (!isdigit((unsigned char) *p))
			return 0;
	return strtoi64(us + 1, NULL, 10);
}

/*
 * Ask pg_dist_shard which distributed table owns a shard id, and check
 * that the relation looks like its shard: same schema, and a name that
 * begins as the table's does (Citus shortens long names).  Needs SPI.
 */
static Oid
lookup_shard_parent(Relation rel, int64 shardid, bool *emits)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(shardid)};
	Oid			parent = InvalidOid;
	bool		isnull;

	/*
	 * A write to a shard with several copies (a reference table's, one per
	 * node, or a distributed table's with citus.shard_replication_factor
	 * above 1) runs on each copy: only the copy in the lowest node group
	 * makes its events, or each would be sent once per copy.
	 */
	if (SPI_execute_plan(webhook_prepare_once(&shard_plan,
											  "SELECT s.logicalrelid::pg_catalog.oid,"
											  "       (SELECT pg_catalog.min(pl.groupid) FROM pg_catalog.pg_dist_placement pl"
											  "         WHERE pl.shardid OPERATOR(pg_catalog.=) s.shardid)"
											  "       OPERATOR(pg_catalog.=) (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g)"
											  "  FROM pg_catalog.pg_dist_shard s"
											  " WHERE s.shardid OPERATOR(pg_catalog.=) $1",
											  1, argtypes),
						 values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_shard");
	*emits = true;
	if (SPI_processed > 0)
	{
		parent = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		*emits = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)) || isnull;
	}
	if (OidIsValid(parent))
	{
		char	   *name = get_rel_name(parent);
		size_t		prefix = name ? Min(strlen(name), 16) : 0;

		if (name == NULL || get_rel_namespace(parent) != RelationGetNamespace(rel) ||
			strncmp(RelationGetRelationName(rel), name, prefix) != 0)
			parent = InvalidOid;
	}
	return parent;
}

/*
 * The distributed table that rel is a shard of, or InvalidOid when it is
 * none (no Citus, or an ordinary table); *emits is false for a copy of a
 * shard that leaves the events to another copy.  Answers are
 * kept until the next relation cache reset.  Needs SPI.
 */
Oid
webhook_citus_shard_parent(Relation rel, bool *emits)
{
	Oid			relid = RelationGetRelid(rel);
	ShardParent *entry;
	bool		found;
	int64		shardid;

	if (shard_parents == NULL)
	{
		HASHCTL		ctl = {.keysize = sizeof(Oid),.entrysize = sizeof(ShardParent),
		.hcxt = TopMemoryContext};
		static bool registered = false;

		shard_parents = hash_create("webhook shard parents", 16, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		if (!registered)
			CacheRegisterRelcacheCallback(shard_parents_reset, (Datum) 0);
		registered = true;
	}
	entry = hash_search(shard_parents, &relid, HASH_FIND, &found);
	if (found)
	{
		*emits = entry->emits;
		return entry->parent;
	}

	shardid = shard_id_of_name(RelationGetRelationName(rel));
	{
		Oid			parent = InvalidOid;

		*emits = true;
		if (shardid > 0 && webhook_citus_installed())
			parent = lookup_shard_parent(rel, shardid, emits);
		/* The lookup may have reset the cache: enter the answer afresh. */
		if (shard_parents != NULL)
		{
			entry = hash_search(shard_parents, &relid, HASH_ENTER, &found);
			entry->parent = parent;
			entry->emits = *emits;
		}
		return parent;
	}
}

/*
 * Is relid a table that Citus distributes (a distributed or reference
 * table, on the node where it is defined)?  Its DDL must then go through
 * Citus, which copies it to the shards.  Needs SPI.
 */
bool
webhook_is_citus_table(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	if (!webhook_citus_installed())
		return false;
	if (SPI_execute_plan(webhook_prepare_once(&partition_plan,
											  "SELECT FROM pg_catalog.pg_dist_partition"
											  " WHERE logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
											  1, argtypes),
						 values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_partition");
	return SPI_processed > 0;
}

/*
 * Run a DDL command on a Citus table through Citus, so that it reaches
 * every shard.  Citus refuses triggers on distributed tables unless
 * citus.enable_unsafe_triggers is on; a watch's trigger only writes this
 * node's own queue, which is what that setting guards against, so it is set
 * for this one command.  Needs SPI.
 */
void
webhook_citus_ddl(const char *sql)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("citus.enable_unsafe_triggers", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* DROP TRIGGER IF EXISTS says "skipping" once per shard otherwise. */
	(void) set_config_option("client_min_messages", "warning", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not run \"%s\"", sql);
	AtEOXact_GUC(true, nestlevel);
}

/*
 * Drop a distributed table's watch triggers here and on every shard, by
 * webhook._drop_shard_watch_triggers() (sql/src/08_watch.sql), which also
 * reaches the shards' copies of triggers the table lost by CASCADE.  Needs
 * SPI.
 */
void
webhook_citus_drop_watch_triggers(Oid relid)
{
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	if (SPI_execute_with_args("SELECT webhook._drop_shard_watch_triggers($1)", 1, argtypes, values,
							  NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not drop the watch triggers of the shards");
}
