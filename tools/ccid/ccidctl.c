// SPDX-License-Identifier: GPL-2.0
/*
 * ccidctl - talk to a USB CCID smart-card reader through /dev/ccidN
 *
 * Every command maps to one ioctl of include/uapi/linux/usb/ccid_reader.h
 * (apdu --auto-get-response may send several).  See ccidctl(8).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/usb/ccid_reader.h>

#include "ccidlib.h"

#define CCIDCTL_VERSION		"1.0"
#define EXIT_USAGE		2
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define CCID_HDR_LEN		10
#define MAX_GET_RESPONSE	256

/* What every command knows: the options before (or after) its name */
struct ctx {
	const char *cmd;
	const char *dev;
	char path[PATH_MAX];
	int fd;
	uint8_t slot;
	uint32_t timeout_ms;
};

struct command {
	const char *name;
	int (*run)(struct ctx *c, int argc, char **argv);
};

static const char usage_text[] =
"Usage: ccidctl [-d DEV] [-s SLOT] [-t TIMEOUT_MS] COMMAND [ARGS]\n"
"\n"
"Options:\n"
"  -d, --device DEV       reader node (default: the lowest /dev/ccidN)\n"
"  -s, --slot SLOT        slot index (default 0)\n"
"  -t, --timeout MS       command timeout in ms (default 0: the driver's)\n"
"  -h, --help             show this help\n"
"  -V, --version          show the version\n"
"\n"
"Commands:\n"
"  info                   describe the reader\n"
"  power-on [--voltage auto|5|3|1.8]\n"
"                         power the card up, print its ATR\n"
"  power-off              power the card down\n"
"  status                 print the card and clock state\n"
"  apdu [--auto-get-response] HEX...\n"
"                         send each argument as one APDU, print the answers\n"
"  verify-pin --apdu HEX [PIN options] [--dump]\n"
"  modify-pin --apdu HEX [PIN options] [--dump]\n"
"                         PIN pad operation, print the card's answer\n"
"  secure HEX...          send a raw Secure block\n"
"  escape [HEX...]        send a vendor escape command (CAP_SYS_ADMIN)\n"
"  abort                  cancel the command in flight on the slot\n"
"  events [--ack] [--wait MS]\n"
"                         card presence, slot changes and resets\n"
"  params                 print the protocol parameters\n"
"  reset-params           reset them, print the result\n"
"  set-params T=0|T=1 HEX set them, print the result\n"
"\n"
"PIN options:\n"
"  --timeout-secs N  --format binary|bcd|ascii  --justify left|right\n"
"  --pin-position N  --pin-block-size N  --pin-length-size N\n"
"  --pin-length-position N  --pin-length-unit bits|bytes  --min N  --max N\n"
"  --entry-condition N  --messages N  --lang N  --msg-index N\n"
"  modify-pin only: --msg-index2 N  --msg-index3 N  --offset-old N\n"
"  --offset-new N  --confirm N\n"
"\n"
"Hex: bytes as hex pairs, optionally separated by blanks or colons.\n"
"Exit status: 0 success, 1 failure, 2 usage error.  See ccidctl(8).\n";

/* ------------------------------------------------------------------ */
/* Messages */

static int usage_error(const struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->cmd)
		fprintf(stderr, "ccidctl: %s: ", c->cmd);
	else
		fputs("ccidctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'ccidctl --help' for more information.\n", stderr);
	return EXIT_USAGE;
}

static int fail_with(const struct ctx *c, int err, const char *text)
{
	const char *name = ccid_errno_name(err);

	if (name)
		fprintf(stderr, "ccidctl: %s: %s: %s\n", c->cmd, name, text);
	else
		fprintf(stderr, "ccidctl: %s: errno %d: %s\n", c->cmd, err, text);
	return EXIT_FAILURE;
}

/* Report an ioctl failure; @w holds the reader's words, or is NULL */
static int fail(const struct ctx *c, int err, const struct ccid_words *w)
{
	char text[256];

	ccid_describe_error(text, sizeof(text), err, w);
	return fail_with(c, err, text);
}

static void print_hex(const uint8_t *buf, size_t len)
{
	size_t need = ccid_format_hex(NULL, 0, buf, len);
	char *text = malloc(need + 1);

	if (!text) {
		perror("ccidctl");
		exit(EXIT_FAILURE);
	}
	ccid_format_hex(text, need + 1, buf, len);
	puts(text);
	free(text);
}

static void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p) {
		perror("ccidctl");
		exit(EXIT_FAILURE);
	}
	return p;
}

/* ------------------------------------------------------------------ */
/* Argument parsing */

/* Decimal, or hex with 0x; nothing else */
static int parse_ulong(const char *s, unsigned long max, unsigned long *val)
{
	int base = 10;
	char *end;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	/* strtoul() would take blanks and signs */
	if (!isxdigit((unsigned char)s[0]) ||
	    (base == 10 && !isdigit((unsigned char)s[0])))
		return -EINVAL;
	errno = 0;
	*val = strtoul(s, &end, base);
	if (errno || *end || *val > max)
		return -EINVAL;
	return 0;
}

static int parse_u8(const struct ctx *c, const char *opt, const char *s,
		    unsigned long max, uint8_t *val)
{
	unsigned long v;

	if (parse_ulong(s, max, &v))
		return usage_error(c, "%s: '%s' is not a number in 0..%lu",
				   opt, s, max);
	*val = v;
	return 0;
}

/* Parse one hex argument into a fresh buffer */
static int parse_hex_arg(const struct ctx *c, const char *s, uint8_t **buf,
			 size_t *len)
{
	ssize_t n;

	*buf = xmalloc(strlen(s) / 2 + 1);
	n = ccid_parse_hex(s, *buf, strlen(s) / 2 + 1);
	if (n < 0) {
		free(*buf);
		*buf = NULL;
		return usage_error(c, "bad hex '%s'", s);
	}
	*len = n;
	return 0;
}

/* Parse and concatenate all hex arguments */
static int parse_hex_args(const struct ctx *c, int argc, char **argv,
			  uint8_t **buf, size_t *len)
{
	size_t room = 1;
	int i;

	for (i = 0; i < argc; i++)
		room += strlen(argv[i]) / 2;
	*buf = xmalloc(room);
	*len = 0;
	for (i = 0; i < argc; i++) {
		ssize_t n = ccid_parse_hex(argv[i], *buf + *len, room - *len);

		if (n < 0) {
			free(*buf);
			*buf = NULL;
			return usage_error(c, "bad hex '%s'", argv[i]);
		}
		*len += n;
	}
	return 0;
}

/* Accepted by every command, before or after its name */
static const struct option common_options[] = {
	{ "device", required_argument, NULL, 'd' },
	{ "slot", required_argument, NULL, 's' },
	{ "timeout", required_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
};

#define MAX_OPTIONS	32

/* -d, -s, -t, -h; return -1 when @opt is none of them */
static int common_option(struct ctx *c, int opt, const char *arg)
{
	unsigned long v;

	switch (opt) {
	case 'd':
		c->dev = arg;
		return 0;
	case 's':
		if (parse_ulong(arg, 255, &v))
			return usage_error(c, "bad slot '%s'", arg);
		c->slot = v;
		return 0;
	case 't':
		if (parse_ulong(arg, UINT32_MAX, &v))
			return usage_error(c, "bad timeout '%s'", arg);
		c->timeout_ms = v;
		return 0;
	case 'h':
		fputs(usage_text, stdout);
		exit(EXIT_SUCCESS);
	}
	return -1;
}

static int bad_option(const struct ctx *c, char **argv)
{
	if (optopt)
		return usage_error(c, "unknown option '-%c'", optopt);
	return usage_error(c, "unknown option '%s'", argv[optind - 1]);
}

typedef int (*option_fn)(struct ctx *c, void *priv, int opt,
			 const char *arg);

/* @out gets the common options, then @extra (NULL-terminated, or NULL) */
static void merge_options(struct option *out, const struct option *extra)
{
	size_t n = ARRAY_SIZE(common_options);

	memcpy(out, common_options, sizeof(common_options));
	while (extra && extra->name && n < MAX_OPTIONS)
		out[n++] = *extra++;
	memset(&out[n], 0, sizeof(out[n]));
}

/*
 * Parse the options of a command; @argv[0] is the command name.  @extra
 * are the command's own options, handed to @fn.  On success *@first is
 * the index of the first operand.
 */
static int parse_options(struct ctx *c, int argc, char **argv,
			 const struct option *extra, option_fn fn,
			 void *priv, int *first)
{
	struct option longopts[MAX_OPTIONS + 1];
	int opt, idx, ret;

	merge_options(longopts, extra);
	optind = 0;
	opterr = 0;
	for (;;) {
		idx = -1;
		opt = getopt_long(argc, argv, ":d:s:t:h", longopts, &idx);
		if (opt == -1)
			break;
		if (opt == '?')
			return bad_option(c, argv);
		if (opt == ':')
			return usage_error(c, "option '%s' needs an argument",
					   argv[optind - 1]);
		ret = common_option(c, opt, optarg);
		if (ret < 0)
			ret = fn ? fn(c, priv, opt, optarg) : -1;
		if (ret < 0)
			return usage_error(c, "option '--%s' is not valid here",
					   idx >= 0 ? longopts[idx].name : "?");
		if (ret)
			return ret;
	}
	*first = optind;
	return 0;
}

static int no_operands(struct ctx *c, int argc, char **argv)
{
	int first, ret;

	ret = parse_options(c, argc, argv, NULL, NULL, NULL, &first);
	if (ret)
		return ret;
	if (first < argc)
		return usage_error(c, "unexpected argument '%s'", argv[first]);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The reader */

/* "ccid12" gives 12; anything else gives -1 */
static long node_number(const char *path)
{
	const char *name = strrchr(path, '/');
	const char *p;

	name = name ? name + 1 : path;
	if (strncmp(name, "ccid", 4))
		return -1;
	name += 4;
	if (!*name || (name[0] == '0' && name[1]) || strlen(name) > 9)
		return -1;
	for (p = name; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -1;
	return strtol(name, NULL, 10);
}

/* The lowest N of the ccidN nodes sysfs knows, or -1 */
static long first_reader(void)
{
	static const char * const patterns[] = {
		"/sys/class/usbmisc/ccid*",
		"/sys/bus/usb/drivers/ccid/*/usbmisc/ccid*",
	};
	long best = -1;
	size_t i, j;

	for (i = 0; i < ARRAY_SIZE(patterns) && best < 0; i++) {
		glob_t g;

		if (glob(patterns[i], GLOB_NOSORT, NULL, &g))
			continue;
		for (j = 0; j < g.gl_pathc; j++) {
			long n = node_number(g.gl_pathv[j]);

			if (n >= 0 && (best < 0 || n < best))
				best = n;
		}
		globfree(&g);
	}
	return best;
}

static int open_reader(struct ctx *c)
{
	char text[PATH_MAX + 64];
	long n;

	if (c->dev && strchr(c->dev, '/')) {
		snprintf(c->path, sizeof(c->path), "%s", c->dev);
	} else if (c->dev) {
		snprintf(c->path, sizeof(c->path), "/dev/%s", c->dev);
	} else {
		n = first_reader();
		if (n < 0)
			return fail_with(c, ENODEV, "no CCID reader found");
		snprintf(c->path, sizeof(c->path), "/dev/ccid%ld", n);
	}
	c->fd = open(c->path, O_RDWR | O_CLOEXEC);
	if (c->fd < 0) {
		int err = errno;

		snprintf(text, sizeof(text), "cannot open %s: %s", c->path,
			 strerror(err));
		return fail_with(c, err, text);
	}
	return 0;
}

static int get_info(struct ctx *c, struct ccid_reader_info *info)
{
	memset(info, 0, sizeof(*info));
	if (ioctl(c->fd, CCID_IOC_GET_INFO, info))
		return fail(c, errno, NULL);
	return 0;
}

/* Room for the abData of an answer: the driver's buffer, header off */
static int answer_room(struct ctx *c, size_t *room)
{
	struct ccid_reader_info info;
	int ret;

	ret = get_info(c, &info);
	if (ret)
		return ret;
	*room = info.buffer_length > CCID_HDR_LEN ?
		info.buffer_length - CCID_HDR_LEN : 65536 + 2;
	return 0;
}

/* XfrBlock, Secure or Escape; *@rx_len is the answer length */
/* The driver disabled Secure on this reader: its quirks attribute says */
static bool secure_quirked(const struct ctx *c)
{
	const char *node = strrchr(c->path, '/');
	char path[PATH_MAX + 64], buf[128];
	bool ret = false;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/usbmisc/%s/device/quirks",
		 node ? node + 1 : c->path);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f))
		ret = strstr(buf, "broken_secure");
	fclose(f);
	return ret;
}

static int xfer(struct ctx *c, unsigned long req, const uint8_t *tx,
		size_t tx_len, uint8_t *rx, size_t rx_size, size_t *rx_len)
{
	struct ccid_xfer x;
	struct ccid_words w;
	char text[256];
	int err;

	memset(&x, 0, sizeof(x));
	x.slot = c->slot;
	x.tx_len = tx_len;
	x.tx_buf = (uintptr_t)tx;
	x.rx_buf = (uintptr_t)rx;
	x.rx_size = rx_size;
	x.timeout_ms = c->timeout_ms;
	if (!ioctl(c->fd, req, &x)) {
		*rx_len = x.rx_len < rx_size ? x.rx_len : rx_size;
		return 0;
	}
	err = errno;
	w.status = x.status;
	w.error = x.error;
	if (req == CCID_IOC_SECURE && err == EOPNOTSUPP && secure_quirked(c))
		return fail_with(c, err, "Secure is disabled for this reader's firmware by the broken_secure quirk (see the kernel log; the ccid.quirks module parameter overrides it)");
	if (err != EOVERFLOW)
		return fail(c, err, &w);
	snprintf(text, sizeof(text), "%s (%u bytes needed, room for %zu)",
		 ccid_errno_text(err), x.rx_len, rx_size);
	return fail_with(c, err, text);
}

/* ------------------------------------------------------------------ */
/* info */

static void print_words(const char *key, uint32_t bits,
			const char * const names[], size_t n)
{
	bool any = false;
	size_t i;

	printf("%s:", key);
	for (i = 0; i < n; i++) {
		if (bits & 1u << i) {
			printf(" %s", names[i]);
			any = true;
		}
	}
	bits &= n < 32 ? ~0u << n : 0;
	if (bits)
		printf(" 0x%08x", bits);
	else if (!any)
		fputs(" none", stdout);
	putchar('\n');
}

static void print_info(const struct ctx *c, const struct ccid_reader_info *i)
{
	static const char * const protocols[] = { "T=0", "T=1" };
	static const char * const pins[] = { "verify", "modify" };
	static const char * const volts[] = { "5V", "3V", "1.8V" };
	const char *level = ccid_level_name(i->exchange_level);

	printf("vendor_id: 0x%04x\n", i->vendor_id);
	printf("product_id: 0x%04x\n", i->product_id);
	printf("firmware: %x.%02x\n", i->bcd_device >> 8, i->bcd_device & 0xff);
	printf("ccid_version: %x.%02x\n", i->bcd_ccid >> 8, i->bcd_ccid & 0xff);
	printf("slots: %u\n", i->num_slots);
	print_words("protocols", i->protocols, protocols, ARRAY_SIZE(protocols));
	if (level)
		printf("exchange_level: %s\n", level);
	else
		printf("exchange_level: unknown(%u)\n", i->exchange_level);
	printf("max_message_length: %u\n", i->max_message_length);
	printf("buffer_length: %u\n", i->buffer_length);
	print_words("pin_support", i->pin_support, pins, ARRAY_SIZE(pins));
	printf("features: 0x%08x\n", i->features);
	print_words("voltage_support", i->voltage_support, volts,
		    ARRAY_SIZE(volts));
	printf("max_ifsd: %u\n", i->max_ifsd);
	printf("default_clock: %u\n", i->default_clock);
	printf("max_clock: %u\n", i->max_clock);
	printf("data_rate: %u\n", i->data_rate);
	printf("max_data_rate: %u\n", i->max_data_rate);
	printf("max_busy_slots: %u\n", i->max_busy_slots);
	printf("num_clocks: %u\n", i->num_clocks);
	printf("num_data_rates: %u\n", i->num_data_rates);
	printf("synch_protocols: 0x%08x\n", i->synch_protocols);
	printf("mechanical: 0x%08x\n", i->mechanical);
	printf("class_get_response: 0x%02x\n", i->class_get_response);
	printf("class_envelope: 0x%02x\n", i->class_envelope);
	printf("lcd_layout: 0x%04x\n", i->lcd_layout);
	printf("interface_class: 0x%02x\n", i->interface_class);
	printf("device: %s\n", c->path);
}

static int cmd_info(struct ctx *c, int argc, char **argv)
{
	struct ccid_reader_info info;
	int ret;

	ret = no_operands(c, argc, argv);
	if (!ret)
		ret = open_reader(c);
	if (!ret)
		ret = get_info(c, &info);
	if (!ret)
		print_info(c, &info);
	return ret;
}

/* ------------------------------------------------------------------ */
/* power-on, power-off, status */

static int power_on_option(struct ctx *c, void *priv, int opt,
			   const char *arg)
{
	int v;

	if (opt != 'v')
		return -1;
	v = ccid_parse_voltage(arg);
	if (v < 0)
		return usage_error(c, "bad voltage '%s' (auto, 5, 3 or 1.8)",
				   arg);
	*(uint8_t *)priv = v;
	return 0;
}

static int cmd_power_on(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "voltage", required_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 }
	};
	struct ccid_power_on p;
	struct ccid_words w;
	uint8_t voltage = CCID_VOLTAGE_AUTO;
	int first, ret;

	ret = parse_options(c, argc, argv, longopts, power_on_option,
			    &voltage, &first);
	if (ret)
		return ret;
	if (first < argc)
		return usage_error(c, "unexpected argument '%s'", argv[first]);
	ret = open_reader(c);
	if (ret)
		return ret;

	memset(&p, 0, sizeof(p));
	p.slot = c->slot;
	p.voltage = voltage;
	p.timeout_ms = c->timeout_ms;
	if (ioctl(c->fd, CCID_IOC_POWER_ON, &p)) {
		w.status = p.status;
		w.error = p.error;
		return fail(c, errno, &w);
	}
	print_hex(p.atr, p.atr_len < CCID_MAX_ATR_SIZE ?
			 p.atr_len : CCID_MAX_ATR_SIZE);
	return 0;
}

static void print_slot_status(const struct ccid_slot_status *s)
{
	printf("card: %s\n", ccid_card_state_name(s->status));
	printf("clock: %s\n", ccid_clock_name(s->clock_status));
}

/*
 * To GetSlotStatus, "no card" and "mute card" are answers, not failures:
 * ENOMEDIUM, or a failed command whose bError is ICC_MUTE.
 */
static bool card_state_answer(int err, const struct ccid_words *w)
{
	return err == ENOMEDIUM || (ccid_words_failed(w) && w->error == 0xfe);
}

static int slot_status(struct ctx *c, int argc, char **argv,
		       unsigned long req)
{
	struct ccid_slot_status s;
	struct ccid_words w;
	int ret;

	ret = no_operands(c, argc, argv);
	if (!ret)
		ret = open_reader(c);
	if (ret)
		return ret;

	memset(&s, 0, sizeof(s));
	s.slot = c->slot;
	s.timeout_ms = c->timeout_ms;
	if (ioctl(c->fd, req, &s)) {
		int err = errno;

		w.status = s.status;
		w.error = s.error;
		if (req != CCID_IOC_SLOT_STATUS || !card_state_answer(err, &w))
			return fail(c, err, &w);
		if (err == ENOMEDIUM)
			s.status = (s.status & ~CCID_ICC_STATUS_MASK) |
				   CCID_ICC_ABSENT;
	}
	print_slot_status(&s);
	return 0;
}

static int cmd_power_off(struct ctx *c, int argc, char **argv)
{
	return slot_status(c, argc, argv, CCID_IOC_POWER_OFF);
}

static int cmd_status(struct ctx *c, int argc, char **argv)
{
	return slot_status(c, argc, argv, CCID_IOC_SLOT_STATUS);
}

/* ------------------------------------------------------------------ */
/* apdu */

struct answer {
	uint8_t *data;
	size_t len;
};

static void answer_add(struct answer *a, const uint8_t *buf, size_t len)
{
	uint8_t *p = realloc(a->data, a->len + len + 1);

	if (!p) {
		perror("ccidctl");
		exit(EXIT_FAILURE);
	}
	a->data = p;
	memcpy(a->data + a->len, buf, len);
	a->len += len;
}

/*
 * Send one APDU; with @auto_gr, follow 61xx with GET RESPONSE and
 * resend once with Le = xx on 6Cxx.  The whole answer goes to @a.
 */
static int exchange_apdu(struct ctx *c, const uint8_t *apdu, size_t len,
			 bool auto_gr, uint8_t *rx, size_t room,
			 struct answer *a)
{
	uint8_t *cmd = xmalloc(len + 1);
	uint8_t get_response[5] = { 0x00, 0xc0, 0x00, 0x00, 0x00 };
	const uint8_t *tx = apdu;
	bool resent = false;
	size_t n, rounds = 0;
	int ret;

	for (;;) {
		ret = xfer(c, CCID_IOC_XFR_BLOCK, tx, len, rx, room, &n);
		if (ret || !auto_gr || n < 2)
			break;
		if (rx[n - 2] == 0x6c && !resent && tx == apdu) {
			len = ccid_apdu_set_le(apdu, len, rx[n - 1], cmd);
			resent = true;
			if (len) {
				tx = cmd;
				continue;
			}
			break;
		}
		if (rx[n - 2] != 0x61 || ++rounds > MAX_GET_RESPONSE)
			break;
		answer_add(a, rx, n - 2);
		get_response[4] = rx[n - 1];
		tx = get_response;
		len = sizeof(get_response);
	}
	if (!ret)
		answer_add(a, rx, n);
	free(cmd);
	return ret;
}

static int apdu_option(struct ctx *c, void *priv, int opt, const char *arg)
{
	(void)c;
	(void)arg;
	if (opt != 'g')
		return -1;
	*(bool *)priv = true;
	return 0;
}

/* An answer without SW1 SW2 is not a response APDU: never a success */
static int no_status_word(const struct ctx *c, size_t len)
{
	fprintf(stderr, "ccidctl: %s: the answer has no status word (%zu byte%s): the card did not answer\n",
		c->cmd, len, len == 1 ? "" : "s");
	return EXIT_FAILURE;
}

static int cmd_apdu(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "auto-get-response", no_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 }
	};
	bool auto_gr = false;
	uint8_t **apdus, *rx;
	size_t *lens, room;
	int first, i, n, ret;

	ret = parse_options(c, argc, argv, longopts, apdu_option, &auto_gr,
			    &first);
	if (ret)
		return ret;
	n = argc - first;
	if (!n)
		return usage_error(c, "no APDU given");
	apdus = calloc(n, sizeof(*apdus));
	lens = calloc(n, sizeof(*lens));
	if (!apdus || !lens) {
		perror("ccidctl");
		exit(EXIT_FAILURE);
	}
	for (i = 0; i < n && !ret; i++) {
		ret = parse_hex_arg(c, argv[first + i], &apdus[i], &lens[i]);
		if (!ret && !lens[i])
			ret = usage_error(c, "empty APDU");
	}
	if (!ret)
		ret = open_reader(c);
	if (!ret)
		ret = answer_room(c, &room);
	if (!ret) {
		rx = xmalloc(room);
		for (i = 0; i < n && !ret; i++) {
			struct answer a = { NULL, 0 };

			ret = exchange_apdu(c, apdus[i], lens[i], auto_gr, rx,
					    room, &a);
			if (!ret && a.len < 2)
				ret = no_status_word(c, a.len);
			if (!ret)
				print_hex(a.data, a.len);
			free(a.data);
			fflush(stdout);
		}
		free(rx);
	}
	for (i = 0; i < n; i++)
		free(apdus[i]);
	free(apdus);
	free(lens);
	return ret;
}

/* ------------------------------------------------------------------ */
/* verify-pin, modify-pin, secure */

enum {
	OPT_APDU = 256,
	OPT_TIMEOUT_SECS,
	OPT_FORMAT,
	OPT_JUSTIFY,
	OPT_PIN_POSITION,
	OPT_PIN_BLOCK_SIZE,
	OPT_PIN_LENGTH_SIZE,
	OPT_PIN_LENGTH_POSITION,
	OPT_PIN_LENGTH_UNIT,
	OPT_MIN,
	OPT_MAX,
	OPT_ENTRY_CONDITION,
	OPT_MESSAGES,
	OPT_LANG,
	OPT_MSG_INDEX,
	OPT_MSG_INDEX2,
	OPT_MSG_INDEX3,
	OPT_OFFSET_OLD,
	OPT_OFFSET_NEW,
	OPT_CONFIRM,
	OPT_DUMP,
};

/* verify-pin and modify-pin; pin_option() refuses the modify ones to verify */
static const struct option pin_options[] = {
	{ "apdu", required_argument, NULL, OPT_APDU },
	{ "timeout-secs", required_argument, NULL, OPT_TIMEOUT_SECS },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "justify", required_argument, NULL, OPT_JUSTIFY },
	{ "pin-position", required_argument, NULL, OPT_PIN_POSITION },
	{ "pin-block-size", required_argument, NULL, OPT_PIN_BLOCK_SIZE },
	{ "pin-length-size", required_argument, NULL, OPT_PIN_LENGTH_SIZE },
	{ "pin-length-position", required_argument, NULL,
	  OPT_PIN_LENGTH_POSITION },
	{ "pin-length-unit", required_argument, NULL, OPT_PIN_LENGTH_UNIT },
	{ "min", required_argument, NULL, OPT_MIN },
	{ "max", required_argument, NULL, OPT_MAX },
	{ "entry-condition", required_argument, NULL, OPT_ENTRY_CONDITION },
	{ "messages", required_argument, NULL, OPT_MESSAGES },
	{ "lang", required_argument, NULL, OPT_LANG },
	{ "msg-index", required_argument, NULL, OPT_MSG_INDEX },
	{ "dump", no_argument, NULL, OPT_DUMP },
	{ "msg-index2", required_argument, NULL, OPT_MSG_INDEX2 },
	{ "msg-index3", required_argument, NULL, OPT_MSG_INDEX3 },
	{ "offset-old", required_argument, NULL, OPT_OFFSET_OLD },
	{ "offset-new", required_argument, NULL, OPT_OFFSET_NEW },
	{ "confirm", required_argument, NULL, OPT_CONFIRM },
	{ NULL, 0, NULL, 0 }
};

static const char * const pin_formats[] = { "binary", "bcd", "ascii" };
static const char * const pin_justify[] = { "left", "right" };
static const char * const pin_length_units[] = { "bits", "bytes" };

struct pin_args {
	struct ccid_pin_opts o;
	uint8_t *apdu;
	bool dump;
};

/* *@val is the index of @arg in @words */
static int word_option(const struct ctx *c, const char *opt, const char *arg,
		       const char * const *words, size_t n, uint8_t *val)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!strcmp(arg, words[i])) {
			*val = i;
			return 0;
		}
	}
	return usage_error(c, "%s: bad value '%s'", opt, arg);
}

static int flag_option(const struct ctx *c, const char *opt, const char *arg,
		       const char * const words[2], bool *val)
{
	uint8_t v = 0;
	int ret;

	ret = word_option(c, opt, arg, words, 2, &v);
	if (!ret)
		*val = v;
	return ret;
}

static int pin_apdu_option(const struct ctx *c, struct pin_args *p,
			   const char *arg)
{
	size_t len;
	int ret;

	free(p->apdu);
	p->apdu = NULL;
	ret = parse_hex_arg(c, arg, &p->apdu, &len);
	if (ret)
		return ret;
	if (len < CCID_PIN_APDU_MIN)
		return usage_error(c, "--apdu: at least CLA INS P1 P2 needed");
	p->o.apdu = p->apdu;
	p->o.apdu_len = len;
	return 0;
}

/* Options that only a modify block has */
static int modify_option(struct ctx *c, struct ccid_pin_opts *o, int opt,
			 const char *arg)
{
	switch (opt) {
	case OPT_MSG_INDEX2:
		return parse_u8(c, "--msg-index2", arg, 255, &o->msg_index[1]);
	case OPT_MSG_INDEX3:
		return parse_u8(c, "--msg-index3", arg, 255, &o->msg_index[2]);
	case OPT_OFFSET_OLD:
		return parse_u8(c, "--offset-old", arg, 255, &o->offset_old);
	case OPT_OFFSET_NEW:
		return parse_u8(c, "--offset-new", arg, 255, &o->offset_new);
	case OPT_CONFIRM:
		return parse_u8(c, "--confirm", arg, 255, &o->confirm);
	}
	return -1;
}

static int pin_option(struct ctx *c, void *priv, int opt, const char *arg)
{
	struct pin_args *p = priv;
	struct ccid_pin_opts *o = &p->o;
	unsigned long v;

	switch (opt) {
	case OPT_APDU:
		return pin_apdu_option(c, p, arg);
	case OPT_TIMEOUT_SECS:
		return parse_u8(c, "--timeout-secs", arg, 255, &o->timeout);
	case OPT_FORMAT:
		return word_option(c, "--format", arg, pin_formats,
				   ARRAY_SIZE(pin_formats), &o->format);
	case OPT_JUSTIFY:
		return flag_option(c, "--justify", arg, pin_justify,
				   &o->right_justify);
	case OPT_PIN_POSITION:
		return parse_u8(c, "--pin-position", arg, 15, &o->pin_position);
	case OPT_PIN_BLOCK_SIZE:
		return parse_u8(c, "--pin-block-size", arg, 15, &o->block_size);
	case OPT_PIN_LENGTH_SIZE:
		return parse_u8(c, "--pin-length-size", arg, 15, &o->len_size);
	case OPT_PIN_LENGTH_POSITION:
		return parse_u8(c, "--pin-length-position", arg, 15,
				&o->len_position);
	case OPT_PIN_LENGTH_UNIT:
		return flag_option(c, "--pin-length-unit", arg,
				   pin_length_units, &o->len_in_bytes);
	case OPT_MIN:
		return parse_u8(c, "--min", arg, 255, &o->min_len);
	case OPT_MAX:
		return parse_u8(c, "--max", arg, 255, &o->max_len);
	case OPT_ENTRY_CONDITION:
		return parse_u8(c, "--entry-condition", arg, 255,
				&o->entry_condition);
	case OPT_MESSAGES:
		return parse_u8(c, "--messages", arg, 255, &o->num_messages);
	case OPT_LANG:
		if (parse_ulong(arg, 0xffff, &v))
			return usage_error(c, "--lang: bad language id '%s'",
					   arg);
		o->lang_id = v;
		return 0;
	case OPT_MSG_INDEX:
		return parse_u8(c, "--msg-index", arg, 255, &o->msg_index[0]);
	case OPT_DUMP:
		p->dump = true;
		return 0;
	}
	return o->modify ? modify_option(c, o, opt, arg) : -1;
}

/* Send a Secure block and print the card's answer */
static int send_secure(struct ctx *c, const uint8_t *blk, size_t len)
{
	uint8_t *rx;
	size_t room, n;
	int ret;

	ret = open_reader(c);
	if (!ret)
		ret = answer_room(c, &room);
	if (ret)
		return ret;
	rx = xmalloc(room);
	ret = xfer(c, CCID_IOC_SECURE, blk, len, rx, room, &n);
	if (!ret)
		print_hex(rx, n);
	free(rx);
	return ret;
}

static int pin_command(struct ctx *c, int argc, char **argv, bool modify)
{
	struct pin_args p = { .apdu = NULL, .dump = false };
	uint8_t *blk = NULL;
	ssize_t len;
	int first, ret;

	ccid_pin_opts_init(&p.o, modify);
	ret = parse_options(c, argc, argv, pin_options, pin_option, &p,
			    &first);
	if (!ret && first < argc)
		ret = usage_error(c, "unexpected argument '%s'", argv[first]);
	if (!ret && !p.apdu)
		ret = usage_error(c, "--apdu is required");
	if (!ret && p.o.min_len > p.o.max_len)
		ret = usage_error(c, "--min is larger than --max");
	if (!ret) {
		blk = xmalloc(ccid_pin_block_len(&p.o));
		len = ccid_build_pin_block(&p.o, blk, ccid_pin_block_len(&p.o));
		if (len < 0)
			ret = usage_error(c, "cannot build the PIN block");
	}
	if (!ret && p.dump)
		print_hex(blk, len);
	else if (!ret)
		ret = send_secure(c, blk, len);
	free(blk);
	free(p.apdu);
	return ret;
}

static int cmd_verify_pin(struct ctx *c, int argc, char **argv)
{
	return pin_command(c, argc, argv, false);
}

static int cmd_modify_pin(struct ctx *c, int argc, char **argv)
{
	return pin_command(c, argc, argv, true);
}

static int cmd_secure(struct ctx *c, int argc, char **argv)
{
	uint8_t *blk;
	size_t len;
	int first, ret;

	ret = parse_options(c, argc, argv, NULL, NULL, NULL, &first);
	if (ret)
		return ret;
	if (first == argc)
		return usage_error(c, "no Secure block given");
	ret = parse_hex_args(c, argc - first, argv + first, &blk, &len);
	if (ret)
		return ret;
	ret = send_secure(c, blk, len);
	free(blk);
	return ret;
}

/* ------------------------------------------------------------------ */
/* escape, abort */

static int cmd_escape(struct ctx *c, int argc, char **argv)
{
	uint8_t *tx, *rx;
	size_t len, room, n;
	int first, ret;

	ret = parse_options(c, argc, argv, NULL, NULL, NULL, &first);
	if (ret)
		return ret;
	ret = parse_hex_args(c, argc - first, argv + first, &tx, &len);
	if (ret)
		return ret;
	ret = open_reader(c);
	if (!ret)
		ret = answer_room(c, &room);
	if (!ret) {
		rx = xmalloc(room);
		ret = xfer(c, CCID_IOC_ESCAPE, tx, len, rx, room, &n);
		if (!ret)
			print_hex(rx, n);
		free(rx);
	}
	free(tx);
	return ret;
}

static int cmd_abort(struct ctx *c, int argc, char **argv)
{
	struct ccid_abort a;
	int ret;

	ret = no_operands(c, argc, argv);
	if (!ret)
		ret = open_reader(c);
	if (ret)
		return ret;
	memset(&a, 0, sizeof(a));
	a.slot = c->slot;
	if (ioctl(c->fd, CCID_IOC_ABORT, &a))
		return fail(c, errno, NULL);
	return 0;
}

/* ------------------------------------------------------------------ */
/* events */

struct events_opts {
	int ack;
	int wait_ms;
};

static int events_option(struct ctx *c, void *priv, int opt,
			 const char *arg)
{
	struct events_opts *o = priv;
	char *end;
	long v;

	switch (opt) {
	case 'a':
		o->ack = 1;
		return 0;
	case 'w':
		errno = 0;
		v = strtol(arg, &end, 0);
		if (errno || *end || v < 0 || v > INT_MAX)
			return usage_error(c, "bad --wait '%s'", arg);
		o->wait_ms = v;
		return 0;
	default:
		return -1;
	}
}

/*
 * Card presence, per-slot change counters and reset generations; with
 * --wait, first wait up to MS milliseconds for poll() to report a change
 * (EPOLLIN) or a reset (EPOLLPRI).
 */
static int cmd_events(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ack", no_argument, NULL, 'a' },
		{ "wait", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 }
	};
	struct events_opts o = { 0, -1 };
	struct ccid_reader_info info;
	struct ccid_slot_events ev;
	struct pollfd pfd;
	unsigned int i;
	int first, ret;

	ret = parse_options(c, argc, argv, longopts, events_option, &o,
			    &first);
	if (ret)
		return ret;
	if (first < argc)
		return usage_error(c, "unexpected argument '%s'", argv[first]);
	ret = open_reader(c);
	if (ret)
		return ret;
	if (ioctl(c->fd, CCID_IOC_GET_INFO, &info))
		return fail(c, errno, NULL);

	if (o.wait_ms >= 0) {
		pfd.fd = c->fd;
		pfd.events = POLLIN | POLLPRI;
		ret = poll(&pfd, 1, o.wait_ms);
		if (ret < 0)
			return fail(c, errno, NULL);
		printf("poll:%s%s%s%s\n", ret ? "" : " timeout",
		       pfd.revents & POLLIN ? " in" : "",
		       pfd.revents & POLLPRI ? " pri" : "",
		       pfd.revents & POLLHUP ? " hup" : "");
	}

	memset(&ev, 0, sizeof(ev));
	ev.flags = o.ack ? CCID_EVENTS_ACK_RESET : 0;
	if (ioctl(c->fd, CCID_IOC_SLOT_EVENTS, &ev))
		return fail(c, errno, NULL);
	printf("present: 0x%x\n", ev.present);
	printf("known: 0x%x\n", ev.known);
	printf("reset_pending: 0x%x\n", ev.reset_pending);
	printf("hw_errors: %u\n", ev.hw_errors);
	for (i = 0; i < info.num_slots && i < CCID_MAX_SLOT_COUNT; i++)
		printf("slot %u: changes %u generation %u\n", i,
		       ev.changes[i], ev.generation[i]);
	return 0;
}

/* ------------------------------------------------------------------ */
/* params, reset-params, set-params */

static void print_params(const struct ccid_params *p)
{
	size_t len = p->len < CCID_MAX_PARAMS_SIZE ?
		     p->len : CCID_MAX_PARAMS_SIZE;

	if (p->protocol <= 1)
		printf("protocol: T=%u\n", p->protocol);
	else
		printf("protocol: 0x%02x\n", p->protocol);
	fputs("data: ", stdout);
	print_hex(p->data, len);
}

static int do_params(struct ctx *c, unsigned long req, struct ccid_params *p)
{
	struct ccid_words w;
	int ret;

	ret = open_reader(c);
	if (ret)
		return ret;
	p->slot = c->slot;
	p->timeout_ms = c->timeout_ms;
	if (ioctl(c->fd, req, p)) {
		w.status = p->status;
		w.error = p->error;
		return fail(c, errno, &w);
	}
	print_params(p);
	return 0;
}

static int cmd_params(struct ctx *c, int argc, char **argv)
{
	struct ccid_params p;
	int ret;

	ret = no_operands(c, argc, argv);
	if (ret)
		return ret;
	memset(&p, 0, sizeof(p));
	return do_params(c, CCID_IOC_GET_PARAMS, &p);
}

static int cmd_reset_params(struct ctx *c, int argc, char **argv)
{
	struct ccid_params p;
	int ret;

	ret = no_operands(c, argc, argv);
	if (ret)
		return ret;
	memset(&p, 0, sizeof(p));
	return do_params(c, CCID_IOC_RESET_PARAMS, &p);
}

static int cmd_set_params(struct ctx *c, int argc, char **argv)
{
	struct ccid_params p;
	uint8_t *data;
	size_t len;
	int first, ret;

	ret = parse_options(c, argc, argv, NULL, NULL, NULL, &first);
	if (ret)
		return ret;
	if (argc - first < 2)
		return usage_error(c, "usage: set-params T=0|T=1 HEX");
	memset(&p, 0, sizeof(p));
	if (!strcasecmp(argv[first], "T=0"))
		p.protocol = 0;
	else if (!strcasecmp(argv[first], "T=1"))
		p.protocol = 1;
	else
		return usage_error(c, "bad protocol '%s' (T=0 or T=1)",
				   argv[first]);
	ret = parse_hex_args(c, argc - first - 1, argv + first + 1, &data,
			     &len);
	if (ret)
		return ret;
	if (!len || len > CCID_MAX_PARAMS_SIZE) {
		free(data);
		return usage_error(c, "the parameters take 1 to %d bytes",
				   CCID_MAX_PARAMS_SIZE);
	}
	memcpy(p.data, data, len);
	p.len = len;
	free(data);
	return do_params(c, CCID_IOC_SET_PARAMS, &p);
}

/* ------------------------------------------------------------------ */

static const struct command commands[] = {
	{ "info", cmd_info },
	{ "power-on", cmd_power_on },
	{ "power-off", cmd_power_off },
	{ "status", cmd_status },
	{ "apdu", cmd_apdu },
	{ "verify-pin", cmd_verify_pin },
	{ "modify-pin", cmd_modify_pin },
	{ "secure", cmd_secure },
	{ "escape", cmd_escape },
	{ "abort", cmd_abort },
	{ "events", cmd_events },
	{ "params", cmd_params },
	{ "reset-params", cmd_reset_params },
	{ "set-params", cmd_set_params },
};

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

/* The options before the command; returns the command's index */
static int parse_global(struct ctx *c, int argc, char **argv, int *first)
{
	static const struct option version[] = {
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct option longopts[MAX_OPTIONS + 1];
	int opt, ret;

	merge_options(longopts, version);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:d:s:t:hV", longopts,
				  NULL)) != -1) {
		if (opt == 'V') {
			puts("ccidctl " CCIDCTL_VERSION);
			exit(EXIT_SUCCESS);
		}
		if (opt == '?')
			return bad_option(c, argv);
		if (opt == ':')
			return usage_error(c, "option '%s' needs an argument",
					   argv[optind - 1]);
		ret = common_option(c, opt, optarg);
		if (ret)
			return ret;
	}
	if (optind == argc)
		return usage_error(c, "no command given");
	*first = optind;
	return 0;
}

int main(int argc, char **argv)
{
	struct ctx c = { .fd = -1 };
	const struct command *cmd;
	int first = 0, ret;

	ret = parse_global(&c, argc, argv, &first);
	if (ret)
		return ret;
	cmd = find_command(argv[first]);
	if (!cmd)
		return usage_error(&c, "unknown command '%s'", argv[first]);
	c.cmd = cmd->name;
	ret = cmd->run(&c, argc - first, argv + first);
	if (c.fd >= 0)
		close(c.fd);
	if (fflush(stdout) || ferror(stdout)) {
		perror("ccidctl: stdout");
		return EXIT_FAILURE;
	}
	return ret;
}
