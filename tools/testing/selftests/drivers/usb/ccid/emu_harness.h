/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The harness that recovery_test.c and emu_test.c share, the way the hid
 * selftests share hid_common.h: one emulated reader (ccid_emu, attached
 * through USB/IP) per struct emu, its control FIFO and event log, the
 * kernel log of the test, uevents, sysfs attributes and counters, module
 * parameters put back at teardown, and the ioctl wrappers.
 *
 * Every test sees four witnesses: the ioctl's errno and whether its
 * structure was written back (the wrappers preset status and error to
 * 0xFF, which a real answer never carries), sysfs, the emulator's event
 * log (regular expressions: log_find(), log_count(), EXPECT_EVENT()), and
 * the new kernel log lines (kmsg_count(), EXPECT_KMSG(), expect_lines()).
 *
 * A fixture holds its struct emu (or several) and uses EMU_FIXTURE_HOOKS()
 * or calls emu_fixture_setup() and emu_fixture_teardown() itself.  The teardown runs in
 * the harness's parent (FIXTURE_TEARDOWN_PARENT), however the test ended:
 * the fixture is shared memory, and so is the kernel log store.  A failed
 * test shows the end of the emulator's log, its stderr and the new kernel
 * lines; CCID_VERBOSE=1 shows them for every test.  CCID_EMU names another
 * emulator binary, CCID_EMU_LOG_LINES how much of its log is shown (80).
 */
#ifndef CCID_EMU_HARNESS_H
#define CCID_EMU_HARNESS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/usb/ccid_reader.h>

/*
 * The harness's functions do not use all their parameters, and its
 * EXPECT_EQ(0, unsigned_field) compares an int with an unsigned.  Its
 * TEST_F() wrapper reads "child" after a longjmp; with a parent teardown
 * either value leads to exactly one teardown, which works in either
 * process (see emu_fixture_teardown()).
 */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wclobbered"
#include "kselftest_harness.h"
#include "ccid_test_util.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif

#define VHCI_ATTACH		"/sys/devices/platform/vhci_hcd.0/attach"
#define CCID_DRIVER		"/sys/bus/usb/drivers/ccid"
#define QUIRKS_PARAM		"/sys/module/ccid/parameters/quirks"
/* Attach, enumeration and bind under TCG */
#define NODE_WAIT_MS		30000
#define EMU_EXIT_MS		5000
/* A control line's ctl-ok */
#define CTL_WAIT_MS		5000
#define POLLIN_BITS		(POLLIN | POLLRDNORM)

/* ------------------------------------------------------------------ */
/* Small helpers */

/* A whole file, NUL-terminated, or NULL */
static inline char *slurp(const char *path)
{
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap), *p;
	ssize_t n;
	int fd;

	if (!buf)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			p = realloc(buf, cap * 2);
			if (!p)
				break;
			buf = p;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* A sysfs attribute, NUL-terminated, newline kept; "" when unreadable */
static inline void read_attr(const char *path, char *buf, size_t size)
{
	ssize_t n = -1;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, size - 1);
		close(fd);
	}
	buf[n < 0 ? 0 : n] = '\0';
}

static inline int pidfd_open_(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

/* Complete lines of @text matching the extended regex @re, counted */
static inline int count_lines(const char *text, const char *re)
{
	const char *p = text;
	char line[1024];
	regex_t r;
	int n = 0;

	if (!text || regcomp(&r, re, REG_EXTENDED | REG_NOSUB))
		return -1;
	while (*p) {
		size_t len = strcspn(p, "\n");

		if (!p[len])
			break;		/* a line still being written */
		strf(line, sizeof(line), "%.*s", (int)len, p);
		if (!regexec(&r, line, 0, NULL, 0))
			n++;
		p += len + 1;
	}
	regfree(&r);
	return n;
}

/* @s with the extended regex's special characters escaped */
static inline void re_quote(char *out, size_t size, const char *s)
{
	size_t k = 0;

	for (; *s && k + 3 < size; s++) {
		if (strchr("\\^$.|?*+()[]{}", *s))
			out[k++] = '\\';
		out[k++] = *s;
	}
	out[k] = '\0';
}

/* ------------------------------------------------------------------ */
/* An emulated reader */

struct emu {
	pid_t pid;			/* 0: none running */
	int status;			/* its wait status once reaped */
	int fd;				/* the node, opened by emu_start() */
	int uevent_fd;			/* valid in the test process only */
	char dir[64];			/* its files: log, ctl (FIFO), stderr */
	char log[128], ctl[128], err[128];
	char busid[32];			/* USB device, e.g. 3-1 */
	char busre[64];			/* the same, as a regex */
	char node[32];			/* ccidN, or "" when no driver bound */
	char dev[64];			/* /dev/ccidN */
	char intf[96];			/* /sys/bus/usb/devices/BUSID:1.0 */
	struct saved_param {
		const char *path;
		char val[256];
		bool changed;
	} params[3];			/* module parameters to put back */
};

static inline void emu_init(struct emu *e)
{
	memset(e, 0, sizeof(*e));
	e->fd = -1;
	e->uevent_fd = -1;
}

static inline const char *emu_path(void)
{
	static char path[PATH_MAX];
	char self[PATH_MAX];
	ssize_t n;

	if (getenv("CCID_EMU") && *getenv("CCID_EMU"))
		return getenv("CCID_EMU");
	if (path[0])
		return path;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return "ccid_emu";
	self[n] = '\0';
	if (strrchr(self, '/'))
		*strrchr(self, '/') = '\0';
	strf(path, sizeof(path), "%s/ccid_emu", self);
	return path;
}

/* Why the tests cannot run here, or NULL */
static inline const char *emu_skip_reason(void)
{
	if (!in_vm())
		return "not in the ccid test VM (CCID_VM unset): use run-vm --reader none";
	if (geteuid())
		return "needs root";
	if (access(VHCI_ATTACH, W_OK))
		return "vhci_hcd is not loaded (no " VHCI_ATTACH ")";
	if (access(emu_path(), X_OK))
		return "ccid_emu not built (make -C tools/testing/selftests/drivers/usb/ccid ccid_emu)";
	if (access(CCID_DRIVER, F_OK))
		return "ccid.ko is not loaded";
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The kernel log of the test, from /dev/kmsg */

#define KMSG_TEXT	(1 << 17)
#define KMSG_LINES	4096

/*
 * New records' text, one line each, and each line's priority.  Shared
 * memory (mapped before the harness forks), so that the parent-side
 * teardown can show what the test saw.
 */
struct kmsg_store {
	size_t len;
	int lines;
	uint8_t prio[KMSG_LINES];
	char text[KMSG_TEXT];
};

static struct kmsg_store *kmsg;
static int kmsg_fd = -1;		/* in the test process */

static void __attribute__((constructor)) kmsg_store_map(void)
{
	void *p = mmap(NULL, sizeof(*kmsg), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	kmsg = p == MAP_FAILED ? NULL : p;
}

/* Only lines logged from now on count; 0 or -errno */
static inline int kmsg_mark(void)
{
	if (kmsg_fd < 0)
		kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd < 0)
		return -errno;
	if (lseek(kmsg_fd, 0, SEEK_END) < 0)
		return -errno;
	if (!kmsg)
		return -ENOMEM;
	kmsg->len = 0;
	kmsg->lines = 0;
	kmsg->text[0] = '\0';
	return 0;
}

/* Append the new records ("pri,seq,ts,flags;text\n KEY=..") */
static inline void kmsg_pull(void)
{
	char rec[8192];
	ssize_t n;

	if (kmsg_fd < 0 || !kmsg)
		return;
	for (;;) {
		char *text, *nl;
		size_t len;

		n = read(kmsg_fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;	/* overwritten records: go on */
		/* EAGAIN: nothing new; EINVAL: cannot happen with 8 KiB */
		if (n <= 0)
			break;
		rec[n] = '\0';
		text = strchr(rec, ';');
		if (!text)
			continue;
		text++;
		nl = strchr(text, '\n');
		if (nl)
			*nl = '\0';
		len = strlen(text);
		if (kmsg->len + len + 2 > sizeof(kmsg->text) ||
		    kmsg->lines >= KMSG_LINES)
			continue;
		kmsg->prio[kmsg->lines++] = atoi(rec) & 7;
		memcpy(kmsg->text + kmsg->len, text, len);
		kmsg->len += len;
		kmsg->text[kmsg->len++] = '\n';
		kmsg->text[kmsg->len] = '\0';
	}
}

/* New kernel log lines matching the regex */
static inline int __printf(1, 2) kmsg_count(const char *fmt, ...)
{
	char re[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(re, sizeof(re), fmt, ap);
	va_end(ap);
	kmsg_pull();
	return kmsg ? count_lines(kmsg->text, re) : -1;
}

/* Line @i of the store, its length in *lenp; NULL past the end */
static inline const char *kmsg_line(int i, size_t *lenp)
{
	const char *p = kmsg->text;

	if (i >= kmsg->lines)
		return NULL;
	while (i-- > 0)
		p += strcspn(p, "\n") + 1;
	*lenp = strcspn(p, "\n");
	return p;
}

/* Wait until the kernel printed @text (a whole line) */
static inline bool kmsg_wait(const char *text, long ms)
{
	long end = now_ms() + ms;
	const char *p;
	size_t len;
	int i;

	for (;;) {
		kmsg_pull();
		for (i = 0; kmsg && (p = kmsg_line(i, &len)); i++)
			if (len == strlen(text) && !memcmp(p, text, len))
				return true;
		if (now_ms() > end)
			return false;
		sleep_ms(50);
	}
}

/* The driver's lines about this reader start with this (a regex) */
#define DRV	"^ccid %s:1\\.0: "

/* Lines no test may cause */
static const char * const kernel_bad[] = {
	"BUG:", "WARNING:", "Oops", "general protection", "blocked for more than",
	"UBSAN:", "KASAN:", "KFENCE:", "kernel BUG", "Kernel panic",
	"refcount_t:", "list_add corruption", "list_del corruption",
	"DEBUG_LOCKS_WARN_ON", "possible circular locking",
	"cannot resubmit interrupt-IN", "interrupt-IN keeps failing",
	/* only the test of a reader that stays dead expects this one */
	"reader still dead after a reset",
};

/* No new line says the kernel or the driver went wrong */
static inline void expect_kmsg_clean(struct __test_metadata *_metadata, int line,
			      bool dead_ok)
{
	const char *bad;
	size_t i;

	kmsg_pull();
	for (i = 0; kmsg && i < ARRAY_SIZE(kernel_bad) - dead_ok; i++) {
		bad = kernel_bad[i];
		EXPECT_EQ(NULL, strstr(kmsg->text, bad))
			TH_LOG("line %d: kernel log has \"%s\"", line, bad);
	}
}

#define EXPECT_KMSG_CLEAN()	expect_kmsg_clean(_metadata, __LINE__, false)

/* Exactly @n matching new kernel log lines */
#define EXPECT_KMSG(n, fmt, ...) do {					\
	int __want = (n);						\
	EXPECT_EQ(__want, kmsg_count(fmt, ##__VA_ARGS__))		\
		TH_LOG("kernel log lines /" fmt "/: expected %d",	\
		       ##__VA_ARGS__, __want);				\
} while (0)

/*
 * The driver's lines about @busid must be exactly @want (prio, text after
 * "ccid BUSID:1.0: "), in this order; and no line says the kernel went
 * wrong.
 */
struct want_line {
	int prio;
	char text[400];
};

static inline void expect_lines(struct __test_metadata *_metadata,
			 const char *busid, const struct want_line *want,
			 size_t nwant)
{
	char prefix[64];
	const char *p;
	size_t len, skip, n = 0, i;
	bool same = true;
	int k;

	strf(prefix, sizeof(prefix), "ccid %s:1.0: ", busid);
	skip = strlen(prefix);
	kmsg_pull();
	for (k = 0; kmsg && (p = kmsg_line(k, &len)); k++) {
		if (len < skip || memcmp(p, prefix, skip))
			continue;
		same = same && n < nwant && kmsg->prio[k] == want[n].prio &&
		       len - skip == strlen(want[n].text) &&
		       !memcmp(p + skip, want[n].text, len - skip);
		n++;
	}
	same = same && n == nwant;
	EXPECT_TRUE(same) {
		for (i = 0; i < nwant; i++)
			TH_LOG("expected <%d> %s", want[i].prio, want[i].text);
		for (k = 0; kmsg && (p = kmsg_line(k, &len)); k++)
			if (len >= skip && !memcmp(p, prefix, skip))
				TH_LOG("got      <%d> %.*s", kmsg->prio[k],
				       (int)(len - skip), p + skip);
		if (!n)
			TH_LOG("got no line from ccid about %s:1.0", busid);
	}
	expect_kmsg_clean(_metadata, __LINE__, false);
}

/*
 * The emulated device's usbfs node, opened for USBDEVFS_RESET (the same
 * usb_reset_device() a driver's recovery does); fd or -errno.
 */
static inline int usbfs_open(const struct emu *e)
{
	char path[128], attr[32];
	unsigned int bus, num;
	int fd;

	strf(path, sizeof(path), "/sys/bus/usb/devices/%s/busnum", e->busid);
	read_attr(path, attr, sizeof(attr));
	if (sscanf(attr, "%u", &bus) != 1)
		return -ENODEV;
	strf(path, sizeof(path), "/sys/bus/usb/devices/%s/devnum", e->busid);
	read_attr(path, attr, sizeof(attr));
	if (sscanf(attr, "%u", &num) != 1)
		return -ENODEV;
	strf(path, sizeof(path), "/dev/bus/usb/%03u/%03u", bus, num);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* ------------------------------------------------------------------ */
/* uevents */

/* A netlink socket for the kernel's uevents from now on; fd or -errno */
static inline int uevent_socket(void)
{
	struct sockaddr_nl sa = {
		.nl_family = AF_NETLINK, .nl_groups = 1,
	};
	int size = 1 << 20;
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			NETLINK_KOBJECT_UEVENT);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -errno;
	}
	return fd;
}

/*
 * Count the "change" uevents of @busid:1.0 carrying @key and @key2 (if
 * not NULL) received on @fd so far, waiting up to @ms for the first;
 * @last (if not NULL) gets the CCID_ keys of the last one.  -1 without a
 * socket.
 */
static inline int uevents_with(int fd, const char *busid, const char *key,
			const char *key2, char *last, size_t size, long ms)
{
	char buf[8192], suffix[48];
	long end = now_ms() + ms;
	int n = 0;

	if (fd < 0)
		return -1;
	strf(suffix, sizeof(suffix), "/%s:1.0", busid);
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf) - 1, 0);
		bool mine = false, has = false, has2 = !key2;
		char *p;

		if (len < 0) {
			if (errno != EAGAIN || n || now_ms() > end)
				return n;
			sleep_ms(20);
			continue;
		}
		buf[len] = '\0';
		for (p = buf; p < buf + len; p += strlen(p) + 1) {
			if (!strncmp(p, "DEVPATH=", 8) &&
			    strlen(p) > strlen(suffix) &&
			    !strcmp(p + strlen(p) - strlen(suffix), suffix))
				mine = true;
			if (!strcmp(p, key))
				has = true;
			if (key2 && !strcmp(p, key2))
				has2 = true;
		}
		if (mine && has && has2 && !strncmp(buf, "change@", 7)) {
			n++;
			if (!last)
				continue;
			last[0] = '\0';
			for (p = buf + strlen(buf) + 1; p < buf + len;
			     p += strlen(p) + 1)
				if (!strncmp(p, "CCID_", 5) &&
				    strlen(last) + strlen(p) + 2 < size) {
					strcat(last, p);
					strcat(last, " ");
				}
		}
	}
}

/* Listen to the kernel's uevents from now on, on e->uevent_fd */
static inline void uevent_listen(struct emu *e)
{
	int fd = uevent_socket();

	e->uevent_fd = fd < 0 ? -1 : fd;
}

/*
 * "change" uevents of the reader's interface with CCID_EVENT=reset and
 * CCID_SLOTS=@slots received since the last call; -1 without a socket.
 */
static inline int uevent_resets(struct emu *e, const char *slots)
{
	char want[64];

	strf(want, sizeof(want), "CCID_SLOTS=%s", slots);
	return uevents_with(e->uevent_fd, e->busid, "CCID_EVENT=reset", want,
			    NULL, 0, 0);
}

/* ------------------------------------------------------------------ */
/* The emulator's event log */

/*
 * Index of the first complete line of @text at or after line @from that
 * matches the regex @re, its text in @line (may be NULL); -1 when there
 * is none.  A last line without its newline is still being written.
 */
static inline int text_find_re(const char *text, int from, char *line,
			       size_t size, const char *re)
{
	char buf[1024];
	const char *p;
	int i = 0, found = -1;
	regex_t r;

	if (!text || regcomp(&r, re, REG_EXTENDED | REG_NOSUB))
		return -1;
	for (p = text; *p; i++) {
		size_t len = strcspn(p, "\n");

		if (!p[len])
			break;		/* a line still being written */
		strf(buf, sizeof(buf), "%.*s", (int)len, p);
		if (i >= from && !regexec(&r, buf, 0, NULL, 0)) {
			found = i;
			if (line)
				strf(line, size, "%s", buf);
			break;
		}
		p += len + 1;
	}
	regfree(&r);
	return found;
}

/*
 * Index of the first complete event line at or after line @from that
 * matches the regex, its text in @line (may be NULL); -1 when there is
 * none.
 */
static inline int __printf(5, 6) log_find(const struct emu *e, int from, char *line,
				   size_t size, const char *fmt, ...)
{
	char re[512], *log;
	va_list ap;
	int found;

	va_start(ap, fmt);
	vsnprintf(re, sizeof(re), fmt, ap);
	va_end(ap);
	log = slurp(e->log);
	found = text_find_re(log, from, line, size, re);
	free(log);
	return found;
}

/* Complete event lines matching the regex (0 without a log) */
static inline int __printf(2, 3) log_count(const struct emu *e, const char *fmt, ...)
{
	char re[512], *log;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(re, sizeof(re), fmt, ap);
	va_end(ap);
	log = slurp(e->log);
	n = log ? count_lines(log, re) : 0;
	free(log);
	return n;
}

/* Number of complete event lines so far */
static inline int log_lines(const struct emu *e)
{
	char *log = slurp(e->log), *p;
	int n = 0;

	for (p = log; p && *p; p++)
		n += *p == '\n';
	free(log);
	return n;
}

/* Wait up to @ms for a matching event at or after line @from; its index */
static inline int __printf(6, 7) log_wait(const struct emu *e, long ms, int from,
				   char *line, size_t size,
				   const char *fmt, ...)
{
	long end = now_ms() + ms;
	char re[512];
	va_list ap;
	int i;

	va_start(ap, fmt);
	vsnprintf(re, sizeof(re), fmt, ap);
	va_end(ap);
	for (;;) {
		i = log_find(e, from, line, size, "%s", re);
		if (i >= 0 || now_ms() > end)
			return i;
		sleep_ms(20);
	}
}

/* The emulator logged a matching event (waits a little for it) */
#define EXPECT_EVENT(e, fmt, ...) do {					\
	int __i = log_wait(e, 2000, 0, NULL, 0, fmt, ##__VA_ARGS__);	\
	EXPECT_LE(0, __i)						\
		TH_LOG("no emulator event /" fmt "/", ##__VA_ARGS__);	\
} while (0)

/* Exactly @n matching events */
#define EXPECT_EVENTS(n, e, fmt, ...) do {				\
	int __want = (n);						\
	EXPECT_EQ(__want, log_count(e, fmt, ##__VA_ARGS__))		\
		TH_LOG("emulator events /" fmt "/: expected %d",	\
		       ##__VA_ARGS__, __want);				\
} while (0)

/* The command number the emulator gave the XfrBlock carrying @apdu */
static inline int emu_cmd_of(const struct emu *e, uint8_t slot, const uint8_t *apdu,
		      size_t len)
{
	char data[2 * 64 + 2], *log = slurp(e->log), *p, *nl;
	unsigned int n, s;
	int found = -1;

	hex_compact(data, sizeof(data), apdu, len);
	for (p = log; p && *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = '\0';
		if (sscanf(p, "cmd %u type=0x6f slot=%u", &n, &s) == 2 &&
		    s == slot && strstr(p, " data=") &&
		    !strcmp(strstr(p, " data=") + 6, data)) {
			found = n;
			break;
		}
	}
	free(log);
	return found;
}

/* The number of the last command the emulator received */
static inline int emu_last_cmd(const struct emu *e)
{
	char *log = slurp(e->log), *p, *nl;
	unsigned int n;
	int last = 0;

	for (p = log; p && *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		if (sscanf(p, "cmd %u ", &n) == 1)
			last = n;
	}
	free(log);
	return last;
}

/* ------------------------------------------------------------------ */
/* Starting and stopping the emulator, its control FIFO */

/*
 * Reap the emulator if it exited.  Return: 1 when it is gone, 0 while it
 * runs, -1 when it is not a child of this process.
 */
static inline int emu_reap(struct emu *e)
{
	int st;
	pid_t r;

	if (e->pid <= 0)
		return 1;
	r = waitpid(e->pid, &st, WNOHANG);
	if (r == e->pid) {
		e->status = st;
		e->pid = 0;
		return 1;
	}
	return r < 0 && errno == ECHILD ? -1 : 0;
}

/*
 * Wait up to @ms for the emulator to exit.  Works in the process that
 * started it (waitpid) and in any other (a pidfd: the teardown runs in
 * the harness's parent process).
 */
static inline bool emu_wait_gone(struct emu *e, long ms)
{
	long end = now_ms() + ms;
	struct pollfd p;
	bool gone;
	int pfd;

	for (;;) {
		int r = emu_reap(e);

		if (r > 0)
			return true;
		if (r < 0) {
			/* not our child: ESRCH or a readable pidfd means gone */
			pfd = pidfd_open_(e->pid);
			if (pfd < 0) {
				e->pid = 0;
				return true;
			}
			p.fd = pfd;
			p.events = POLLIN;
			gone = poll(&p, 1, (int)(end - now_ms() > 0 ?
						 end - now_ms() : 0)) == 1;
			close(pfd);
			if (gone)
				e->pid = 0;
			return gone;
		}
		if (now_ms() > end)
			return false;
		sleep_ms(20);
	}
}

/*
 * Write a control line to the FIFO, whose reader may be gone (no
 * SIGPIPE); no wait (quit and disconnect end the emulator).
 */
static inline int emu_ctl_nowait(const struct emu *e, const char *line)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	char buf[256];
	size_t len;
	ssize_t n;
	int fd;

	if (!e->ctl[0])
		return -EBADF;
	strf(buf, sizeof(buf), "%s\n", line);
	len = strlen(buf);
	fd = open(e->ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	sigaction(SIGPIPE, &ign, &old);
	n = write(fd, buf, len);
	sigaction(SIGPIPE, &old, NULL);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/* A control line, then its ctl-ok: 0, -EINVAL (ctl-error), -ETIMEDOUT */
static inline int emu_ctl(const struct emu *e, const char *line)
{
	char q[256];
	long end = now_ms() + CTL_WAIT_MS;
	int n_ok, n_bad, ret;

	re_quote(q, sizeof(q), line);
	n_ok = log_count(e, "^ctl-ok %s$", q);
	n_bad = log_count(e, "^ctl-error %s$", q);
	ret = emu_ctl_nowait(e, line);
	if (ret)
		return ret;
	for (;;) {
		if (log_count(e, "^ctl-ok %s$", q) > n_ok)
			return 0;
		if (log_count(e, "^ctl-error %s$", q) > n_bad)
			return -EINVAL;
		if (now_ms() > end)
			return -ETIMEDOUT;
		sleep_ms(20);
	}
}

#define ASSERT_CTL(e, line) do {					\
	int __r = emu_ctl(e, line);					\
	ASSERT_EQ(0, __r) TH_LOG("control \"%s\": %s", line,		\
				 errname(__r));				\
} while (0)

/*
 * Start ccid_emu with @opts (NULL-terminated), which looks for the node
 * for up to @node_timeout_ms.  The emulator dies with the test process
 * (PR_SET_PDEATHSIG), whatever happens to the test.  0 or -errno.
 */
static inline int emu_spawn(struct emu *e, long node_timeout_ms,
		     const char * const *opts)
{
	char timeout[24], *argv[84];
	pid_t parent = getpid(), pid;
	const char *path = emu_path();
	int argc = 0, fd, errfd;

	if (access(path, X_OK))
		return -ENOENT;
	if (!e->dir[0]) {
		strf(e->dir, sizeof(e->dir), "/tmp/%s.XXXXXX",
		     program_invocation_short_name);
		if (!mkdtemp(e->dir)) {
			e->dir[0] = '\0';
			return -errno;
		}
	}
	strf(e->log, sizeof(e->log), "%s/log", e->dir);
	strf(e->ctl, sizeof(e->ctl), "%s/ctl", e->dir);
	strf(e->err, sizeof(e->err), "%s/stderr", e->dir);
	unlink(e->log);
	unlink(e->ctl);
	if (mkfifo(e->ctl, 0600))
		return -errno;
	e->busid[0] = e->busre[0] = e->node[0] = e->dev[0] = e->intf[0] = '\0';
	e->status = -1;

	strf(timeout, sizeof(timeout), "%ld", node_timeout_ms);
	argv[argc++] = (char *)path;
	argv[argc++] = "--log";
	argv[argc++] = e->log;
	argv[argc++] = "--ctl";
	argv[argc++] = e->ctl;
	argv[argc++] = "--node-timeout";
	argv[argc++] = timeout;
	while (opts && *opts && argc < (int)ARRAY_SIZE(argv) - 1)
		argv[argc++] = (char *)*opts++;
	argv[argc] = NULL;

	errfd = open(e->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	fflush(stdout);
	fflush(stderr);
	/* not "e->pid = fork()": *e is shared with the harness's parent */
	pid = fork();
	if (pid < 0) {
		if (errfd >= 0)
			close(errfd);
		return -errno;
	}
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(126);
		fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		dup2(errfd >= 0 ? errfd : fd, 1);
		dup2(errfd >= 0 ? errfd : fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	e->pid = pid;
	if (errfd >= 0)
		close(errfd);
	return 0;
}

/*
 * Wait for the "node" event, "node dev=/dev/ccidN busid=B" or, when no
 * driver took the reader, "node busid=B".  0, -ECHILD if the emulator
 * died, -ETIMEDOUT, -EINVAL for a malformed line.
 */
static inline int emu_wait_node(struct emu *e, long ms)
{
	long end = now_ms() + ms;
	char line[256], *b;
	size_t i, k;

	while (log_find(e, 0, line, sizeof(line), "^node ") < 0) {
		if (emu_reap(e))
			return -ECHILD;
		if (now_ms() > end)
			return -ETIMEDOUT;
		sleep_ms(20);
	}
	b = strstr(line, " busid=");
	if (!b)
		return -EINVAL;
	strf(e->busid, sizeof(e->busid), "%s", b + 7);
	strf(e->intf, sizeof(e->intf), "/sys/bus/usb/devices/%s:1.0",
	     e->busid);
	for (i = 0, k = 0; e->busid[i] && k + 3 < sizeof(e->busre); i++) {
		if (e->busid[i] == '.')
			e->busre[k++] = '\\';
		e->busre[k++] = e->busid[i];
	}
	e->busre[k] = '\0';
	if (!strncmp(line, "node dev=/dev/", 14)) {
		*b = '\0';
		strf(e->node, sizeof(e->node), "%s", line + 14);
		strf(e->dev, sizeof(e->dev), "/dev/%s", e->node);
	}
	return 0;
}

/* Open the reader's node; devtmpfs may make it a moment after sysfs */
static inline int open_node(const struct emu *e)
{
	long end = now_ms() + 5000;
	int fd;

	while ((fd = open(e->dev, O_RDWR | O_CLOEXEC)) < 0 &&
	       errno == ENOENT && now_ms() < end)
		sleep_ms(20);
	return fd < 0 ? -errno : fd;
}

/*
 * Start ccid_emu with the options (NULL-terminated), wait until the
 * driver took its reader and open the node as e->fd.  0, or -errno.
 */
static inline int __attribute__((sentinel)) emu_start(struct emu *e, ...)
{
	const char *opts[64];
	size_t n = 0;
	va_list ap;
	int ret;

	va_start(ap, e);
	while (n < ARRAY_SIZE(opts) - 1 &&
	       (opts[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	opts[n] = NULL;
	ret = emu_spawn(e, 20000, opts);
	if (ret)
		return ret;
	ret = emu_wait_node(e, NODE_WAIT_MS);
	if (ret)
		return ret == -EINVAL ? ret : -ENODEV;
	if (!e->node[0])
		return -ENODEV;
	ret = open_node(e);
	if (ret < 0)
		return ret;
	e->fd = ret;
	return 0;
}

/* The end of a file, for a failed test: to stderr, as "#" lines */
static inline void dump_file(const char *what, const char *path, int last)
{
	char *text = slurp(path), *p;
	int lines = 0;

	if (!text)
		return;
	for (p = text; *p; p++)
		lines += *p == '\n';
	p = text;
	while (lines > last && (p = strchr(p, '\n'))) {
		p++;
		lines--;
	}
	fprintf(stderr, "# --- %s (last %d lines) ---\n", what, last);
	while (p && *p) {
		size_t len = strcspn(p, "\n");

		fprintf(stderr, "#   %.*s\n", (int)len, p);
		p += len + (p[len] ? 1 : 0);
	}
	free(text);
}

/* The emulator's log and stderr, the new kernel lines */
static inline void emu_dump(const struct emu *e)
{
	const char *max = getenv("CCID_EMU_LOG_LINES");

	if (!e->log[0])
		return;
	dump_file("emulator events", e->log, max ? atoi(max) : 80);
	dump_file("emulator stderr", e->err, 10);
}

/*
 * Start an emulator with @args (space-separated), which looks for the
 * node for 2 s only, and wait for its node event.  @bound: the driver
 * must take the reader (a node), or must not.  The test opens the node
 * with open_node().
 */
static inline void emu_up(struct __test_metadata *_metadata, struct emu *e,
		   const char *args, bool bound)
{
	char copy[512], *tok, *save = NULL;
	const char *opts[64];
	size_t n = 0;
	int ret;

	strf(copy, sizeof(copy), "%s", args ? args : "");
	for (tok = strtok_r(copy, " ", &save); tok && n < ARRAY_SIZE(opts) - 1;
	     tok = strtok_r(NULL, " ", &save))
		opts[n++] = tok;
	opts[n] = NULL;
	ret = emu_spawn(e, 2000, opts);
	ASSERT_EQ(0, ret) TH_LOG("starting %s: %s", emu_path(), errname(ret));
	ret = emu_wait_node(e, NODE_WAIT_MS);
	if (ret)
		emu_dump(e);
	ASSERT_EQ(0, ret) TH_LOG("ccid_emu %s: no node event: %s (wait status %#x)",
				 args, errname(ret), e->status);
	if (bound != !!e->node[0])
		emu_dump(e);
	ASSERT_EQ(bound, !!e->node[0])
		TH_LOG("ccid_emu %s: the driver %s the reader", args,
		       e->node[0] ? "took" : "did not take");
}

/*
 * "quit", then wait for the exit (SIGTERM, then SIGKILL, if it does not
 * come); close e->fd.  Return: the exit status, or -1 when it did not
 * exit normally.
 */
static inline int emu_stop(struct emu *e)
{
	if (e->pid > 0 && !emu_reap(e)) {
		emu_ctl_nowait(e, "quit");
		if (!emu_wait_gone(e, EMU_EXIT_MS)) {
			kill(e->pid, SIGTERM);
			if (!emu_wait_gone(e, 3000)) {
				kill(e->pid, SIGKILL);
				emu_wait_gone(e, 3000);
			}
		}
	}
	/* the last close() after an unplug frees the driver's memory */
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
	return WIFEXITED(e->status) ? WEXITSTATUS(e->status) : -1;
}

/* The usbmisc node of the interface, from sysfs, into e->node */
static inline void sysfs_node(struct emu *e)
{
	char path[160];
	struct dirent *de;
	DIR *dp;

	e->node[0] = '\0';
	strf(path, sizeof(path), "%s/usbmisc", e->intf);
	dp = opendir(path);
	if (!dp)
		return;
	while ((de = readdir(dp)))
		if (!strncmp(de->d_name, "ccid", 4))
			strf(e->node, sizeof(e->node), "%s", de->d_name);
	closedir(dp);
}

/* The driver bound to the interface, or "" */
static inline void driver_of(const struct emu *e, char *name, size_t size)
{
	char path[160], link[PATH_MAX];
	ssize_t n;

	strf(path, sizeof(path), "%s/driver", e->intf);
	n = readlink(path, link, sizeof(link) - 1);
	link[n < 0 ? 0 : n] = '\0';
	strf(name, size, "%s", strrchr(link, '/') ? strrchr(link, '/') + 1 :
	     link);
}

/* ------------------------------------------------------------------ */
/* Module parameters, put back at teardown */

static inline struct saved_param *param_slot(struct emu *e, const char *path)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(e->params); i++)
		if (e->params[i].path && !strcmp(e->params[i].path, path))
			return &e->params[i];
	for (i = 0; i < ARRAY_SIZE(e->params); i++)
		if (!e->params[i].path) {
			e->params[i].path = path;
			return &e->params[i];
		}
	return NULL;
}

/* Write a parameter, saving its value the first time; 0 or -errno */
static inline int param_set(struct emu *e, const char *path, const char *val)
{
	struct saved_param *sp = param_slot(e, path);
	char buf[256];

	if (!sp)
		return -ENOSPC;
	if (!sp->changed) {
		if (access(path, W_OK))
			return -errno;
		read_attr(path, buf, sizeof(buf));
		buf[strcspn(buf, "\n")] = '\0';
		strf(sp->val, sizeof(sp->val), "%s", buf);
		sp->changed = true;
	}
	return write_file(path, val, strlen(val));
}

/* Put a parameter back; an empty one is written as a lone NUL byte */
static inline int param_restore(struct emu *e, const char *path)
{
	struct saved_param *sp = param_slot(e, path);
	int ret;

	if (!sp || !sp->changed)
		return 0;
	ret = write_file(path, sp->val, *sp->val ? strlen(sp->val) : 1);
	if (!ret)
		sp->changed = false;
	return ret;
}

/* The value param_set() saved */
static inline const char *param_saved(struct emu *e, const char *path)
{
	struct saved_param *sp = param_slot(e, path);

	return sp ? sp->val : "";
}

static inline int quirks_set(struct emu *e, const char *val)
{
	return param_set(e, QUIRKS_PARAM, val);
}

static inline int quirks_restore(struct emu *e)
{
	return param_restore(e, QUIRKS_PARAM);
}

/* ------------------------------------------------------------------ */
/* Setup and teardown */

/*
 * Skip outside the test VM; mark the kernel log and listen for uevents.
 * The fixture's other emulators only need emu_init().
 */
static inline void emu_fixture_setup(struct __test_metadata *_metadata, struct emu *e)
{
	const char *why = emu_skip_reason();
	int ret;

	emu_init(e);
	if (why)
		SKIP(return, "%s", why);
	ret = kmsg_mark();
	ASSERT_EQ(0, ret) TH_LOG("/dev/kmsg: %s", errname(ret));
	uevent_listen(e);
}

/*
 * In whichever process the harness runs it: put the module parameters
 * back, stop the emulator (the test process's descriptors are not ours:
 * "quit" through the FIFO's path; the end of the test process has also
 * sent SIGTERM), wait until its USB device is gone, show what happened if
 * the test failed, remove the emulator's files.  @kmsg_too: show the new
 * kernel lines as well (once per fixture).
 */
static inline void emu_fixture_teardown(struct __test_metadata *_metadata, struct emu *e,
			 bool kmsg_too)
{
	bool show = !__test_passed(_metadata) || getenv("CCID_VERBOSE") ||
		    getenv("CCID_RECOVERY_VERBOSE");
	char path[160];
	size_t i;
	long end;

	for (i = 0; i < ARRAY_SIZE(e->params); i++)
		if (e->params[i].path &&
		    param_restore(e, e->params[i].path))
			fprintf(stderr, "# could not restore %s\n",
				e->params[i].path);
	if (e->pid > 0) {
		emu_ctl_nowait(e, "quit");
		if (!emu_wait_gone(e, EMU_EXIT_MS)) {
			fprintf(stderr, "# ccid_emu %d ignored quit: killing it\n",
				(int)e->pid);
			kill(e->pid, SIGKILL);
			emu_wait_gone(e, 3000);
		}
	}
	if (e->busid[0]) {
		strf(path, sizeof(path), "/sys/bus/usb/devices/%s", e->busid);
		end = now_ms() + 5000;
		while (!access(path, F_OK) && now_ms() < end)
			sleep_ms(20);
		if (!access(path, F_OK))
			fprintf(stderr, "# USB device %s still there\n",
				e->busid);
	}
	if (show)
		emu_dump(e);
	if (show && kmsg_too && kmsg && kmsg->len)
		fprintf(stderr, "# --- new kernel log ---\n%s", kmsg->text);
	if (e->dir[0]) {
		unlink(e->log);
		unlink(e->ctl);
		unlink(e->err);
		rmdir(e->dir);
		e->dir[0] = '\0';
	}
}

/* A fixture whose data holds one struct emu named e */
#define EMU_FIXTURE_HOOKS(fixture)					\
	FIXTURE_SETUP(fixture)						\
	{								\
		emu_fixture_setup(_metadata, &self->e);				\
	}								\
	FIXTURE_TEARDOWN_PARENT(fixture)				\
	{								\
		emu_fixture_teardown(_metadata, &self->e, true);		\
	}								\
	struct __ccid_##fixture##_hooks_end

/* ------------------------------------------------------------------ */
/* sysfs: attributes of the reader's interface, the recovery counters */

/* A number attribute; -1 when unreadable or not a number */
static inline long attr_num(const struct emu *e, const char *name)
{
	char path[160], buf[64], *end;
	long v;

	strf(path, sizeof(path), "%s/%s", e->intf, name);
	read_attr(path, buf, sizeof(buf));
	v = strtol(buf, &end, 10);
	return end != buf && *end == '\n' ? v : -1;
}

/* An attribute, newline kept; "(unreadable)" when it cannot be read */
static inline void attr_str(const struct emu *e, const char *name, char *buf,
		     size_t size)
{
	char path[160], *s;

	strf(path, sizeof(path), "%s/%s", e->intf, name);
	s = slurp(path);
	strf(buf, size, "%s", s ? s : "(unreadable)");
	free(s);
}

/* An attribute, without its newline, compared with @want */
static inline int attr_cmp(const struct emu *e, const char *name, const char *want)
{
	char buf[128];

	attr_str(e, name, buf, sizeof(buf));
	buf[strcspn(buf, "\n")] = '\0';
	return strcmp(buf, want);
}

static inline bool wait_attr(const struct emu *e, const char *name, long value,
		      long ms)
{
	long end = now_ms() + ms;

	while (attr_num(e, name) != value) {
		if (now_ms() > end)
			return false;
		sleep_ms(20);
	}
	return true;
}

enum {
	C_TIMEOUTS, C_ABORTS, C_CLEAR_HALTS, C_USB_RESETS, C_STALE,
	C_TIME_EXT, C_PROTO, C_OUT_OF_STEP, C_NUM
};

static const char * const counter_names[C_NUM] = {
	"timeouts", "aborts", "clear_halts", "usb_resets", "stale_frames",
	"time_extensions", "protocol_errors", "out_of_step",
};

struct counters {
	long v[C_NUM];
};

static inline void counters_read(const struct emu *e, struct counters *c)
{
	int i;

	for (i = 0; i < C_NUM; i++)
		c->v[i] = attr_num(e, counter_names[i]);
}

/* How far counter @i moved since @before */
static inline long attr_delta(const struct emu *e, const struct counters *before,
		       int i)
{
	struct counters now;

	counters_read(e, &now);
	return now.v[i] - before->v[i];
}

/*
 * Every counter moved by exactly @want since @before; EXPECT_DELTAS()
 * takes the deltas in the order of the enum: timeouts, aborts,
 * clear_halts, usb_resets, stale_frames, time_extensions, protocol_errors,
 * out_of_step (left out: 0).
 */
static inline void expect_deltas(struct __test_metadata *_metadata,
			  const struct emu *e, const struct counters *before,
			  const long *want, int line)
{
	struct counters now;
	long got, exp;
	int i;

	counters_read(e, &now);
	for (i = 0; i < C_NUM; i++) {
		got = now.v[i] - before->v[i];
		exp = want[i];
		EXPECT_EQ(exp, got)
			TH_LOG("line %d: counter %s: %ld -> %ld, expected +%ld",
			       line, counter_names[i], before->v[i],
			       now.v[i], exp);
	}
}

#define EXPECT_DELTAS(e, before, ...) do {				\
	const long __want[C_NUM] = { __VA_ARGS__ };			\
	expect_deltas(_metadata, e, before, __want, __LINE__);		\
} while (0)

/* ------------------------------------------------------------------ */
/* ioctls; each returns 0 or -errno */

/* status starts as 0xFF: still 0xFF afterwards means "not written back" */
static inline int power_on(int fd, uint8_t slot, struct ccid_power_on *p)
{
	memset(p, 0, sizeof(*p));
	p->slot = slot;
	p->status = 0xff;
	return do_ioctl(fd, CCID_IOC_POWER_ON, p);
}

static inline int slot_status(int fd, uint8_t slot, struct ccid_slot_status *st)
{
	memset(st, 0, sizeof(*st));
	st->slot = slot;
	st->status = 0xff;
	st->error = 0xff;
	return do_ioctl(fd, CCID_IOC_SLOT_STATUS, st);
}

/* Every field the driver fills starts as 0xEE */
static inline int slot_events(int fd, uint32_t flags, struct ccid_slot_events *ev)
{
	memset(ev, 0xee, sizeof(*ev));
	ev->flags = flags;
	ev->reserved0 = 0;
	memset(ev->reserved, 0, sizeof(ev->reserved));
	return do_ioctl(fd, CCID_IOC_SLOT_EVENTS, ev);
}

/* An XfrBlock or a Secure (@req) on @slot; status and error start 0xFF */
static inline int xfer(int fd, unsigned long req, uint8_t slot, const void *tx,
		size_t tx_len, void *rx, size_t rx_size, uint32_t timeout_ms,
		struct ccid_xfer *x)
{
	memset(x, 0, sizeof(*x));
	x->slot = slot;
	x->tx_buf = (uintptr_t)tx;
	x->tx_len = tx_len;
	x->rx_buf = (uintptr_t)rx;
	x->rx_size = rx_size;
	x->timeout_ms = timeout_ms;
	x->status = 0xff;
	x->error = 0xff;
	return do_ioctl(fd, req, x);
}

/* The emulator card's echo: 80 EE 00 00 Lc DATA -> DATA 90 00 */
static inline size_t echo_apdu(uint8_t *apdu, const uint8_t *data, size_t len)
{
	apdu[0] = 0x80;
	apdu[1] = 0xee;
	apdu[2] = 0x00;
	apdu[3] = 0x00;
	apdu[4] = len;
	memcpy(apdu + 5, data, len);
	return 5 + len;
}

static inline bool is_echo(const uint8_t *rx, size_t rx_len, const uint8_t *data,
		    size_t len)
{
	return rx_len == len + 2 && !memcmp(rx, data, len) &&
	       rx[len] == 0x90 && rx[len + 1] == 0x00;
}

/*
 * One echo of @data (at most 255 bytes) on @slot with the driver's
 * default timeout, checked; 0, -errno, or 1 for a wrong answer.
 */
static inline int echo(int fd, uint8_t slot, const uint8_t *data, size_t len,
		struct ccid_xfer *x)
{
	uint8_t apdu[5 + 255], rx[300];
	int ret;

	ret = xfer(fd, CCID_IOC_XFR_BLOCK, slot, apdu,
		   echo_apdu(apdu, data, len), rx, sizeof(rx), 0, x);
	if (ret)
		return ret;
	return is_echo(rx, x->rx_len, data, len) && x->status == 0 &&
	       x->error == 0 ? 0 : 1;
}

/* Expected errno of a final answer, as Documentation/usb/ccid.rst says */
static inline int rsp_errno(uint8_t status, uint8_t error)
{
	if ((status & CCID_CMD_STATUS_MASK) != CCID_CMD_STATUS_FAILED)
		return 0;
	if (error >= 0x01 && error <= 0x7f)
		return -EINVAL;
	if (!error)
		return -EOPNOTSUPP;
	if ((status & CCID_ICC_STATUS_MASK) == CCID_ICC_ABSENT)
		return -ENOMEDIUM;
	switch (error) {
	case 0xff:
	case 0xef:
		return -ECANCELED;
	case 0xf0:
		return -ETIME;
	case 0xf6:
	case 0xf5:
		return -EPROTONOSUPPORT;
	case 0xf2:
	case 0xe0:
		return -EBUSY;
	default:
		return -EIO;
	}
}

/* poll() for POLLIN, POLLRDNORM and POLLPRI: revents, 0, or -errno */
static inline int poll_mask(int fd, int ms)
{
	struct pollfd p = {
		.fd = fd, .events = POLLIN | POLLRDNORM | POLLPRI,
	};
	int n = poll(&p, 1, ms);

	return n < 0 ? -errno : n ? p.revents : 0;
}

/* ------------------------------------------------------------------ */
/* tracefs: the driver's trace events, in a trace instance of the test's own */

#define TRACEFS_ROOT		"/sys/kernel/tracing"

/*
 * A trace instance (TRACEFS_ROOT/instances/NAME) has its own buffer,
 * events, filters and clock: a test that enables events there disturbs no
 * other tracing.  Removing it disables them.
 */
struct trace_inst {
	char dir[128];			/* "" when none */
};

/* tracefs at TRACEFS_ROOT, mounted there if it is not yet; 0 or -errno */
static inline int tracefs_mount(void)
{
	if (!access(TRACEFS_ROOT "/instances", F_OK))
		return 0;
	if (mount("nodev", TRACEFS_ROOT, "tracefs", 0, NULL))
		return -errno;
	return access(TRACEFS_ROOT "/instances", F_OK) ? -errno : 0;
}

/* Create the instance @name; 0 or -errno */
static inline int trace_inst_create(struct trace_inst *t, const char *name)
{
	char dir[sizeof(t->dir)];

	strf(dir, sizeof(dir), TRACEFS_ROOT "/instances/%s", name);
	if (!dir[0])
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700))
		return -errno;
	strf(t->dir, sizeof(t->dir), "%s", dir);
	return 0;
}

/* Write @val to the instance's @file, e.g. "events/ccid/enable"; 0 or -errno */
static inline int trace_inst_write(const struct trace_inst *t, const char *file,
				   const char *val)
{
	char path[256];

	strf(path, sizeof(path), "%s/%s", t->dir, file);
	return write_file(path, val, strlen(val));
}

/* The path of the instance's @file */
static inline void trace_inst_path(const struct trace_inst *t, const char *file,
				   char *path, size_t size)
{
	strf(path, size, "%s/%s", t->dir, file);
}

/* What the instance recorded, as its "trace" file shows it (free() it), or NULL */
static inline char *trace_inst_read(const struct trace_inst *t)
{
	char path[256];

	trace_inst_path(t, "trace", path, sizeof(path));
	return slurp(path);
}

/* Remove the instance, if there is one; 0 or -errno */
static inline int trace_inst_remove(struct trace_inst *t)
{
	if (!t->dir[0])
		return 0;
	if (rmdir(t->dir))
		return -errno;
	t->dir[0] = '\0';
	return 0;
}

/*
 * The ccid events of @e's reader only, into a new instance: the global
 * clock, so that events from different CPUs are shown in the order they
 * happened, and a filter on the reader's interface.  0 or -errno; -ENOENT
 * when ccid.ko has no trace events.
 */
static inline int emu_trace_start(const struct emu *e, struct trace_inst *t)
{
	char name[64], filter[128];
	int ret;

	strf(name, sizeof(name), "ccid_test_%d", (int)getpid());
	ret = trace_inst_create(t, name);
	if (ret)
		return ret;
	strf(filter, sizeof(filter), "dev == \"%s:1.0\"", e->busid);
	ret = trace_inst_write(t, "trace_clock", "global");
	if (!ret)
		ret = trace_inst_write(t, "events/ccid/filter", filter);
	if (!ret)
		ret = trace_inst_write(t, "events/ccid/enable", "1");
	return ret;
}

/*
 * Index of the first complete line of @text at or after line @from that
 * matches the regex, its text in @line (may be NULL); -1 when there is
 * none.  log_find() for a text already read, such as a trace.
 */
static inline int __printf(5, 6) text_find(const char *text, int from, char *line,
					   size_t size, const char *fmt, ...)
{
	char re[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(re, sizeof(re), fmt, ap);
	va_end(ap);
	return text_find_re(text, from, line, size, re);
}

/* ------------------------------------------------------------------ */
/* Assertions */

#define EXPECT_OK(expr) do {						\
	int __ret = (expr);						\
	EXPECT_EQ(0, __ret) TH_LOG("%s: %s", #expr, errname(__ret));	\
} while (0)

#define EXPECT_ERRNO(err, expr) do {					\
	int __ret = (expr);						\
	EXPECT_EQ(-(err), __ret) TH_LOG("%s: %s, expected %s", #expr,	\
					errname(__ret), errname(err));	\
} while (0)

#define ASSERT_ERRNO(err, expr) do {					\
	int __ret = (expr);						\
	ASSERT_EQ(-(err), __ret) TH_LOG("%s: %s, expected %s", #expr,	\
					errname(__ret), errname(err));	\
} while (0)

#endif /* CCID_EMU_HARNESS_H */
