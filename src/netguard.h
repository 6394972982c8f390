/*
 * netguard.h
 *      Destination-address policy for outgoing webhook connections (SSRF guard).
 *
 * This module is deliberately plain C: it includes no PostgreSQL headers and
 * never allocates, throws (ereport/elog) or longjmps.  It is called from
 * inside libcurl callbacks (CURLOPT_OPENSOCKETFUNCTION and friends), where a
 * longjmp out of libcurl would corrupt its state, and keeping it free of
 * backend dependencies also lets it be unit-tested and fuzzed standalone
 * (see test/unit/).
 *
 * All functions are reentrant and keep no global state.
 */
#ifndef NETGUARD_H
#define NETGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define NETGUARD_MAX_NETWORKS 64

/* One CIDR network.  family is AF_INET or AF_INET6; addr holds the network
 * address in network byte order (first 4 bytes for AF_INET) with all bits to
 * the right of prefix_len cleared. */
typedef struct NetGuardNetwork
{
	int			family;
	unsigned char addr[16];
	int			prefix_len;
} NetGuardNetwork;

typedef struct NetGuardPolicy
{
	bool		allow_private;	/* permit every IP destination */
	int			n_allowed;
	NetGuardNetwork allowed[NETGUARD_MAX_NETWORKS];
} NetGuardPolicy;

/*
 * Parse a comma and/or whitespace separated list of CIDRs, e.g.
 * "10.0.0.0/8, 127.0.0.1, ::1/128, fd00::/8".  A bare address means /32 or
 * /128.  An empty or NULL list yields zero networks.
 *
 * On success fills policy->n_allowed/allowed (allow_private is left alone)
 * and returns true.  On failure returns false, leaves *policy untouched and
 * writes a short lower-case reason into errbuf (if errbuf/errlen allow).
 */
extern bool netguard_parse_allowlist(const char *list, NetGuardPolicy *policy,
									 char *errbuf, size_t errlen);

/*
 * Classify a destination address.  Returns NULL for a public unicast
 * address, otherwise a static class name: "loopback", "private", "shared",
 * "link-local", "unique-local", "unspecified", "multicast", "broadcast",
 * "reserved", "metadata", or "unsupported" (NULL sa / non-IP family).
 *
 * sa must point to a complete struct sockaddr_in or sockaddr_in6 when its
 * family is AF_INET / AF_INET6; no alignment is assumed.
 */
extern const char *netguard_classify(const struct sockaddr *sa);

/*
 * Decide whether a connection to sa may proceed.  Returns NULL when allowed
 * (public address, policy->allow_private, or address inside an allowlisted
 * network); otherwise the class name from netguard_classify.  A NULL policy
 * means "no exceptions".  Non-IP families are refused even with
 * allow_private.
 */
extern const char *netguard_check(const NetGuardPolicy *policy,
								  const struct sockaddr *sa);

/*
 * Parse a URL host as an IP literal (IPv4 in any inet_aton form such as
 * "127.1", "2130706433", "0x7f.1", "0177.0.0.1", or IPv6 with or without
 * [brackets] and an optional %zone) and classify it.  Returns false if host
 * is not an IP literal (then *klass is set to NULL); otherwise true with
 * *klass as netguard_classify would return it.
 */
extern bool netguard_classify_literal(const char *host, const char **klass);

#endif							/* NETGUARD_H */
