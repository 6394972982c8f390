/*
 * module.c
 *		Module load: the settings, and one Init call per subsystem that needs
 *		hooks, shared memory or a background worker.
 *
 * The SQL functions work whether or not the library is preloaded; delivery
 * needs shared_preload_libraries = 'webhook' so that the launcher can run.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "launcher.h"
#include "netguard.h"
#include "proxy.h"
#include "schedule.h"
#include "sealing.h"
#include "shmem.h"
#include "transform.h"
#include "wake.h"
#include "webhook.h"

PG_MODULE_MAGIC;

int			webhook_max_in_flight = 512;
int			webhook_max_in_flight_per_endpoint = 64;
int			webhook_batch_size = 500;
int			webhook_workers = 1;
int			webhook_connect_timeout_ms = 5000;
int			webhook_response_body_limit_kb = 4;
double		webhook_retry_delay_scale = 1.0;
bool		webhook_allow_private_networks = false;
char	   *webhook_allowed_networks = NULL;
bool		webhook_require_https = false;
int			webhook_max_payload_bytes = 1024 * 1024;
bool		webhook_strict_event_types = false;
int			webhook_disable_after_s = 5 * 24 * 3600;
int			webhook_retention_succeeded_s = 7 * 24 * 3600;
int			webhook_retention_failed_s = 30 * 24 * 3600;
int			webhook_transform_timeout_ms = 1000;
int			webhook_record_delay_ms = SCHEDULE_RECORD_GATHER_MS;

void		_PG_init(void);

/* Refuse a list of networks that does not parse, when it is set. */
static bool
check_allowed_networks(char **newval, void **extra, GucSource source)
{
	NetGuardPolicy policy;
	char		errbuf[128];

	if (netguard_parse_allowlist(*newval ? *newval : "", &policy, errbuf, sizeof(errbuf)))
		return true;
	GUC_check_errdetail("%s", errbuf);
	GUC_check_errhint("Give networks in CIDR form, comma separated, such as 10.0.0.0/8, 127.0.0.1/32.");
	return false;
}

/* Settings are defined in every process so that SET and SHOW work anywhere. */
static void
WebhookGucInit(void)
{
	DefineCustomIntVariable("webhook.max_in_flight",
							gettext_noop("Maximum number of requests a delivery worker has in flight at once."),
							NULL, &webhook_max_in_flight, 512, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("webhook.max_in_flight_per_endpoint",
							gettext_noop("Default maximum number of requests in flight to one endpoint."),
							gettext_noop("An endpoint's max_in_flight column overrides it."),
							&webhook_max_in_flight_per_endpoint, 64, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("webhook.batch_size",
							gettext_noop("Maximum number of deliveries claimed or recorded in one transaction."),
							NULL, &webhook_batch_size, 500, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("webhook.connect_timeout_ms",
							gettext_noop("Time allowed to connect to a receiver."),
							NULL, &webhook_connect_timeout_ms, 5000, 1, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("webhook.response_body_limit_kb",
							gettext_noop("How much of each response body is kept in webhook.delivery_log."),
							NULL, &webhook_response_body_limit_kb, 4, 0, 1024,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomRealVariable("webhook.retry_delay_scale",
							 gettext_noop("Factor applied to every retry delay."),
							 gettext_noop("Tests set it below 1 to run the retry schedule in less time."),
							 &webhook_retry_delay_scale, 1.0, 0.0, 1000.0,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("webhook.allow_private_networks",
							 gettext_noop("Allow requests to loopback, private, link-local and other non-public addresses."),
							 NULL, &webhook_allow_private_networks, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("webhook.allowed_networks",
							   gettext_noop("Non-public networks that requests may reach, in CIDR form, comma separated."),
							   NULL, &webhook_allowed_networks, "",
							   PGC_SUSET, 0, check_allowed_networks, NULL, NULL);
	DefineCustomBoolVariable("webhook.require_https",
							 gettext_noop("Refuse endpoints with plain http URLs."),
							 NULL, &webhook_require_https, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("webhook.max_payload_bytes",
							gettext_noop("Largest payload that webhook.send accepts."),
							NULL, &webhook_max_payload_bytes, 1024 * 1024, 1, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("webhook.strict_event_types",
							 gettext_noop("Refuse events whose type is not in webhook.event_types."),
							 NULL, &webhook_strict_event_types, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("webhook.disable_after",
							gettext_noop("Deactivate an endpoint whose deliveries have all failed for this long."),
							gettext_noop("0 never deactivates."),
							&webhook_disable_after_s, 5 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("webhook.retention_succeeded",
							gettext_noop("Age after which succeeded deliveries, their log and events are deleted."),
							gettext_noop("0 keeps them."),
							&webhook_retention_succeeded_s, 7 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("webhook.retention_failed",
							gettext_noop("Age after which failed deliveries and their log are deleted."),
							gettext_noop("0 keeps them."),
							&webhook_retention_failed_s, 30 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	/*
	 * A batch's transforms take at most twice this limit and the grace after
	 * a cancel (transform.c), which must stay well within the claim's lease
	 * margin (30 s): hence at most 10 s.
	 */
	DefineCustomIntVariable("webhook.transform_timeout_ms",
							gettext_noop("Longest an endpoint's transform may run for one delivery."),
							gettext_noop("A transform that runs longer fails its delivery; transforms that "
										 "do not start within this time of the first go back to the queue. "
										 "One that catches its cancel and runs on for another second ends "
										 "the delivery worker, and is not run again until its endpoint or "
										 "its function changes."),
							&webhook_transform_timeout_ms, 1000, 1, 10000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("webhook.record_delay_ms",
							gettext_noop("Longest a delivery worker holds successes of unordered endpoints, to record them together."),
							gettext_noop("Recording waits, not requests: webhook.deliveries shows those deliveries "
										 "in flight until then. 0 records each turn's outcomes at once. A worker "
										 "stopped between turns records what it holds first."),
							&webhook_record_delay_ms, SCHEDULE_RECORD_GATHER_MS, 0, SCHEDULE_RECORD_GATHER_MAX_MS,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	WebhookSealingGucInit();
	WebhookProxyGucInit();

	/*
	 * Only while preloading: PostgreSQL ends the session (FATAL) when a
	 * library loaded later defines a PGC_POSTMASTER setting, and only the
	 * preloaded library starts workers.  Before the prefix is reserved, which
	 * would drop the placeholder that postgresql.conf made.
	 */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("webhook.workers",
								gettext_noop("Number of delivery workers per database."),
								gettext_noop("Each endpoint is delivered by one of them (webhook._worker_of); each has webhook.max_in_flight of its own."),
								&webhook_workers, 1, 1, WEBHOOK_MAX_WORKERS,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);

	MarkGUCPrefixReserved("webhook");
}

/* Entry point: settings everywhere; shared memory and launcher when preloaded. */
void
_PG_init(void)
{
	WebhookGucInit();
	WebhookWakeInit();

	if (!process_shared_preload_libraries_in_progress)
		return;

	WebhookShmemInit();
	WebhookLauncherRegister();
}
