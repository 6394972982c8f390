/*
 * netguard.c
 *      Destination-address policy for outgoing webhook connections.
 *
 * Why this exists: a webhook URL is user-supplied, so without a guard the
 * background worker can be pointed at the database host itself
 * (127.0.0.1:5432), the internal network, or a cloud metadata service
 * (169.254.169.254) -- classic server-side request forgery.  Checking the URL
 * text is not enough (DNS can resolve anything, and hosts can be spelled as
 * "0x7f.1", "::ffff:127.0.0.1", "2002:7f00:1::", ...), so the authoritative
 * check is netguard_check() on the socket address libcurl is about to connect
 * to, called from its opensocket callback for every connection attempt,
 * including redirects.
 *
 * Constraints: plain C, no PostgreSQL headers, no allocation, no ereport or
 * longjmp (we run inside libcurl callbacks), no global state, no locale
 * dependent ctype calls, and every input path is bounded so that the file can
 * be fuzzed on its own.  See netguard.h for the API contract.
 */
#include "netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Longest allowlist token we accept ("ffff:...:255.255.255.255/128" is 49). */
#define NG_MAX_TOKEN 63
/* Longest host text netguard_classify_literal looks at. */
#define NG_MAX_HOST 255

/* ------------------------------------------------------------------------
 * IPv4 classification
 * ------------------------------------------------------------------------ */

typedef struct V4Range
{
	uint32_t	net;			/* host byte order */
	int			len;
	const char *klass;
} V4Range;

/*
 * Special-purpose IPv4 ranges (IANA IPv4 Special-Purpose Address Registry
 * plus cloud metadata endpoints).  First match wins, so exact addresses that
 * sit inside wider blocks come first.
 */
static const V4Range v4_ranges[] = {
	{0x00000000u, 32, "unspecified"},	/* 0.0.0.0 (connects to localhost) */
	{0xFFFFFFFFu, 32, "broadcast"}, /* 255.255.255.255 */
	{0x646464C8u, 32, "metadata"},	/* 100.100.100.200 Alibaba Cloud */
	{0xA83F8110u, 32, "metadata"},	/* 168.63.129.16 Azure WireServer */
	{0x00000000u, 8, "reserved"},	/* 0/8 "this network" */
	{0x0A000000u, 8, "private"},	/* 10/8 */
	{0x64400000u, 10, "shared"},	/* 100.64/10 CGNAT */
	{0x7F000000u, 8, "loopback"},	/* 127/8 */
	{0xA9FE0000u, 16, "link-local"},	/* 169.254/16, incl. .169.254 IMDS */
	{0xAC100000u, 12, "private"},	/* 172.16/12 */
	{0xC0000000u, 24, "reserved"},	/* 192.0.0/24 IETF protocol assign. */
	{0xC0000200u, 24, "reserved"},	/* 192.0.2/24 TEST-NET-1 */
	{0xC0586300u, 24, "reserved"},	/* 192.88.99/24 6to4 relay (depr.) */
	{0xC0A80000u, 16, "private"},	/* 192.168/16 */
	{0xC6120000u, 15, "reserved"},	/* 198.18/15 benchmarking */
	{0xC6336400u, 24, "reserved"},	/* 198.51.100/24 TEST-NET-2 */
	{0xCB007100u, 24, "reserved"},	/* 203.0.113/24 TEST-NET-3 */
	{0xE0000000u, 4, "multicast"},	/* 224/4 */
	{0xF0000000u, 4, "reserved"},	/* 240/4 future use */
};

static uint32_t
v4_mask(int len)
{
	return len <= 0 ? 0 : (len >= 32 ? 0xFFFFFFFFu : 0xFFFFFFFFu << (32 - len));
}

/*
 * Classify 4 bytes of IPv4 address in network order.  Shared by the AF_INET
 * path and by every IPv6 form that embeds an IPv4 address, so that all
 * spellings of e.g. 10.0.0.1 end up with the same answer.
 */
static const char *
classify_v4(const unsigned char *b)
{
	uint32_t	a;
	size_t		i;

	a = ((uint32_t) b[0] << 24) | ((uint32_t) b[1] << 16) |
		((uint32_t) b[2] << 8) | (uint32_t) b[3];
	for (i = 0; i < sizeof(v4_ranges) / sizeof(v4_ranges[0]); i++)
	{
		if ((a & v4_mask(v4_ranges[i].len)) == v4_ranges[i].net)
			return v4_ranges[i].klass;
	}
	return NULL;
}

/* ------------------------------------------------------------------------
 * IPv6 classification
 * ------------------------------------------------------------------------ */

static bool
all_zero(const unsigned char *p, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static bool
is_v4_mapped(const unsigned char *a)
{
	return all_zero(a, 10) && a[10] == 0xff && a[11] == 0xff;
}

/*
 * 64:ff9b:1::/48 is the RFC 8215 local-use NAT64 prefix.  The operator picks
 * the actual prefix length (/48, /56, /64 or /96 under it), and RFC 6052 puts
 * the IPv4 address at a different position for each, skipping the "u" octet
 * (byte 8).  We cannot know which one the local translator uses, so we test
 * every position and refuse if any of them is non-public.  Positions whose
 * first octet is zero are skipped: they mostly read the zero padding of
 * another layout (64:ff9b:1::8.8.8.8 read as /48 gives 0.0.0.0, and the /48
 * form of 8.8.8.8 read as /96 gives 0.0.0.0), and translators do not forward
 * to 0/8.  If every position is skipped the address is "reserved".
 */
static const char *
classify_nat64_local(const unsigned char *a)
{
	static const unsigned char pos[4][4] = {
		{12, 13, 14, 15},		/* /96 */
		{6, 7, 9, 10},			/* /48 */
		{7, 9, 10, 11},			/* /56 */
		{9, 10, 11, 12},		/* /64 */
	};
	const char *k;
	unsigned char v4[4];
	bool		any = false;
	int			i,
				j;

	for (i = 0; i < 4; i++)
	{
		for (j = 0; j < 4; j++)
			v4[j] = a[pos[i][j]];
		if (v4[0] == 0)
			continue;
		any = true;
		k = classify_v4(v4);
		if (k != NULL)
			return k;
	}
	return any ? NULL : "reserved";
}

/*
 * Classify 16 bytes of IPv6 address.  Only 2000::/3 is allocated global
 * unicast; the special forms inside ::/8 that carry an IPv4 address are
 * reduced to the IPv4 verdict, and anything else unallocated is "reserved".
 */
static const char *
classify_v6(const unsigned char *a)
{
	static const unsigned char nat64_wkp[12] =
	{0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	static const unsigned char nat64_local[6] =
	{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
	static const unsigned char aws_imds[16] =
	{0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
	const char *k;

	if (a[0] == 0x00)
	{
		if (all_zero(a, 15) && a[15] == 0)
			return "unspecified";	/* ::/128 */
		if (all_zero(a, 15) && a[15] == 1)
			return "loopback";	/* ::1/128 */
		if (is_v4_mapped(a))
			return classify_v4(a + 12); /* ::ffff:0:0/96 */
		if (all_zero(a, 12) ||	/* ::/96 IPv4-compatible */
			(all_zero(a, 8) && a[8] == 0xff && a[9] == 0xff &&
			 a[10] == 0 && a[11] == 0)) /* ::ffff:0:0:0/96 SIIT */
		{
			/* Deprecated/translator-only forms: never a legitimate target. */
			k = classify_v4(a + 12);
			return k != NULL ? k : "reserved";
		}
		if (memcmp(a, nat64_wkp, sizeof(nat64_wkp)) == 0)
			return classify_v4(a + 12); /* 64:ff9b::/96 */
		if (memcmp(a, nat64_local, sizeof(nat64_local)) == 0)
			return classify_nat64_local(a); /* 64:ff9b:1::/48 */
		return "reserved";		/* rest of ::/8 */
	}
	if (memcmp(a, aws_imds, sizeof(aws_imds)) == 0)
		return "metadata";		/* fd00:ec2::254 */
	if ((a[0] & 0xfe) == 0xfc)
		return "unique-local";	/* fc00::/7 */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return "link-local";	/* fe80::/10 */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
		return "private";		/* fec0::/10 site-local */
	if (a[0] == 0xff)
		return "multicast";		/* ff00::/8 */
	if ((a[0] & 0xe0) != 0x20)
		return "reserved";		/* outside 2000::/3 */
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8)
		return "reserved";		/* 2001:db8::/32 doc */
	if (a[0] == 0x20 && a[1] == 0x01 && (a[2] & 0xfe) == 0x00)
		return "reserved";		/* 2001::/23 incl. Teredo */
	if (a[0] == 0x20 && a[1] == 0x02)
		return classify_v4(a + 2);	/* 2002::/16 6to4 */
	if (a[0] == 0x3f && a[1] == 0xff && (a[2] & 0xf0) == 0x00)
		return "reserved";		/* 3fff::/20 doc */
	return NULL;
}

/*
 * Copy the IP address out of a sockaddr without assuming alignment (the
 * buffer may come from libcurl or a fuzzer).  Returns false for NULL or a
 * non-IP family.
 */
static bool
sockaddr_extract(const struct sockaddr *sa, int *family, unsigned char *addr)
{
	sa_family_t fam;

	if (sa == NULL)
		return false;
	memcpy(&fam, (const char *) sa + offsetof(struct sockaddr, sa_family),
		   sizeof(fam));
	if (fam == AF_INET)
	{
		struct sockaddr_in sin;

		memcpy(&sin, sa, sizeof(sin));
		memset(addr, 0, 16);
		memcpy(addr, &sin.sin_addr, 4);
		*family = AF_INET;
		return true;
	}
	if (fam == AF_INET6)
	{
		struct sockaddr_in6 sin6;

		memcpy(&sin6, sa, sizeof(sin6));
		memcpy(addr, &sin6.sin6_addr, 16);
		*family = AF_INET6;
		return true;
	}
	return false;
}

/*
 * Why: this is the single source of truth for "is this destination
 * internal?".  It works on the resolved sockaddr so that DNS names, odd
 * literal spellings and IPv6 encodings of IPv4 addresses all reduce to the
 * same decision.  Unknown families are reported as "unsupported" so callers
 * fail closed.
 */
const char *
netguard_classify(const struct sockaddr *sa)
{
	int			family;
	unsigned char addr[16];

	if (!sockaddr_extract(sa, &family, addr))
		return "unsupported";
	if (family == AF_INET)
		return classify_v4(addr);
	return classify_v6(addr);
}

/* ------------------------------------------------------------------------
 * Allowlist
 * ------------------------------------------------------------------------ */

static void
			set_err(char *errbuf, size_t errlen, const char *fmt,...)
#if defined(__GNUC__) || defined(__clang__)
			__attribute__((format(printf, 3, 4)))
#endif
		   ;

static void
set_err(char *errbuf, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

static bool
is_list_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		c == '\f' || c == '\v';
}

/* Printable, bounded copy of a token for error messages. */
static void
display_token(const char *tok, size_t len, char *out, size_t outlen)
{
	size_t		i,
				n;

	n = len < outlen - 4 ? len : outlen - 4;
	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) tok[i];

		out[i] = (c < 0x20 || c >= 0x7f || c == '"') ? '?' : (char) c;
	}
	if (n < len)
	{
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/*
 * Parse one "addr[/len]" token (already known to be <= NG_MAX_TOKEN bytes).
 * Returns 0 on success, 1 for a syntax/range error, 2 for host bits set.
 */
static int
parse_network(const char *tok, size_t len, NetGuardNetwork *net)
{
	char		buf[NG_MAX_TOKEN + 1];
	char	   *slash;
	int			maxbits;
	int			prefix;
	int			i;

	memcpy(buf, tok, len);
	buf[len] = '\0';

	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';

	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, buf, net->addr) == 1)
	{
		net->family = AF_INET;
		maxbits = 32;
	}
	else if (inet_pton(AF_INET6, buf, net->addr) == 1)
	{
		net->family = AF_INET6;
		maxbits = 128;
	}
	else
		return 1;

	prefix = maxbits;
	if (slash != NULL)
	{
		const char *p = slash + 1;

		if (*p == '\0' || strlen(p) > 3)
			return 1;
		prefix = 0;
		for (; *p; p++)
		{
			if (*p < '0' || *p > '9')
				return 1;
			prefix = prefix * 10 + (*p - '0');
		}
		if (prefix > maxbits)
			return 1;
	}

	/* Refuse host bits right of the prefix, like PostgreSQL's cidr type. */
	for (i = 0; i < maxbits / 8; i++)
	{
		int			keep = prefix - i * 8;
		unsigned char mask;

		if (keep >= 8)
			continue;
		mask = keep <= 0 ? 0 : (unsigned char) (0xFF << (8 - keep));
		if ((net->addr[i] & ~mask) != 0)
			return 2;
	}
	net->prefix_len = prefix;

	/* ::ffff:a.b.c.d/N with N >= 96 is an IPv4 network; store it as such. */
	if (net->family == AF_INET6 && prefix >= 96 && is_v4_mapped(net->addr))
	{
		memmove(net->addr, net->addr + 12, 4);
		memset(net->addr + 4, 0, 12);
		net->family = AF_INET;
		net->prefix_len = prefix - 96;
	}
	return 0;
}

/*
 * Why: administrators need narrow exceptions (an internal receiver on
 * 10.1.2.3, a local test server on 127.0.0.1) without turning the guard off
 * with allow_private.  This is intended to run from a GUC check hook, so it
 * reports errors through errbuf instead of ereport, and it only commits to
 * *policy when the whole list is valid, so a bad setting never leaves a
 * half-parsed allowlist behind.
 */
bool
netguard_parse_allowlist(const char *list, NetGuardPolicy *policy,
						 char *errbuf, size_t errlen)
{
	NetGuardNetwork nets[NETGUARD_MAX_NETWORKS];
	int			n = 0;
	const char *p = list;
	char		shown[NG_MAX_TOKEN + 8];

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (policy == NULL)
	{
		set_err(errbuf, errlen, "no policy to fill");
		return false;
	}

	while (p != NULL && *p != '\0')
	{
		const char *start;
		size_t		len;
		int			rc;

		while (*p != '\0' && is_list_sep(*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && !is_list_sep(*p))
			p++;
		len = (size_t) (p - start);

		if (n >= NETGUARD_MAX_NETWORKS)
		{
			set_err(errbuf, errlen, "too many networks (max %d)",
					NETGUARD_MAX_NETWORKS);
			return false;
		}
		display_token(start, len, shown, sizeof(shown));
		if (len > NG_MAX_TOKEN)
		{
			set_err(errbuf, errlen, "invalid network \"%s\"", shown);
			return false;
		}
		rc = parse_network(start, len, &nets[n]);
		if (rc == 1)
		{
			set_err(errbuf, errlen, "invalid network \"%s\"", shown);
			return false;
		}
		if (rc == 2)
		{
			set_err(errbuf, errlen, "invalid network \"%s\": host bits set",
					shown);
			return false;
		}
		n++;
	}

	memcpy(policy->allowed, nets, (size_t) n * sizeof(nets[0]));
	policy->n_allowed = n;
	return true;
}

static bool
network_contains(const NetGuardNetwork *net, int family,
				 const unsigned char *addr)
{
	int			maxbits = family == AF_INET ? 32 : 128;
	int			full,
				rem;

	/* Policies may be built by hand; never trust prefix_len blindly. */
	if (net->family != family || net->prefix_len < 0 ||
		net->prefix_len > maxbits)
		return false;
	full = net->prefix_len / 8;
	rem = net->prefix_len % 8;
	if (memcmp(net->addr, addr, (size_t) full) != 0)
		return false;
	if (rem != 0)
	{
		unsigned char mask = (unsigned char) (0xFF << (8 - rem));

		return (addr[full] & mask) == (net->addr[full] & mask);
	}
	return true;
}

static bool
policy_allows(const NetGuardPolicy *policy, int family,
			  const unsigned char *addr)
{
	int			i,
				n;

	n = policy->n_allowed;
	if (n < 0)
		n = 0;
	if (n > NETGUARD_MAX_NETWORKS)
		n = NETGUARD_MAX_NETWORKS;
	for (i = 0; i < n; i++)
	{
		if (network_contains(&policy->allowed[i], family, addr))
			return true;
		/* ::ffff:a.b.c.d is the same host as a.b.c.d on a dual-stack socket */
		if (family == AF_INET6 && is_v4_mapped(addr) &&
			network_contains(&policy->allowed[i], AF_INET, addr + 12))
			return true;
	}
	return false;
}

/*
 * Why: the connect-time decision, called for every address libcurl tries.
 * Public addresses always pass; internal ones pass only if the operator has
 * opted in globally (allow_private) or for that network (allowlist).  The
 * returned class name goes straight into the error the user sees.  A NULL
 * or non-IP sockaddr is refused even with allow_private: we only know how
 * to reason about IP destinations, so anything else fails closed.
 */
const char *
netguard_check(const NetGuardPolicy *policy, const struct sockaddr *sa)
{
	int			family;
	unsigned char addr[16];
	const char *k;

	if (!sockaddr_extract(sa, &family, addr))
		return "unsupported";
	k = family == AF_INET ? classify_v4(addr) : classify_v6(addr);
	if (k == NULL || policy == NULL)
		return k;
	if (policy->allow_private)
		return NULL;
	if (policy_allows(policy, family, addr))
		return NULL;
	return k;
}

/* ------------------------------------------------------------------------
 * Literal hosts
 * ------------------------------------------------------------------------ */

static int
digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * One inet_aton component: decimal, 0-prefixed octal or 0x-prefixed hex.
 * Never wraps: values above 2^32-1 are reported as failure.
 */
static bool
parse_v4_part(const char *s, size_t len, uint64_t *out)
{
	unsigned	base = 10;
	uint64_t	v = 0;
	size_t		i;

	if (len == 0)
		return false;
	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
	{
		base = 16;
		s += 2;
		len -= 2;				/* "0x" alone reads as 0, like WHATWG URL */
	}
	else if (len >= 2 && s[0] == '0')
	{
		base = 8;
		s++;
		len--;
	}
	for (i = 0; i < len; i++)
	{
		int			d = digit_value(s[i]);

		if (d < 0 || (unsigned) d >= base)
			return false;
		v = v * base + (unsigned) d;
		if (v > 0xFFFFFFFFu)
			return false;
	}
	*out = v;
	return true;
}

/*
 * IPv4 in any inet_aton(3) form: a, a.b (8.24), a.b.c (8.8.16), a.b.c.d,
 * each part decimal/octal/hex, plus one optional trailing dot.
 */
static bool
parse_v4_literal(const char *s, size_t len, unsigned char *out)
{
	uint64_t	parts[4];
	int			n = 0;
	size_t		i,
				start = 0;
	uint64_t	v;
	int			lastbits;

	if (len > 1 && s[len - 1] == '.')
		len--;
	if (len == 0)
		return false;
	for (i = 0; i <= len; i++)
	{
		if (i == len || s[i] == '.')
		{
			if (n == 4)
				return false;
			if (!parse_v4_part(s + start, i - start, &parts[n]))
				return false;
			n++;
			start = i + 1;
		}
	}
	for (i = 0; i + 1 < (size_t) n; i++)
		if (parts[i] > 0xFF)
			return false;
	lastbits = 8 * (5 - n);
	if (lastbits < 32 && parts[n - 1] >= ((uint64_t) 1 << lastbits))
		return false;

	v = parts[n - 1];
	for (i = 0; i + 1 < (size_t) n; i++)
		v |= parts[i] << (24 - 8 * i);
	out[0] = (unsigned char) (v >> 24);
	out[1] = (unsigned char) (v >> 16);
	out[2] = (unsigned char) (v >> 8);
	out[3] = (unsigned char) v;
	return true;
}

/*
 * Why: lets the extension reject "http://127.1/" or "http://[::1]/" at
 * enqueue time with a clear message, instead of only failing later in the
 * worker.  It accepts every IPv4 spelling that curl's URL parser or the libc
 * resolver might turn into an address, because a spelling we did not
 * recognise would slip past this early check.  It is a convenience only:
 * hostnames return false here and are enforced by netguard_check() at
 * connect time.
 */
bool
netguard_classify_literal(const char *host, const char **klass)
{
	char		buf[INET6_ADDRSTRLEN + 1];
	const char *s;
	size_t		len;
	size_t		i;
	unsigned char addr[16];

	if (klass != NULL)
		*klass = NULL;
	if (host == NULL)
		return false;
	for (len = 0; len <= NG_MAX_HOST && host[len] != '\0'; len++)
		;
	if (len == 0 || len > NG_MAX_HOST)
		return false;

	s = host;
	if (s[0] == '[')
	{
		if (len < 3 || s[len - 1] != ']')
			return false;
		s++;
		len -= 2;
	}
	else if (memchr(s, ':', len) == NULL)
	{
		if (!parse_v4_literal(s, len, addr))
			return false;
		if (klass != NULL)
			*klass = classify_v4(addr);
		return true;
	}

	/* IPv6: drop a zone id ("%eth0" or URL-encoded "%25eth0"). */
	for (i = 0; i < len; i++)
		if (s[i] == '%')
			break;
	len = i;
	if (len == 0 || len >= sizeof(buf) || memchr(s, ']', len) != NULL)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET6, buf, addr) != 1)
		return false;
	if (klass != NULL)
		*klass = classify_v6(addr);
	return true;
}
