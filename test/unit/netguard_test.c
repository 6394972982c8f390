/*
 * netguard_test.c
 *      Standalone unit test for src/netguard.c (no PostgreSQL needed).
 *
 *      make -C test/unit check        # gcc
 *      make -C test/unit check-asan   # clang, ASan + UBSan
 */
#include "../../src/netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

static int	failures = 0;
static int	checks = 0;

#define S(x) ((x) != NULL ? (x) : "(null)")

static bool
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
expect_str(const char *what, const char *got, const char *want)
{
	checks++;
	if (!same(got, want))
	{
		failures++;
		printf("FAIL %s: got %s, want %s\n", what, S(got), S(want));
	}
}

static void
expect_true(const char *what, bool cond)
{
	checks++;
	if (!cond)
	{
		failures++;
		printf("FAIL %s\n", what);
	}
}

/* Build a sockaddr from standard (inet_pton) text; false if not parseable. */
static bool
make_sa(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *) ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1)
	{
		sin->sin_family = AF_INET;
		sin->sin_port = htons(443);
		return true;
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1)
	{
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(443);
		return true;
	}
	return false;
}

/* ---------------------------------------------------------------------- */

typedef struct LitCase
{
	const char *host;
	const char *klass;			/* NULL = public */
} LitCase;

static const LitCase lit_cases[] = {
	/* public */
	{"8.8.8.8", NULL},
	{"1.1.1.1", NULL},
	{"2606:4700::1111", NULL},
	{"[2606:4700::1111]", NULL},
	{"2a00:1450:4001::1", NULL},
	{"93.184.216.34", NULL},
	{"11.0.0.1", NULL},
	{"100.63.255.255", NULL},
	{"100.128.0.0", NULL},
	{"172.15.255.255", NULL},
	{"172.32.0.1", NULL},
	{"223.255.255.255", NULL},
	{"::ffff:8.8.8.8", NULL},
	{"64:ff9b::8.8.8.8", NULL},
	{"64:ff9b:1::8.8.8.8", NULL},
	{"64:ff9b:1:808:8:800::", NULL},	/* /48 layout of 8.8.8.8 */
	{"2002:808:808::1", NULL},
	{"0x08.0x08.0x08.0x08", NULL},
	{"134744072", NULL},		/* 8.8.8.8 */

	/* loopback, in every spelling */
	{"127.0.0.1", "loopback"},
	{"127.255.255.254", "loopback"},
	{"127.1", "loopback"},
	{"127.0.1", "loopback"},
	{"2130706433", "loopback"},
	{"0x7f.1", "loopback"},
	{"0x7F000001", "loopback"},
	{"0177.0.0.1", "loopback"},
	{"127.0.0.1.", "loopback"},
	{"::1", "loopback"},
	{"[::1]", "loopback"},
	{"0:0:0:0:0:0:0:1", "loopback"},
	{"::ffff:127.0.0.1", "loopback"},
	{"[::ffff:7f00:1]", "loopback"},
	{"64:ff9b::127.0.0.1", "loopback"},
	{"2002:7f00:1::", "loopback"},

	/* private */
	{"10.0.0.1", "private"},
	{"10.255.255.255", "private"},
	{"012.0.0.1", "private"},	/* octal 10.0.0.1 */
	{"172.16.0.1", "private"},
	{"172.31.255.255", "private"},
	{"192.168.1.1", "private"},
	{"fec0::1", "private"},
	{"::ffff:10.0.0.1", "private"},
	{"::ffff:c0a8:101", "private"},
	{"::10.0.0.1", "private"},	/* IPv4-compatible */
	{"::ffff:0:10.0.0.1", "private"},	/* SIIT */
	{"2002:c0a8:101::1", "private"},
	{"2002:ac10::", "private"},
	{"64:ff9b::10.0.0.1", "private"},
	{"64:ff9b::c0a8:1", "private"},
	{"64:ff9b:1::10.0.0.1", "private"},
	{"64:ff9b:1:a00:0:100::", "private"},	/* /48 layout of 10.0.0.1 */
	{"64:ff9b:1:a:0:1::", "private"},	/* /56 layout of 10.0.0.1 */
	{"64:ff9b:1:0:a:0:100::", "private"},	/* /64 layout of 10.0.0.1 */

	/* shared (CGNAT) */
	{"100.64.0.1", "shared"},
	{"100.127.255.254", "shared"},
	{"::ffff:100.64.0.1", "shared"},

	/* link-local, including the cloud metadata address */
	{"169.254.169.254", "link-local"},
	{"169.254.0.1", "link-local"},
	{"0xa9.0xfe.0xa9.0xfe", "link-local"},
	{"2852039166", "link-local"},
	{"::ffff:169.254.169.254", "link-local"},
	{"64:ff9b::a9fe:a9fe", "link-local"},
	{"2002:a9fe:a9fe::", "link-local"},
	{"fe80::1", "link-local"},
	{"febf::1", "link-local"},
	{"[fe80::1%25eth0]", "link-local"},
	{"fe80::1%eth0", "link-local"},

	/* unique-local */
	{"fc00::1", "unique-local"},
	{"fd12:3456:789a::1", "unique-local"},
	{"fd00:ec2::253", "unique-local"},

	/* metadata */
	{"100.100.100.200", "metadata"},
	{"168.63.129.16", "metadata"},
	{"fd00:ec2::254", "metadata"},
	{"[fd00:ec2::254]", "metadata"},
	{"::ffff:100.100.100.200", "metadata"},

	/* unspecified */
	{"0.0.0.0", "unspecified"},
	{"0", "unspecified"},
	{"0x0", "unspecified"},
	{"::", "unspecified"},
	{"[::]", "unspecified"},
	{"::ffff:0.0.0.0", "unspecified"},

	/* multicast */
	{"224.0.0.1", "multicast"},
	{"239.255.255.250", "multicast"},
	{"ff02::1", "multicast"},
	{"ff05::1:3", "multicast"},
	{"::ffff:224.0.0.251", "multicast"},

	/* broadcast */
	{"255.255.255.255", "broadcast"},
	{"4294967295", "broadcast"},
	{"0xffffffff", "broadcast"},

	/* reserved */
	{"240.0.0.1", "reserved"},
	{"254.255.255.255", "reserved"},
	{"0.1.2.3", "reserved"},
	{"192.0.0.8", "reserved"},
	{"192.0.2.1", "reserved"},
	{"192.88.99.1", "reserved"},
	{"198.18.0.1", "reserved"},
	{"198.19.255.255", "reserved"},
	{"198.51.100.7", "reserved"},
	{"203.0.113.9", "reserved"},
	{"2001:db8::1", "reserved"},
	{"2001::1", "reserved"},	/* Teredo */
	{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"},
	{"2001:2::1", "reserved"},	/* benchmarking, inside 2001::/23 */
	{"3fff::1", "reserved"},
	{"100::1", "reserved"},		/* discard-only */
	{"5f00::1", "reserved"},	/* outside 2000::/3 */
	{"::1.2.3.4", "reserved"},	/* IPv4-compatible, deprecated */
	{"::ffff:0:808:808", "reserved"},	/* SIIT of a public address */
	{"::2", "reserved"},
	{"64:ff9b:1::", "reserved"},
	{"2002:c000:204::", "reserved"},	/* 6to4 of 192.0.2.4 */
};

/* Strings that are not IP literals (hostnames or garbage). */
static const char *const not_literals[] = {
	"", "example.com", "localhost", "1.2.3.4.5", "127.0.0.256", "256.0.0.1",
	"1.256.1", "1.2.65536", "4294967296", "99999999999999999999999",
	"08.0.0.1", "0x1g", "1..1", ".1", "..", ".", "[::1", "::1]", "[127.0.0.1]",
	"[]", "[", "1:2:3", "127.0.0.1 ", " 127.0.0.1", "-1", "+1", "%eth0",
	"[%25eth0]", "0x7f.1.2.3.4", "127.0.0.1..", "fe80::1]%eth0", ":::",
	"1.2.3.4:80", "[::1]:80",
};

static void
test_literals(void)
{
	size_t		i;
	char		what[128];
	NetGuardPolicy open;

	memset(&open, 0, sizeof(open));
	open.allow_private = true;

	for (i = 0; i < sizeof(lit_cases) / sizeof(lit_cases[0]); i++)
	{
		const LitCase *c = &lit_cases[i];
		const char *k = "sentinel";
		struct sockaddr_storage ss;
		bool		ok;

		ok = netguard_classify_literal(c->host, &k);
		snprintf(what, sizeof(what), "literal \"%s\" parses", c->host);
		expect_true(what, ok);
		snprintf(what, sizeof(what), "literal \"%s\"", c->host);
		expect_str(what, k, c->klass);

		/*
		 * Same verdict through the sockaddr path, where inet_pton can parse
		 * the text; and allow_private lets every one of them through.
		 */
		if (make_sa(c->host, &ss))
		{
			snprintf(what, sizeof(what), "classify \"%s\"", c->host);
			expect_str(what, netguard_classify((struct sockaddr *) &ss),
					   c->klass);
			snprintf(what, sizeof(what), "check(no policy) \"%s\"", c->host);
			expect_str(what, netguard_check(NULL, (struct sockaddr *) &ss),
					   c->klass);
			snprintf(what, sizeof(what), "allow_private \"%s\"", c->host);
			expect_str(what, netguard_check(&open, (struct sockaddr *) &ss),
					   NULL);
		}
	}

	for (i = 0; i < sizeof(not_literals) / sizeof(not_literals[0]); i++)
	{
		const char *k = "sentinel";

		snprintf(what, sizeof(what), "not a literal \"%s\"", not_literals[i]);
		expect_true(what, !netguard_classify_literal(not_literals[i], &k));
		expect_str(what, k, NULL);
	}
	expect_true("NULL host", !netguard_classify_literal(NULL, NULL));
	expect_true("NULL klass ok", netguard_classify_literal("10.0.0.1", NULL));
}

/* ---------------------------------------------------------------------- */

static void
test_allowlist_parse(void)
{
	NetGuardPolicy p;
	char		err[128];
	char		big[4096];
	int			i;
	size_t		off;

	memset(&p, 0, sizeof(p));
	expect_true("parse basic",
				netguard_parse_allowlist("10.0.0.0/8, 127.0.0.1, ::1/128, fd00::/8",
										 &p, err, sizeof(err)));
	expect_true("basic n=4", p.n_allowed == 4);
	expect_true("basic[0] v4/8", p.allowed[0].family == AF_INET &&
				p.allowed[0].prefix_len == 8 && p.allowed[0].addr[0] == 10);
	expect_true("basic[1] bare v4 is /32", p.allowed[1].family == AF_INET &&
				p.allowed[1].prefix_len == 32 && p.allowed[1].addr[0] == 127 &&
				p.allowed[1].addr[3] == 1);
	expect_true("basic[2] ::1/128", p.allowed[2].family == AF_INET6 &&
				p.allowed[2].prefix_len == 128 && p.allowed[2].addr[15] == 1);
	expect_true("basic[3] fd00::/8", p.allowed[3].family == AF_INET6 &&
				p.allowed[3].prefix_len == 8 && p.allowed[3].addr[0] == 0xfd);

	expect_true("bare v6 is /128",
				netguard_parse_allowlist("fd00::1", &p, err, sizeof(err)) &&
				p.n_allowed == 1 && p.allowed[0].prefix_len == 128);
	expect_true("empty list",
				netguard_parse_allowlist("", &p, err, sizeof(err)) &&
				p.n_allowed == 0);
	expect_true("NULL list",
				netguard_parse_allowlist(NULL, &p, err, sizeof(err)) &&
				p.n_allowed == 0);
	expect_true("separators only",
				netguard_parse_allowlist(" ,\t,\n ", &p, err, sizeof(err)) &&
				p.n_allowed == 0);
	expect_true("mixed separators",
				netguard_parse_allowlist("  ,,192.168.0.0/16\t\n::/0 ",
										 &p, err, sizeof(err)) &&
				p.n_allowed == 2 && p.allowed[1].prefix_len == 0);
	expect_true("mapped network becomes v4",
				netguard_parse_allowlist("::ffff:10.0.0.0/104", &p, err,
										 sizeof(err)) &&
				p.n_allowed == 1 && p.allowed[0].family == AF_INET &&
				p.allowed[0].prefix_len == 8 && p.allowed[0].addr[0] == 10);
	expect_true("0.0.0.0/0",
				netguard_parse_allowlist("0.0.0.0/0", &p, err, sizeof(err)) &&
				p.n_allowed == 1);

	/* exactly 64 entries is fine, 65 is not */
	off = 0;
	for (i = 0; i < 64; i++)
		off += (size_t) snprintf(big + off, sizeof(big) - off, "10.0.%d.0/24,", i);
	expect_true("64 entries",
				netguard_parse_allowlist(big, &p, err, sizeof(err)) &&
				p.n_allowed == 64);
	snprintf(big + off, sizeof(big) - off, "10.1.0.0/24");
	expect_true("65 entries rejected",
				!netguard_parse_allowlist(big, &p, err, sizeof(err)));
	expect_str("65 entries msg", err, "too many networks (max 64)");
	expect_true("failed parse leaves policy alone", p.n_allowed == 64);

	/* failures */
	expect_true("/33 rejected",
				!netguard_parse_allowlist("10.0.0.0/33", &p, err, sizeof(err)));
	expect_str("/33 msg", err, "invalid network \"10.0.0.0/33\"");
	expect_true("host bits rejected",
				!netguard_parse_allowlist("127.0.0.1, 10.0.0.1/8", &p, err,
										  sizeof(err)));
	expect_str("host bits msg", err, "invalid network \"10.0.0.1/8\": host bits set");
	expect_true("v6 host bits rejected",
				!netguard_parse_allowlist("fd00::1/8", &p, err, sizeof(err)));
	{
		static const char *const bad[] = {
			"foo", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8",
			"::1/129", "10.0.0.0/0008", "127.1", "0x7f000001", "10.0.0.0/8x",
			"[::1]", "fe80::1%eth0", "/8", "1.2.3.4.5", "10.0.0.0;8",
		};
		size_t		j;
		char		what[128];
		char		want[160];

		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
		{
			snprintf(what, sizeof(what), "bad allowlist \"%s\"", bad[j]);
			expect_true(what, !netguard_parse_allowlist(bad[j], &p, err,
														sizeof(err)));
			snprintf(want, sizeof(want), "invalid network \"%s\"", bad[j]);
			expect_str(what, err, want);
		}
	}

	/* overlong token is truncated in the message, control chars masked */
	memset(big, '1', 300);
	big[300] = '\0';
	expect_true("long token rejected",
				!netguard_parse_allowlist(big, &p, err, sizeof(err)));
	expect_true("long token msg bounded", strlen(err) < 100 &&
				strstr(err, "...") != NULL);
	expect_true("ctl char rejected",
				!netguard_parse_allowlist("10.0.0.0/8\x01", &p, err, sizeof(err)));
	expect_str("ctl char masked", err, "invalid network \"10.0.0.0/8?\"");

	/* tiny / absent error buffers must be safe */
	expect_true("errlen 8",
				!netguard_parse_allowlist("bogus", &p, err, 8) &&
				strlen(err) == 7);
	expect_true("errbuf NULL",
				!netguard_parse_allowlist("bogus", &p, NULL, 0));
	expect_true("NULL policy",
				!netguard_parse_allowlist("10.0.0.0/8", NULL, err, sizeof(err)));
	expect_true("policy still intact", p.n_allowed == 64);
}

static const char *
check_text(const NetGuardPolicy *p, const char *text)
{
	struct sockaddr_storage ss;

	if (!make_sa(text, &ss))
		return "BAD-TEST-ADDRESS";
	return netguard_check(p, (struct sockaddr *) &ss);
}

static void
test_check(void)
{
	NetGuardPolicy p;
	char		err[128];
	struct sockaddr_un sun;
	int			i;

	memset(&p, 0, sizeof(p));
	expect_true("parse 127.0.0.1",
				netguard_parse_allowlist("127.0.0.1", &p, err, sizeof(err)));
	expect_str("allow 127.0.0.1", check_text(&p, "127.0.0.1"), NULL);
	expect_str("allow ::ffff:127.0.0.1", check_text(&p, "::ffff:127.0.0.1"), NULL);
	expect_str("deny 127.0.0.2", check_text(&p, "127.0.0.2"), "loopback");
	expect_str("deny 10.0.0.1", check_text(&p, "10.0.0.1"), "private");
	expect_str("deny ::1", check_text(&p, "::1"), "loopback");
	expect_str("deny metadata", check_text(&p, "169.254.169.254"), "link-local");
	expect_str("public still ok", check_text(&p, "8.8.8.8"), NULL);

	expect_true("parse mixed",
				netguard_parse_allowlist("10.0.0.0/8 fd00::/8 ::1 192.168.1.128/25",
										 &p, err, sizeof(err)));
	expect_str("allow 10.1.2.3", check_text(&p, "10.1.2.3"), NULL);
	expect_str("allow ::ffff:10.1.2.3", check_text(&p, "::ffff:10.1.2.3"), NULL);
	expect_str("allow fd12::1", check_text(&p, "fd12::1"), NULL);
	expect_str("allow ::1", check_text(&p, "::1"), NULL);
	expect_str("allow 192.168.1.200", check_text(&p, "192.168.1.200"), NULL);
	expect_str("deny 192.168.1.127", check_text(&p, "192.168.1.127"), "private");
	expect_str("deny fc00::1", check_text(&p, "fc00::1"), "unique-local");
	expect_str("deny 172.16.0.1", check_text(&p, "172.16.0.1"), "private");
	expect_str("deny 127.0.0.1", check_text(&p, "127.0.0.1"), "loopback");
	/* the allowlist does not follow 6to4/NAT64 embeddings */
	expect_str("deny 2002:a00:1::", check_text(&p, "2002:a00:1::"), "private");

	p.allow_private = true;
	expect_str("allow_private 127.0.0.1", check_text(&p, "127.0.0.1"), NULL);
	expect_str("allow_private 169.254.169.254",
			   check_text(&p, "169.254.169.254"), NULL);

	/* non-IP families and NULL fail closed, even with allow_private */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	expect_str("classify AF_UNIX", netguard_classify((struct sockaddr *) &sun),
			   "unsupported");
	expect_str("check AF_UNIX", netguard_check(&p, (struct sockaddr *) &sun),
			   "unsupported");
	expect_str("classify NULL", netguard_classify(NULL), "unsupported");
	expect_str("check NULL", netguard_check(&p, NULL), "unsupported");

	/* a hand-built, inconsistent policy must not crash or over-match */
	memset(&p, 0, sizeof(p));
	p.n_allowed = 1000;
	for (i = 0; i < NETGUARD_MAX_NETWORKS; i++)
	{
		p.allowed[i].family = (i % 2) ? AF_INET : AF_INET6;
		p.allowed[i].prefix_len = (i % 3 == 0) ? -5 : 999;
	}
	expect_str("corrupt policy", check_text(&p, "10.0.0.1"), "private");
	p.n_allowed = -3;
	expect_str("negative n_allowed", check_text(&p, "::1"), "loopback");
}

/* Cheap deterministic fuzz: mostly useful under ASan/UBSan. */
static uint32_t rng = 0x12345678u;

static uint32_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void
test_fuzz(void)
{
	static const char alphabet[] = "0123456789abcdefxX.:[]%/, ";
	char		buf[80];
	NetGuardPolicy p;
	char		err[64];
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;
	unsigned char raw[40];
	int			iter,
				i,
				n;
	long		literals = 0;

	memset(&p, 0, sizeof(p));
	for (iter = 0; iter < 300000; iter++)
	{
		const char *k;

		n = (int) (next_rand() % (sizeof(buf) - 1));
		for (i = 0; i < n; i++)
			buf[i] = alphabet[next_rand() % (sizeof(alphabet) - 1)];
		buf[n] = '\0';
		if (netguard_classify_literal(buf, &k))
			literals++;
		(void) netguard_parse_allowlist(buf, &p, err, sizeof(err));

		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		for (i = 0; i < 16; i++)
			sin6.sin6_addr.s6_addr[i] = (unsigned char) next_rand();
		if (next_rand() % 4 == 0)
			memcpy(sin6.sin6_addr.s6_addr, "\x00\x64\xff\x9b\x00\x01", 6);
		(void) netguard_check(&p, (struct sockaddr *) &sin6);

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = next_rand();
		(void) netguard_check(&p, (struct sockaddr *) &sin);

		/* unaligned sockaddr */
		memcpy(raw + 1, &sin6, sizeof(sin6));
		(void) netguard_classify((struct sockaddr *) (void *) (raw + 1));
	}
	expect_true("fuzz found some literals", literals > 0);
}

int
main(void)
{
	test_literals();
	test_allowlist_parse();
	test_check();
	test_fuzz();

	printf("%d checks, %d failures (%zu literal cases)\n", checks, failures,
		   sizeof(lit_cases) / sizeof(lit_cases[0]));
	if (failures != 0)
	{
		printf("FAILED\n");
		return 1;
	}
	printf("PASS\n");
	return 0;
}
