// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the CCID wire format code, drivers/usb/class/ccid/ccid_proto.c,
 * built in userspace.
 *
 * Every parser is handed an exact-size heap copy of its input, so that a
 * build with -fsanitize=address reports a read even one byte past the end.
 * Wire values (message types, offsets, bError codes) are written out from
 * the CCID specification rather than taken from ccid_proto.h, so that a
 * wrong constant there is caught too.
 *
 * The fuzz test is deterministic; CCID_FUZZ_SEED and CCID_FUZZ_ITERS in
 * the environment replay another seed or change the number of rounds.
 */

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ccid_proto.h"

/*
 * The functions that TEST() defines do not use all their parameters;
 * the harness is not written for -Wextra.
 */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"

/*
 * A heap copy of exactly @len bytes: ASan catches any read past it.  ASan
 * lets a read of malloc(0) through, so an empty input is NULL instead,
 * which faults (as the kernel's ZERO_SIZE_PTR would).
 */
static u8 *exact_copy(const void *src, size_t len)
{
	u8 *p;

	if (!len)
		return NULL;
	p = malloc(len);
	if (!p)
		abort();
	memcpy(p, src, len);
	return p;
}

static int parse_desc(const void *buf, size_t len,
		      struct ccid_class_desc *desc, const char **why)
{
	u8 *copy = exact_copy(buf, len);
	int ret;

	*why = NULL;
	memset(desc, 0, sizeof(*desc));
	ret = ccid_parse_class_desc(copy, len, desc, why);
	free(copy);
	return ret;
}

/* The verdict as an int, to compare it with the enum's constants */
static int check_rsp(const void *buf, size_t actual, u8 cmd, u8 slot, u8 seq,
		     struct ccid_rsp *rsp, const char **why)
{
	u8 *copy = exact_copy(buf, actual);
	int v;

	*why = NULL;
	memset(rsp, 0, sizeof(*rsp));
	v = ccid_check_rsp(copy, actual, cmd, slot, seq, rsp, why);
	free(copy);
	return v;
}

static int check_secure(const void *blk, size_t len, u8 pin_support,
			const char **why)
{
	u8 *copy = exact_copy(blk, len);
	int ret;

	*why = NULL;
	ret = ccid_check_secure(copy, len, pin_support, why);
	free(copy);
	return ret;
}

/*
 * EXPECT_*() and ASSERT_*() expand to more than one statement, so the body
 * of a loop that uses them is always braced.
 */

/* The reason string must be set, and be this one. */
#define EXPECT_WHY(expected, why) do {				\
	ASSERT_NE(NULL, (why));					\
	EXPECT_STREQ((expected), (why));			\
} while (0)

/* Independent little-endian readers, so as not to test the code with itself */
static u32 le16(const u8 *p)
{
	return p[0] + 256u * p[1];
}

static u32 le32(const u8 *p)
{
	return le16(p) + 65536u * le16(p + 2);
}

/* ------------------------------------------------------------------ */
/* Class descriptor                                                    */
/* ------------------------------------------------------------------ */

/* What QEMU's usb-ccid announces: one slot, T=0, TPDU level, no PIN pad */
static const u8 qemu_desc[] = {
	0x36, 0x21,			/* bLength 54, bDescriptorType */
	0x10, 0x01,			/* bcdCCID 1.10 */
	0x00,				/* bMaxSlotIndex */
	0x07,				/* bVoltageSupport 5 V, 3 V, 1.8 V */
	0x01, 0x00, 0x00, 0x00,		/* dwProtocols T=0 */
	0xa0, 0x0f, 0x00, 0x00,		/* dwDefaultClock 4000 kHz */
	0x00, 0x00, 0x01, 0x00,		/* dwMaximumClock 65536 kHz */
	0x00,				/* bNumClockSupported */
	0x80, 0x25, 0x00, 0x00,		/* dwDataRate 9600 bps */
	0x00, 0xc2, 0x01, 0x00,		/* dwMaxDataRate 115200 bps */
	0x00,				/* bNumDataRatesSupported */
	0xfe, 0x00, 0x00, 0x00,		/* dwMaxIFSD 254 */
	0x00, 0x00, 0x00, 0x00,		/* dwSynchProtocols */
	0x00, 0x00, 0x00, 0x00,		/* dwMechanical */
	0xba, 0x00, 0x01, 0x00,		/* dwFeatures 0x000100ba, TPDU */
	0x12, 0x00, 0x01, 0x00,		/* dwMaxCCIDMessageLength 0x10012 */
	0xff,				/* bClassGetResponse */
	0xff,				/* bClassEnvelope */
	0x00, 0x00,			/* wLcdLayout */
	0x00,				/* bPINSupport */
	0x01,				/* bMaxCCIDBusySlots */
};

static_assert(sizeof(qemu_desc) == 54, "qemu_desc is not 54 bytes");

/* Every byte different, so that a field read at a wrong offset shows */
static const u8 distinct_desc[] = {
	0x36, 0x21,			/* bLength, bDescriptorType */
	0x01, 0x02,			/* bcdCCID 0x0201 */
	0x0f,				/* bMaxSlotIndex 15 */
	0x05,				/* bVoltageSupport 5 V, 1.8 V */
	0x03, 0x10, 0x20, 0x30,		/* dwProtocols 0x30201003 */
	0x11, 0x12, 0x13, 0x14,		/* dwDefaultClock */
	0x15, 0x16, 0x17, 0x18,		/* dwMaximumClock */
	0x19,				/* bNumClockSupported */
	0x1a, 0x1b, 0x1c, 0x1d,		/* dwDataRate */
	0x1e, 0x1f, 0x20, 0x21,		/* dwMaxDataRate */
	0x22,				/* bNumDataRatesSupported */
	0x23, 0x24, 0x25, 0x26,		/* dwMaxIFSD */
	0x27, 0x28, 0x29, 0x2a,		/* dwSynchProtocols */
	0x2b, 0x2c, 0x2d, 0x2e,		/* dwMechanical */
	0xfe, 0xfd, 0xfc, 0xfb,		/* dwFeatures, level bits 0x40000 */
	0x31, 0x32, 0x33, 0x34,		/* dwMaxCCIDMessageLength */
	0x35,				/* bClassGetResponse */
	0x37,				/* bClassEnvelope */
	0x38, 0x39,			/* wLcdLayout */
	0x3a,				/* bPINSupport */
	0x3b,				/* bMaxCCIDBusySlots */
};

static_assert(sizeof(distinct_desc) == 54, "distinct_desc is not 54 bytes");

TEST(class_desc_qemu)
{
	struct ccid_class_desc d;
	const char *why;

	ASSERT_EQ(0, parse_desc(qemu_desc, sizeof(qemu_desc), &d, &why));
	EXPECT_EQ(0x0110, d.bcd_ccid);
	EXPECT_EQ(0, d.max_slot_index);
	EXPECT_EQ(0x07, d.voltage_support);
	EXPECT_EQ(0x00000001u, d.protocols);
	EXPECT_EQ(4000u, d.default_clock);
	EXPECT_EQ(65536u, d.max_clock);
	EXPECT_EQ(0, d.num_clocks);
	EXPECT_EQ(9600u, d.data_rate);
	EXPECT_EQ(115200u, d.max_data_rate);
	EXPECT_EQ(0, d.num_data_rates);
	EXPECT_EQ(254u, d.max_ifsd);
	EXPECT_EQ(0u, d.synch_protocols);
	EXPECT_EQ(0u, d.mechanical);
	EXPECT_EQ(0x000100bau, d.features);
	EXPECT_EQ(0x10012u, d.max_msg_len);
	EXPECT_EQ(0xff, d.class_get_response);
	EXPECT_EQ(0xff, d.class_envelope);
	EXPECT_EQ(0, d.lcd_layout);
	EXPECT_EQ(0, d.pin_support);
	EXPECT_EQ(1, d.max_busy_slots);
	EXPECT_EQ(CCID_LEVEL_TPDU, ccid_exchange_level(d.features));
}

TEST(class_desc_every_field)
{
	struct ccid_class_desc d;
	const char *why;

	ASSERT_EQ(0, parse_desc(distinct_desc, sizeof(distinct_desc),
				&d, &why));
	EXPECT_EQ(0x0201, d.bcd_ccid);
	EXPECT_EQ(0x0f, d.max_slot_index);
	EXPECT_EQ(0x05, d.voltage_support);
	EXPECT_EQ(0x30201003u, d.protocols);
	EXPECT_EQ(0x14131211u, d.default_clock);
	EXPECT_EQ(0x18171615u, d.max_clock);
	EXPECT_EQ(0x19, d.num_clocks);
	EXPECT_EQ(0x1d1c1b1au, d.data_rate);
	EXPECT_EQ(0x21201f1eu, d.max_data_rate);
	EXPECT_EQ(0x22, d.num_data_rates);
	EXPECT_EQ(0x26252423u, d.max_ifsd);
	EXPECT_EQ(0x2a292827u, d.synch_protocols);
	EXPECT_EQ(0x2e2d2c2bu, d.mechanical);
	EXPECT_EQ(0xfbfcfdfeu, d.features);
	EXPECT_EQ(0x34333231u, d.max_msg_len);
	EXPECT_EQ(0x35, d.class_get_response);
	EXPECT_EQ(0x37, d.class_envelope);
	EXPECT_EQ(0x3938, d.lcd_layout);
	EXPECT_EQ(0x3a, d.pin_support);
	EXPECT_EQ(0x3b, d.max_busy_slots);
	EXPECT_EQ(CCID_LEVEL_EXTENDED_APDU, ccid_exchange_level(d.features));
}

struct desc_patch {
	const char *name;
	unsigned int off;	/* first byte to change */
	unsigned int width;	/* 1 or 4 bytes, little-endian */
	u32 val;
};

static void patch_desc(u8 *d, const struct desc_patch *p)
{
	unsigned int i;

	for (i = 0; i < p->width; i++)
		d[p->off + i] = p->val >> (8 * i);
}

/* Values at the edge of what is allowed */
TEST(class_desc_limits_accepted)
{
	static const struct desc_patch ok[] = {
		{ "bMaxSlotIndex 15", 4, 1, 15 },
		{ "bVoltageSupport 1", 5, 1, 1 },
		{ "bVoltageSupport 2", 5, 1, 2 },
		{ "bVoltageSupport 4", 5, 1, 4 },
		{ "dwProtocols T=1", 6, 4, 2 },
		{ "dwProtocols T=0 and T=1", 6, 4, 3 },
		{ "dwProtocols with other bits", 6, 4, 0xfffffffd },
		{ "level character", 40, 4, 0x000000ba },
		{ "level short APDU", 40, 4, 0x000200ba },
		{ "level extended APDU", 40, 4, 0x000400ba },
		{ "level bits only", 40, 4, 0x00040000 },
		{ "other dwFeatures bits", 40, 4, 0xfff8ffff },
		{ "dwMaxCCIDMessageLength 11", 44, 4, 11 },
		{ "dwMaxCCIDMessageLength max", 44, 4, 0xffffffff },
	};
	struct ccid_class_desc d;
	const char *why;
	u8 buf[54 + 9];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ok); i++) {
		memcpy(buf, qemu_desc, sizeof(qemu_desc));
		patch_desc(buf, &ok[i]);
		EXPECT_EQ(0, parse_desc(buf, 54, &d, &why))
			TH_LOG("%s: %s", ok[i].name, why);
	}

	/* Another descriptor may follow in the interface's extra bytes */
	memcpy(buf, qemu_desc, sizeof(qemu_desc));
	memcpy(buf + 54, "\x09\x04\x00\x00\x03\x0b\x00\x00\x00", 9);
	ASSERT_EQ(0, parse_desc(buf, sizeof(buf), &d, &why));
	EXPECT_EQ(1, d.max_busy_slots);
}

/* A descriptor with one field changed must be refused for this reason */
static void expect_bad_desc(struct __test_metadata *_metadata,
			    const struct desc_patch *p, size_t n,
			    const char *reason)
{
	struct ccid_class_desc d;
	const char *why;
	u8 buf[54];
	size_t i;

	for (i = 0; i < n; i++) {
		memcpy(buf, qemu_desc, sizeof(qemu_desc));
		patch_desc(buf, &p[i]);
		EXPECT_EQ(-EINVAL, parse_desc(buf, sizeof(buf), &d, &why))
			TH_LOG("%s accepted", p[i].name);
		EXPECT_WHY(reason, why);
	}
}

TEST(class_desc_wrong_type)
{
	static const struct desc_patch bad[] = {
		{ "type 0x00", 1, 1, 0x00 },
		{ "type 0x04 (interface)", 1, 1, 0x04 },
		{ "type 0x05 (endpoint)", 1, 1, 0x05 },
		{ "type 0x22", 1, 1, 0x22 },
		{ "type 0xff", 1, 1, 0xff },
	};

	expect_bad_desc(_metadata, bad, ARRAY_SIZE(bad),
			"class descriptor has the wrong type");
}

TEST(class_desc_bad_length)
{
	static const struct desc_patch bad[] = {
		{ "bLength 0", 0, 1, 0 },
		{ "bLength 9", 0, 1, 9 },
		{ "bLength 53", 0, 1, 53 },
		{ "bLength 55", 0, 1, 55 },
		{ "bLength 255", 0, 1, 255 },
	};

	expect_bad_desc(_metadata, bad, ARRAY_SIZE(bad),
			"class descriptor bLength is not 54");
}

TEST(class_desc_truncated)
{
	struct ccid_class_desc d;
	const char *why;
	size_t len;

	/* 0, 1, 2, ... 53: each an exact-size buffer */
	for (len = 0; len < 54; len++) {
		EXPECT_EQ(-EINVAL, parse_desc(qemu_desc, len, &d, &why))
			TH_LOG("len %zu", len);
		EXPECT_WHY("class descriptor truncated", why);
	}
}

TEST(class_desc_max_slot_index)
{
	static const struct desc_patch bad[] = {
		{ "bMaxSlotIndex 16", 4, 1, 16 },
		{ "bMaxSlotIndex 255", 4, 1, 255 },
	};

	expect_bad_desc(_metadata, bad, ARRAY_SIZE(bad),
			"bMaxSlotIndex out of range");
}

TEST(class_desc_voltage)
{
	static const struct desc_patch bad[] = {
		{ "bVoltageSupport 0", 5, 1, 0x00 },
		{ "bVoltageSupport 0x08", 5, 1, 0x08 },
		{ "bVoltageSupport 0x0f", 5, 1, 0x0f },
		{ "bVoltageSupport 0x80", 5, 1, 0x80 },
	};

	expect_bad_desc(_metadata, bad, ARRAY_SIZE(bad),
			"bVoltageSupport invalid");
}

TEST(class_desc_protocols)
{
	static const struct desc_patch bad[] = {
		{ "dwProtocols 0", 6, 4, 0 },
		{ "dwProtocols 0x4", 6, 4, 0x4 },
		{ "dwProtocols 0xfffffffc", 6, 4, 0xfffffffc },
	};

	expect_bad_desc(_metadata, bad, ARRAY_SIZE(bad),
			"dwProtocols names neither T=0 nor T=1");
}

TEST(class_desc_exchange_level)
{
	static const struct desc_patch bad[] = {
		{ "level 0x30000", 40, 4, 0x000300ba },
		{ "level 0x50000", 40, 4, 0x000500ba },
		{ "level 0x60000", 40, 4, 0x000600ba },
		{ "level 0x70000", 40, 4, 0x000700ba },
	};

	expect_bad_desc(_metadata, bad, ARRAY_SIZE(bad),
			"dwFeatures exchange level invalid");
}

TEST(class_desc_max_msg_len)
{
	static const struct desc_patch bad[] = {
		{ "dwMaxCCIDMessageLength 0", 44, 4, 0 },
		{ "dwMaxCCIDMessageLength 10", 44, 4, 10 },
	};

	expect_bad_desc(_metadata, bad, ARRAY_SIZE(bad),
			"dwMaxCCIDMessageLength too small");
}

/* ------------------------------------------------------------------ */
/* Exchange level                                                      */
/* ------------------------------------------------------------------ */

TEST(exchange_level)
{
	static const struct {
		u32 features;
		int level;
		const char *name;
	} t[] = {
		{ 0x00000000, CCID_LEVEL_CHARACTER, "character" },
		{ 0x00010000, CCID_LEVEL_TPDU, "tpdu" },
		{ 0x00020000, CCID_LEVEL_SHORT_APDU, "short_apdu" },
		{ 0x00040000, CCID_LEVEL_EXTENDED_APDU, "extended_apdu" },
		/* the other dwFeatures bits do not matter */
		{ 0xfff8ffff, CCID_LEVEL_CHARACTER, "character" },
		{ 0x000100ba, CCID_LEVEL_TPDU, "tpdu" },
		{ 0xfffaffff, CCID_LEVEL_SHORT_APDU, "short_apdu" },
		{ 0x001404fe, CCID_LEVEL_EXTENDED_APDU, "extended_apdu" },
		/* more than one level bit */
		{ 0x00030000, -EINVAL, "invalid" },
		{ 0x00050000, -EINVAL, "invalid" },
		{ 0x00060000, -EINVAL, "invalid" },
		{ 0x00070000, -EINVAL, "invalid" },
		{ 0xffffffff, -EINVAL, "invalid" },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		EXPECT_EQ(t[i].level, ccid_exchange_level(t[i].features))
			TH_LOG("dwFeatures 0x%08x", t[i].features);
		EXPECT_STREQ(t[i].name,
			     ccid_exchange_level_name(t[i].features));
	}
	/* The UAPI numbering */
	EXPECT_EQ(0, CCID_LEVEL_CHARACTER);
	EXPECT_EQ(1, CCID_LEVEL_TPDU);
	EXPECT_EQ(2, CCID_LEVEL_SHORT_APDU);
	EXPECT_EQ(3, CCID_LEVEL_EXTENDED_APDU);
}

/* ------------------------------------------------------------------ */
/* PC_to_RDR header                                                    */
/* ------------------------------------------------------------------ */

TEST(build_hdr)
{
	static const u8 want[] = {
		0x6f,			/* bMessageType */
		0x78, 0x56, 0x34, 0x12,	/* dwLength, little-endian */
		0x03,			/* bSlot */
		0xa5,			/* bSeq */
		0x0b,			/* bBWI */
		0xcd, 0xab,		/* wLevelParameter */
	};
	u8 buf[10 + 4];
	unsigned int i;

	memset(buf, 0xee, sizeof(buf));
	ccid_build_hdr(buf, 0x6f, 0x12345678, 0x03, 0xa5, 0x0b, 0xcd, 0xab);
	for (i = 0; i < sizeof(want); i++) {
		EXPECT_EQ(want[i], buf[i])
			TH_LOG("byte %u", i);
	}
	/* Nothing written past the header */
	for (i = 10; i < sizeof(buf); i++) {
		EXPECT_EQ(0xee, buf[i])
			TH_LOG("byte %u", i);
	}

	/* IccPowerOn, no data, bPowerSelect 3 V */
	ccid_build_hdr(buf, 0x62, 0, 0, 0xff, 0x02, 0, 0);
	EXPECT_EQ(0x62, buf[0]);
	EXPECT_EQ(0, buf[1]);
	EXPECT_EQ(0, buf[2]);
	EXPECT_EQ(0, buf[3]);
	EXPECT_EQ(0, buf[4]);
	EXPECT_EQ(0, buf[5]);
	EXPECT_EQ(0xff, buf[6]);
	EXPECT_EQ(0x02, buf[7]);
	EXPECT_EQ(0, buf[8]);
	EXPECT_EQ(0, buf[9]);

	/* Largest dwLength */
	ccid_build_hdr(buf, 0x6b, 0xffffffff, 0x0f, 0, 0, 0, 0);
	EXPECT_EQ(0xff, buf[1]);
	EXPECT_EQ(0xff, buf[2]);
	EXPECT_EQ(0xff, buf[3]);
	EXPECT_EQ(0xff, buf[4]);
	EXPECT_EQ(0x0f, buf[5]);
}

/* ------------------------------------------------------------------ */
/* Matching answers to commands                                        */
/* ------------------------------------------------------------------ */

/* Every PC_to_RDR command the answer of which is one of the four below */
static const struct {
	u8 cmd, rsp;
	const char *name;
} cmd_rsp[] = {
	{ 0x62, 0x80, "IccPowerOn" },
	{ 0x6f, 0x80, "XfrBlock" },
	{ 0x69, 0x80, "Secure" },
	{ 0x63, 0x81, "IccPowerOff" },
	{ 0x65, 0x81, "GetSlotStatus" },
	{ 0x6e, 0x81, "IccClock" },
	{ 0x6a, 0x81, "T0APDU" },
	{ 0x71, 0x81, "Mechanical" },
	{ 0x72, 0x81, "Abort" },
	{ 0x6c, 0x82, "GetParameters" },
	{ 0x6d, 0x82, "ResetParameters" },
	{ 0x61, 0x82, "SetParameters" },
	{ 0x6b, 0x83, "Escape" },
	{ 0x73, 0x84, "SetDataRateAndClockFrequency" },
};

TEST(rsp_type_for)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cmd_rsp); i++) {
		EXPECT_EQ(cmd_rsp[i].rsp, ccid_rsp_type_for(cmd_rsp[i].cmd))
			TH_LOG("%s", cmd_rsp[i].name);
	}
}

/* Lay out an RDR_to_PC frame; returns its length */
static size_t rsp_frame(u8 *buf, u8 type, u32 dwlen, u8 slot, u8 seq,
			u8 status, u8 error, u8 param,
			const void *data, size_t n)
{
	buf[0] = type;
	buf[1] = dwlen;
	buf[2] = dwlen >> 8;
	buf[3] = dwlen >> 16;
	buf[4] = dwlen >> 24;
	buf[5] = slot;
	buf[6] = seq;
	buf[7] = status;
	buf[8] = error;
	buf[9] = param;
	if (n)
		memcpy(buf + 10, data, n);
	return 10 + n;
}

TEST(rsp_match)
{
	static const u8 sw[] = { 0x90, 0x00 };
	struct ccid_rsp rsp;
	const char *why;
	u8 buf[16];
	size_t n;

	/* DataBlock for XfrBlock, slot 2, bSeq 7 */
	n = rsp_frame(buf, 0x80, 2, 2, 7, 0x00, 0x00, 0x00, sw, 2);
	ASSERT_EQ(CCID_RSP_MATCH, check_rsp(buf, n, 0x6f, 2, 7, &rsp, &why));
	EXPECT_EQ(0x80, rsp.type);
	EXPECT_EQ(2u, rsp.len);
	EXPECT_EQ(2, rsp.slot);
	EXPECT_EQ(7, rsp.seq);
	EXPECT_EQ(0, rsp.status);
	EXPECT_EQ(0, rsp.error);
	EXPECT_EQ(0, rsp.param);

	/* Distinct values in the last three bytes */
	n = rsp_frame(buf, 0x81, 0, 0, 0xff, 0x01, 0x5a, 0x03, NULL, 0);
	ASSERT_EQ(CCID_RSP_MATCH, check_rsp(buf, n, 0x65, 0, 0xff,
					    &rsp, &why));
	EXPECT_EQ(0x81, rsp.type);
	EXPECT_EQ(0u, rsp.len);
	EXPECT_EQ(0xff, rsp.seq);
	EXPECT_EQ(0x01, rsp.status);
	EXPECT_EQ(0x5a, rsp.error);
	EXPECT_EQ(0x03, rsp.param);
}

/* A failed command is still the answer: the caller maps bError */
TEST(rsp_match_failed)
{
	static const u8 status[] = { 0x40, 0x41, 0x42, 0x43, 0x00, 0x02 };
	struct ccid_rsp rsp;
	const char *why;
	unsigned int i;
	u8 buf[10];

	for (i = 0; i < ARRAY_SIZE(status); i++) {
		rsp_frame(buf, 0x80, 0, 0, 1, status[i], 0xfe, 0, NULL, 0);
		EXPECT_EQ(CCID_RSP_MATCH,
			  check_rsp(buf, 10, 0x62, 0, 1, &rsp, &why))
			TH_LOG("bStatus 0x%02x", status[i]);
		EXPECT_EQ(status[i], rsp.status);
		EXPECT_EQ(0xfe, rsp.error);
	}
}

TEST(rsp_match_every_command)
{
	static const u8 types[] = { 0x80, 0x81, 0x82, 0x83, 0x84, 0x50 };
	struct ccid_rsp rsp;
	const char *why;
	unsigned int i, j;
	u8 buf[10 + 5];
	size_t n;

	for (i = 0; i < ARRAY_SIZE(cmd_rsp); i++) {
		for (j = 0; j < ARRAY_SIZE(types); j++) {
			bool right = types[j] == cmd_rsp[i].rsp;

			n = rsp_frame(buf, types[j], 5, 1, 0x42, 0, 0, 0,
				      "\x11\x00\x00\x0a\x00", 5);
			EXPECT_EQ(right ? CCID_RSP_MATCH : CCID_RSP_BAD,
				  check_rsp(buf, n, cmd_rsp[i].cmd, 1, 0x42,
					    &rsp, &why))
				TH_LOG("%s answered by 0x%02x",
				       cmd_rsp[i].name, types[j]);
			if (!right)
				EXPECT_WHY("wrong message type", why);
		}
	}
}

TEST(rsp_stale_seq)
{
	struct ccid_rsp rsp;
	const char *why;
	u8 buf[12];
	size_t n;

	n = rsp_frame(buf, 0x80, 2, 0, 6, 0, 0, 0, "\x90\x00", 2);
	EXPECT_EQ(CCID_RSP_STALE, check_rsp(buf, n, 0x6f, 0, 7, &rsp, &why));
	/* rsp is filled in, for the log line */
	EXPECT_EQ(6, rsp.seq);
	EXPECT_EQ(2u, rsp.len);
	/* bSeq wraps: 0xff is not 0x00 */
	n = rsp_frame(buf, 0x80, 2, 0, 0xff, 0, 0, 0, "\x90\x00", 2);
	EXPECT_EQ(CCID_RSP_STALE, check_rsp(buf, n, 0x6f, 0, 0, &rsp, &why));
}

TEST(rsp_stale_slot)
{
	struct ccid_rsp rsp;
	const char *why;
	u8 buf[12];
	size_t n;

	n = rsp_frame(buf, 0x80, 2, 1, 7, 0, 0, 0, "\x90\x00", 2);
	EXPECT_EQ(CCID_RSP_STALE, check_rsp(buf, n, 0x6f, 0, 7, &rsp, &why));
	EXPECT_EQ(1, rsp.slot);
	n = rsp_frame(buf, 0x80, 2, 0, 7, 0, 0, 0, "\x90\x00", 2);
	EXPECT_EQ(CCID_RSP_STALE, check_rsp(buf, n, 0x6f, 15, 7, &rsp, &why));
}

/* The late answer to an earlier command has that command's type */
TEST(rsp_stale_before_type_and_status)
{
	struct ccid_rsp rsp;
	const char *why;
	u8 buf[10];

	/* SlotStatus of an earlier GetSlotStatus, while XfrBlock waits */
	rsp_frame(buf, 0x81, 0, 0, 3, 0, 0, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_STALE, check_rsp(buf, 10, 0x6f, 0, 4, &rsp, &why));
	rsp_frame(buf, 0x81, 0, 1, 4, 0, 0, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_STALE, check_rsp(buf, 10, 0x6f, 0, 4, &rsp, &why));
	/* Stale whatever its bStatus */
	rsp_frame(buf, 0x80, 0, 0, 3, 0xc0, 0, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_STALE, check_rsp(buf, 10, 0x6f, 0, 4, &rsp, &why));
	rsp_frame(buf, 0x80, 0, 0, 3, 0x80, 0, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_STALE, check_rsp(buf, 10, 0x6f, 0, 4, &rsp, &why));
}

TEST(rsp_time_extension)
{
	static const u8 status[] = { 0x80, 0x81, 0x82 };
	struct ccid_rsp rsp;
	const char *why;
	unsigned int i;
	u8 buf[10];

	for (i = 0; i < ARRAY_SIZE(status); i++) {
		rsp_frame(buf, 0x80, 0, 0, 9, status[i], 0x05, 0, NULL, 0);
		EXPECT_EQ(CCID_RSP_TIME_EXT,
			  check_rsp(buf, 10, 0x69, 0, 9, &rsp, &why))
			TH_LOG("bStatus 0x%02x", status[i]);
		/* bError is the timeout multiplier */
		EXPECT_EQ(5, rsp.error);
	}
	/* Time extension of another command type is still garbled */
	rsp_frame(buf, 0x81, 0, 0, 9, 0x80, 0x01, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, 10, 0x69, 0, 9, &rsp, &why));
	EXPECT_WHY("wrong message type", why);
}

TEST(rsp_short_header)
{
	struct ccid_rsp rsp;
	const char *why;
	size_t actual;
	u8 buf[10];

	rsp_frame(buf, 0x80, 0, 0, 0, 0, 0, 0, NULL, 0);
	for (actual = 0; actual < 10; actual++) {
		EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, actual, 0x6f, 0, 0,
						  &rsp, &why))
			TH_LOG("%zu bytes", actual);
		EXPECT_WHY("short header", why);
	}
}

TEST(rsp_length_larger_than_data)
{
	static const u32 dwlen[] = { 3, 4, 0x10000, 0x80000002, 0xffffffff };
	struct ccid_rsp rsp;
	const char *why;
	unsigned int i;
	u8 buf[12];
	size_t n;

	for (i = 0; i < ARRAY_SIZE(dwlen); i++) {
		n = rsp_frame(buf, 0x80, dwlen[i], 0, 0, 0, 0, 0,
			      "\x90\x00", 2);
		EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, n, 0x6f, 0, 0,
						  &rsp, &why))
			TH_LOG("dwLength 0x%x", dwlen[i]);
		EXPECT_WHY("dwLength does not match the data received", why);
		EXPECT_EQ(dwlen[i], rsp.len);
	}
	/* A bare header that announces data */
	n = rsp_frame(buf, 0x80, 1, 0, 0, 0, 0, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, n, 0x6f, 0, 0, &rsp, &why));
	EXPECT_WHY("dwLength does not match the data received", why);
}

TEST(rsp_length_smaller_than_data)
{
	struct ccid_rsp rsp;
	const char *why;
	u8 buf[12];
	size_t n;

	n = rsp_frame(buf, 0x80, 1, 0, 0, 0, 0, 0, "\x90\x00", 2);
	EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, n, 0x6f, 0, 0, &rsp, &why));
	EXPECT_WHY("dwLength does not match the data received", why);
	n = rsp_frame(buf, 0x80, 0, 0, 0, 0, 0, 0, "\x90\x00", 2);
	EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, n, 0x6f, 0, 0, &rsp, &why));
	EXPECT_WHY("dwLength does not match the data received", why);
	/* A length error is reported even for another bSeq */
	n = rsp_frame(buf, 0x80, 1, 0, 5, 0, 0, 0, "\x90\x00", 2);
	EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, n, 0x6f, 0, 0, &rsp, &why));
}

TEST(rsp_wrong_type)
{
	struct ccid_rsp rsp;
	const char *why;
	u8 buf[10 + 5];
	size_t n;

	/* Parameters for XfrBlock */
	n = rsp_frame(buf, 0x82, 5, 0, 1, 0, 0, 0, "\x11\x00\x00\x0a\x00", 5);
	EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, n, 0x6f, 0, 1, &rsp, &why));
	EXPECT_WHY("wrong message type", why);
	/* The command echoed back */
	n = rsp_frame(buf, 0x6f, 0, 0, 1, 0, 0, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, n, 0x6f, 0, 1, &rsp, &why));
	EXPECT_WHY("wrong message type", why);
	/* An interrupt-IN message on bulk-IN */
	n = rsp_frame(buf, 0x50, 0, 0, 1, 0, 0, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, n, 0x65, 0, 1, &rsp, &why));
	EXPECT_WHY("wrong message type", why);
	/* A successful SlotStatus does not answer an XfrBlock... */
	n = rsp_frame(buf, 0x81, 0, 0, 1, 0x00, 0, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, n, 0x6f, 0, 1, &rsp, &why));
	EXPECT_WHY("wrong message type", why);
	/* ...a failed one does ("command not supported", as QEMU says it) */
	n = rsp_frame(buf, 0x81, 0, 0, 1, 0x40, 0x00, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_MATCH, check_rsp(buf, n, 0x6b, 0, 1, &rsp, &why));
	EXPECT_EQ(-EOPNOTSUPP, ccid_rsp_errno(&rsp));
	n = rsp_frame(buf, 0x81, 0, 0, 1, 0x41, 0xfe, 0, NULL, 0);
	EXPECT_EQ(CCID_RSP_MATCH, check_rsp(buf, n, 0x69, 0, 1, &rsp, &why));
	EXPECT_EQ(-EIO, ccid_rsp_errno(&rsp));
}

TEST(rsp_reserved_status)
{
	static const u8 status[] = { 0xc0, 0xc1, 0xc2 };
	struct ccid_rsp rsp;
	const char *why;
	unsigned int i;
	u8 buf[10];

	for (i = 0; i < ARRAY_SIZE(status); i++) {
		rsp_frame(buf, 0x81, 0, 0, 0, status[i], 0, 0, NULL, 0);
		EXPECT_EQ(CCID_RSP_BAD, check_rsp(buf, 10, 0x65, 0, 0,
						  &rsp, &why))
			TH_LOG("bStatus 0x%02x", status[i]);
		EXPECT_WHY("reserved bmCommandStatus", why);
	}
}

/* ------------------------------------------------------------------ */
/* bStatus and bError to errno                                         */
/* ------------------------------------------------------------------ */

TEST(rsp_errno)
{
	/* In the order Documentation/usb/ccid.rst lists the rules */
	static const struct {
		u8 status, error;
		int err;
	} t[] = {
		/* processed: bError does not matter */
		{ 0x00, 0x00, 0 },
		{ 0x00, 0xfe, 0 },
		{ 0x01, 0x00, 0 },
		/* ...but a DataBlock with no card did not come from one */
		{ 0x02, 0xfe, -ENOMEDIUM },
		{ 0x02, 0x00, -ENOMEDIUM },
		/* failed, bError = index of the bad field */
		{ 0x40, 0x01, -EINVAL },
		{ 0x40, 0x05, -EINVAL },
		{ 0x40, 0x07, -EINVAL },
		{ 0x40, 0x7f, -EINVAL },
		{ 0x41, 0x05, -EINVAL },
		/* failed, command not supported */
		{ 0x40, 0x00, -EOPNOTSUPP },
		/* failed, no card: any bError from 0x80, tested after those */
		{ 0x42, 0xfe, -ENOMEDIUM },
		{ 0x42, 0xfb, -ENOMEDIUM },
		{ 0x42, 0xf6, -ENOMEDIUM },
		{ 0x42, 0xff, -ENOMEDIUM },
		{ 0x42, 0x80, -ENOMEDIUM },
		{ 0x42, 0x05, -EINVAL },
		{ 0x42, 0x00, -EOPNOTSUPP },
		/* failed, card present */
		{ 0x40, 0xff, -ECANCELED },	/* CMD_ABORTED */
		{ 0x40, 0xef, -ECANCELED },	/* PIN_CANCELLED */
		{ 0x40, 0xf0, -ETIME },		/* PIN_TIMEOUT */
		{ 0x40, 0xf6, -EPROTONOSUPPORT },
		{ 0x40, 0xf5, -EPROTONOSUPPORT },
		{ 0x40, 0xf2, -EBUSY },		/* BUSY_WITH_AUTO_SEQUENCE */
		{ 0x40, 0xe0, -EBUSY },		/* CMD_SLOT_BUSY */
		{ 0x40, 0xfe, -EIO },		/* ICC_MUTE */
		{ 0x41, 0xfe, -EIO },
		{ 0x40, 0xfd, -EIO },		/* XFR_PARITY_ERROR */
		{ 0x40, 0xfc, -EIO },		/* XFR_OVERRUN */
		{ 0x40, 0xfb, -EIO },		/* HW_ERROR */
		{ 0x40, 0xf8, -EIO },		/* BAD_ATR_TS */
		{ 0x40, 0xf7, -EIO },		/* BAD_ATR_TCK */
		{ 0x40, 0xf4, -EIO },		/* PROCEDURE_BYTE_CONFLICT */
		{ 0x40, 0xf3, -EIO },		/* DEACTIVATED_PROTOCOL */
		{ 0x40, 0x80, -EIO },		/* undefined */
	};
	struct ccid_rsp rsp;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		memset(&rsp, 0, sizeof(rsp));
		rsp.type = 0x80;
		rsp.status = t[i].status;
		rsp.error = t[i].error;
		EXPECT_EQ(t[i].err, ccid_rsp_errno(&rsp))
			TH_LOG("bStatus 0x%02x bError 0x%02x",
			       t[i].status, t[i].error);
	}
	/* a SlotStatus saying "no card" is a plain success */
	memset(&rsp, 0, sizeof(rsp));
	rsp.type = 0x81;
	rsp.status = 0x02;
	EXPECT_EQ(0, ccid_rsp_errno(&rsp));
}

/* ------------------------------------------------------------------ */
/* PC_to_RDR_Secure                                                    */
/* ------------------------------------------------------------------ */

/* What GnuPG sent to the SCM SPR332 (reader-behaviours.md) */
static const u8 spr332_verify[] = {
	0x00,			/* bPINOperation: verify */
	0x00,			/* bTimeOut: reader default */
	0x82,			/* bmFormatString: bytes, position 0, ASCII */
	0x00,			/* bmPINBlockString */
	0x00,			/* bmPINLengthFormat */
	0x19, 0x06,		/* wPINMaxExtraDigit 0x0619: 6 to 25 digits */
	0x02,			/* bEntryValidationCondition: key pressed */
	0x01,			/* bNumberMessage */
	0x09, 0x04,		/* wLangId 0x0409 */
	0x00,			/* bMsgIndex */
	0x00, 0x00, 0x00,	/* bTeoPrologue */
	0x00, 0x20, 0x00, 0x82,	/* VERIFY, case 1: the reader adds Lc */
};

static_assert(sizeof(spr332_verify) == 19, "spr332_verify is not 19 bytes");

#define VERIFY_FIXED	15

/* A verify block; returns its length */
static size_t mk_verify(u8 *b, u8 fmt, u8 block, u16 extra, u8 cond,
			const void *apdu, size_t n)
{
	memcpy(b, spr332_verify, VERIFY_FIXED);
	b[2] = fmt;
	b[3] = block;
	b[5] = extra;
	b[6] = extra >> 8;
	b[7] = cond;
	memcpy(b + VERIFY_FIXED, apdu, n);
	return VERIFY_FIXED + n;
}

/* A modify block with @nidx bMsgIndex bytes; returns its length */
static size_t mk_modify(u8 *b, u8 fmt, u8 block, u8 off_old, u8 off_new,
			u16 extra, u8 cond, u8 nmsg, unsigned int nidx,
			const void *apdu, size_t n)
{
	size_t i = 0;
	unsigned int k;

	b[i++] = 0x01;		/* bPINOperation: modify */
	b[i++] = 0x1e;		/* bTimeOut */
	b[i++] = fmt;		/* bmFormatString */
	b[i++] = block;		/* bmPINBlockString */
	b[i++] = 0x00;		/* bmPINLengthFormat */
	b[i++] = off_old;	/* bInsertionOffsetOld */
	b[i++] = off_new;	/* bInsertionOffsetNew */
	b[i++] = extra;		/* wPINMaxExtraDigit */
	b[i++] = extra >> 8;
	b[i++] = 0x03;		/* bConfirmPIN: old PIN, confirm new */
	b[i++] = cond;		/* bEntryValidationCondition */
	b[i++] = nmsg;		/* bNumberMessage */
	b[i++] = 0x09;		/* wLangId */
	b[i++] = 0x04;
	for (k = 0; k < nidx; k++)
		b[i++] = k;	/* bMsgIndex1..3 */
	b[i++] = 0x00;		/* bTeoPrologue */
	b[i++] = 0x00;
	b[i++] = 0x00;
	memcpy(b + i, apdu, n);
	return i + n;
}

static const u8 apdu_case1[] = { 0x00, 0x20, 0x00, 0x81 };
static const u8 apdu_change[] = { 0x00, 0x24, 0x00, 0x81 };

TEST(secure_spr332_verify)
{
	const char *why;

	EXPECT_EQ(0, check_secure(spr332_verify, sizeof(spr332_verify), 0x01,
				  &why))
		TH_LOG("%s", why);
	EXPECT_EQ(0, check_secure(spr332_verify, sizeof(spr332_verify), 0x03,
				  &why))
		TH_LOG("%s", why);

	EXPECT_EQ(-EOPNOTSUPP, check_secure(spr332_verify,
					    sizeof(spr332_verify), 0x00, &why));
	EXPECT_WHY("reader has no PIN verification", why);
	EXPECT_EQ(-EOPNOTSUPP, check_secure(spr332_verify,
					    sizeof(spr332_verify), 0x02, &why));
	EXPECT_WHY("reader has no PIN verification", why);
}

TEST(secure_verify_truncated)
{
	const char *why;
	size_t len;

	/* Fixed part cut short */
	for (len = 1; len < VERIFY_FIXED; len++) {
		EXPECT_EQ(-EINVAL, check_secure(spr332_verify, len, 0x03, &why))
			TH_LOG("len %zu", len);
		EXPECT_WHY("verify structure truncated", why);
	}
	/* Less than an APDU header after it */
	for (len = VERIFY_FIXED; len < sizeof(spr332_verify); len++) {
		EXPECT_EQ(-EINVAL, check_secure(spr332_verify, len, 0x03, &why))
			TH_LOG("len %zu", len);
		EXPECT_WHY("abPINApdu shorter than an APDU header", why);
	}
}

TEST(secure_verify_apdu_lc)
{
	/* VERIFY with Lc 4, "1234", Le, and one byte too many */
	static const u8 apdu[] = { 0x00, 0x20, 0x00, 0x81, 0x04,
				   0x31, 0x32, 0x33, 0x34, 0x00, 0x00 };
	u8 b[VERIFY_FIXED + 5 + 255 + 1];
	const char *why;
	size_t n;

	/* Lc and Le */
	n = mk_verify(b, 0x82, 0x00, 0x0408, 0x02, apdu, 10);
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);
	/* Lc only */
	n = mk_verify(b, 0x82, 0x00, 0x0408, 0x02, apdu, 9);
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);
	/* Header and one more byte (Le, or Lc = 0) */
	n = mk_verify(b, 0x82, 0x00, 0x0408, 0x02, apdu, 5);
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);

	/* Lc 4 with 3 data bytes */
	n = mk_verify(b, 0x82, 0x00, 0x0408, 0x02, apdu, 8);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why));
	EXPECT_WHY("abPINApdu length does not match its Lc", why);
	/* Lc 4 with 4 data bytes, Le and one byte more */
	n = mk_verify(b, 0x82, 0x00, 0x0408, 0x02, apdu, 11);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why));
	EXPECT_WHY("abPINApdu length does not match its Lc", why);
	/* Lc 0 with a data byte and Le */
	n = mk_verify(b, 0x82, 0x00, 0x0408, 0x02, apdu, 7);
	b[VERIFY_FIXED + 4] = 0x00;
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why));
	EXPECT_WHY("abPINApdu length does not match its Lc", why);
	/* Lc 255 with 8 data bytes ... */
	n = mk_verify(b, 0x82, 0x00, 0x0408, 0x02, apdu, 9);
	b[VERIFY_FIXED + 4] = 0xff;
	memset(b + n, 0x30, 4);
	n += 4;
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why));
	EXPECT_WHY("abPINApdu length does not match its Lc", why);
	/* ... and with all of its 255 */
	memset(b + n, 0x30, 255 - 8);
	n += 255 - 8;
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);
	/* ... and Le */
	b[n++] = 0x00;
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);
}

TEST(secure_verify_min_max)
{
	u8 b[VERIFY_FIXED + 4];
	const char *why;
	size_t n;

	/* minimum 9 above maximum 4 */
	n = mk_verify(b, 0x82, 0x00, 0x0904, 0x02, apdu_case1, 4);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why));
	EXPECT_WHY("wPINMaxExtraDigit minimum above maximum", why);
	n = mk_verify(b, 0x82, 0x00, 0x0100, 0x02, apdu_case1, 4);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why));
	EXPECT_WHY("wPINMaxExtraDigit minimum above maximum", why);
	/* equal is fine: a fixed PIN length */
	n = mk_verify(b, 0x82, 0x00, 0x0606, 0x02, apdu_case1, 4);
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);
	/* the byte order matters: 0x0906 is 9..6 */
	n = mk_verify(b, 0x82, 0x00, 0x0609, 0x02, apdu_case1, 4);
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);
}

TEST(secure_verify_entry_condition)
{
	static const u8 good[] = { 1, 2, 3, 4, 5, 6, 7 };
	static const u8 bad[] = { 0x00, 0x08, 0x09, 0x0f, 0x80, 0xff };
	u8 b[VERIFY_FIXED + 4];
	const char *why;
	unsigned int i;
	size_t n;

	for (i = 0; i < ARRAY_SIZE(good); i++) {
		n = mk_verify(b, 0x82, 0x00, 0x0408, good[i], apdu_case1, 4);
		EXPECT_EQ(0, check_secure(b, n, 0x01, &why))
			TH_LOG("condition 0x%02x: %s", good[i], why);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		n = mk_verify(b, 0x82, 0x00, 0x0408, bad[i], apdu_case1, 4);
		EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why))
			TH_LOG("condition 0x%02x", bad[i]);
		EXPECT_WHY("bEntryValidationCondition invalid", why);
	}
}

TEST(secure_verify_pin_format)
{
	static const u8 good[] = { 0x80, 0x81, 0x82, 0x00, 0x01, 0x02, 0x06 };
	static const u8 bad[] = { 0x83, 0x03, 0x8b, 0xff };
	u8 b[VERIFY_FIXED + 4];
	const char *why;
	unsigned int i;
	size_t n;

	for (i = 0; i < ARRAY_SIZE(good); i++) {
		n = mk_verify(b, good[i], 0x00, 0x0408, 0x02, apdu_case1, 4);
		EXPECT_EQ(0, check_secure(b, n, 0x01, &why))
			TH_LOG("bmFormatString 0x%02x: %s", good[i], why);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		n = mk_verify(b, bad[i], 0x00, 0x0408, 0x02, apdu_case1, 4);
		EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why))
			TH_LOG("bmFormatString 0x%02x", bad[i]);
		EXPECT_WHY("bmFormatString has a reserved PIN format", why);
	}
}

TEST(secure_verify_pin_block_place)
{
	u8 apdu[5 + 16], b[VERIFY_FIXED + sizeof(apdu)];
	const char *why;
	size_t n;

	memcpy(apdu, "\x00\x20\x00\x81\x08", 5);
	memset(apdu + 5, 0xff, 16);

	/* An 8-byte PIN block at position 0 of 8 bytes of data */
	n = mk_verify(b, 0x82, 0x08, 0x0408, 0x02, apdu, 13);
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);
	/* A 9-byte block does not fit */
	n = mk_verify(b, 0x82, 0x09, 0x0408, 0x02, apdu, 13);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why));
	EXPECT_WHY("PIN block lies outside the APDU data", why);
	/* A 15-byte block in 4 bytes of data */
	apdu[4] = 4;
	n = mk_verify(b, 0x82, 0x4f, 0x0408, 0x02, apdu, 9);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why));
	EXPECT_WHY("PIN block lies outside the APDU data", why);
	/* With Le after the data too */
	n = mk_verify(b, 0x82, 0x4f, 0x0408, 0x02, apdu, 10);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x01, &why));
	EXPECT_WHY("PIN block lies outside the APDU data", why);
	/* No data in the APDU: the reader builds it, nothing to check */
	n = mk_verify(b, 0x82, 0x4f, 0x0408, 0x02, apdu_case1, 4);
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);
}

/*
 * ISO 9564 format 2 as OpenSC builds it: an 8-byte block at the start of
 * the data, the length nibble at bit 4 and the PIN from bit 8 (or byte
 * 1) on.  The PIN position lies inside the block, not before it.
 */
TEST(secure_verify_format2_block)
{
	u8 apdu[5 + 8], b[VERIFY_FIXED + sizeof(apdu)];
	const char *why;
	size_t n;

	memcpy(apdu, "\x00\x20\x00\x81\x08", 5);
	memcpy(apdu + 5, "\x2f\xff\xff\xff\xff\xff\xff\xff", 8);

	/* position in bits (8), BCD */
	n = mk_verify(b, 0x41, 0x48, 0x0408, 0x02, apdu, sizeof(apdu));
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);
	/* position in bytes (1), BCD */
	n = mk_verify(b, 0x89, 0x48, 0x0408, 0x02, apdu, sizeof(apdu));
	EXPECT_EQ(0, check_secure(b, n, 0x01, &why)) TH_LOG("%s", why);
}

/*
 * How many bMsgIndex bytes a modify block has for a bNumberMessage, as
 * libccid lays it out: bMsgIndex1 always, bMsgIndex2 unless
 * bNumberMessage is 0, bMsgIndex3 when it is 3 or more (0xff included).
 */
static const struct {
	u8 nmsg;
	unsigned int nidx;
} modify_msgs[] = {
	{ 0x00, 1 },
	{ 0x01, 2 },
	{ 0x02, 2 },
	{ 0x03, 3 },
	{ 0x04, 3 },
	{ 0xff, 3 },
};

TEST(secure_modify_messages)
{
	unsigned int i, nidx;
	const char *why;
	u8 nmsg, b[32];
	size_t n;

	for (i = 0; i < ARRAY_SIZE(modify_msgs); i++) {
		nmsg = modify_msgs[i].nmsg;
		nidx = modify_msgs[i].nidx;
		n = mk_modify(b, 0x82, 0x00, 0, 0, 0x0408, 0x02, nmsg, nidx,
			      apdu_change, 4);
		ASSERT_EQ(21 + nidx, n);
		EXPECT_EQ(0, check_secure(b, n, 0x02, &why))
			TH_LOG("bNumberMessage %u: %s", nmsg, why);
		EXPECT_EQ(0, check_secure(b, n, 0x03, &why))
			TH_LOG("bNumberMessage %u: %s", nmsg, why);
		/* one byte short: the APDU loses its last byte */
		EXPECT_EQ(-EINVAL, check_secure(b, n - 1, 0x02, &why))
			TH_LOG("bNumberMessage %u, %zu bytes", nmsg, n - 1);
		EXPECT_WHY("abPINApdu shorter than an APDU header", why);
		/* one byte short of the fixed part */
		EXPECT_EQ(-EINVAL, check_secure(b, 16 + nidx, 0x02, &why))
			TH_LOG("bNumberMessage %u, %u bytes", nmsg, 16 + nidx);
		EXPECT_WHY("modify structure truncated", why);
	}
	/* One index byte fewer than bNumberMessage calls for */
	n = mk_modify(b, 0x82, 0x00, 0, 0, 0x0408, 0x02, 3, 2,
		      apdu_change, 4);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x02, &why));
	EXPECT_WHY("abPINApdu shorter than an APDU header", why);
	n = mk_modify(b, 0x82, 0x00, 0, 0, 0x0408, 0x02, 1, 1,
		      apdu_change, 4);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x02, &why));
	EXPECT_WHY("abPINApdu shorter than an APDU header", why);
	/* One more: the APDU would start with a stray index byte */
	n = mk_modify(b, 0x82, 0x00, 0, 0, 0x0408, 0x02, 0, 2,
		      "\x00\x24\x00\x81\x10", 5);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x02, &why));
	EXPECT_WHY("abPINApdu length does not match its Lc", why);
}

TEST(secure_modify_truncated)
{
	unsigned int i, nidx;
	const char *why;
	size_t len;
	u8 b[32];

	for (i = 0; i < ARRAY_SIZE(modify_msgs); i++) {
		nidx = modify_msgs[i].nidx;
		mk_modify(b, 0x82, 0x00, 0, 0, 0x0408, 0x02,
			  modify_msgs[i].nmsg, nidx, apdu_change, 4);
		for (len = 1; len < 17 + nidx; len++) {
			EXPECT_EQ(-EINVAL, check_secure(b, len, 0x02, &why))
				TH_LOG("bNumberMessage %u, len %zu",
				       modify_msgs[i].nmsg, len);
			EXPECT_WHY("modify structure truncated", why);
		}
	}
}

TEST(secure_modify_fields)
{
	u8 apdu[5 + 16], b[20 + sizeof(apdu)];
	const char *why;
	size_t n;

	memcpy(apdu, "\x00\x24\x00\x81\x10", 5);
	memset(apdu + 5, 0xff, 16);

	/*
	 * Read at the verify offsets, this block would have wPINMaxExtraDigit
	 * 0x0800 (8 > 0) and bEntryValidationCondition 0x08: both invalid.
	 */
	n = mk_modify(b, 0x82, 0x08, 0, 8, 0x0408, 0x02, 3, 3, apdu, 21);
	EXPECT_EQ(0, check_secure(b, n, 0x02, &why)) TH_LOG("%s", why);

	n = mk_modify(b, 0x82, 0x08, 0, 8, 0x0904, 0x02, 3, 3, apdu, 21);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x02, &why));
	EXPECT_WHY("wPINMaxExtraDigit minimum above maximum", why);

	n = mk_modify(b, 0x82, 0x08, 0, 8, 0x0408, 0x00, 3, 3, apdu, 21);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x02, &why));
	EXPECT_WHY("bEntryValidationCondition invalid", why);
	n = mk_modify(b, 0x82, 0x08, 0, 8, 0x0408, 0x08, 3, 3, apdu, 21);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x02, &why));
	EXPECT_WHY("bEntryValidationCondition invalid", why);

	n = mk_modify(b, 0x83, 0x08, 0, 8, 0x0408, 0x02, 3, 3, apdu, 21);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x02, &why));
	EXPECT_WHY("bmFormatString has a reserved PIN format", why);

	/* New PIN block at 9..16 of 16 bytes */
	n = mk_modify(b, 0x82, 0x08, 0, 9, 0x0408, 0x02, 3, 3, apdu, 21);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x02, &why));
	EXPECT_WHY("PIN block lies outside the APDU data", why);
	/* Old PIN block at 9..16 */
	n = mk_modify(b, 0x82, 0x08, 9, 0, 0x0408, 0x02, 3, 3, apdu, 21);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x02, &why));
	EXPECT_WHY("PIN block lies outside the APDU data", why);
	/* Lc that does not match */
	n = mk_modify(b, 0x82, 0x08, 0, 8, 0x0408, 0x02, 3, 3, apdu, 20);
	EXPECT_EQ(-EINVAL, check_secure(b, n, 0x02, &why));
	EXPECT_WHY("abPINApdu length does not match its Lc", why);
}

TEST(secure_modify_not_supported)
{
	u8 b[32];
	const char *why;
	size_t n;

	n = mk_modify(b, 0x82, 0x00, 0, 0, 0x0408, 0x02, 3, 3,
		      apdu_change, 4);
	EXPECT_EQ(-EOPNOTSUPP, check_secure(b, n, 0x01, &why));
	EXPECT_WHY("reader has no PIN modification", why);
	EXPECT_EQ(-EOPNOTSUPP, check_secure(b, n, 0x00, &why));
	EXPECT_WHY("reader has no PIN modification", why);
}

TEST(secure_other_operations)
{
	static const u8 ops[] = { 2, 3, 4, 5, 6, 7, 0x80, 0xff };
	u8 b[sizeof(spr332_verify)];
	const char *why;
	unsigned int i;

	memcpy(b, spr332_verify, sizeof(b));
	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		b[0] = ops[i];
		EXPECT_EQ(-EOPNOTSUPP, check_secure(b, sizeof(b), 0x03, &why))
			TH_LOG("bPINOperation 0x%02x", ops[i]);
		EXPECT_WHY("PIN operation not supported", why);
		EXPECT_EQ(-EOPNOTSUPP, check_secure(b, 1, 0x03, &why))
			TH_LOG("bPINOperation 0x%02x alone", ops[i]);
		EXPECT_WHY("PIN operation not supported", why);
	}
}

TEST(secure_empty)
{
	const char *why;

	EXPECT_EQ(-EINVAL, check_secure(spr332_verify, 0, 0x03, &why));
	EXPECT_WHY("empty PIN operation block", why);
	EXPECT_EQ(-EINVAL, check_secure(spr332_verify, 0, 0x00, &why));
	EXPECT_WHY("empty PIN operation block", why);
}

/* ------------------------------------------------------------------ */
/* Deterministic fuzzing                                               */
/* ------------------------------------------------------------------ */

#define FUZZ_SEED	0x43434944u	/* "CCID" */
#define FUZZ_ITERS	200000
#define FUZZ_MAX_LEN	600

struct rng {
	uint64_t s;
};

/* splitmix64 */
static uint64_t rnd(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned int rnd_below(struct rng *r, unsigned int n)
{
	return rnd(r) % n;
}

struct fuzz_stats {
	unsigned long desc_ok;
	unsigned long verdicts[4];
	unsigned long secure_ok[2];
};

/* Change a few bytes, then maybe cut or extend the input */
static size_t mutate(struct rng *r, u8 *buf, size_t len)
{
	static const u8 interesting[] = {
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08, 0x0f, 0x10,
		0x36, 0x40, 0x7f, 0x80, 0x81, 0xc0, 0xfe, 0xff,
	};
	unsigned int k, changes = rnd_below(r, 4);

	for (k = 0; len && k < changes; k++) {
		size_t pos = rnd_below(r, len);

		if (rnd(r) & 1)
			buf[pos] = interesting[rnd_below(r,
							 sizeof(interesting))];
		else
			buf[pos] = rnd(r);
	}
	switch (rnd_below(r, 8)) {
	case 0:
	case 1:
		len = rnd_below(r, len + 1);
		break;
	case 2:
		for (k = rnd_below(r, 32); k && len < FUZZ_MAX_LEN; k--)
			buf[len++] = rnd(r);
		break;
	}
	return len;
}

static size_t gen_random(struct rng *r, u8 *buf)
{
	size_t i, len = rnd_below(r, FUZZ_MAX_LEN + 1);

	for (i = 0; i < len; i++)
		buf[i] = rnd(r);
	return len;
}

static size_t gen_desc(struct rng *r, u8 *buf)
{
	memcpy(buf, rnd(r) & 1 ? qemu_desc : distinct_desc, 54);
	return mutate(r, buf, 54);
}

static size_t gen_rsp(struct rng *r, u8 *buf)
{
	static const u8 status[] = { 0x00, 0x01, 0x02, 0x40, 0x42, 0x80, 0xc0 };
	size_t i, n = rnd_below(r, 300);

	rsp_frame(buf, 0x80 + rnd_below(r, 4), n, rnd_below(r, 2),
		  rnd_below(r, 4), status[rnd_below(r, sizeof(status))],
		  rnd(r), rnd(r), NULL, 0);
	for (i = 0; i < n; i++)
		buf[10 + i] = rnd(r);
	if (rnd(r) & 1)
		return 10 + n;
	return mutate(r, buf, 10 + n);
}

static size_t gen_secure(struct rng *r, u8 *buf)
{
	u8 apdu[5 + 255];
	size_t n, lc = rnd_below(r, 24);
	unsigned int k;

	/* A case 1 APDU, or one with Lc data bytes and maybe Le */
	memcpy(apdu, apdu_change, 4);
	n = 4;
	if (rnd(r) & 1) {
		apdu[n++] = lc;
		memset(apdu + n, 0xff, lc);
		n += lc;
		if (rnd(r) & 1)
			apdu[n++] = 0;
	}
	if (rnd(r) & 1) {
		n = mk_verify(buf, 0x82 | (rnd_below(r, 4) << 3),
			      rnd_below(r, 17), 0x0408, 0x02, apdu, n);
	} else {
		k = rnd_below(r, ARRAY_SIZE(modify_msgs));
		n = mk_modify(buf, 0x82, rnd_below(r, 17), rnd_below(r, 12),
			      rnd_below(r, 12), 0x0408, 0x02,
			      modify_msgs[k].nmsg, modify_msgs[k].nidx,
			      apdu, n);
	}
	return mutate(r, buf, n);
}

/*
 * Everything that must hold whatever the bytes.  On a violation, log the
 * iteration, the condition and the input, and return false.
 */
#define FCHECK(cond) do {						\
	if (!(cond)) {							\
		TH_LOG("iteration %llu: %s does not hold", iter, #cond);	\
		dump(in, len);						\
		return false;						\
	}								\
} while (0)

static void dump(const u8 *in, size_t len)
{
	size_t i;

	fprintf(stderr, "# input, %zu bytes:", len);
	for (i = 0; i < len; i++)
		fprintf(stderr, "%s%02x", i % 16 ? " " : "\n#   ", in[i]);
	fprintf(stderr, "\n");
}

static bool fuzz_one(struct __test_metadata *_metadata,
		     unsigned long long iter,
		     struct rng *r, const u8 *in, size_t len,
		     struct fuzz_stats *st)
{
	struct ccid_class_desc d;
	struct ccid_rsp rsp;
	const char *why;
	u8 cmd, slot, seq, pin;
	int ret, v;

	/* Class descriptor */
	ret = parse_desc(in, len, &d, &why);
	if (ret) {
		FCHECK(ret == -EINVAL);
		FCHECK(why);
	} else {
		st->desc_ok++;
		FCHECK(len >= 54 && in[0] == 54 && in[1] == 0x21);
		FCHECK(d.max_slot_index < 16);
		FCHECK(d.voltage_support && !(d.voltage_support & ~7));
		FCHECK(d.protocols & 3);
		FCHECK(ccid_exchange_level(d.features) >= 0);
		FCHECK(d.max_msg_len > 10);
		FCHECK(d.bcd_ccid == le16(in + 2));
		FCHECK(d.protocols == le32(in + 6));
		FCHECK(d.features == le32(in + 40));
		FCHECK(d.max_msg_len == le32(in + 44));
		FCHECK(d.lcd_layout == le16(in + 50));
		FCHECK(d.max_busy_slots == in[53]);
	}

	/* Bulk-IN frame; half the time for the command it names */
	if (rnd(r) & 1)
		cmd = cmd_rsp[rnd_below(r, ARRAY_SIZE(cmd_rsp))].cmd;
	else
		cmd = rnd(r);
	if (len >= 10 && rnd(r) & 1) {
		slot = in[5];
		seq = in[6];
	} else {
		slot = rnd_below(r, 3);
		seq = rnd_below(r, 5);
	}
	v = check_rsp(in, len, cmd, slot, seq, &rsp, &why);
	FCHECK(v == CCID_RSP_MATCH || v == CCID_RSP_STALE ||
	       v == CCID_RSP_TIME_EXT || v == CCID_RSP_BAD);
	st->verdicts[v]++;
	if (len < 10)
		FCHECK(v == CCID_RSP_BAD);
	if (v == CCID_RSP_BAD) {
		FCHECK(why);
	} else {
		FCHECK(rsp.len == len - 10);
		FCHECK(rsp.len == le32(in + 1));
		FCHECK(rsp.type == in[0]);
		FCHECK(rsp.status == in[7]);
		FCHECK(rsp.error == in[8]);
		FCHECK(rsp.param == in[9]);
	}
	if (v == CCID_RSP_STALE)
		FCHECK(rsp.slot != slot || rsp.seq != seq);
	if (v == CCID_RSP_MATCH || v == CCID_RSP_TIME_EXT) {
		FCHECK(rsp.slot == slot && rsp.seq == seq);
		/* the expected type, or a failed SlotStatus */
		FCHECK(rsp.type == ccid_rsp_type_for(cmd) ||
		       (rsp.type == 0x81 && (rsp.status & 0xc0) == 0x40));
	}
	if (v == CCID_RSP_TIME_EXT)
		FCHECK((rsp.status & 0xc0) == 0x80);
	if (v == CCID_RSP_MATCH) {
		FCHECK(!(rsp.status & 0x80));
		ret = ccid_rsp_errno(&rsp);
		if (!(rsp.status & 0x40) && rsp.type == 0x80 &&
		    (rsp.status & 3) == 2)
			FCHECK(ret == -ENOMEDIUM);
		else if (!(rsp.status & 0x40))
			FCHECK(ret == 0);
		else
			FCHECK(ret == -EINVAL || ret == -EOPNOTSUPP ||
			       ret == -ENOMEDIUM || ret == -ECANCELED ||
			       ret == -ETIME || ret == -EPROTONOSUPPORT ||
			       ret == -EBUSY || ret == -EIO);
	}

	/* Secure block */
	pin = rnd_below(r, 4);
	ret = check_secure(in, len, pin, &why);
	if (ret) {
		FCHECK(ret == -EINVAL || ret == -EOPNOTSUPP);
		FCHECK(why);
		if (len && in[0] > 1)
			FCHECK(ret == -EOPNOTSUPP);
	} else if (len && in[0] == 0) {
		st->secure_ok[0]++;
		FCHECK(pin & 1);
		FCHECK(len >= VERIFY_FIXED + 4);
		FCHECK((in[2] & 3) != 3);
		FCHECK(in[6] <= in[5]);
		FCHECK(in[7] && !(in[7] & ~7));
	} else if (len && in[0] == 1) {
		st->secure_ok[1]++;
		FCHECK(pin & 2);
		FCHECK(len >= 22u + (in[11] != 0) + (in[11] >= 3));
		FCHECK((in[2] & 3) != 3);
		FCHECK(in[8] <= in[7]);
		FCHECK(in[10] && !(in[10] & ~7));
	} else {
		FCHECK(!"accepted an empty block or another operation");
	}

	/* dwFeatures from the input */
	if (len >= 4) {
		u32 f = le32(in);

		ret = ccid_exchange_level(f);
		FCHECK(ret == -EINVAL || (ret >= 0 && ret <= 3));
		FCHECK(ccid_exchange_level_name(f));
	}
	return true;
}

static unsigned long long env_ull(const char *name, unsigned long long def)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

TEST(int_msg_notify)
{
	struct ccid_int_msg m;
	const char *why = NULL;
	/* slots 0..5: present+changed, absent, present, changed only, ... */
	const u8 msg[] = { 0x50, 0x3 | 0x0 << 2 | 0x1 << 4 | 0x2 << 6, 0x01 };

	ASSERT_EQ(0, ccid_parse_int_msg(msg, sizeof(msg), 5, &m, &why));
	EXPECT_EQ(0x50, m.type);
	EXPECT_EQ(0x01u | 0x04 | 0x10, m.present);
	EXPECT_EQ(0x01u | 0x08, m.changed);
	/* One slot needs one byte of bits, five need two */
	EXPECT_EQ(0, ccid_parse_int_msg(msg, 2, 1, &m, &why));
	EXPECT_EQ(-EPROTO, ccid_parse_int_msg(msg, 2, 5, &m, &why));
	EXPECT_WHY("NotifySlotChange too short", why);
	EXPECT_EQ(-EPROTO, ccid_parse_int_msg(msg, 1, 1, &m, &why));
	EXPECT_EQ(-EPROTO, ccid_parse_int_msg(msg, 0, 1, &m, &why));
	EXPECT_WHY("empty interrupt message", why);
}

TEST(int_msg_hw_error)
{
	const u8 msg[] = { 0x51, 0x01, 0x07, 0x01 };
	const u8 bad[] = { 0x52, 0x00 };
	struct ccid_int_msg m;
	const char *why = NULL;

	ASSERT_EQ(0, ccid_parse_int_msg(msg, sizeof(msg), 2, &m, &why));
	EXPECT_EQ(0x51, m.type);
	EXPECT_EQ(1, m.slot);
	EXPECT_EQ(7, m.seq);
	EXPECT_EQ(1, m.code);
	EXPECT_EQ(-EPROTO, ccid_parse_int_msg(msg, sizeof(msg), 1, &m, &why));
	EXPECT_WHY("HardwareError for a slot the reader lacks", why);
	EXPECT_EQ(-EPROTO, ccid_parse_int_msg(msg, 3, 2, &m, &why));
	EXPECT_WHY("HardwareError too short", why);
	EXPECT_EQ(-EPROTO, ccid_parse_int_msg(bad, sizeof(bad), 1, &m, &why));
	EXPECT_WHY("unknown interrupt message", why);
}

TEST(quirk_table)
{
	const struct ccid_quirk *q;

	q = ccid_find_quirk(0x04e6, 0xe003, 0x0700);
	ASSERT_NE(NULL, q);
	EXPECT_EQ((u32)CCID_QUIRK_BROKEN_SECURE, q->flags);
	EXPECT_EQ(0x0701, q->fixed_in);
	EXPECT_EQ(NULL, ccid_find_quirk(0x04e6, 0xe003, 0x0701));
	EXPECT_EQ(NULL, ccid_find_quirk(0x04e6, 0xe003, 0x0510));
	q = ccid_find_quirk(0x04e6, 0xe003, 0x050f);
	ASSERT_NE(NULL, q);
	EXPECT_EQ((u32)CCID_QUIRK_BOGUS_FIRMWARE, q->flags);
	EXPECT_EQ(0x0510, q->fixed_in);
	EXPECT_NE(NULL, ccid_find_quirk(0x04e6, 0xe001, 0x0515));
	EXPECT_EQ(NULL, ccid_find_quirk(0x04e6, 0xe001, 0x0516));
	EXPECT_NE(NULL, ccid_find_quirk(0x04e6, 0x5111, 0x061f));
	EXPECT_NE(NULL, ccid_find_quirk(0x04e6, 0x5291, 0x0111));
	EXPECT_EQ(NULL, ccid_find_quirk(0x08e6, 0x4433, 0x0000));
}

TEST(quirk_override)
{
	u32 flags = 0x80;

	EXPECT_EQ(0, ccid_quirk_override("", 0x04e6, 0xe003, &flags));
	EXPECT_EQ(0x80u, flags);
	/* what "echo > /sys/module/ccid/parameters/quirks" leaves */
	EXPECT_EQ(0, ccid_quirk_override("\n", 0x04e6, 0xe003, &flags));
	EXPECT_EQ(0x80u, flags);
	EXPECT_EQ(1, ccid_quirk_override("04e6:e003:", 0x04e6, 0xe003,
					 &flags));
	EXPECT_EQ(0u, flags);
	EXPECT_EQ(1, ccid_quirk_override("04E6:E003:sf\n", 0x04e6, 0xe003,
					 &flags));
	EXPECT_EQ((u32)(CCID_QUIRK_BROKEN_SECURE | CCID_QUIRK_BOGUS_FIRMWARE),
		  flags);
	/* Another reader's entry leaves the flags alone; the last one wins */
	flags = 0x80;
	EXPECT_EQ(0, ccid_quirk_override("1234:5678:s", 0x04e6, 0xe003,
					 &flags));
	EXPECT_EQ(0x80u, flags);
	EXPECT_EQ(1, ccid_quirk_override("04e6:e003:s,1234:5678:,04e6:e003:f",
					 0x04e6, 0xe003, &flags));
	EXPECT_EQ((u32)CCID_QUIRK_BOGUS_FIRMWARE, flags);
	/* Malformed: nothing changes */
	flags = 0x80;
	EXPECT_EQ(-EINVAL, ccid_quirk_override("4e6:e003:s", 0x04e6, 0xe003,
					      &flags));
	EXPECT_EQ(-EINVAL, ccid_quirk_override("04e6-e003:s", 0x04e6, 0xe003,
					      &flags));
	EXPECT_EQ(-EINVAL, ccid_quirk_override("04e6:e003:x", 0x04e6, 0xe003,
					      &flags));
	EXPECT_EQ(-EINVAL, ccid_quirk_override("04e6:e003", 0x04e6, 0xe003,
					      &flags));
	EXPECT_EQ(-EINVAL, ccid_quirk_override("04e6:e003:s\nx", 0x04e6,
					      0xe003, &flags));
	EXPECT_EQ(0x80u, flags);
}

TEST(fuzz)
{
	unsigned long long seed = env_ull("CCID_FUZZ_SEED", FUZZ_SEED);
	unsigned long long iters = env_ull("CCID_FUZZ_ITERS", FUZZ_ITERS);
	struct fuzz_stats st = {};
	struct rng r = { seed };
	u8 buf[FUZZ_MAX_LEN + 32];
	unsigned long long i;
	bool ok;

	TH_LOG("seed 0x%llx, %llu iterations", seed, iters);
	for (i = 0; i < iters; i++) {
		size_t len;
		u8 *in;

		switch (i % 4) {
		case 0:
			len = gen_random(&r, buf);
			break;
		case 1:
			len = gen_desc(&r, buf);
			break;
		case 2:
			len = gen_rsp(&r, buf);
			break;
		default:
			len = gen_secure(&r, buf);
			break;
		}
		in = exact_copy(buf, len);
		ok = fuzz_one(_metadata, i, &r, in, len, &st);
		free(in);
		ASSERT_TRUE(ok);
	}
	TH_LOG("accepted: %lu descriptors, %lu verify, %lu modify blocks",
	       st.desc_ok, st.secure_ok[0], st.secure_ok[1]);
	TH_LOG("frames: %lu match, %lu stale, %lu time extension, %lu bad",
	       st.verdicts[CCID_RSP_MATCH], st.verdicts[CCID_RSP_STALE],
	       st.verdicts[CCID_RSP_TIME_EXT], st.verdicts[CCID_RSP_BAD]);

	/* The generators must reach every outcome, or the loop proves little */
	if (iters >= 10000) {
		EXPECT_LT(0ul, st.desc_ok);
		EXPECT_LT(0ul, st.verdicts[CCID_RSP_MATCH]);
		EXPECT_LT(0ul, st.verdicts[CCID_RSP_STALE]);
		EXPECT_LT(0ul, st.verdicts[CCID_RSP_TIME_EXT]);
		EXPECT_LT(0ul, st.verdicts[CCID_RSP_BAD]);
		EXPECT_LT(0ul, st.secure_ok[0]);
		EXPECT_LT(0ul, st.secure_ok[1]);
	}
}

/* ------------------------------------------------------------------ */
/* Buffer sizes and slot presence                                      */
/* ------------------------------------------------------------------ */

TEST(buffer_sizes)
{
	size_t buf_len, in_len;

	/* SCM's 263 with 64-byte packets */
	EXPECT_EQ(0, ccid_buffer_sizes(263, 64, &buf_len, &in_len));
	EXPECT_EQ((size_t)263, buf_len);
	EXPECT_EQ((size_t)320, in_len);
	/* a header and one byte that hold a packet */
	EXPECT_EQ(0, ccid_buffer_sizes(11, 8, &buf_len, &in_len));
	EXPECT_EQ((size_t)11, buf_len);
	EXPECT_EQ((size_t)16, in_len);
	/* the largest message the specification allows, and no more */
	EXPECT_EQ(0, ccid_buffer_sizes(0xffffffff, 512, &buf_len, &in_len));
	EXPECT_EQ((size_t)CCID_MAX_MSG_LEN, buf_len);
	EXPECT_EQ((size_t)66048, in_len);
	EXPECT_EQ(-EINVAL, ccid_buffer_sizes(10, 8, &buf_len, &in_len));
	EXPECT_EQ(-EINVAL, ccid_buffer_sizes(270, 512, &buf_len, &in_len));
	EXPECT_EQ(-EINVAL, ccid_buffer_sizes(271, 0, &buf_len, &in_len));
	EXPECT_EQ(0, ccid_buffer_sizes(271, 512, &buf_len, &in_len));
}

TEST(presence)
{
	struct ccid_presence p = {};

	/* learning is not a change */
	EXPECT_EQ(0u, ccid_presence_from_answer(&p, 0x00));
	EXPECT_TRUE(p.known && p.present);
	/* an answer shows the removal; the NotifySlotChange repeats it */
	EXPECT_EQ(1u, ccid_presence_from_answer(&p, 0x02));
	EXPECT_EQ(0u, ccid_presence_from_notify(&p, false, true));
	/* the same presence, yet changed: in and out again */
	EXPECT_EQ(2u, ccid_presence_from_notify(&p, false, true));
	EXPECT_EQ(1u, ccid_presence_from_notify(&p, true, true));
	EXPECT_EQ(0u, ccid_presence_from_notify(&p, true, false));
	/* before the driver knows a slot, the changed bit counts one */
	memset(&p, 0, sizeof(p));
	EXPECT_EQ(1u, ccid_presence_from_notify(&p, true, true));
	memset(&p, 0, sizeof(p));
	EXPECT_EQ(0u, ccid_presence_from_notify(&p, true, false));
}

TEST_HARNESS_MAIN
