/*
 * validate.c
 *		Checks on endpoint URLs, made with libcurl's own URL parser so that
 *		what is accepted at INSERT time is exactly what curl will request.
 */
#include "postgres.h"

#include <netdb.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "netguard.h"
#include "validate.h"
#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_url_problem);

/*
 * The network policy from the current settings.  Returns false, with the
 * reason in errbuf, when webhook.allowed_networks cannot be parsed.
 */
bool
webhook_current_policy(NetGuardPolicy *policy, char *errbuf, size_t errlen)
{
	memset(policy, 0, sizeof(*policy));
	if (!netguard_parse_allowlist(webhook_allowed_networks ? webhook_allowed_networks : "",
								  policy, errbuf, errlen))
		return false;
	policy->allow_private = webhook_allow_private_networks;
	return true;
}

/*
 * A host written as an IP address is checked against the network policy at
 * INSERT time already; names are checked when curl connects.
 */
static const char *
literal_host_problem(const char *host)
{
	const char *klass = NULL;
	NetGuardPolicy policy;
	char		errbuf[128];
	char		bare[256];
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	size_t		len = strlen(host);

	if (!netguard_classify_literal(host, &klass) || klass == NULL)
		return NULL;
	if (!webhook_current_policy(&policy, errbuf, sizeof(errbuf)))
		return psprintf("The host is a non-public address (%s) and webhook.allowed_networks is invalid: %s.", klass, errbuf);
	if (policy.allow_private)
		return NULL;

	/* Allowed networks need the address itself. */
	if (host[0] == '[' && len >= 2 && len - 2 < sizeof(bare))
	{
		memcpy(bare, host + 1, len - 2);
		bare[len - 2] = '\0';
	}
	else
		strlcpy(bare, host, sizeof(bare));
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(bare, NULL, &hints, &res) == 0 && res != NULL)
	{
		klass = netguard_check(&policy, res->ai_addr);
		freeaddrinfo(res);
		if (klass == NULL)
			return NULL;
	}
	return psprintf("The host is a non-public address (%s), which webhooks may not reach.", klass);
}

/* A sentence for each way curl's parser refuses a URL. */
static const char *
parse_problem(CURLUcode rc)
{
	switch (rc)
	{
		case CURLUE_NO_HOST:
			return "The URL has no host.";
		case CURLUE_BAD_PORT_NUMBER:
			return "The URL's port is not a number between 1 and 65535.";
		case CURLUE_BAD_IPV6:
			return "The URL's IPv6 address is malformed.";
		case CURLUE_BAD_HOSTNAME:
			return "The URL's host name contains characters that are not allowed.";
		case CURLUE_BAD_PATH:
		case CURLUE_MALFORMED_INPUT:
			return "The URL contains spaces or control characters; percent-encode them.";
		case CURLUE_UNSUPPORTED_SCHEME:
			return "Only http and https URLs are allowed.";
		default:
			return "It is not an absolute URL starting with http:// or https://.";
	}
}

/*
 * Why a URL cannot be a webhook target, or NULL.  The reasons are full
 * sentences, shown as the DETAIL of the endpoint trigger's error.
 */
const char *
webhook_url_problem_text(const char *url)
{
	CURLU	   *handle = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *user = NULL;
	char	   *password = NULL;
	const char *problem = NULL;
	const char *authority;
	CURLUcode	rc;

	if (handle == NULL)
		return "The URL parser could not be started.";

	if ((rc = curl_url_set(handle, CURLUPART_URL, url, 0)) != CURLUE_OK)
		problem = parse_problem(rc);
	else if (curl_url_get(handle, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
			 (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		problem = "Only http and https URLs are allowed.";
	else if ((authority = strstr(url, "://")) == NULL || authority[3] == '/' || authority[3] == '\0')
		problem = "The URL has no host.";
	else if (curl_url_get(handle, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
		problem = "The URL has no host.";
	else if (curl_url_get(handle, CURLUPART_USER, &user, 0) == CURLUE_OK ||
			 curl_url_get(handle, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK)
		problem = "The URL contains credentials.";
	else if (webhook_require_https && strcmp(scheme, "https") != 0)
		problem = "Plain http is refused because webhook.require_https is on.";
	else
		problem = literal_host_problem(host);

	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(password);
	curl_url_cleanup(handle);
	return problem;
}

/* SQL: webhook._url_problem(url), used by the endpoints trigger. */
Datum
webhook_url_problem(PG_FUNCTION_ARGS)
{
	const char *problem = webhook_url_problem_text(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	if (problem == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(problem));
}
