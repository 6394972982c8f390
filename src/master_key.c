/*
 * master_key.c
 *		Where the master key that seals secrets at rest lives, and its
 *		creation (issue 15, "Secrets encrypted by default").
 *
 * A superuser may name a key file with webhook.master_key_file.  Without
 * one, the key is webhook_master.key in the data directory, created on first
 * use: the first time a backend seals a value (an endpoint write, the update
 * from 0.1.0).  The worker only opens values and never creates a key.  The
 * file holds 64 hex digits and is readable by the server's OS user only.
 *
 * A key is created only when none exists: a temporary file is written and
 * fsynced, then linked to its name, which fails when another backend got
 * there first (rename would replace that backend's key, and values it has
 * sealed would be lost); the loser reads the winner's key.  A key is never
 * created where this database already holds sealed values: the key they
 * were sealed under was lost, and a new one would hide that.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "master_key.h"
#include "sealing.h"

#define KEY_LEN 32

/* The key file in use: the setting, or the default in the data directory. */
const char *
webhook_master_key_path(bool *is_default)
{
	*is_default = webhook_master_key_file == NULL || webhook_master_key_file[0] == '\0';
	return *is_default ? WEBHOOK_DEFAULT_MASTER_KEY_FILE : webhook_master_key_file;
}

/*
 * Refuse a missing key file: values sealed under it cannot be opened, and
 * what the error says is how to get them back.
 */
void
webhook_master_key_missing(const char *path)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("webhook master key file \"%s\" is missing", path),
			 errdetail("Secrets of webhook.endpoints are sealed under the key in that file."),
			 errhint("Copy the file back into the data directory from a backup, or from the server the data came from, with mode 0600.")));
}

/*
 * Does webhook.endpoints in this database hold a sealed value?  Asked as the
 * table's owner, as RI triggers do, so that a role that may only write
 * endpoints still gets the right answer.  Any column counts, present or to
 * come: the row's text is searched.
 */
static bool
sealed_values_exist(void)
{
	Oid			nsp = get_namespace_oid("webhook", true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid("endpoints", nsp) : InvalidOid;
	HeapTuple	tup;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	bool		found = false;

	if (!OidIsValid(rel))
		return false;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
	if (!HeapTupleIsValid(tup))
		return false;
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT 1 FROM webhook.endpoints e "
					"WHERE strpos(e::pg_catalog.text, 'whenc:v1:') > 0 LIMIT 1",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look for sealed values in webhook.endpoints");
	found = SPI_processed > 0;
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return found;
}

/* The directory holding a key file, for fsync after the file appears. */
static char *
parent_directory(const char *path)
{
	char	   *dir = pstrdup(path);

	get_parent_directory(dir);
	return dir[0] == '\0' ? pstrdup(".") : dir;
}

/*
 * Create the default key file at path, unless another backend just did.
 * See the head of this file.
 */
void
webhook_master_key_create(const char *path)
{
	unsigned char key[KEY_LEN];
	char		hex[2 * KEY_LEN + 1];
	char		tmp[MAXPGPATH];
	int			fd;
	int			link_errno = 0;

	if (sealed_values_exist())
		webhook_master_key_missing(path);

	if (!pg_strong_random(key, KEY_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a webhook master key")));
	hex_encode((const char *) key, KEY_LEN, hex);
	explicit_bzero(key, sizeof(key));
	hex[2 * KEY_LEN] = '\n';

	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int) MyProcPid);
	(void) unlink(tmp);
	fd = OpenTransientFilePerm(tmp, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create webhook master key file \"%s\": %m", tmp)));
	errno = 0;
	if (write(fd, hex, sizeof(hex)) != sizeof(hex) || pg_fsync(fd) != 0)
	{
		int			save_errno = errno ? errno : ENOSPC;

		explicit_bzero(hex, sizeof(hex));
		CloseTransientFile(fd);
		(void) unlink(tmp);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write webhook master key file \"%s\": %m", tmp)));
	}
	explicit_bzero(hex, sizeof(hex));
	CloseTransientFile(fd);

	if (link(tmp, path) != 0 && errno != EEXIST)
		link_errno = errno;
	(void) unlink(tmp);
	if (link_errno != 0)
	{
		errno = link_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create webhook master key file \"%s\": %m", path),
				 errhint("Create a key yourself and name it in webhook.master_key_file: see \"Secrets at rest\" in README.md.")));
	}
	fsync_fname(path, false);
	fsync_fname(parent_directory(path), true);
}
