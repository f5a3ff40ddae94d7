// SPDX-License-Identifier: GPL-2.0
/*
 * Recovery tests of ccid.ko against ccid_emu, the emulated USB/IP reader,
 * inside the VM that run-vm boots (--reader none: vhci_hcd only).
 *
 * Every test starts its own emulator with the behaviour it needs, finds
 * the reader's node in the emulator's "node" event, and checks four
 * independent witnesses of what happened:
 *  - the ioctl's errno (and whether the structure was written back: the
 *    tests preset status to 0xFF, which a real answer never carries);
 *  - the exact change of every recovery counter in sysfs;
 *  - the emulator's event log, which shows what the driver sent on the
 *    wire (commands, ABORT requests, PC_to_RDR_Abort, clear halts, resets);
 *  - the new kernel log lines, read from /dev/kmsg.
 * Durations are bounded from above only (besides "at least the timeout"),
 * with the generous bounds of LADDER_MAX_MS and PROMPT_MS.
 *
 * The tests cover the SCM SPR332 firmware 7.00 story end to end (the
 * broken_secure quirk, and the full recovery ladder when the quirk is
 * overridden), each step of the ladder alone, every malformed answer the
 * emulator can send, time extensions, a signal or CCID_IOC_ABORT during a
 * PIN entry, unplug, and stalled endpoints.
 *
 * Run: tools/testing/selftests/drivers/usb/ccid/run-vm --reader none -- \
 *	tools/testing/selftests/drivers/usb/ccid/recovery_test
 * The emulator's events and the new kernel log lines are shown for a test
 * that fails, and for every test with CCID_VERBOSE=1.  CCID_EMU
 * names another emulator binary.  The harness is emu_harness.h.
 */

#include <pthread.h>
#include <linux/usbdevice_fs.h>
#include <linux/userfaultfd.h>

#include "emu_harness.h"

#define TIME_EXT_PARAM		"/sys/module/ccid/parameters/time_ext_limit"
#define USBCORE_QUIRKS		"/sys/module/usbcore/parameters/quirks"
#define PM_WAIT_MS		10000

/* The timeout the tests give their XfrBlocks */
#define XFR_T_MS		1000
/*
 * Upper bound for a command with a 1 s timeout that needs recovery, up to
 * a USB reset: Documentation/usb/ccid.rst gives about 20 s for a reader
 * that is mute but takes commands and control requests; twice that.
 */
#define LADDER_MAX_MS		40000
/* A signal, CCID_IOC_ABORT or an unplug ends a command this fast */
#define PROMPT_MS		10000

/* ------------------------------------------------------------------ */
/* APDUs, PIN blocks */

/* ccid_emu's echo: 80 EE P1 P2 Lc DATA -> DATA 90 00 */
static const uint8_t echo_cmd[] = {
	0x80, 0xee, 0x00, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04
};

static const uint8_t echo_rsp[] = { 0x01, 0x02, 0x03, 0x04, 0x90, 0x00 };

static const uint8_t sw_90_00[] = { 0x90, 0x00 };

/* PC/SC part 10: PIN entry timed out; what firmware 7.00 answers */
static const uint8_t sw_64_00[] = { 0x64, 0x00 };

/* The SPR532-family escape GnuPG sends before a case 1 verify */
static const uint8_t spr532_escape[] = { 0x80, 0x02, 0x00 };

/*
 * The 19-byte PC_to_RDR_Secure block of the SPR332 report
 * (reader-behaviours.md), built field by field.
 */
static void spr332_verify_block(uint8_t blk[19])
{
	static const uint8_t apdu[] = { 0x00, 0x20, 0x00, 0x82 };
	const uint16_t max_extra = 0x0619;	/* 6..25 digits */
	const uint16_t lang = 0x0409;
	size_t i = 0;

	blk[i++] = CCID_PIN_OP_VERIFY;		/* bPINOperation */
	blk[i++] = 0x00;			/* bTimeOut: reader default */
	blk[i++] = 0x82;			/* bmFormatString: bytes, ASCII */
	blk[i++] = 0x00;			/* bmPINBlockString */
	blk[i++] = 0x00;			/* bmPINLengthFormat */
	blk[i++] = max_extra & 0xff;		/* wPINMaxExtraDigit */
	blk[i++] = max_extra >> 8;
	blk[i++] = 0x02;			/* bEntryValidationCondition */
	blk[i++] = 0x01;			/* bNumberMessage */
	blk[i++] = lang & 0xff;			/* wLangId */
	blk[i++] = lang >> 8;
	blk[i++] = 0x00;			/* bMsgIndex */
	blk[i++] = 0x00;			/* bTeoPrologue */
	blk[i++] = 0x00;
	blk[i++] = 0x00;
	memcpy(blk + i, apdu, sizeof(apdu));	/* abPINApdu, case 1 */
}

/* A modify block (three messages, bConfirmPIN 3) */
static const uint8_t modify_blk[] = {
	0x01, 0x00, 0x82, 0x00, 0x00, 0x00, 0x00, 0x19, 0x01, 0x03, 0x02,
	0x03, 0x09, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x24,
	0x00, 0x82
};

/* What recovery logs when the reader answers the Abort and no more */
#define ABORT_ONLY_LINE	DRV "slot 0: abort answered, but not a power off \\(-110\\)$"

/* The echo of 01 02 03 04 on slot 0, with the tests' 1 s timeout, unchecked */
static int echo_1234(int fd, uint8_t *rx, size_t size, struct ccid_xfer *x)
{
	return xfer(fd, CCID_IOC_XFR_BLOCK, 0, echo_cmd, sizeof(echo_cmd), rx,
		    size, XFR_T_MS, x);
}

/* Power on, then the echo APDU answers 01 02 03 04 90 00 */
#define ASSERT_CARD_WORKS(fd) do {					\
	struct ccid_power_on __p;					\
	struct ccid_xfer __x;						\
	uint8_t __rx[64];						\
	ASSERT_OK(power_on(fd, 0, &__p));				\
	ASSERT_LT(0, __p.atr_len);					\
	ASSERT_OK(echo_1234(fd, __rx, sizeof(__rx), &__x));		\
	ASSERT_BYTES(echo_rsp, sizeof(echo_rsp), __rx, __x.rx_len);	\
} while (0)

/* ------------------------------------------------------------------ */
/* A Secure in the background: in a thread, or in a child process */

struct bg_secure {
	pthread_t thread;
	bool xfr;		/* an XfrBlock (timeout XFR_T_MS) instead */
	int fd;
	const uint8_t *blk;
	size_t len;
	int ret;
	long ms;
	struct ccid_xfer x;
	uint8_t rx[64];
};

static void *bg_secure_fn(void *arg)
{
	struct bg_secure *b = arg;
	long t0 = now_ms();

	b->ret = xfer(b->fd, b->xfr ? CCID_IOC_XFR_BLOCK : CCID_IOC_SECURE, 0,
		      b->blk, b->len, b->rx, sizeof(b->rx),
		      b->xfr ? XFR_T_MS : 0, &b->x);
	b->ms = now_ms() - t0;
	return NULL;
}

static int bg_secure_start(struct bg_secure *b, int fd, const uint8_t *blk,
			   size_t len)
{
	memset(b, 0, sizeof(*b));
	b->fd = fd;
	b->blk = blk;
	b->len = len;
	return -pthread_create(&b->thread, NULL, bg_secure_fn, b);
}

/* Join within @ms; -ETIMEDOUT when the Secure is still blocked */
static int bg_secure_join(struct bg_secure *b, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return -pthread_timedjoin_np(b->thread, NULL, &ts);
}

struct child_result {
	int ret;
	uint8_t status;
};

static void on_sigint(int sig)
{
}

/*
 * A child that opens the node itself, catches SIGINT with SA_RESTART (the
 * driver must still not restart an aborted command) and blocks in a
 * Secure; its result comes back on *rfd.
 */
static pid_t secure_child(struct emu *e, const uint8_t *blk, size_t len,
			  int *rfd)
{
	struct sigaction sa;
	struct child_result r;
	struct ccid_xfer x;
	uint8_t rx[64];
	int p[2], fd;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid) {
		close(p[1]);
		*rfd = p[0];
		if (pid < 0)
			close(p[0]);
		return pid;
	}
	close(p[0]);
	memset(&x, 0, sizeof(x));
	x.status = 0xff;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	fd = open(e->dev, O_RDWR | O_CLOEXEC);
	r.ret = fd < 0 ? -errno :
		xfer(fd, CCID_IOC_SECURE, 0, blk, len, rx, sizeof(rx), 0, &x);
	r.status = x.status;
	if (write(p[1], &r, sizeof(r)) != sizeof(r))
		_exit(2);
	_exit(0);
}

/* The child's result within @ms, or -ETIMEDOUT */
static int child_result(int rfd, long ms, struct child_result *r)
{
	struct pollfd p = { .fd = rfd, .events = POLLIN };

	if (poll(&p, 1, ms) != 1)
		return -ETIMEDOUT;
	return read(rfd, r, sizeof(*r)) == sizeof(*r) ? 0 : -EIO;
}

/* waitpid() within @ms; -ETIMEDOUT */
static int wait_child(pid_t pid, long ms, int *status)
{
	long end = now_ms() + ms;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0)
			return -errno;
		if (now_ms() > end)
			return -ETIMEDOUT;
		sleep_ms(20);
	}
}

/* bSeq of the PIN entry the emulator is waiting on, or -1 */
static int wait_pin_entry(struct emu *e)
{
	char line[256];
	unsigned int seq;

	if (log_wait(e, PROMPT_MS, 0, line, sizeof(line),
		     "^secure-verify slot=0 seq=[0-9]+ ") < 0 ||
	    sscanf(line, "secure-verify slot=0 seq=%u", &seq) != 1)
		return -1;
	return seq;
}

/*
 * The Abort procedure for @seq on slot 0 ran in the emulator: the ABORT
 * class request with wValue = bSeq << 8 | bSlot, then PC_to_RDR_Abort
 * with the same bSeq; @n of each.
 */
#define EXPECT_ABORTS(n, e, seq) do {					\
	EXPECT_EVENTS(n, e, "^abort-request wValue=0x%04x slot=0 seq=%d$", \
		      (seq) << 8, seq);					\
	EXPECT_EVENTS(n, e, "^abort-cmd seq=%d slot=0$", seq);		\
} while (0)

/* ------------------------------------------------------------------ */
/* The fixture */

FIXTURE(recovery) {
	struct emu e;
};

EMU_FIXTURE_HOOKS(recovery);

/* ------------------------------------------------------------------ */
/* 1. The SPR332 story */

/* (a) Firmware 7.01: the PIN pad works, and the reader goes on. */
TEST_F_TIMEOUT(recovery, spr332_fw701_secure_works, 120)
{
	struct emu *e = &self->e;
	struct ccid_reader_info info;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t blk[19], rx[64];
	char buf[64];

	ASSERT_OK(emu_start(e, "--bcd-device", "0x0701", "--spr332-fw700",
			    "--pad-pin", "123456", NULL));
	ASSERT_OK(do_ioctl(e->fd, CCID_IOC_GET_INFO, &info));
	EXPECT_EQ(0x04e6, info.vendor_id);
	EXPECT_EQ(0xe003, info.product_id);
	EXPECT_EQ(0x0701, info.bcd_device);
	attr_str(e, "quirks", buf, sizeof(buf));
	EXPECT_STREQ("none\n", buf);
	attr_str(e, "firmware_version", buf, sizeof(buf));
	EXPECT_STREQ("7.01\n", buf);
	EXPECT_KMSG(0, "wedges after a PIN-pad verify");
	counters_read(e, &c0);

	ASSERT_OK(power_on(e->fd, 0, &p));
	/* What GnuPG sends before a case 1 verify on this family */
	ASSERT_OK(xfer(e->fd, CCID_IOC_ESCAPE, 0, spr532_escape,
		       sizeof(spr532_escape), rx, sizeof(rx), 0, &x));
	spr332_verify_block(blk);
	ASSERT_OK(xfer(e->fd, CCID_IOC_SECURE, 0, blk, sizeof(blk), rx,
		       sizeof(rx), 0, &x));
	EXPECT_EQ(0, x.status);
	ASSERT_BYTES(sw_90_00, sizeof(sw_90_00), rx, x.rx_len);
	EXPECT_EVENT(e, "^secure-verify slot=0 seq=2 timeout=30000$");
	/* the pad built the case 3 VERIFY with the six ASCII digits */
	EXPECT_EVENT(e, "^pin-entered slot=0 op=verify apdu=0020008206313233343536 sw=9000$");
	EXPECT_EVENTS(0, e, "^wedged ");

	/* the next XfrBlock is answered */
	ASSERT_OK(echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_BYTES(echo_rsp, sizeof(echo_rsp), rx, x.rx_len);
	EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/* (b) Firmware 7.00: Secure is refused before anything reaches the reader. */
TEST_F_TIMEOUT(recovery, spr332_fw700_secure_refused, 120)
{
	struct emu *e = &self->e;
	struct ccid_reader_info info;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t blk[19], rx[64];
	char buf[64];
	int cmds;

	ASSERT_OK(emu_start(e, "--bcd-device", "0x0700", "--spr332-fw700",
			    "--pad-pin", "123456", NULL));
	ASSERT_OK(do_ioctl(e->fd, CCID_IOC_GET_INFO, &info));
	EXPECT_EQ(0x0700, info.bcd_device);
	EXPECT_EQ(CCID_PIN_VERIFY | CCID_PIN_MODIFY, info.pin_support);
	attr_str(e, "quirks", buf, sizeof(buf));
	EXPECT_STREQ("broken_secure\n", buf);
	attr_str(e, "firmware_version", buf, sizeof(buf));
	EXPECT_STREQ("7.00\n", buf);
	/* the bind names the fix and the override */
	EXPECT_KMSG(1, DRV "%s%s", e->busre,
		    "firmware 7\\.00 wedges after a PIN-pad verify: Secure disabled; ",
		    "firmware 7\\.01 fixes it \\(ccid\\.quirks=04e6:e003: overrides\\)$");
	counters_read(e, &c0);

	ASSERT_OK(power_on(e->fd, 0, &p));
	cmds = log_count(e, "^cmd ");
	spr332_verify_block(blk);
	EXPECT_ERRNO(EOPNOTSUPP, xfer(e->fd, CCID_IOC_SECURE, 0, blk, sizeof(blk),
				      rx, sizeof(rx), 0, &x));
	EXPECT_EQ(0xff, x.status);	/* not written back */
	EXPECT_ERRNO(EOPNOTSUPP, xfer(e->fd, CCID_IOC_SECURE, 0, modify_blk,
				      sizeof(modify_blk), rx, sizeof(rx), 0,
				      &x));
	/* nothing went out */
	EXPECT_EQ(cmds, log_count(e, "^cmd "));
	EXPECT_EVENTS(0, e, "^cmd [0-9]+ type=0x69 ");
	EXPECT_EVENTS(0, e, "^secure-");

	/* the reader is not wedged: the quirk kept it alive */
	ASSERT_OK(echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_BYTES(echo_rsp, sizeof(echo_rsp), rx, x.rx_len);
	EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * (c) Firmware 7.00 with the quirk overridden: the seed scenario.  The
 * verify gets 64 00, the reader wedges, and the next XfrBlock needs the
 * whole ladder: Abort (ignored), clear halts and Abort (ignored), USB
 * reset.  The file then gets ECONNRESET until it powers the card on, and
 * the reader works again without a replug.
 */
TEST_F_TIMEOUT(recovery, spr332_fw700_override_full_ladder, 180)
{
	struct emu *e = &self->e;
	struct ccid_slot_events ev0, ev;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t blk[19], rx[64];
	int seq, cmds, n, i_ign1, i_clr, i_req2, i_reset, i_rev, i_probe;
	char buf[64], line[256];
	struct stat st0, st1;
	long t0, ms;

	/* The parameter is read at bind time: set it before the reader comes. */
	ASSERT_OK(quirks_set(e, "04e6:e003:"));
	ASSERT_OK(emu_start(e, "--bcd-device", "0x0700", "--spr332-fw700",
			    "--pad-pin", "123456", NULL));
	ASSERT_OK(quirks_restore(e));
	read_attr(QUIRKS_PARAM, buf, sizeof(buf));
	buf[strcspn(buf, "\n")] = '\0';
	EXPECT_STREQ(param_saved(e, QUIRKS_PARAM), buf);

	attr_str(e, "quirks", buf, sizeof(buf));
	EXPECT_STREQ("none\n", buf);
	EXPECT_KMSG(1, DRV "quirks 0x0 set by the quirks parameter$",
		    e->busre);
	EXPECT_KMSG(0, "wedges after a PIN-pad verify");
	ASSERT_EQ(0, stat(e->dev, &st0));

	ASSERT_OK(power_on(e->fd, 0, &p));
	ASSERT_OK(xfer(e->fd, CCID_IOC_ESCAPE, 0, spr532_escape,
		       sizeof(spr532_escape), rx, sizeof(rx), 0, &x));
	ASSERT_OK(slot_events(e->fd, 0, &ev0));
	EXPECT_EQ(0, ev0.reset_pending);
	counters_read(e, &c0);

	/* The verify: a successful DataBlock with 64 00 ... */
	spr332_verify_block(blk);
	ASSERT_OK(xfer(e->fd, CCID_IOC_SECURE, 0, blk, sizeof(blk), rx,
		       sizeof(rx), 0, &x));
	EXPECT_EQ(0, x.status);
	ASSERT_BYTES(sw_64_00, sizeof(sw_64_00), rx, x.rx_len);
	EXPECT_EVENT(e, "^pin-entered slot=0 op=verify sw=6400 spr332-fw700=1$");
	EXPECT_EVENT(e, "^wedged reason=spr332-fw700$");

	/* ... and the next XfrBlock is never answered. */
	t0 = now_ms();
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	EXPECT_EQ(0xff, x.status);
	EXPECT_LE(XFR_T_MS, ms);
	EXPECT_GE(LADDER_MAX_MS, ms) TH_LOG("the ladder took %ld ms", ms);
	TH_LOG("timeout and full ladder: %ld ms", ms);

	ASSERT_LE(0, log_find(e, 0, line, sizeof(line),
			      "^cmd [0-9]+ type=0x6f slot=0 seq=[0-9]+ len=9 "));
	n = sscanf(strstr(line, "seq="), "seq=%d", &seq);
	ASSERT_EQ(1, n);
	EXPECT_EVENT(e, "^no-answer [0-9]+ reason=wedged$");
	/* two Abort procedures for that bSeq, both ignored by the wedge */
	EXPECT_ABORTS(2, e, seq);
	EXPECT_EVENTS(2, e, "^abort-ignored seq=%d slot=0 reason=wedged$", seq);
	EXPECT_EVENTS(0, e, "^abort-answered ");
	/* in order: Abort, clear halts, Abort, reset, revived, probe */
	i_ign1 = log_find(e, 0, NULL, 0, "^abort-ignored seq=%d ", seq);
	i_clr = log_find(e, i_ign1, NULL, 0, "^clear-halt ep=0x81$");
	EXPECT_LE(0, log_find(e, i_ign1, NULL, 0, "^clear-halt ep=0x02$"));
	i_req2 = log_find(e, i_clr, NULL, 0, "^abort-request wValue=0x%04x ",
			  seq << 8);
	i_reset = log_find(e, i_req2, NULL, 0, "^reset$");
	i_rev = log_find(e, i_reset, NULL, 0, "^revived reason=reset$");
	i_probe = log_find(e, i_rev, NULL, 0,
			   "^cmd [0-9]+ type=0x65 slot=0 seq=%d ", seq + 1);
	EXPECT_LT(0, i_ign1);
	EXPECT_LT(i_ign1, i_clr);
	EXPECT_LT(i_clr, i_req2);
	EXPECT_LT(i_req2, i_reset);
	EXPECT_LT(i_reset, i_rev);
	EXPECT_LT(i_rev, i_probe) TH_LOG("no GetSlotStatus after the reset");
	EXPECT_LE(0, log_find(e, i_probe, NULL, 0,
			      "^answer [0-9]+ type=0x81 slot=0 seq=%d ",
			      seq + 1));
	EXPECT_EVENTS(1, e, "^reset$");

	EXPECT_DELTAS(e, &c0, 1, 2, 1, 1, 0, 0, 0);
	EXPECT_KMSG(1, DRV "slot 0: command 0x6f: no answer$", e->busre);
	EXPECT_KMSG(1, DRV "slot 0: abort failed \\(-110\\), clearing halts$",
		    e->busre);
	EXPECT_KMSG(1, DRV "reader does not answer: resetting it$",
		    e->busre);
	EXPECT_KMSG(1, "^usb %s: reset [a-z]+-speed USB device number [0-9]+ using vhci_hcd$",
		    e->busre);

	/* The reset started a new generation on the slot: this file is told. */
	EXPECT_EQ(1, uevent_resets(e, "0x1"));
	EXPECT_TRUE(poll_mask(e->fd, 0) & POLLPRI);
	ASSERT_OK(slot_events(e->fd, 0, &ev));
	EXPECT_EQ(1, ev.reset_pending);
	EXPECT_EQ(ev0.generation[0] + 1, ev.generation[0]);
	cmds = log_count(e, "^cmd ");
	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	EXPECT_EQ(0xff, x.status);
	EXPECT_ERRNO(ECONNRESET, xfer(e->fd, CCID_IOC_SECURE, 0, blk, sizeof(blk),
				      rx, sizeof(rx), 0, &x));
	EXPECT_EQ(cmds, log_count(e, "^cmd ")) TH_LOG("sent despite ECONNRESET");

	/*
	 * Power on acknowledges; the same fd and node work, no replug: one
	 * attach, no disconnect, and the emulator's "node" event (repeated
	 * after the reset configured it again) names the same node.
	 */
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_FALSE(poll_mask(e->fd, 0) & POLLPRI);
	EXPECT_EVENTS(1, e, "^attached ");
	EXPECT_EVENTS(0, e, "^detached ");
	EXPECT_EQ(log_count(e, "^node "),
		  log_count(e, "^node dev=%s busid=%s$", e->dev, e->busid));
	EXPECT_KMSG(0, "^usb %s: USB disconnect", e->busre);
	ASSERT_EQ(0, stat(e->dev, &st1));
	EXPECT_EQ(st0.st_rdev, st1.st_rdev);
	attr_str(e, "quirks", buf, sizeof(buf));
	EXPECT_STREQ("none\n", buf);
	EXPECT_DELTAS(e, &c0, 1, 2, 1, 1, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/* ------------------------------------------------------------------ */
/* 2. Each step of the ladder alone */

/*
 * Step 1: a reader that drops one command but answers the Abort.  The
 * ladder stops there; the slot is powered off and its parameters reset,
 * and the file gets ECONNRESET.
 */
TEST_F_TIMEOUT(recovery, ladder_step1_abort_answered, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];
	int i_ans, cmds;
	long t0, ms;

	ASSERT_OK(emu_start(e, "--drop", "2", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));		/* command 1 */
	counters_read(e, &c0);

	/* 2 XfrBlock, 3 Abort (answered), 4 IccPowerOff (not) */
	t0 = now_ms();
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	EXPECT_EQ(0xff, x.status);
	EXPECT_LE(XFR_T_MS, ms);
	EXPECT_GE(LADDER_MAX_MS, ms);
	TH_LOG("timeout and step 1: %ld ms", ms);

	EXPECT_EVENT(e, "^cmd 2 type=0x6f slot=0 seq=1 ");
	EXPECT_EVENT(e, "^no-answer 2 reason=script$");
	EXPECT_ABORTS(1, e, 1);
	EXPECT_EVENTS(1, e, "^abort-answered seq=1 slot=0 aborted=0$");
	/* after the Abort: IccPowerOff, then ResetParameters, answered */
	i_ans = log_find(e, 0, NULL, 0, "^abort-answered seq=1 ");
	EXPECT_LT(i_ans, log_find(e, i_ans, NULL, 0,
				  "^answer 4 type=0x81 slot=0 seq=2 "));
	EXPECT_LT(i_ans, log_find(e, i_ans, NULL, 0,
				  "^answer 5 type=0x82 slot=0 seq=3 "));
	EXPECT_EVENTS(0, e, "^clear-halt ");
	EXPECT_EVENTS(0, e, "^reset$");
	EXPECT_DELTAS(e, &c0, 1, 1, 0, 0, 0, 0, 0);
	EXPECT_KMSG(1, DRV "slot 0: command 0x6f: no answer$", e->busre);
	EXPECT_KMSG(0, DRV "slot 0: abort failed", e->busre);
	EXPECT_KMSG(0, DRV "slot 0: abort answered, but not", e->busre);
	EXPECT_KMSG(0, DRV "reader does not answer", e->busre);
	EXPECT_EQ(1, uevent_resets(e, "0x1"));

	cmds = log_count(e, "^cmd ");
	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	EXPECT_EQ(cmds, log_count(e, "^cmd "));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_DELTAS(e, &c0, 1, 1, 0, 0, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * Step 1, with the ResetParameters after the Abort answered by a frame
 * whose dwLength is wrong (as QEMU 7.2 does): still an answer, so the
 * reader counts as alive and nothing about it is logged.
 */
TEST_F_TIMEOUT(recovery, ladder_step1_garbled_reset_params_answer, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];

	ASSERT_OK(emu_start(e, "--drop", "2", "--bad", "5:len-over-data",
			    NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));		/* command 1 */
	counters_read(e, &c0);

	/* 2 dropped, 3 Abort, 4 IccPowerOff, 5 ResetParameters garbled */
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	EXPECT_EVENT(e, "^bad 5 kind=len-over-data ");
	EXPECT_DELTAS(e, &c0, 1, 1, 0, 0, 0, 0, 0);
	EXPECT_KMSG(0, DRV "slot 0: abort answered, but not", e->busre);
	EXPECT_EQ(1, uevent_resets(e, "0x1"));

	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * A mute reader that answers the Abort and nothing else has not
 * recovered: the unanswered IccPowerOff climbs the ladder within the same
 * recovery (clear halts, the Abort again, the power off again) up to the
 * reset, which ends the mute.
 */
TEST_F_TIMEOUT(recovery, ladder_abort_only_reader_reset, 180)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];
	int i_ans, i_clr, i_ans2, i_reset;
	long t0, ms;

	ASSERT_OK(emu_start(e, "--mute-after", "1", "--revive-on-reset",
			    NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));		/* command 1 */
	EXPECT_EVENT(e, "^muted after=1$");
	counters_read(e, &c0);

	/* 2 XfrBlock, 3 Abort (answered), 4 IccPowerOff (not), clear halts,
	 * 5 Abort (answered), 6 IccPowerOff (not), reset */
	t0 = now_ms();
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	EXPECT_LE(XFR_T_MS, ms);
	EXPECT_GE(LADDER_MAX_MS, ms);
	EXPECT_EVENT(e, "^no-answer 2 reason=muted$");
	EXPECT_EVENTS(2, e, "^abort-answered seq=1 slot=0 aborted=0$");
	i_ans = log_find(e, 0, NULL, 0, "^abort-answered seq=1 ");
	i_clr = log_find(e, i_ans, NULL, 0, "^clear-halt ");
	i_ans2 = log_find(e, i_clr, NULL, 0, "^abort-answered seq=1 ");
	i_reset = log_find(e, i_ans2, NULL, 0, "^reset$");
	EXPECT_LT(i_ans, log_find(e, i_ans, NULL, 0,
				  "^no-answer 4 reason=muted$"));
	EXPECT_LT(i_ans, i_clr);
	EXPECT_LT(i_clr, i_ans2);
	EXPECT_LT(i_ans2, i_reset);
	EXPECT_LT(i_reset, log_find(e, i_reset, NULL, 0,
				    "^unmuted reason=reset$"));
	/* no ResetParameters after an unanswered IccPowerOff */
	EXPECT_EVENTS(0, e, "^cmd [0-9]+ type=0x6d ");
	EXPECT_EVENTS(1, e, "^reset$");
	EXPECT_DELTAS(e, &c0, 1, 2, 1, 1, 0, 0, 0);
	EXPECT_KMSG(2, ABORT_ONLY_LINE, e->busre);
	EXPECT_KMSG(1, DRV "reader does not answer: resetting it$", e->busre);
	EXPECT_KMSG(0, DRV "reader still dead", e->busre);
	EXPECT_EQ(1, uevent_resets(e, "0x1"));

	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * The ladder keeps its memory per slot until a real command succeeds on
 * the path that failed.  A card command that times out though the Abort,
 * the power off and the parameter reset were answered moves the slot's
 * next recovery one step up; a power on (the control path) proves
 * nothing; the third failure in a row goes straight to the reset; an
 * answered card command brings the slot back to the Abort.
 */
TEST_F_TIMEOUT(recovery, ladder_memory_climbs_until_proven, 240)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];
	int i_cmd7, i_cmd12;

	/* 1 power on, 2 dropped, 3 Abort, 4 IccPowerOff, 5 ResetParameters */
	ASSERT_OK(emu_start(e, "--drop", "2", "--drop", "7", "--drop", "12",
			    "--drop", "16", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	EXPECT_EVENTS(0, e, "^clear-halt ");
	EXPECT_DELTAS(e, &c0, 1, 1, 0, 0, 0, 0, 0);

	/* 6 power on: answered, yet the card path is not proven */
	ASSERT_OK(power_on(e->fd, 0, &p));
	/* 7 dropped: clear halts, 8 Abort, 9 IccPowerOff, 10 ResetParameters */
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	i_cmd7 = log_find(e, 0, NULL, 0, "^no-answer 7 ");
	EXPECT_LT(i_cmd7, log_find(e, i_cmd7, NULL, 0, "^clear-halt "));
	EXPECT_EVENTS(0, e, "^reset$");
	EXPECT_DELTAS(e, &c0, 2, 2, 1, 0, 0, 0, 0);
	EXPECT_KMSG(1, DRV "slot 0: the last recovery did not hold: clearing halts$",
		    e->busre);

	/* 11 power on, 12 dropped: straight to the reset, no Abort */
	ASSERT_OK(power_on(e->fd, 0, &p));
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	i_cmd12 = log_find(e, 0, NULL, 0, "^no-answer 12 ");
	EXPECT_LT(i_cmd12, log_find(e, i_cmd12, NULL, 0, "^reset$"));
	EXPECT_DELTAS(e, &c0, 3, 2, 1, 1, 0, 0, 0);

	/* 13 GetSlotStatus after the reset; 14 power on, 15 echo answered */
	ASSERT_OK(power_on(e->fd, 0, &p));
	ASSERT_OK(echo_1234(e->fd, rx, sizeof(rx), &x));
	/* 16 dropped: back at the first step */
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	EXPECT_EVENT(e, "^no-answer 16 ");
	EXPECT_EVENTS(1, e, "^reset$");
	EXPECT_DELTAS(e, &c0, 4, 3, 1, 1, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	expect_kmsg_clean(_metadata, __LINE__, true);
}

/*
 * Step 1 with a reader that is only slow: the command is still running
 * when the Abort comes, so it ends with CMD_ABORTED; the power off really
 * happens, and CCID_EVENTS_ACK_RESET also acknowledges the new generation.
 */
TEST_F_TIMEOUT(recovery, ladder_step1_busy_command_aborted, 120)
{
	struct emu *e = &self->e;
	struct ccid_slot_events ev;
	struct ccid_slot_status st;
	struct ccid_params pr;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	int fd_old, fd_new;
	uint8_t rx[64];
	long t0, ms;

	ASSERT_OK(emu_start(e, "--delay", "2:6000", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	fd_old = open(e->dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd_old);
	counters_read(e, &c0);

	t0 = now_ms();
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	EXPECT_LE(XFR_T_MS, ms);
	EXPECT_GE(LADDER_MAX_MS, ms);
	EXPECT_ABORTS(1, e, 1);
	EXPECT_EVENTS(1, e, "^abort-answered seq=1 slot=0 aborted=1$");
	EXPECT_EVENT(e, "^answer 2 type=0x80 slot=0 seq=1 len=0 status=0x40 error=0xff ");
	/* IccPowerOff answered with the card inactive, then the parameters */
	EXPECT_EVENT(e, "^answer 4 type=0x81 slot=0 seq=2 len=0 status=0x01 ");
	EXPECT_EVENT(e, "^answer 5 type=0x82 slot=0 seq=3 ");
	EXPECT_DELTAS(e, &c0, 1, 1, 0, 0, 0, 0, 0);

	/* GetSlotStatus is not refused, and shows the card powered off */
	ASSERT_OK(slot_status(e->fd, 0, &st));
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status);
	memset(&pr, 0, sizeof(pr));
	EXPECT_ERRNO(ECONNRESET, do_ioctl(e->fd, CCID_IOC_GET_PARAMS, &pr));
	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	EXPECT_TRUE(poll_mask(e->fd, 0) & POLLPRI);
	ASSERT_OK(slot_events(e->fd, CCID_EVENTS_ACK_RESET, &ev));
	EXPECT_EQ(1, ev.reset_pending);
	EXPECT_FALSE(poll_mask(e->fd, 0) & POLLPRI);
	memset(&pr, 0, sizeof(pr));
	EXPECT_EQ(0, do_ioctl(e->fd, CCID_IOC_GET_PARAMS, &pr));

	/*
	 * A file opened before the reset is refused until it acknowledges;
	 * one opened after it is not.
	 */
	EXPECT_TRUE(poll_mask(fd_old, 0) & POLLPRI);
	memset(&pr, 0, sizeof(pr));
	EXPECT_ERRNO(ECONNRESET, do_ioctl(fd_old, CCID_IOC_GET_PARAMS, &pr));
	fd_new = open(e->dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd_new);
	EXPECT_FALSE(poll_mask(fd_new, 0) & POLLPRI);
	memset(&pr, 0, sizeof(pr));
	EXPECT_EQ(0, do_ioctl(fd_new, CCID_IOC_GET_PARAMS, &pr));
	close(fd_new);
	EXPECT_EQ(1, uevent_resets(e, "0x1"));

	ASSERT_CARD_WORKS(e->fd);
	/* the other file's refusal ends with its own power on */
	ASSERT_CARD_WORKS(fd_old);
	close(fd_old);
	/* the late answer was dropped by the emulator's Abort */
	EXPECT_EVENTS(0, e, "^answer 2 .*status=0x00 ");
	EXPECT_DELTAS(e, &c0, 1, 1, 0, 0, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * Step 2: the reader holds the Abort until a bulk endpoint is cleared.
 * The first Abort fails, the halts are cleared, the second Abort works;
 * no USB reset.
 */
TEST_F_TIMEOUT(recovery, ladder_step2_abort_after_clear_halt, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];
	int i_held, i_clr;
	long t0, ms;

	ASSERT_OK(emu_start(e, "--drop", "2", "--abort", "after-clear-halt",
			    NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);

	t0 = now_ms();
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	EXPECT_LE(XFR_T_MS, ms);
	EXPECT_GE(LADDER_MAX_MS, ms);
	TH_LOG("timeout and step 2: %ld ms", ms);

	EXPECT_ABORTS(2, e, 1);
	i_held = log_find(e, 0, NULL, 0, "^abort-held seq=1 slot=0$");
	i_clr = log_find(e, 0, NULL, 0, "^clear-halt ep=0x81$");
	EXPECT_LE(0, i_held);
	EXPECT_LT(i_held, i_clr);
	EXPECT_LT(i_held, log_find(e, 0, NULL, 0, "^clear-halt ep=0x02$"));
	EXPECT_LT(i_clr, log_find(e, 0, NULL, 0, "^abort-answered seq=1 slot=0 "));
	EXPECT_LE(0, log_find(e, i_clr, NULL, 0, "^cmd [0-9]+ type=0x63 "));
	EXPECT_LE(0, log_find(e, i_clr, NULL, 0, "^cmd [0-9]+ type=0x6d "));
	EXPECT_EVENTS(0, e, "^reset$");
	EXPECT_DELTAS(e, &c0, 1, 2, 1, 0, 0, 0, 0);
	EXPECT_KMSG(1, DRV "slot 0: abort failed \\(-110\\), clearing halts$",
		    e->busre);
	EXPECT_KMSG(0, DRV "reader does not answer", e->busre);

	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * Step 3 alone, with a reader that ignores every Abort but comes back
 * after a USB reset (--revive-on-reset): the same ladder as the SPR332's.
 */
TEST_F_TIMEOUT(recovery, ladder_step3_reset_revives, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];
	int i_reset;
	long t0, ms;

	ASSERT_OK(emu_start(e, "--mute-after", "1", "--abort", "ignore",
			    "--revive-on-reset", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);

	t0 = now_ms();
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	EXPECT_LE(XFR_T_MS, ms);
	EXPECT_GE(LADDER_MAX_MS, ms);
	EXPECT_ABORTS(2, e, 1);
	EXPECT_EVENTS(2, e, "^abort-ignored seq=1 slot=0 reason=option$");
	i_reset = log_find(e, 0, NULL, 0, "^reset$");
	EXPECT_LT(log_find(e, 0, NULL, 0, "^clear-halt ep=0x81$"), i_reset);
	EXPECT_LT(i_reset, log_find(e, i_reset, NULL, 0, "^unmuted reason=reset$"));
	EXPECT_LT(i_reset, log_find(e, i_reset, NULL, 0,
				    "^answer [0-9]+ type=0x81 slot=0 seq=2 "));
	EXPECT_DELTAS(e, &c0, 1, 2, 1, 1, 0, 0, 0);
	EXPECT_KMSG(1, DRV "reader does not answer: resetting it$", e->busre);
	EXPECT_EQ(1, uevent_resets(e, "0x1"));

	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * A reader that stays mute after the reset: the caller still gets its
 * ETIMEDOUT, the kernel says the reader is still dead, and the next
 * failure goes straight to the reset again: nothing proved the reader
 * back.  Once the reader answers again, power on works.
 */
TEST_F_TIMEOUT(recovery, ladder_step3_reader_stays_dead, 180)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];
	long t0, ms;

	ASSERT_OK(emu_start(e, "--mute-after", "1", "--abort", "ignore", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);

	t0 = now_ms();
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	EXPECT_LE(XFR_T_MS, ms);
	EXPECT_GE(LADDER_MAX_MS, ms);
	EXPECT_EVENTS(1, e, "^reset$");
	/* the GetSlotStatus after the reset is not answered either */
	EXPECT_EVENT(e, "^cmd [0-9]+ type=0x65 slot=0 seq=2 ");
	EXPECT_EVENT(e, "^no-answer [0-9]+ reason=muted$");
	EXPECT_DELTAS(e, &c0, 1, 2, 1, 1, 0, 0, 0);
	EXPECT_KMSG(1, DRV "reader still dead after a reset: -110$",
		    e->busre);

	/* Power on is not refused after a reset: it runs the ladder again. */
	t0 = now_ms();
	memset(&p, 0, sizeof(p));
	p.timeout_ms = XFR_T_MS;
	p.status = 0xff;
	EXPECT_ERRNO(ETIMEDOUT, do_ioctl(e->fd, CCID_IOC_POWER_ON, &p));
	ms = now_ms() - t0;
	EXPECT_LE(XFR_T_MS, ms);
	EXPECT_GE(LADDER_MAX_MS, ms);
	EXPECT_EQ(0xff, p.status);
	EXPECT_EVENTS(2, e, "^reset$");
	EXPECT_DELTAS(e, &c0, 2, 2, 1, 2, 0, 0, 0);

	ASSERT_OK(emu_ctl(e, "unmute"));
	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_DELTAS(e, &c0, 2, 2, 1, 2, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	expect_kmsg_clean(_metadata, __LINE__, true);
}

/* ------------------------------------------------------------------ */
/* 4. Time extensions */

TEST_F_TIMEOUT(recovery, time_ext_three_then_answer, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];

	ASSERT_OK(emu_start(e, "--time-ext", "2:3:2", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);
	ASSERT_OK(echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_BYTES(echo_rsp, sizeof(echo_rsp), rx, x.rx_len);
	EXPECT_EVENTS(3, e, "^time-ext 2 slot=0 seq=1 mult=2$");
	EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, 0, 3, 0);
	EXPECT_EVENTS(0, e, "^abort-");
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * Each extension restarts the wait: twelve, 500 ms apart, carry a command
 * with a 1 s timeout to an answer after 6 s.
 */
TEST_F_TIMEOUT(recovery, time_ext_many_restart_the_wait, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];
	long t0, ms;

	ASSERT_OK(emu_start(e, "--time-ext", "2:12:1", "--time-ext-gap", "500",
			    NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);
	t0 = now_ms();
	ASSERT_OK(echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	ASSERT_BYTES(echo_rsp, sizeof(echo_rsp), rx, x.rx_len);
	EXPECT_LE(12 * 500, ms);
	EXPECT_EVENTS(12, e, "^time-ext 2 slot=0 seq=1 mult=1$");
	EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, 0, 12, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * Time extensions cannot stretch a wait past time_ext_limit: with the
 * limit at 3 s and a 1 s timeout, a reader that asks for more time every
 * 500 ms for 10 s has its command aborted 3 s after it was sent.
 */
TEST_F_TIMEOUT(recovery, time_ext_past_the_limit, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0, c1;
	struct ccid_xfer x;
	uint8_t rx[64];
	long t0, ms;

	ASSERT_OK(param_set(e, TIME_EXT_PARAM, "3"));
	ASSERT_OK(emu_start(e, "--time-ext", "2:20:1", "--time-ext-gap", "500",
			    NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);
	t0 = now_ms();
	EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	TH_LOG("limit reached, then the ladder: %ld ms", ms);
	EXPECT_LE(3000, ms);
	EXPECT_GT(20 * 500, ms);	/* the answer was not waited for */
	EXPECT_EVENTS(1, e, "^abort-answered seq=1 slot=0 aborted=1$");
	EXPECT_EVENTS(0, e, "^answer 2 type=0x80 slot=0 seq=1 .*status=0x00");
	counters_read(e, &c1);
	EXPECT_EQ(1, c1.v[C_TIMEOUTS] - c0.v[C_TIMEOUTS]);
	EXPECT_EQ(1, c1.v[C_ABORTS] - c0.v[C_ABORTS]);
	EXPECT_EQ(0, c1.v[C_USB_RESETS] - c0.v[C_USB_RESETS]);
	/* one every 500 ms for 3 s; TCG may be late with a few */
	EXPECT_LE(3, c1.v[C_TIME_EXT] - c0.v[C_TIME_EXT]);
	EXPECT_GE(7, c1.v[C_TIME_EXT] - c0.v[C_TIME_EXT]);
	EXPECT_KMSG(1, DRV "slot 0: command 0x6f: time extensions past the limit$",
		    e->busre);
	EXPECT_EQ(1, uevent_resets(e, "0x1"));

	/* Back to the default: the same reader is waited for to the end */
	ASSERT_OK(param_restore(e, TIME_EXT_PARAM));
	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * bError multiplies the timeout for the next wait: one extension, then
 * the answer 2 s later, with a 1 s timeout.  Multiplier 3 waits long
 * enough; 1, 0 and 0xFF wait the timeout once and time out.
 */
FIXTURE(time_ext_mult) {
	struct emu e;
};

FIXTURE_VARIANT(time_ext_mult) {
	const char *mult;
	bool answered;
};

FIXTURE_VARIANT_ADD(time_ext_mult, mult_3_waits_3x) {
	.mult = "3", .answered = true,
};

FIXTURE_VARIANT_ADD(time_ext_mult, mult_1_waits_once) {
	.mult = "1", .answered = false,
};

FIXTURE_VARIANT_ADD(time_ext_mult, mult_0_waits_once) {
	.mult = "0", .answered = false,
};

FIXTURE_VARIANT_ADD(time_ext_mult, mult_255_waits_once) {
	.mult = "255", .answered = false,
};

EMU_FIXTURE_HOOKS(time_ext_mult);

TEST_F_TIMEOUT(time_ext_mult, one_extension, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	char script[32];
	uint8_t rx[64];
	long t0, ms;

	strf(script, sizeof(script), "2:1:%s", variant->mult);
	ASSERT_OK(emu_start(e, "--time-ext", script, "--time-ext-gap", "2000",
			    NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);
	t0 = now_ms();
	if (variant->answered) {
		ASSERT_OK(echo_1234(e->fd, rx, sizeof(rx), &x));
		ASSERT_BYTES(echo_rsp, sizeof(echo_rsp), rx, x.rx_len);
		EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, 0, 1, 0);
		EXPECT_EVENTS(0, e, "^abort-");
	} else {
		EXPECT_ERRNO(ETIMEDOUT, echo_1234(e->fd, rx, sizeof(rx), &x));
		ms = now_ms() - t0;
		EXPECT_LE(XFR_T_MS, ms);
		EXPECT_GE(LADDER_MAX_MS, ms);
		EXPECT_EQ(0xff, x.status);
		EXPECT_DELTAS(e, &c0, 1, 1, 0, 0, 0, 1, 0);
		EXPECT_ABORTS(1, e, 1);
		EXPECT_EVENTS(1, e, "^abort-answered seq=1 slot=0 aborted=1$");
		EXPECT_KMSG(1, DRV "slot 0: command 0x6f: no answer$",
			    e->busre);
		EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
		ASSERT_CARD_WORKS(e->fd);
	}
	EXPECT_EVENTS(1, e, "^time-ext 2 slot=0 seq=1 mult=%s$", variant->mult);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/* ------------------------------------------------------------------ */
/* 5. Signals during a PIN entry */

TEST_F_TIMEOUT(recovery, sigint_during_secure, 120)
{
	struct emu *e = &self->e;
	struct ccid_slot_events ev0, ev;
	struct child_result r;
	struct ccid_power_on p;
	struct counters c0;
	uint8_t blk[19];
	int seq, rfd, status, fd2;
	long t0, ms;
	pid_t pid;

	ASSERT_OK(emu_start(e, NULL));		/* the pad waits for a PIN */
	ASSERT_OK(power_on(e->fd, 0, &p));
	ASSERT_OK(slot_events(e->fd, 0, &ev0));
	counters_read(e, &c0);

	spr332_verify_block(blk);
	pid = secure_child(e, blk, sizeof(blk), &rfd);
	ASSERT_LT(0, pid);
	seq = wait_pin_entry(e);
	ASSERT_LE(0, seq) TH_LOG("the Secure never reached the pad");
	/* the child is blocked */
	EXPECT_EQ(-ETIMEDOUT, child_result(rfd, 300, &r));

	t0 = now_ms();
	ASSERT_EQ(0, kill(pid, SIGINT));
	ASSERT_OK(child_result(rfd, 3 * PROMPT_MS, &r));
	ms = now_ms() - t0;
	close(rfd);
	EXPECT_EQ(-EINTR, r.ret) TH_LOG("Secure: %s", errname(r.ret));
	EXPECT_EQ(0xff, r.status);
	EXPECT_GT(PROMPT_MS, ms) TH_LOG("EINTR after %ld ms", ms);
	ASSERT_OK(wait_child(pid, PROMPT_MS, &status));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));

	/* the entry was aborted in the reader, for that bSeq */
	EXPECT_ABORTS(1, e, seq);
	EXPECT_EVENTS(1, e, "^abort-answered seq=%d slot=0 aborted=1$", seq);
	EXPECT_EVENT(e, "^answer [0-9]+ type=0x80 slot=0 seq=%d len=0 status=0x40 error=0xff ",
		     seq);
	/* an interrupted command whose Abort worked leaves the slot alone */
	EXPECT_EVENTS(0, e, "^cmd [0-9]+ type=0x63 ");
	EXPECT_DELTAS(e, &c0, 0, 1, 0, 0, 0, 0, 0);
	ASSERT_OK(slot_events(e->fd, 0, &ev));
	EXPECT_EQ(0, ev.reset_pending);
	EXPECT_EQ(ev0.generation[0], ev.generation[0]);

	/* a new opener powers on and exchanges an APDU */
	fd2 = open(e->dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd2);
	ASSERT_CARD_WORKS(fd2);
	close(fd2);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG(0, DRV "(slot|reader|bulk)", e->busre);
	EXPECT_KMSG_CLEAN();
}

TEST_F_TIMEOUT(recovery, sigkill_during_secure, 120)
{
	struct emu *e = &self->e;
	struct ccid_slot_events ev0, ev;
	struct child_result r;
	struct ccid_power_on p;
	struct counters c0;
	uint8_t blk[19];
	int seq, rfd, status, fd2;
	long t0, ms;
	pid_t pid;

	ASSERT_OK(emu_start(e, NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	ASSERT_OK(slot_events(e->fd, 0, &ev0));
	counters_read(e, &c0);

	spr332_verify_block(blk);
	pid = secure_child(e, blk, sizeof(blk), &rfd);
	ASSERT_LT(0, pid);
	seq = wait_pin_entry(e);
	ASSERT_LE(0, seq) TH_LOG("the Secure never reached the pad");

	t0 = now_ms();
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_OK(wait_child(pid, 3 * PROMPT_MS, &status));
	ms = now_ms() - t0;
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	EXPECT_GT(PROMPT_MS, ms) TH_LOG("the killed process took %ld ms", ms);
	/* it wrote no result: the pipe just ends */
	EXPECT_NE(0, child_result(rfd, 0, &r));
	close(rfd);

	/* the Abort ran for the dead caller, and the slot was left alone */
	EXPECT_ABORTS(1, e, seq);
	EXPECT_EVENTS(1, e, "^abort-answered seq=%d slot=0 aborted=1$", seq);
	EXPECT_EVENTS(0, e, "^cmd [0-9]+ type=0x63 ");
	EXPECT_DELTAS(e, &c0, 0, 1, 0, 0, 0, 0, 0);
	ASSERT_OK(slot_events(e->fd, 0, &ev));
	EXPECT_EQ(0, ev.reset_pending);
	EXPECT_EQ(ev0.generation[0], ev.generation[0]);

	fd2 = open(e->dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd2);
	ASSERT_CARD_WORKS(fd2);
	close(fd2);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG(0, DRV "(slot|reader|bulk)", e->busre);
	EXPECT_KMSG_CLEAN();
}

/* ------------------------------------------------------------------ */
/* 6. CCID_IOC_ABORT from another file during a PIN entry */

TEST_F_TIMEOUT(recovery, ioctl_abort_during_secure, 120)
{
	struct emu *e = &self->e;
	struct ccid_slot_events ev;
	struct ccid_power_on p;
	struct bg_secure bg;
	struct ccid_abort a;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t blk[19], rx[64];
	int seq, fd2, cmds;
	long t0, ms;

	ASSERT_OK(emu_start(e, "--max-slot-index", "1", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	fd2 = open(e->dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd2);
	counters_read(e, &c0);

	/* on an idle slot it does nothing */
	memset(&a, 0, sizeof(a));
	cmds = log_lines(e);
	ASSERT_OK(do_ioctl(fd2, CCID_IOC_ABORT, &a));
	sleep_ms(200);
	EXPECT_EQ(cmds, log_lines(e));
	EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, 0, 0, 0);

	spr332_verify_block(blk);
	ASSERT_OK(bg_secure_start(&bg, e->fd, blk, sizeof(blk)));
	seq = wait_pin_entry(e);
	if (seq < 0)
		emu_ctl(e, "cancel-pin");	/* let the thread end */
	ASSERT_LE(0, seq) TH_LOG("the Secure never reached the pad");
	EXPECT_EQ(-ETIMEDOUT, bg_secure_join(&bg, 300));

	/* an Abort for the other slot leaves the PIN entry alone */
	a.slot = 1;
	ASSERT_OK(do_ioctl(fd2, CCID_IOC_ABORT, &a));
	EXPECT_EQ(-ETIMEDOUT, bg_secure_join(&bg, 1000));
	EXPECT_EVENTS(0, e, "^abort-");
	a.slot = 0;

	t0 = now_ms();
	ASSERT_OK(do_ioctl(fd2, CCID_IOC_ABORT, &a));
	ASSERT_OK(bg_secure_join(&bg, 3 * PROMPT_MS));
	ms = now_ms() - t0;
	EXPECT_EQ(-ECANCELED, bg.ret) TH_LOG("Secure: %s", errname(bg.ret));
	EXPECT_EQ(0xff, bg.x.status);	/* the driver's ECANCELED */
	EXPECT_GT(PROMPT_MS, ms);

	EXPECT_ABORTS(1, e, seq);
	EXPECT_EVENTS(1, e, "^abort-answered seq=%d slot=0 aborted=1$", seq);
	EXPECT_EVENTS(0, e, "^cmd [0-9]+ type=0x63 ");
	EXPECT_DELTAS(e, &c0, 0, 1, 0, 0, 0, 0, 0);

	/* no new generation: the same file goes on without powering on */
	ASSERT_OK(slot_events(e->fd, 0, &ev));
	EXPECT_EQ(0, ev.reset_pending);
	EXPECT_FALSE(poll_mask(e->fd, 0) & POLLPRI);
	ASSERT_OK(echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_BYTES(echo_rsp, sizeof(echo_rsp), rx, x.rx_len);
	close(fd2);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG(0, DRV "(slot|reader|bulk)", e->busre);
	EXPECT_KMSG_CLEAN();
}

/* ------------------------------------------------------------------ */
/* 7. Unplug */

/* Every ioctl on a file of an unplugged reader is ENODEV; poll says HUP. */
/*
 * The node goes away in disconnect(), after the driver marked the reader
 * gone: a command may see its URB fail with ENODEV a little earlier.
 */
static bool node_gone(struct emu *e, long ms)
{
	long end = now_ms() + ms;

	while (!access(e->dev, F_OK) && now_ms() < end)
		sleep_ms(50);
	return access(e->dev, F_OK) != 0;
}

#define EXPECT_ALL_ENODEV(fd) do {					\
	struct ccid_reader_info __i;					\
	struct ccid_slot_status __st;					\
	struct ccid_slot_events __ev;					\
	struct ccid_power_on __p;					\
	struct ccid_abort __a;						\
	struct ccid_xfer __x;						\
	uint8_t __rx[64];						\
	short __rev;							\
	memset(&__a, 0, sizeof(__a));					\
	EXPECT_ERRNO(ENODEV, do_ioctl(fd, CCID_IOC_GET_INFO, &__i));	\
	EXPECT_ERRNO(ENODEV, slot_status(fd, 0, &__st));			\
	EXPECT_ERRNO(ENODEV, power_on(fd, 0, &__p));			\
	EXPECT_ERRNO(ENODEV, echo_1234(fd, __rx, sizeof(__rx), &__x));	\
	EXPECT_ERRNO(ENODEV, do_ioctl(fd, CCID_IOC_ABORT, &__a));	\
	EXPECT_ERRNO(ENODEV, slot_events(fd, 0, &__ev));		\
	__rev = poll_mask(fd, 0);				\
	EXPECT_EQ(POLLHUP | POLLERR, __rev & (POLLHUP | POLLERR))	\
		TH_LOG("poll: revents 0x%x", __rev);			\
} while (0)

TEST_F_TIMEOUT(recovery, disconnect_during_xfr, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct ccid_xfer x;
	uint8_t rx[64];
	long t0, ms;

	ASSERT_OK(emu_start(e, "--disconnect-at", "2", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	t0 = now_ms();
	EXPECT_ERRNO(ENODEV, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	EXPECT_GT(PROMPT_MS, ms) TH_LOG("ENODEV after %ld ms", ms);
	EXPECT_EQ(0xff, x.status);
	EXPECT_TRUE(emu_wait_gone(e, EMU_EXIT_MS));
	EXPECT_EQ(0, WIFEXITED(e->status) ? WEXITSTATUS(e->status) : -1);
	EXPECT_EVENT(e, "^detached reason=disconnect-at cmd=2$");

	EXPECT_TRUE(node_gone(e, 5000));
	EXPECT_ALL_ENODEV(e->fd);
	emu_stop(e);
	EXPECT_KMSG(0, DRV "slot 0: abort failed", e->busre);
	EXPECT_KMSG_CLEAN();
}

TEST_F_TIMEOUT(recovery, disconnect_during_pin_entry, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct bg_secure bg;
	uint8_t blk[19];
	long t0, ms;
	int seq;

	ASSERT_OK(emu_start(e, NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	spr332_verify_block(blk);
	ASSERT_OK(bg_secure_start(&bg, e->fd, blk, sizeof(blk)));
	seq = wait_pin_entry(e);
	if (seq < 0)
		emu_ctl(e, "cancel-pin");
	ASSERT_LE(0, seq) TH_LOG("the Secure never reached the pad");

	t0 = now_ms();
	ASSERT_OK(emu_ctl_nowait(e, "disconnect"));
	ASSERT_OK(bg_secure_join(&bg, 3 * PROMPT_MS));
	ms = now_ms() - t0;
	EXPECT_EQ(-ENODEV, bg.ret) TH_LOG("Secure: %s", errname(bg.ret));
	EXPECT_EQ(0xff, bg.x.status);
	EXPECT_GT(PROMPT_MS, ms) TH_LOG("ENODEV after %ld ms", ms);
	EXPECT_TRUE(emu_wait_gone(e, EMU_EXIT_MS));
	EXPECT_EQ(0, WIFEXITED(e->status) ? WEXITSTATUS(e->status) : -1);
	EXPECT_EVENT(e, "^detached reason=disconnect$");
	/* the Abort procedure is skipped for a reader that is gone */
	EXPECT_EVENTS(0, e, "^abort-");

	EXPECT_TRUE(node_gone(e, 5000));
	EXPECT_ALL_ENODEV(e->fd);
	emu_stop(e);
	EXPECT_KMSG(0, DRV "slot 0: abort failed", e->busre);
	EXPECT_KMSG_CLEAN();
}

/* Unplugged while the ladder runs: ENODEV at once, nothing else tried */
TEST_F_TIMEOUT(recovery, disconnect_during_recovery, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct bg_secure bg;
	long t0, ms;

	ASSERT_OK(emu_start(e, "--mute-after", "1", "--abort", "ignore", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	/* an XfrBlock in the background, through the Secure helper's thread */
	memset(&bg, 0, sizeof(bg));
	bg.fd = e->fd;
	bg.blk = echo_cmd;
	bg.len = sizeof(echo_cmd);
	bg.xfr = true;
	ASSERT_EQ(0, pthread_create(&bg.thread, NULL, bg_secure_fn, &bg));
	/* the first Abort is being drained */
	ASSERT_LE(0, log_wait(e, LADDER_MAX_MS, 0, NULL, 0,
			      "^abort-ignored seq=1 slot=0 reason=option$"));

	t0 = now_ms();
	ASSERT_OK(emu_ctl_nowait(e, "disconnect"));
	ASSERT_OK(bg_secure_join(&bg, LADDER_MAX_MS));
	ms = now_ms() - t0;
	EXPECT_EQ(-ENODEV, bg.ret) TH_LOG("XfrBlock: %s", errname(bg.ret));
	EXPECT_EQ(0xff, bg.x.status);
	EXPECT_GT(PROMPT_MS, ms) TH_LOG("ENODEV after %ld ms", ms);
	EXPECT_TRUE(emu_wait_gone(e, EMU_EXIT_MS));
	EXPECT_EVENT(e, "^detached reason=disconnect$");
	EXPECT_EVENTS(1, e, "^abort-cmd ");
	EXPECT_TRUE(node_gone(e, 5000));
	EXPECT_ALL_ENODEV(e->fd);
	emu_stop(e);
	EXPECT_KMSG(0, DRV "reader does not answer", e->busre);
	EXPECT_KMSG_CLEAN();
}

/* ------------------------------------------------------------------ */
/* 8. Stalled bulk endpoints */

FIXTURE(stall) {
	struct emu e;
};

FIXTURE_VARIANT(stall) {
	const char *script;	/* --stall */
	const char *ep;		/* the endpoint that stalls */
	const char *dir;	/* in the kernel log */
};

FIXTURE_VARIANT_ADD(stall, bulk_in) {
	.script = "2:in", .ep = "0x81", .dir = "IN",
};

FIXTURE_VARIANT_ADD(stall, bulk_out) {
	.script = "2:out", .ep = "0x02", .dir = "OUT",
};

EMU_FIXTURE_HOOKS(stall);

/*
 * EIO; the driver clears the halt (clear_halts), aborts the command, and,
 * the card's state being unknown, powers the slot off: ECONNRESET, then
 * power on and the next command works.
 */
TEST_F_TIMEOUT(stall, eio_then_recovered, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];
	int i_stall, i_clr;
	long t0, ms;

	ASSERT_OK(emu_start(e, "--stall", variant->script, NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);
	t0 = now_ms();
	EXPECT_ERRNO(EIO, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	EXPECT_GE(LADDER_MAX_MS, ms);
	EXPECT_EQ(0xff, x.status);

	EXPECT_EVENT(e, "^no-answer 2 reason=stall$");
	i_stall = log_find(e, 0, NULL, 0, "^stall ep=%s$", variant->ep);
	i_clr = log_find(e, 0, NULL, 0, "^clear-halt ep=%s$", variant->ep);
	EXPECT_LE(0, i_stall);
	EXPECT_LT(i_stall, i_clr);
	EXPECT_EVENTS(1, e, "^clear-halt ");
	EXPECT_EVENTS(1, e, "^cmd 2 type=0x6f ");
	EXPECT_ABORTS(1, e, 1);
	EXPECT_EVENTS(1, e, "^abort-answered seq=1 slot=0 aborted=0$");
	EXPECT_EVENTS(0, e, "^reset$");
	EXPECT_DELTAS(e, &c0, 0, 1, 1, 0, 0, 0, 0);
	EXPECT_KMSG(1, DRV "bulk-%s endpoint stalled$", e->busre,
		    variant->dir);

	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_DELTAS(e, &c0, 0, 1, 1, 0, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/* ------------------------------------------------------------------ */
/* 3. Malformed answers */

FIXTURE(bad_frame) {
	struct emu e;
};

FIXTURE_VARIANT(bad_frame) {
	const char *kind;	/* --bad 2:KIND */
	int err;		/* of the XfrBlock */
	const char *why;	/* "bad answer: WHY" for EPROTO */
	int stale;		/* stale_frames, after the next command */
};

/* answers to another bSeq or bSlot are stale: dropped, then a timeout */
FIXTURE_VARIANT_ADD(bad_frame, wrong_seq) {
	.kind = "wrong-seq", .err = ETIMEDOUT, .stale = 1,
};

FIXTURE_VARIANT_ADD(bad_frame, wrong_slot) {
	.kind = "wrong-slot", .err = ETIMEDOUT, .stale = 1,
};

FIXTURE_VARIANT_ADD(bad_frame, wrong_seq_then_right) {
	.kind = "wrong-seq-then-right", .err = 0, .stale = 1,
};

/* the second copy is dropped as stale by the next command */
FIXTURE_VARIANT_ADD(bad_frame, duplicate) {
	.kind = "duplicate", .err = 0, .stale = 1,
};

FIXTURE_VARIANT_ADD(bad_frame, wrong_type) {
	.kind = "wrong-type", .err = EPROTO, .why = "wrong message type",
};

FIXTURE_VARIANT_ADD(bad_frame, len_over_data) {
	.kind = "len-over-data", .err = EPROTO,
	.why = "dwLength does not match the data received",
};

FIXTURE_VARIANT_ADD(bad_frame, len_over_max) {
	.kind = "len-over-max", .err = EPROTO,
	.why = "message longer than dwMaxCCIDMessageLength",
};

FIXTURE_VARIANT_ADD(bad_frame, short_header) {
	.kind = "short-header", .err = EPROTO, .why = "short header",
};

FIXTURE_VARIANT_ADD(bad_frame, babble) {
	.kind = "babble", .err = EPROTO, .why = "more than a message",
};

EMU_FIXTURE_HOOKS(bad_frame);

TEST_F_TIMEOUT(bad_frame, recovered, 120)
{
	struct emu *e = &self->e;
	char kind[32];
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];
	int i_abort;
	long t0, ms;

	strf(kind, sizeof(kind), "2:%s", variant->kind);
	ASSERT_OK(emu_start(e, "--bad", kind, NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);

	t0 = now_ms();
	EXPECT_ERRNO(variant->err, echo_1234(e->fd, rx, sizeof(rx), &x));
	ms = now_ms() - t0;
	EXPECT_GE(LADDER_MAX_MS, ms);
	/* the "-then-right" kind logs its bad half */
	strf(kind, sizeof(kind), "%.*s",
	     (int)(strstr(variant->kind, "-then-right") ?
		   strstr(variant->kind, "-then-right") - variant->kind :
		   (long)strlen(variant->kind)), variant->kind);

	if (!variant->err) {
		ASSERT_BYTES(echo_rsp, sizeof(echo_rsp), rx, x.rx_len);
		/*
		 * The next command works, and drops what is left (the second
		 * copy of a duplicate goes out, and is logged, only then).
		 */
		ASSERT_OK(echo_1234(e->fd, rx, sizeof(rx), &x));
		ASSERT_BYTES(echo_rsp, sizeof(echo_rsp), rx, x.rx_len);
		EXPECT_EVENT(e, "^bad 2 kind=%s ", kind);
		EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, variant->stale, 0, 0);
		EXPECT_EVENTS(0, e, "^abort-");
		EXPECT_EQ(0, emu_stop(e));
		EXPECT_KMSG_CLEAN();
		return;
	}

	EXPECT_EVENT(e, "^bad 2 kind=%s ", kind);
	EXPECT_EQ(0xff, x.status);
	if (variant->err == ETIMEDOUT) {
		EXPECT_LE(XFR_T_MS, ms);
		EXPECT_DELTAS(e, &c0, 1, 1, 0, 0, variant->stale, 0, 0);
		EXPECT_KMSG(1, DRV "slot 0: command 0x6f: no answer$",
			    e->busre);
	} else {
		EXPECT_DELTAS(e, &c0, 0, 1, 0, 0, 0, 0, 1);
		EXPECT_KMSG(1, DRV "slot 0: bad answer: %s$", e->busre,
			    variant->why);
	}
	/* recovery: Abort, then IccPowerOff and ResetParameters */
	EXPECT_ABORTS(1, e, 1);
	i_abort = log_find(e, 0, NULL, 0, "^abort-answered seq=1 slot=0 ");
	EXPECT_LE(0, i_abort);
	EXPECT_LT(i_abort, log_find(e, i_abort, NULL, 0,
				    "^answer [0-9]+ type=0x81 slot=0 seq=2 "));
	EXPECT_LT(i_abort, log_find(e, i_abort, NULL, 0,
				    "^answer [0-9]+ type=0x82 slot=0 seq=3 "));
	EXPECT_EVENTS(0, e, "^clear-halt ");

	EXPECT_ERRNO(ECONNRESET, echo_1234(e->fd, rx, sizeof(rx), &x));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/* ------------------------------------------------------------------ */
/* Power management: autosuspend once the last file is closed */

static int usb_power_set(struct emu *e, const char *name, const char *val)
{
	char path[PATH_MAX];

	strf(path, sizeof(path), "/sys/bus/usb/devices/%s/power/%s", e->busid,
	     name);
	return write_file(path, val, strlen(val));
}

/* power/runtime_status of the USB device becomes @want within @ms */
static bool usb_runtime_status_is(struct emu *e, const char *want, long ms)
{
	char path[PATH_MAX], buf[32];
	long end = now_ms() + ms;

	strf(path, sizeof(path), "/sys/bus/usb/devices/%s/power/runtime_status",
	     e->busid);
	do {
		read_attr(path, buf, sizeof(buf));
		buf[strcspn(buf, "\n")] = '\0';
		if (!strcmp(buf, want))
			return true;
		sleep_ms(50);
	} while (now_ms() < end);
	return false;
}

FIXTURE(pm) {
	struct emu e;
};

/*
 * resume: a plain runtime resume; reset_resume: usbcore's
 * USB_QUIRK_RESET_RESUME ('b') for the emulated VID:PID makes every
 * resume a reset-resume, which the reader sees as a USB reset.
 */
FIXTURE_VARIANT(pm) {
	bool reset_resume;
};

FIXTURE_VARIANT_ADD(pm, resume) {
	.reset_resume = false,
};

FIXTURE_VARIANT_ADD(pm, reset_resume) {
	.reset_resume = true,
};

EMU_FIXTURE_HOOKS(pm);

/*
 * An open file keeps the reader resumed.  Closed, it autosuspends (the
 * driver's suspend runs); the next open resumes it, and every slot starts
 * a new generation, which that file already holds as acknowledged: the
 * card is taken as powered off and is powered on again.
 */
TEST_F_TIMEOUT(pm, autosuspend_then_open, 120)
{
	struct emu *e = &self->e;
	struct ccid_slot_events ev0, ev1;
	struct ccid_power_on p;

	/* read at enumeration: set before the reader comes */
	if (variant->reset_resume)
		ASSERT_OK(param_set(e, USBCORE_QUIRKS, "1209:cc1d:b"));
	ASSERT_OK(emu_start(e, "--vid", "0x1209", "--pid", "0xcc1d", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	ASSERT_OK(slot_events(e->fd, 0, &ev0));

	ASSERT_OK(usb_power_set(e, "autosuspend_delay_ms", "0"));
	ASSERT_OK(usb_power_set(e, "control", "auto"));
	/* open: the reader stays active */
	sleep_ms(500);
	EXPECT_TRUE(usb_runtime_status_is(e, "active", 0));

	close(e->fd);
	e->fd = -1;
	ASSERT_TRUE(usb_runtime_status_is(e, "suspended", PM_WAIT_MS));
	EXPECT_EQ(0, uevent_resets(e, "0x1"));

	e->fd = open(e->dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, e->fd) TH_LOG("open %s: %s", e->dev, strerror(errno));
	EXPECT_TRUE(usb_runtime_status_is(e, "active", 0));
	ASSERT_OK(slot_events(e->fd, 0, &ev1));
	EXPECT_EQ(ev0.generation[0] + 1, ev1.generation[0]);
	EXPECT_EQ(0, ev1.reset_pending);
	EXPECT_EQ(1, uevent_resets(e, "0x1"));
	EXPECT_EVENTS(variant->reset_resume ? 1 : 0, e, "^reset$");

	/* the new file acknowledged the generation at open */
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_TRUE(usb_runtime_status_is(e, "active", 0));
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/* ------------------------------------------------------------------ */
/* 9. What one opener may do to the others (security review findings) */

/*
 * A timeout below the floor is raised to it: with 1 ms, every command of
 * a slow card would run the ladder and reset the card for every user.
 */
TEST_F_TIMEOUT(recovery, timeout_floor, 60)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];

	ASSERT_OK(emu_start(e, "--delay", "2:300", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);
	ASSERT_OK(xfer(e->fd, CCID_IOC_XFR_BLOCK, 0, echo_cmd, sizeof(echo_cmd),
		       rx, sizeof(rx), 1, &x));
	ASSERT_BYTES(echo_rsp, sizeof(echo_rsp), rx, x.rx_len);
	EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/* A file opened read-only may look, not act */
TEST_F_TIMEOUT(recovery, read_only_open_looks_only, 60)
{
	struct emu *e = &self->e;
	struct ccid_reader_info info;
	struct ccid_slot_status st;
	struct ccid_slot_events ev;
	struct ccid_power_on p;
	struct ccid_abort a;
	struct ccid_xfer x;
	uint8_t rx[64];
	int fd;

	ASSERT_OK(emu_start(e, NULL));
	fd = open(e->dev, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_OK(do_ioctl(fd, CCID_IOC_GET_INFO, &info));
	memset(&st, 0, sizeof(st));
	EXPECT_OK(do_ioctl(fd, CCID_IOC_SLOT_STATUS, &st));
	EXPECT_OK(slot_events(fd, 0, &ev));
	EXPECT_ERRNO(EBADF, power_on(fd, 0, &p));
	EXPECT_ERRNO(EBADF, echo_1234(fd, rx, sizeof(rx), &x));
	memset(&st, 0, sizeof(st));
	EXPECT_ERRNO(EBADF, do_ioctl(fd, CCID_IOC_POWER_OFF, &st));
	memset(&a, 0, sizeof(a));
	EXPECT_ERRNO(EBADF, do_ioctl(fd, CCID_IOC_ABORT, &a));
	/* an unknown ioctl is still ENOTTY */
	EXPECT_EQ(-1, ioctl(fd, _IO(CCID_IOC_MAGIC, 0x7f)));
	EXPECT_EQ(ENOTTY, errno);
	close(fd);
	/* only GET_INFO, SLOT_STATUS and SLOT_EVENTS reached the driver */
	EXPECT_EVENTS(0, e, "^cmd [0-9]+ type=0x62 ");
	EXPECT_EVENTS(1, e, "^cmd [0-9]+ type=0x65 ");
	ASSERT_OK(power_on(e->fd, 0, &p));
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * Finding 1: a reader whose dwMaxCCIDMessageLength (16) holds a T=0
 * SetParameters (15 bytes) but not a T=1 one (17): the T=1 one is refused
 * before anything is written into the message buffer.
 */
TEST_F_TIMEOUT(recovery, set_params_longer_than_the_buffer, 60)
{
	struct emu *e = &self->e;
	struct ccid_params pr;
	struct counters c0;

	ASSERT_OK(emu_start(e, "--speed", "2", "--max-packet", "8",
			    "--max-msg", "16", NULL));
	counters_read(e, &c0);
	memset(&pr, 0, sizeof(pr));
	pr.protocol = 1;
	pr.len = 7;
	pr.data[0] = 0x11;
	EXPECT_ERRNO(EMSGSIZE, do_ioctl(e->fd, CCID_IOC_SET_PARAMS, &pr));
	EXPECT_EVENTS(0, e, "^cmd [0-9]+ type=0x61 ");

	memset(&pr, 0, sizeof(pr));
	pr.protocol = 0;
	pr.len = 5;
	pr.data[0] = 0x11;
	EXPECT_OK(do_ioctl(e->fd, CCID_IOC_SET_PARAMS, &pr));
	EXPECT_EVENT(e, "^cmd [0-9]+ type=0x61 slot=0 seq=[0-9]+ len=5 ");
	EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

struct uffd_xfer {
	int fd;
	void *tx;
	int ret;
	struct ccid_xfer x;
	uint8_t rx[64];
};

static void *uffd_xfer_thread(void *arg)
{
	struct uffd_xfer *u = arg;

	u->ret = xfer(u->fd, CCID_IOC_XFR_BLOCK, 0, u->tx, 9, u->rx,
		      sizeof(u->rx), XFR_T_MS, &u->x);
	return NULL;
}

static void alarm_handler(int sig)
{
	(void)sig;
}

/*
 * Finding 2: an XfrBlock whose tx buffer never faults in (a userfaultfd
 * page nobody serves) holds no lock the reader needs.  Another opener's
 * commands go on, and an unplug completes, while it hangs; it then ends
 * with ENODEV once its page comes.
 */
TEST_F_TIMEOUT(recovery, user_page_that_never_faults_in, 120)
{
	struct sigaction sa = { .sa_handler = alarm_handler };
	struct uffdio_register reg = { 0 };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_zeropage zp = { 0 };
	struct emu *e = &self->e;
	struct uffd_msg msg;
	struct ccid_power_on p;
	struct uffd_xfer u = { 0 };
	struct ccid_xfer x;
	struct pollfd pfd;
	uint8_t rx[64];
	pthread_t thr;
	long page = sysconf(_SC_PAGESIZE);
	int uffd, fd2, ret;

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (uffd < 0)
		SKIP(return, "no userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	u.tx = mmap(NULL, page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, u.tx);
	reg.range.start = (uintptr_t)u.tx;
	reg.range.len = page;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg));

	ASSERT_OK(emu_start(e, NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	fd2 = open(e->dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd2);
	u.fd = e->fd;
	u.ret = 1;	/* still in the ioctl */
	ASSERT_EQ(0, pthread_create(&thr, NULL, uffd_xfer_thread, &u));

	/* the thread is inside the ioctl, faulting on its tx buffer */
	pfd.fd = uffd;
	pfd.events = POLLIN;
	ASSERT_EQ(1, poll(&pfd, 1, 10000));
	ASSERT_EQ((ssize_t)sizeof(msg), read(uffd, &msg, sizeof(msg)));
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);

	/* another opener's command is not held up (a hang is cut short) */
	sigaction(SIGALRM, &sa, NULL);
	alarm(20);
	ret = echo_1234(fd2, rx, sizeof(rx), &x);
	alarm(0);
	EXPECT_OK(ret);
	EXPECT_EQ(1, u.ret);

	/* nor is an unplug */
	ASSERT_OK(emu_ctl_nowait(e, "disconnect"));
	EXPECT_TRUE(node_gone(e, 20000));

	zp.range.start = (uintptr_t)u.tx;
	zp.range.len = page;
	EXPECT_EQ(0, ioctl(uffd, UFFDIO_ZEROPAGE, &zp));
	pthread_join(thr, NULL);
	EXPECT_EQ(-ENODEV, u.ret);
	close(fd2);
	close(uffd);
	munmap(u.tx, page);
	emu_stop(e);
	EXPECT_KMSG_CLEAN();
}

/* ------------------------------------------------------------------ */
/* 10. Out-of-step readers, zero-length packets, two interfaces */

/* An echo APDU whose data is @tag, three bytes: its own answer shows it */
static int echo_tagged(int fd, unsigned int tag, struct ccid_xfer *x)
{
	uint8_t apdu[] = { 0x80, 0xee, 0x00, 0x00, 0x03,
			   tag >> 16, tag >> 8, tag };
	uint8_t want[] = { tag >> 16, tag >> 8, tag, 0x90, 0x00 };
	uint8_t rx[64];
	int ret;

	ret = xfer(fd, CCID_IOC_XFR_BLOCK, 0, apdu, sizeof(apdu), rx, sizeof(rx),
		   XFR_T_MS, x);
	if (ret)
		return ret;
	return x->rx_len == sizeof(want) && !memcmp(rx, want, sizeof(want)) ?
	       0 : -EBADMSG;
}

/* 100 echoes in a row, each with its own answer */
#define EXPECT_100_OWN_ANSWERS(fd) do {					\
	struct ccid_xfer __x;						\
	int __i, __bad = 0;						\
									\
	for (__i = 0; __i < 100; __i++)					\
		__bad += echo_tagged(fd, 0x100000 + __i, &__x) != 0;	\
	EXPECT_EQ(0, __bad) TH_LOG("echoes without their own answer");	\
} while (0)

/*
 * The out-of-step reader of QEMU 7.2: its card dropped one APDU, and each
 * later card answer carries the bSeq of the oldest one pending, while the
 * reader answers Abort, status and power itself.  The dropped APDU times
 * out; then a client looping on power on plus an APDU sees one APDU fail
 * with EIO, at once (no second timeout), the reader reset, and then
 * every APDU answered.
 */
TEST_F_TIMEOUT(recovery, out_of_step_card_path, 180)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	int i, fails = 0, first_err = 0, i_lag, i_reset;
	char line[256];
	int seq;

	ASSERT_OK(emu_start(e, "--lag-drop", "3", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));			/* 1 */
	ASSERT_OK(echo_tagged(e->fd, 1, &x));		/* 2 */
	counters_read(e, &c0);
	EXPECT_ERRNO(ETIMEDOUT, echo_tagged(e->fd, 2, &x));	/* 3, dropped */
	ASSERT_LE(0, log_find(e, 0, line, sizeof(line),
			      "^cmd 3 type=0x6f slot=0 seq=[0-9]+ "));
	ASSERT_EQ(1, sscanf(strstr(line, "seq="), "seq=%d", &seq));
	EXPECT_EVENT(e, "^no-answer 3 reason=lag-drop$");

	for (i = 0; i < 10; i++) {
		int ret = power_on(e->fd, 0, &p) ?: echo_tagged(e->fd, 10 + i, &x);

		if (!ret)
			break;
		if (!fails++)
			first_err = ret;
	}
	EXPECT_GT(10, i) TH_LOG("no right answer in 10 rounds");
	EXPECT_EQ(1, fails);
	EXPECT_EQ(-EIO, first_err) TH_LOG("%s", errname(first_err));
	/* the lagging answer came, then the reset: no second timeout */
	i_lag = log_find(e, 0, NULL, 0, "^lag [0-9]+ seq=%d ", seq);
	i_reset = log_find(e, i_lag, NULL, 0, "^reset$");
	EXPECT_LE(0, i_lag);
	EXPECT_LT(i_lag, i_reset);
	EXPECT_EVENT(e, "^lag-end reason=reset$");
	EXPECT_DELTAS(e, &c0, 1, 1, 0, 1, 1, 0, 0, 1);
	EXPECT_KMSG(1, DRV "slot 0: reader is out of step \\(it answers with the bSeq of a command given up on\\): resetting it$",
		    e->busre);
	EXPECT_KMSG(1, DRV "slot 0: command 0x6f: no answer$", e->busre);

	EXPECT_100_OWN_ANSWERS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * The driver's trace events, in a trace instance of the test's own: the
 * teardown, in the parent, shows the trace of a failed test and removes
 * the instance however the test ended.
 */
FIXTURE(traced) {
	struct emu e;
	struct trace_inst t;
};

FIXTURE_SETUP(traced)
{
	memset(&self->t, 0, sizeof(self->t));
	emu_fixture_setup(_metadata, &self->e);
}

FIXTURE_TEARDOWN_PARENT(traced)
{
	char path[256];
	int ret;

	if (self->t.dir[0] && (!__test_passed(_metadata) ||
			       getenv("CCID_VERBOSE"))) {
		trace_inst_path(&self->t, "trace", path, sizeof(path));
		dump_file("ccid trace events", path, 60);
	}
	ret = trace_inst_remove(&self->t);
	if (ret)
		fprintf(stderr, "# could not remove %s: %s\n", self->t.dir,
			errname(ret));
	emu_fixture_teardown(_metadata, &self->e, true);
}

/* The bSeq of a trace line, or -1 */
static int trace_seq(const char *line)
{
	const char *p = strstr(line, " seq=");
	int seq;

	return p && sscanf(p, " seq=%d", &seq) == 1 ? seq : -1;
}

/*
 * Index of the next line of the trace @text at or after @from matching the
 * regex, which must be there, into @line
 */
#define ASSERT_TRACE(i, text, from, line, fmt, ...) do {		\
	(i) = text_find(text, from, line, sizeof(line), fmt, ##__VA_ARGS__); \
	ASSERT_LE(0, i) TH_LOG("no trace event /" fmt "/ from line %d", \
			       ##__VA_ARGS__, from);			\
} while (0)

/*
 * The trace of out_of_step_card_path (@dev: the interface, as a regex;
 * @drop: the dropped APDU's bSeq): the dropped APDU and its Abort; then
 * the next APDU, whose "answer" carries the dropped one's bSeq and is
 * flagged abandoned; nothing after it but the step that resets the reader
 * for being out of step, and the reset; the reader answers a
 * GetSlotStatus, which confirms the step, and the next APDU gets its own
 * answer.  Order and fields only, never times.
 */
static void assert_out_of_step_trace(struct __test_metadata *_metadata,
				     const char *text, const char *dev,
				     int drop)
{
	const char *ev = "ccid_[a-z_]+: ";
	int i, i_drop, i_lag, i_next, i_reset, i_gss, i_done, i_ok, lag, ok;
	char line[512];

	ASSERT_TRACE(i_drop, text, 0, line,
		     "ccid_cmd_sent: %s type=XfrBlock slot=0 seq=%d len=[0-9]+ ret=0$",
		     dev, drop);
	ASSERT_TRACE(i, text, i_drop, line,
		     "ccid_recover_step: %s slot=0 seq=%d step=abort reason=timeout$",
		     dev, drop);

	ASSERT_TRACE(i_lag, text, i, line,
		     "ccid_cmd_sent: %s type=XfrBlock slot=0 seq=[0-9]+ len=[0-9]+ ret=0$",
		     dev);
	lag = trace_seq(line);
	ASSERT_TRACE(i_next, text, i_lag + 1, line, "%s", ev);
	EXPECT_EQ(i_next, text_find(text, i_next, NULL, 0,
				    "ccid_stale_frame: %s type=DataBlock slot=0 seq=%d why=abandoned$",
				    dev, drop)) TH_LOG("after the APDU: %s", line);
	ASSERT_TRACE(i_next, text, i_next + 1, line, "%s", ev);
	EXPECT_EQ(i_next, text_find(text, i_next, NULL, 0,
				    "ccid_recover_step: %s slot=0 seq=%d step=reset reason=out_of_step$",
				    dev, lag)) TH_LOG("after the stale frame: %s", line);
	ASSERT_TRACE(i_reset, text, i_next + 1, line, "%s", ev);
	EXPECT_EQ(i_reset, text_find(text, i_reset, NULL, 0,
				     "ccid_usb_reset: %s reason=out_of_step ret=0$",
				     dev)) TH_LOG("after the reset step: %s", line);

	ASSERT_TRACE(i_gss, text, i_reset, line,
		     "ccid_cmd_sent: %s type=GetSlotStatus slot=0 seq=%d len=0 ret=0$",
		     dev, (lag + 1) & 0xff);
	ASSERT_TRACE(i, text, i_gss, line,
		     "ccid_answer: %s type=SlotStatus slot=0 seq=%d ",
		     dev, (lag + 1) & 0xff);
	ASSERT_TRACE(i_done, text, i, line,
		     "ccid_recover_done: %s slot=0 seq=%d step=reset ret=0$",
		     dev, lag);

	ASSERT_TRACE(i_ok, text, i_done, line,
		     "ccid_cmd_sent: %s type=XfrBlock slot=0 seq=[0-9]+ len=[0-9]+ ret=0$",
		     dev);
	ok = trace_seq(line);
	ASSERT_TRACE(i_next, text, i_ok + 1, line, "%s", ev);
	EXPECT_EQ(i_next, text_find(text, i_next, NULL, 0,
				    "ccid_answer: %s type=DataBlock slot=0 seq=%d status=0x00 error=0x00 len=[0-9]+$",
				    dev, ok)) TH_LOG("after the last APDU: %s", line);

	EXPECT_EQ(1, count_lines(text, "ccid_usb_reset: "));
	EXPECT_EQ(1, count_lines(text, "ccid_recover_step: .* step=reset "));
	EXPECT_EQ(0, count_lines(text, "ccid_bad_frame: "));
}

/*
 * out_of_step_card_path again, with the ccid events of its reader in a
 * trace instance: the events come in the order of the recovery.
 */
TEST_F_TIMEOUT(traced, out_of_step_card_path_events, 180)
{
	struct emu *e = &self->e;
	int i, ret, fails = 0, first_err = 0;
	struct ccid_power_on p;
	struct ccid_xfer x;
	char line[256], dev[80], *text;

	ret = tracefs_mount();
	if (ret)
		SKIP(return, "tracefs unavailable at " TRACEFS_ROOT ": %s",
		     errname(ret));
	ASSERT_OK(emu_start(e, "--lag-drop", "3", NULL));
	ret = emu_trace_start(e, &self->t);
	ASSERT_EQ(0, ret) TH_LOG("trace instance for ccid events: %s%s",
				 errname(ret), ret == -ENOENT ?
				 " (ccid.ko has no trace events)" : "");

	ASSERT_OK(power_on(e->fd, 0, &p));
	ASSERT_OK(echo_tagged(e->fd, 1, &x));
	EXPECT_ERRNO(ETIMEDOUT, echo_tagged(e->fd, 2, &x));	/* dropped */
	for (i = 0; i < 10; i++) {
		ret = power_on(e->fd, 0, &p) ?: echo_tagged(e->fd, 10 + i, &x);
		if (!ret)
			break;
		if (!fails++)
			first_err = ret;
	}
	ASSERT_GT(10, i) TH_LOG("no right answer in 10 rounds");
	EXPECT_EQ(1, fails);
	EXPECT_EQ(-EIO, first_err) TH_LOG("%s", errname(first_err));
	ASSERT_LE(0, log_find(e, 0, line, sizeof(line),
			      "^cmd 3 type=0x6f slot=0 seq=[0-9]+ "));

	text = trace_inst_read(&self->t);
	ASSERT_NE(NULL, text);
	strf(dev, sizeof(dev), "%s:1\\.0", e->busre);
	assert_out_of_step_trace(_metadata, text, dev, trace_seq(line));
	free(text);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * A reader whose every answer, its own ones included, carries the bSeq
 * of the command before: the first command after the lag starts times
 * out, and its own recovery finds the power off answered with the
 * Abort's bSeq: the reader is reset in that recovery.  The next command
 * from the file is told of the reset, then everything works.
 */
TEST_F_TIMEOUT(recovery, out_of_step_every_command, 180)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	int i_cmd3, i_reset;

	ASSERT_OK(emu_start(e, "--lag", "2:1", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));			/* 1 */
	ASSERT_OK(echo_tagged(e->fd, 1, &x));		/* 2 */
	counters_read(e, &c0);
	EXPECT_ERRNO(ETIMEDOUT, echo_tagged(e->fd, 2, &x));
	EXPECT_EVENT(e, "^lag-start after=2$");
	i_cmd3 = log_find(e, 0, NULL, 0, "^cmd 3 type=0x6f ");
	i_reset = log_find(e, i_cmd3, NULL, 0, "^reset$");
	EXPECT_LT(i_cmd3, i_reset);
	EXPECT_EVENTS(1, e, "^reset$");
	EXPECT_EVENT(e, "^lag-end reason=reset$");
	/* one timeout (the command), no second one in its recovery */
	EXPECT_EQ(1, attr_delta(e, &c0, C_TIMEOUTS));
	EXPECT_EQ(1, attr_delta(e, &c0, C_USB_RESETS));
	EXPECT_EQ(1, attr_delta(e, &c0, C_OUT_OF_STEP));
	EXPECT_EQ(0, attr_delta(e, &c0, C_CLEAR_HALTS));

	EXPECT_ERRNO(ECONNRESET, echo_tagged(e->fd, 3, &x));
	ASSERT_OK(power_on(e->fd, 0, &p));
	EXPECT_100_OWN_ANSWERS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * An answer that fills the bulk-IN URB exactly is followed by a
 * zero-length packet, as a device sends one: it is not the next frame.
 * (With dwMaxCCIDMessageLength 256 and full speed, the URB is 256 bytes;
 * an echo of 244 bytes plus SW plus the header fills it.)
 */
TEST_F_TIMEOUT(recovery, in_zlp_after_a_full_urb, 60)
{
	static const uint8_t le244[] = { 0x80, 0xee, 0x00, 0x00, 0xf4 };
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[256];

	ASSERT_OK(emu_start(e, "--speed", "2", "--max-msg", "256", "--in-zlp",
			    NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);
	ASSERT_OK(xfer(e->fd, CCID_IOC_XFR_BLOCK, 0, le244, sizeof(le244), rx,
		       sizeof(rx), XFR_T_MS, &x));
	EXPECT_EQ(246, x.rx_len);
	EXPECT_OK(echo_tagged(e->fd, 7, &x));
	EXPECT_EVENTS(1, e, "^in-zlp$");
	EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/* A command of exactly one 64-byte packet: 10 + 4 + 1 + 49 */
static int echo_one_packet(int fd, struct ccid_xfer *x, uint8_t *rx,
			   size_t size)
{
	uint8_t apdu[54] = { 0x80, 0xee, 0x00, 0x00, 49 };

	memset(apdu + 5, 0x5a, 49);
	return xfer(fd, CCID_IOC_XFR_BLOCK, 0, apdu, sizeof(apdu), rx, size,
		    XFR_T_MS, x);
}

/*
 * No zero-length packet follows a command of whole packets: a reader
 * that stalls one (QEMU 7.2) gets none, and the command works.
 */
TEST_F_TIMEOUT(recovery, out_no_zlp_after_whole_packets, 60)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	uint8_t rx[64];

	ASSERT_OK(emu_start(e, "--speed", "2", "--out-zlp", "stall", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);
	EXPECT_OK(echo_one_packet(e->fd, &x, rx, sizeof(rx)));
	EXPECT_EQ(51, x.rx_len);
	EXPECT_EVENTS(0, e, "^out-zlp");
	EXPECT_DELTAS(e, &c0, 0, 0, 0, 0, 0, 0, 0);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/* ...and a reader that needs one gets it through the quirk 'z' */
TEST_F_TIMEOUT(recovery, out_zlp_quirk, 60)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct ccid_xfer x;
	uint8_t rx[64];

	ASSERT_OK(quirks_set(e, "04e6:e003:z"));
	ASSERT_OK(emu_start(e, "--speed", "2", "--out-zlp", "need", NULL));
	EXPECT_EQ(0, attr_cmp(e, "quirks", "out_zlp"));
	ASSERT_OK(power_on(e->fd, 0, &p));
	EXPECT_OK(echo_one_packet(e->fd, &x, rx, sizeof(rx)));
	EXPECT_EQ(51, x.rx_len);
	EXPECT_EVENT(e, "^out-zlp ok [0-9]+$");
	EXPECT_EVENTS(0, e, "^out-zlp missing ");
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_OK(quirks_restore(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * A reader that never takes a command (its bulk-OUT URB stays pending):
 * the command ends with ETIMEDOUT after the bulk-OUT timeout, the URB is
 * unlinked, and the Abort follows, since the reader may have taken part
 * of it.
 */
TEST_F_TIMEOUT(recovery, out_urb_never_taken, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct counters c0;
	struct ccid_xfer x;
	int i_unlink;

	ASSERT_OK(emu_start(e, "--out-pending", "2", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	counters_read(e, &c0);
	EXPECT_ERRNO(ETIMEDOUT, echo_tagged(e->fd, 1, &x));
	EXPECT_EQ(0xff, x.status);
	i_unlink = log_find(e, 0, NULL, 0, "^out-pending-unlinked 2$");
	EXPECT_LE(0, i_unlink);
	EXPECT_LT(i_unlink, log_find(e, i_unlink, NULL, 0, "^abort-answered "));
	EXPECT_DELTAS(e, &c0, 1, 1, 0, 0, 0, 0, 0);
	EXPECT_KMSG(1, DRV "slot 0: reader does not take command 0x6f$",
		    e->busre);
	EXPECT_ERRNO(ECONNRESET, echo_tagged(e->fd, 2, &x));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * Two CCID interfaces on one device: interface 0's recovery resets the
 * device with its io_mutex held, and interface 1's pre_reset takes its
 * own (a lockdep class per interface keeps a lockdep kernel quiet).  Both
 * readers work afterwards; interface 1's files are told of the reset.
 */
TEST_F_TIMEOUT(recovery, two_interfaces_reset_by_one, 180)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct ccid_xfer x;
	char line[256], dev1[64];
	int fd1;

	ASSERT_OK(emu_start(e, "--interfaces", "2", "--mute-after", "1",
			    "--abort", "ignore", "--revive-on-reset", NULL));
	/* interface 1 binds after interface 0, which emu_start waited for */
	ASSERT_LE(0, log_wait(e, NODE_WAIT_MS, 0, line, sizeof(line),
			      "^node dev=[^ ]+ busid=[^ ]+ intf=1$"));
	ASSERT_EQ(1, sscanf(line, "node dev=%63s", dev1));
	fd1 = open(dev1, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd1);
	ASSERT_OK(power_on(fd1, 0, &p));
	ASSERT_OK(echo_tagged(fd1, 1, &x));

	ASSERT_OK(power_on(e->fd, 0, &p));			/* 1: then mute */
	EXPECT_ERRNO(ETIMEDOUT, echo_tagged(e->fd, 2, &x));
	EXPECT_EVENTS(1, e, "^reset$");
	EXPECT_EQ(1, attr_num(e, "usb_resets"));

	EXPECT_ERRNO(ECONNRESET, echo_tagged(fd1, 3, &x));
	ASSERT_OK(power_on(fd1, 0, &p));
	EXPECT_OK(echo_tagged(fd1, 4, &x));
	ASSERT_CARD_WORKS(e->fd);
	close(fd1);
	EXPECT_EQ(0, emu_stop(e));
	expect_kmsg_clean(_metadata, __LINE__, true);
}

/* USBDEVFS_RESET the emulated device from another process, after @ms */
static pid_t reset_device_later(struct emu *e, long ms)
{
	const char *path = emu_path();
	pid_t pid;

	pid = fork();
	if (pid)
		return pid;
	usleep(ms * 1000);
	execl(path, path, "--reset-device", e->busid, (char *)NULL);
	_exit(127);
}

/*
 * Finding 6: ENODEV means unplugged and nothing else.  A USB reset from
 * elsewhere (USBDEVFS_RESET) that arrives while a command is in recovery
 * (here in its Abort, which the reader ignores) ends it with EIO; the
 * reader is still there and works after the reset.
 */
TEST_F_TIMEOUT(recovery, external_reset_during_recovery_is_eio, 120)
{
	struct emu *e = &self->e;
	struct ccid_power_on p;
	struct ccid_xfer x;
	int status, i_abort, i_reset;
	pid_t pid;

	ASSERT_OK(emu_start(e, "--drop", "2", "--abort", "ignore", NULL));
	ASSERT_OK(power_on(e->fd, 0, &p));
	/* the XfrBlock times out at 1 s; its first Abort runs until 2 s */
	pid = reset_device_later(e, XFR_T_MS + XFR_T_MS / 2);
	ASSERT_LT(0, pid);
	EXPECT_ERRNO(EIO, echo_tagged(e->fd, 1, &x));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	/* the reset came during the recovery, after its first Abort began */
	i_abort = log_find(e, 0, NULL, 0, "^abort-cmd ");
	i_reset = log_find(e, 0, NULL, 0, "^reset$");
	EXPECT_LE(0, i_abort);
	EXPECT_LT(i_abort, i_reset);
	EXPECT_EQ(0, attr_num(e, "usb_resets"));
	EXPECT_KMSG(0, DRV "reader does not answer", e->busre);

	EXPECT_ERRNO(ECONNRESET, echo_tagged(e->fd, 2, &x));
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/* What the driver allows itself: CCID_UEVENT_BURST in CCID_UEVENT_INTERVAL */
#define UEVENT_BURST		10
#define UEVENT_INTERVAL_MS	5000

/* Open and close @node, again and again, until *@stop */
static void open_close_until(const char *node, volatile int *stop)
{
	struct pollfd pfd;
	int fd;

	while (!*stop) {
		fd = open(node, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		pfd.fd = fd;
		pfd.events = POLLIN | POLLPRI;
		poll(&pfd, 1, 0);
		close(fd);
	}
	_exit(0);
}

/*
 * Finding 3: the interrupt URB is submitted once.  After a USB reset the
 * driver resubmits it for the files that are open; a first open() at the
 * same moment must not submit it a second time ("URB submitted while
 * active", a WARN).  Two processes open and close the node, so that it
 * is often opened for the first time, while this one resets the device
 * again and again; then slot events still arrive.
 */
TEST_F_TIMEOUT(recovery, first_opens_during_usb_resets, 300)
{
	struct emu *e = &self->e;
	struct ccid_slot_events ev;
	volatile int *stop;
	pid_t openers[2];
	int usb, i, resets = 0;

	ASSERT_OK(emu_start(e, NULL));
	close(e->fd);
	e->fd = -1;
	usb = usbfs_open(e);
	ASSERT_LE(0, usb) TH_LOG("usbfs: %s", errname(usb));
	stop = mmap(NULL, sizeof(*stop), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, stop);
	*stop = 0;
	for (i = 0; i < 2; i++) {
		openers[i] = fork();
		ASSERT_LE(0, openers[i]);
		if (!openers[i])
			open_close_until(e->dev, stop);
	}
	for (i = 0; i < 60; i++)
		resets += !ioctl(usb, USBDEVFS_RESET, 0);
	*stop = 1;
	for (i = 0; i < 2; i++)
		ASSERT_EQ(openers[i], waitpid(openers[i], NULL, 0));
	close(usb);
	EXPECT_EQ(60, resets);
	EXPECT_KMSG_CLEAN();

	/* the interrupt URB runs: a removal reaches a file opened now */
	e->fd = open_node(e);
	ASSERT_LE(0, e->fd);
	ASSERT_OK(slot_events(e->fd, CCID_EVENTS_ACK_RESET, &ev));
	ASSERT_OK(emu_ctl(e, "remove 0"));
	EXPECT_NE(0, poll_mask(e->fd, PROMPT_MS) & POLLIN);
	ASSERT_OK(slot_events(e->fd, 0, &ev));
	EXPECT_EQ(0, ev.present & 1);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

/*
 * Finding 5: the reset uevents are rate-limited, and poll() still sees
 * every reset.  USB resets until they have outrun the limit (more resets
 * than UEVENT_BURST per UEVENT_INTERVAL_MS begun allow, whatever the
 * machine's speed); the file's slot generation counts each one, the
 * uevents stay within the limit.
 */
TEST_F_TIMEOUT(recovery, reset_uevents_rate_limited, 300)
{
	struct emu *e = &self->e;
	struct ccid_slot_events ev;
	int usb, uevents, resets = 0;
	long start, elapsed, allowed;
	uint32_t gen0;

	ASSERT_LE(0, e->uevent_fd) TH_LOG("no uevent socket");
	ASSERT_OK(emu_start(e, NULL));
	ASSERT_OK(slot_events(e->fd, 0, &ev));
	gen0 = ev.generation[0];
	usb = usbfs_open(e);
	ASSERT_LE(0, usb) TH_LOG("usbfs: %s", errname(usb));
	uevent_resets(e, "0x1");	/* none before: drain */
	start = now_ms();
	do {
		ASSERT_EQ(0, ioctl(usb, USBDEVFS_RESET, 0))
			TH_LOG("reset %d: %s", resets + 1, strerror(errno));
		resets++;
		elapsed = now_ms() - start;
		allowed = UEVENT_BURST * (elapsed / UEVENT_INTERVAL_MS + 1);
	} while (resets <= allowed && resets < 200);
	close(usb);
	if (resets <= allowed)
		SKIP(return, "%d resets took %ld ms: too slow to outrun the limit",
		     resets, elapsed);

	/* every reset counted for the file... */
	ASSERT_OK(slot_events(e->fd, 0, &ev));
	EXPECT_EQ(gen0 + resets, ev.generation[0]);
	EXPECT_EQ(1, ev.reset_pending & 1);
	/* ...but at most a burst of uevents per interval begun */
	uevents = uevents_with(e->uevent_fd, e->busid, "CCID_EVENT=reset",
			       "CCID_SLOTS=0x1", NULL, 0, PROMPT_MS);
	EXPECT_LE(UEVENT_BURST, uevents);
	EXPECT_GE(allowed, uevents);
	ASSERT_CARD_WORKS(e->fd);
	EXPECT_EQ(0, emu_stop(e));
	EXPECT_KMSG_CLEAN();
}

TEST_HARNESS_MAIN
