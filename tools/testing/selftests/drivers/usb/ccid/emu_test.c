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
 * CCID_EMU_LOG_LINES (how much of the emulator's log a failure shows, 80).
 * run-vm passes CCID_* variables into the guest.
 *
 * The harness, shared with recovery_test.c, is emu_harness.h.  The
 * emulator is the test process's child, with PR_SET_PDEATHSIG, so it
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


/* the probe variants override the defaults BINDS() sets */
#pragma GCC diagnostic ignored "-Woverride-init"
#include "emu_harness.h"

#define EVENT_WAIT_MS		5000
#define CCID_MAX_BUFFER		65554	/* 10-byte header + 65544 */

/* The emulator's ATR of every slot: 3B 88 80 01 "CCID-EMU" TCK */
static const uint8_t emu_atr[] = {
	0x3b, 0x88, 0x80, 0x01, 0x43, 0x43, 0x49, 0x44, 0x2d, 0x45, 0x4d,
	0x55, 0x74
};


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
	emu_fixture_setup(_metadata, &self->e);
}

FIXTURE_TEARDOWN_PARENT(probe)
{
	emu_fixture_teardown(_metadata, &self->e, true);
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
	EXPECT_LE(0, log_wait(e, 0, 0, NULL, 0,
			      "^notify-dropped data=5002 reason=no-int-in$"));
	EXPECT_EQ(0, poll_mask(fd, 1000));
	ASSERT_OK(slot_events(fd, 0, &ev));
	EXPECT_EQ(0, ev.present);
	EXPECT_EQ(0, ev.known);
	EXPECT_EQ(0, ev.changes[0]);
	ASSERT_OK(slot_status(fd, 0, &st));
	EXPECT_EQ(CCID_ICC_ABSENT, st.status);
	/* the first answer only teaches the driver what is there */
	EXPECT_EQ(0, poll_mask(fd, 0));
	ASSERT_OK(slot_events(fd, 0, &ev));
	EXPECT_EQ(1, ev.known);
	EXPECT_EQ(0, ev.present);
	EXPECT_EQ(0, ev.changes[0]);

	ASSERT_CTL(e, "insert 0");
	EXPECT_LE(0, log_wait(e, 0, 0, NULL, 0,
			      "^notify-dropped data=5003 reason=no-int-in$"));
	EXPECT_EQ(0, poll_mask(fd, 1000));
	ASSERT_OK(slot_status(fd, 0, &st));
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status);
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd, 0));
	ASSERT_OK(slot_events(fd, 0, &ev));
	EXPECT_EQ(1, ev.present);
	EXPECT_EQ(1, ev.changes[0]);
	EXPECT_EQ(0, ev.hw_errors);
	EXPECT_EQ(0, poll_mask(fd, 0));
	EXPECT_EQ(0, log_count(e, "^notify data="));
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

/* e[0] keeps the module parameters that the teardown puts back */
FIXTURE(emu) {
	struct emu e[2];
};

FIXTURE_SETUP(emu)
{
	emu_init(&self->e[1]);
	emu_fixture_setup(_metadata, &self->e[0]);
}

FIXTURE_TEARDOWN_PARENT(emu)
{
	emu_fixture_teardown(_metadata, &self->e[1], false);
	emu_fixture_teardown(_metadata, &self->e[0], true);
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

	emu_up(_metadata, e, "--bcd-device 0x0500", false);
	strf(text, sizeof(text), "ccid %s:1.0: %s", e->busid, want[0].text);
	ASSERT_TRUE(kmsg_wait(text, 10000)) TH_LOG("no \"%s\"", text);

	ret = quirks_set(e, "04e6:e003:");
	ASSERT_EQ(0, ret) TH_LOG("%s: %s", QUIRKS_PARAM, errname(ret));
	ASSERT_STREQ("", param_saved(e, QUIRKS_PARAM))
		TH_LOG("the quirks parameter is set already");
	dir = slurp(QUIRKS_PARAM);
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

	ret = quirks_restore(e);
	EXPECT_EQ(0, ret) TH_LOG("restoring %s: %s", QUIRKS_PARAM,
				 errname(ret));
	dir = slurp(QUIRKS_PARAM);
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

	ret = quirks_set(e, "\n");
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
	ASSERT_OK(slot_events(fd, 0, ev));
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
	ASSERT_OK(slot_events(fd, 0, &ev));
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
	ASSERT_OK(slot_events(fd, 0, &ev));
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
	ASSERT_OK(slot_events(fd2, 0, &ev3));
	EXPECT_EQ(ev2.changes[0], ev3.changes[0]);
	EXPECT_EQ(0, poll_mask(fd2, 0));
	EXPECT_LE(0, log_wait(e, 0, 0, NULL, 0,
			      "^notify data=5002$"));
	EXPECT_LE(0, log_wait(e, 0, 0, NULL, 0,
			      "^notify data=5003$"));
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
	EXPECT_ERRNO(ENOMEDIUM, echo(fd, 0, data, sizeof(data), &x));
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
	EXPECT_EQ(4, log_count(e, "^notify data=5003$"));
	EXPECT_EQ(3, log_count(e, "^notify data=5002$"));
	ev = ev2;

	/* HardwareError */
	hw = attr_num(e, "hw_errors");
	EXPECT_EQ(0, hw);
	ASSERT_CTL(e, "hwerror 0");
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd, EVENT_WAIT_MS));
	EXPECT_TRUE(wait_attr(e, "hw_errors", hw + 1, EVENT_WAIT_MS));
	ASSERT_OK(slot_events(fd, 0, &ev2));
	EXPECT_EQ(hw + 1, ev2.hw_errors);
	EXPECT_EQ(ev.changes[0], ev2.changes[0]);
	EXPECT_EQ(1, ev2.present);
	EXPECT_EQ(0, poll_mask(fd, 0));
	EXPECT_EQ(sc + 8, attr_num(e, "slot_changes"));
	EXPECT_EQ(1, log_count(e, "^notify data=5100"));
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
	EXPECT_ERRNO(EINVAL, do_ioctl(fd, CCID_IOC_SLOT_EVENTS, &ev));
	ev.flags = 0x80000000;
	EXPECT_ERRNO(EINVAL, do_ioctl(fd, CCID_IOC_SLOT_EVENTS, &ev));
	memset(&ev, 0, sizeof(ev));
	ev.reserved0 = 0x100;
	EXPECT_ERRNO(EINVAL, do_ioctl(fd, CCID_IOC_SLOT_EVENTS, &ev));
	for (k = 0; k < (int)ARRAY_SIZE(ev.reserved); k++) {
		memset(&ev, 0, sizeof(ev));
		ev.reserved[k] = 1ull << (k * 13);
		EXPECT_ERRNO(EINVAL, do_ioctl(fd, CCID_IOC_SLOT_EVENTS, &ev));
	}
	EXPECT_ERRNO(EFAULT, do_ioctl(fd, CCID_IOC_SLOT_EVENTS, NULL));
	ASSERT_OK(slot_events(fd, CCID_EVENTS_ACK_RESET, &ev));
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
	EXPECT_LE(0, log_wait(e, EVENT_WAIT_MS, 0, NULL, 0,
			      "^notify data=5002$"));
	EXPECT_TRUE(wait_attr(e, "slot_changes", 1, EVENT_WAIT_MS));
	usleep(300 * 1000);	/* time for a second count, if any */
	ASSERT_OK(slot_status(fd, 0, &st));		/* command 4 */
	EXPECT_EQ(CCID_ICC_ABSENT, st.status);
	ASSERT_OK(slot_events(fd, 0, &ev));
	EXPECT_EQ(0, ev.present);
	EXPECT_EQ(1, ev.changes[0]);
	EXPECT_EQ(1, attr_num(e, "slot_changes"));

	ASSERT_OK(slot_status(fd, 0, &st));		/* command 5 */
	EXPECT_EQ(CCID_ICC_INACTIVE, st.status);
	EXPECT_LE(0, log_wait(e, EVENT_WAIT_MS, 0, NULL, 0,
			      "^notify data=5003$"));
	EXPECT_TRUE(wait_attr(e, "slot_changes", 2, EVENT_WAIT_MS));
	usleep(300 * 1000);
	ASSERT_OK(slot_events(fd, 0, &ev));
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
			EXPECT_ERRNO(EIO, echo(fd, s, d, sizeof(d), &x));
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
	ASSERT_OK(slot_events(fd, 0, &ev0));
	ASSERT_OK(slot_events(fd_before, 0, &ev));
	EXPECT_EQ(7, ev0.present);
	EXPECT_EQ(0, poll_mask(fd, 0));
	for (s = 0; s < CCID_MAX_SLOT_COUNT; s++)
		EXPECT_EQ(0, ev0.generation[s]);
	timeouts = attr_num(e, "timeouts");
	aborts = attr_num(e, "aborts");
	ufd = uevent_socket();
	ASSERT_LE(0, ufd) TH_LOG("uevent socket: %s", errname(ufd));

	t0 = now_ms();
	EXPECT_ERRNO(ETIMEDOUT, xfer(fd, CCID_IOC_XFR_BLOCK, 1, slow,
				     sizeof(slow), rx, sizeof(rx), 300, &x));
	TH_LOG("slot 1 timed out and was recovered in %ld ms", now_ms() - t0);
	EXPECT_EQ(0xff, x.status) TH_LOG("written back without an answer");
	EXPECT_EQ(timeouts + 1, attr_num(e, "timeouts"));
	EXPECT_EQ(aborts + 1, attr_num(e, "aborts"));
	EXPECT_LE(0, log_wait(e, 0, 0, NULL, 0,
			      "^abort-answered seq="));

	/* Slot 1 refuses card commands from the files that were open */
	last = emu_last_cmd(e);
	slot_data(d, 1, 'r');
	EXPECT_ERRNO(ECONNRESET, echo(fd, 1, d, sizeof(d), &x));
	EXPECT_ERRNO(ECONNRESET, echo(fd_before, 1, d, sizeof(d), &x));
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
	ASSERT_OK(slot_events(fd, 0, &ev));
	EXPECT_EQ(0x2, ev.reset_pending);
	EXPECT_EQ(7, ev.present);
	for (s = 0; s < CCID_MAX_SLOT_COUNT; s++) {
		EXPECT_EQ(s == 1 ? 1 : 0, ev.generation[s]) TH_LOG("slot %d", s);
		EXPECT_EQ(ev0.changes[s], ev.changes[s]) TH_LOG("slot %d", s);
	}
	/* EPOLLIN is read, EPOLLPRI stays until the reset is acknowledged */
	EXPECT_EQ(POLLPRI, poll_mask(fd, 0));
	EXPECT_ERRNO(ECONNRESET, echo(fd, 1, d, sizeof(d), &x));

	/* A file opened after the reset has nothing to acknowledge */
	fd_after = open_node(e);
	ASSERT_LE(0, fd_after);
	EXPECT_EQ(0, poll_mask(fd_after, 0));
	ASSERT_OK(slot_events(fd_after, 0, &ev));
	EXPECT_EQ(0, ev.reset_pending);
	EXPECT_EQ(1, ev.generation[1]);
	/* the driver powered slot 1 off: the card is mute */
	slot_data(d, 1, 'a');
	EXPECT_ERRNO(EIO, echo(fd_after, 1, d, sizeof(d), &x));
	EXPECT_EQ(CCID_CMD_STATUS_FAILED | CCID_ICC_INACTIVE, x.status);
	EXPECT_EQ(0xfe, x.error);

	/* Acknowledged by CCID_IOC_SLOT_EVENTS */
	ASSERT_OK(slot_events(fd, CCID_EVENTS_ACK_RESET, &ev));
	EXPECT_EQ(0x2, ev.reset_pending);
	ASSERT_OK(slot_events(fd, 0, &ev));
	EXPECT_EQ(0, ev.reset_pending);
	EXPECT_EQ(0, poll_mask(fd, 0));
	EXPECT_ERRNO(EIO, echo(fd, 1, d, sizeof(d), &x));
	ASSERT_OK(power_on(fd, 1, &p));
	slot_data(d, 1, 'k');
	EXPECT_OK(echo(fd, 1, d, sizeof(d), &x));

	/* ... or by a successful power-on */
	EXPECT_EQ(POLLIN_BITS | POLLPRI, poll_mask(fd_before, 0));
	ASSERT_OK(power_on(fd_before, 1, &p));
	EXPECT_EQ(POLLIN_BITS, poll_mask(fd_before, 0));
	EXPECT_OK(echo(fd_before, 1, d, sizeof(d), &x));
	ASSERT_OK(slot_events(fd_before, 0, &ev));
	EXPECT_EQ(0, ev.reset_pending);
	EXPECT_EQ(0, poll_mask(fd_before, 0));

	/* One uevent for the interface, naming slot 1 */
	n = uevents_with(ufd, e->busid, "CCID_EVENT=reset", NULL, uev, sizeof(uev),
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
	char *log = slurp(e->log), *p, *nl, data[160];
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
		ret = xfer(fd, CCID_IOC_XFR_BLOCK, 0, apdu,
			   echo_apdu(apdu, d, sizeof(d)), rx, sizeof(rx),
			   RANDOM_TIMEOUT_MS, &x);
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
	EXPECT_KMSG_CLEAN();
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
		ret = xfer(fd, CCID_IOC_XFR_BLOCK, 0, apdu,
			   echo_apdu(apdu, d, sizeof(d)), rx, sizeof(rx), 0,
			   &xf);
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
			  log_count(&e[r], "^cmd ") - 1)
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
