// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl_fuzz - random ioctls, opens, closes, polls and unplugs against
 * ccid.ko and ccid_emu, from several processes at once, while the
 * emulated reader injects faults.  Inside the VM that run-vm boots:
 *
 *	tools/testing/selftests/drivers/usb/ccid/run-vm --reader none -- \
 *		"$PWD/tools/testing/selftests/drivers/usb/ccid/ioctl_fuzz --seed 1 --calls 20000"
 *
 * The first line of output is the seed ("# seed N: replay with --seed
 * N"); the same seed and options give every worker the same stream of
 * calls and each emulator the same stream of faults, so a failure can be
 * replayed (the interleaving of the processes, and so some outcomes,
 * still depend on timing).
 *
 * Processes:
 *  - the conductor (this process) starts ccid_emu --chaos (a random fault
 *    from a fixed menu for a share of the commands: bad frames, stalls,
 *    drops, time extensions, lag, card bounces) with one of a few reader
 *    personalities, publishes the node in shared memory, forks the
 *    workers, and while they run: unplugs the reader (the emulator's
 *    "disconnect" or "replug", SIGKILL to it, or unbind and bind in
 *    sysfs) and plugs the next one, resets it through usbfs
 *    (USBDEVFS_RESET), sends SIGINT and SIGALRM to workers in the middle
 *    of their calls, kills a few with SIGKILL and starts them again,
 *    watches the kernel log and every call in flight (a call that
 *    outlives its bound is a hang);
 *  - each worker makes its share of --calls ioctl calls, and in between
 *    opens (O_RDWR, O_RDONLY, O_WRONLY, O_NONBLOCK), closes, dups, polls,
 *    reads, writes and forks (children that exit, close, or go on using
 *    the files while the worker does).  Step K of worker W draws from
 *    generators seeded with (seed, W, K) alone.  The ioctls are the
 *    driver's own with random but plausible structures (slots and lengths
 *    around the limits, unknown flags, non-zero reserved fields, odd,
 *    read-only, NULL, unmapped and kernel pointers, buffers that end at or
 *    run into a PROT_NONE page), other numbers of the CCID magic, and
 *    random numbers.
 *
 * Each result is checked against iocs[], the errno set ccid.rst
 * documents for the ioctl, and then against what the call's arguments
 * allow: an argument the ABI refuses must be refused (with one of the
 * errnos its faults name, nothing written back); valid arguments must not
 * be (no EFAULT without a bad pointer, no EINVAL without an answer that
 * says so); ENODEV only once an unplug began, and always after it
 * completed; EINTR only with a signal; a written-back structure has a
 * status that gives exactly the errno returned (ccid_rsp_errno(), with
 * EOVERFLOW and EPROTO where ccid.rst says); a structure not written back
 * is untouched, and so are the bytes of rx_buf the answer did not fill;
 * echo APDUs and Escapes come back with the caller's own data.  At the
 * end the reader must still work (power on and an echo) with the faults
 * switched off, and the kernel log must be clean.
 *
 * Options (defaults in brackets): --seed N [clock], --calls N [20000],
 * --procs N [4], --chaos PERMILLE, the emulator's fault odds [20],
 * --unplugs N [4], --kills N [2], --resets N, USB resets [3],
 * --signal-every N, a signal every N calls on average [25], --hang-slack
 * SECS, what a call may take beyond its own timeout [180].
 *
 * Outside the VM (CCID_VM unset), without root, vhci_hcd, ccid_emu or the
 * driver, it skips.  The emulator is CCID_EMU or ccid_emu next to this
 * program.  Build: make -C tools/testing/selftests/drivers/usb/ccid.
 */

#include <getopt.h>
#include <sys/time.h>
#include <linux/capability.h>
#include <linux/usbdevice_fs.h>

/* Only the harness's helpers are used, not its test runner */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "emu_harness.h"
#pragma GCC diagnostic pop
#include "ccidlib.h"

#define MAX_PROCS		16
#define MAX_FDS			6
#define MAX_EVENTS		64	/* unplugs, kills, resets */
#define WHAT_LEN		320
#define MAX_PRINTED		25	/* failures shown in full */
#define BIG			(17 * 4096)	/* > a 65554-byte message */
#define CANARY			0xa5
#define CANARY_SPAN		512	/* rx_buf bytes checked after a call */
#define RESCUE_MS		2500	/* longer calls get a SIGALRM this often */
#define OUT_MS			5000	/* CCID_OUT_TIMEOUT_MS */
#define TICK_MS			10
#define RO_STRUCT		256	/* > every structure of the UAPI */
#define PLUG_MS			60000	/* an unplug, or a new reader */
#define DEF_CTRL_MS		5000	/* CCID_TIMEOUT_CTRL_MS */
#define DEF_XFR_MS		10000	/* CCID_TIMEOUT_XFR_MS */
#define DEF_SECURE_MS		90000	/* CCID_TIMEOUT_SECURE_MS */
#define SECURE_SLACK_MS		10000	/* CCID_SECURE_SLACK_MS */
#define HDR_LEN			10	/* a CCID message header */

/* The ATR of the emulator's cards (T=1, its default) */
static const uint8_t emu_atr[] = {
	0x3b, 0x88, 0x80, 0x01, 0x43, 0x43, 0x49, 0x44, 0x2d, 0x45, 0x4d,
	0x55, 0x74
};

/* ------------------------------------------------------------------ */
/* Randomness: splitmix64, one generator per call */

struct rng {
	uint64_t s;
};

static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(struct rng *r)
{
	r->s += 0x9e3779b97f4a7c15ull;
	return mix64(r->s);
}

/* 0 .. n - 1 (0 for n 0) */
static uint64_t below(struct rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

/* true with odds @permille / 1000 */
static bool chance(struct rng *r, unsigned int permille)
{
	return below(r, 1000) < permille;
}

static void rnd_bytes(struct rng *r, uint8_t *p, size_t len)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (!(i % 8))
			v = rnd(r);
		p[i] = v >> (i % 8 * 8);
	}
}

/* An index into @weights, drawn by weight */
static int pick(struct rng *r, const unsigned int *weights, int n)
{
	unsigned int total = 0, v;
	int i;

	for (i = 0; i < n; i++)
		total += weights[i];
	v = below(r, total);
	for (i = 0; i < n; i++) {
		if (v < weights[i])
			return i;
		v -= weights[i];
	}
	return n - 1;
}

/* ------------------------------------------------------------------ */
/* The errnos, and the set ccid.rst documents for each ioctl */

enum {
	XE_OK, XE_ENODEV, XE_ECONNRESET, XE_ENOTTY, XE_EFAULT, XE_EINVAL,
	XE_EMSGSIZE, XE_EPERM, XE_EOPNOTSUPP, XE_EINTR, XE_ETIMEDOUT,
	XE_ECANCELED, XE_EPROTO, XE_EIO, XE_ENOMEM, XE_EBADF, XE_ENOMEDIUM,
	XE_ETIME, XE_EPROTONOSUPPORT, XE_EBUSY, XE_EOVERFLOW, XE_ESPIPE,
	XE_OTHER, XE_NUM
};

static const int xerrno[XE_OTHER] = {
	0, ENODEV, ECONNRESET, ENOTTY, EFAULT, EINVAL, EMSGSIZE, EPERM,
	EOPNOTSUPP, EINTR, ETIMEDOUT, ECANCELED, EPROTO, EIO, ENOMEM, EBADF,
	ENOMEDIUM, ETIME, EPROTONOSUPPORT, EBUSY, EOVERFLOW, ESPIPE,
};

#define B(e)		(1u << XE_##e)

static int xindex(int err)
{
	int i;

	for (i = 0; i < XE_OTHER; i++)
		if (xerrno[i] == err)
			return i;
	return XE_OTHER;
}

/* ccid.rst, "Errors": once the command was sent, before an answer */
#define SENT	(B(EINTR) | B(ETIMEDOUT) | B(ECANCELED) | B(EPROTO) | \
		 B(EIO) | B(ENOMEM))
/* ... and from the reader's answer (ccid_rsp_errno()) */
#define ANSWER	(B(ENOMEDIUM) | B(EINVAL) | B(EOPNOTSUPP) | B(ECANCELED) | \
		 B(ETIME) | B(EPROTONOSUPPORT) | B(EBUSY) | B(EIO))
/* Any ioctl: unplugged, a bad structure, a bad slot or reserved field */
#define BASE	(B(OK) | B(ENODEV) | B(EFAULT) | B(EINVAL))
/* Refusals of the arguments, before anything is sent */
#define REFUSED	(B(EINVAL) | B(EMSGSIZE) | B(EPERM) | B(EOPNOTSUPP) | \
		 B(EBADF) | B(ENOTTY) | B(EFAULT))
/* Only from an answer, which is written back */
#define ANSWERED (B(OK) | B(ENOMEDIUM) | B(ETIME) | B(EPROTONOSUPPORT) | \
		  B(EBUSY) | B(EOVERFLOW))

enum {
	I_GET_INFO, I_POWER_ON, I_POWER_OFF, I_SLOT_STATUS, I_XFR_BLOCK,
	I_SECURE, I_GET_PARAMS, I_SET_PARAMS, I_RESET_PARAMS, I_ESCAPE,
	I_ABORT, I_SLOT_EVENTS, I_MAGIC, I_RANDOM, I_NUM
};

#define F_WRITE		0x01	/* EBADF on a file not opened for writing */
#define F_SENDS		0x02	/* a command to the reader */
#define F_CARD		0x04	/* ECONNRESET after a reset behind the file */
#define F_STATUS	0x08	/* the answer's status and error written back */

static const struct ioc_doc {
	const char *name;
	unsigned long nr;
	size_t size;
	unsigned int flags;
	uint32_t errs;		/* the documented set, 0 included */
} iocs[I_NUM] = {
	[I_GET_INFO] = { "GET_INFO", CCID_IOC_GET_INFO,
		sizeof(struct ccid_reader_info), 0,
		B(OK) | B(ENODEV) | B(EFAULT) },
	[I_POWER_ON] = { "POWER_ON", CCID_IOC_POWER_ON,
		sizeof(struct ccid_power_on), F_WRITE | F_SENDS | F_STATUS,
		BASE | B(EBADF) | SENT | ANSWER },
	[I_POWER_OFF] = { "POWER_OFF", CCID_IOC_POWER_OFF,
		sizeof(struct ccid_slot_status), F_WRITE | F_SENDS | F_STATUS,
		BASE | B(EBADF) | SENT | ANSWER },
	[I_SLOT_STATUS] = { "SLOT_STATUS", CCID_IOC_SLOT_STATUS,
		sizeof(struct ccid_slot_status), F_SENDS | F_STATUS,
		BASE | SENT | ANSWER },
	[I_XFR_BLOCK] = { "XFR_BLOCK", CCID_IOC_XFR_BLOCK,
		sizeof(struct ccid_xfer),
		F_WRITE | F_SENDS | F_CARD | F_STATUS,
		BASE | B(EBADF) | B(ECONNRESET) | B(EMSGSIZE) | B(EOVERFLOW) |
		SENT | ANSWER },
	[I_SECURE] = { "SECURE", CCID_IOC_SECURE, sizeof(struct ccid_xfer),
		F_WRITE | F_SENDS | F_CARD | F_STATUS,
		BASE | B(EBADF) | B(ECONNRESET) | B(EMSGSIZE) | B(EOVERFLOW) |
		B(EOPNOTSUPP) | SENT | ANSWER },
	[I_GET_PARAMS] = { "GET_PARAMS", CCID_IOC_GET_PARAMS,
		sizeof(struct ccid_params), F_SENDS | F_CARD | F_STATUS,
		BASE | B(ECONNRESET) | SENT | ANSWER },
	[I_SET_PARAMS] = { "SET_PARAMS", CCID_IOC_SET_PARAMS,
		sizeof(struct ccid_params),
		F_WRITE | F_SENDS | F_CARD | F_STATUS,
		BASE | B(EBADF) | B(ECONNRESET) | SENT | ANSWER },
	[I_RESET_PARAMS] = { "RESET_PARAMS", CCID_IOC_RESET_PARAMS,
		sizeof(struct ccid_params),
		F_WRITE | F_SENDS | F_CARD | F_STATUS,
		BASE | B(EBADF) | B(ECONNRESET) | SENT | ANSWER },
	[I_ESCAPE] = { "ESCAPE", CCID_IOC_ESCAPE, sizeof(struct ccid_xfer),
		F_WRITE | F_SENDS | F_STATUS,
		BASE | B(EBADF) | B(EPERM) | B(EMSGSIZE) | B(EOVERFLOW) |
		SENT | ANSWER },
	[I_ABORT] = { "ABORT", CCID_IOC_ABORT, sizeof(struct ccid_abort),
		F_WRITE, BASE | B(EBADF) },
	[I_SLOT_EVENTS] = { "SLOT_EVENTS", CCID_IOC_SLOT_EVENTS,
		sizeof(struct ccid_slot_events), 0, BASE },
	/* unknown numbers: "ENOTTY: unknown ioctl command" */
	[I_MAGIC] = { "magic", 0, 0, 0, B(ENOTTY) | B(ENODEV) },
	[I_RANDOM] = { "random", 0, 0, 0, B(ENOTTY) | B(ENODEV) },
};

/* The other operations, counted with the ioctls in the histogram */
enum { O_OPEN = I_NUM, O_CLOSE, O_POLL, O_RW, O_DUP, O_FORK, O_NUM };

static const char *const op_names[O_NUM] = {
	[O_OPEN] = "open", [O_CLOSE] = "close", [O_POLL] = "poll",
	[O_RW] = "read/write", [O_DUP] = "dup", [O_FORK] = "fork",
};

static const char *op_name(int op)
{
	return op < I_NUM ? iocs[op].name : op_names[op];
}

static void errset_str(char *out, size_t size, uint32_t set)
{
	size_t k = 0;
	int i;

	out[0] = '\0';
	for (i = 0; i < XE_OTHER && k + 20 < size; i++)
		if (set & (1u << i))
			k += snprintf(out + k, size - k, "%s%s", k ? " " : "",
				      i ? errname(xerrno[i]) : "0");
}

/* ------------------------------------------------------------------ */
/* Shared memory: the reader as published, the workers, the verdicts */

struct devinfo {
	uint32_t seq;			/* odd while the conductor writes */
	unsigned int gen;		/* one per reader plugged, from 1 */
	bool plugged;			/* node usable; false once unplugging */
	unsigned int unplug_gen;	/* unplugs of gens up to this began */
	unsigned int gone_gen;		/* and gens up to this are gone */
	char path[64];
	unsigned int num_slots, buf_len;
	uint8_t pin_support, level;
};

struct worker {
	pid_t pid;
	unsigned int incarnation;
	bool killed;			/* SIGKILL from the conductor */
	bool finished;
	uint64_t quota, done, step;
	/* the operation in flight; deadline 0: none */
	long start_ms, deadline_ms;
	char what[WHAT_LEN];
};

struct shared {
	struct devinfo dev;
	uint64_t total_done;
	unsigned int failures;
	char first_failure[1024];
	unsigned long hist[O_NUM][XE_NUM];
	unsigned long echoes, written_back;
	struct worker w[MAX_PROCS];
};

static struct shared *sh;

static struct {
	uint64_t seed, calls;
	int procs;
	unsigned int chaos, unplugs, kills, resets, signal_every;
	long slack_ms;
} opt = {
	.calls = 20000, .procs = 4, .chaos = 20, .unplugs = 4, .kills = 2,
	.resets = 3, .signal_every = 25, .slack_ms = 180000,
};

/* A consistent copy of the published reader */
static void dev_read(struct devinfo *d)
{
	uint32_t s;

	for (;;) {
		s = __atomic_load_n(&sh->dev.seq, __ATOMIC_ACQUIRE);
		if (s & 1) {
			sleep_ms(1);
			continue;
		}
		memcpy(d, &sh->dev, sizeof(*d));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&sh->dev.seq, __ATOMIC_RELAXED) == s)
			break;
	}
	d->seq = s;
}

/* The conductor's update: @d becomes the published reader */
static void dev_write(const struct devinfo *d)
{
	uint32_t s = sh->dev.seq;

	__atomic_store_n(&sh->dev.seq, s + 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	memcpy((char *)&sh->dev + sizeof(s), (const char *)d + sizeof(s),
	       sizeof(*d) - sizeof(s));
	__atomic_store_n(&sh->dev.seq, s + 2, __ATOMIC_RELEASE);
}

/* One line, written at once: workers and the conductor share stdout */
static void __printf(1, 2) say(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDOUT_FILENO, line, n) < 0)
		return;
}

/* ------------------------------------------------------------------ */
/* A worker: its memory, its files, its calls */

/*
 * Every region is followed by a PROT_NONE page, so that what a pointer
 * may reach is known exactly: loose, tight, ro (read-only), tx, rx.
 */
struct arena {
	size_t page;
	uint8_t *loose, *tight, *ro, *tx, *rx, *none;
};

struct fdent {
	int fd;				/* -1: free */
	int flags;			/* of open() */
	unsigned int gen;		/* the reader it was opened on */
	bool dead;			/* ENODEV seen: ENODEV from now on */
	uint32_t generation[CCID_MAX_SLOT_COUNT], changes[CCID_MAX_SLOT_COUNT];
	uint32_t hw_errors;
};

struct wctx {
	int w;
	uint64_t seed;			/* the worker's; with the step, a call's */
	uint64_t step;
	struct worker *me;
	struct arena ar;
	struct fdent fds[MAX_FDS];
	bool admin;			/* CAP_SYS_ADMIN kept */
	pid_t linger;			/* a child still using our files */
	struct rng r;			/* this step's generator */
	struct devinfo dev;		/* as published when the step began */
};

/* A struct where a pointer may go, or the pointer itself */
enum place {
	PL_TIGHT, PL_LOOSE, PL_ODD, PL_RO, PL_NULL, PL_NONE, PL_CROSS,
	PL_KERNEL, PL_NONCANON, PL_NUM
};

static const char *const place_names[PL_NUM] = {
	"tight", "loose", "odd", "ro", "null", "none", "cross", "kernel",
	"noncanon",
};

/* How often each place is drawn for a structure and for a buffer */
static const unsigned int struct_places[PL_NUM] = {
	600, 200, 100, 25, 15, 15, 20, 15, 10,
};

static const unsigned int buf_places[PL_NUM] = {
	600, 200, 100, 25, 15, 15, 20, 15, 10,
};

struct call {
	int ioc;
	unsigned long nr;
	int fdi;
	union {
		struct ccid_reader_info info;
		struct ccid_power_on p;
		struct ccid_slot_status st;
		struct ccid_xfer x;
		struct ccid_params pr;
		struct ccid_abort a;
		struct ccid_slot_events ev;
		uint8_t raw[512];
	} in;				/* the structure as built */
	size_t size;
	uint8_t *arg;
	bool readable, writable;	/* the structure's place */
	uint32_t must;			/* argument faults: one of these */
	uint32_t may;			/* besides the rest: EFAULT, ... */
	bool lenient;			/* a Secure block of unknown validity */
	unsigned int timeout_ms;	/* as the driver takes it */
	/* tx_buf and rx_buf: what the answer must hold */
	uint8_t *rx;			/* rx_buf, if in our memory */
	size_t rx_avail;		/* writable bytes there */
	const uint8_t *want;		/* NULL: not known */
	size_t want_len;
	bool want_t0;			/* "61 La" will do for data + 90 00 */
	char what[WHAT_LEN];
};

static volatile sig_atomic_t sig_count;

static void on_signal(int sig)
{
	(void)sig;
	sig_count++;
}

static size_t avail_in(const uint8_t *base, size_t len, uintptr_t p)
{
	uintptr_t b = (uintptr_t)base;

	return p >= b && p < b + len ? b + len - p : 0;
}

/* Bytes accessible from @p up to the next PROT_NONE page */
static size_t avail(const struct arena *a, uintptr_t p, bool write)
{
	size_t n;

	n = avail_in(a->loose, a->page, p) + avail_in(a->tight, a->page, p) +
	    avail_in(a->tx, BIG, p) + avail_in(a->rx, BIG, p);
	if (!n && !write)
		n = avail_in(a->ro, a->page, p);
	return n;
}

/* Copy @len bytes to @dst, which may be the read-only page */
static void put_bytes(const struct arena *a, uint8_t *dst, const void *src,
		      size_t len)
{
	size_t room = avail(a, (uintptr_t)dst, false);
	bool ro = avail_in(a->ro, a->page, (uintptr_t)dst);

	if (len > room)
		len = room;
	if (!len)
		return;
	if (ro)
		mprotect(a->ro, a->page, PROT_READ | PROT_WRITE);
	memcpy(dst, src, len);
	if (ro)
		mprotect(a->ro, a->page, PROT_READ);
}

static int arena_map(struct arena *a)
{
	size_t pg = sysconf(_SC_PAGESIZE), big = BIG / pg, total;
	uint8_t *m;

	/* loose g tight g ro g tx.. g rx.. g */
	total = 2 * 3 + 2 * (big + 1);
	m = mmap(NULL, total * pg, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	a->page = pg;
	a->loose = m;
	a->tight = m + 2 * pg;
	a->ro = m + 4 * pg;
	a->tx = m + 6 * pg;
	a->rx = a->tx + (big + 1) * pg;
	a->none = m + pg;
	mprotect(m + pg, pg, PROT_NONE);
	mprotect(m + 3 * pg, pg, PROT_NONE);
	mprotect(m + 5 * pg, pg, PROT_NONE);
	mprotect(a->tx + big * pg, pg, PROT_NONE);
	mprotect(a->rx + big * pg, pg, PROT_NONE);
	memset(a->ro, 0x5a, pg);
	mprotect(a->ro, pg, PROT_READ);
	return 0;
}

/*
 * Where @len bytes go for place @pl: @region (of @size bytes, a guard
 * page after it) for the places in our memory.  The read-only page
 * holds structures in its first RO_STRUCT bytes, buffers after them.
 */
static uint8_t *place_at(struct wctx *x, int pl, uint8_t *region,
			 size_t size, size_t len)
{
	const struct arena *a = &x->ar;
	size_t fit = len < size ? size - len : 0, ro = RO_STRUCT;
	bool buf = region == a->tx || region == a->rx;

	switch (pl) {
	case PL_TIGHT:
		return region + fit;
	case PL_LOOSE:
		return region + below(&x->r, fit / 8 + 1) * 8;
	case PL_ODD:
		return region + (fit ? 1 + below(&x->r, fit) : 0);
	case PL_RO:
		if (!buf)
			return a->ro + below(&x->r, ro - len);
		return a->ro + ro + (len < a->page - ro ?
				     below(&x->r, a->page - ro - len) : 0);
	case PL_NULL:
		return NULL;
	case PL_NONE:
		return a->none + below(&x->r, a->page);
	case PL_CROSS:
		if (len < 2)
			return a->none;
		return region + size - 1 - below(&x->r, len < size ?
						 len - 1 : size - 1);
	case PL_KERNEL:
		return (uint8_t *)(uintptr_t)(chance(&x->r, 500) ?
			0xffff888000000000ull : 0xffffffff81000000ull) +
			below(&x->r, 4096);
	default:
		return (uint8_t *)(uintptr_t)(chance(&x->r, 500) ?
			0x0000800000000000ull : 0x8000000000000000ull) +
			below(&x->r, 4096);
	}
}

/* Put the built structure in its place; sets arg, readable, writable */
static void place_struct(struct wctx *x, struct call *c)
{
	int pl = pick(&x->r, struct_places, PL_NUM);
	uint8_t *region = pl == PL_TIGHT || pl == PL_CROSS ? x->ar.tight :
			  x->ar.loose;

	c->arg = place_at(x, pl, region, x->ar.page, c->size);
	c->readable = avail(&x->ar, (uintptr_t)c->arg, false) >= c->size;
	c->writable = avail(&x->ar, (uintptr_t)c->arg, true) >= c->size;
	put_bytes(&x->ar, c->arg, c->in.raw, c->size);
	if (!c->readable)
		c->must |= B(EFAULT);
	snprintf(c->what + strlen(c->what), WHAT_LEN - strlen(c->what),
		 " arg=%s", place_names[pl]);
}

/* ------------------------------------------------------------------ */
/* Building the calls: random but plausible structures */

static void describe(struct call *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void describe(struct call *c, const char *fmt, ...)
{
	size_t k = strlen(c->what);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->what + k, WHAT_LEN - k, fmt, ap);
	va_end(ap);
}

/* A slot: mostly a valid one, now and then one past the reader's */
static uint8_t pick_slot(struct wctx *x, struct call *c)
{
	unsigned int n = x->dev.num_slots ? x->dev.num_slots : 1;
	uint8_t slot;

	if (chance(&x->r, 920))
		slot = chance(&x->r, 600) ? 0 : below(&x->r, n);
	else
		slot = chance(&x->r, 500) ? n : n + below(&x->r, 256 - n);
	if (slot >= n)
		c->must |= B(EINVAL);
	describe(c, " slot=%u", slot);
	return slot;
}

/* Reserved bytes: zero, or now and then one of them not */
static void pick_reserved(struct wctx *x, struct call *c, void *p,
			  size_t len)
{
	uint8_t *b = p;

	memset(b, 0, len);
	if (!chance(&x->r, 30))
		return;
	b[below(&x->r, len)] = 1 + below(&x->r, 255);
	c->must |= B(EINVAL);
	describe(c, " reserved!");
}

/* timeout_ms, and the driver's timeout for it (ccid_timeout()) */
static uint32_t pick_timeout(struct wctx *x, struct call *c,
			     unsigned int def_ms)
{
	static const unsigned int w[] = { 150, 250, 400, 150, 50 };
	uint32_t t;

	switch (pick(&x->r, w, ARRAY_SIZE(w))) {
	case 0:
		t = 0;
		break;
	case 1:
		t = 1 + below(&x->r, CCID_MIN_TIMEOUT_MS);
		break;
	case 2:
		t = CCID_MIN_TIMEOUT_MS + below(&x->r, 1000);
		break;
	case 3:
		t = 1500 + below(&x->r, CCID_MAX_TIMEOUT_MS);
		break;
	default:
		t = chance(&x->r, 500) ? 0xffffffffu : CCID_MAX_TIMEOUT_MS + 1;
		break;
	}
	c->timeout_ms = !t ? def_ms : t < CCID_MIN_TIMEOUT_MS ?
			CCID_MIN_TIMEOUT_MS : t > CCID_MAX_TIMEOUT_MS ?
			CCID_MAX_TIMEOUT_MS : t;
	describe(c, " timeout=%u", t);
	return t;
}

static void build_info(struct wctx *x, struct call *c)
{
	rnd_bytes(&x->r, c->in.raw, c->size);
}

static void build_power_on(struct wctx *x, struct call *c)
{
	struct ccid_power_on *p = &c->in.p;

	rnd_bytes(&x->r, c->in.raw, c->size);
	p->slot = pick_slot(x, c);
	p->voltage = chance(&x->r, 900) ? below(&x->r, 4) :
		     4 + below(&x->r, 252);
	if (p->voltage > CCID_VOLTAGE_1_8V)
		c->must |= B(EINVAL);
	describe(c, " voltage=%u", p->voltage);
	p->timeout_ms = pick_timeout(x, c, DEF_XFR_MS);
	p->status = 0xff;
	pick_reserved(x, c, &p->reserved0, sizeof(p->reserved0));
	pick_reserved(x, c, p->reserved, sizeof(p->reserved));
}

static void build_slot_status(struct wctx *x, struct call *c)
{
	struct ccid_slot_status *st = &c->in.st;

	rnd_bytes(&x->r, c->in.raw, c->size);
	st->slot = pick_slot(x, c);
	st->timeout_ms = pick_timeout(x, c, DEF_CTRL_MS);
	st->status = 0xff;
	pick_reserved(x, c, st->reserved, sizeof(st->reserved));
}

static void build_params(struct wctx *x, struct call *c)
{
	struct ccid_params *pr = &c->in.pr;

	rnd_bytes(&x->r, c->in.raw, c->size);
	pr->slot = pick_slot(x, c);
	pr->timeout_ms = pick_timeout(x, c, DEF_CTRL_MS);
	pr->status = 0xff;
	if (c->ioc == I_SET_PARAMS) {
		if (chance(&x->r, 850)) {
			pr->protocol = chance(&x->r, 700);
			pr->len = pr->protocol ? 7 : 5;
		} else {
			pr->protocol = below(&x->r, 4);
			pr->len = chance(&x->r, 500) ? below(&x->r, 40) :
				  rnd(&x->r);
		}
		if (pr->protocol > 1 || pr->len != (pr->protocol ? 7u : 5u))
			c->must |= B(EINVAL);
		describe(c, " protocol=%u len=%u", pr->protocol, pr->len);
	}
	pick_reserved(x, c, &pr->reserved0, sizeof(pr->reserved0));
	pick_reserved(x, c, pr->reserved, sizeof(pr->reserved));
}

static void build_abort(struct wctx *x, struct call *c)
{
	struct ccid_abort *a = &c->in.a;

	a->slot = pick_slot(x, c);
	pick_reserved(x, c, a->reserved, sizeof(a->reserved));
}

static void build_slot_events(struct wctx *x, struct call *c)
{
	struct ccid_slot_events *ev = &c->in.ev;

	rnd_bytes(&x->r, c->in.raw, c->size);
	ev->flags = chance(&x->r, 900) ? below(&x->r, 2) :
		    1u << below(&x->r, 32) | below(&x->r, 2);
	if (ev->flags & ~CCID_EVENTS_ACK_RESET)
		c->must |= B(EINVAL);
	describe(c, " flags=%#x", ev->flags);
	pick_reserved(x, c, &ev->reserved0, sizeof(ev->reserved0));
	pick_reserved(x, c, ev->reserved, sizeof(ev->reserved));
}

/* A worker is a process of its own: its staging buffers can be static */
static uint8_t tx_stage[BIG];
static uint8_t want_buf[300];

static uint32_t max_data(const struct wctx *x)
{
	return x->dev.buf_len > HDR_LEN ? x->dev.buf_len - HDR_LEN : 0;
}

/* An echo APDU, 80 EE 00 00 Lc DATA: the answer is DATA 90 00 */
static uint32_t apdu_echo(struct wctx *x, struct call *c)
{
	uint32_t d = 1 + below(&x->r, chance(&x->r, 500) ? 16 : 255);

	memcpy(tx_stage, "\x80\xee\x00\x00", 4);
	tx_stage[4] = d;
	rnd_bytes(&x->r, tx_stage + 5, d);
	memcpy(want_buf, tx_stage + 5, d);
	want_buf[d] = 0x90;
	want_buf[d + 1] = 0x00;
	c->want = want_buf;
	c->want_len = d + 2;
	c->want_t0 = true;
	describe(c, " echo=%u", d);
	return d + 5;
}

/* 80 EE 00 00 Le: Le bytes 00 01 02 ..., 90 00 */
static uint32_t apdu_echo_le(struct wctx *x, struct call *c)
{
	uint32_t le = below(&x->r, 256), n = le ? le : 256, i;

	memcpy(tx_stage, "\x80\xee\x00\x00", 4);
	tx_stage[4] = le;
	for (i = 0; i < n; i++)
		want_buf[i] = i;
	want_buf[n] = 0x90;
	want_buf[n + 1] = 0x00;
	c->want = want_buf;
	c->want_len = n + 2;
	c->want_t0 = true;
	describe(c, " echo-le=%u", le);
	return 5;
}

/* 80 EF HI LO: 90 00 after HI * 256 + LO ms, time for an Abort */
static uint32_t apdu_slow(struct wctx *x, struct call *c)
{
	uint32_t ms = below(&x->r, 512);

	memcpy(tx_stage, "\x80\xef", 2);
	tx_stage[2] = ms >> 8;
	tx_stage[3] = ms;
	memcpy(want_buf, "\x90\x00", 2);
	c->want = want_buf;
	c->want_len = 2;
	describe(c, " slow=%u", ms);
	return 4;
}

/* Random bytes; lengths around the reader's limit and far beyond it */
static uint32_t bytes_around_limits(struct wctx *x, struct call *c)
{
	static const uint32_t huge[] = {
		65535, 65536, 65544, 65545, 1u << 20, 0x7fffffff, 0xffffffff,
	};
	uint32_t max = max_data(x), len;

	switch (below(&x->r, 4)) {
	case 0:
		len = below(&x->r, 300);
		break;
	case 1:
		len = max - 1 + below(&x->r, 3);
		break;
	case 2:
		len = chance(&x->r, 500) ? x->dev.buf_len : 0;
		break;
	default:
		len = huge[below(&x->r, ARRAY_SIZE(huge))];
		break;
	}
	rnd_bytes(&x->r, tx_stage, len < BIG ? len : BIG);
	describe(c, " bytes");
	return len;
}

static uint32_t xfr_data(struct wctx *x, struct call *c)
{
	static const unsigned int w[] = { 500, 100, 100, 200 };

	switch (pick(&x->r, w, ARRAY_SIZE(w))) {
	case 0:
		return apdu_echo(x, c);
	case 1:
		return apdu_echo_le(x, c);
	case 2:
		return apdu_slow(x, c);
	default:
		return bytes_around_limits(x, c);
	}
}

/* Escape data: the emulator echoes it */
static uint32_t escape_data(struct wctx *x, struct call *c)
{
	uint32_t len = bytes_around_limits(x, c);

	if (len <= sizeof(want_buf)) {
		memcpy(want_buf, tx_stage, len);
		c->want = want_buf;
		c->want_len = len;
	}
	return len;
}

/* The Secure block's faults, and how the driver must refuse each */
enum {
	SEC_VERIFY, SEC_MODIFY, SEC_BAD_OP, SEC_EMPTY, SEC_TRUNCATED,
	SEC_FORMAT3, SEC_NO_CONDITION, SEC_SHORT_APDU, SEC_MUTATED, SEC_NUM
};

static const unsigned int sec_weights[SEC_NUM] = {
	300, 200, 60, 60, 60, 60, 60, 60, 140,
};

static const char *const sec_names[SEC_NUM] = {
	"verify", "modify", "bad-op", "empty", "truncated", "format3",
	"no-condition", "short-apdu", "mutated",
};

/* A PIN block as ccidctl builds it, in tx_stage; its length */
static uint32_t pin_block(struct wctx *x, bool modify)
{
	static const uint8_t verify_apdu[] = {
		0x00, 0x20, 0x00, 0x82, 0x08,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	static const uint8_t modify_apdu[] = { 0x00, 0x24, 0x00, 0x82 };
	struct ccid_pin_opts o;
	ssize_t len;

	ccid_pin_opts_init(&o, modify);
	o.timeout = below(&x->r, 4);
	o.apdu = modify ? modify_apdu : verify_apdu;
	o.apdu_len = modify ? sizeof(modify_apdu) : 4;
	if (!modify && chance(&x->r, 500)) {
		o.apdu_len = sizeof(verify_apdu);
		o.block_size = 8;
	}
	len = ccid_build_pin_block(&o, tx_stage, sizeof(tx_stage));
	return len < 0 ? 0 : len;
}

/* A Secure block, good or with one fault the driver must see */
static uint32_t secure_block(struct wctx *x, struct call *c)
{
	int kind = pick(&x->r, sec_weights, SEC_NUM);
	bool modify = kind == SEC_MODIFY ||
		      (kind > SEC_MODIFY && chance(&x->r, 400));
	uint32_t len = pin_block(x, modify), fault = B(EINVAL);
	uint8_t pin = x->dev.pin_support;

	switch (kind) {
	case SEC_BAD_OP:
		tx_stage[0] = 2 + below(&x->r, 254);
		fault = B(EOPNOTSUPP);
		break;
	case SEC_EMPTY:
		len = 0;
		break;
	case SEC_TRUNCATED:
		len = 1 + below(&x->r, modify ? 18 : 14);
		break;
	case SEC_FORMAT3:
		tx_stage[2] |= 0x03;
		break;
	case SEC_NO_CONDITION:
		tx_stage[modify ? 10 : 7] = 0;
		break;
	case SEC_SHORT_APDU:
		len = (modify ? 20 : 15) + 3;
		break;
	case SEC_MUTATED:
		tx_stage[below(&x->r, len)] ^= 1 + below(&x->r, 255);
		c->lenient = true;
		break;
	default:
		fault = 0;
		break;
	}
	/* The operation's support is checked first */
	if (len && tx_stage[0] <= 1 &&
	    !(pin & (tx_stage[0] ? CCID_PIN_MODIFY : CCID_PIN_VERIFY)))
		fault = B(EOPNOTSUPP);
	if (!c->lenient || fault == B(EOPNOTSUPP))
		c->must |= fault;
	describe(c, " pin=%s", sec_names[kind]);
	return len;
}

/* tx_buf for @len bytes of tx_stage; EFAULT unless all can be read */
static uint64_t place_tx(struct wctx *x, struct call *c, uint32_t len)
{
	int pl = pick(&x->r, buf_places, PL_NUM);
	size_t n = len < BIG ? len : BIG;
	uint8_t *p = place_at(x, pl, x->ar.tx, BIG, n);

	put_bytes(&x->ar, p, tx_stage, n);
	if (len && avail(&x->ar, (uintptr_t)p, false) < len)
		c->must |= B(EFAULT);
	describe(c, " tx_len=%u(%s)", len, place_names[pl]);
	return (uintptr_t)p;
}

/* rx_size: enough, just enough, one byte short, none, far too much */
static uint32_t pick_rx_size(struct wctx *x, const struct call *c)
{
	static const unsigned int w[] = { 350, 150, 60, 40, 40, 100, 80, 140 };
	uint32_t max = max_data(x);

	switch (pick(&x->r, w, ARRAY_SIZE(w))) {
	case 0:
		return max;
	case 1:
		return c->want ? c->want_len : 300;
	case 2:
		return c->want && c->want_len ? c->want_len - 1 : 1;
	case 3:
		return 0;
	case 4:
		return below(&x->r, 16);
	case 5:
		return chance(&x->r, 500) ? 65544 : 0xffffffff;
	case 6:
		return max + 1;
	default:
		return below(&x->r, max + 1);
	}
}

/*
 * rx_buf for @size bytes, filled with CANARY where we may write; EFAULT
 * may come when the answer does not fit in what can be written there.
 */
static uint64_t place_rx(struct wctx *x, struct call *c, uint32_t size)
{
	int pl = pick(&x->r, buf_places, PL_NUM);
	size_t n = size < BIG ? size : BIG, want = size, fill;
	uint8_t *p = place_at(x, pl, x->ar.rx, BIG, n);

	if (want > max_data(x))
		want = max_data(x);
	c->rx = p;
	c->rx_avail = avail(&x->ar, (uintptr_t)p, true);
	fill = c->rx_avail < CANARY_SPAN ? c->rx_avail : CANARY_SPAN;
	if (fill)
		memset(p, CANARY, fill);
	if (c->rx_avail < want)
		c->may |= B(EFAULT);
	describe(c, " rx_size=%u(%s)", size, place_names[pl]);
	return (uintptr_t)p;
}

/* The driver's timeout of a Secure (ccid_secure_timeout()) */
static unsigned int secure_timeout(const struct ccid_xfer *xf, uint32_t user)
{
	unsigned int ms = DEF_SECURE_MS, t;

	if (xf->tx_len > 1 && tx_stage[1] * 1000u + SECURE_SLACK_MS > ms)
		ms = tx_stage[1] * 1000u + SECURE_SLACK_MS;
	t = !user ? 0 : user < CCID_MIN_TIMEOUT_MS ? CCID_MIN_TIMEOUT_MS :
	    user > CCID_MAX_TIMEOUT_MS ? CCID_MAX_TIMEOUT_MS : user;
	return t > ms ? t : ms;
}

/* bBWI and wLevelParameter: mostly 0; Escape must have them 0 */
static void pick_bwi_level(struct wctx *x, struct call *c,
			   struct ccid_xfer *xf)
{
	static const uint16_t chaining[] = { 1, 2, 3, 0x10 };

	xf->bwi = 0;
	xf->level = 0;
	if (!chance(&x->r, 100))
		return;
	xf->bwi = chance(&x->r, 500) ? below(&x->r, 256) : 0;
	xf->level = chance(&x->r, 500) ? rnd(&x->r) :
		    chaining[below(&x->r, ARRAY_SIZE(chaining))];
	if (!xf->bwi && !xf->level)
		xf->level = 0x10;
	if (c->ioc == I_ESCAPE)
		c->must |= B(EINVAL);
	else
		c->want = NULL;
	describe(c, " bwi=%u level=%#x", xf->bwi, xf->level);
}

static void build_xfer(struct wctx *x, struct call *c)
{
	struct ccid_xfer *xf = &c->in.x;
	uint32_t len, t;

	rnd_bytes(&x->r, c->in.raw, c->size);
	xf->slot = pick_slot(x, c);
	c->want = NULL;
	if (c->ioc == I_SECURE)
		len = secure_block(x, c);
	else if (c->ioc == I_ESCAPE)
		len = escape_data(x, c);
	else
		len = xfr_data(x, c);
	if (x->dev.level < CCID_LEVEL_SHORT_APDU && c->ioc == I_XFR_BLOCK)
		c->want = NULL;
	if (len > max_data(x))
		c->must |= B(EMSGSIZE);
	if (c->ioc == I_ESCAPE && !x->admin)
		c->must |= B(EPERM);
	pick_bwi_level(x, c, xf);
	xf->tx_len = len;
	xf->tx_buf = place_tx(x, c, len);
	xf->rx_size = pick_rx_size(x, c);
	xf->rx_buf = place_rx(x, c, xf->rx_size);
	t = pick_timeout(x, c, DEF_XFR_MS);
	xf->timeout_ms = t;
	if (c->ioc == I_SECURE)
		c->timeout_ms = secure_timeout(xf, t);
	xf->status = 0xff;
	xf->error = 0xff;
	pick_reserved(x, c, &xf->reserved0, sizeof(xf->reserved0));
	pick_reserved(x, c, xf->reserved, sizeof(xf->reserved));
}

/* Another number of the CCID magic: any direction and size */
static void build_magic(struct wctx *x, struct call *c)
{
	static const unsigned int sizes[] = {
		0, 4, 8, 16, 24, 40, 60, 64, 72, 96, 104, 152, 160,
	};
	unsigned int nr, size, dir, i;

	nr = chance(&x->r, 700) ? below(&x->r, 0x10) : below(&x->r, 256);
	dir = below(&x->r, 4);
	size = chance(&x->r, 700) ? sizes[below(&x->r, ARRAY_SIZE(sizes))] +
	       below(&x->r, 3) - 1 : below(&x->r, 1 << 14);
	c->nr = _IOC(dir, CCID_IOC_MAGIC, nr, size & 0x3fff);
	for (i = 0; i < I_MAGIC; i++)
		if (c->nr == iocs[i].nr)
			c->nr ^= _IOC(0, 0, 0, 1);
	c->must = B(ENOTTY);
	c->size = sizeof(c->in.raw);
	rnd_bytes(&x->r, c->in.raw, c->size);
	c->arg = chance(&x->r, 900) ? x->ar.loose : NULL;
	memcpy(x->ar.loose, c->in.raw, c->size);
	c->readable = c->arg;
	c->writable = c->arg;
	describe(c, " nr=%#lx", c->nr);
}

/*
 * A random number.  The VFS takes some numbers before the driver sees
 * them (FIONBIO, FIOCLEX, FIFREEZE, FIGETBSZ, FICLONE, FS_IOC_*, ...): their
 * types are left out, and so is the CCID magic.
 */
static void build_random(struct wctx *x, struct call *c)
{
	static const uint8_t vfs_types[] = {
		0x00, 0x15, 'T', 'X', 'f', 0x94, CCID_IOC_MAGIC,
	};
	unsigned int i, k;

	c->nr = (uint32_t)rnd(&x->r);
	for (k = 0; k < 16; k++) {
		for (i = 0; i < sizeof(vfs_types); i++)
			if (_IOC_TYPE(c->nr) == vfs_types[i])
				break;
		if (i == sizeof(vfs_types))
			break;
		c->nr = (uint32_t)rnd(&x->r);
	}
	if (k == 16)
		c->nr = _IO(0xab, 0xcd);
	c->must = B(ENOTTY);
	c->size = sizeof(c->in.raw);
	rnd_bytes(&x->r, c->in.raw, c->size);
	c->arg = chance(&x->r, 800) ? x->ar.loose : NULL;
	memcpy(x->ar.loose, c->in.raw, c->size);
	c->readable = c->arg;
	c->writable = c->arg;
	describe(c, " nr=%#lx", c->nr);
}

/* A call of kind @ioc on file @fdi: its structure, built and placed */
static void build_call(struct wctx *x, struct call *c, int ioc, int fdi)
{
	const struct fdent *f = &x->fds[fdi];

	memset(c, 0, offsetof(struct call, what));
	c->what[0] = '\0';
	c->ioc = ioc;
	c->fdi = fdi;
	c->nr = iocs[ioc].nr;
	c->size = iocs[ioc].size;
	describe(c, "%s fd%d(%s%s,gen %u)", iocs[ioc].name, fdi,
		 (f->flags & O_ACCMODE) == O_RDONLY ? "ro" :
		 (f->flags & O_ACCMODE) == O_WRONLY ? "wo" : "rw",
		 f->flags & O_NONBLOCK ? ",nonblock" : "", f->gen);
	switch (ioc) {
	case I_MAGIC:
		build_magic(x, c);
		return;
	case I_RANDOM:
		build_random(x, c);
		return;
	case I_GET_INFO:
		build_info(x, c);
		break;
	case I_POWER_ON:
		build_power_on(x, c);
		break;
	case I_POWER_OFF:
	case I_SLOT_STATUS:
		build_slot_status(x, c);
		break;
	case I_XFR_BLOCK:
	case I_SECURE:
	case I_ESCAPE:
		build_xfer(x, c);
		break;
	case I_ABORT:
		build_abort(x, c);
		break;
	case I_SLOT_EVENTS:
		build_slot_events(x, c);
		break;
	default:
		build_params(x, c);
		break;
	}
	if ((iocs[ioc].flags & F_WRITE) && (f->flags & O_ACCMODE) == O_RDONLY)
		c->must |= B(EBADF);
	place_struct(x, c);
	/* Written back by copy_to_user(): a read-only place faults */
	if (c->readable && !c->writable && ioc != I_ABORT) {
		if (iocs[ioc].flags & F_STATUS)
			c->may |= B(EFAULT);
		else
			c->must |= B(EFAULT);
	}
}

/* ------------------------------------------------------------------ */
/* Running a call and judging its result */

struct outcome {
	int ret;			/* what the syscall returned */
	int err;			/* errno, 0 on success */
	bool signalled;			/* a handler ran during the call */
	bool gone;			/* the file's reader was gone before */
	bool unplugging;		/* its unplug had begun, after */
	long ms;
};

/* The call in flight, for the conductor's watchdog */
static void __printf(3, 4) flight_begin(struct wctx *x, long bound_ms,
					const char *fmt, ...)
{
	struct worker *me = x->me;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(me->what, sizeof(me->what), fmt, ap);
	va_end(ap);
	me->start_ms = now_ms();
	__atomic_store_n(&me->deadline_ms, me->start_ms + bound_ms,
			 __ATOMIC_RELEASE);
}

static void flight_end(struct wctx *x)
{
	__atomic_store_n(&x->me->deadline_ms, 0, __ATOMIC_RELEASE);
}

/* A call longer than RESCUE_MS is interrupted by SIGALRM until it ends */
static void rescue(bool on)
{
	struct itimerval it = { { 0, 0 }, { 0, 0 } };

	if (on) {
		it.it_value.tv_sec = RESCUE_MS / 1000;
		it.it_value.tv_usec = RESCUE_MS % 1000 * 1000;
		it.it_interval = it.it_value;
	}
	setitimer(ITIMER_REAL, &it, NULL);
}

/* How long a call may take: its own timeout (or the rescue), then slack */
static long call_bound(const struct call *c)
{
	long t = c->timeout_ms > RESCUE_MS ? RESCUE_MS : c->timeout_ms;

	return t + OUT_MS + opt.slack_ms;
}

static void __printf(3, 4) call_fail(struct wctx *x, const struct call *c,
				     const char *fmt, ...)
{
	unsigned int n = __atomic_add_fetch(&sh->failures, 1, __ATOMIC_SEQ_CST);
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n == 1)
		strf(sh->first_failure, sizeof(sh->first_failure),
		     "worker %d step %llu: %s: %s", x->w,
		     (unsigned long long)x->step, c ? c->what : "", msg);
	if (n > MAX_PRINTED)
		return;
	say("# FAIL %u (seed %llu, worker %d, step %llu): %s: %s", n,
	    (unsigned long long)opt.seed, x->w, (unsigned long long)x->step,
	    c ? c->what : "", msg);
}

static void count(int op, int err)
{
	__atomic_add_fetch(&sh->hist[op][xindex(err)], 1, __ATOMIC_RELAXED);
}

static uint8_t *status_at(const struct call *c)
{
	switch (c->ioc) {
	case I_POWER_ON:
		return c->arg + offsetof(struct ccid_power_on, status);
	case I_POWER_OFF:
	case I_SLOT_STATUS:
		return c->arg + offsetof(struct ccid_slot_status, status);
	case I_XFR_BLOCK:
	case I_SECURE:
	case I_ESCAPE:
		return c->arg + offsetof(struct ccid_xfer, status);
	default:
		return c->arg + offsetof(struct ccid_params, status);
	}
}

/* The reader answered: the structure came back with its status */
static bool written_back(const struct call *c)
{
	return (iocs[c->ioc].flags & F_STATUS) && c->writable &&
	       *status_at(c) != 0xff;
}

/* What a verdict adds about the answer (a worker is one process) */
static char detail[160];

static const char *mismatch(int want, int got)
{
	snprintf(detail, sizeof(detail), "the answer gives %s, not %s",
		 errname(want), errname(got));
	return detail;
}

/* The errno an answer gives (ccid.rst, "After the reader answered") */
static int answer_errno(int ioc, uint8_t status, uint8_t error)
{
	bool datablock = ioc == I_POWER_ON || ioc == I_XFR_BLOCK ||
			 ioc == I_SECURE;

	if (!(status & CCID_CMD_STATUS_MASK) && datablock &&
	    (status & CCID_ICC_STATUS_MASK) == CCID_ICC_ABSENT)
		return ENOMEDIUM;
	return -rsp_errno(status, error);
}

/* rx_buf after an answer of @rx_len bytes: the data, then CANARY */
static const char *check_rx(const struct call *c, uint32_t rx_len,
			    uint32_t rx_size, bool copied)
{
	size_t span = c->rx_avail < CANARY_SPAN ? c->rx_avail : CANARY_SPAN;
	size_t from = copied ? rx_len : 0, i;

	if (span > rx_size)
		span = rx_size;
	for (i = from; i < span; i++)
		if (c->rx[i] != CANARY)
			return copied ? "rx_buf written past rx_len" :
			       "rx_buf written although nothing was copied";
	return NULL;
}

/* The answer's data is the caller's own: the echo, or T=0's 61 La */
static bool is_want(const struct call *c, const uint8_t *rx, uint32_t len)
{
	if (len == c->want_len && !memcmp(rx, c->want, len))
		return true;
	return c->want_t0 && c->want_len > 2 && len == 2 && rx[0] == 0x61 &&
	       rx[1] == ((c->want_len - 2) & 0xff);
}

static const char *judge_xfer(const struct call *c, int err)
{
	const struct ccid_xfer *o = (const void *)c->arg;
	const struct ccid_xfer *in = &c->in.x;
	int base = answer_errno(c->ioc, o->status, o->error), want;
	bool fits = o->rx_len <= in->rx_size;

	const char *why;

	want = base ? base : fits ? 0 : EOVERFLOW;
	if (err != want) {
		mismatch(want, err);
		snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
			 " (rx_len %u, rx_size %u)", o->rx_len, in->rx_size);
		return detail;
	}
	why = c->rx_avail ? check_rx(c, o->rx_len, in->rx_size, fits) : NULL;
	if (why)
		return why;
	if (err || !c->want || c->rx_avail < o->rx_len)
		return NULL;
	if (!is_want(c, c->rx, o->rx_len))
		return "the answer is not this call's (echo data differs)";
	__atomic_add_fetch(&sh->echoes, 1, __ATOMIC_RELAXED);
	return NULL;
}

static const char *judge_power_on(const struct call *c, int err)
{
	const struct ccid_power_on *o = (const void *)c->arg;
	int base = answer_errno(c->ioc, o->status, o->error);
	size_t i;

	if (err != base && !(!base && err == EPROTO))
		return mismatch(base, err);
	if (!err)
		return o->atr_len == sizeof(emu_atr) &&
		       !memcmp(o->atr, emu_atr, sizeof(emu_atr)) ? NULL :
		       "not the card's ATR";
	for (i = 0; i < sizeof(o->atr); i++)
		if (o->atr[i])
			return "a failed power on with ATR bytes left";
	return o->atr_len ? "a failed power on with an atr_len" : NULL;
}

static const char *judge_params(const struct call *c, int err)
{
	const struct ccid_params *o = (const void *)c->arg;
	int base = answer_errno(c->ioc, o->status, o->error);

	if (err != base && !(!base && err == EPROTO))
		return mismatch(base, err);
	if (err == EPROTO && o->len)
		return "EPROTO with a len";
	if (!err && !((o->protocol == 0 && o->len == 5) ||
		      (o->protocol == 1 && o->len == 7)))
		return "parameters of neither T=0 (5 bytes) nor T=1 (7)";
	return NULL;
}

/* A structure written back: the errno must be the answer's */
static const char *judge_answer(const struct call *c, int err)
{
	const uint8_t *st = status_at(c);

	__atomic_add_fetch(&sh->written_back, 1, __ATOMIC_RELAXED);
	if (st[0] & CCID_CMD_STATUS_TIME_EXT)
		return "a written-back status with bit 7 set";
	switch (c->ioc) {
	case I_XFR_BLOCK:
	case I_SECURE:
	case I_ESCAPE:
		return judge_xfer(c, err);
	case I_POWER_ON:
		return judge_power_on(c, err);
	case I_POWER_OFF:
	case I_SLOT_STATUS:
		return err == answer_errno(c->ioc, st[0], st[1]) ? NULL :
		       mismatch(answer_errno(c->ioc, st[0], st[1]), err);
	default:
		return judge_params(c, err);
	}
}

static const char *judge_info(const struct wctx *x, const struct call *c)
{
	const struct ccid_reader_info *o = (const void *)c->arg;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(o->reserved); i++)
		if (o->reserved[i])
			return "reserved not zero";
	if (x->fds[c->fdi].gen != x->dev.gen)
		return NULL;
	if (o->num_slots != x->dev.num_slots ||
	    o->buffer_length != x->dev.buf_len ||
	    o->exchange_level != x->dev.level ||
	    o->pin_support != x->dev.pin_support ||
	    o->interface_class != 0x0b)
		return "not the reader's description";
	return NULL;
}

/* Slot events: in range, and no counter of this file went back */
static const char *judge_events(struct wctx *x, const struct call *c)
{
	const struct ccid_slot_events *o = (const void *)c->arg;
	struct fdent *f = &x->fds[c->fdi];
	unsigned int n = f->gen == x->dev.gen ? x->dev.num_slots :
			 CCID_MAX_SLOT_COUNT;
	uint32_t mask = n >= 32 ? ~0u : (1u << n) - 1;
	unsigned int i;

	if (o->flags != c->in.ev.flags || o->reserved0 || o->reserved[0] ||
	    o->reserved[1] || o->reserved[2])
		return "flags or reserved fields changed";
	if ((o->present | o->known | o->reset_pending) & ~mask)
		return "bits past the reader's slots";
	for (i = 0; i < CCID_MAX_SLOT_COUNT; i++) {
		if (i >= n && (o->changes[i] || o->generation[i]))
			return "counters past the reader's slots";
		if (o->changes[i] < f->changes[i] ||
		    o->generation[i] < f->generation[i])
			return "a change counter or generation went back";
		f->changes[i] = o->changes[i];
		f->generation[i] = o->generation[i];
	}
	if (o->hw_errors < f->hw_errors)
		return "hw_errors went back";
	f->hw_errors = o->hw_errors;
	return NULL;
}

/* ENODEV, EINTR and the documented set: what any call must obey */
static const char *judge_common(struct wctx *x, const struct call *c,
				const struct outcome *o)
{
	uint32_t bit = 1u << xindex(o->err);
	struct fdent *f = &x->fds[c->fdi];

	if (o->ret > 0)
		return "a positive return value";
	if (!(iocs[c->ioc].errs & bit))
		return "not in the errno set ccid.rst documents for it";
	if ((o->gone || f->dead) && o->err != ENODEV)
		return "the reader is gone: only ENODEV";
	if (o->err == ENODEV && !o->unplugging)
		return "ENODEV while the reader is plugged";
	if (o->err == EINTR && !o->signalled)
		return "EINTR without a signal";
	return NULL;
}

/* Faulty arguments: refused, with one of their errnos, nothing written */
static const char *judge_refused(const struct call *c, const struct outcome *o)
{
	uint32_t bit = 1u << xindex(o->err);

	if (!(c->must & bit) && o->err != ENOMEM)
		return "faulty arguments not refused as ccid.rst says";
	if (written_back(c))
		return "written back although the arguments were refused";
	return NULL;
}

/* Valid arguments: no refusal, and the structure tells what happened */
static const char *judge_valid(struct wctx *x, const struct call *c,
			       const struct outcome *o)
{
	uint32_t bit = 1u << xindex(o->err);
	bool wb = written_back(c);

	if (o->err == EFAULT && !(c->may & B(EFAULT)))
		return "EFAULT with every pointer valid";
	if (wb)
		return judge_answer(c, o->err);
	if ((bit & REFUSED & ~B(EFAULT)) &&
	    !(c->lenient && (bit & (B(EINVAL) | B(EOPNOTSUPP)))))
		return "valid arguments refused (nothing written back)";
	if ((iocs[c->ioc].flags & F_STATUS) && (bit & ANSWERED))
		return c->writable ? "the answer's errno, but not written back" :
		       "the answer's errno, though a read-only structure cannot be written back";
	if ((bit & B(ECONNRESET)) && !(iocs[c->ioc].flags & F_CARD))
		return "ECONNRESET for a command off the card path";
	if (!o->err && c->ioc == I_GET_INFO)
		return judge_info(x, c);
	if (!o->err && c->ioc == I_SLOT_EVENTS)
		return judge_events(x, c);
	return NULL;
}

/* Untouched: a structure not written back, and rx_buf with it */
static const char *judge_untouched(const struct call *c,
				   const struct outcome *o)
{
	if (!c->writable || written_back(c) || !c->size)
		return NULL;
	if (!o->err && (c->ioc == I_GET_INFO || c->ioc == I_SLOT_EVENTS))
		return NULL;
	if (memcmp(c->arg, c->in.raw, c->size))
		return "the structure changed although not written back";
	if (c->rx_avail && o->err != EFAULT &&
	    check_rx(c, 0, c->in.x.rx_size, false))
		return "rx_buf written although the structure was not";
	return NULL;
}

static const char *judge(struct wctx *x, const struct call *c,
			 const struct outcome *o)
{
	const char *why = judge_common(x, c, o);

	if (!why && o->err != ENODEV)
		why = c->must ? judge_refused(c, o) : judge_valid(x, c, o);
	if (!why)
		why = judge_untouched(c, o);
	return why;
}

static void report_call(struct wctx *x, const struct call *c,
			const struct outcome *o, const char *why)
{
	char allowed[256], answer[64] = "";
	const uint8_t *st;

	allowed[0] = '\0';
	if (c->must)
		errset_str(allowed, sizeof(allowed), c->must);
	if (written_back(c)) {
		st = status_at(c);
		snprintf(answer, sizeof(answer), ", written back: status %02x error %02x",
			 st[0], st[1]);
	}
	call_fail(x, c, "%s (ret %d) after %ld ms%s%s: %s%s%s%s",
		  errname(o->err), o->ret, o->ms, answer,
		  o->signalled ? ", signalled" : "", why,
		  c->must ? " (refusals: " : "", allowed, c->must ? ")" : "");
}

/* Run @c on its file and judge the result */
static void run_call(struct wctx *x, struct call *c, struct outcome *o)
{
	struct fdent *f = &x->fds[c->fdi];
	bool long_call = c->timeout_ms > RESCUE_MS;
	struct devinfo d;
	const char *why;
	int sig0;
	long t0;

	dev_read(&d);
	o->gone = f->gen <= d.gone_gen;
	flight_begin(x, call_bound(c), "%s", c->what);
	sig0 = sig_count;
	t0 = now_ms();
	if (long_call)
		rescue(true);
	o->ret = ioctl(f->fd, c->nr, c->arg);
	o->err = o->ret < 0 ? errno : 0;
	if (long_call)
		rescue(false);
	o->ms = now_ms() - t0;
	o->signalled = sig_count != sig0;
	flight_end(x);
	dev_read(&d);
	o->unplugging = f->gen <= d.unplug_gen;
	x->me->done++;
	__atomic_add_fetch(&sh->total_done, 1, __ATOMIC_RELAXED);
	count(c->ioc, o->err);
	why = judge(x, c, o);
	if (!why && o->ms > call_bound(c))
		why = "it took longer than its bound";
	if (why)
		report_call(x, c, o, why);
	if (o->err == ENODEV)
		f->dead = true;
}

/* ------------------------------------------------------------------ */
/* The other operations */

static const char *mode_str(int flags)
{
	switch (flags & O_ACCMODE) {
	case O_RDONLY:
		return "O_RDONLY";
	case O_WRONLY:
		return "O_WRONLY";
	default:
		return "O_RDWR";
	}
}

/* Open the published node as file @fdi; 0, or -errno */
static int open_fd(struct wctx *x, int fdi)
{
	static const int modes[] = {
		O_RDWR, O_RDWR, O_RDWR, O_RDWR, O_RDWR, O_RDWR, O_RDWR,
		O_RDWR, O_RDONLY, O_WRONLY,
	};
	struct fdent *f = &x->fds[fdi];
	struct devinfo d, d2;
	int flags, fd, err, sig0;

	flags = modes[below(&x->r, ARRAY_SIZE(modes))] |
		(chance(&x->r, 300) ? O_NONBLOCK : 0) |
		(chance(&x->r, 500) ? O_CLOEXEC : 0);
	dev_read(&d);
	if (!d.plugged) {
		sleep_ms(5);
		return -ENOENT;
	}
	flight_begin(x, opt.slack_ms, "open(%s, %s%s)", d.path, mode_str(flags),
		     flags & O_NONBLOCK ? " | O_NONBLOCK" : "");
	sig0 = sig_count;
	fd = open(d.path, flags);
	err = fd < 0 ? errno : 0;
	flight_end(x);
	count(O_OPEN, err);
	dev_read(&d2);
	if (d2.seq != d.seq) {
		/* an unplug began meanwhile: whatever we got, drop it */
		if (fd >= 0)
			close(fd);
		return -EAGAIN;
	}
	if (fd < 0) {
		if (err != ENOMEM && !(err == EINTR && sig_count != sig0))
			call_fail(x, NULL, "open(%s, %s) of a plugged reader: %s",
				  d.path, mode_str(flags), errname(err));
		return -err;
	}
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->flags = flags;
	f->gen = d.gen;
	return 0;
}

static void close_fd(struct wctx *x, int fdi)
{
	struct fdent *f = &x->fds[fdi];
	int ret, err;

	flight_begin(x, opt.slack_ms, "close(fd%d, gen %u)", fdi, f->gen);
	ret = close(f->fd);
	err = ret ? errno : 0;
	flight_end(x);
	count(O_CLOSE, err);
	if (ret)
		call_fail(x, NULL, "close(fd%d): %s", fdi, errname(err));
	f->fd = -1;
}

/* A random open file, or a random free slot; -1 when there is none */
static int any_fd(struct wctx *x, bool open)
{
	int i, k = below(&x->r, MAX_FDS);

	for (i = 0; i < MAX_FDS; i++, k = (k + 1) % MAX_FDS)
		if ((x->fds[k].fd >= 0) == open)
			return k;
	return -1;
}

/* The file for an ioctl; reopens one that saw its reader go */
static int pick_fd(struct wctx *x)
{
	int fdi = below(&x->r, MAX_FDS);
	struct fdent *f = &x->fds[fdi];

	if (f->fd >= 0 && f->dead && chance(&x->r, 800))
		close_fd(x, fdi);
	if (f->fd < 0 && open_fd(x, fdi) < 0)
		return -1;
	return fdi;
}

static uint8_t call_slot(const struct call *c)
{
	switch (c->ioc) {
	case I_XFR_BLOCK:
	case I_SECURE:
		return c->in.x.slot;
	default:
		return c->in.pr.slot;
	}
}

/*
 * After ECONNRESET, the file's slot events say the slot was reset; half
 * the time the file acknowledges it.
 */
static void react_connreset(struct wctx *x, const struct call *refused)
{
	uint8_t slot = call_slot(refused);
	const struct ccid_slot_events *ev;
	struct outcome o;
	struct call c;

	if (x->me->done >= x->me->quota)
		return;
	memset(&c, 0, offsetof(struct call, what));
	c.ioc = I_SLOT_EVENTS;
	c.fdi = refused->fdi;
	c.nr = CCID_IOC_SLOT_EVENTS;
	c.size = sizeof(c.in.ev);
	c.in.ev.flags = chance(&x->r, 500) ? CCID_EVENTS_ACK_RESET : 0;
	snprintf(c.what, sizeof(c.what), "SLOT_EVENTS fd%d flags=%#x, after ECONNRESET on slot %u",
		 c.fdi, c.in.ev.flags, slot);
	c.arg = x->ar.tight + x->ar.page - c.size;
	c.readable = c.writable = true;
	memcpy(c.arg, c.in.raw, c.size);
	run_call(x, &c, &o);
	ev = (const void *)c.arg;
	if (!o.err && !(ev->reset_pending & (1u << slot)))
		call_fail(x, &c, "reset_pending %#x: slot %u not pending after ECONNRESET",
			  ev->reset_pending, slot);
}

/*
 * An XfrBlock found the card unpowered (a reset, a bounce or another
 * worker powered it off): power it on, so that more calls reach it.
 */
static void react_unpowered(struct wctx *x, const struct call *xfr)
{
	struct outcome o;
	struct call c;

	if (x->me->done >= x->me->quota)
		return;
	memset(&c, 0, offsetof(struct call, what));
	c.ioc = I_POWER_ON;
	c.fdi = xfr->fdi;
	c.nr = CCID_IOC_POWER_ON;
	c.size = sizeof(c.in.p);
	c.in.p.slot = xfr->in.x.slot;
	c.in.p.status = 0xff;
	c.in.p.timeout_ms = 1000;
	c.timeout_ms = 1000;
	snprintf(c.what, sizeof(c.what), "POWER_ON fd%d slot=%u, after ICC_MUTE",
		 c.fdi, c.in.p.slot);
	c.arg = x->ar.tight + x->ar.page - c.size;
	c.readable = c.writable = true;
	memcpy(c.arg, c.in.raw, c.size);
	run_call(x, &c, &o);
}

static const unsigned int ioc_weights[I_NUM] = {
	[I_GET_INFO] = 30, [I_POWER_ON] = 70, [I_POWER_OFF] = 25,
	[I_SLOT_STATUS] = 70, [I_XFR_BLOCK] = 240, [I_SECURE] = 40,
	[I_GET_PARAMS] = 35, [I_SET_PARAMS] = 35, [I_RESET_PARAMS] = 20,
	[I_ESCAPE] = 30, [I_ABORT] = 45, [I_SLOT_EVENTS] = 60,
	[I_MAGIC] = 30, [I_RANDOM] = 20,
};

static void op_ioctl(struct wctx *x)
{
	int ioc = pick(&x->r, ioc_weights, I_NUM), fdi = pick_fd(x);
	struct outcome o;
	struct call c;

	if (fdi < 0)
		return;
	/* the structure does not depend on whether a file had to be opened */
	x->r.s = mix64(x->seed ^ mix64(x->step) ^ 0xb0b0b0b0ull);
	build_call(x, &c, ioc, fdi);
	run_call(x, &c, &o);
	if (o.err == ECONNRESET)
		react_connreset(x, &c);
	/* written back: the file could send it, so it may power on */
	if (o.err == EIO && ioc == I_XFR_BLOCK && written_back(&c) &&
	    (*status_at(&c) & CCID_ICC_STATUS_MASK) == CCID_ICC_INACTIVE)
		react_unpowered(x, &c);
	if (o.err == ENODEV && chance(&x->r, 900))
		close_fd(x, fdi);
}

static void op_open(struct wctx *x)
{
	int fdi = below(&x->r, MAX_FDS);

	if (x->fds[fdi].fd >= 0)
		close_fd(x, fdi);
	open_fd(x, fdi);
}

static void op_close(struct wctx *x)
{
	int fdi = any_fd(x, true);

	if (fdi >= 0)
		close_fd(x, fdi);
}

/* dup(), F_DUPFD_CLOEXEC or dup3() into a free slot; maybe close the old */
static void op_dup(struct wctx *x)
{
	int from = any_fd(x, true), to = any_fd(x, false), fd, kind;

	if (from < 0 || to < 0)
		return;
	kind = below(&x->r, 3);
	flight_begin(x, opt.slack_ms, "dup fd%d", from);
	fd = kind == 0 ? dup(x->fds[from].fd) :
	     kind == 1 ? fcntl(x->fds[from].fd, F_DUPFD_CLOEXEC, 64) :
	     dup3(x->fds[from].fd, 300 + to, O_CLOEXEC);
	flight_end(x);
	count(O_DUP, fd < 0 ? errno : 0);
	if (fd < 0) {
		call_fail(x, NULL, "dup kind %d of fd%d: %s", kind, from,
			  errname(errno));
		return;
	}
	x->fds[to] = x->fds[from];
	x->fds[to].fd = fd;
	if (chance(&x->r, 500))
		close_fd(x, from);
}

static const char *judge_pollfd(const struct fdent *f, const struct pollfd *p,
				bool gone, unsigned int unplug_gen)
{
	short hup = p->revents & (POLLHUP | POLLERR);

	if (p->revents & POLLNVAL)
		return "POLLNVAL on an open file";
	if (p->revents & ~(p->events | POLLERR | POLLHUP))
		return "revents outside events | POLLERR | POLLHUP";
	if (p->revents & (POLLOUT | POLLWRNORM | POLLRDBAND))
		return "an event ccid never reports";
	if (hup && hup != (POLLHUP | POLLERR))
		return "POLLHUP without POLLERR, or the reverse";
	if (hup && f->gen > unplug_gen)
		return "POLLHUP while the reader is plugged";
	if (!hup && gone)
		return "no POLLHUP | POLLERR once the reader is gone";
	return NULL;
}

/* Random events on some of the files, a short timeout (or none) */
static int poll_set(struct wctx *x, struct pollfd *p, int *idx, bool *gone)
{
	static const short bits[] = {
		POLLIN, POLLPRI, POLLOUT, POLLRDNORM, POLLRDBAND, POLLWRNORM,
		POLLERR, POLLHUP,
	};
	struct devinfo d;
	int i, k, n = 0;

	dev_read(&d);
	for (i = 0; i < MAX_FDS; i++) {
		if (x->fds[i].fd < 0 || !chance(&x->r, 700))
			continue;
		p[n].fd = x->fds[i].fd;
		p[n].events = 0;
		for (k = 0; k < (int)ARRAY_SIZE(bits); k++)
			if (chance(&x->r, 400))
				p[n].events |= bits[k];
		p[n].revents = rnd(&x->r);
		gone[n] = x->fds[i].gen <= d.gone_gen || x->fds[i].dead;
		idx[n++] = i;
	}
	return n;
}

static void op_poll(struct wctx *x)
{
	struct pollfd p[MAX_FDS];
	int idx[MAX_FDS], n, i, k, ret, err, timeout, sig0;
	bool gone[MAX_FDS];
	struct devinfo d;
	const char *why;

	n = poll_set(x, p, idx, gone);
	if (!n)
		return;
	timeout = chance(&x->r, 15) ? -1 : chance(&x->r, 300) ? 0 :
		  (int)below(&x->r, 30);
	flight_begin(x, (timeout < 0 ? RESCUE_MS : timeout) + opt.slack_ms,
		     "poll(%d files, %d ms)", n, timeout);
	sig0 = sig_count;
	rescue(timeout < 0);
	ret = poll(p, n, timeout);
	err = ret < 0 ? errno : 0;
	rescue(false);
	flight_end(x);
	count(O_POLL, err);
	dev_read(&d);
	if (ret < 0) {
		if (err != ENOMEM && !(err == EINTR && sig_count != sig0))
			call_fail(x, NULL, "poll(%d files): %s", n, errname(err));
		return;
	}
	for (i = k = 0; i < n; i++) {
		k += !!p[i].revents;
		why = judge_pollfd(&x->fds[idx[i]], &p[i], gone[i],
				   d.unplug_gen);
		if (why)
			call_fail(x, NULL, "poll: fd%d (gen %u) events %#x revents %#x: %s",
				  idx[i], x->fds[idx[i]].gen, p[i].events,
				  p[i].revents, why);
	}
	if (k != ret)
		call_fail(x, NULL, "poll returned %d for %d files with revents",
			  ret, k);
}

/* read(), write(), pread() and lseek() on the node */
static void op_rw(struct wctx *x)
{
	static const char *const names[] = { "read", "write", "pread", "lseek" };
	int fdi = any_fd(x, true), kind, want, mode, err;
	uint8_t *buf;
	ssize_t ret;
	size_t len;
	int fd;

	if (fdi < 0)
		return;
	fd = x->fds[fdi].fd;
	mode = x->fds[fdi].flags & O_ACCMODE;
	kind = below(&x->r, 4);
	buf = chance(&x->r, 800) ? x->ar.loose :
	      chance(&x->r, 500) ? NULL : x->ar.none;
	len = below(&x->r, 64);
	flight_begin(x, opt.slack_ms, "%s fd%d", names[kind], fdi);
	if (kind == 0)
		ret = read(fd, buf, len);
	else if (kind == 1)
		ret = write(fd, buf, len);
	else if (kind == 2)
		ret = pread(fd, buf, len, below(&x->r, 1000));
	else
		ret = lseek(fd, below(&x->r, 1000), SEEK_SET);
	err = ret < 0 ? errno : 0;
	flight_end(x);
	count(O_RW, err);
	/* no .read or .write: EINVAL; a stream: ESPIPE for positions */
	want = kind == 0 ? (mode == O_WRONLY ? EBADF : EINVAL) :
	       kind == 1 ? (mode == O_RDONLY ? EBADF : EINVAL) : ESPIPE;
	if (kind == 3 && ret >= 0)
		return;
	if (ret >= 0 || err != want)
		call_fail(x, NULL, "%s(fd%d, %s, %zu): %zd (%s), expected %s",
			  names[kind], fdi, mode_str(mode), len, ret,
			  errname(err), errname(want));
}

/* A child holds copies of the files: it exits, closes or uses them */
static void __attribute__((noreturn)) child_run(struct wctx *x, int kind)
{
	struct ccid_reader_info info;
	struct devinfo d;
	int i, ret;

	for (i = 0; kind && i < MAX_FDS; i++) {
		if (x->fds[i].fd < 0)
			continue;
		if (kind == 1) {
			close(x->fds[i].fd);
			continue;
		}
		ret = ioctl(x->fds[i].fd, CCID_IOC_GET_INFO, &info) ? errno : 0;
		dev_read(&d);
		if (ret && !(ret == ENODEV && x->fds[i].gen <= d.unplug_gen))
			call_fail(x, NULL, "forked child: GET_INFO on fd%d (gen %u): %s",
				  i, x->fds[i].gen, errname(ret));
	}
	_exit(0);
}

/*
 * A child that goes on with our files while we do: SLOT_STATUS and
 * SLOT_EVENTS, valid, on whichever files are open; the last close of a
 * file may be its exit.
 */
static void __attribute__((noreturn)) child_linger(struct wctx *x)
{
	unsigned int n = 1 + below(&x->r, 8), i;
	struct ccid_slot_events ev;
	struct ccid_slot_status st;
	struct devinfo d;
	int fdi, ioc, err;

	for (i = 0; i < n; i++) {
		fdi = any_fd(x, true);
		if (fdi < 0)
			break;
		ioc = chance(&x->r, 500) ? I_SLOT_STATUS : I_SLOT_EVENTS;
		err = ioc == I_SLOT_STATUS ?
		      -slot_status(x->fds[fdi].fd, 0, &st) :
		      -slot_events(x->fds[fdi].fd, 0, &ev);
		dev_read(&d);
		if (!(iocs[ioc].errs & (1u << xindex(err)) & ~B(EFAULT) &
		      ~B(EINTR)) ||
		    (err == ENODEV && x->fds[fdi].gen > d.unplug_gen))
			call_fail(x, NULL, "lingering child: %s on fd%d (gen %u): %s",
				  iocs[ioc].name, fdi, x->fds[fdi].gen,
				  errname(err));
	}
	_exit(0);
}

/* Wait for the lingering child (@block), or only reap it if it is done */
static void reap_linger(struct wctx *x, bool block)
{
	int st = 0;
	pid_t r;

	if (x->linger <= 0)
		return;
	if (block)
		flight_begin(x, opt.slack_ms, "wait for the lingering child %d",
			     (int)x->linger);
	do
		r = waitpid(x->linger, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (block)
		flight_end(x);
	if (!r)
		return;
	if (r == x->linger && (!WIFEXITED(st) || WEXITSTATUS(st)))
		call_fail(x, NULL, "lingering child: wait status %#x", st);
	x->linger = 0;
}

static void op_fork(struct wctx *x)
{
	int kind = below(&x->r, 4), st = 0;
	pid_t pid;

	if (kind == 3) {
		reap_linger(x, true);
		pid = fork();
		if (!pid)
			child_linger(x);
		count(O_FORK, pid < 0 ? errno : 0);
		x->linger = pid > 0 ? pid : 0;
		return;
	}
	flight_begin(x, opt.slack_ms, "fork (child %d) and wait for it", kind);
	pid = fork();
	if (!pid)
		child_run(x, kind);
	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	flight_end(x);
	count(O_FORK, pid < 0 ? errno : 0);
	if (pid < 0)
		call_fail(x, NULL, "fork: %s", errname(errno));
	else if (!WIFEXITED(st) || WEXITSTATUS(st))
		call_fail(x, NULL, "forked child %d: wait status %#x", kind, st);
}

/* ------------------------------------------------------------------ */
/* A worker */

static void (*const ops[])(struct wctx *x) = {
	op_ioctl, op_open, op_close, op_poll, op_rw, op_dup, op_fork,
};

static const unsigned int op_weights[ARRAY_SIZE(ops)] = {
	790, 40, 35, 60, 20, 40, 15,
};

/* Step K of worker W: its generator depends on the seed, W and K only */
static void worker_step(struct wctx *x)
{
	x->r.s = mix64(x->seed ^ mix64(x->step));
	dev_read(&x->dev);
	reap_linger(x, false);
	ops[pick(&x->r, op_weights, ARRAY_SIZE(ops))](x);
}

static void install_handlers(bool restart)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Escape needs CAP_SYS_ADMIN: odd workers run without it */
static int drop_sys_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	uint32_t bit = 1u << (CAP_SYS_ADMIN % 32);
	int i = CAP_SYS_ADMIN / 32;

	if (syscall(SYS_capget, &h, d))
		return -errno;
	d[i].effective &= ~bit;
	d[i].permitted &= ~bit;
	d[i].inheritable &= ~bit;
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

static void __attribute__((noreturn)) worker_main(int w)
{
	static struct wctx wx;
	struct wctx *x = &wx;
	struct rng r;
	int i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	x->w = w;
	x->me = &sh->w[w];
	x->seed = mix64(opt.seed ^ (0x5eed0000ull + w));
	r.s = mix64(x->seed ^ x->me->incarnation);
	install_handlers(chance(&r, 500));
	x->admin = !(w & 1);
	if (!x->admin && drop_sys_admin()) {
		say("# worker %d: cannot drop CAP_SYS_ADMIN", w);
		x->admin = true;
	}
	if (arena_map(&x->ar)) {
		say("# worker %d: no memory", w);
		_exit(2);
	}
	for (i = 0; i < MAX_FDS; i++)
		x->fds[i].fd = -1;
	while (x->me->done < x->me->quota) {
		x->step = x->me->step;
		worker_step(x);
		x->me->step = x->step + 1;
	}
	for (i = 0; i < MAX_FDS; i++)
		if (x->fds[i].fd >= 0)
			close(x->fds[i].fd);
	reap_linger(x, true);
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* The conductor: the readers, the schedule, the watchdog */

/* Reader personalities, in turn from the seed, one per plug */
static const char *const personalities[] = {
	"",
	"--max-slot-index 2 --level extended",
	"--max-slot-index 1 --pin-support 1 --endpoints bulk-in,bulk-out",
};

enum {
	UNPLUG_REPLUG, UNPLUG_DISCONNECT, UNPLUG_KILL, UNPLUG_UNBIND,
	UNPLUG_NUM
};

static const char *const unplug_names[UNPLUG_NUM] = {
	"replug", "disconnect", "SIGKILL to ccid_emu", "unbind and bind",
};

struct tally {
	char name[24];
	unsigned long n;
};

/* The emulator's log, read as it grows */
struct follower {
	int fd;
	char buf[16384];
	size_t len;
	unsigned int nodes, ctl_ok, errors;
	char node[256], error[256];
	struct tally chaos[32];
	unsigned int nchaos;
};

struct conductor {
	struct emu e;
	struct follower fl;
	struct rng r;
	int kmsg_fd;
	unsigned int kmsg_bad;
	unsigned long kmsg_lines;
	unsigned int gen;
	char busid[32], devnum[16];	/* of the reader published */
	uint64_t next_signal, unplug_at[MAX_EVENTS], kill_at[MAX_EVENTS];
	uint64_t reset_at[MAX_EVENTS];
	unsigned int unplugs, kills, resets, signals, died, emu_died;
	pid_t resetter;			/* a child in USBDEVFS_RESET */
	long reset_start;
	long counters[C_NUM + 2];
	bool hung, abort;
	long start_ms;
};

static const char *const more_counters[] = { "hw_errors", "slot_changes" };

static void tally(struct tally *t, unsigned int *n, unsigned int max,
		  const char *name)
{
	unsigned int i;

	for (i = 0; i < *n; i++)
		if (!strcmp(t[i].name, name))
			break;
	if (i == *n) {
		if (*n == max)
			return;
		strf(t[i].name, sizeof(t[i].name), "%s", name);
		(*n)++;
	}
	t[i].n++;
}

static void follow_line(struct follower *f, const char *line)
{
	const char *k = strstr(line, " kind=");

	if (!strncmp(line, "node ", 5)) {
		f->nodes++;
		strf(f->node, sizeof(f->node), "%s", line);
	} else if (!strncmp(line, "error ", 6)) {
		if (!f->errors++)
			strf(f->error, sizeof(f->error), "%s", line);
	} else if (!strncmp(line, "ctl-ok ", 7)) {
		f->ctl_ok++;
	} else if (!strncmp(line, "chaos ", 6) && k) {
		tally(f->chaos, &f->nchaos, ARRAY_SIZE(f->chaos), k + 6);
	}
}

static void follow(struct follower *f, const char *path)
{
	char *p, *nl;
	ssize_t n;

	if (f->fd < 0 && path[0])
		f->fd = open(path, O_RDONLY | O_CLOEXEC);
	while (f->fd >= 0) {
		n = read(f->fd, f->buf + f->len, sizeof(f->buf) - 1 - f->len);
		if (n <= 0)
			return;
		f->len += n;
		f->buf[f->len] = '\0';
		for (p = f->buf; (nl = strchr(p, '\n')); p = nl + 1) {
			*nl = '\0';
			follow_line(f, p);
		}
		f->len -= p - f->buf;
		memmove(f->buf, p, f->len);
		if (f->len == sizeof(f->buf) - 1)
			f->len = 0;	/* a line too long to be ours */
	}
}

/* A new emulator: its log is a new file */
static void follower_reset(struct follower *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	f->len = 0;
	f->nodes = f->ctl_ok = 0;
}

/* New kernel log lines; those no run may cause are shown and counted */
static void kmsg_scan(struct conductor *cd)
{
	size_t i, nbad = ARRAY_SIZE(kernel_bad) - (opt.chaos > 0);
	char rec[8192], *text, *nl;
	ssize_t n;

	for (;;) {
		n = read(cd->kmsg_fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			return;
		rec[n] = '\0';
		text = strchr(rec, ';');
		if (!text)
			continue;
		nl = strchr(++text, '\n');
		if (nl)
			*nl = '\0';
		cd->kmsg_lines++;
		for (i = 0; i < nbad; i++)
			if (strstr(text, kernel_bad[i]))
				break;
		if (i < nbad && cd->kmsg_bad++ < 20)
			say("# kernel: %s", text);
	}
}

static void report_hang(struct conductor *cd, int i, long now)
{
	struct worker *w = &sh->w[i];
	char path[64];

	say("# HANG (seed %llu): worker %d (pid %d), step %llu: %s: in flight for %ld ms, its bound is %ld ms",
	    (unsigned long long)opt.seed, i, (int)w->pid,
	    (unsigned long long)w->step, w->what, now - w->start_ms,
	    w->deadline_ms - w->start_ms);
	snprintf(path, sizeof(path), "/proc/%d/stack", (int)w->pid);
	dump_file("kernel stack of the worker", path, 40);
	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)w->pid);
	dump_file("wchan", path, 1);
	/* every blocked task's stack to the kernel log */
	write_file("/proc/sysrq-trigger", "w", 1);
	emu_dump(&cd->e);
}

static void watchdog(struct conductor *cd)
{
	long now = now_ms(), dl;
	int i;

	for (i = 0; i < opt.procs && !cd->hung; i++) {
		dl = __atomic_load_n(&sh->w[i].deadline_ms, __ATOMIC_ACQUIRE);
		if (sh->w[i].pid <= 0 || !dl || now <= dl)
			continue;
		cd->hung = true;
		report_hang(cd, i, now);
	}
}

static void spawn_worker(int i)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (!pid)
		worker_main(i);
	sh->w[i].pid = pid > 0 ? pid : 0;
	if (pid < 0)
		say("# fork of worker %d: %s", i, errname(errno));
}

/* Finished, killed on purpose (start it again) or died */
static void reap_workers(struct conductor *cd)
{
	struct worker *w;
	int i, st;

	for (i = 0; i < opt.procs; i++) {
		w = &sh->w[i];
		if (w->pid <= 0 || waitpid(w->pid, &st, WNOHANG) != w->pid)
			continue;
		w->pid = 0;
		w->deadline_ms = 0;
		if (WIFEXITED(st) && !WEXITSTATUS(st) && w->done >= w->quota) {
			w->finished = true;
			continue;
		}
		if (!(w->killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
			cd->died++;
			say("# worker %d died (wait status %#x) in: %s", i, st,
			    w->what);
		}
		w->killed = false;
		w->incarnation++;
		if (cd->died > 2u * opt.procs)
			cd->abort = true;
		else
			spawn_worker(i);
	}
}

/*
 * A USB reset from elsewhere (usbfs, as another program would): the
 * driver stays bound, commands in flight end with EIO, the slots start
 * new generations.  A child of ours does it, so that we go on meanwhile.
 */
static void start_reset(struct conductor *cd)
{
	pid_t pid;
	int fd;

	cd->resets++;
	if (cd->resetter > 0)
		return;
	fflush(stdout);
	pid = fork();
	if (!pid) {
		fd = usbfs_open(&cd->e);
		_exit(fd < 0 ? 10 : ioctl(fd, USBDEVFS_RESET, 0) ? 11 : 0);
	}
	cd->resetter = pid > 0 ? pid : 0;
	cd->reset_start = now_ms();
}

static void watch_reset(struct conductor *cd)
{
	int st;

	if (cd->resetter <= 0)
		return;
	if (waitpid(cd->resetter, &st, WNOHANG) == cd->resetter) {
		say("# USB reset %u of reader %u: %s after %ld ms", cd->resets,
		    cd->gen, WIFEXITED(st) && !WEXITSTATUS(st) ? "done" :
		    "failed", now_ms() - cd->reset_start);
		cd->resetter = 0;
	} else if (now_ms() - cd->reset_start > PLUG_MS && !cd->hung) {
		say("# HANG: USBDEVFS_RESET of reader %u has not returned after %d s",
		    cd->gen, PLUG_MS / 1000);
		cd->hung = true;
	}
}

static void duties(struct conductor *cd)
{
	follow(&cd->fl, cd->e.log);
	kmsg_scan(cd);
	watchdog(cd);
	watch_reset(cd);
	reap_workers(cd);
	sleep_ms(TICK_MS);
}

/* The emulator's "node dev=/dev/ccidN busid=B" line into @e */
static int take_node_line(struct emu *e, const char *line)
{
	const char *b = strstr(line, " busid=");

	if (!b)
		return -EINVAL;
	strf(e->busid, sizeof(e->busid), "%s", b + 7);
	strf(e->intf, sizeof(e->intf), "/sys/bus/usb/devices/%s:1.0",
	     e->busid);
	e->node[0] = e->dev[0] = '\0';
	if (strncmp(line, "node dev=/dev/", 14))
		return -ENODEV;
	strf(e->node, sizeof(e->node), "%.*s", (int)(b - line - 14), line + 14);
	strf(e->dev, sizeof(e->dev), "/dev/%s", e->node);
	return 0;
}

/* Wait for the emulator's node line after the @before ones */
static int wait_node(struct conductor *cd, unsigned int before)
{
	long end = now_ms() + NODE_WAIT_MS;

	while (cd->fl.nodes <= before) {
		if (now_ms() > end || emu_reap(&cd->e))
			return -ETIMEDOUT;
		duties(cd);
	}
	return take_node_line(&cd->e, cd->fl.node);
}

/* The new reader, described by its GET_INFO, for the workers */
static int publish(struct conductor *cd)
{
	struct ccid_reader_info info;
	struct devinfo d;
	char path[160];
	int fd, ret;

	fd = open_node(&cd->e);
	if (fd < 0)
		return fd;
	ret = do_ioctl(fd, CCID_IOC_GET_INFO, &info);
	close(fd);
	if (ret)
		return ret;
	strf(cd->busid, sizeof(cd->busid), "%s", cd->e.busid);
	strf(path, sizeof(path), "/sys/bus/usb/devices/%s/devnum", cd->busid);
	read_attr(path, cd->devnum, sizeof(cd->devnum));
	dev_read(&d);
	d.gen = ++cd->gen;
	d.plugged = true;
	strf(d.path, sizeof(d.path), "%s", cd->e.dev);
	d.num_slots = info.num_slots;
	d.buf_len = info.buffer_length;
	d.pin_support = info.pin_support;
	d.level = info.exchange_level;
	dev_write(&d);
	return 0;
}

/* A new ccid_emu, with the next personality and fault stream */
static int plug_emulator(struct conductor *cd)
{
	unsigned int gen = cd->gen + 1, n = 0;
	char args[256], copy[256], *opts[32], *tok, *save = NULL;
	int ret;

	snprintf(args, sizeof(args), "--pad-pin 123456 --chaos %u:%u %s",
		 (uint32_t)mix64(opt.seed ^ (0xc4a05000ull + gen)), opt.chaos,
		 personalities[(opt.seed + gen) % ARRAY_SIZE(personalities)]);
	strf(copy, sizeof(copy), "%s", args);
	for (tok = strtok_r(args, " ", &save); tok && n < ARRAY_SIZE(opts) - 1;
	     tok = strtok_r(NULL, " ", &save))
		opts[n++] = tok;
	opts[n] = NULL;
	follower_reset(&cd->fl);
	ret = emu_spawn(&cd->e, 20000, (const char * const *)opts);
	if (!ret)
		ret = wait_node(cd, 0);
	if (!ret)
		ret = publish(cd);
	say("# reader %u: ccid_emu %s: %s", gen, copy,
	    ret ? errname(ret) : cd->e.dev);
	return ret;
}

/* The published reader is gone: its USB device, or its driver */
static bool reader_gone(const struct conductor *cd, int how)
{
	char path[160], num[16];

	if (how == UNPLUG_UNBIND) {
		driver_of(&cd->e, num, sizeof(num));
		return strcmp(num, "ccid");
	}
	strf(path, sizeof(path), "/sys/bus/usb/devices/%s/devnum", cd->busid);
	read_attr(path, num, sizeof(num));
	return !num[0] || strcmp(num, cd->devnum);
}

/* Bind the driver again; its node, once its attributes are there */
static int rebind(struct conductor *cd)
{
	char intf[48], path[160];
	long end = now_ms() + NODE_WAIT_MS;

	strf(intf, sizeof(intf), "%s:1.0", cd->e.busid);
	if (write_file(CCID_DRIVER "/bind", intf, strlen(intf)))
		return -EIO;
	strf(path, sizeof(path), "%s/firmware_version", cd->e.intf);
	for (;;) {
		sysfs_node(&cd->e);
		if (cd->e.node[0] && !access(path, F_OK))
			break;
		if (now_ms() > end)
			return -ETIMEDOUT;
		duties(cd);
	}
	strf(cd->e.dev, sizeof(cd->e.dev), "/dev/%s", cd->e.node);
	return publish(cd);
}

/* The error counters of a reader, added up before it goes */
static void counters_add(struct conductor *cd)
{
	long v;
	int i;

	for (i = 0; i < C_NUM + 2; i++) {
		v = attr_num(&cd->e, i < C_NUM ? counter_names[i] :
			     more_counters[i - C_NUM]);
		if (v > 0)
			cd->counters[i] += v;
	}
}

/* The old emulator is gone (disconnect, SIGKILL): start another */
static int replace_emulator(struct conductor *cd)
{
	long end = now_ms() + EMU_EXIT_MS;

	while (!emu_reap(&cd->e) && now_ms() < end)
		duties(cd);
	if (cd->e.pid > 0) {
		kill(cd->e.pid, SIGKILL);
		emu_wait_gone(&cd->e, 3000);
	}
	follow(&cd->fl, cd->e.log);
	return plug_emulator(cd);
}

/* Start the unplug @how of the published reader */
static void pull(struct conductor *cd, int how)
{
	char intf[48];

	switch (how) {
	case UNPLUG_KILL:
		kill(cd->e.pid, SIGKILL);
		break;
	case UNPLUG_UNBIND:
		strf(intf, sizeof(intf), "%s:1.0", cd->busid);
		write_file(CCID_DRIVER "/unbind", intf, strlen(intf));
		break;
	default:
		emu_ctl_nowait(&cd->e, how == UNPLUG_REPLUG ? "replug" :
			       "disconnect");
		break;
	}
}

/* Unplug the reader in one of four ways, then plug the next */
static int unplug(struct conductor *cd, int how)
{
	unsigned int nodes = cd->fl.nodes;
	struct devinfo d;
	long end;

	counters_add(cd);
	dev_read(&d);
	d.plugged = false;
	d.unplug_gen = d.gen;
	dev_write(&d);
	say("# unplug %u, reader %u, %s, after %llu calls", cd->unplugs,
	    d.gen, unplug_names[how],
	    (unsigned long long)__atomic_load_n(&sh->total_done,
						__ATOMIC_RELAXED));
	pull(cd, how);
	end = now_ms() + PLUG_MS;
	while (!reader_gone(cd, how) && now_ms() < end)
		duties(cd);
	if (!reader_gone(cd, how)) {
		say("# reader %u still there %d s after its unplug", d.gen,
		    PLUG_MS / 1000);
		return -ETIMEDOUT;
	}
	d.gone_gen = d.gen;
	dev_write(&d);
	if (how == UNPLUG_UNBIND) {
		if (rebind(cd))
			return -ENODEV;
		say("# reader %u: bound again: %s", cd->gen, cd->e.dev);
		return 0;
	}
	if (how != UNPLUG_REPLUG)
		return replace_emulator(cd);
	if (wait_node(cd, nodes) || publish(cd))
		return -ENODEV;
	say("# reader %u: replugged: %s", cd->gen, cd->e.dev);
	return 0;
}

/* The emulator died on its own: say so, and go on with another */
static void emulator_died(struct conductor *cd)
{
	struct devinfo d;

	cd->emu_died++;
	say("# ccid_emu died on its own (wait status %#x)", cd->e.status);
	emu_dump(&cd->e);
	dev_read(&d);
	d.plugged = false;
	d.unplug_gen = d.gone_gen = d.gen;
	dev_write(&d);
	if (plug_emulator(cd))
		cd->abort = true;
}

static void schedule_init(struct conductor *cd)
{
	uint64_t span;
	unsigned int i;

	span = opt.calls / (opt.unplugs + 1);
	for (i = 0; i < opt.unplugs; i++)
		cd->unplug_at[i] = span * (i + 1) - span / 8 +
				   below(&cd->r, span / 4 + 1);
	span = opt.calls / (opt.kills + 1);
	for (i = 0; i < opt.kills; i++)
		cd->kill_at[i] = span * (i + 1) - span / 3 +
				 below(&cd->r, span / 4 + 1);
	span = opt.calls / (opt.resets + 1);
	for (i = 0; i < opt.resets; i++)
		cd->reset_at[i] = span * (i + 1) + span / 3 +
				  below(&cd->r, span / 4 + 1);
	cd->next_signal = 1 + below(&cd->r, 2 * opt.signal_every + 1);
}

/* A running worker, one with a call in flight if asked; -1: none */
static int running_worker(struct conductor *cd, bool in_flight)
{
	int i, k = below(&cd->r, opt.procs);
	struct worker *w;

	for (i = 0; i < opt.procs; i++, k = (k + 1) % opt.procs) {
		w = &sh->w[k];
		if (w->pid <= 0 || w->killed)
			continue;
		if (!in_flight ||
		    __atomic_load_n(&w->deadline_ms, __ATOMIC_ACQUIRE))
			return k;
	}
	return -1;
}

static void send_signal(struct conductor *cd)
{
	int k = running_worker(cd, true), sig;

	sig = chance(&cd->r, 500) ? SIGALRM : SIGINT;
	if (k < 0)
		k = running_worker(cd, false);
	if (k < 0)
		return;
	kill(sh->w[k].pid, sig);
	cd->signals++;
}

static void kill_worker(struct conductor *cd)
{
	int k = running_worker(cd, true);

	if (k < 0)
		k = running_worker(cd, false);
	cd->kills++;
	if (k < 0)
		return;
	sh->w[k].killed = true;
	say("# SIGKILL to worker %d in: %s", k, sh->w[k].what);
	kill(sh->w[k].pid, SIGKILL);
}

static void schedule(struct conductor *cd)
{
	uint64_t done = __atomic_load_n(&sh->total_done, __ATOMIC_RELAXED);
	int how;

	while (opt.signal_every && done >= cd->next_signal) {
		send_signal(cd);
		cd->next_signal += 1 + below(&cd->r, 2 * opt.signal_every);
	}
	if (cd->kills < opt.kills && done >= cd->kill_at[cd->kills])
		kill_worker(cd);
	if (cd->resets < opt.resets && done >= cd->reset_at[cd->resets])
		start_reset(cd);
	if (cd->unplugs < opt.unplugs && done >= cd->unplug_at[cd->unplugs]) {
		how = (opt.seed + cd->unplugs) % UNPLUG_NUM;
		cd->unplugs++;
		if (unplug(cd, how))
			cd->abort = true;
	}
}

static bool all_finished(void)
{
	int i;

	for (i = 0; i < opt.procs; i++)
		if (!sh->w[i].finished)
			return false;
	return true;
}

static void conduct(struct conductor *cd)
{
	uint64_t done, step = opt.calls / 10 ? opt.calls / 10 : 1, next = step;

	while (!cd->hung && !cd->abort && !all_finished()) {
		duties(cd);
		if (emu_reap(&cd->e) > 0)
			emulator_died(cd);
		schedule(cd);
		done = __atomic_load_n(&sh->total_done, __ATOMIC_RELAXED);
		if (done >= next) {
			say("# %llu calls, %ld s, %u unplugs, %u kills, %u signals, %u failures",
			    (unsigned long long)done,
			    (now_ms() - cd->start_ms) / 1000, cd->unplugs,
			    cd->kills, cd->signals, sh->failures);
			next += step;
		}
	}
}

/* After a hang or an abort: every worker goes; say who cannot */
static void stop_workers(void)
{
	long end;
	int i, st;

	for (i = 0; i < opt.procs; i++)
		if (sh->w[i].pid > 0)
			kill(sh->w[i].pid, SIGKILL);
	for (i = 0; i < opt.procs; i++) {
		end = now_ms() + 30000;
		while (sh->w[i].pid > 0 &&
		       waitpid(sh->w[i].pid, &st, WNOHANG) != sh->w[i].pid) {
			if (now_ms() > end) {
				say("# worker %d (pid %d) does not die after SIGKILL: %s",
				    i, (int)sh->w[i].pid, sh->w[i].what);
				break;
			}
			sleep_ms(20);
		}
	}
}

/* ------------------------------------------------------------------ */
/* The verdicts at the end */

/*
 * The faults off, the reader must work: slot events (acknowledging any
 * reset), power on, an echo, the slot's status.  A fault may still be
 * in the reader (a lag until the next reset, a halted endpoint), so
 * three tries.  NULL, or what went wrong.
 */
static const char *reader_works(struct conductor *cd, char *why, size_t size)
{
	static const uint8_t data[] = "ccid-fuzz";
	unsigned int ok = cd->fl.ctl_ok;
	struct ccid_slot_events ev;
	struct ccid_slot_status st;
	struct ccid_power_on p;
	struct ccid_xfer x;
	long end = now_ms() + CTL_WAIT_MS;
	int fd, ret = -EIO, i;

	emu_ctl_nowait(&cd->e, "chaos 0");
	while (cd->fl.ctl_ok == ok && now_ms() < end)
		duties(cd);
	if (cd->fl.ctl_ok == ok)
		return "ccid_emu did not take \"chaos 0\"";
	fd = open_node(&cd->e);
	if (fd < 0) {
		snprintf(why, size, "open %s: %s", cd->e.dev, errname(fd));
		return why;
	}
	for (i = 0; i < 3 && ret; i++) {
		alarm(60);
		ret = slot_events(fd, CCID_EVENTS_ACK_RESET, &ev);
		if (!ret)
			ret = power_on(fd, 0, &p);
		if (!ret)
			ret = echo(fd, 0, data, sizeof(data), &x);
		if (!ret)
			ret = slot_status(fd, 0, &st);
		alarm(0);
		if (ret)
			say("# the reader after the run, try %d: %s", i + 1,
			    ret == 1 ? "a wrong echo" : errname(ret));
	}
	close(fd);
	if (!ret)
		return NULL;
	snprintf(why, size, "power on, echo and status fail: %s",
		 ret == 1 ? "a wrong echo" : errname(ret));
	return why;
}

/* ccid_emu: no "error" line, alive until told to quit, exit status 0 */
static const char *emulator_healthy(struct conductor *cd, char *why,
				    size_t size)
{
	bool alive = cd->e.pid > 0 && !emu_reap(&cd->e);
	int status;

	follow(&cd->fl, cd->e.log);
	status = emu_stop(&cd->e);
	if (cd->fl.errors) {
		snprintf(why, size, "%u error lines, the first: %s",
			 cd->fl.errors, cd->fl.error);
		return why;
	}
	if (cd->emu_died || !alive || status) {
		snprintf(why, size, "died on its own %u times; at the end %s, exit status %d",
			 cd->emu_died, alive ? "alive" : "gone", status);
		return why;
	}
	return NULL;
}

static void print_stats(struct conductor *cd)
{
	char line[1024];
	size_t k;
	int o, i;

	for (o = 0; o < O_NUM; o++) {
		k = snprintf(line, sizeof(line), "# %-12s", op_name(o));
		for (i = 0; i < XE_NUM && k < sizeof(line) - 40; i++)
			if (sh->hist[o][i])
				k += snprintf(line + k, sizeof(line) - k, " %s:%lu",
					      i == XE_OTHER ? "other" :
					      i ? errname(xerrno[i]) : "0",
					      sh->hist[o][i]);
		say("%s", line);
	}
	k = snprintf(line, sizeof(line), "# faults injected:");
	for (i = 0; i < (int)cd->fl.nchaos && k < sizeof(line) - 40; i++)
		k += snprintf(line + k, sizeof(line) - k, " %s:%lu",
			      cd->fl.chaos[i].name, cd->fl.chaos[i].n);
	say("%s", line);
	k = snprintf(line, sizeof(line), "# driver counters:");
	for (i = 0; i < C_NUM + 2; i++)
		k += snprintf(line + k, sizeof(line) - k, " %s:%ld",
			      i < C_NUM ? counter_names[i] :
			      more_counters[i - C_NUM], cd->counters[i]);
	say("%s", line);
	say("# %lu answers written back, %lu echoes checked; %u unplugs, %u USB resets, %u workers killed, %u signals; %lu kernel log lines",
	    sh->written_back, sh->echoes, cd->unplugs, cd->resets, cd->kills,
	    cd->signals, cd->kmsg_lines);
}

static void results(struct conductor *cd)
{
	char why[512];
	const char *w;
	long s = (now_ms() - cd->start_ms) / 1000;

	ksft_test_result(!sh->failures,
			 "ioctl_fuzz: %llu calls by %d processes in %ld s, every result as documented (%u not)\n",
			 (unsigned long long)sh->total_done, opt.procs, s,
			 sh->failures);
	ksft_test_result(!cd->hung, "no call outlived its timeout + %ld s\n",
			 opt.slack_ms / 1000);
	ksft_test_result(!cd->died && !cd->abort,
			 "workers: none died but those killed on purpose (%u died)\n",
			 cd->died);
	if (cd->hung || cd->abort) {
		ksft_test_result_skip("the reader works after the run: the run did not end\n");
	} else {
		w = reader_works(cd, why, sizeof(why));
		ksft_test_result(!w, "the reader works after the run%s%s\n",
				 w ? ": " : "", w ? w : "");
	}
	counters_add(cd);
	w = emulator_healthy(cd, why, sizeof(why));
	ksft_test_result(!w, "ccid_emu: no error, quits when asked%s%s\n",
			 w ? ": " : "", w ? w : "");
	sleep_ms(500);
	kmsg_scan(cd);
	ksft_test_result(!cd->kmsg_bad,
			 "kernel log: no BUG, WARNING, KASAN, lockdep or hung task line (%u)\n",
			 cd->kmsg_bad);
}

/* ------------------------------------------------------------------ */
/* Options, main */

static void __attribute__((noreturn)) usage(int status)
{
	fprintf(status ? stderr : stdout,
		"Usage: ioctl_fuzz [--seed N] [--calls N] [--procs N] [--chaos PERMILLE]\n"
		"                  [--unplugs N] [--kills N] [--resets N]\n"
		"                  [--signal-every N]\n"
		"                  [--hang-slack SECS]\n"
		"Run in the ccid test VM (run-vm --reader none); see the top of\n"
		"ioctl_fuzz.c.\n");
	exit(status);
}

static unsigned long long opt_num(const char *name, const char *arg,
				  unsigned long long max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 0);
	if (errno || !*arg || *end || *arg == '-' || v > max) {
		fprintf(stderr, "ioctl_fuzz: --%s: bad number '%s'\n", name,
			arg);
		usage(2);
	}
	return v;
}

static void parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "calls", required_argument, NULL, 'c' },
		{ "procs", required_argument, NULL, 'p' },
		{ "chaos", required_argument, NULL, 'x' },
		{ "unplugs", required_argument, NULL, 'u' },
		{ "kills", required_argument, NULL, 'k' },
		{ "resets", required_argument, NULL, 'r' },
		{ "signal-every", required_argument, NULL, 'i' },
		{ "hang-slack", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	bool seeded = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		const char *o = longopts[0].name;
		int i;

		for (i = 0; longopts[i].name; i++)
			if (longopts[i].val == c)
				o = longopts[i].name;
		switch (c) {
		case 's':
			opt.seed = opt_num(o, optarg, ~0ull);
			seeded = true;
			break;
		case 'c':
			opt.calls = opt_num(o, optarg, 1ull << 40);
			break;
		case 'p':
			opt.procs = opt_num(o, optarg, MAX_PROCS);
			break;
		case 'x':
			opt.chaos = opt_num(o, optarg, 1000);
			break;
		case 'u':
			opt.unplugs = opt_num(o, optarg, MAX_EVENTS);
			break;
		case 'k':
			opt.kills = opt_num(o, optarg, MAX_EVENTS);
			break;
		case 'r':
			opt.resets = opt_num(o, optarg, MAX_EVENTS);
			break;
		case 'i':
			opt.signal_every = opt_num(o, optarg, 1u << 30);
			break;
		case 'l':
			opt.slack_ms = opt_num(o, optarg, 86400) * 1000;
			break;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind < argc || !opt.procs || !opt.calls)
		usage(2);
	if (!seeded)
		opt.seed = ((uint64_t)time(NULL) ^ (uint64_t)getpid() << 16) &
			   0xffffffff;
}

static void conductor_init(struct conductor *cd)
{
	struct sigaction sa;
	int i;

	emu_init(&cd->e);
	cd->fl.fd = -1;
	cd->r.s = mix64(opt.seed ^ 0xc0ffeeull);
	cd->start_ms = now_ms();
	cd->kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (cd->kmsg_fd >= 0)
		lseek(cd->kmsg_fd, 0, SEEK_END);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < opt.procs; i++)
		sh->w[i].quota = opt.calls / opt.procs +
				 ((uint64_t)i < opt.calls % opt.procs);
	schedule_init(cd);
}

int main(int argc, char **argv)
{
	static struct conductor cd;
	const char *why;
	int i;

	parse_options(argc, argv);
	printf("# seed %llu: replay with --seed %llu\n",
	       (unsigned long long)opt.seed, (unsigned long long)opt.seed);
	ksft_print_header();
	why = emu_skip_reason();
	if (why)
		ksft_exit_skip("%s\n", why);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	ksft_set_plan(6);
	conductor_init(&cd);
	if (plug_emulator(&cd)) {
		emu_dump(&cd.e);
		ksft_exit_fail_msg("no reader to fuzz\n");
	}
	for (i = 0; i < opt.procs; i++)
		spawn_worker(i);
	conduct(&cd);
	if (cd.hung || cd.abort)
		stop_workers();
	while (cd.resetter > 0 && !cd.hung)
		duties(&cd);
	print_stats(&cd);
	results(&cd);
	if (sh->failures)
		say("# first failure: %s", sh->first_failure);
	if (sh->failures || cd.hung || cd.died || cd.kmsg_bad)
		say("# replay: ioctl_fuzz --seed %llu --calls %llu --procs %d --chaos %u --unplugs %u --kills %u --resets %u --signal-every %u",
		    (unsigned long long)opt.seed, (unsigned long long)opt.calls,
		    opt.procs, opt.chaos, opt.unplugs, opt.kills, opt.resets,
		    opt.signal_every);
	ksft_finished();
}
