// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of ccid.ko against ccid_emu, the emulated USB/IP reader, inside the
 * VM that run-vm boots:
 *
 *	tools/testing/selftests/drivers/usb/ccid/run-vm --reader none -- \
 *		tools/testing/selftests/drivers/usb/ccid/emu_test
 *
 * Each test starts its own ccid_emu (fork/exec, event log and control FIFO
 * in a directory under /tmp), learns the reader's bus id and node from the
 * emulator's "node" event, and checks what the driver does against what
 * the emulator logged and against the kernel log lines of the test, read
 * from /dev/kmsg: every line the driver prints about the reader is
 * accounted for, exactly.
 *
 *  - probe: one personality per variant; the reader binds, or is refused
 *    with exactly one line saying why;
 *  - quirks: the bogus-firmware table and the quirks= parameter;
 *  - slot events: NotifySlotChange and HardwareError on interrupt-IN,
 *    poll() and CCID_IOC_SLOT_EVENTS;
 *  - a three-slot reader: independent slots, a reset of one slot;
 *  - a randomized run against "ccid_emu --random SEED" (CCID_SEED in the
 *    environment repeats a run), checked answer by answer against the
 *    emulator's log;
 *  - throughput and concurrency: one process, then many, on one reader or
 *    two; every answer must be the process's own.
 *
 * Environment: CCID_EMU (the emulator; default: ccid_emu next to this
 * program), CCID_SEED and CCID_RANDOM_XFRS (the randomized run: its seed,
 * default from the clock, and its number of XfrBlocks, default 10000),
 * CCID_EMU_LOG_LINES (how much of the emulator's log a failure shows, 40).
 * run-vm passes CCID_* variables into the guest.
 *
 * The emulator is the test process's child, with PR_SET_PDEATHSIG, so it
 * detaches when the test process ends, however it ends; the parent-side
 * teardown (see FIXTURE_TEARDOWN_PARENT in ccid_test.c for why) sends
 * "quit", kills what is left after a bound, waits for the USB device to go
 * and puts the quirks parameter back.
 *
 * Outside the VM (CCID_VM unset), without root, vhci_hcd, ccid_emu or the
 * driver, every test is skipped.  Build:
 *	cc -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -I include/uapi \
 *		-I build/ksrc/tools/testing/selftests -o emu_test emu_test.c
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <poll.h>
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/usb/ccid_reader.h>

/* See ccid_test.c: the harness's own warnings */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wclobbered"
/* the probe variants override the defaults BINDS() sets */
#pragma GCC diagnostic ignored "-Woverride-init"
#include "kselftest_harness.h"
#include "ccid_test_util.h"

#define VHCI_ATTACH		"/sys/devices/platform/vhci_hcd.0/attach"
#define CCID_DRIVER		"/sys/bus/usb/drivers/ccid"
#define QUIRKS_PARAM		"/sys/module/ccid/parameters/quirks"
#define NODE_TIMEOUT_MS		"2000"
#define START_WAIT_MS		30000
#define CTL_WAIT_MS		5000
#define EVENT_WAIT_MS		5000
#define CCID_MAX_BUFFER		65554	/* 10-byte header + 65544 */
#define POLLIN_BITS		(POLLIN | POLLRDNORM)

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif

/* The emulator's ATR of every slot: 3B 88 80 01 "CCID-EMU" TCK */
static const uint8_t emu_atr[] = {
	0x3b, 0x88, 0x80, 0x01, 0x43, 0x43, 0x49, 0x44, 0x2d, 0x45, 0x4d,
	0x55, 0x74
};

/* ------------------------------------------------------------------ */
/* Small things */

/* A whole file, NUL-terminated; NULL if it cannot be read */
static char *slurp(const char *path, size_t *lenp)
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
	if (lenp)
		*lenp = len;
	return buf;
}

static const char *emu_path(void)
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
static const char *cannot_run(void)
{
	if (!in_vm())
		return "not in the ccid test VM (CCID_VM unset): use run-vm --reader none";
	if (geteuid())
		return "needs root";
	if (access(VHCI_ATTACH, F_OK))
		return "no vhci_hcd";
	if (access(emu_path(), X_OK))
		return "ccid_emu not built (make -C tools/testing/selftests/drivers/usb/ccid ccid_emu)";
	if (access(CCID_DRIVER, F_OK))
		return "ccid.ko is not loaded";
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The kernel log of the test, from /dev/kmsg */

struct kline {
	int prio;
	char text[480];
};

static struct kline *klines;
static size_t nklines, kcap;
static int kmsg_fd = -1;

static int kmsg_start(void)
{
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd < 0)
		return -errno;
	if (lseek(kmsg_fd, 0, SEEK_END) < 0)
		return -errno;
	return 0;
}

/* Read the records that came since the last call */
static void kmsg_sync(void)
{
	char rec[2048];

	while (kmsg_fd >= 0) {
		ssize_t n = read(kmsg_fd, rec, sizeof(rec) - 1);
		char *semi, *nl;
		struct kline *l;

		if (n < 0 && errno == EPIPE)
			continue;		/* overwritten records */
		if (n <= 0)
			break;
		rec[n] = '\0';
		semi = strchr(rec, ';');
		if (!semi)
			continue;
		nl = strchr(semi, '\n');
		if (nl)
			*nl = '\0';
		if (nklines == kcap) {
			size_t cap = kcap ? kcap * 2 : 256;
			struct kline *p = realloc(klines, cap * sizeof(*p));

			if (!p)
				break;
			klines = p;
			kcap = cap;
		}
		l = &klines[nklines++];
		l->prio = atoi(rec) & 7;
		strf(l->text, sizeof(l->text), "%s", semi + 1);
	}
}

/* The driver's lines about interface @busid:1.0, in order */
static size_t ccid_lines(const char *busid, const struct kline **out,
			 size_t max)
{
	char prefix[64];
	size_t i, n = 0;

	kmsg_sync();
	strf(prefix, sizeof(prefix), "ccid %s:1.0: ", busid);
	for (i = 0; i < nklines; i++)
		if (!strncmp(klines[i].text, prefix, strlen(prefix)) &&
		    n < max)
			out[n++] = &klines[i];
	return n;
}

/* Wait until the kernel printed @text (a whole line) */
static bool kmsg_wait(const char *text, long ms)
{
	long end = now_ms() + ms;
	size_t i;

	for (;;) {
		kmsg_sync();
		for (i = 0; i < nklines; i++)
			if (!strcmp(klines[i].text, text))
				return true;
		if (now_ms() > end)
			return false;
		sleep_ms(50);
	}
}

/* Lines no test may cause */
static int kmsg_bad_lines(struct __test_metadata *_metadata)
{
	static const char * const bad[] = {
		"BUG:", "WARNING:", "Oops", "general protection",
		"blocked for more than", "UBSAN:", "KASAN:", "KFENCE:",
		"kernel BUG", "refcount_t:", "list_add corruption",
		"list_del corruption", "DEBUG_LOCKS_WARN_ON",
		"possible circular locking", "Kernel panic",
	};
	size_t i, k;
	int n = 0;

	kmsg_sync();
	for (i = 0; i < nklines; i++)
		for (k = 0; k < ARRAY_SIZE(bad); k++)
			if (strstr(klines[i].text, bad[k])) {
				TH_LOG("kernel: %s", klines[i].text);
				n++;
			}
	return n;
}

/*
 * The driver's lines about @busid must be exactly @want (prio, text after
 * "ccid BUSID:1.0: "), in this order.
 */
struct want_line {
	int prio;
	char text[400];
};

static void expect_lines(struct __test_metadata *_metadata,
			 const char *busid, const struct want_line *want,
			 size_t nwant)
{
	const struct kline *got[64];
	size_t n = ccid_lines(busid, got, ARRAY_SIZE(got)), i;
	size_t skip = strlen("ccid ") + strlen(busid) + strlen(":1.0: ");
	bool same = n == nwant;

	for (i = 0; same && i < n; i++)
		same = got[i]->prio == want[i].prio &&
		       !strcmp(got[i]->text + skip, want[i].text);
	EXPECT_TRUE(same) {
		for (i = 0; i < nwant; i++)
			TH_LOG("expected <%d> %s", want[i].prio, want[i].text);
		for (i = 0; i < n; i++)
			TH_LOG("got      <%d> %s", got[i]->prio,
			       got[i]->text + skip);
		if (!n)
			TH_LOG("got no line from ccid about %s:1.0", busid);
	}
	EXPECT_EQ(0, kmsg_bad_lines(_metadata));
}

/* ------------------------------------------------------------------ */
/* The emulator */

struct emu {
	pid_t pid;
	char dir[64];		/* its files: log, ctl (FIFO), stderr */
	char log[96];
	char ctl[96];
	char err[96];
	char busid[32];		/* e.g. 3-1 */
	char node[32];		/* ccidN, or "" when no driver bound */
	char dev[48];		/* /dev/ccidN */
	char intf[96];		/* /sys/bus/usb/devices/BUSID:1.0 */
};

/* The wait status of the last emulator that exited under our eyes */
static int emu_status = -1;

static bool pid_alive(pid_t pid)
{
	char path[64], *stat, *p;
	int st;
	bool alive;

	if (pid <= 0)
		return false;
	/* our child (not yet exec'd, perhaps), or not ours any more */
	switch (waitpid(pid, &st, WNOHANG)) {
	case 0:
		return true;
	case -1:
		break;
	default:
		emu_status = st;
		return false;
	}
	strf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	stat = slurp(path, NULL);
	if (!stat)
		return false;
	/* "pid (comm) S ...": a zombie or a reused pid is not the emulator */
	p = strrchr(stat, ')');
	alive = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X' &&
		strstr(stat, "(ccid_emu)");
	free(stat);
	return alive;
}

/* Start ccid_emu with @args (space-separated) */
static int emu_spawn(struct emu *e, const char *args)
{
	char *argv[80], *copy, *tok, *save = NULL;
	pid_t parent = getpid(), pid;
	int argc = 0, fd;

	memset(e, 0, sizeof(*e));
	strf(e->dir, sizeof(e->dir), "/tmp/emu_test.XXXXXX");
	if (!mkdtemp(e->dir))
		return -errno;
	strf(e->log, sizeof(e->log), "%s/log", e->dir);
	strf(e->ctl, sizeof(e->ctl), "%s/ctl", e->dir);
	strf(e->err, sizeof(e->err), "%s/stderr", e->dir);
	if (mkfifo(e->ctl, 0600))
		return -errno;
	copy = strdup(args ? args : "");
	if (!copy)
		return -ENOMEM;
	argv[argc++] = (char *)emu_path();
	argv[argc++] = "--log";
	argv[argc++] = e->log;
	argv[argc++] = "--ctl";
	argv[argc++] = e->ctl;
	argv[argc++] = "--node-timeout";
	argv[argc++] = NODE_TIMEOUT_MS;
	for (tok = strtok_r(copy, " ", &save); tok && argc < 78;
	     tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;

	fflush(stdout);
	fflush(stderr);
	/* @e is shared with the harness's parent: the child must not write it */
	pid = fork();
	if (pid < 0) {
		free(copy);
		return -errno;
	}
	if (!pid) {
		/* Gone with the test process, however that ends */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(126);
		fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		dup2(fd, 1);
		fd = open(e->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	e->pid = pid;
	free(copy);
	return 0;
}

/* write() to the control FIFO, whose reader may be gone: no SIGPIPE */
static ssize_t write_nosig(int fd, const void *buf, size_t len)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	ssize_t n;

	sigaction(SIGPIPE, &ign, &old);
	n = write(fd, buf, len);
	sigaction(SIGPIPE, &old, NULL);
	return n;
}

/* Lines of @text equal to @want (@whole) or starting with it */
static int count_lines(const char *text, const char *want, bool whole)
{
	size_t wl = strlen(want);
	const char *p = text;
	int n = 0;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t ll;

		if (!nl)
			break;		/* a line being written */
		ll = nl - p;
		if (ll >= wl && !memcmp(p, want, wl) && (!whole || ll == wl))
			n++;
		p = nl + 1;
	}
	return n;
}

static int log_count(const struct emu *e, const char *want, bool whole)
{
	char *log = slurp(e->log, NULL);
	int n = log ? count_lines(log, want, whole) : 0;

	free(log);
	return n;
}

/* Wait until the log has @count lines matching @want */
static bool log_wait(const struct emu *e, const char *want, bool whole,
		     int count, long ms)
{
	long end = now_ms() + ms;

	while (log_count(e, want, whole) < count) {
		if (now_ms() > end)
			return false;
		sleep_ms(20);
	}
	return true;
}

/* The first log line starting with @prefix, copied to @out */
static bool log_line(const struct emu *e, const char *prefix, char *out,
		     size_t size)
{
	char *log = slurp(e->log, NULL), *p, *nl;
	bool found = false;

	for (p = log; p && *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		if (!strncmp(p, prefix, strlen(prefix))) {
			*nl = '\0';
			strf(out, size, "%s", p);
			found = true;
			break;
		}
	}
	free(log);
	return found;
}

/* Wait for the "node" event; 0, -ECHILD if the emulator died, -ETIMEDOUT */
static int emu_wait_node(struct emu *e, long ms)
{
	long end = now_ms() + ms;
	char line[256], *b;

	for (;;) {
		if (log_line(e, "node ", line, sizeof(line))) {
			b = strstr(line, " busid=");
			if (!b)
				return -EINVAL;
			strf(e->busid, sizeof(e->busid), "%s", b + 7);
			strf(e->intf, sizeof(e->intf),
			     "/sys/bus/usb/devices/%s:1.0", e->busid);
			if (!strncmp(line, "node dev=/dev/", 14)) {
				*b = '\0';
				strf(e->node, sizeof(e->node), "%s", line + 14);
				strf(e->dev, sizeof(e->dev), "/dev/%s",
				     e->node);
			}
			return 0;
		}
		if (!pid_alive(e->pid))
			return -ECHILD;
		if (now_ms() > end)
			return -ETIMEDOUT;
		sleep_ms(50);
	}
}

/* Dump the end of the emulator's log and its stderr */
static void emu_dump(struct __test_metadata *_metadata, const struct emu *e)
{
	char *log = slurp(e->log, NULL), *err = slurp(e->err, NULL), *p;
	int lines = 0;

	if (log) {
		int max = getenv("CCID_EMU_LOG_LINES") ?
			  atoi(getenv("CCID_EMU_LOG_LINES")) : 40;

		for (p = log + strlen(log); p > log && lines <= max; p--)
			if (*p == '\n')
				lines++;
		TH_LOG("emulator log (%s), last lines:\n%s", e->log,
		       p == log ? p : p + 2);
	}
	if (err && *err)
		TH_LOG("emulator stderr:\n%s", err);
	free(log);
	free(err);
}

/*
 * Start an emulator and wait for its node event.  @bound: the driver must
 * take the reader (a node), or must not.
 */
static void emu_up(struct __test_metadata *_metadata, struct emu *e,
		   const char *args, bool bound)
{
	int ret;

	ret = emu_spawn(e, args);
	ASSERT_EQ(0, ret) TH_LOG("starting %s: %s", emu_path(), errname(ret));
	ret = emu_wait_node(e, START_WAIT_MS);
	if (ret)
		emu_dump(_metadata, e);
	ASSERT_EQ(0, ret) TH_LOG("ccid_emu %s: no node event: %s (wait status %#x)",
				 args, errname(ret), emu_status);
	if (bound != !!e->node[0])
		emu_dump(_metadata, e);
	ASSERT_EQ(bound, !!e->node[0])
		TH_LOG("ccid_emu %s: the driver %s the reader", args,
		       e->node[0] ? "took" : "did not take");
}

/* Send a control line, wait for its ctl-ok; 0, -EINVAL or -ETIMEDOUT */
static int emu_ctl(struct emu *e, const char *line)
{
	char ok[128], bad[128], msg[128];
	int n_ok, n_bad, fd;
	long end = now_ms() + CTL_WAIT_MS;
	ssize_t len;

	strf(ok, sizeof(ok), "ctl-ok %s", line);
	strf(bad, sizeof(bad), "ctl-error %s", line);
	strf(msg, sizeof(msg), "%s\n", line);
	n_ok = log_count(e, ok, true);
	n_bad = log_count(e, bad, true);
	fd = open(e->ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = write_nosig(fd, msg, strlen(msg));
	close(fd);
	if (len != (ssize_t)strlen(msg))
		return -EIO;
	for (;;) {
		if (log_count(e, ok, true) > n_ok)
			return 0;
		if (log_count(e, bad, true) > n_bad)
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
 * Stop an emulator: "quit", then SIGKILL after a bound; wait until its USB
 * device is gone.  Runs in the harness's parent as well, where the
 * emulator is no child any more.
 */
static void emu_reap(struct __test_metadata *_metadata, struct emu *e,
		     bool dump)
{
	char path[160];
	long end;
	int fd;

	if (e->pid <= 0)
		return;
	if (dump)
		emu_dump(_metadata, e);
	/* it may be on its way out already (SIGTERM when the test ended) */
	fd = open(e->ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		write_nosig(fd, "quit\n", 5);
		close(fd);
	}
	end = now_ms() + 5000;
	while (pid_alive(e->pid) && now_ms() < end)
		sleep_ms(20);
	if (pid_alive(e->pid)) {
		TH_LOG("ccid_emu %d ignored quit: killing it", (int)e->pid);
		kill(e->pid, SIGKILL);
		end = now_ms() + 2000;
		while (pid_alive(e->pid) && now_ms() < end)
			sleep_ms(20);
	}
	if (e->busid[0]) {
		strf(path, sizeof(path), "/sys/bus/usb/devices/%s",
		     e->busid);
		end = now_ms() + 5000;
		while (!access(path, F_OK) && now_ms() < end)
			sleep_ms(20);
		if (!access(path, F_OK))
			TH_LOG("USB device %s still there", e->busid);
	}
	unlink(e->log);
	unlink(e->ctl);
	unlink(e->err);
	rmdir(e->dir);
	e->pid = 0;
}

/* The command number the emulator gave the XfrBlock carrying @apdu */
static int emu_cmd_of(const struct emu *e, uint8_t slot, const uint8_t *apdu,
		      size_t len)
{
	char data[2 * 64 + 2], *log = slurp(e->log, NULL), *p, *nl;
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
static int emu_last_cmd(const struct emu *e)
{
	char *log = slurp(e->log, NULL), *p, *nl;
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
/* sysfs and ioctls */

static long attr_num(const struct emu *e, const char *name)
{
	char path[160], buf[64], *end;
	ssize_t n;
	long v;
	int fd;

	strf(path, sizeof(path), "%s/%s", e->intf, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	v = strtol(buf, &end, 10);
	return *end == '\n' ? v : -1;
}

static void attr_str(const struct emu *e, const char *name, char *buf,
		     size_t size)
{
	char path[160], *s;

	strf(path, sizeof(path), "%s/%s", e->intf, name);
	s = slurp(path, NULL);
	strf(buf, size, "%s", s ? s : "(unreadable)");
	free(s);
}

static bool wait_attr(const struct emu *e, const char *name, long value,
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

/* The driver bound to the interface, or "" */
static void driver_of(const struct emu *e, char *name, size_t size)
{
	char path[160], link[PATH_MAX];
	ssize_t n;

	strf(path, sizeof(path), "%s/driver", e->intf);
	n = readlink(path, link, sizeof(link) - 1);
	link[n < 0 ? 0 : n] = '\0';
	strf(name, size, "%s", strrchr(link, '/') ? strrchr(link, '/') + 1 :
	     link);
}

/* The usbmisc node of the interface, from sysfs */
static void sysfs_node(struct emu *e)
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

static int open_node(const struct emu *e)
{
	long end = now_ms() + 5000;
	int fd;

	/* devtmpfs makes the node right after the sysfs entry */
	while ((fd = open(e->dev, O_RDWR | O_CLOEXEC)) < 0 &&
	       errno == ENOENT && now_ms() < end)
		sleep_ms(20);
	return fd < 0 ? -errno : fd;
}

static int power_on(int fd, uint8_t slot, struct ccid_power_on *p)
{
	memset(p, 0, sizeof(*p));
	p->slot = slot;
	return do_ioctl(fd, CCID_IOC_POWER_ON, p);
}

static int slot_status(int fd, uint8_t slot, struct ccid_slot_status *st)
{
	memset(st, 0, sizeof(*st));
	st->slot = slot;
	st->status = 0xff;
	st->error = 0xff;
	return do_ioctl(fd, CCID_IOC_SLOT_STATUS, st);
}

static int events(int fd, uint32_t flags, struct ccid_slot_events *ev)
{
	memset(ev, 0xee, sizeof(*ev));
	ev->flags = flags;
	ev->reserved0 = 0;
	memset(ev->reserved, 0, sizeof(ev->reserved));
	return do_ioctl(fd, CCID_IOC_SLOT_EVENTS, ev);
}

/* XfrBlock; status is preset to 0xff to tell whether it was written back */
static int xfr(int fd, uint8_t slot, const void *tx, size_t tx_len, void *rx,
	       size_t rx_size, uint32_t timeout_ms, struct ccid_xfer *x)
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
	return do_ioctl(fd, CCID_IOC_XFR_BLOCK, x);
}

/* The emulator card's echo: 80 EE 00 00 Lc DATA -> DATA 90 00 */
static size_t echo_apdu(uint8_t *apdu, const uint8_t *data, size_t len)
{
	apdu[0] = 0x80;
	apdu[1] = 0xee;
	apdu[2] = 0x00;
	apdu[3] = 0x00;
	apdu[4] = len;
	memcpy(apdu + 5, data, len);
	return 5 + len;
}

static bool is_echo(const uint8_t *rx, size_t rx_len, const uint8_t *data,
		    size_t len)
{
	return rx_len == len + 2 && !memcmp(rx, data, len) &&
	       rx[len] == 0x90 && rx[len + 1] == 0x00;
}

/* One echo on @slot with @data, checked; 0, -errno, or 1 for a mismatch */
static int echo(int fd, uint8_t slot, const uint8_t *data, size_t len,
		struct ccid_xfer *x)
{
	uint8_t apdu[5 + 255], rx[300];
	int ret;

	ret = xfr(fd, slot, apdu, echo_apdu(apdu, data, len), rx, sizeof(rx),
		  0, x);
	if (ret)
		return ret;
	return is_echo(rx, x->rx_len, data, len) && x->status == 0 &&
	       x->error == 0 ? 0 : 1;
}

/* Expected errno of a final answer, as Documentation/usb/ccid.rst says */
static int rsp_errno(uint8_t status, uint8_t error)
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

static int poll_mask(int fd, int ms)
{
	struct pollfd p = {
		.fd = fd, .events = POLLIN | POLLRDNORM | POLLPRI,
	};
	int n = poll(&p, 1, ms);

	return n < 0 ? -errno : n ? p.revents : 0;
}

#define ASSERT_OK(expr) do {						\
	int __ret = (expr);						\
	ASSERT_EQ(0, __ret) TH_LOG("%s: %s", #expr, errname(__ret));	\
} while (0)

#define EXPECT_OK(expr) do {						\
	int __ret = (expr);						\
	EXPECT_EQ(0, __ret) TH_LOG("%s: %s", #expr, errname(__ret));	\
} while (0)

#define EXPECT_ERR(err, expr) do {					\
	int __ret = (expr);						\
	EXPECT_EQ(-(err), __ret) TH_LOG("%s: %s, expected %s", #expr,	\
					errname(__ret), errname(err));	\
} while (0)

static void bind_line(char *out, size_t size, const struct emu *e,
		      const char *idfw, unsigned int slots, const char *level)
{
	strf(out, size, "%s: %s, %u slot(s), %s level", e->node, idfw, slots,
	     level);
}

/* ------------------------------------------------------------------ */
/* Probe: one personality per variant */

FIXTURE(probe) {
	struct emu e;
};

FIXTURE_VARIANT(probe) {
	const char *args;
	bool binds;
	/* refused: the driver's one line (NULL: the driver never probes) */
	const char *line;
	int prio;
	/* bound: what GET_INFO and the probe line say */
	const char *idfw;		/* "04e6:e003 firmware 7.01" */
	unsigned int slots;
	const char *level;
	unsigned int iface_class;
	unsigned int max_msg;
	unsigned int buffer_length;
	bool no_int;			/* no interrupt endpoint: quiet poll */
};

#define BINDS(...)							\
	.binds = true, .idfw = "04e6:e003 firmware 7.01", .slots = 1,	\
	.level = "short_apdu", .iface_class = 0x0b, .max_msg = 271,	\
	.buffer_length = 271, __VA_ARGS__

#define REFUSED(text)	.line = (text), .prio = 3

/* Binding */
FIXTURE_VARIANT_ADD(probe, class_0b_protocol_0) {
	BINDS(.args = "")
};

FIXTURE_VARIANT_ADD(probe, vendor_class_spr532) {
	BINDS(.args = "--iface-class 0xff", .iface_class = 0xff)
};

FIXTURE_VARIANT_ADD(probe, vendor_class_other_id) {
	.args = "--iface-class 0xff --vid 1234 --pid 5678",
};

FIXTURE_VARIANT_ADD(probe, iccd_a) {
	.args = "--iface-protocol 1",
	.line = "ICCD (protocol 1) is not supported", .prio = 6,
};

FIXTURE_VARIANT_ADD(probe, iccd_b) {
	.args = "--iface-protocol 2",
	.line = "ICCD (protocol 2) is not supported", .prio = 6,
};

FIXTURE_VARIANT_ADD(probe, protocol_3) {
	.args = "--iface-protocol 3",
	.line = "unknown CCID protocol 3", .prio = 6,
};

FIXTURE_VARIANT_ADD(probe, bogus_firmware_5_00) {
	.args = "--bcd-device 0x0500",
	REFUSED("firmware 5.00 is broken, 5.10 or later needed (ccid.quirks=04e6:e003: overrides)"),
};

/* Hostile descriptors */
FIXTURE_VARIANT_ADD(probe, class_desc_missing) {
	.args = "--class-desc-place none",
	REFUSED("no CCID class descriptor"),
};

FIXTURE_VARIANT_ADD(probe, class_desc_wrong_type) {
	.args = "--class-desc-type 0x24",
	REFUSED("no CCID class descriptor"),
};

FIXTURE_VARIANT_ADD(probe, class_desc_blength_53) {
	.args = "--class-desc-len 53",
	REFUSED("bad CCID class descriptor: class descriptor bLength is not 54"),
};

FIXTURE_VARIANT_ADD(probe, class_desc_blength_80) {
	.args = "--class-desc-len 80",
	REFUSED("bad CCID class descriptor: class descriptor bLength is not 54"),
};

/* class-desc-len < 54: bLength and the bytes sent are both 40 */
FIXTURE_VARIANT_ADD(probe, class_desc_truncated_40) {
	.args = "--class-desc-len 40",
	REFUSED("bad CCID class descriptor: class descriptor bLength is not 54"),
};

/*
 * bLength 54, but the configuration ends 40 bytes into it (the descriptor
 * is last, at offset 9 + 9 + 3 * 7 = 39): usbcore drops it as invalid, so
 * the driver sees no class descriptor at all.
 */
FIXTURE_VARIANT_ADD(probe, class_desc_cut_by_wtotallength) {
	.args = "--class-desc-place endpoint --class-desc-len 40 --patch-config 39:36",
	REFUSED("no CCID class descriptor"),
};

FIXTURE_VARIANT_ADD(probe, class_desc_after_endpoints) {
	BINDS(.args = "--class-desc-place endpoint")
};

/* bMaxSlotIndex is at 9 + 9 + 4 = 22 in the configuration */
FIXTURE_VARIANT_ADD(probe, max_slot_index_16) {
	.args = "--patch-config 22:10",
	REFUSED("bad CCID class descriptor: bMaxSlotIndex out of range"),
};

FIXTURE_VARIANT_ADD(probe, max_slot_index_255) {
	.args = "--patch-config 22:ff",
	REFUSED("bad CCID class descriptor: bMaxSlotIndex out of range"),
};

FIXTURE_VARIANT_ADD(probe, voltage_0) {
	.args = "--voltage 0",
	REFUSED("bad CCID class descriptor: bVoltageSupport invalid"),
};

FIXTURE_VARIANT_ADD(probe, voltage_0x08) {
	.args = "--voltage 0x08",
	REFUSED("bad CCID class descriptor: bVoltageSupport invalid"),
};

FIXTURE_VARIANT_ADD(probe, protocols_0) {
	.args = "--protocols 0",
	REFUSED("bad CCID class descriptor: dwProtocols names neither T=0 nor T=1"),
};

FIXTURE_VARIANT_ADD(probe, exchange_level_0x30000) {
	.args = "--features 0x000304ba",
	REFUSED("bad CCID class descriptor: dwFeatures exchange level invalid"),
};

/* dwMaxCCIDMessageLength is at 18 + 44 = 62 (ccid_emu refuses --max-msg 0) */
FIXTURE_VARIANT_ADD(probe, max_msg_0) {
	.args = "--patch-config 62:00000000",
	REFUSED("bad CCID class descriptor: dwMaxCCIDMessageLength too small"),
};

FIXTURE_VARIANT_ADD(probe, max_msg_10) {
	.args = "--max-msg 10",
	REFUSED("bad CCID class descriptor: dwMaxCCIDMessageLength too small"),
};

/* below 271 and below wMaxPacketSize 512 */
FIXTURE_VARIANT_ADD(probe, max_msg_270_maxp_512) {
	.args = "--max-msg 270",
	REFUSED("dwMaxCCIDMessageLength 270 too small"),
};

FIXTURE_VARIANT_ADD(probe, max_msg_63_maxp_64) {
	.args = "--speed 2 --max-msg 63",
	REFUSED("dwMaxCCIDMessageLength 63 too small"),
};

/* below 271 but not below wMaxPacketSize 64: accepted */
FIXTURE_VARIANT_ADD(probe, max_msg_64_maxp_64) {
	BINDS(.args = "--speed 2 --max-msg 64", .max_msg = 64,
	      .buffer_length = 64)
};

FIXTURE_VARIANT_ADD(probe, max_msg_70000_clamped) {
	BINDS(.args = "--level extended --max-msg 70000",
	      .level = "extended_apdu", .max_msg = 70000,
	      .buffer_length = CCID_MAX_BUFFER)
};

FIXTURE_VARIANT_ADD(probe, bulk_in_missing) {
	.args = "--endpoints bulk-out,int-in",
	REFUSED("bulk-IN or bulk-OUT endpoint missing"),
};

FIXTURE_VARIANT_ADD(probe, bulk_out_missing) {
	.args = "--endpoints bulk-in,int-in",
	REFUSED("bulk-IN or bulk-OUT endpoint missing"),
};

FIXTURE_VARIANT_ADD(probe, bulk_in_declared_interrupt) {
	.args = "--endpoints bulk-in-as-int,bulk-out,int-in",
	REFUSED("bulk-IN or bulk-OUT endpoint missing"),
};

FIXTURE_VARIANT_ADD(probe, bulk_maxp_0) {
	.args = "--max-packet 0",
	REFUSED("bulk endpoint with wMaxPacketSize 0"),
};

FIXTURE_VARIANT_ADD(probe, int_in_maxp_1) {
	.args = "--int-max-packet 1",
	REFUSED("interrupt-IN wMaxPacketSize below 2"),
};

FIXTURE_VARIANT_ADD(probe, int_in_absent) {
	BINDS(.args = "--endpoints bulk-in,bulk-out", .no_int = true)
};

FIXTURE_SETUP(probe)
{
	const char *why = cannot_run();
	int ret;

	if (why)
		SKIP(return, "%s", why);
	ret = kmsg_start();
	ASSERT_EQ(0, ret) TH_LOG("/dev/kmsg: %s", errname(ret));
}

FIXTURE_TEARDOWN_PARENT(probe)
{
	emu_reap(_metadata, &self->e, _metadata->exit_code == KSFT_FAIL);
}

/*
 * Without an interrupt endpoint nothing is signalled: poll() stays quiet
 * through a removal and an insertion, until an answer's bmICCStatus tells
 * the driver.
 */
static void check_no_int(struct __test_metadata *_metadata, struct emu *e,
			 int fd)
{
	struct ccid_slot_events ev;
	struct ccid_slot_status st;

	EXPECT_EQ(0, poll_mask(fd, 0));
	ASSERT_CTL(e, "remove 0");
	EXPECT_TRUE(log_wait(e, "notify-dropped data=5002 reason=no-int-in",
			     true, 1, 0));
	EXPECT_EQ(0, poll_mask(fd, 1000));
	ASSERT_OK(events(fd, 0, &ev));
	EXPECT_EQ(0, ev.present);
	EXPECT_EQ(0, ev.known);
	EXPECT_EQ(0, ev.changes[0]);
	ASSERT_OK(slot_status(fd, 0, &st));
	EXPECT_EQ(CCID_ICC_ABSENT, st.status);
	/* the first answer only teaches the driver what is there */
	EXPECT_EQ(0, poll_mask(fd, 0));
	ASSERT_OK(events(fd, 0, &ev));
	EXPECT_EQ(1, ev.known);
	EXPECT_EQ(0, ev.present);
	EXPECT_EQ(0, ev.changes[0]);

	ASSERT_CTL(e, "insert 0");
	EXPECT_TRUE(log_wait(e, "notify-dropped data=5003 reason=no-int-in",
			     true, 1, 0));
	EXPECT_EQ(0, poll_mask(fd, 1000));
	ASSERT_OK(slot_status(fd, 0, &st));
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status);
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd, 0));
	ASSERT_OK(events(fd, 0, &ev));
	EXPECT_EQ(1, ev.present);
	EXPECT_EQ(1, ev.changes[0]);
	EXPECT_EQ(0, ev.hw_errors);
	EXPECT_EQ(0, poll_mask(fd, 0));
	EXPECT_EQ(0, log_count(e, "notify data=", false));
}

/* A reader the driver took: its probe line, GET_INFO, sysfs */
static void check_bound(struct __test_metadata *_metadata, struct emu *e,
			const FIXTURE_VARIANT(probe) *variant)
{
	struct want_line want[1];
	char text[256];
	struct ccid_reader_info info;
	struct ccid_power_on p;
	char buf[64];
	int fd;

	bind_line(want[0].text, sizeof(want[0].text), e, variant->idfw,
		  variant->slots, variant->level);
	want[0].prio = 6;
	strf(text, sizeof(text), "ccid %s:1.0: %s", e->busid,
	     want[0].text);
	EXPECT_TRUE(kmsg_wait(text, 10000)) TH_LOG("no \"%s\"", text);

	fd = open_node(e);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", e->dev, errname(fd));
	ASSERT_OK(do_ioctl(fd, CCID_IOC_GET_INFO, &info));
	EXPECT_EQ(0x04e6, info.vendor_id);
	EXPECT_EQ(0xe003, info.product_id);
	EXPECT_EQ(variant->iface_class, info.interface_class);
	EXPECT_EQ(variant->slots, info.num_slots);
	EXPECT_EQ(variant->max_msg, info.max_message_length);
	EXPECT_EQ(variant->buffer_length, info.buffer_length);
	attr_str(e, "max_message_length", buf, sizeof(buf));
	strf(text, sizeof(text), "%u\n", variant->max_msg);
	EXPECT_STREQ(text, buf);
	attr_str(e, "quirks", buf, sizeof(buf));
	EXPECT_STREQ("none\n", buf);

	if (variant->no_int) {
		check_no_int(_metadata, e, fd);
	} else {
		EXPECT_OK(power_on(fd, 0, &p));
		EXPECT_EQ(sizeof(emu_atr), p.atr_len);
		EXPECT_EQ(0, memcmp(emu_atr, p.atr, sizeof(emu_atr)));
	}
	close(fd);
	expect_lines(_metadata, e->busid, want, 1);
}

TEST_F_TIMEOUT(probe, verdict, 120)
{
	struct emu *e = &self->e;
	struct want_line want[2];
	char drv[64], text[256];
	size_t nwant = 0;

	emu_up(_metadata, e, variant->args, variant->binds);
	driver_of(e, drv, sizeof(drv));

	if (!variant->binds) {
		if (variant->line) {
			strf(text, sizeof(text), "ccid %s:1.0: %s", e->busid,
			     variant->line);
			EXPECT_TRUE(kmsg_wait(text, 10000))
				TH_LOG("no \"%s\"", text);
			want[nwant].prio = variant->prio;
			strf(want[nwant].text, sizeof(want[0].text), "%s",
			     variant->line);
			nwant++;
		} else {
			/* let usbcore finish with the interface */
			sleep_ms(500);
		}
		driver_of(e, drv, sizeof(drv));
		EXPECT_STREQ("", drv);
		EXPECT_EQ(0, access(e->intf, F_OK))
			TH_LOG("%s: %s", e->intf, strerror(errno));
		expect_lines(_metadata, e->busid, want, nwant);
		return;
	}

	EXPECT_STREQ("ccid", drv);
	check_bound(_metadata, e, variant);
}

/* ------------------------------------------------------------------ */
/* The other tests: one or two emulated readers, the quirks parameter */

FIXTURE(emu) {
	struct emu e[2];
	char quirks_saved[256];
	bool quirks_set;
};

FIXTURE_SETUP(emu)
{
	const char *why = cannot_run();
	int ret;

	self->quirks_set = false;
	if (why)
		SKIP(return, "%s", why);
	ret = kmsg_start();
	ASSERT_EQ(0, ret) TH_LOG("/dev/kmsg: %s", errname(ret));
}

/* Put back the quirks parameter ("" is written as a lone NUL byte) */
static int quirks_restore(const char *saved)
{
	return *saved ? write_file(QUIRKS_PARAM, saved, strlen(saved)) :
			write_file(QUIRKS_PARAM, "", 1);
}

FIXTURE_TEARDOWN_PARENT(emu)
{
	bool failed = _metadata->exit_code == KSFT_FAIL;

	emu_reap(_metadata, &self->e[1], failed);
	emu_reap(_metadata, &self->e[0], failed);
	if (self->quirks_set && quirks_restore(self->quirks_saved))
		TH_LOG("could not restore %s", QUIRKS_PARAM);
}

static void quirks_save(struct __test_metadata *_metadata,
			FIXTURE_DATA(emu) *self)
{
	char *s = slurp(QUIRKS_PARAM, NULL);

	ASSERT_NE(NULL, s) TH_LOG("%s: %s", QUIRKS_PARAM, strerror(errno));
	s[strcspn(s, "\n")] = '\0';
	strf(self->quirks_saved, sizeof(self->quirks_saved), "%s", s);
	free(s);
	self->quirks_set = true;
}

/*
 * SPR532 firmware below 5.10 is refused by the table; "04e6:e003:" in
 * the quirks parameter clears its quirks, and binding it by hand works.
 */
TEST_F_TIMEOUT(emu, quirks_bogus_firmware_override, 120)
{
	struct emu *e = &self->e[0];
	struct want_line want[3] = {
		{ 3, "firmware 5.00 is broken, 5.10 or later needed (ccid.quirks=04e6:e003: overrides)" },
		{ 6, "quirks 0x0 set by the quirks parameter" },
	};
	struct ccid_power_on p;
	struct ccid_xfer x;
	char text[256], buf[64], drv[64], *dir;
	static const uint8_t data[] = { 'q', 'u', 'i', 'r', 'k' };
	int fd, ret;

	quirks_save(_metadata, self);
	ASSERT_STREQ("", self->quirks_saved)
		TH_LOG("the quirks parameter is set already");
	emu_up(_metadata, e, "--bcd-device 0x0500", false);
	strf(text, sizeof(text), "ccid %s:1.0: %s", e->busid, want[0].text);
	ASSERT_TRUE(kmsg_wait(text, 10000)) TH_LOG("no \"%s\"", text);

	ret = write_file(QUIRKS_PARAM, "04e6:e003:", 10);
	ASSERT_EQ(0, ret) TH_LOG("%s: %s", QUIRKS_PARAM, errname(ret));
	dir = slurp(QUIRKS_PARAM, NULL);
	ASSERT_NE(NULL, dir);
	EXPECT_STREQ("04e6:e003:\n", dir);
	free(dir);

	strf(text, sizeof(text), "%s:1.0", e->busid);
	ret = write_file(CCID_DRIVER "/bind", text, strlen(text));
	ASSERT_EQ(0, ret) TH_LOG("bind %s: %s", text, errname(ret));
	driver_of(e, drv, sizeof(drv));
	EXPECT_STREQ("ccid", drv);

	/* the node, from sysfs this time: the emulator reported none */
	sysfs_node(e);
	ASSERT_EQ(0, strncmp(e->node, "ccid", 4)) TH_LOG("node '%s'", e->node);
	strf(e->dev, sizeof(e->dev), "/dev/%s", e->node);
	bind_line(want[2].text, sizeof(want[2].text), e,
		  "04e6:e003 firmware 5.00", 1, "short_apdu");
	want[2].prio = 6;

	attr_str(e, "quirks", buf, sizeof(buf));
	EXPECT_STREQ("none\n", buf);
	attr_str(e, "firmware_version", buf, sizeof(buf));
	EXPECT_STREQ("5.00\n", buf);
	fd = open_node(e);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", e->dev, errname(fd));
	EXPECT_OK(power_on(fd, 0, &p));
	EXPECT_OK(echo(fd, 0, data, sizeof(data), &x));
	close(fd);

	ret = quirks_restore(self->quirks_saved);
	EXPECT_EQ(0, ret) TH_LOG("restoring %s: %s", QUIRKS_PARAM,
				 errname(ret));
	if (!ret)
		self->quirks_set = false;
	dir = slurp(QUIRKS_PARAM, NULL);
	ASSERT_NE(NULL, dir);
	EXPECT_STREQ("\n", dir);
	free(dir);
	expect_lines(_metadata, e->busid, want, 3);
}

/*
 * "echo > /sys/module/ccid/parameters/quirks", the way to empty a string
 * parameter from a shell, leaves "\n": that is an empty list, not a
 * malformed one.
 */
TEST_F_TIMEOUT(emu, quirks_param_cleared_with_echo, 60)
{
	struct emu *e = &self->e[0];
	struct want_line want[] = {
		{ 3, "firmware 5.09 is broken, 5.10 or later needed (ccid.quirks=04e6:e003: overrides)" },
	};
	char text[256];
	int ret;

	quirks_save(_metadata, self);
	ret = write_file(QUIRKS_PARAM, "\n", 1);
	ASSERT_EQ(0, ret) TH_LOG("%s: %s", QUIRKS_PARAM, errname(ret));
	emu_up(_metadata, e, "--bcd-device 0x0509", false);
	strf(text, sizeof(text), "ccid %s:1.0: %s", e->busid, want[0].text);
	EXPECT_TRUE(kmsg_wait(text, 10000)) TH_LOG("no \"%s\"", text);
	expect_lines(_metadata, e->busid, want, ARRAY_SIZE(want));
}

/* ------------------------------------------------------------------ */
/* Slot events */

/* Wait for slot_changes to reach @value, then read the events */
static void events_after(struct __test_metadata *_metadata,
			 const struct emu *e, int fd, long changes,
			 struct ccid_slot_events *ev)
{
	EXPECT_TRUE(wait_attr(e, "slot_changes", changes, EVENT_WAIT_MS))
		TH_LOG("slot_changes %ld, expected %ld",
		       attr_num(e, "slot_changes"), changes);
	ASSERT_OK(events(fd, 0, ev));
	EXPECT_EQ(0, poll_mask(fd, 0)) TH_LOG("EPOLLIN not cleared");
}

TEST_F_TIMEOUT(emu, slot_events, 120)
{
	struct emu *e = &self->e[0];
	struct want_line want[8] = { { 6, "" } };
	struct ccid_slot_events ev, ev2, ev3;
	struct ccid_slot_status st;
	struct ccid_xfer x;
	static const uint8_t data[] = { 'e', 'v' };
	long sc, hw;
	int fd, fd2, k;

	emu_up(_metadata, e, "", true);
	bind_line(want[0].text, sizeof(want[0].text), e,
		  "04e6:e003 firmware 7.01", 1, "short_apdu");
	fd = open_node(e);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", e->dev, errname(fd));
	fd2 = open_node(e);
	ASSERT_LE(0, fd2);

	/* Nothing happened since open() */
	EXPECT_EQ(0, poll_mask(fd, 0));
	ASSERT_OK(events(fd, 0, &ev));
	EXPECT_EQ(0, ev.flags);
	EXPECT_EQ(0, ev.present);
	EXPECT_EQ(0, ev.known);
	EXPECT_EQ(0, ev.reset_pending);
	EXPECT_EQ(0, ev.hw_errors);
	for (k = 0; k < CCID_MAX_SLOT_COUNT; k++) {
		EXPECT_EQ(0, ev.changes[k]);
		EXPECT_EQ(0, ev.generation[k]);
	}
	EXPECT_EQ(0, ev.reserved0);
	for (k = 0; k < (int)ARRAY_SIZE(ev.reserved); k++)
		EXPECT_EQ(0, ev.reserved[k]);
	EXPECT_EQ(0, attr_num(e, "slot_changes"));

	/* The first answer teaches the driver a card is there: no change */
	ASSERT_OK(slot_status(fd, 0, &st));
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status);
	EXPECT_EQ(0, st.error);
	EXPECT_EQ(0, poll_mask(fd, 0));
	EXPECT_EQ(0, poll_mask(fd2, 0));
	ASSERT_OK(events(fd, 0, &ev));
	EXPECT_EQ(1, ev.present);
	EXPECT_EQ(1, ev.known);
	EXPECT_EQ(0, ev.changes[0]);
	sc = attr_num(e, "slot_changes");
	EXPECT_EQ(0, sc);

	/* Removal and insertion: two transitions */
	ASSERT_CTL(e, "remove 0");
	ASSERT_CTL(e, "insert 0");
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd, EVENT_WAIT_MS));
	events_after(_metadata, e, fd, sc + 2, &ev2);
	EXPECT_EQ(1, ev2.present);
	EXPECT_EQ(ev.changes[0] + 2, ev2.changes[0]);
	EXPECT_EQ(0, ev2.hw_errors);
	EXPECT_EQ(0, ev2.reset_pending);
	/* reading on one file leaves the others' EPOLLIN */
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd2, 0));
	ASSERT_OK(events(fd2, 0, &ev3));
	EXPECT_EQ(ev2.changes[0], ev3.changes[0]);
	EXPECT_EQ(0, poll_mask(fd2, 0));
	EXPECT_TRUE(log_wait(e, "notify data=5002", true, 1, 0));
	EXPECT_TRUE(log_wait(e, "notify data=5003", true, 1, 0));
	/* GetSlotStatus agrees, and counts nothing twice */
	ASSERT_OK(slot_status(fd, 0, &st));
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status);
	EXPECT_EQ(0, poll_mask(fd, 0));
	EXPECT_EQ(sc + 2, attr_num(e, "slot_changes"));
	ev = ev2;

	/* Removal alone: the card is gone for GetSlotStatus and XfrBlock */
	ASSERT_CTL(e, "remove 0");
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd, EVENT_WAIT_MS));
	events_after(_metadata, e, fd, sc + 3, &ev2);
	EXPECT_EQ(0, ev2.present);
	EXPECT_EQ(ev.changes[0] + 1, ev2.changes[0]);
	ASSERT_OK(slot_status(fd, 0, &st));
	EXPECT_EQ(CCID_ICC_ABSENT, st.status);
	EXPECT_EQ(0, st.error);
	EXPECT_ERR(ENOMEDIUM, echo(fd, 0, data, sizeof(data), &x));
	EXPECT_EQ(CCID_CMD_STATUS_FAILED | CCID_ICC_ABSENT, x.status);
	EXPECT_EQ(0xfe, x.error);	/* ICC_MUTE */
	EXPECT_EQ(0, poll_mask(fd, 0));
	EXPECT_EQ(sc + 3, attr_num(e, "slot_changes"));

	/* Insertion, read; then a quick removal and insertion, unread */
	ASSERT_CTL(e, "insert 0");
	events_after(_metadata, e, fd, sc + 4, &ev);
	EXPECT_EQ(1, ev.present);
	ASSERT_CTL(e, "remove 0");
	ASSERT_CTL(e, "insert 0");
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd, EVENT_WAIT_MS));
	events_after(_metadata, e, fd, sc + 6, &ev2);
	EXPECT_EQ(1, ev2.present);	/* looks the same ... */
	EXPECT_EQ(ev.changes[0] + 2, ev2.changes[0]);	/* ... but moved */
	ev = ev2;

	/*
	 * The "changed" bit alone: a reader that saw a removal and an
	 * insertion between two of its messages reports the card present
	 * and changed (the emulator does that for "insert" on a full slot):
	 * two transitions.
	 */
	ASSERT_CTL(e, "insert 0");
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd, EVENT_WAIT_MS));
	events_after(_metadata, e, fd, sc + 8, &ev2);
	EXPECT_EQ(1, ev2.present);
	EXPECT_EQ(ev.changes[0] + 2, ev2.changes[0]);
	EXPECT_EQ(4, log_count(e, "notify data=5003", true));
	EXPECT_EQ(3, log_count(e, "notify data=5002", true));
	ev = ev2;

	/* HardwareError */
	hw = attr_num(e, "hw_errors");
	EXPECT_EQ(0, hw);
	ASSERT_CTL(e, "hwerror 0");
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd, EVENT_WAIT_MS));
	EXPECT_TRUE(wait_attr(e, "hw_errors", hw + 1, EVENT_WAIT_MS));
	ASSERT_OK(events(fd, 0, &ev2));
	EXPECT_EQ(hw + 1, ev2.hw_errors);
	EXPECT_EQ(ev.changes[0], ev2.changes[0]);
	EXPECT_EQ(1, ev2.present);
	EXPECT_EQ(0, poll_mask(fd, 0));
	EXPECT_EQ(sc + 8, attr_num(e, "slot_changes"));
	EXPECT_EQ(1, log_count(e, "notify data=5100", false));
	want[1].prio = 4;
	strf(want[1].text, sizeof(want[1].text),
	     "slot 0: hardware error 0x01");

	/* GetSlotStatus agrees with the events */
	ASSERT_OK(slot_status(fd, 0, &st));
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status);
	EXPECT_EQ(0, poll_mask(fd, 0));

	/* Bad arguments */
	memset(&ev, 0, sizeof(ev));
	ev.flags = 2;
	EXPECT_ERR(EINVAL, do_ioctl(fd, CCID_IOC_SLOT_EVENTS, &ev));
	ev.flags = 0x80000000;
	EXPECT_ERR(EINVAL, do_ioctl(fd, CCID_IOC_SLOT_EVENTS, &ev));
	memset(&ev, 0, sizeof(ev));
	ev.reserved0 = 0x100;
	EXPECT_ERR(EINVAL, do_ioctl(fd, CCID_IOC_SLOT_EVENTS, &ev));
	for (k = 0; k < (int)ARRAY_SIZE(ev.reserved); k++) {
		memset(&ev, 0, sizeof(ev));
		ev.reserved[k] = 1ull << (k * 13);
		EXPECT_ERR(EINVAL, do_ioctl(fd, CCID_IOC_SLOT_EVENTS, &ev));
	}
	EXPECT_ERR(EFAULT, do_ioctl(fd, CCID_IOC_SLOT_EVENTS, NULL));
	ASSERT_OK(events(fd, CCID_EVENTS_ACK_RESET, &ev));
	EXPECT_EQ(CCID_EVENTS_ACK_RESET, ev.flags);
	EXPECT_EQ(0, ev.reset_pending);
	want[2].prio = want[3].prio = 5;
	strf(want[2].text, sizeof(want[2].text), "emu_test: unknown flags");
	strf(want[3].text, sizeof(want[3].text), "emu_test: unknown flags");
	for (k = 4; k < 8; k++) {
		want[k].prio = 5;
		strf(want[k].text, sizeof(want[k].text),
		     "emu_test: reserved field not zero");
	}
	close(fd2);
	close(fd);
	expect_lines(_metadata, e->busid, want, 8);
}

/* ------------------------------------------------------------------ */
/* Three slots */

static void slot_data(uint8_t *d, uint8_t slot, uint8_t tag)
{
	static const char txt[] = "slot?-tag?-data";

	memcpy(d, txt, 15);
	d[4] = '0' + slot;
	d[9] = tag;
}

/* A netlink socket for the kernel's uevents */
static int uevent_socket(void)
{
	struct sockaddr_nl sa = {
		.nl_family = AF_NETLINK, .nl_groups = 1,
	};
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			NETLINK_KOBJECT_UEVENT);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -errno;
	}
	return fd;
}

/*
 * A removal and an insertion that happen as commands arrive: the answer's
 * bmICCStatus and the NotifySlotChange both tell of each, and each counts
 * once.  @args orders the two: with --notify-delay the answer comes first.
 */
static void check_change_counted_once(struct __test_metadata *_metadata,
				      struct emu *e, const char *args)
{
	struct ccid_slot_events ev;
	struct ccid_slot_status st;
	int fd, i;

	emu_up(_metadata, e, args, true);
	fd = open_node(e);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", e->dev, errname(fd));

	for (i = 1; i <= 2; i++)
		ASSERT_OK(slot_status(fd, 0, &st));
	EXPECT_EQ(0, attr_num(e, "slot_changes"));

	ASSERT_OK(slot_status(fd, 0, &st));		/* command 3 */
	EXPECT_EQ(CCID_ICC_ABSENT, st.status);
	EXPECT_TRUE(log_wait(e, "notify data=5002", true, 1, EVENT_WAIT_MS));
	EXPECT_TRUE(wait_attr(e, "slot_changes", 1, EVENT_WAIT_MS));
	usleep(300 * 1000);	/* time for a second count, if any */
	ASSERT_OK(slot_status(fd, 0, &st));		/* command 4 */
	EXPECT_EQ(CCID_ICC_ABSENT, st.status);
	ASSERT_OK(events(fd, 0, &ev));
	EXPECT_EQ(0, ev.present);
	EXPECT_EQ(1, ev.changes[0]);
	EXPECT_EQ(1, attr_num(e, "slot_changes"));

	ASSERT_OK(slot_status(fd, 0, &st));		/* command 5 */
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status);
	EXPECT_TRUE(log_wait(e, "notify data=5003", true, 1, EVENT_WAIT_MS));
	EXPECT_TRUE(wait_attr(e, "slot_changes", 2, EVENT_WAIT_MS));
	usleep(300 * 1000);
	ASSERT_OK(events(fd, 0, &ev));
	EXPECT_EQ(1, ev.present);
	EXPECT_EQ(2, ev.changes[0]);
	EXPECT_EQ(2, attr_num(e, "slot_changes"));
	close(fd);
}

/* The notification as soon as the event, which usually beats the answer */
TEST_F_TIMEOUT(emu, slot_change_seen_twice_counted_once, 60)
{
	check_change_counted_once(_metadata, &self->e[0],
				  "--remove-at 3:0 --insert-at 5:0");
}

/* The answer first, the notification 500 ms later */
TEST_F_TIMEOUT(emu, slot_change_answer_first_counted_once, 60)
{
	check_change_counted_once(_metadata, &self->e[0],
				  "--remove-at 3:0 --insert-at 5:0 --notify-delay 500");
}

/* Count the "change" uevents of @busid:1.0 with @key; @last: the last one */
static int uevents_with(int fd, const char *busid, const char *key,
			char *last, size_t size, long ms)
{
	char buf[4096], suffix[48];
	long end = now_ms() + ms;
	int n = 0;

	strf(suffix, sizeof(suffix), "/%s:1.0", busid);
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf) - 1, 0);
		bool mine = false, has = false;
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
		}
		if (mine && has && !strncmp(buf, "change@", 7)) {
			n++;
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

TEST_F_TIMEOUT(emu, three_slots_independent, 120)
{
	struct emu *e = &self->e[0];
	struct want_line want[1] = { { 6, "" } };
	struct ccid_slot_status st;
	struct ccid_power_on p;
	struct ccid_xfer x;
	uint8_t d[15], apdu[32];
	char buf[32];
	int fd, s, n;

	emu_up(_metadata, e, "--max-slot-index 2", true);
	bind_line(want[0].text, sizeof(want[0].text), e,
		  "04e6:e003 firmware 7.01", 3, "short_apdu");
	attr_str(e, "slots", buf, sizeof(buf));
	EXPECT_STREQ("3\n", buf);
	fd = open_node(e);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", e->dev, errname(fd));

	/* Power on slot 1 only */
	ASSERT_OK(power_on(fd, 1, &p));
	EXPECT_EQ(sizeof(emu_atr), p.atr_len);
	EXPECT_EQ(0, memcmp(emu_atr, p.atr, sizeof(emu_atr)));
	for (s = 0; s < 3; s++) {
		ASSERT_OK(slot_status(fd, s, &st));
		EXPECT_EQ(s == 1 ? CCID_ICC_ACTIVE : CCID_ICC_INACTIVE,
			  st.status) TH_LOG("slot %d", s);
		EXPECT_EQ(0, st.error);
	}
	/* The unpowered slots say so, the powered one echoes */
	for (s = 0; s < 3; s++) {
		slot_data(d, s, 'a');
		if (s == 1) {
			EXPECT_OK(echo(fd, s, d, sizeof(d), &x));
		} else {
			EXPECT_ERR(EIO, echo(fd, s, d, sizeof(d), &x));
			EXPECT_EQ(CCID_CMD_STATUS_FAILED | CCID_ICC_INACTIVE,
				  x.status);
			EXPECT_EQ(0xfe, x.error);
		}
	}
	/* Every slot on: each gets its own answer */
	for (s = 0; s < 3; s += 2)
		ASSERT_OK(power_on(fd, s, &p));
	for (n = 0; n < 5; n++) {
		for (s = 2; s >= 0; s--) {
			slot_data(d, s, 'b' + n);
			EXPECT_EQ(0, echo(fd, s, d, sizeof(d), &x))
				TH_LOG("slot %d, round %d", s, n);
			EXPECT_LT(0, emu_cmd_of(e, s, apdu,
						echo_apdu(apdu, d, sizeof(d))))
				TH_LOG("slot %d: the emulator saw no such XfrBlock", s);
		}
	}
	EXPECT_EQ(0, attr_num(e, "stale_frames"));
	close(fd);
	expect_lines(_metadata, e->busid, want, 1);
}

/*
 * A command on slot 1 times out (the card takes 1000 ms over an APDU, the
 * caller waits 300 ms): the driver aborts it and powers slot 1 off, which
 * starts a new generation of slot 1 only.
 */
TEST_F_TIMEOUT(emu, three_slots_reset_one, 120)
{
	static const uint8_t slow[] = { 0x80, 0xef, 0x03, 0xe8 };
	struct emu *e = &self->e[0];
	struct want_line want[2] = { { 6, "" }, { 4, "slot 1: command 0x6f: no answer" } };
	struct ccid_slot_events ev, ev0;
	struct ccid_power_on p;
	struct ccid_xfer x;
	uint8_t d[15], rx[64], apdu[32];
	char uev[256];
	int fd, fd_before, fd_after, ufd, s, last, n;
	long t0, timeouts, aborts;

	emu_up(_metadata, e, "--max-slot-index 2", true);
	bind_line(want[0].text, sizeof(want[0].text), e,
		  "04e6:e003 firmware 7.01", 3, "short_apdu");
	fd = open_node(e);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", e->dev, errname(fd));
	fd_before = open_node(e);
	ASSERT_LE(0, fd_before);
	for (s = 0; s < 3; s++)
		ASSERT_OK(power_on(fd, s, &p));
	ASSERT_OK(events(fd, 0, &ev0));
	ASSERT_OK(events(fd_before, 0, &ev));
	EXPECT_EQ(7, ev0.present);
	EXPECT_EQ(0, poll_mask(fd, 0));
	for (s = 0; s < CCID_MAX_SLOT_COUNT; s++)
		EXPECT_EQ(0, ev0.generation[s]);
	timeouts = attr_num(e, "timeouts");
	aborts = attr_num(e, "aborts");
	ufd = uevent_socket();
	ASSERT_LE(0, ufd) TH_LOG("uevent socket: %s", errname(ufd));

	t0 = now_ms();
	EXPECT_ERR(ETIMEDOUT, xfr(fd, 1, slow, sizeof(slow), rx, sizeof(rx),
				  300, &x));
	TH_LOG("slot 1 timed out and was recovered in %ld ms", now_ms() - t0);
	EXPECT_EQ(0xff, x.status) TH_LOG("written back without an answer");
	EXPECT_EQ(timeouts + 1, attr_num(e, "timeouts"));
	EXPECT_EQ(aborts + 1, attr_num(e, "aborts"));
	EXPECT_TRUE(log_wait(e, "abort-answered seq=", false, 1, 0));

	/* Slot 1 refuses card commands from the files that were open */
	last = emu_last_cmd(e);
	slot_data(d, 1, 'r');
	EXPECT_ERR(ECONNRESET, echo(fd, 1, d, sizeof(d), &x));
	EXPECT_ERR(ECONNRESET, echo(fd_before, 1, d, sizeof(d), &x));
	/* ... slots 0 and 2 work on, from the same file */
	for (s = 0; s < 3; s += 2) {
		slot_data(d, s, 'w');
		EXPECT_EQ(0, echo(fd, s, d, sizeof(d), &x))
			TH_LOG("slot %d", s);
	}
	/* nothing went to the reader for the refused calls */
	slot_data(d, 0, 'w');
	EXPECT_EQ(last + 1, emu_cmd_of(e, 0, apdu,
				       echo_apdu(apdu, d, sizeof(d))));

	EXPECT_EQ(POLLIN_BITS | POLLPRI, poll_mask(fd, 0));
	EXPECT_EQ(POLLIN_BITS | POLLPRI, poll_mask(fd_before, 0));
	ASSERT_OK(events(fd, 0, &ev));
	EXPECT_EQ(0x2, ev.reset_pending);
	EXPECT_EQ(7, ev.present);
	for (s = 0; s < CCID_MAX_SLOT_COUNT; s++) {
		EXPECT_EQ(s == 1 ? 1 : 0, ev.generation[s]) TH_LOG("slot %d", s);
		EXPECT_EQ(ev0.changes[s], ev.changes[s]) TH_LOG("slot %d", s);
	}
	/* EPOLLIN is read, EPOLLPRI stays until the reset is acknowledged */
	EXPECT_EQ(POLLPRI, poll_mask(fd, 0));
	EXPECT_ERR(ECONNRESET, echo(fd, 1, d, sizeof(d), &x));

	/* A file opened after the reset has nothing to acknowledge */
	fd_after = open_node(e);
	ASSERT_LE(0, fd_after);
	EXPECT_EQ(0, poll_mask(fd_after, 0));
	ASSERT_OK(events(fd_after, 0, &ev));
	EXPECT_EQ(0, ev.reset_pending);
	EXPECT_EQ(1, ev.generation[1]);
	/* the driver powered slot 1 off: the card is mute */
	slot_data(d, 1, 'a');
	EXPECT_ERR(EIO, echo(fd_after, 1, d, sizeof(d), &x));
	EXPECT_EQ(CCID_CMD_STATUS_FAILED | CCID_ICC_INACTIVE, x.status);
	EXPECT_EQ(0xfe, x.error);

	/* Acknowledged by CCID_IOC_SLOT_EVENTS */
	ASSERT_OK(events(fd, CCID_EVENTS_ACK_RESET, &ev));
	EXPECT_EQ(0x2, ev.reset_pending);
	ASSERT_OK(events(fd, 0, &ev));
	EXPECT_EQ(0, ev.reset_pending);
	EXPECT_EQ(0, poll_mask(fd, 0));
	EXPECT_ERR(EIO, echo(fd, 1, d, sizeof(d), &x));
	ASSERT_OK(power_on(fd, 1, &p));
	slot_data(d, 1, 'k');
	EXPECT_OK(echo(fd, 1, d, sizeof(d), &x));

	/* ... or by a successful power-on */
	EXPECT_EQ(POLLIN_BITS | POLLPRI, poll_mask(fd_before, 0));
	ASSERT_OK(power_on(fd_before, 1, &p));
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd_before, 0));
	EXPECT_OK(echo(fd_before, 1, d, sizeof(d), &x));
	ASSERT_OK(events(fd_before, 0, &ev));
	EXPECT_EQ(0, ev.reset_pending);
	EXPECT_EQ(0, poll_mask(fd_before, 0));

	/* One uevent for the interface, naming slot 1 */
	n = uevents_with(ufd, e->busid, "CCID_EVENT=reset", uev, sizeof(uev),
			 2000);
	EXPECT_EQ(1, n);
	EXPECT_STREQ("CCID_EVENT=reset CCID_SLOTS=0x2 ", uev);
	close(ufd);
	close(fd_after);
	close(fd_before);
	close(fd);
	expect_lines(_metadata, e->busid, want, 2);
}

/* ------------------------------------------------------------------ */
/* A randomized run */

#define RANDOM_XFRS		10000	/* CCID_RANDOM_XFRS overrides */
#define RANDOM_TIMEOUT_MS	300
#define RANDOM_CALL_MAX_MS	30000
#define RANDOM_PAYLOAD		16

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* 'R', the index (4 bytes), 11 bytes that depend on seed and index */
static void random_payload(uint8_t *d, uint32_t i, uint64_t seed)
{
	uint64_t x = seed ^ ((uint64_t)i << 32), r = 0;
	int k;

	d[0] = 'R';
	d[1] = i >> 24;
	d[2] = i >> 16;
	d[3] = i >> 8;
	d[4] = i;
	for (k = 5; k < RANDOM_PAYLOAD; k++) {
		if (!((k - 5) % 8))
			r = splitmix64(&x);
		d[k] = r >> ((k - 5) % 8 * 8);
	}
}

struct call {
	int ret;
	uint8_t status, error;
	bool answer_ok;		/* success: the emulator's echo of our data */
	long ms;
};

/*
 * What the emulator logged about one command.  The "kind=" of a "bad"
 * line is not used: ccid_emu names every bad frame after the last one it
 * queued (see the report), so a duplicate sent late reads "garbage".  A
 * bad frame next to a proper answer is one the driver must drop as stale
 * (wrong bSeq, duplicate); a bad frame with no answer garbles the command.
 */
struct emu_cmd {
	int idx;		/* our payload index, -1: not one of ours */
	bool answered;		/* an "answer N" line */
	uint8_t status, error;	/* of the first one */
	bool no_answer;
	int bad;		/* "bad N" lines */
	int time_ext;
};

/* Parse the emulator's log into @cmds (indexed by command number) */
static size_t parse_random_log(const struct emu *e, struct emu_cmd **cmdsp)
{
	char *log = slurp(e->log, NULL), *p, *nl, data[160];
	struct emu_cmd *cmds = NULL;
	size_t cap = 0, max = 0;
	unsigned int n, type, slot, seq, len, st, er;

	for (p = log; p && *p; p = nl + 1) {
		struct emu_cmd *c;
		bool cmd = false;

		nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = '\0';
		if (sscanf(p, "cmd %u type=0x%x slot=%u seq=%u len=%u p=%*6s data=%150s",
			   &n, &type, &slot, &seq, &len, data) == 6)
			cmd = true;
		else if (sscanf(p, "answer %u ", &n) != 1 &&
			 sscanf(p, "bad %u ", &n) != 1 &&
			 sscanf(p, "no-answer %u ", &n) != 1 &&
			 sscanf(p, "time-ext %u ", &n) != 1)
			continue;
		if (n >= cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			struct emu_cmd *q;

			while (ncap <= n)
				ncap *= 2;
			q = realloc(cmds, ncap * sizeof(*q));
			if (!q)
				break;
			memset(q + cap, 0, (ncap - cap) * sizeof(*q));
			for (; cap < ncap; cap++)
				q[cap].idx = -1;
			cmds = q;
		}
		if (n + 1 > max)
			max = n + 1;
		c = &cmds[n];
		if (cmd) {
			/* 80EE000010 'R' idx ... */
			unsigned int idx;

			if (type == 0x6f &&
			    strlen(data) == 2 * (5 + RANDOM_PAYLOAD) &&
			    !strncmp(data, "80EE00001052", 12) &&
			    sscanf(data + 12, "%8x", &idx) == 1)
				c->idx = idx;
		} else if (sscanf(p, "answer %u type=0x%x slot=%u seq=%u len=%u status=0x%x error=0x%x",
				  &n, &type, &slot, &seq, &len, &st, &er) == 7) {
			if (!c->answered) {
				c->answered = true;
				c->status = st;
				c->error = er;
			}
		} else if (!strncmp(p, "bad ", 4)) {
			c->bad++;
		} else if (!strncmp(p, "no-answer ", 10)) {
			c->no_answer = true;
		} else if (!strncmp(p, "time-ext ", 9)) {
			c->time_ext++;
		}
	}
	free(log);
	*cmdsp = cmds;
	return max;
}

TEST_F_TIMEOUT(emu, random_10000_xfrblocks, 1500)
{
	static const int allowed[] = {
		0, -EPROTO, -ETIMEDOUT, -ECONNRESET, -EIO, -EBUSY, -EINVAL,
		-ECANCELED, -ETIME, -EPROTONOSUPPORT, -EOPNOTSUPP, -ENOMEDIUM,
	};
	static const char * const ctrs[] = {
		"timeouts", "aborts", "protocol_errors", "stale_frames",
		"time_extensions", "clear_halts", "usb_resets",
	};
	struct emu *e = &self->e[0];
	struct call *calls;
	struct emu_cmd *cmds;
	struct ccid_power_on p;
	struct ccid_slot_status st;
	struct ccid_xfer x;
	uint8_t d[RANDOM_PAYLOAD], apdu[5 + RANDOM_PAYLOAD], rx[300];
	long before[ARRAY_SIZE(ctrs)], after[ARRAY_SIZE(ctrs)];
	unsigned int resets = 0, hist[ARRAY_SIZE(allowed)] = { 0 };
	unsigned int bad_errno = 0, bad_answer = 0, bad_reset = 0, slow = 0;
	unsigned int wrong = 0, unseen = 0, twice = 0, n_ext = 0, n_stale = 0;
	unsigned int late = 0, nxfrs = RANDOM_XFRS;
	unsigned int step = 0, w_aborts = 0, w_halts = 0, w_resets = 0;
	size_t ncmds, k, a;
	bool expect_reset = false;
	uint64_t seed;
	char args[64], *env = getenv("CCID_SEED"), *count;
	long start, t, max_ms = 0, total;
	uint32_t i;
	int fd, ret, *seen;

	count = getenv("CCID_RANDOM_XFRS");
	if (count && strtoul(count, NULL, 0))
		nxfrs = strtoul(count, NULL, 0);
	seed = env && *env ? strtoull(env, NULL, 0) :
	       ((uint64_t)time(NULL) ^ (uint64_t)getpid() << 16) & 0xffffffff;
	TH_LOG("seed %llu (CCID_SEED=%llu repeats this run)",
	       (unsigned long long)seed, (unsigned long long)seed);
	strf(args, sizeof(args), "--random %llu", (unsigned long long)seed);
	emu_up(_metadata, e, args, true);
	fd = open_node(e);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", e->dev, errname(fd));
	ASSERT_OK(power_on(fd, 0, &p));
	for (k = 0; k < ARRAY_SIZE(ctrs); k++)
		before[k] = attr_num(e, ctrs[k]);
	calls = calloc(nxfrs, sizeof(*calls));
	seen = calloc(nxfrs, sizeof(*seen));
	ASSERT_NE(NULL, calls);
	ASSERT_NE(NULL, seen);

	start = now_ms();
	for (i = 0; i < nxfrs;) {
		if (i && !(i % 1000) && !expect_reset)
			TH_LOG("%u XfrBlocks in %ld ms", i, now_ms() - start);
		random_payload(d, i, seed);
		t = now_ms();
		ret = xfr(fd, 0, apdu, echo_apdu(apdu, d, sizeof(d)), rx,
			  sizeof(rx), RANDOM_TIMEOUT_MS, &x);
		t = now_ms() - t;
		if (t > max_ms)
			max_ms = t;
		if (t > RANDOM_CALL_MAX_MS && !slow++)
			TH_LOG("XfrBlock %u took %ld ms", i, t);
		for (a = 0; a < ARRAY_SIZE(allowed) && allowed[a] != ret; a++)
			;
		if (a == ARRAY_SIZE(allowed)) {
			if (!bad_errno++)
				TH_LOG("XfrBlock %u: undocumented %s", i,
				       errname(ret));
		} else {
			hist[a]++;
		}
		/* after a recovery, exactly the next call is refused */
		if ((ret == -ECONNRESET) != expect_reset && !bad_reset++)
			TH_LOG("XfrBlock %u: %s, %s ECONNRESET", i,
			       errname(ret),
			       expect_reset ? "expected" : "unexpected");
		if (ret == -ECONNRESET) {
			resets++;
			expect_reset = false;
			ret = power_on(fd, 0, &p);
			ASSERT_EQ(0, ret) TH_LOG("power on after XfrBlock %u: %s",
						 i, errname(ret));
			continue;	/* nothing was sent: same payload again */
		}
		calls[i].ret = ret;
		calls[i].status = x.status;
		calls[i].error = x.error;
		calls[i].ms = t;
		calls[i].answer_ok = !ret && is_echo(rx, x.rx_len, d, sizeof(d)) &&
				     x.status == 0 && x.error == 0;
		if (!ret && !calls[i].answer_ok && !bad_answer++) {
			char got[2 * 64 + 2];

			hex_compact(got, sizeof(got), rx, x.rx_len < 64 ? x.rx_len : 64);
			TH_LOG("XfrBlock %u: answer %s (rx_len %u, status %02x)",
			       i, got, x.rx_len, x.status);
		}
		expect_reset = ret == -ETIMEDOUT || ret == -EPROTO;
		i++;
	}
	total = now_ms() - start;
	/* a duplicate of the last answer must be dropped too */
	EXPECT_OK(slot_status(fd, 0, &st));
	close(fd);
	TH_LOG("%u XfrBlocks, %u ECONNRESET (+ as many power-ons) in %ld ms: %.1f XfrBlocks/s, slowest call %ld ms",
	       nxfrs, resets, total, nxfrs * 1000.0 / total, max_ms);
	for (a = 0; a < ARRAY_SIZE(allowed); a++)
		if (hist[a])
			TH_LOG("  %-16s %u", errname(allowed[a]), hist[a]);
	for (k = 0; k < ARRAY_SIZE(ctrs); k++)
		after[k] = attr_num(e, ctrs[k]);

	EXPECT_EQ(0, bad_errno);
	EXPECT_EQ(0, bad_answer);
	EXPECT_EQ(0, bad_reset);
	EXPECT_EQ(0, slow) TH_LOG("slowest call %ld ms", max_ms);

	/* Every call against the emulator's own account of it */
	ncmds = parse_random_log(e, &cmds);
	ASSERT_LT(0, ncmds);
	for (k = 0; k < ncmds; k++) {
		const struct emu_cmd *c = &cmds[k];
		bool garbled = c->bad && !c->answered;
		const struct call *cl;
		int want;

		n_ext += c->time_ext;
		if (c->answered)
			n_stale += c->bad;
		if (c->idx < 0)
			continue;
		if (c->idx >= (int)nxfrs || seen[c->idx]++) {
			if (!twice++)
				TH_LOG("command %zu: payload %d sent twice", k,
				       c->idx);
			continue;
		}
		cl = &calls[c->idx];
		if (c->no_answer)
			want = -ETIMEDOUT;
		else if (garbled)
			want = -EPROTO;
		else if (c->answered)
			want = rsp_errno(c->status, c->error);
		else
			want = 1;	/* no verdict in the log */
		/*
		 * The VM was too slow to carry an answer within the timeout:
		 * it was still queued when the Abort came, which turned it
		 * into CMD_ABORTED.  Right for the driver, but not what the
		 * dice said; counted and reported.
		 */
		if (cl->ret == -ETIMEDOUT && want == -ECANCELED &&
		    c->error == 0xff) {
			late++;
			continue;
		}
		if (cl->ret != want ||
		    (c->answered && !c->no_answer &&
		     (cl->status != c->status || cl->error != c->error))) {
			if (wrong++ < 10)
				TH_LOG("XfrBlock %d (command %zu, %ld ms): %s status %02x error %02x; emulator: %s%s status %02x error %02x, %d bad frames, %d time extensions",
				       c->idx, k, cl->ms, errname(cl->ret),
				       cl->status, cl->error,
				       c->no_answer ? "no answer " : "",
				       c->answered ? "answered" : "",
				       c->status, c->error, c->bad,
				       c->time_ext);
		}
	}
	for (i = 0; i < nxfrs; i++)
		if (!seen[i] && !unseen++)
			TH_LOG("XfrBlock %u never reached the emulator", i);
	EXPECT_EQ(0, wrong);
	EXPECT_EQ(0, unseen);
	EXPECT_EQ(0, twice);
	if (late)
		TH_LOG("%u answers were still queued when their command timed out (a slow VM)",
		       late);

	/*
	 * The ladder's memory (ccid.rst, "Recovery"): each failure with no
	 * answered XfrBlock since the last one starts one step higher:
	 * Abort, clear halts and Abort, then the USB reset.
	 */
	for (i = 0; i < nxfrs; i++) {
		if (calls[i].ret != -ETIMEDOUT && calls[i].ret != -EPROTO) {
			step = 0;
			continue;
		}
		w_aborts += step < 2;
		w_halts += step == 1;
		w_resets += step == 2;
		step += step < 2;
	}

	/* The driver's counters add up */
	EXPECT_EQ(hist[2], after[0] - before[0]) TH_LOG("timeouts");
	EXPECT_EQ(w_aborts, after[1] - before[1]) TH_LOG("aborts");
	EXPECT_EQ(hist[1], after[2] - before[2]) TH_LOG("protocol_errors");
	/* frames of a late command may be drained by its Abort, uncounted */
	if (late) {
		EXPECT_GE(n_stale, after[3] - before[3]) TH_LOG("stale_frames");
		EXPECT_GE(n_ext, after[4] - before[4]) TH_LOG("time_extensions");
	} else {
		EXPECT_EQ(n_stale, after[3] - before[3]) TH_LOG("stale_frames");
		EXPECT_EQ(n_ext, after[4] - before[4]) TH_LOG("time_extensions");
	}
	EXPECT_EQ(w_halts, after[5] - before[5]) TH_LOG("clear_halts");
	EXPECT_EQ(w_resets, after[6] - before[6]) TH_LOG("usb_resets");
	/* a recovery at the very end leaves its reset unread */
	EXPECT_EQ(resets, hist[1] + hist[2] - expect_reset);
	EXPECT_EQ(0, kmsg_bad_lines(_metadata));
	free(cmds);
	free(calls);
	free(seen);
}

/* ------------------------------------------------------------------ */
/* Concurrency */

#define CONC_APDUS		1000

struct tally {
	unsigned int done, errors, mismatches;
	int first_err;
	char first_bad[80];
};

/* A worker: its own file, @count echoes of its own payloads */
static void worker(const char *dev, int reader, int proc, int go,
		   struct tally *t)
{
	uint64_t x = (uint64_t)reader << 40 | (uint64_t)proc << 32 | getpid();
	uint8_t d[24], apdu[5 + 24], rx[64];
	struct ccid_xfer xf;
	int fd, k, ret;
	char c;

	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0 || read(go, &c, 1) != 0)
		_exit(2);
	for (k = 0; k < CONC_APDUS; k++) {
		uint64_t r1 = splitmix64(&x), r2 = splitmix64(&x);

		d[0] = 'C';
		d[1] = reader;
		d[2] = proc;
		d[3] = k >> 8;
		d[4] = k;
		memcpy(d + 5, &r1, 8);
		memcpy(d + 13, &r2, 8);
		d[21] = 'e';
		d[22] = 'n';
		d[23] = 'd';
		ret = xfr(fd, 0, apdu, echo_apdu(apdu, d, sizeof(d)), rx,
			  sizeof(rx), 0, &xf);
		if (ret) {
			if (!t->errors++)
				t->first_err = ret;
			continue;
		}
		t->done++;
		if (!is_echo(rx, xf.rx_len, d, sizeof(d)) || xf.status ||
		    xf.error) {
			if (!t->mismatches++)
				hex_compact(t->first_bad, sizeof(t->first_bad), rx,
				    xf.rx_len < 32 ? xf.rx_len : 32);
		}
	}
	close(fd);
	_exit(0);
}

/* @procs processes on each of the @nreaders emulators */
static void run_workers(struct __test_metadata *_metadata, struct emu *e,
			int nreaders, int procs)
{
	int n = nreaders * procs, go[2], r, k, st;
	struct tally *t = mmap(NULL, n * sizeof(*t), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	long stale[2], start, ms;
	pid_t pids[16];

	ASSERT_NE(MAP_FAILED, t);
	memset(t, 0, n * sizeof(*t));
	for (r = 0; r < nreaders; r++) {
		struct ccid_power_on p;
		int fd = open_node(&e[r]);

		ASSERT_LE(0, fd) TH_LOG("%s: %s", e[r].dev, errname(fd));
		ASSERT_OK(power_on(fd, 0, &p));
		close(fd);
		stale[r] = attr_num(&e[r], "stale_frames");
	}
	ASSERT_EQ(0, pipe(go));
	for (k = 0; k < n; k++) {
		pids[k] = fork();
		ASSERT_LE(0, pids[k]);
		if (!pids[k]) {
			close(go[1]);
			worker(e[k / procs].dev, k / procs, k % procs, go[0],
			       &t[k]);
		}
	}
	close(go[0]);
	start = now_ms();
	close(go[1]);		/* all start at once */
	for (k = 0; k < n; k++) {
		ASSERT_EQ(pids[k], waitpid(pids[k], &st, 0));
		EXPECT_TRUE(WIFEXITED(st) && !WEXITSTATUS(st))
			TH_LOG("worker %d: status %#x", k, st);
	}
	ms = now_ms() - start;
	TH_LOG("%d reader(s) x %d processes x %d echo APDUs: %ld ms (%.1f APDUs/s)",
	       nreaders, procs, CONC_APDUS, ms, n * CONC_APDUS * 1000.0 / ms);
	for (k = 0; k < n; k++) {
		EXPECT_EQ(CONC_APDUS, t[k].done)
			TH_LOG("reader %d process %d: %u errors, first %s",
			       k / procs, k % procs, t[k].errors,
			       errname(t[k].first_err));
		EXPECT_EQ(0, t[k].mismatches)
			TH_LOG("reader %d process %d: %u foreign answers, first [%s]",
			       k / procs, k % procs, t[k].mismatches,
			       t[k].first_bad);
	}
	for (r = 0; r < nreaders; r++) {
		EXPECT_EQ(procs * CONC_APDUS,
			  log_count(&e[r], "cmd ", false) - 1)
			TH_LOG("reader %d: commands", r);
		EXPECT_EQ(stale[r], attr_num(&e[r], "stale_frames"));
		EXPECT_EQ(0, attr_num(&e[r], "timeouts"));
		EXPECT_EQ(0, attr_num(&e[r], "aborts"));
	}
	munmap(t, n * sizeof(*t));
}

/* The baseline: one process, one reader */
TEST_F_TIMEOUT(emu, sequential_1_process, 300)
{
	struct want_line want[1] = { { 6, "" } };

	emu_up(_metadata, &self->e[0], "", true);
	bind_line(want[0].text, sizeof(want[0].text), &self->e[0],
		  "04e6:e003 firmware 7.01", 1, "short_apdu");
	run_workers(_metadata, self->e, 1, 1);
	expect_lines(_metadata, self->e[0].busid, want, 1);
}

TEST_F_TIMEOUT(emu, concurrent_8_processes, 600)
{
	struct want_line want[1] = { { 6, "" } };

	emu_up(_metadata, &self->e[0], "", true);
	bind_line(want[0].text, sizeof(want[0].text), &self->e[0],
		  "04e6:e003 firmware 7.01", 1, "short_apdu");
	run_workers(_metadata, self->e, 1, 8);
	expect_lines(_metadata, self->e[0].busid, want, 1);
}

TEST_F_TIMEOUT(emu, concurrent_2_readers_4_processes, 600)
{
	struct want_line want[2] = { { 6, "" }, { 6, "" } };

	emu_up(_metadata, &self->e[0], "--serial ONE", true);
	emu_up(_metadata, &self->e[1], "--serial TWO --pid e004", true);
	ASSERT_STRNE(self->e[0].node, self->e[1].node);
	ASSERT_STRNE(self->e[0].busid, self->e[1].busid);
	bind_line(want[0].text, sizeof(want[0].text), &self->e[0],
		  "04e6:e003 firmware 7.01", 1, "short_apdu");
	bind_line(want[1].text, sizeof(want[1].text), &self->e[1],
		  "04e6:e004 firmware 7.01", 1, "short_apdu");
	run_workers(_metadata, self->e, 2, 4);
	expect_lines(_metadata, self->e[0].busid, want, 1);
	expect_lines(_metadata, self->e[1].busid, want + 1, 1);
}

TEST_HARNESS_MAIN
