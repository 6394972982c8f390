/*
 * sealing.c
 *		Secrets at rest: secrets, private keys and credentials are stored
 *		AES-256-GCM encrypted, so a dump or a stolen disk does not reveal them.
 *		The key is in webhook.master_key_file, or by default in a file of the
 *		data directory created on first use (src/master_key.c).
 *
 * A sealed value is "whenc:v1:" followed by base64(12-byte IV || ciphertext
 * || 16-byte tag).  Unsealing a value that is not sealed returns it as is, so
 * endpoints created before the key was configured keep working.
 */
#include "postgres.h"

#include <sys/stat.h>
#include <openssl/evp.h>

#include "common/base64.h"
#include "common/file_perm.h"
#include "fmgr.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "master_key.h"
#include "sealing.h"
#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_seal);
PG_FUNCTION_INFO_V1(webhook_unseal);

#define SEAL_PREFIX "whenc:v1:"
#define SEAL_PREFIX_LEN 9
#define IV_LEN 12
#define TAG_LEN 16
#define KEY_LEN 32

char	   *webhook_master_key_file = NULL;

/* The key, loaded once per backend per file. */
static unsigned char master_key[KEY_LEN];
static char *loaded_path = NULL;
static time_t loaded_mtime = 0;
static uint64 key_loads = 0;	/* keys loaded so far: names the one loaded */

/*
 * The permission bits a key file must not have: none for others, and none
 * for the group unless the data directory itself is group-readable (initdb
 * --allow-group-access), where PostgreSQL and pg_basebackup write every file
 * 0640.
 */
static mode_t
key_file_forbidden_mode(void)
{
	if (pg_file_create_mode & S_IRGRP)
		return S_IRWXO | S_IWGRP | S_IXGRP;
	return S_IRWXO | S_IRWXG;
}

/*
 * Which key this backend loaded last, as a number that changes at every
 * load (0: none yet): values opened under one key are kept with its number.
 */
uint64
webhook_master_key_generation(void)
{
	return key_loads;
}

/*
 * Is the key this backend loaded still the one configured, in a file it may
 * still read?  A cheap check, one stat and no reading, for callers that keep
 * values unsealed under the loaded key (unseal_cache.c): false when no key
 * is loaded, when the setting names another file, or when the file changed,
 * went away or became readable by others.
 */
bool
webhook_master_key_unchanged(void)
{
	struct stat st;
	bool		is_default;
	const char *path = webhook_master_key_path(&is_default);

	return loaded_path != NULL && strcmp(loaded_path, path) == 0 &&
		stat(path, &st) == 0 && st.st_mtime == loaded_mtime &&
		(st.st_mode & key_file_forbidden_mode()) == 0;
}

/*
 * Load the master key (src/master_key.c says which file): 32 raw bytes, or
 * 64 hex digits, or base64 of 32 bytes.  A missing default key file is
 * created when create says so (a value is being sealed), and otherwise an
 * error: values sealed under it cannot be opened.
 */
static void
load_master_key(bool create)
{
	struct stat st;
	char		buf[256];
	int			n;
	FILE	   *f;
	bool		is_default;
	const char *path = webhook_master_key_path(&is_default);

	if (stat(path, &st) != 0 && errno == ENOENT && is_default)
	{
		if (!create)
			webhook_master_key_missing(path);
		webhook_master_key_create(path);
	}
	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read webhook master key file \"%s\": %m", path)));
	if (st.st_mode & key_file_forbidden_mode())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("webhook master key file \"%s\" is readable by other users", path),
				 errhint("Run chmod 600 on it, as the operating system user that runs the server.")));
	if (loaded_path && strcmp(loaded_path, path) == 0 && st.st_mtime == loaded_mtime)
		return;

	f = AllocateFile(path, "r");
	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open webhook master key file \"%s\": %m", path)));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	FreeFile(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';

	if (n == KEY_LEN)
		memcpy(master_key, buf, KEY_LEN);
	else if (n == 2 * KEY_LEN && strspn(buf, "0123456789abcdefABCDEF") == (size_t) n)
		hex_decode(buf, n, (char *) master_key);
	else
	{
		char		tmp[64];

		if (pg_b64_dec_len(n) > (int) sizeof(tmp) ||
			pg_b64_decode(buf, n, tmp, sizeof(tmp)) != KEY_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("webhook master key file \"%s\" does not hold a 256-bit key", path),
					 errhint("Write 64 hex digits into it, for example with: openssl rand -hex 32.")));
		memcpy(master_key, tmp, KEY_LEN);
		explicit_bzero(tmp, sizeof(tmp));
	}
	explicit_bzero(buf, sizeof(buf));
	if (loaded_path)
		pfree(loaded_path);
	loaded_path = MemoryContextStrdup(TopMemoryContext, path);
	loaded_mtime = st.st_mtime;
	key_loads++;
}

/* Is a value in sealed form? */
bool
webhook_is_sealed(const char *value)
{
	return strncmp(value, SEAL_PREFIX, SEAL_PREFIX_LEN) == 0;
}

/* Encrypt a value that is not sealed yet, creating the default key if need be. */
char *
webhook_seal_value(const char *plain)
{
	unsigned char iv[IV_LEN];
	size_t		len = strlen(plain);
	unsigned char *buf;
	EVP_CIPHER_CTX *ctx;
	int			outl = 0,
				finl = 0;
	char	   *b64;
	int			b64len;

	if (webhook_is_sealed(plain))
		return pstrdup(plain);
	load_master_key(true);

	buf = palloc(IV_LEN + len + TAG_LEN);
	if (!pg_strong_random(iv, IV_LEN))
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate an IV")));
	memcpy(buf, iv, IV_LEN);
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL ||
		EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, master_key, iv) != 1 ||
		EVP_EncryptUpdate(ctx, buf + IV_LEN, &outl, (const unsigned char *) plain, len) != 1 ||
		EVP_EncryptFinal_ex(ctx, buf + IV_LEN + outl, &finl) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + IV_LEN + outl + finl) != 1)
	{
		EVP_CIPHER_CTX_free(ctx);
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not encrypt a secret")));
	}
	EVP_CIPHER_CTX_free(ctx);

	b64len = pg_b64_enc_len(IV_LEN + outl + finl + TAG_LEN);
	b64 = palloc(SEAL_PREFIX_LEN + b64len + 1);
	memcpy(b64, SEAL_PREFIX, SEAL_PREFIX_LEN);
	b64len = pg_b64_encode((char *) buf, IV_LEN + outl + finl + TAG_LEN, b64 + SEAL_PREFIX_LEN, b64len);
	b64[SEAL_PREFIX_LEN + b64len] = '\0';
	pfree(buf);
	return b64;
}

/* Decrypt a sealed value; other values are returned unchanged. */
char *
webhook_unseal_value(const char *value)
{
	const char *b64 = value + SEAL_PREFIX_LEN;
	int			b64len;
	unsigned char *raw;
	int			rawlen;
	char	   *plain;
	EVP_CIPHER_CTX *ctx;
	int			outl = 0,
				finl = 0;
	bool		ok;

	if (!webhook_is_sealed(value))
		return pstrdup(value);
	load_master_key(false);

	b64len = strlen(b64);
	raw = palloc(pg_b64_dec_len(b64len) + 1);
	rawlen = pg_b64_decode(b64, b64len, (char *) raw, pg_b64_dec_len(b64len) + 1);
	if (rawlen < IV_LEN + TAG_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("an encrypted webhook secret is malformed")));
	plain = palloc(rawlen - IV_LEN - TAG_LEN + 1);
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx != NULL &&
		EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, master_key, raw) == 1 &&
		EVP_DecryptUpdate(ctx, (unsigned char *) plain, &outl, raw + IV_LEN, rawlen - IV_LEN - TAG_LEN) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + rawlen - TAG_LEN) == 1 &&
		EVP_DecryptFinal_ex(ctx, (unsigned char *) plain + outl, &finl) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not decrypt a webhook secret"),
				 errdetail("The webhook master key file is not the one the secret was encrypted with.")));
	plain[outl + finl] = '\0';
	return plain;
}

/* SQL: webhook._seal(value) */
Datum
webhook_seal(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(webhook_seal_value(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}

/* SQL: webhook._unseal(value) */
Datum
webhook_unseal(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(webhook_unseal_value(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}

/* The master key setting, defined with the other settings. */
void
WebhookSealingGucInit(void)
{
	DefineCustomStringVariable("webhook.master_key_file",
							   gettext_noop("File holding the 256-bit key that encrypts webhook secrets at rest."),
							   gettext_noop("Empty: webhook_master.key in the data directory, created on first use."),
							   &webhook_master_key_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
}
