// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of ccid.ko against a real reader: QEMU's usb-ccid with an emulated
 * CAC card (ccid-card-emulated, libcacard), inside the VM that run-vm boots.
 *
 * The reader is found through sysfs (/sys/class/usbmisc/ccid*), never by
 * assuming a node name.  What the driver reports is checked against the
 * raw descriptors sysfs shows (the 54-byte CCID class descriptor is found
 * in the configuration descriptor here, independently of the driver) and
 * what the card answers against what libcacard is known to answer.
 *
 * QEMU's usb-ccid up to at least 7.2 (Debian 12) does not answer a few
 * commands as CCID 1.1 says it should; the tests name the QEMU version they
 * expect a behaviour from (qemu_legacy()) rather than accept either answer:
 *  - RDR_to_PC_Parameters carries dwLength 0 followed by 7 + 5 bytes, a
 *    frame the driver must refuse (-EPROTO, one protocol error);
 *  - an XfrBlock to a powered-off card is answered by an empty DataBlock
 *    that reports no error (QEMU's current code: bError ICC_MUTE, -EIO).
 * Secure and Escape are answered "command not supported" (bStatus 0x40,
 * bError 0x00); QEMU 7.2 does so in an RDR_to_PC_SlotStatus, as GnuPG's
 * driver accepts in place of any answer type.  The tests expect
 * -EOPNOTSUPP with those words whatever the answer type.
 *
 * Every version of ccid-card-emulated now and then loses an APDU sent
 * right after an answer (see ITERATIONS): the concurrency tests count
 * those apart and check that the driver recovered from each.
 *
 * The hot-unplug tests run last and put the reader and its card back with
 * the same QEMU ids, so that the tests can also be run one by one (-r);
 * every fixture waits for a reader before it starts.
 *
 * Run: tools/testing/selftests/drivers/usb/ccid/run-vm -- \
 *	tools/testing/selftests/drivers/usb/ccid/ccid_test
 */

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/usb/ccid_reader.h>

/*
 * The harness's functions do not use all their parameters, and its
 * EXPECT_EQ(0, unsigned_field) compares an int with an unsigned.  Its
 * TEST_F() wrapper reads "child" after a longjmp; with a parent teardown
 * either value leads to exactly one teardown (see FIXTURE_TEARDOWN_PARENT
 * below).
 */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wclobbered"
#include "kselftest_harness.h"
#include "ccid_test_util.h"

#define USB_MAJOR		180
#define CCID_HDR		10
#define CCID_DESC_LEN		54
#define CCID_DESC_TYPE		0x21
#define USB_DT_INTERFACE	0x04
#define USB_CLASS_CSCID		0x0b
#define CCID_MAX_MSG		(CCID_HDR + 65544)
#define QEMU_READER_ID		"ccid0"
#define QEMU_CARD_ID		"card0"
/* run-vm's usb-ccid; the card's properties are read back from QEMU */
#define QEMU_READER_ARGS	"usb-ccid,id=" QEMU_READER_ID ",bus=xhci.0"
#define READER_WAIT_MS		20000
#define KERNEL_PTR		0xffffffff81000000ull

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif

/* APDUs and what libcacard answers them */
static const uint8_t select_cac[] = {
	0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00
};

static const uint8_t select_unknown[] = {
	0x00, 0xa4, 0x04, 0x00, 0x05, 0xa0, 0x00, 0x00, 0x00, 0x01
};

static const uint8_t select_case1[] = { 0x00, 0xa4, 0x04, 0x00 };

static const uint8_t apdu_too_short[] = { 0x00, 0xa4 };

static const uint8_t sw_61_0d[] = { 0x61, 0x0d };

static const uint8_t sw_6a_82[] = { 0x6a, 0x82 };

static const uint8_t sw_67_00[] = { 0x67, 0x00 };

/* The FCI of the CAC PKI applet, then 90 00 */
static const uint8_t cac_fci[] = {
	0x6f, 0x0b, 0x84, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00,
	0xa5, 0x00, 0x90, 0x00
};

/* The ATR libcacard gives its CAC card: T0 = 7A, TA1 TB1 TC1, 10 bytes */
static const uint8_t cac_atr[] = {
	0x3b, 0x7a, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74, 0x65, 0x20, 0x63,
	0x64, 0x31, 0x34, 0x34
};

/*
 * A well-formed PIN verify block: ASCII, 6..25 digits, OK key, one message,
 * case 1 VERIFY APDU; what "ccidctl verify-pin --apdu '00 20 00 82'
 * --min 6 --max 25 --dump" prints.
 */
static const uint8_t verify_blk[] = {
	0x00, 0x00, 0x82, 0x00, 0x00, 0x19, 0x06, 0x02, 0x01, 0x09, 0x04,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x82
};

/* The same for a modify (three messages, bConfirmPIN 3) */
static const uint8_t modify_blk[] = {
	0x01, 0x00, 0x82, 0x00, 0x00, 0x00, 0x00, 0x19, 0x01, 0x03, 0x02,
	0x03, 0x09, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x24,
	0x00, 0x82
};

static const uint8_t escape_data[] = { 0x01, 0x02 };

/* ------------------------------------------------------------------ */
/* The QEMU this runs under */

static struct {
	int major, minor;	/* -1: unknown */
	char text[128];
} qemu = { -1, -1, "" };

/* QEMU up to 7.2: see the comment at the top */
static bool qemu_legacy(void)
{
	return qemu.major >= 0 &&
	       (qemu.major < 7 || (qemu.major == 7 && qemu.minor <= 2));
}

static bool qemu_reader(void)
{
	const char *r = getenv("CCID_VM_READER");

	return in_vm() && r && !strcmp(r, "qemu-ccid");
}

/*
 * Run a QEMU monitor command through run-vm's relay; the output goes to
 * @out.  Return: vmctl's exit status, or -1.
 */
static int vmctl(char *out, size_t size, const char *fmt, ...)
{
	const char *ctl = getenv("CCID_VMCTL");
	char cmd[1024], args[768];
	size_t len = 0;
	va_list ap;
	FILE *f;
	int st;

	if (out && size)
		out[0] = '\0';
	if (!ctl || !*ctl)
		return -1;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", ctl, args);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	for (;;) {
		char tmp[512];
		size_t n = fread(tmp, 1, sizeof(tmp), f);

		if (!n)
			break;
		if (out && len + 1 < size) {
			size_t room = size - 1 - len;

			memcpy(out + len, tmp, n < room ? n : room);
			len += n < room ? n : room;
			out[len] = '\0';
		}
	}
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void __attribute__((constructor)) detect_qemu(void)
{
	char out[512];

	if (!in_vm() || vmctl(out, sizeof(out), "info version"))
		return;
	if (sscanf(out, "%d.%d", &qemu.major, &qemu.minor) != 2)
		qemu.major = qemu.minor = -1;
	snprintf(qemu.text, sizeof(qemu.text), "%.*s", (int)strcspn(out, "\n"),
		 out);
}

/* ------------------------------------------------------------------ */
/* sysfs */

/* Read a sysfs file into @buf; return its length or -errno. */
static ssize_t read_file(const char *path, void *buf, size_t size)
{
	ssize_t n = 0, len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((size_t)len < size &&
	       (n = read(fd, (char *)buf + len, size - len)) > 0)
		len += n;
	n = n < 0 ? -errno : len;
	close(fd);
	return n;
}

/* A text attribute, NUL-terminated, newline kept */
static ssize_t read_attr(const char *dir, const char *name, char *buf,
			 size_t size)
{
	char path[PATH_MAX];
	ssize_t n;

	strf(path, sizeof(path), "%s/%s", dir, name);
	n = read_file(path, buf, size - 1);
	buf[n < 0 ? 0 : n] = '\0';
	return n;
}

static long read_hex_attr(const char *dir, const char *name)
{
	char buf[64], *end;
	long v;

	if (read_attr(dir, name, buf, sizeof(buf)) <= 0)
		return -1;
	v = strtol(buf, &end, 16);
	return *end == '\n' || !*end ? v : -1;
}

/* Basename of the driver bound to @dir, or "" */
static void driver_of(const char *dir, char *name, size_t size)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	strf(path, sizeof(path), "%s/driver", dir);
	n = readlink(path, link, sizeof(link) - 1);
	link[n < 0 ? 0 : n] = '\0';
	strf(name, size, "%s", strrchr(link, '/') ? strrchr(link, '/') + 1 : link);
}

/*
 * The first ccidN node whose interface is bound to the ccid driver, or
 * "" when there is none yet.
 */
static void find_reader(char *node, size_t size)
{
	char drv[64], path[PATH_MAX];
	glob_t g;
	size_t i;

	node[0] = '\0';
	if (glob("/sys/class/usbmisc/ccid*", 0, NULL, &g))
		return;
	for (i = 0; i < g.gl_pathc; i++) {
		strf(path, sizeof(path), "%s/device", g.gl_pathv[i]);
		driver_of(path, drv, sizeof(drv));
		if (!strcmp(drv, "ccid")) {
			strf(node, size, "%s", strrchr(g.gl_pathv[i], '/') + 1);
			break;
		}
	}
	globfree(&g);
}

static bool wait_reader(char *node, size_t size, long ms)
{
	long end = now_ms() + ms;

	for (;;) {
		find_reader(node, size);
		if (node[0])
			return true;
		if (now_ms() > end)
			return false;
		sleep_ms(100);
	}
}

static bool wait_gone(const char *path, long ms)
{
	long end = now_ms() + ms;

	while (!access(path, F_OK)) {
		if (now_ms() > end)
			return false;
		sleep_ms(50);
	}
	return true;
}

/*
 * Find the CCID class descriptor of interface @ifnum, alternate setting
 * @alt, in the sysfs "descriptors" blob: the 18-byte device descriptor,
 * then the raw configuration descriptor(s).  The class descriptor follows
 * its interface descriptor, normally before the endpoints, in a few old
 * readers after them: anything up to the next interface counts.
 */
static int find_class_desc(const uint8_t *raw, size_t len, int ifnum, int alt,
			   uint8_t *desc)
{
	size_t pos = raw[0];
	bool in_intf = false;

	if (len < 18 || raw[0] != 18 || raw[1] != 0x01)
		return -EINVAL;
	while (pos + 2 <= len) {
		uint8_t blen = raw[pos], type = raw[pos + 1];

		if (blen < 2 || pos + blen > len)
			return -EINVAL;
		if (type == USB_DT_INTERFACE && blen >= 9) {
			in_intf = raw[pos + 2] == ifnum && raw[pos + 3] == alt;
		} else if (in_intf && type == CCID_DESC_TYPE) {
			if (blen != CCID_DESC_LEN)
				return -EINVAL;
			memcpy(desc, raw + pos, CCID_DESC_LEN);
			return 0;
		}
		pos += blen;
	}
	return -ENOENT;
}

static uint16_t le16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static uint32_t le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ------------------------------------------------------------------ */
/* ioctls; each returns 0 or -errno */

static int power_on(int fd, uint8_t voltage, struct ccid_power_on *p)
{
	memset(p, 0, sizeof(*p));
	p->voltage = voltage;
	return do_ioctl(fd, CCID_IOC_POWER_ON, p);
}

static int slot_cmd(int fd, unsigned long req, struct ccid_slot_status *st)
{
	memset(st, 0, sizeof(*st));
	return do_ioctl(fd, req, st);
}

/*
 * QEMU's emulated card can lose an APDU that arrives right after it
 * answered the previous one (its worker thread misses the wake-up); the
 * APDU is processed when the next one arrives.  The driver then times
 * out, aborts, powers the slot off (the card's state is unknown), and
 * drops the late answer as stale when the next command goes out.  Single
 * exchanges therefore use a short timeout, power the card on again and
 * retry; the concurrency tests count these losses themselves.
 */
#define XFER_TIMEOUT_MS		3000
#define XFER_TRIES		3

static int xfer(int fd, unsigned long req, const void *tx, size_t tx_len,
		void *rx, size_t rx_size, struct ccid_xfer *x)
{
	int ret, tries = 0;

	do {
		memset(x, 0, sizeof(*x));
		x->tx_buf = (uintptr_t)tx;
		x->tx_len = tx_len;
		x->rx_buf = (uintptr_t)rx;
		x->rx_size = rx_size;
		if (req == CCID_IOC_XFR_BLOCK)
			x->timeout_ms = XFER_TIMEOUT_MS;
		ret = do_ioctl(fd, req, x);
		if (ret == -ETIMEDOUT && req == CCID_IOC_XFR_BLOCK) {
			struct ccid_power_on p;

			/* The driver powered the slot off: start again. */
			fprintf(stderr, "# QEMU lost an APDU: retrying\n");
			memset(&p, 0, sizeof(p));
			do_ioctl(fd, CCID_IOC_POWER_ON, &p);
		}
	} while (ret == -ETIMEDOUT && req == CCID_IOC_XFR_BLOCK &&
		 ++tries < XFER_TRIES);
	return ret;
}

static int params_cmd(int fd, unsigned long req, uint8_t protocol,
		      const uint8_t *data, size_t len, struct ccid_params *p)
{
	memset(p, 0, sizeof(*p));
	p->protocol = protocol;
	p->len = len;
	if (len && len <= sizeof(p->data))
		memcpy(p->data, data, len);
	return do_ioctl(fd, req, p);
}

/* An APDU whose answer must be @want exactly */
static bool apdu_is(int fd, const uint8_t *apdu, size_t len,
		    const uint8_t *want, size_t want_len)
{
	struct ccid_xfer x;
	uint8_t rx[300];

	return !xfer(fd, CCID_IOC_XFR_BLOCK, apdu, len, rx, sizeof(rx), &x) &&
	       x.rx_len == want_len && !memcmp(rx, want, want_len);
}

/*
 * Expected length of an ATR from its own structure: TS, T0, the interface
 * bytes that the Y nibbles announce, the K historical bytes of T0, and TCK
 * when a TDi names a protocol other than T=0.  0 if it is cut short.
 */
static size_t atr_expected_len(const uint8_t *atr, size_t len)
{
	size_t pos = 1, n = 2;
	uint8_t y = atr[1] >> 4;
	bool tck = false;

	for (;;) {
		size_t count = __builtin_popcount(y);

		n += count;
		if (!(y & 0x8))
			break;
		pos += count;			/* TDi */
		if (pos >= len)
			return 0;
		if (atr[pos] & 0x0f)
			tck = true;
		y = atr[pos] >> 4;
	}
	return n + (atr[1] & 0x0f) + tck;
}

/* ------------------------------------------------------------------ */
/* The QEMU reader: unplug and plug back */

/* The -device arguments of the card, as QEMU reports its properties */
static int card_device_args(char *args, size_t size)
{
	static const char * const keys[] = {
		"backend", "db", "cert1", "cert2", "cert3",
	};
	char *qtree = malloc(1 << 16), *line, *save = NULL;
	size_t pos;
	int indent = -1, ret = -ENOENT;

	if (!qtree)
		return -ENOMEM;
	if (vmctl(qtree, 1 << 16, "info qtree")) {
		free(qtree);
		return -EIO;
	}
	strf(args, size, "ccid-card-emulated,id=%s", QEMU_CARD_ID);
	pos = strlen(args);
	for (line = strtok_r(qtree, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		int ind = strspn(line, " ");
		char key[64], val[512];
		size_t i;

		if (indent < 0) {
			if (strstr(line, "dev: ccid-card-emulated, id \"" QEMU_CARD_ID "\"")) {
				indent = ind;
				ret = 0;
			}
			continue;
		}
		if (ind <= indent)
			break;
		if (sscanf(line, " %63s = \"%511[^\"]\"", key, val) != 2)
			continue;
		for (i = 0; i < ARRAY_SIZE(keys); i++)
			if (!strcmp(key, keys[i]) && pos < size)
				pos += snprintf(args + pos, size - pos, ",%s=%s",
						key, val);
	}
	free(qtree);
	return ret;
}

/* ------------------------------------------------------------------ */
/* The fixture: the reader, its descriptors, an open node, a powered card */

FIXTURE(ccid) {
	int fd;
	char node[32];			/* ccidN */
	char dev[64];			/* /dev/ccidN */
	char class_dir[PATH_MAX];	/* /sys/class/usbmisc/ccidN */
	char intf[PATH_MAX];		/* the USB interface in sysfs */
	char usbdev[PATH_MAX];		/* the USB device in sysfs */
	uint8_t desc[CCID_DESC_LEN];	/* the class descriptor, raw */
	int vid, pid, bcd_device, iface_class;
	struct ccid_reader_info info;
	uint8_t atr[CCID_MAX_ATR_SIZE];
	uint32_t atr_len;
	char card_args[1024];		/* to plug the card back */
	bool unplugged;
};

static int setup_reader(struct __test_metadata *_metadata,
			FIXTURE_DATA(ccid) *self)
{
	static uint8_t raw[65536];
	struct ccid_power_on p;
	char path[PATH_MAX];
	long end;
	ssize_t n;
	int ret, ifnum, alt;

	strf(self->class_dir, sizeof(self->class_dir),
		 "/sys/class/usbmisc/%s", self->node);
	strf(self->dev, sizeof(self->dev), "/dev/%s", self->node);
	strf(path, sizeof(path), "%s/device", self->class_dir);
	if (!realpath(path, self->intf))
		return -errno;
	strf(path, sizeof(path), "%s/..", self->intf);
	if (!realpath(path, self->usbdev))
		return -errno;

	strf(path, sizeof(path), "%s/descriptors", self->usbdev);
	n = read_file(path, raw, sizeof(raw));
	if (n < 0)
		return n;
	ifnum = read_hex_attr(self->intf, "bInterfaceNumber");
	alt = read_hex_attr(self->intf, "bAlternateSetting");
	self->iface_class = read_hex_attr(self->intf, "bInterfaceClass");
	self->vid = read_hex_attr(self->usbdev, "idVendor");
	self->pid = read_hex_attr(self->usbdev, "idProduct");
	self->bcd_device = read_hex_attr(self->usbdev, "bcdDevice");
	if (ifnum < 0 || alt < 0 || self->iface_class < 0 || self->vid < 0 ||
	    self->pid < 0 || self->bcd_device < 0)
		return -ENOENT;
	ret = find_class_desc(raw, n, ifnum, alt, self->desc);
	if (ret)
		return ret;

	self->fd = open(self->dev, O_RDWR | O_CLOEXEC);
	if (self->fd < 0)
		return -errno;
	ret = do_ioctl(self->fd, CCID_IOC_GET_INFO, &self->info);
	if (ret)
		return ret;

	/* A card plugged back a moment ago may still be on its way. */
	end = now_ms() + 10000;
	while ((ret = power_on(self->fd, CCID_VOLTAGE_AUTO, &p)) ||
	       !p.atr_len) {
		if (now_ms() > end)
			return ret ?: -ENOMEDIUM;
		sleep_ms(200);
	}
	memcpy(self->atr, p.atr, sizeof(self->atr));
	self->atr_len = p.atr_len;
	return 0;
}

FIXTURE_SETUP(ccid)
{
	int ret;

	self->fd = -1;
	self->unplugged = false;
	if (!in_vm())
		SKIP(return, "not in the ccid test VM (CCID_VM unset): use run-vm");
	if (!qemu_reader())
		SKIP(return, "run-vm has no qemu-ccid reader (--reader %s)",
		     getenv("CCID_VM_READER") ?: "?");
	if (!wait_reader(self->node, sizeof(self->node), READER_WAIT_MS))
		SKIP(return, "no CCID reader in /sys/class/usbmisc");
	ret = setup_reader(_metadata, self);
	ASSERT_EQ(0, ret) TH_LOG("reader %s: setup: %s", self->node,
				 errname(ret));
}

/* Put the reader and its card back, and wait until the card answers */
static int plug_back(FIXTURE_DATA(ccid) *self, char *node, size_t size)
{
	struct ccid_power_on p;
	long end;
	int fd, ret;

	if (vmctl(NULL, 0, "device_add %s", QEMU_READER_ARGS))
		return -EIO;
	if (vmctl(NULL, 0, "device_add %s", self->card_args))
		return -EIO;
	if (!wait_reader(node, size, READER_WAIT_MS))
		return -ENODEV;
	end = now_ms() + 10000;
	for (;;) {
		char dev[64];

		strf(dev, sizeof(dev), "/dev/%s", node);
		fd = open(dev, O_RDWR | O_CLOEXEC);
		ret = fd < 0 ? -errno : power_on(fd, CCID_VOLTAGE_AUTO, &p);
		if (fd >= 0)
			close(fd);
		if (!ret && p.atr_len)
			return 0;
		if (now_ms() > end)
			return ret ?: -ENOMEDIUM;
		sleep_ms(200);
	}
}

/*
 * In the parent: after a failed ASSERT the harness's test process does not
 * get to FIXTURE_TEARDOWN (its "child" variable does not survive the
 * longjmp), and an unplug test must put the reader back whatever happens.
 * The test's open files close when its process exits.
 */
FIXTURE_TEARDOWN_PARENT(ccid)
{
	char node[32];

	if (self->unplugged && plug_back(self, node, sizeof(node)))
		TH_LOG("could not plug the reader back");
}

/* Expect an ioctl to fail with exactly @err */
#define EXPECT_IOCTL_ERR(err, fd, req, arg) do {			\
	int __ret = do_ioctl(fd, req, arg);				\
	EXPECT_EQ(-(err), __ret) TH_LOG("%s(%s): %s, expected %s",	\
		#req, #arg, errname(__ret), errname(err));		\
} while (0)

#define ASSERT_IOCTL_ERR(err, fd, req, arg) do {			\
	int __ret = do_ioctl(fd, req, arg);				\
	ASSERT_EQ(-(err), __ret) TH_LOG("%s(%s): %s, expected %s",	\
		#req, #arg, errname(__ret), errname(err));		\
} while (0)

static unsigned int counter(FIXTURE_DATA(ccid) *self, const char *name)
{
	char buf[32];

	if (read_attr(self->intf, name, buf, sizeof(buf)) <= 0)
		return UINT_MAX;
	return strtoul(buf, NULL, 10);
}

/* ------------------------------------------------------------------ */
/* Probe, node, sysfs */

/*
 * Not a fixture test: in the VM with the QEMU reader, a reader that does
 * not show up is a failure of probe, not a reason to skip.
 */
TEST(probe)
{
	char node[32], path[PATH_MAX], buf[64], drv[64];
	unsigned int maj, min;
	struct stat st;

	if (!in_vm())
		SKIP(return, "not in the ccid test VM (CCID_VM unset): use run-vm");
	if (!qemu_reader())
		SKIP(return, "run-vm has no qemu-ccid reader");
	ASSERT_TRUE(wait_reader(node, sizeof(node), READER_WAIT_MS))
		TH_LOG("no /sys/class/usbmisc/ccid* bound to ccid");
	ASSERT_EQ(0, strncmp(node, "ccid", 4));

	strf(path, sizeof(path), "/sys/class/usbmisc/%s/device", node);
	driver_of(path, drv, sizeof(drv));
	ASSERT_STREQ("ccid", drv);
	ASSERT_EQ(USB_CLASS_CSCID, read_hex_attr(path, "bInterfaceClass"));
	ASSERT_EQ(0, read_hex_attr(path, "bInterfaceProtocol"));

	/* The node is a character device with the numbers sysfs gives. */
	strf(path, sizeof(path), "/sys/class/usbmisc/%s", node);
	ASSERT_LT(0, read_attr(path, "dev", buf, sizeof(buf)));
	ASSERT_EQ(2, sscanf(buf, "%u:%u", &maj, &min));
	ASSERT_EQ(USB_MAJOR, maj);
	strf(path, sizeof(path), "/dev/%s", node);
	ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s: %s", path, strerror(errno));
	ASSERT_TRUE(S_ISCHR(st.st_mode));
	ASSERT_EQ(USB_MAJOR, major(st.st_rdev));
	ASSERT_EQ(min, minor(st.st_rdev));
	strf(path, sizeof(path), "/sys/class/usbmisc/%s", node);
	ASSERT_LT(0, read_attr(path, "uevent", buf, sizeof(buf)));
}

static void expect_attr(struct __test_metadata *_metadata, const char *dir,
			const char *name, const char *want)
{
	char got[128], path[PATH_MAX];
	struct stat st;

	ASSERT_LT(0, read_attr(dir, name, got, sizeof(got)))
		TH_LOG("%s: cannot read", name);
	EXPECT_STREQ(want, got) TH_LOG("attribute %s", name);
	strf(path, sizeof(path), "%s/%s", dir, name);
	ASSERT_EQ(0, stat(path, &st));
	EXPECT_EQ(0444, st.st_mode & 07777) TH_LOG("%s mode %o", name,
						   st.st_mode & 07777);
}

TEST_F(ccid, sysfs_attributes)
{
	static const char * const levels[] = {
		"character", "tpdu", "short_apdu", "extended_apdu",
	};
	const uint8_t *d = self->desc;
	uint32_t protocols = le32(d + 6), features = le32(d + 40);
	uint32_t level = features & 0x70000;
	char want[128];
	int li;

	/* The descriptor was found where the spec puts it. */
	ASSERT_EQ(CCID_DESC_LEN, d[0]);
	ASSERT_EQ(CCID_DESC_TYPE, d[1]);

	strf(want, sizeof(want), "%x.%02x\n", self->bcd_device >> 8,
		 self->bcd_device & 0xff);
	expect_attr(_metadata, self->intf, "firmware_version", want);
	strf(want, sizeof(want), "%x.%02x\n", d[3], d[2]);
	expect_attr(_metadata, self->intf, "ccid_version", want);
	strf(want, sizeof(want), "%u\n", d[4] + 1);
	expect_attr(_metadata, self->intf, "slots", want);
	strf(want, sizeof(want), "%s%s%s\n",
		 protocols & 1 ? "T=0" : "",
		 (protocols & 3) == 3 ? " " : "",
		 protocols & 2 ? "T=1" : "");
	expect_attr(_metadata, self->intf, "protocols", want);
	li = level == 0 ? 0 : level == 0x10000 ? 1 : level == 0x20000 ? 2 : 3;
	strf(want, sizeof(want), "%s\n", levels[li]);
	expect_attr(_metadata, self->intf, "exchange_level", want);
	strf(want, sizeof(want), "%u\n", le32(d + 44));
	expect_attr(_metadata, self->intf, "max_message_length", want);
	strf(want, sizeof(want), "%s\n",
		 (d[52] & 3) == 3 ? "verify modify" : d[52] & 1 ? "verify" :
		 d[52] & 2 ? "modify" : "none");
	expect_attr(_metadata, self->intf, "pin_support", want);
	strf(want, sizeof(want), "0x%08x\n", features);
	expect_attr(_metadata, self->intf, "features", want);

	/* What the QEMU reader's descriptor is known to say */
	EXPECT_EQ(0x08e6, self->vid);
	EXPECT_EQ(0x4433, self->pid);
	EXPECT_EQ(0x0000, self->bcd_device);
	EXPECT_EQ(0x0110, le16(d + 2));
	EXPECT_EQ(0x10000, level) TH_LOG("QEMU reader: TPDU level");
}

TEST_F(ccid, sysfs_counters)
{
	static const char * const names[] = {
		"timeouts", "aborts", "stale_frames", "time_extensions",
		"protocol_errors",
	};
	regex_t re;
	size_t i;

	ASSERT_EQ(0, regcomp(&re, "^(0|[1-9][0-9]*)\n$", REG_EXTENDED));
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		char buf[64], path[PATH_MAX];
		struct stat st;

		ASSERT_LT(0, read_attr(self->intf, names[i], buf, sizeof(buf)))
			TH_LOG("%s", names[i]);
		EXPECT_EQ(0, regexec(&re, buf, 0, NULL, 0))
			TH_LOG("%s = '%s' is not a decimal number", names[i], buf);
		strf(path, sizeof(path), "%s/%s", self->intf, names[i]);
		ASSERT_EQ(0, stat(path, &st));
		EXPECT_EQ(0444, st.st_mode & 07777) TH_LOG("%s", names[i]);
	}
	regfree(&re);

	/* A plain exchange moves none of them. */
	{
		unsigned int before[ARRAY_SIZE(names)];

		for (i = 0; i < ARRAY_SIZE(names); i++)
			before[i] = counter(self, names[i]);
		ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
				    sw_61_0d, sizeof(sw_61_0d)));
		for (i = 0; i < ARRAY_SIZE(names); i++)
			EXPECT_EQ(before[i], counter(self, names[i]))
				TH_LOG("counter %zu moved", i);
	}
}

TEST_F(ccid, get_info)
{
	const uint8_t *d = self->desc;
	struct ccid_reader_info info;
	uint32_t max_msg = le32(d + 44);
	size_t i;

	/* Every byte is written: reserved ones come back zero. */
	memset(&info, 0xa5, sizeof(info));
	ASSERT_OK(do_ioctl(self->fd, CCID_IOC_GET_INFO, &info));
	EXPECT_EQ(self->vid, info.vendor_id);
	EXPECT_EQ(self->pid, info.product_id);
	EXPECT_EQ(self->bcd_device, info.bcd_device);
	EXPECT_EQ(le16(d + 2), info.bcd_ccid);
	EXPECT_EQ(d[4] + 1, info.num_slots);
	EXPECT_EQ(d[5], info.voltage_support);
	EXPECT_EQ(le32(d + 6), info.protocols);
	EXPECT_EQ(le32(d + 10), info.default_clock);
	EXPECT_EQ(le32(d + 14), info.max_clock);
	EXPECT_EQ(d[18], info.num_clocks);
	EXPECT_EQ(le32(d + 19), info.data_rate);
	EXPECT_EQ(le32(d + 23), info.max_data_rate);
	EXPECT_EQ(d[27], info.num_data_rates);
	EXPECT_EQ(le32(d + 28), info.max_ifsd);
	EXPECT_EQ(le32(d + 32), info.synch_protocols);
	EXPECT_EQ(le32(d + 36), info.mechanical);
	EXPECT_EQ(le32(d + 40), info.features);
	EXPECT_EQ(max_msg, info.max_message_length);
	EXPECT_EQ(max_msg < CCID_MAX_MSG ? max_msg : CCID_MAX_MSG,
		  info.buffer_length);
	EXPECT_EQ(d[48], info.class_get_response);
	EXPECT_EQ(d[49], info.class_envelope);
	EXPECT_EQ(le16(d + 50), info.lcd_layout);
	EXPECT_EQ(d[52], info.pin_support);
	EXPECT_EQ(d[53], info.max_busy_slots);
	EXPECT_EQ(CCID_LEVEL_TPDU, info.exchange_level);
	EXPECT_EQ(self->iface_class, info.interface_class);
	for (i = 0; i < ARRAY_SIZE(info.reserved); i++)
		EXPECT_EQ(0, info.reserved[i]) TH_LOG("reserved[%zu]", i);
	/* The tail padding too: the struct is memset before it is filled. */
	EXPECT_EQ(0, memcmp(&info, &self->info, sizeof(info)));
}

/* ------------------------------------------------------------------ */
/* Power, status, APDUs */

TEST_F(ccid, power_on_atr)
{
	struct ccid_power_on p, p2;
	struct ccid_slot_status st;
	uint8_t v;
	size_t i;

	ASSERT_OK(power_on(self->fd, CCID_VOLTAGE_AUTO, &p));
	EXPECT_EQ(CCID_ICC_ACTIVE, p.status);
	EXPECT_EQ(0, p.error);
	ASSERT_LE(2, p.atr_len);
	ASSERT_GE(CCID_MAX_ATR_SIZE, p.atr_len);
	EXPECT_EQ(0x3b, p.atr[0]) TH_LOG("TS must be 3B (direct convention)");
	EXPECT_EQ(atr_expected_len(p.atr, p.atr_len), p.atr_len)
		TH_LOG("ATR length does not match its T0/TDi structure");
	ASSERT_BYTES(cac_atr, sizeof(cac_atr), p.atr, p.atr_len);
	for (i = p.atr_len; i < CCID_MAX_ATR_SIZE; i++)
		EXPECT_EQ(0, p.atr[i]) TH_LOG("atr[%zu] beyond atr_len", i);

	/* Warm reset: same ATR, with every voltage class. */
	for (v = CCID_VOLTAGE_AUTO; v <= CCID_VOLTAGE_1_8V; v++) {
		ASSERT_OK(power_on(self->fd, v, &p2));
		ASSERT_BYTES(p.atr, p.atr_len, p2.atr, p2.atr_len);
	}

	ASSERT_OK(slot_cmd(self->fd, CCID_IOC_SLOT_STATUS, &st));
	EXPECT_EQ(CCID_ICC_ACTIVE, st.status & CCID_ICC_STATUS_MASK);
	EXPECT_EQ(CCID_CMD_STATUS_OK, st.status & CCID_CMD_STATUS_MASK);
	EXPECT_EQ(0, st.error);
	EXPECT_EQ(0, st.clock_status);
}

TEST_F(ccid, apdu_select_get_response)
{
	struct ccid_xfer x;
	uint8_t rx[300], gr[5] = { 0x00, 0xc0, 0x00, 0x00, 0x00 };

	ASSERT_OK(xfer(self->fd, CCID_IOC_XFR_BLOCK, select_cac,
		       sizeof(select_cac), rx, sizeof(rx), &x));
	ASSERT_BYTES(sw_61_0d, sizeof(sw_61_0d), rx, x.rx_len);
	EXPECT_EQ(0, x.status);
	EXPECT_EQ(0, x.error);
	EXPECT_EQ(0, x.chain);

	gr[4] = rx[1];
	ASSERT_OK(xfer(self->fd, CCID_IOC_XFR_BLOCK, gr, sizeof(gr), rx,
		       sizeof(rx), &x));
	ASSERT_EQ(gr[4] + 2u, x.rx_len);
	ASSERT_EQ(0x90, rx[x.rx_len - 2]);
	ASSERT_EQ(0x00, rx[x.rx_len - 1]);
	ASSERT_BYTES(cac_fci, sizeof(cac_fci), rx, x.rx_len);

	/* A shorter Le: the first 5 bytes, and 61 08 for the rest. */
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
	gr[4] = 5;
	ASSERT_OK(xfer(self->fd, CCID_IOC_XFR_BLOCK, gr, sizeof(gr), rx,
		       sizeof(rx), &x));
	{
		static const uint8_t want[] = {
			0x6f, 0x0b, 0x84, 0x07, 0xa0, 0x61, 0x08
		};

		ASSERT_BYTES(want, sizeof(want), rx, x.rx_len);
	}

	/* The rx buffer is written up to rx_len and no further. */
	memset(rx, 0xee, sizeof(rx));
	ASSERT_OK(xfer(self->fd, CCID_IOC_XFR_BLOCK, select_cac,
		       sizeof(select_cac), rx, sizeof(rx), &x));
	ASSERT_EQ(2, x.rx_len);
	ASSERT_EQ(0xee, rx[2]);
}

TEST_F(ccid, apdu_card_errors)
{
	struct ccid_xfer x;
	uint8_t rx[300];

	/* The exchange level is TPDU: the APDU goes to the card as it is. */
	ASSERT_EQ(CCID_LEVEL_TPDU, self->info.exchange_level);

	/* No such applet */
	ASSERT_OK(xfer(self->fd, CCID_IOC_XFR_BLOCK, select_unknown,
		       sizeof(select_unknown), rx, sizeof(rx), &x));
	ASSERT_BYTES(sw_6a_82, sizeof(sw_6a_82), rx, x.rx_len);
	EXPECT_EQ(0, x.status);
	EXPECT_EQ(0, x.error);

	/* Case 1 SELECT: no AID, no such applet either */
	ASSERT_OK(xfer(self->fd, CCID_IOC_XFR_BLOCK, select_case1,
		       sizeof(select_case1), rx, sizeof(rx), &x));
	ASSERT_BYTES(sw_6a_82, sizeof(sw_6a_82), rx, x.rx_len);

	/* Shorter than a header, and an Lc longer than the data: 67 00 */
	ASSERT_OK(xfer(self->fd, CCID_IOC_XFR_BLOCK, apdu_too_short,
		       sizeof(apdu_too_short), rx, sizeof(rx), &x));
	ASSERT_BYTES(sw_67_00, sizeof(sw_67_00), rx, x.rx_len);
	ASSERT_OK(xfer(self->fd, CCID_IOC_XFR_BLOCK, select_cac, 7, rx,
		       sizeof(rx), &x));
	ASSERT_BYTES(sw_67_00, sizeof(sw_67_00), rx, x.rx_len);

	/* bBWI is passed through; the reader ignores it at TPDU level. */
	memset(&x, 0, sizeof(x));
	x.bwi = 1;
	x.tx_buf = (uintptr_t)select_cac;
	x.tx_len = sizeof(select_cac);
	x.rx_buf = (uintptr_t)rx;
	x.rx_size = sizeof(rx);
	x.timeout_ms = 5000;
	ASSERT_OK(do_ioctl(self->fd, CCID_IOC_XFR_BLOCK, &x));
	ASSERT_BYTES(sw_61_0d, sizeof(sw_61_0d), rx, x.rx_len);

	/* And the card still works. */
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
}

TEST_F(ccid, power_off)
{
	struct ccid_slot_status st;
	struct ccid_power_on p;
	struct ccid_xfer x;
	uint8_t rx[300];
	int ret;

	ASSERT_OK(slot_cmd(self->fd, CCID_IOC_POWER_OFF, &st));
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status & CCID_ICC_STATUS_MASK);
	EXPECT_EQ(CCID_CMD_STATUS_OK, st.status & CCID_CMD_STATUS_MASK);
	EXPECT_EQ(0, st.error);

	ASSERT_OK(slot_cmd(self->fd, CCID_IOC_SLOT_STATUS, &st));
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status & CCID_ICC_STATUS_MASK);
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status);
	EXPECT_EQ(0, st.error);

	/* Powering off twice is not an error. */
	ASSERT_OK(slot_cmd(self->fd, CCID_IOC_POWER_OFF, &st));
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status);

	memset(rx, 0xee, sizeof(rx));
	ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, select_cac,
		   sizeof(select_cac), rx, sizeof(rx), &x);
	if (qemu_legacy()) {
		/* An empty DataBlock, no error, the card inactive */
		TH_LOG("QEMU %s: XfrBlock to an unpowered card: no ICC_MUTE",
		       qemu.text);
		ASSERT_OK(ret);
		EXPECT_EQ(0, x.rx_len);
		EXPECT_EQ(CCID_ICC_INACTIVE, x.status);
		EXPECT_EQ(0, x.error);
	} else {
		/* ICC_MUTE: -EIO, with the reader's words */
		ASSERT_EQ(-EIO, ret) TH_LOG("%s", errname(ret));
		EXPECT_EQ(CCID_CMD_STATUS_FAILED | CCID_ICC_INACTIVE, x.status);
		EXPECT_EQ(0xfe, x.error);
		EXPECT_EQ(0, x.rx_len);
	}
	EXPECT_EQ(0xee, rx[0]);

	/* Power on brings the card back. */
	ASSERT_OK(power_on(self->fd, CCID_VOLTAGE_AUTO, &p));
	ASSERT_BYTES(cac_atr, sizeof(cac_atr), p.atr, p.atr_len);
	ASSERT_OK(slot_cmd(self->fd, CCID_IOC_SLOT_STATUS, &st));
	EXPECT_EQ(CCID_ICC_ACTIVE, st.status);
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
}

/* ------------------------------------------------------------------ */
/* Parameters */

TEST_F(ccid, params)
{
	static const uint8_t t0[5] = { 0x11, 0x00, 0x00, 0x0a, 0x00 };
	unsigned int perr = counter(self, "protocol_errors");
	struct ccid_params p;
	int ret;
	size_t i;

	if (qemu_legacy()) {
		/*
		 * QEMU 7.2 sends RDR_to_PC_Parameters with dwLength 0 and
		 * 12 bytes after the header: a garbled frame, -EPROTO and
		 * one protocol error for each of the three commands.
		 */
		TH_LOG("QEMU %s: Parameters answers carry dwLength 0",
		       qemu.text);
		struct ccid_power_on po;

		ret = params_cmd(self->fd, CCID_IOC_GET_PARAMS, 0, NULL, 0, &p);
		ASSERT_EQ(-EPROTO, ret) TH_LOG("%s", errname(ret));
		ASSERT_EQ(perr + 1, counter(self, "protocol_errors"));
		/*
		 * A garbled answer makes the driver recover the reader and
		 * reset the slot: this file must acknowledge that first.
		 */
		ret = params_cmd(self->fd, CCID_IOC_SET_PARAMS, 0, t0,
				 sizeof(t0), &p);
		ASSERT_EQ(-ECONNRESET, ret) TH_LOG("%s", errname(ret));
		ASSERT_OK(power_on(self->fd, CCID_VOLTAGE_AUTO, &po));
		ret = params_cmd(self->fd, CCID_IOC_SET_PARAMS, 0, t0,
				 sizeof(t0), &p);
		ASSERT_EQ(-EPROTO, ret) TH_LOG("%s", errname(ret));
		ASSERT_EQ(perr + 2, counter(self, "protocol_errors"));
		ASSERT_OK(power_on(self->fd, CCID_VOLTAGE_AUTO, &po));
		ret = params_cmd(self->fd, CCID_IOC_RESET_PARAMS, 0, NULL, 0,
				 &p);
		ASSERT_EQ(-EPROTO, ret) TH_LOG("%s", errname(ret));
		ASSERT_EQ(perr + 3, counter(self, "protocol_errors"));
		/* The reader is still in step. */
		ASSERT_OK(power_on(self->fd, CCID_VOLTAGE_AUTO, &po));
		ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
				    sw_61_0d, sizeof(sw_61_0d)));
		return;
	}

	/* After a power on, the reader has T=0 parameters from the ATR. */
	memset(&p, 0xa5, sizeof(p));
	p.slot = 0;
	p.timeout_ms = 0;
	p.reserved0 = 0;
	memset(p.reserved, 0, sizeof(p.reserved));
	ASSERT_OK(do_ioctl(self->fd, CCID_IOC_GET_PARAMS, &p));
	EXPECT_EQ(0, p.protocol);
	EXPECT_EQ(5, p.len);
	EXPECT_EQ(CCID_ICC_ACTIVE, p.status);
	EXPECT_EQ(0, p.error);
	for (i = p.len; i < sizeof(p.data); i++)
		EXPECT_EQ(0, p.data[i]) TH_LOG("data[%zu] beyond len", i);

	ASSERT_OK(params_cmd(self->fd, CCID_IOC_SET_PARAMS, 0, t0, sizeof(t0),
			     &p));
	EXPECT_EQ(0, p.protocol);
	ASSERT_EQ(5, p.len);
	ASSERT_BYTES(t0, sizeof(t0), p.data, p.len);
	ASSERT_OK(params_cmd(self->fd, CCID_IOC_GET_PARAMS, 0, NULL, 0, &p));
	ASSERT_BYTES(t0, sizeof(t0), p.data, p.len);

	ASSERT_OK(params_cmd(self->fd, CCID_IOC_RESET_PARAMS, 0, NULL, 0, &p));
	EXPECT_EQ(0, p.protocol);
	EXPECT_EQ(5, p.len);
	EXPECT_EQ(perr, counter(self, "protocol_errors"));
}

TEST_F(ccid, params_bad)
{
	static const uint8_t data[CCID_MAX_PARAMS_SIZE];
	static const struct {
		uint8_t protocol;
		uint32_t len;
	} bad[] = {
		{ 0, 0 }, { 0, 4 }, { 0, 6 }, { 0, 7 }, { 0, 32 }, { 0, 33 },
		{ 0, UINT32_MAX }, { 1, 0 }, { 1, 5 }, { 1, 6 }, { 1, 8 },
		{ 1, UINT32_MAX }, { 2, 5 }, { 2, 7 }, { 3, 5 }, { 0x80, 5 },
		{ 0xff, 7 },
	};
	unsigned int perr = counter(self, "protocol_errors");
	struct ccid_params p;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret;

		memset(&p, 0, sizeof(p));
		p.protocol = bad[i].protocol;
		p.len = bad[i].len;
		memcpy(p.data, data, sizeof(p.data));
		ret = do_ioctl(self->fd, CCID_IOC_SET_PARAMS, &p);
		EXPECT_EQ(-EINVAL, ret) TH_LOG("T=%u, %u bytes: %s",
					       bad[i].protocol, bad[i].len,
					       errname(ret));
	}
	/* Nothing reached the reader. */
	EXPECT_EQ(perr, counter(self, "protocol_errors"));
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
}

/* ------------------------------------------------------------------ */
/* Secure */

TEST_F(ccid, secure_verify_not_supported)
{
	unsigned int perr = counter(self, "protocol_errors");
	struct ccid_xfer x;
	uint8_t rx[300], blk[64];
	int ret;

	/* QEMU's descriptor offers PIN verification, not modification. */
	ASSERT_EQ(CCID_PIN_VERIFY, self->desc[52]);

	memset(rx, 0xee, sizeof(rx));
	ret = xfer(self->fd, CCID_IOC_SECURE, verify_blk, sizeof(verify_blk),
		   rx, sizeof(rx), &x);
	ASSERT_EQ(-EOPNOTSUPP, ret) TH_LOG("%s (dmesg has the reason)",
					   errname(ret));
	EXPECT_EQ(CCID_CMD_STATUS_FAILED | CCID_ICC_ACTIVE, x.status);
	EXPECT_EQ(0x00, x.error);
	EXPECT_EQ(0, x.rx_len);
	EXPECT_EQ(0xee, rx[0]);

	/*
	 * A case 3 VERIFY with a 4-byte PIN block inside its data, and a
	 * PIN timeout: well formed too, so the reader gets it.
	 */
	memcpy(blk, verify_blk, sizeof(verify_blk));
	blk[1] = 30;
	blk[3] = 0x04;
	memcpy(blk + 15, (const uint8_t []){ 0x00, 0x20, 0x00, 0x82, 0x04,
					     0xff, 0xff, 0xff, 0xff }, 9);
	ret = xfer(self->fd, CCID_IOC_SECURE, blk, 24, rx, sizeof(rx), &x);
	ASSERT_EQ(-EOPNOTSUPP, ret) TH_LOG("%s", errname(ret));
	EXPECT_EQ(CCID_CMD_STATUS_FAILED | CCID_ICC_ACTIVE, x.status);
	EXPECT_EQ(0x00, x.error);

	EXPECT_EQ(perr, counter(self, "protocol_errors"));
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
}

TEST_F(ccid, secure_modify_not_supported)
{
	struct ccid_xfer x;
	uint8_t rx[300];
	int ret;

	ASSERT_EQ(0, self->desc[52] & CCID_PIN_MODIFY);
	/* The driver refuses it itself: the words stay zero. */
	ret = xfer(self->fd, CCID_IOC_SECURE, modify_blk, sizeof(modify_blk),
		   rx, sizeof(rx), &x);
	ASSERT_EQ(-EOPNOTSUPP, ret) TH_LOG("%s", errname(ret));
	EXPECT_EQ(0, x.status);
	EXPECT_EQ(0, x.error);
	/* So is a malformed modify block: the operation is checked first. */
	ret = xfer(self->fd, CCID_IOC_SECURE, modify_blk, 2, rx, sizeof(rx),
		   &x);
	ASSERT_EQ(-EOPNOTSUPP, ret) TH_LOG("%s", errname(ret));
}

TEST_F(ccid, secure_malformed)
{
	struct {
		const char *what;
		int off;	/* byte to change, -1: none */
		uint8_t val;
		size_t len;	/* 0: sizeof(verify_blk) */
		const uint8_t *apdu;	/* replaces the APDU */
		size_t apdu_len;
		int err;
	} cases[] = {
		{ "one byte", -1, 0, 1, NULL, 0, EINVAL },
		{ "verify structure truncated", -1, 0, 14, NULL, 0, EINVAL },
		{ "reserved PIN format", 2, 0x83, 0, NULL, 0, EINVAL },
		{ "min above max", 6, 0x1a, 0, NULL, 0, EINVAL },
		{ "entry condition 0", 7, 0x00, 0, NULL, 0, EINVAL },
		{ "entry condition 0x08", 7, 0x08, 0, NULL, 0, EINVAL },
		{ "entry condition 0x82", 7, 0x82, 0, NULL, 0, EINVAL },
		{ "APDU of 3 bytes", -1, 0, 18, NULL, 0, EINVAL },
		{ "Lc 8, 4 bytes of data", -1, 0, 0,
		  (const uint8_t []){ 0x00, 0x20, 0x00, 0x82, 0x08, 1, 2, 3, 4 },
		  9, EINVAL },
		{ "Lc 2, 8 bytes of data", -1, 0, 0,
		  (const uint8_t []){ 0x00, 0x20, 0x00, 0x82, 0x02, 1, 2, 3, 4,
				      5, 6, 7, 8 }, 13, EINVAL },
		/* bmPINBlockString: 8-byte PIN block in 4 bytes of data */
		{ "PIN block outside the data", 3, 0x08, 0,
		  (const uint8_t []){ 0x00, 0x20, 0x00, 0x82, 0x04, 0xff, 0xff,
				      0xff, 0xff }, 9, EINVAL },
		{ "bPINOperation 2 (transfer)", 0, 0x02, 0, NULL, 0, EOPNOTSUPP },
		{ "bPINOperation 4 (cancel)", 0, 0x04, 0, NULL, 0, EOPNOTSUPP },
		{ "bPINOperation 0xff", 0, 0xff, 0, NULL, 0, EOPNOTSUPP },
	};
	unsigned int perr = counter(self, "protocol_errors");
	struct ccid_xfer x;
	uint8_t blk[64], rx[64];
	size_t i;
	int ret;

	/* No block at all */
	ret = xfer(self->fd, CCID_IOC_SECURE, verify_blk, 0, rx, sizeof(rx),
		   &x);
	EXPECT_EQ(-EINVAL, ret) TH_LOG("empty block: %s", errname(ret));

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len = cases[i].len ?: sizeof(verify_blk);

		memcpy(blk, verify_blk, sizeof(verify_blk));
		if (cases[i].apdu) {
			memcpy(blk + 15, cases[i].apdu, cases[i].apdu_len);
			len = 15 + cases[i].apdu_len;
		}
		if (cases[i].off >= 0)
			blk[cases[i].off] = cases[i].val;
		ret = xfer(self->fd, CCID_IOC_SECURE, blk, len, rx, sizeof(rx),
			   &x);
		EXPECT_EQ(-cases[i].err, ret) TH_LOG("%s: %s, expected %s",
			cases[i].what, errname(ret), errname(cases[i].err));
		EXPECT_EQ(0, x.status) TH_LOG("%s: reached the reader",
					      cases[i].what);
	}

	EXPECT_EQ(perr, counter(self, "protocol_errors"));
}

/* ------------------------------------------------------------------ */
/* Escape */

/* In a child: drop CAP_SYS_ADMIN from the effective set */
static int drop_sys_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -errno;
	d[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

/*
 * What an unprivileged process holding the open fd gets: byte 0 is the
 * errno of Escape, byte 1 that of GetSlotStatus.
 */
static int unprivileged(int fd, bool setuid_nobody, int *escape_err,
			int *status_err)
{
	int pipefd[2], st;
	pid_t pid;
	int res[2] = { -1, -1 };

	if (pipe(pipefd))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		struct ccid_slot_status s;
		struct ccid_xfer x;
		uint8_t rx[64];

		close(pipefd[0]);
		if (setuid_nobody ? setresuid(65534, 65534, 65534) :
				    drop_sys_admin())
			_exit(1);
		res[0] = -xfer(fd, CCID_IOC_ESCAPE, escape_data,
			       sizeof(escape_data), rx, sizeof(rx), &x);
		res[1] = -slot_cmd(fd, CCID_IOC_SLOT_STATUS, &s);
		if (write(pipefd[1], res, sizeof(res)) != sizeof(res))
			_exit(1);
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], res, sizeof(res)) != sizeof(res))
		res[0] = res[1] = -1;
	close(pipefd[0]);
	waitpid(pid, &st, 0);
	*escape_err = res[0];
	*status_err = res[1];
	return WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -ECHILD;
}

TEST_F(ccid, escape_needs_cap_sys_admin)
{
	int esc, status;

	/* Root without CAP_SYS_ADMIN */
	ASSERT_OK(unprivileged(self->fd, false, &esc, &status));
	EXPECT_EQ(EPERM, esc) TH_LOG("escape: %s", errname(esc));
	EXPECT_EQ(0, status) TH_LOG("status: %s", errname(status));

	/* Another user, with the fd root opened */
	ASSERT_OK(unprivileged(self->fd, true, &esc, &status));
	EXPECT_EQ(EPERM, esc) TH_LOG("escape: %s", errname(esc));
	EXPECT_EQ(0, status) TH_LOG("status: %s", errname(status));
}

TEST_F(ccid, escape_root)
{
	unsigned int perr = counter(self, "protocol_errors");
	struct ccid_xfer x;
	uint8_t rx[300];
	int ret;

	memset(rx, 0xee, sizeof(rx));
	ret = xfer(self->fd, CCID_IOC_ESCAPE, escape_data, sizeof(escape_data),
		   rx, sizeof(rx), &x);
	ASSERT_EQ(-EOPNOTSUPP, ret) TH_LOG("%s (dmesg has the reason)",
					   errname(ret));
	EXPECT_EQ(CCID_CMD_STATUS_FAILED | CCID_ICC_ACTIVE, x.status);
	EXPECT_EQ(0x00, x.error);
	EXPECT_EQ(0, x.rx_len);
	EXPECT_EQ(0xee, rx[0]);

	/* An empty escape command */
	ret = xfer(self->fd, CCID_IOC_ESCAPE, NULL, 0, rx, sizeof(rx), &x);
	ASSERT_EQ(-EOPNOTSUPP, ret) TH_LOG("%s", errname(ret));
	EXPECT_EQ(perr, counter(self, "protocol_errors"));
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
}

TEST_F(ccid, escape_bwi_level)
{
	struct ccid_xfer x;
	uint8_t rx[64];
	unsigned int i;
	static const struct {
		uint8_t bwi;
		uint16_t level;
	} bad[] = { { 1, 0 }, { 0xff, 0 }, { 0, 1 }, { 0, 0x0100 },
		    { 0, 0x10 }, { 1, 1 } };

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret;

		memset(&x, 0, sizeof(x));
		x.bwi = bad[i].bwi;
		x.level = bad[i].level;
		x.tx_buf = (uintptr_t)escape_data;
		x.tx_len = sizeof(escape_data);
		x.rx_buf = (uintptr_t)rx;
		x.rx_size = sizeof(rx);
		ret = do_ioctl(self->fd, CCID_IOC_ESCAPE, &x);
		EXPECT_EQ(-EINVAL, ret) TH_LOG("bwi %u level %u: %s",
					       bad[i].bwi, bad[i].level,
					       errname(ret));
		EXPECT_EQ(0, x.status);
	}
}

/* ------------------------------------------------------------------ */
/* Argument checks */

union ccid_arg {
	struct ccid_power_on on;
	struct ccid_slot_status st;
	struct ccid_xfer x;
	struct ccid_params p;
	struct ccid_abort ab;
	struct ccid_reader_info info;
	uint8_t raw[256];
};

enum arg_kind { K_ON, K_ST, K_X, K_P, K_AB };

static const struct slot_ioctl {
	const char *name;
	unsigned long req;
	enum arg_kind kind;
} slot_ioctls[] = {
	{ "POWER_ON", CCID_IOC_POWER_ON, K_ON },
	{ "POWER_OFF", CCID_IOC_POWER_OFF, K_ST },
	{ "SLOT_STATUS", CCID_IOC_SLOT_STATUS, K_ST },
	{ "XFR_BLOCK", CCID_IOC_XFR_BLOCK, K_X },
	{ "SECURE", CCID_IOC_SECURE, K_X },
	{ "ESCAPE", CCID_IOC_ESCAPE, K_X },
	{ "GET_PARAMS", CCID_IOC_GET_PARAMS, K_P },
	{ "SET_PARAMS", CCID_IOC_SET_PARAMS, K_P },
	{ "RESET_PARAMS", CCID_IOC_RESET_PARAMS, K_P },
	{ "ABORT", CCID_IOC_ABORT, K_AB },
};

static uint8_t valid_rx[512];

/* An argument that the driver accepts for @io: only one thing is wrong */
static void valid_arg(const struct slot_ioctl *io, union ccid_arg *a)
{
	static const uint8_t t0[5];

	memset(a, 0, sizeof(*a));
	switch (io->kind) {
	case K_X:
		if (io->req == CCID_IOC_SECURE) {
			a->x.tx_buf = (uintptr_t)verify_blk;
			a->x.tx_len = sizeof(verify_blk);
		} else if (io->req == CCID_IOC_ESCAPE) {
			a->x.tx_buf = (uintptr_t)escape_data;
			a->x.tx_len = sizeof(escape_data);
		} else {
			a->x.tx_buf = (uintptr_t)select_cac;
			a->x.tx_len = sizeof(select_cac);
		}
		a->x.rx_buf = (uintptr_t)valid_rx;
		a->x.rx_size = sizeof(valid_rx);
		break;
	case K_P:
		if (io->req == CCID_IOC_SET_PARAMS) {
			a->p.len = sizeof(t0);
			memcpy(a->p.data, t0, sizeof(t0));
		}
		break;
	default:
		break;
	}
}

static uint8_t *slot_of(const struct slot_ioctl *io, union ccid_arg *a)
{
	switch (io->kind) {
	case K_ON: return &a->on.slot;
	case K_ST: return &a->st.slot;
	case K_X: return &a->x.slot;
	case K_P: return &a->p.slot;
	default: return &a->ab.slot;
	}
}

TEST_F(ccid, bad_slot)
{
	unsigned int perr = counter(self, "protocol_errors");
	const uint8_t slots[] = { self->desc[4] + 1, 2, 15, 16, 0x80, 255 };
	union ccid_arg a;
	size_t i, j;

	ASSERT_EQ(1, self->info.num_slots);
	for (i = 0; i < ARRAY_SIZE(slot_ioctls); i++) {
		for (j = 0; j < ARRAY_SIZE(slots); j++) {
			int ret;

			valid_arg(&slot_ioctls[i], &a);
			*slot_of(&slot_ioctls[i], &a) = slots[j];
			ret = do_ioctl(self->fd, slot_ioctls[i].req, &a);
			EXPECT_EQ(-EINVAL, ret) TH_LOG("%s slot %u: %s",
				slot_ioctls[i].name, slots[j], errname(ret));
		}
	}
	EXPECT_EQ(perr, counter(self, "protocol_errors"));
	/* Abort of the one slot there is, idle: fine */
	valid_arg(&slot_ioctls[9], &a);
	ASSERT_OK(do_ioctl(self->fd, CCID_IOC_ABORT, &a));
}

/* Every reserved field of every structure must be zero. */
TEST_F(ccid, reserved_fields)
{
	static const struct {
		enum arg_kind kind;
		size_t off, size;
		const char *name;
	} fields[] = {
#define F(k, type, field) { k, offsetof(type, field),			\
			    sizeof(((type *)0)->field), #type "." #field }
		F(K_ON, struct ccid_power_on, reserved0),
		F(K_ON, struct ccid_power_on, reserved[0]),
		F(K_ON, struct ccid_power_on, reserved[1]),
		F(K_ST, struct ccid_slot_status, reserved[0]),
		F(K_ST, struct ccid_slot_status, reserved[1]),
		F(K_X, struct ccid_xfer, reserved0),
		F(K_X, struct ccid_xfer, reserved[0]),
		F(K_X, struct ccid_xfer, reserved[1]),
		F(K_X, struct ccid_xfer, reserved[2]),
		F(K_P, struct ccid_params, reserved0),
		F(K_P, struct ccid_params, reserved[0]),
		F(K_P, struct ccid_params, reserved[1]),
		F(K_AB, struct ccid_abort, reserved[0]),
		F(K_AB, struct ccid_abort, reserved[1]),
		F(K_AB, struct ccid_abort, reserved[2]),
		F(K_AB, struct ccid_abort, reserved[3]),
		F(K_AB, struct ccid_abort, reserved[4]),
		F(K_AB, struct ccid_abort, reserved[5]),
		F(K_AB, struct ccid_abort, reserved[6]),
#undef F
	};
	unsigned int perr = counter(self, "protocol_errors");
	union ccid_arg a;
	size_t i, j, b;

	for (i = 0; i < ARRAY_SIZE(fields); i++) {
		for (j = 0; j < ARRAY_SIZE(slot_ioctls); j++) {
			if (slot_ioctls[j].kind != fields[i].kind)
				continue;
			/* Its first byte, its last byte, then all bits */
			for (b = 0; b < 3; b++) {
				size_t at = fields[i].off +
					    (b == 1 ? fields[i].size - 1 : 0);
				int ret;

				valid_arg(&slot_ioctls[j], &a);
				if (b == 2)
					memset(a.raw + fields[i].off, 0xff,
					       fields[i].size);
				else
					a.raw[at] = b ? 0x80 : 0x01;
				ret = do_ioctl(self->fd, slot_ioctls[j].req, &a);
				EXPECT_EQ(-EINVAL, ret) TH_LOG("%s %s (%zu): %s",
					slot_ioctls[j].name, fields[i].name, b,
					errname(ret));
			}
		}
	}
	EXPECT_EQ(perr, counter(self, "protocol_errors"));
}

TEST_F(ccid, bad_voltage)
{
	struct ccid_power_on p;
	unsigned int v;

	for (v = CCID_VOLTAGE_1_8V + 1; v <= 0xff; v++) {
		int ret;

		memset(&p, 0, sizeof(p));
		p.voltage = v;
		ret = do_ioctl(self->fd, CCID_IOC_POWER_ON, &p);
		EXPECT_EQ(-EINVAL, ret) TH_LOG("voltage %u: %s", v,
					       errname(ret));
		EXPECT_EQ(0, p.atr_len);
		if (ret != -EINVAL)
			break;
	}
}

static void *map_page(int prot)
{
	void *p = mmap(NULL, getpagesize(), prot, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

TEST_F(ccid, tx_too_long)
{
	uint32_t max = self->info.buffer_length - CCID_HDR;
	static const unsigned long reqs[] = {
		CCID_IOC_XFR_BLOCK, CCID_IOC_SECURE, CCID_IOC_ESCAPE,
	};
	struct ccid_xfer x;
	uint8_t *big, rx[64];
	size_t i;
	int ret;

	ASSERT_LT(CCID_HDR, self->info.buffer_length);
	big = calloc(1, max + 2);
	ASSERT_NE(NULL, big);
	for (i = 0; i < ARRAY_SIZE(reqs); i++) {
		ret = xfer(self->fd, reqs[i], big, max + 1, rx, sizeof(rx), &x);
		EXPECT_EQ(-EMSGSIZE, ret) TH_LOG("%lx, %u bytes: %s", reqs[i],
						 max + 1, errname(ret));
		ret = xfer(self->fd, reqs[i], big, UINT32_MAX, rx, sizeof(rx),
			   &x);
		EXPECT_EQ(-EMSGSIZE, ret) TH_LOG("%lx, 4 GiB: %s", reqs[i],
						 errname(ret));
		/*
		 * Exactly the limit passes the size check: with a kernel
		 * address it fails on that instead, before any I/O.
		 */
		ret = xfer(self->fd, reqs[i], (void *)(uintptr_t)KERNEL_PTR,
			   max, rx, sizeof(rx), &x);
		EXPECT_EQ(-EFAULT, ret) TH_LOG("%lx, %u bytes: %s", reqs[i],
					       max, errname(ret));
	}
	free(big);
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
}

TEST_F(ccid, rx_too_small)
{
	uint8_t rx[300], gr[5] = { 0x00, 0xc0, 0x00, 0x00, 0x0d };
	struct ccid_xfer x;
	int ret;

	/* One byte short of the two status bytes */
	memset(rx, 0xee, sizeof(rx));
	ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, select_cac,
		   sizeof(select_cac), rx, 1, &x);
	ASSERT_EQ(-EOVERFLOW, ret) TH_LOG("%s", errname(ret));
	EXPECT_EQ(2, x.rx_len);
	EXPECT_EQ(0, x.status);
	EXPECT_EQ(0, x.error);
	EXPECT_EQ(0xee, rx[0]) TH_LOG("rx written on EOVERFLOW");

	/* No room at all */
	ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, select_cac,
		   sizeof(select_cac), NULL, 0, &x);
	ASSERT_EQ(-EOVERFLOW, ret) TH_LOG("%s", errname(ret));
	EXPECT_EQ(2, x.rx_len);

	/* 13 bytes + 90 00 into 14 */
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
	ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, gr, sizeof(gr), rx,
		   sizeof(cac_fci) - 1, &x);
	ASSERT_EQ(-EOVERFLOW, ret) TH_LOG("%s", errname(ret));
	EXPECT_EQ(sizeof(cac_fci), x.rx_len);
	EXPECT_EQ(0xee, rx[0]);

	/* Exactly enough */
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
	ASSERT_OK(xfer(self->fd, CCID_IOC_XFR_BLOCK, gr, sizeof(gr), rx,
		       sizeof(cac_fci), &x));
	ASSERT_BYTES(cac_fci, sizeof(cac_fci), rx, x.rx_len);
}

TEST_F(ccid, bad_buffers)
{
	uint8_t *none = map_page(PROT_NONE), *ro = map_page(PROT_READ);
	void *kptr = (void *)(uintptr_t)KERNEL_PTR;
	struct ccid_xfer x;
	uint8_t rx[300];
	int ret;

	ASSERT_NE(NULL, none);
	ASSERT_NE(NULL, ro);

	/* tx: unmapped, kernel, NULL */
	ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, none, sizeof(select_cac), rx,
		   sizeof(rx), &x);
	EXPECT_EQ(-EFAULT, ret) TH_LOG("tx PROT_NONE: %s", errname(ret));
	ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, kptr, sizeof(select_cac), rx,
		   sizeof(rx), &x);
	EXPECT_EQ(-EFAULT, ret) TH_LOG("tx kernel: %s", errname(ret));
	ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, NULL, sizeof(select_cac), rx,
		   sizeof(rx), &x);
	EXPECT_EQ(-EFAULT, ret) TH_LOG("tx NULL: %s", errname(ret));
	ret = xfer(self->fd, CCID_IOC_SECURE, none, sizeof(verify_blk), rx,
		   sizeof(rx), &x);
	EXPECT_EQ(-EFAULT, ret) TH_LOG("secure PROT_NONE: %s", errname(ret));
	ret = xfer(self->fd, CCID_IOC_ESCAPE, kptr, 2, rx, sizeof(rx), &x);
	EXPECT_EQ(-EFAULT, ret) TH_LOG("escape kernel: %s", errname(ret));

	/* rx: kernel (refused before any I/O), read-only, unmapped */
	ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, select_cac,
		   sizeof(select_cac), kptr, 258, &x);
	EXPECT_EQ(-EFAULT, ret) TH_LOG("rx kernel: %s", errname(ret));
	ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, select_cac,
		   sizeof(select_cac), ro, 258, &x);
	EXPECT_EQ(-EFAULT, ret) TH_LOG("rx PROT_READ: %s", errname(ret));
	ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, select_cac,
		   sizeof(select_cac), none, 258, &x);
	EXPECT_EQ(-EFAULT, ret) TH_LOG("rx PROT_NONE: %s", errname(ret));

	/* A tx buffer that runs into an unmapped page */
	{
		size_t pg = getpagesize();
		uint8_t *two = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		ASSERT_NE(MAP_FAILED, two);
		ASSERT_EQ(0, mprotect(two + pg, pg, PROT_NONE));
		memcpy(two + pg - 4, select_cac, 4);
		ret = xfer(self->fd, CCID_IOC_XFR_BLOCK, two + pg - 4,
			   sizeof(select_cac), rx, sizeof(rx), &x);
		EXPECT_EQ(-EFAULT, ret) TH_LOG("tx across: %s", errname(ret));
		munmap(two, 2 * pg);
	}

	munmap(none, getpagesize());
	munmap(ro, getpagesize());
	/* The reader is still in step. */
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
}

TEST_F(ccid, bad_arg_pointer)
{
	static const unsigned long reqs[] = {
		CCID_IOC_GET_INFO, CCID_IOC_POWER_ON, CCID_IOC_POWER_OFF,
		CCID_IOC_SLOT_STATUS, CCID_IOC_XFR_BLOCK, CCID_IOC_SECURE,
		CCID_IOC_ESCAPE, CCID_IOC_GET_PARAMS, CCID_IOC_SET_PARAMS,
		CCID_IOC_RESET_PARAMS, CCID_IOC_ABORT,
	};
	size_t pg = getpagesize();
	uint8_t *none = map_page(PROT_NONE), *ro, *two;
	struct ccid_slot_status *st;
	struct ccid_reader_info *info;
	size_t i;

	ASSERT_NE(NULL, none);
	for (i = 0; i < ARRAY_SIZE(reqs); i++) {
		EXPECT_IOCTL_ERR(EFAULT, self->fd, reqs[i], NULL);
		EXPECT_IOCTL_ERR(EFAULT, self->fd, reqs[i], none);
		EXPECT_IOCTL_ERR(EFAULT, self->fd, reqs[i],
				 (void *)(uintptr_t)KERNEL_PTR);
		EXPECT_IOCTL_ERR(EFAULT, self->fd, reqs[i], (void *)1);
	}

	/* A structure that runs into an unmapped page */
	two = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, two);
	ASSERT_EQ(0, mprotect(two + pg, pg, PROT_NONE));
	st = (void *)(two + pg - sizeof(*st) + 4);
	EXPECT_IOCTL_ERR(EFAULT, self->fd, CCID_IOC_SLOT_STATUS, st);
	info = (void *)(two + pg - sizeof(*info) + 8);
	EXPECT_IOCTL_ERR(EFAULT, self->fd, CCID_IOC_GET_INFO, info);

	/*
	 * A read-only structure: read, the command runs, the answer
	 * cannot be written back.
	 */
	ro = mmap(NULL, pg, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_EQ(0, mprotect(ro, pg, PROT_READ));
	EXPECT_IOCTL_ERR(EFAULT, self->fd, CCID_IOC_SLOT_STATUS, ro);
	EXPECT_IOCTL_ERR(EFAULT, self->fd, CCID_IOC_POWER_ON, ro);
	EXPECT_IOCTL_ERR(EFAULT, self->fd, CCID_IOC_GET_INFO, ro);
	munmap(ro, pg);
	munmap(two, 2 * pg);
	munmap(none, pg);

	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
}

TEST_F(ccid, unknown_ioctl)
{
	static const struct {
		const char *what;
		unsigned long req;
	} reqs[] = {
		{ "wrong magic", _IOR(0xc2, 0x00, struct ccid_reader_info) },
		{ "wrong magic", _IOWR('U', 0x04, struct ccid_xfer) },
		{ "nr 0x0b", _IOWR(CCID_IOC_MAGIC, 0x0b, struct ccid_xfer) },
		{ "nr 0x0b", _IOW(CCID_IOC_MAGIC, 0x0b, struct ccid_abort) },
		{ "nr 0xff", _IOWR(CCID_IOC_MAGIC, 0xff, struct ccid_xfer) },
		{ "size", _IOR(CCID_IOC_MAGIC, 0x00, __u32) },
		{ "size", _IOWR(CCID_IOC_MAGIC, 0x01, struct ccid_slot_status) },
		{ "size", _IOWR(CCID_IOC_MAGIC, 0x04, struct ccid_slot_status) },
		{ "size", _IOWR(CCID_IOC_MAGIC, 0x06, struct ccid_slot_status) },
		{ "size", _IOWR(CCID_IOC_MAGIC, 0x09, struct ccid_power_on) },
		{ "size", _IOW(CCID_IOC_MAGIC, 0x0a, __u64[2]) },
		{ "direction", _IOW(CCID_IOC_MAGIC, 0x00, struct ccid_reader_info) },
		{ "direction", _IOR(CCID_IOC_MAGIC, 0x04, struct ccid_xfer) },
		{ "direction", _IOWR(CCID_IOC_MAGIC, 0x0a, struct ccid_abort) },
		{ "no argument", _IO(CCID_IOC_MAGIC, 0x03) },
		{ "zero", 0 },
		{ "TCGETS", 0x5401 },
		{ "FIONREAD", FIONREAD },
	};
	static uint8_t buf[4096];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(reqs); i++) {
		int ret = do_ioctl(self->fd, reqs[i].req, buf);

		EXPECT_EQ(-ENOTTY, ret) TH_LOG("%s (%#lx): %s", reqs[i].what,
					       reqs[i].req, errname(ret));
	}
}

TEST_F(ccid, abort)
{
	unsigned int aborts = counter(self, "aborts");
	struct ccid_abort a;
	size_t i;

	memset(&a, 0, sizeof(a));
	ASSERT_OK(do_ioctl(self->fd, CCID_IOC_ABORT, &a));
	/* Twice: still nothing to abort */
	ASSERT_OK(do_ioctl(self->fd, CCID_IOC_ABORT, &a));
	a.slot = 1;
	EXPECT_IOCTL_ERR(EINVAL, self->fd, CCID_IOC_ABORT, &a);
	a.slot = 255;
	EXPECT_IOCTL_ERR(EINVAL, self->fd, CCID_IOC_ABORT, &a);
	for (i = 0; i < sizeof(a.reserved); i++) {
		memset(&a, 0, sizeof(a));
		a.reserved[i] = 1;
		EXPECT_IOCTL_ERR(EINVAL, self->fd, CCID_IOC_ABORT, &a);
	}
	/* Nothing was aborted in the reader. */
	EXPECT_EQ(aborts, counter(self, "aborts"));
	ASSERT_TRUE(apdu_is(self->fd, select_cac, sizeof(select_cac),
			    sw_61_0d, sizeof(sw_61_0d)));
}

/* ------------------------------------------------------------------ */
/* Concurrency */

#define ITERATIONS	300
/*
 * QEMU's ccid-card-emulated waits for APDUs on a condition variable with
 * no predicate: an APDU that arrives while its thread is between two
 * waits is left in the queue until the next one comes (a lost wake-up).
 * Back-to-back commands from several processes hit that now and then; the
 * driver then times out, aborts, and drops the late answer as stale when
 * it finally comes.  Keep the per-command timeout short so that this costs
 * little, count those timeouts apart, and check that the driver's
 * counters tell the same story.
 */
#define EXCHANGE_TIMEOUT_MS	2000
/* At most this many of the lost wake-ups, per worker */
#define MAX_LOST		(ITERATIONS / 20)

struct exchange {
	const char *name;
	const uint8_t *apdu;	/* NULL: GetSlotStatus */
	size_t len;
	const uint8_t *want;
	size_t want_len;
};

static const struct exchange exchanges[] = {
	{ "SELECT CAC", select_cac, sizeof(select_cac), sw_61_0d, 2 },
	{ "SELECT unknown", select_unknown, sizeof(select_unknown), sw_6a_82, 2 },
	{ "short APDU", apdu_too_short, sizeof(apdu_too_short), sw_67_00, 2 },
	{ "GetSlotStatus", NULL, 0, NULL, 0 },
};

struct tally {
	unsigned int done, mismatches, timeouts, errors, resets;
	unsigned int lag_resets;	/* EIO: QEMU out of step, reset */
	int first_err;
	char first_bad[64];
	uint8_t status;		/* bStatus of the last answer */
	uint32_t rx_len;	/* its length */
};

/*
 * One exchange: 0 when it got its own answer, 1 for someone else's,
 * -errno when it failed.
 */
static int run_exchange(int fd, const struct exchange *e, struct tally *t)
{
	struct ccid_slot_status st;
	struct ccid_xfer x;
	uint8_t rx[300];
	int ret;

	if (e->apdu) {
		memset(&x, 0, sizeof(x));
		x.tx_buf = (uintptr_t)e->apdu;
		x.tx_len = e->len;
		x.rx_buf = (uintptr_t)rx;
		x.rx_size = sizeof(rx);
		x.timeout_ms = EXCHANGE_TIMEOUT_MS;
		ret = do_ioctl(fd, CCID_IOC_XFR_BLOCK, &x);
	} else {
		ret = slot_cmd(fd, CCID_IOC_SLOT_STATUS, &st);
	}
	t->status = e->apdu ? x.status : st.status;
	t->rx_len = e->apdu ? x.rx_len : 0;
	if (ret == -ETIMEDOUT && e->apdu) {
		t->timeouts++;
		return ret;
	}
	/* QEMU out of step after a lost APDU: the driver reset it */
	if (ret == -EIO && e->apdu) {
		t->lag_resets++;
		return ret;
	}
	if (ret == -ECONNRESET) {
		struct ccid_power_on p;

		/* Another worker's lost APDU reset the slot: power it on. */
		t->resets++;
		memset(&p, 0, sizeof(p));
		return do_ioctl(fd, CCID_IOC_POWER_ON, &p) ?: -ECONNRESET;
	}
	if (ret) {
		if (!t->errors++)
			t->first_err = ret;
		return ret;
	}
	t->done++;
	if (e->apdu ? x.rx_len != e->want_len ||
		      memcmp(rx, e->want, e->want_len) :
		      (st.status != CCID_ICC_ACTIVE &&
		       st.status != CCID_ICC_INACTIVE) || st.error) {
		if (!t->mismatches++) {
			if (e->apdu)
				hex(t->first_bad, sizeof(t->first_bad), rx,
				    x.rx_len < 20 ? x.rx_len : 20);
			else
				snprintf(t->first_bad, sizeof(t->first_bad),
					 "status %02x error %02x", st.status,
					 st.error);
		}
		return 1;
	}
	return 0;
}

struct counters {
	unsigned int timeouts, aborts, stale, out_of_step;
};

static void read_counters(FIXTURE_DATA(ccid) *self, struct counters *c)
{
	c->timeouts = counter(self, "timeouts");
	c->aborts = counter(self, "aborts");
	c->stale = counter(self, "stale_frames");
	c->out_of_step = counter(self, "out_of_step");
}

/* Each worker got only its own answers; the rest adds up. */
static void check_tallies(struct __test_metadata *_metadata,
			  FIXTURE_DATA(ccid) *self, const struct tally *t,
			  size_t n, const struct counters *before)
{
	unsigned int lost = 0, lag = 0;
	struct counters after;
	size_t i;

	for (i = 0; i < n; i++) {
		EXPECT_EQ(0, t[i].errors) TH_LOG("%s: %u errors, first %s",
			exchanges[i].name, t[i].errors, errname(t[i].first_err));
		EXPECT_EQ(0, t[i].mismatches)
			TH_LOG("%s: %u foreign answers, first [%s]",
			       exchanges[i].name, t[i].mismatches,
			       t[i].first_bad);
		/* a lost APDU resets the slot: the others see ECONNRESET */
		EXPECT_EQ(ITERATIONS, t[i].done + t[i].timeouts + t[i].resets +
				      t[i].lag_resets)
			TH_LOG("%s", exchanges[i].name);
		lag += t[i].lag_resets;
		EXPECT_GE(MAX_LOST, t[i].timeouts)
			TH_LOG("%s: %u timeouts", exchanges[i].name,
			       t[i].timeouts);
		lost += t[i].timeouts;
	}
	if (lost)
		TH_LOG("%u APDUs lost by QEMU's card thread, recovered", lost);
	/* Every timeout aborted its command; late answers were dropped. */
	read_counters(self, &after);
	EXPECT_EQ(before->timeouts + lost, after.timeouts);
	/*
	 * A lost APDU whose answer never comes leaves QEMU out of step: one
	 * command fails with EIO and the reader is reset, each time counted.
	 * An Abort ran for every timeout, unless the slot's ladder had
	 * already climbed to the reset.
	 */
	EXPECT_EQ(before->out_of_step + lag, after.out_of_step);
	EXPECT_GE(lost, lag);
	EXPECT_GE(before->aborts + lost, after.aborts);
	EXPECT_LE(before->aborts + lost - lag, after.aborts);
	EXPECT_GE(before->stale + lost + lag, after.stale);
}

TEST_F_TIMEOUT(ccid, concurrent_processes, 600)
{
	const size_t n = ARRAY_SIZE(exchanges);
	struct tally *t = mmap(NULL, n * sizeof(*t), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pids[ARRAY_SIZE(exchanges)];
	struct counters before;
	int go[2], st;
	long start;
	size_t i;

	ASSERT_NE(MAP_FAILED, t);
	memset(t, 0, n * sizeof(*t));
	read_counters(self, &before);
	ASSERT_EQ(0, pipe(go));
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i]) {
			/* Each process opens its own fd. */
			int fd = open(self->dev, O_RDWR | O_CLOEXEC), k;
			char c;

			close(go[1]);
			if (fd < 0 || read(go[0], &c, 1) != 0)
				_exit(2);
			for (k = 0; k < ITERATIONS; k++)
				run_exchange(fd, &exchanges[i], &t[i]);
			close(fd);
			_exit(0);
		}
	}
	/* Closing the pipe starts them all at once. */
	close(go[0]);
	start = now_ms();
	close(go[1]);
	for (i = 0; i < n; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &st, 0));
		EXPECT_TRUE(WIFEXITED(st) && !WEXITSTATUS(st))
			TH_LOG("%s: child status %#x", exchanges[i].name, st);
	}
	TH_LOG("%zu processes x %d exchanges: %ld ms", n, ITERATIONS,
	       now_ms() - start);
	check_tallies(_metadata, self, t, n, &before);
	munmap(t, n * sizeof(*t));
}

struct thread_arg {
	int fd;
	const struct exchange *e;
	struct tally t;
	pthread_barrier_t *barrier;
};

static void *exchange_thread(void *p)
{
	struct thread_arg *a = p;
	int k;

	pthread_barrier_wait(a->barrier);
	for (k = 0; k < ITERATIONS; k++)
		run_exchange(a->fd, a->e, &a->t);
	return NULL;
}

TEST_F_TIMEOUT(ccid, concurrent_threads_one_fd, 600)
{
	const size_t n = ARRAY_SIZE(exchanges);
	struct thread_arg args[ARRAY_SIZE(exchanges)];
	struct tally t[ARRAY_SIZE(exchanges)];
	pthread_t th[ARRAY_SIZE(exchanges)];
	pthread_barrier_t barrier;
	struct counters before;
	long start;
	size_t i;

	read_counters(self, &before);
	ASSERT_EQ(0, pthread_barrier_init(&barrier, NULL, n));
	start = now_ms();
	for (i = 0; i < n; i++) {
		memset(&args[i], 0, sizeof(args[i]));
		args[i].fd = self->fd;
		args[i].e = &exchanges[i];
		args[i].barrier = &barrier;
		ASSERT_EQ(0, pthread_create(&th[i], NULL, exchange_thread,
					    &args[i]));
	}
	for (i = 0; i < n; i++) {
		ASSERT_EQ(0, pthread_join(th[i], NULL));
		t[i] = args[i].t;
	}
	pthread_barrier_destroy(&barrier);
	TH_LOG("%zu threads x %d exchanges on one fd: %ld ms", n, ITERATIONS,
	       now_ms() - start);
	check_tallies(_metadata, self, t, n, &before);
}

/* ------------------------------------------------------------------ */
/* Hot unplug: last, each puts the reader back */

static int unplug(struct __test_metadata *_metadata, FIXTURE_DATA(ccid) *self)
{
	int ret = card_device_args(self->card_args, sizeof(self->card_args));

	if (ret)
		return ret;
	self->unplugged = true;
	if (vmctl(NULL, 0, "device_del %s", QEMU_READER_ID))
		return -EIO;
	/* QEMU has deleted it; the guest notices a little later. */
	if (!wait_gone(self->class_dir, 15000) || !wait_gone(self->dev, 5000))
		return -ETIMEDOUT;
	return 0;
}

static void check_plug_back(struct __test_metadata *_metadata,
			    FIXTURE_DATA(ccid) *self)
{
	struct ccid_power_on p;
	char node[32], dev[64];
	int fd;

	ASSERT_OK(plug_back(self, node, sizeof(node)));
	self->unplugged = false;
	strf(dev, sizeof(dev), "/dev/%s", node);
	fd = open(dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", dev, strerror(errno));
	ASSERT_OK(power_on(fd, CCID_VOLTAGE_AUTO, &p));
	ASSERT_BYTES(self->atr, self->atr_len, p.atr, p.atr_len);
	ASSERT_TRUE(apdu_is(fd, select_cac, sizeof(select_cac), sw_61_0d,
			    sizeof(sw_61_0d)));
	close(fd);
}

struct poll_arg {
	int fd;
	short revents;
	int ret;
	bool done;
};

static void *poll_thread(void *p)
{
	struct poll_arg *a = p;
	struct pollfd pfd = { .fd = a->fd, .events = POLLIN | POLLOUT };
	struct ccid_slot_events ev;

	for (;;) {
		a->ret = poll(&pfd, 1, 30000);
		a->revents = pfd.revents;
		if (a->ret <= 0 || (pfd.revents & (POLLHUP | POLLERR)))
			break;
		/*
		 * QEMU takes the card out before the reader: that slot event
		 * wakes poll() first.  Read it and wait on.
		 */
		memset(&ev, 0, sizeof(ev));
		if (ioctl(a->fd, CCID_IOC_SLOT_EVENTS, &ev))
			break;
	}
	__atomic_store_n(&a->done, true, __ATOMIC_RELEASE);
	return NULL;
}

TEST_F_TIMEOUT(ccid, unplug_open_fd, 120)
{
	static const unsigned long reqs[] = {
		CCID_IOC_GET_INFO, CCID_IOC_POWER_ON, CCID_IOC_POWER_OFF,
		CCID_IOC_SLOT_STATUS, CCID_IOC_XFR_BLOCK, CCID_IOC_SECURE,
		CCID_IOC_ESCAPE, CCID_IOC_GET_PARAMS, CCID_IOC_SET_PARAMS,
		CCID_IOC_RESET_PARAMS, CCID_IOC_ABORT,
		/* Even ioctls it does not know, and bad arguments */
		_IOWR(CCID_IOC_MAGIC, 0x0b, struct ccid_xfer),
	};
	struct pollfd pfd = { .events = POLLIN | POLLOUT | POLLPRI };
	struct poll_arg pa = { .fd = self->fd };
	union ccid_arg a;
	pthread_t th;
	size_t i;
	int ret;

	/* Open and idle: poll() has nothing to say. */
	pfd.fd = self->fd;
	ASSERT_EQ(0, poll(&pfd, 1, 0));
	/* One waiter in poll() must wake up at the unplug. */
	ASSERT_EQ(0, pthread_create(&th, NULL, poll_thread, &pa));
	sleep_ms(200);
	ASSERT_FALSE(__atomic_load_n(&pa.done, __ATOMIC_ACQUIRE));

	ret = unplug(_metadata, self);
	ASSERT_EQ(0, ret) TH_LOG("unplug: %s", errname(ret));

	ASSERT_EQ(0, pthread_join(th, NULL));
	EXPECT_EQ(1, pa.ret);
	EXPECT_EQ(POLLHUP | POLLERR, pa.revents) TH_LOG("revents %#x",
							pa.revents);

	for (i = 0; i < ARRAY_SIZE(slot_ioctls); i++) {
		valid_arg(&slot_ioctls[i], &a);
		EXPECT_IOCTL_ERR(ENODEV, self->fd, slot_ioctls[i].req, &a);
		*slot_of(&slot_ioctls[i], &a) = 255;
		EXPECT_IOCTL_ERR(ENODEV, self->fd, slot_ioctls[i].req, &a);
	}
	for (i = 0; i < ARRAY_SIZE(reqs); i++) {
		memset(&a, 0, sizeof(a));
		EXPECT_IOCTL_ERR(ENODEV, self->fd, reqs[i], &a);
		EXPECT_IOCTL_ERR(ENODEV, self->fd, reqs[i], NULL);
	}

	pfd.revents = 0;
	ASSERT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_EQ(POLLHUP | POLLERR, pfd.revents) TH_LOG("revents %#x",
							 pfd.revents);
	pfd.events = 0;
	ASSERT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_EQ(POLLHUP | POLLERR, pfd.revents);

	ASSERT_EQ(0, close(self->fd)) TH_LOG("close: %s", strerror(errno));
	self->fd = -1;

	check_plug_back(_metadata, self);
}

struct looper {
	int fd;
	const struct exchange *e;
	unsigned int ok;
	int last_err;		/* the error that ended it */
	int other_err;		/* the first error other than ENODEV */
	unsigned int other;
	unsigned int mismatches;	/* answers that were not its own */
	char first_bad[64];
	unsigned int absent;	/* empty answers: "no card" */
	bool started;
};

/* Set once the unplug has begun */
static bool unplugging;

static void *loop_thread(void *p)
{
	struct looper *l = p;
	struct tally t;
	long end = now_ms() + 60000;

	while (now_ms() < end) {
		int ret;

		memset(&t, 0, sizeof(t));
		ret = run_exchange(l->fd, l->e, &t);
		/*
		 * QEMU deletes the card before the reader: answers pending
		 * then, and commands until the reader goes, get an empty
		 * answer that says "no card" and no error, which the driver
		 * reports as ENOMEDIUM: it did not come from a card.
		 */
		if (ret == -ENOMEDIUM && !t.rx_len &&
		    (t.status & CCID_ICC_STATUS_MASK) == CCID_ICC_ABSENT &&
		    __atomic_load_n(&unplugging, __ATOMIC_ACQUIRE)) {
			l->absent++;
			continue;
		}
		if (ret > 0) {
			if (!l->mismatches++)
				strf(l->first_bad, sizeof(l->first_bad),
					 "[%s] status %02x", t.first_bad,
					 t.status);
			continue;
		}
		if (!ret) {
			l->ok++;
			__atomic_store_n(&l->started, true, __ATOMIC_RELEASE);
			continue;
		}
		l->last_err = ret;
		if (ret == -ENODEV)
			break;
		/* QEMU's lost wake-up (see ITERATIONS), and its reset */
		if ((ret == -ETIMEDOUT && l->e->apdu) || ret == -ECONNRESET)
			continue;
		if (!l->other++)
			l->other_err = ret;
	}
	return NULL;
}

/* Unplug with commands in flight: four threads, two on each of two fds */
TEST_F_TIMEOUT(ccid, unplug_during_ioctls, 180)
{
	struct looper loops[4];
	pthread_t th[4];
	int fd2, i;
	long start;

	fd2 = open(self->dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd2);
	memset(loops, 0, sizeof(loops));
	for (i = 0; i < 4; i++) {
		loops[i].fd = i < 2 ? self->fd : fd2;
		loops[i].e = &exchanges[i];
		ASSERT_EQ(0, pthread_create(&th[i], NULL, loop_thread,
					    &loops[i]));
	}
	/* All of them going */
	for (i = 0; i < 4; i++)
		while (!__atomic_load_n(&loops[i].started, __ATOMIC_ACQUIRE))
			sleep_ms(10);
	sleep_ms(300);

	start = now_ms();
	__atomic_store_n(&unplugging, true, __ATOMIC_RELEASE);
	ASSERT_EQ(0, unplug(_metadata, self));
	for (i = 0; i < 4; i++) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 20;
		ASSERT_EQ(0, pthread_timedjoin_np(th[i], NULL, &ts))
			TH_LOG("%s: still in the driver 20 s after the unplug",
			       exchanges[i].name);
	}
	TH_LOG("all returned %ld ms after device_del", now_ms() - start);
	for (i = 0; i < 4; i++) {
		EXPECT_LT(0, loops[i].ok);
		EXPECT_EQ(-ENODEV, loops[i].last_err)
			TH_LOG("%s: ended with %s", exchanges[i].name,
			       errname(loops[i].last_err));
		EXPECT_EQ(0, loops[i].other)
			TH_LOG("%s: %u errors other than ENODEV, first %s",
			       exchanges[i].name, loops[i].other,
			       errname(loops[i].other_err));
		EXPECT_EQ(0, loops[i].mismatches)
			TH_LOG("%s: %u foreign answers, first %s",
			       exchanges[i].name, loops[i].mismatches,
			       loops[i].first_bad);
		if (loops[i].absent)
			TH_LOG("%s: %u \"no card\" answers while QEMU removed the card",
			       exchanges[i].name, loops[i].absent);
	}
	EXPECT_EQ(0, close(fd2));
	EXPECT_EQ(0, close(self->fd));
	self->fd = -1;

	check_plug_back(_metadata, self);
}

/* ------------------------------------------------------------------ */
/* The kernel log: only lines the tests above are expected to cause */

TEST_F(ccid, zz_dmesg_clean)
{
	static const char * const bad[] = {
		"BUG:", "WARNING:", "Oops", "general protection",
		"blocked for more than", "UBSAN:", "KASAN:", "KFENCE:",
		"kernel BUG", "refcount_t:", "list_add corruption",
		"list_del corruption", "DEBUG_LOCKS_WARN_ON",
		"possible circular locking",
	};
	/* Lines that name the driver and are fine */
	static const char * const ok[] = {
		"usbcore: registered new interface driver ccid$",
		"usbcore: deregistering interface driver ccid$",
		"^ccid: loading out-of-tree module taints kernel\\.$",
		"^ccid: module verification failed: ",
		"^ccid [0-9.:-]+: ccid[0-9]+: 08e6:4433 firmware 0\\.00, "
			"1 slot\\(s\\), tpdu level$",
		/* ccid_bad_arg(): what the bad-input tests cause */
		"^ccid [0-9.:-]+: (ccid_test|ccidctl): (no such slot|reserved field "
			"not zero|bad voltage|command longer than the reader "
			"takes|escape with bBWI or wLevelParameter|empty PIN "
			"operation block|bad protocol data structure|reader "
			"has no PIN modification|PIN operation not supported|"
			"verify structure truncated|bmFormatString has a "
			"reserved PIN format|wPINMaxExtraDigit minimum above "
			"maximum|bEntryValidationCondition invalid|abPINApdu "
			"shorter than an APDU header|abPINApdu length does not "
			"match its Lc|PIN block lies outside the APDU data)$",
		"ccid.*: [0-9]+ callbacks suppressed$",
	};
	/*
	 * QEMU 7.2's Parameters answers (see the params test); an APDU
	 * QEMU's card thread lost (see ITERATIONS) times out, and what
	 * recovery sends after the Abort may wait behind it.
	 */
	static const char legacy_ok[] =
		"^ccid [0-9.:-]+: slot 0: (bad answer: dwLength does not "
		"match the data received|command 0x6f: no answer|abort "
		"answered, but not a (power off|parameter reset) "
		"\\(-110\\))$";
	/*
	 * A lost APDU whose answer never comes leaves QEMU out of step: the
	 * driver resets it.  Never more often than APDUs were lost.
	 */
	static const char lag_re[] =
		"^ccid [0-9.:-]+: (slot 0: reader is out of step \\(it answers "
		"with the bSeq of a command given up on\\): resetting it|"
		"reader does not answer: resetting it)$";
	regex_t re_lag;
	int lost = 0, lag = 0;
	int size = klogctl(10, NULL, 0), n, bad_lines = 0;
	regex_t re_ok[ARRAY_SIZE(ok)], re_legacy;
	char *buf, *line, *save = NULL;
	size_t i;

	ASSERT_LT(0, size);
	buf = malloc(size + 1);
	ASSERT_NE(NULL, buf);
	n = klogctl(3, buf, size);
	ASSERT_LE(0, n) TH_LOG("klogctl: %s", strerror(errno));
	buf[n] = '\0';
	for (i = 0; i < ARRAY_SIZE(ok); i++)
		ASSERT_EQ(0, regcomp(&re_ok[i], ok[i], REG_EXTENDED | REG_NOSUB))
			TH_LOG("pattern %zu", i);
	ASSERT_EQ(0, regcomp(&re_legacy, legacy_ok, REG_EXTENDED | REG_NOSUB));
	ASSERT_EQ(0, regcomp(&re_lag, lag_re, REG_EXTENDED | REG_NOSUB));

	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *text = line;
		bool fine = false;

		/* "<6>[    7.03] text" */
		if (*text == '<')
			text = strchr(text, '>') ? strchr(text, '>') + 1 : text;
		if (*text == '[')
			text = strchr(text, ']') ? strchr(text, ']') + 1 : text;
		text += strspn(text, " ");

		for (i = 0; i < ARRAY_SIZE(bad); i++) {
			if (strstr(text, bad[i])) {
				TH_LOG("kernel log: %s", text);
				bad_lines++;
			}
		}
		/* The driver's lines, and the USB core's about it */
		if ((strncmp(text, "ccid", 4) || !strncmp(text, "ccid-vm:", 8)) &&
		    !strstr(text, "driver ccid"))
			continue;
		for (i = 0; i < ARRAY_SIZE(ok) && !fine; i++)
			fine = !regexec(&re_ok[i], text, 0, NULL, 0);
		if (!fine)
			fine = !regexec(&re_legacy, text, 0, NULL, 0) &&
			       (qemu_legacy() || !strstr(text, "dwLength"));
		if (strstr(text, "command 0x6f: no answer"))
			lost++;
		if (!fine && !regexec(&re_lag, text, 0, NULL, 0)) {
			fine = true;
			lag++;
		}
		if (!fine) {
			TH_LOG("unexpected: %s", text);
			bad_lines++;
		}
	}
	for (i = 0; i < ARRAY_SIZE(ok); i++)
		regfree(&re_ok[i]);
	regfree(&re_legacy);
	regfree(&re_lag);
	free(buf);
	EXPECT_EQ(0, bad_lines);
	/* each out-of-step reset logs two lines and follows a lost APDU */
	EXPECT_GE(2 * lost, lag);
}

int main(int argc, char **argv)
{
	if (qemu.major >= 0)
		ksft_print_msg("QEMU %s%s\n", qemu.text,
			       qemu_legacy() ? " (legacy usb-ccid answers)" : "");
	return test_harness_run(argc, argv);
}
