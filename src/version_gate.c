/*
 * version_gate.c
 *		Does this database have the extension, at the version this library
 *		was built for?  The worker asks before every claim; the answer "yes"
 *		is cached until a relation cache invalidation says the extension may
 *		have changed, as pg_cron caches its job table.
 *
 * A library newer than the installed extension (the package was upgraded,
 * ALTER EXTENSION webhook UPDATE not run yet) would send its queries to a
 * schema they were not written for, so the worker waits instead.  Any other
 * answer than "yes" is not cached: it is looked up again the next time the
 * worker is woken, which is what ALTER EXTENSION does at commit (wake.c).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "version_gate.h"

#ifndef WEBHOOK_EXTVERSION
#error "WEBHOOK_EXTVERSION must be defined by the Makefile"
#endif

/* True while the extension is known to be installed at our version. */
static bool ready = false;

/* webhook.deliveries when ready was set: dropping it invalidates ready. */
static Oid	watched_relid = InvalidOid;

/* The version found installed at the last look, when not ours. */
static char installed[NAMEDATALEN * 2] = "";

/*
 * A relation cache entry was invalidated.  DROP EXTENSION drops our tables;
 * CREATE and ALTER EXTENSION invalidate pg_extension's entry (wake.c);
 * InvalidOid means everything was reset.  Any of those: look again.
 */
static void
version_gate_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == watched_relid || relid == ExtensionRelationId)
		ready = false;
}

/* Watch for invalidations; once per worker process. */
void
version_gate_init(void)
{
	CacheRegisterRelcacheCallback(version_gate_invalidate, (Datum) 0);
}

/*
 * The extension's version as pg_extension records it, or NULL.  PostgreSQL
 * 15 has no function for it, and no system cache on pg_extension.
 */
static char *
extension_version(Oid extoid, Oid *schema)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		value = heap_getattr(tuple, Anum_pg_extension_extversion,
										 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = TextDatumGetCString(value);
		*schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/*
 * Is the extension installed here at WEBHOOK_EXTVERSION?  Called inside a
 * transaction the worker runs anyway (its claim), so that a cached "yes"
 * costs nothing and a look-up no transaction of its own.
 */
ExtensionState
version_gate_check(void)
{
	Oid			extoid;
	Oid			schema = InvalidOid;
	char	   *version;

	if (ready)
		return EXTENSION_READY;
	/* Set first: an invalidation arriving during the look-up clears it. */
	ready = true;
	extoid = get_extension_oid("webhook", true);
	version = OidIsValid(extoid) ? extension_version(extoid, &schema) : NULL;
	if (version == NULL)
	{
		ready = false;
		return EXTENSION_MISSING;
	}
	if (strcmp(version, WEBHOOK_EXTVERSION) != 0)
	{
		ready = false;
		strlcpy(installed, version, sizeof(installed));
		return EXTENSION_OTHER_VERSION;
	}
	watched_relid = get_relname_relid("deliveries", schema);
	return EXTENSION_READY;
}

/* The version found installed when version_gate_check said it is not ours. */
const char *
version_gate_installed(void)
{
	return installed;
}
