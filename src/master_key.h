/*
 * master_key.h
 *		The master key file: the setting or the default in the data
 *		directory, created on first use (src/master_key.c).
 */
#ifndef WEBHOOK_MASTER_KEY_H
#define WEBHOOK_MASTER_KEY_H

/* Relative to the data directory, the server's working directory. */
#define WEBHOOK_DEFAULT_MASTER_KEY_FILE "webhook_master.key"

extern const char *webhook_master_key_path(bool *is_default);
extern void webhook_master_key_missing(const char *path);
extern void webhook_master_key_create(const char *path);

#endif							/* WEBHOOK_MASTER_KEY_H */
