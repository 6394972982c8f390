/*
 * proxy_rules.c
 *		The rules for proxy URLs in plain C, made with libcurl's own URL parser
 *		so that what is accepted is exactly what curl will connect to.  No
 *		palloc or ereport: proxy.c applies them to webhook.proxy (a check
 *		hook) and to the endpoints' proxy column (a trigger).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "proxy_rules.h"
#include "url_rules.h"

/*
 * The syntax: a proxy is an origin, perhaps with credentials.  A path, query
 * or fragment would be ignored by curl, so a value holding one is a mistake
 * worth reporting.  The host of a well-formed URL goes to *origin_out as
 * "scheme://host[:port]/" for the address check.
 */
static const char *
syntax_problem(CURLU *handle, const char *proxy, char *origin, size_t origin_len)
{
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *port = NULL;
	char	   *path = NULL;
	char	   *query = NULL;
	char	   *fragment = NULL;
	const char *authority = strstr(proxy, "://");
	const char *problem = NULL;

	if (curl_url_set(handle, CURLUPART_URL, proxy, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
		problem = "It is not an absolute http:// or https:// URL without spaces or control characters.";
	else if (curl_url_get(handle, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
			 (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		problem = "Only http:// and https:// proxies are supported.";
	else if (authority == NULL || authority[3] == '/' || authority[3] == '\0' ||
			 curl_url_get(handle, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
		problem = "The proxy URL has no host.";
	else if (curl_url_get(handle, CURLUPART_PORT, &port, 0) == CURLUE_OK && strtol(port, NULL, 10) == 0)
		problem = "The proxy URL's port is not a number between 1 and 65535.";
	else if ((curl_url_get(handle, CURLUPART_PATH, &path, 0) == CURLUE_OK && strcmp(path, "/") != 0) ||
			 curl_url_get(handle, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
			 curl_url_get(handle, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK)
		problem = "A proxy URL has no path, query or fragment: give scheme, host and port only.";
	else
		snprintf(origin, origin_len, "%s://%s%s%s/", scheme, host, port ? ":" : "", port ? port : "");

	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_free(fragment);
	return problem;
}

/* Why a proxy URL cannot be used, or NULL: see proxy_rules.h. */
const char *
webhook_proxy_check(const char *proxy, bool policy_checked, const NetGuardPolicy *policy,
					const char *policy_error, char *buf, size_t buflen)
{
	CURLU	   *handle;
	char		origin[512];
	const char *problem;

	if (strlen(proxy) > WEBHOOK_PROXY_MAX_BYTES)
		return "The proxy URL is longer than 2048 bytes.";
	handle = curl_url();
	if (handle == NULL)
		return "The URL parser could not be started.";
	origin[0] = '\0';
	problem = syntax_problem(handle, proxy, origin, sizeof(origin));
	curl_url_cleanup(handle);
	if (problem != NULL || !policy_checked)
		return problem;

	/* The host by the URL rules of a receiver: its address must be allowed. */
	return webhook_url_check(origin, false, policy, policy_error, buf, buflen);
}
