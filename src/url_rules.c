/*
 * url_rules.c
 *		The rules for endpoint URLs in plain C, made with libcurl's own URL
 *		parser so that what is accepted at INSERT time is exactly what curl
 *		will request.  No palloc or ereport: url_policy.c applies them under
 *		the current settings for SQL, and test/fuzz drives them directly.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "url_rules.h"

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
 * A host written as an IP address is checked against the network policy at
 * INSERT time already; names are checked when curl connects.
 */
static const char *
literal_host_problem(const char *host, const NetGuardPolicy *policy, const char *policy_error,
					 char *buf, size_t buflen)
{
	const char *klass = NULL;
	char		bare[256];
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	size_t		len = strlen(host);

	if (!netguard_classify_literal(host, &klass) || klass == NULL)
		return NULL;
	if (policy == NULL)
	{
		snprintf(buf, buflen, "The host is a non-public address (%s) and webhook.allowed_networks is invalid: %s.",
				 klass, policy_error ? policy_error : "?");
		return buf;
	}
	if (policy->allow_private)
		return NULL;

	/* Allowed networks need the address itself. */
	if (host[0] == '[' && len >= 2 && len - 2 < sizeof(bare))
	{
		memcpy(bare, host + 1, len - 2);
		bare[len - 2] = '\0';
	}
	else
		snprintf(bare, sizeof(bare), "%s", host);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(bare, NULL, &hints, &res) == 0 && res != NULL)
	{
		klass = netguard_check(policy, res->ai_addr);
		freeaddrinfo(res);
		if (klass == NULL)
			return NULL;
	}
	snprintf(buf, buflen, "The host is a non-public address (%s), which webhooks may not reach.", klass);
	return buf;
}

/* Why a URL cannot be a webhook target, or NULL. */
const char *
webhook_url_check(const char *url, bool require_https, const NetGuardPolicy *policy,
				  const char *policy_error, char *buf, size_t buflen)
{
	CURLU	   *handle = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *user = NULL;
	char	   *password = NULL;
	char	   *port = NULL;
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
	/* curl's parser accepts port 0, where no receiver can listen */
	else if (curl_url_get(handle, CURLUPART_PORT, &port, 0) == CURLUE_OK && strtol(port, NULL, 10) == 0)
		problem = parse_problem(CURLUE_BAD_PORT_NUMBER);
	else if (curl_url_get(handle, CURLUPART_USER, &user, 0) == CURLUE_OK ||
			 curl_url_get(handle, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK)
		problem = "The URL contains credentials.";
	else if (require_https && strcmp(scheme, "https") != 0)
		problem = "Plain http is refused because webhook.require_https is on.";
	else
		problem = literal_host_problem(host, policy, policy_error, buf, buflen);

	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(password);
	curl_free(port);
	curl_url_cleanup(handle);
	return problem;
}

/*
 * Origin of a URL that curl's parser accepts, or false: scheme, host and
 * port as curl will use them, so that an '@' in the path is no user info.
 */
static bool
parsed_origin(const char *url, char *buf, size_t buflen)
{
	CURLU	   *handle = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *port = NULL;
	bool		ok;

	ok = handle != NULL &&
		curl_url_set(handle, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(handle, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(handle, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] != '\0';
	if (ok)
	{
		if (curl_url_get(handle, CURLUPART_PORT, &port, 0) != CURLUE_OK)
			port = NULL;
		snprintf(buf, buflen, "%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(handle);
	return ok;
}

/*
 * What may be shown of a URL in messages and events: scheme://host[:port].
 * User info, path, query and fragment are left out, since credentials and
 * the tokens of chat webhooks (Slack, Discord, Teams) live there.  A URL the
 * parser refuses is cut by hand, the more strictly: everything up to the last
 * '@' before any query goes, whatever a parser would make of it.
 */
void
webhook_url_origin(const char *url, char *buf, size_t buflen)
{
	const char *sep = strstr(url, "://");
	const char *rest = url;
	size_t		scheme_len = 0;
	size_t		head;

	if (parsed_origin(url, buf, buflen))
		return;
	if (sep != NULL && strcspn(url, "@/?#") >= (size_t) (sep - url))
	{
		scheme_len = sep - url + 3;
		rest = sep + 3;
	}
	head = strcspn(rest, "?#");
	for (size_t i = head; i > 0; i--)
	{
		if (rest[i - 1] == '@')
		{
			rest += i;
			break;
		}
	}
	snprintf(buf, buflen, "%.*s%.*s", (int) scheme_len, url, (int) strcspn(rest, "/?#"), rest);
}
