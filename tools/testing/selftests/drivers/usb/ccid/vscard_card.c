// SPDX-License-Identifier: GPL-2.0
/*
 * vscard_card - a smart card for QEMU's ccid-card-passthru
 *
 * Usage: vscard_card [--log FILE] SOCKET
 *
 * Listens on the unix socket SOCKET, takes one connection (QEMU's
 * "-chardev socket,path=SOCKET" of a ccid-card-passthru device, see
 * run-vm --reader passthru=SOCKET) and speaks the VSCard protocol on it:
 * a reader is added, a T=0 card with the ATR 3B 02 14 50 is inserted, and
 * the APDUs QEMU forwards are answered:
 *
 *   80 EE 00 00 Lc DATA [Le]          echo: DATA 90 00
 *   80 EE 00 00 00 LcHi LcLo DATA [Le Le]
 *                                     extended echo: DATA 90 00
 *   80 EE 00 00 Le                    Le bytes 00 01 02 ... (Le 0: 256),
 *                                     then 90 00
 *   80 EE 00 00                       90 00
 *   80 EF 00 00 ...                   sink: 90 00, whatever follows
 *   80 DD 00 00 ...                   drop: never answered
 *   80 EE with a wrong length         67 00
 *   anything else                     6D 00
 *
 * QEMU's usb-ccid keeps one pending answer per XfrBlock and stamps each
 * card answer with the bSeq of the oldest one, so after a dropped APDU
 * every later answer carries the bSeq of the command before it.
 *
 * The wire: every message is a header of three big-endian u32 (type,
 * reader id, payload length) and the payload.  QEMU 7.2 sends VSC_Init
 * when the card device is realized and again in reply to ours; it answers
 * VSC_ReaderAdd and VSC_ATR with a VSC_Error carrying code 0 (success);
 * it forwards each APDU as VSC_APDU and takes the answer as VSC_APDU.
 *
 * The log (--log, default stderr) gets one line per event: listening,
 * connected, init, reader added, card inserted, apdu N len=L, answer N
 * len=L sw=XXXX, dropped N, closed.  The program exits when QEMU closes
 * the connection (status 0), on SIGTERM or SIGINT (status 0), or on a
 * protocol or I/O error (status 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* VSCard message types and constants (libcacard's vscard_common.h) */
enum vsc_type {
	VSC_INIT = 1,
	VSC_ERROR,
	VSC_READER_ADD,
	VSC_READER_REMOVE,
	VSC_ATR,
	VSC_CARD_REMOVE,
	VSC_APDU,
	VSC_FLUSH,
	VSC_FLUSH_COMPLETE,
};

#define VSC_HDR_LEN		12
#define VSC_VERSION		2		/* MAKE_VERSION(0, 0, 2) */
#define VSC_UNDEFINED_READER	0xffffffffu
#define VSC_READER_ID		0
#define VSC_SUCCESS		0
/* More than QEMU sends: its APDUs come from a 64 KiB bulk-OUT buffer */
#define VSC_MAX_PAYLOAD		(1u << 20)

/* The magic travels as the bytes "VSCD" */
static const uint8_t vsc_magic[4] = { 'V', 'S', 'C', 'D' };
static const uint8_t card_atr[] = { 0x3b, 0x02, 0x14, 0x50 };
static const char reader_name[] = "vscard_card";

#define CLA_TEST		0x80
#define INS_ECHO		0xee
#define INS_SINK		0xef
#define INS_DROP		0xdd

#define SW_OK			0x9000
#define SW_WRONG_LENGTH		0x6700
#define SW_INS_NOT_SUPPORTED	0x6d00

enum card_state {
	WAIT_INIT,		/* our VSC_Init is out, QEMU's not yet seen */
	WAIT_READER,		/* VSC_ReaderAdd sent */
	WAIT_ATR,		/* VSC_ATR sent */
	READY,			/* card inserted */
};

struct card {
	int fd;
	enum card_state state;
	unsigned int apdus;
	unsigned int inits;
};

struct vsc_msg {
	uint32_t type;
	uint32_t reader;
	uint32_t len;
	uint8_t *data;
};

static FILE *log_file;
static volatile sig_atomic_t stop_signal;
/* The signal mask inside ppoll(): SIGTERM and SIGINT let through */
static sigset_t wait_mask;

/* ------------------------------------------------------------------ */
/* Log */

static void logline(const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	fprintf(log_file, "%ld.%03ld ", (long)ts.tv_sec, ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	vfprintf(log_file, fmt, ap);
	va_end(ap);
	fputc('\n', log_file);
	fflush(log_file);
}

/* ------------------------------------------------------------------ */
/* Socket I/O; SIGTERM and SIGINT are blocked except inside ppoll() */

static void on_signal(int sig)
{
	stop_signal = sig;
}

static int setup_signals(void)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
		return -1;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	if (sigprocmask(SIG_BLOCK, &block, &wait_mask))
		return -1;
	sigdelset(&wait_mask, SIGTERM);
	sigdelset(&wait_mask, SIGINT);
	return 0;
}

/* Wait until @fd is readable; -1 with errno EINTR when a signal came */
static int wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	for (;;) {
		if (stop_signal) {
			errno = EINTR;
			return -1;
		}
		if (ppoll(&p, 1, NULL, &wait_mask) > 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Read exactly @len bytes: 1 done, 0 end of file first, -1 error */
static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len) {
		if (wait_readable(fd))
			return -1;
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (!n)
			return 0;
		p += n;
		len -= n;
	}
	return 1;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/* ------------------------------------------------------------------ */
/* VSCard messages */

static int vsc_send(struct card *c, uint32_t type, uint32_t reader,
		    const void *data, uint32_t len)
{
	uint8_t hdr[VSC_HDR_LEN];

	put_be32(hdr, type);
	put_be32(hdr + 4, reader);
	put_be32(hdr + 8, len);
	if (write_full(c->fd, hdr, sizeof(hdr)) ||
	    write_full(c->fd, data, len)) {
		logline("error: write: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* 1 with a message in @m (free m->data), 0 connection closed, -1 error */
static int vsc_recv(struct card *c, struct vsc_msg *m)
{
	uint8_t hdr[VSC_HDR_LEN];
	int ret;

	ret = read_full(c->fd, hdr, sizeof(hdr));
	if (ret <= 0)
		return ret;
	m->type = get_be32(hdr);
	m->reader = get_be32(hdr + 4);
	m->len = get_be32(hdr + 8);
	if (m->len > VSC_MAX_PAYLOAD) {
		logline("error: message type %u with %u bytes", m->type,
			m->len);
		return -1;
	}
	m->data = malloc(m->len ? m->len : 1);
	if (!m->data)
		return -1;
	ret = read_full(c->fd, m->data, m->len);
	if (ret <= 0) {
		free(m->data);
		if (!ret)
			logline("error: connection closed inside a message");
		return -1;
	}
	return 1;
}

static int send_init(struct card *c)
{
	uint8_t init[12];

	memcpy(init, vsc_magic, sizeof(vsc_magic));
	put_be32(init + 4, VSC_VERSION);
	put_be32(init + 8, 0);			/* no capabilities */
	return vsc_send(c, VSC_INIT, VSC_UNDEFINED_READER, init, sizeof(init));
}

static int on_init(struct card *c, const struct vsc_msg *m)
{
	bool magic_ok = m->len >= 8 && !memcmp(m->data, vsc_magic, 4);

	c->inits++;
	logline("init %u from QEMU: magic %s, version %u", c->inits,
		magic_ok ? "ok" : "bad", m->len >= 8 ? get_be32(m->data + 4) : 0);
	if (!magic_ok)
		return -1;
	if (c->state != WAIT_INIT)
		return 0;
	c->state = WAIT_READER;
	return vsc_send(c, VSC_READER_ADD, VSC_UNDEFINED_READER, reader_name,
			strlen(reader_name));
}

/* QEMU's answer to ReaderAdd, ATR and CardRemove */
static int on_error(struct card *c, const struct vsc_msg *m)
{
	uint32_t code = m->len >= 4 ? get_be32(m->data) : 0xffffffffu;

	if (code != VSC_SUCCESS) {
		logline("error: QEMU reports error %u (reader %u)", code,
			m->reader);
		return -1;
	}
	switch (c->state) {
	case WAIT_READER:
		logline("reader added: id %u", m->reader);
		c->state = WAIT_ATR;
		return vsc_send(c, VSC_ATR, VSC_READER_ID, card_atr,
				sizeof(card_atr));
	case WAIT_ATR:
		logline("card inserted: ATR 3B 02 14 50");
		c->state = READY;
		return 0;
	default:
		logline("success report in state %d", c->state);
		return 0;
	}
}

/* ------------------------------------------------------------------ */
/* The card */

struct answer {
	uint8_t *buf;
	size_t len;
};

static int answer_alloc(struct answer *a, size_t data_len)
{
	a->buf = malloc(data_len + 2);
	a->len = data_len;
	return a->buf ? 0 : -1;
}

static void answer_sw(struct answer *a, uint16_t sw)
{
	a->buf[a->len++] = sw >> 8;
	a->buf[a->len++] = sw & 0xff;
}

/*
 * The data of an echo APDU (ISO 7816-4 cases 3 and 4, short or extended),
 * or @len 0 for a case 2 APDU with *@le bytes expected; -1 for a length
 * that matches no case.
 */
static int echo_body(const uint8_t *apdu, size_t n, const uint8_t **data,
		     size_t *len, size_t *le)
{
	size_t lc;

	*data = apdu + 5;
	*len = 0;
	*le = 0;
	if (n == 4)
		return 0;
	if (n == 5) {
		*le = apdu[4] ? apdu[4] : 256;
		return 0;
	}
	if (apdu[4]) {
		lc = apdu[4];
		if (n != 5 + lc && n != 6 + lc)
			return -1;
		*len = lc;
		return 0;
	}
	if (n < 7)
		return -1;
	lc = (size_t)apdu[5] << 8 | apdu[6];
	if (!lc || (n != 7 + lc && n != 9 + lc))
		return -1;
	*data = apdu + 7;
	*len = lc;
	return 0;
}

static int answer_echo(const uint8_t *apdu, size_t n, struct answer *a)
{
	const uint8_t *data;
	size_t len, le, i;

	if (echo_body(apdu, n, &data, &len, &le)) {
		if (answer_alloc(a, 0))
			return -1;
		answer_sw(a, SW_WRONG_LENGTH);
		return 0;
	}
	if (answer_alloc(a, len + le))
		return -1;
	memcpy(a->buf, data, len);
	for (i = 0; i < le; i++)
		a->buf[len + i] = i & 0xff;
	answer_sw(a, SW_OK);
	return 0;
}

/* 1 when the APDU is to be dropped, else 0 with the answer in @a */
static int card_answer(const uint8_t *apdu, size_t n, struct answer *a)
{
	uint16_t sw = SW_INS_NOT_SUPPORTED;

	if (n >= 4 && apdu[0] == CLA_TEST && !apdu[2] && !apdu[3]) {
		switch (apdu[1]) {
		case INS_DROP:
			return 1;
		case INS_ECHO:
			return answer_echo(apdu, n, a);
		case INS_SINK:
			sw = SW_OK;
			break;
		}
	}
	if (answer_alloc(a, 0))
		return -1;
	answer_sw(a, sw);
	return 0;
}

static int on_apdu(struct card *c, const struct vsc_msg *m)
{
	unsigned int n = ++c->apdus;
	struct answer a;
	int ret;

	logline("apdu %u len=%u", n, m->len);
	ret = card_answer(m->data, m->len, &a);
	if (ret < 0)
		return -1;
	if (ret) {
		logline("dropped %u", n);
		return 0;
	}
	ret = vsc_send(c, VSC_APDU, VSC_READER_ID, a.buf, a.len);
	if (!ret)
		logline("answer %u len=%zu sw=%02X%02X", n, a.len,
			a.buf[a.len - 2], a.buf[a.len - 1]);
	free(a.buf);
	return ret;
}

static int handle(struct card *c, const struct vsc_msg *m)
{
	switch (m->type) {
	case VSC_INIT:
		return on_init(c, m);
	case VSC_ERROR:
		return on_error(c, m);
	case VSC_APDU:
		return on_apdu(c, m);
	case VSC_FLUSH:
		logline("flush");
		return vsc_send(c, VSC_FLUSH_COMPLETE, m->reader, NULL, 0);
	default:
		logline("unexpected message type %u, reader %u, len %u",
			m->type, m->reader, m->len);
		return 0;
	}
}

/* Serve one connection: 0 when QEMU closed it or a signal came */
static int serve(int fd)
{
	struct card c = { .fd = fd, .state = WAIT_INIT };
	struct vsc_msg m;
	int ret;

	if (send_init(&c))
		return -1;
	for (;;) {
		ret = vsc_recv(&c, &m);
		if (ret <= 0)
			break;
		ret = handle(&c, &m);
		free(m.data);
		if (ret)
			return -1;
	}
	if (!ret) {
		logline("closed");
		return 0;
	}
	if (errno == EINTR && stop_signal)
		return 0;
	logline("error: read: %s", strerror(errno));
	return -1;
}

/* ------------------------------------------------------------------ */
/* Setup */

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int fd;

	if (len >= sizeof(sa.sun_path)) {
		fprintf(stderr, "vscard_card: socket path too long: %s\n",
			path);
		return -1;
	}
	memcpy(sa.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("vscard_card: socket");
		return -1;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1)) {
		perror("vscard_card: bind");
		close(fd);
		return -1;
	}
	return fd;
}

static int accept_one(int lfd)
{
	int fd;

	for (;;) {
		if (wait_readable(lfd))
			return -1;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0 || errno != EINTR)
			return fd;
	}
}

static int usage(void)
{
	fputs("usage: vscard_card [--log FILE] SOCKET\n", stderr);
	return 2;
}

static int open_log(const char *path)
{
	if (!path) {
		log_file = stderr;
		return 0;
	}
	log_file = fopen(path, "a");
	if (!log_file) {
		perror(path);
		return -1;
	}
	return 0;
}

static int run(const char *path)
{
	int lfd, fd, ret;

	lfd = listen_on(path);
	if (lfd < 0)
		return 1;
	logline("listening on %s", path);
	fd = accept_one(lfd);
	if (fd < 0) {
		ret = stop_signal ? 0 : 1;
		if (!stop_signal)
			logline("error: accept: %s", strerror(errno));
	} else {
		logline("connected");
		ret = serve(fd) ? 1 : 0;
		close(fd);
	}
	if (stop_signal)
		logline("signal %d: exiting", (int)stop_signal);
	close(lfd);
	unlink(path);
	return ret;
}

int main(int argc, char **argv)
{
	const char *log_path = NULL;
	int i = 1;

	if (argc > 2 && !strcmp(argv[1], "--log")) {
		log_path = argv[2];
		i = 3;
	}
	if (argc != i + 1 || argv[i][0] == '-')
		return usage();
	if (open_log(log_path))
		return 1;
	if (setup_signals()) {
		perror("vscard_card: signals");
		return 1;
	}
	return run(argv[i]);
}
