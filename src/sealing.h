/*
 * sealing.h
 *		AES-256-GCM encryption of secrets at rest under a master key file.
 */
#ifndef WEBHOOK_SEALING_H
#define WEBHOOK_SEALING_H

extern char *webhook_master_key_file;

extern void WebhookSealingGucInit(void);
extern bool webhook_is_sealed(const char *value);
extern char *webhook_seal_value(const char *plain);
extern char *webhook_unseal_value(const char *value);
extern bool webhook_master_key_unchanged(void);
extern uint64 webhook_master_key_generation(void);

#endif							/* WEBHOOK_SEALING_H */
