// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the CCID wire format code,
 * drivers/usb/class/ccid/ccid_proto.c.
 *
 * The first input byte picks the parser (bits 1..0) and some of its
 * parameters (bits 7..2); the rest of the input is what the parser reads.
 * libFuzzer hands over an exact-size heap copy of the input, so the rest
 * ends where the allocation ends and ASan sees any read past it.  Beyond
 * memory safety, the results are checked against what the CCID
 * specification allows; a violation aborts.
 *
 * Built by the selftests' Makefile ("make selftests", with clang);
 * make check runs 2,000,000 inputs from seed 1.  To fuzz longer:
 *
 *   tools/testing/selftests/drivers/usb/ccid/fuzz_proto \
 *	-max_total_time=600 [corpus-dir]
 *
 * Built with -DCCID_FUZZ_MAIN instead of -fsanitize=fuzzer (gcc will do),
 * it runs each file named on its command line once, to replay a crash.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ccid_proto.h"

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: %s does not hold\n",		\
			__FILE__, __LINE__, #cond);			\
		abort();						\
	}								\
} while (0)

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

enum {
	SEL_DESC,
	SEL_RSP,
	SEL_SECURE,
	SEL_MISC,
};

/* Every PC_to_RDR type, and the bMessageType of its answer */
static const u8 commands[][2] = {
	{ 0x62, 0x80 }, { 0x6f, 0x80 }, { 0x69, 0x80 },
	{ 0x63, 0x81 }, { 0x65, 0x81 }, { 0x6e, 0x81 }, { 0x6a, 0x81 },
	{ 0x71, 0x81 }, { 0x72, 0x81 },
	{ 0x6c, 0x82 }, { 0x6d, 0x82 }, { 0x61, 0x82 },
	{ 0x6b, 0x83 },
};

static u32 le16(const u8 *p)
{
	return p[0] + 256u * p[1];
}

static u32 le32(const u8 *p)
{
	return le16(p) + 65536u * le16(p + 2);
}

static void fuzz_desc(const u8 *in, size_t len)
{
	struct ccid_class_desc d;
	const char *why = NULL;
	int ret;

	ret = ccid_parse_class_desc(in, len, &d, &why);
	if (ret) {
		CHECK(ret == -EINVAL && why);
		return;
	}
	CHECK(len >= 54 && in[0] == 54 && in[1] == 0x21);
	CHECK(d.max_slot_index < 16);
	CHECK(d.voltage_support && !(d.voltage_support & ~7));
	CHECK(d.protocols & 3);
	CHECK(ccid_exchange_level(d.features) >= 0);
	CHECK(d.max_msg_len > 10);
	CHECK(d.bcd_ccid == le16(in + 2));
	CHECK(d.default_clock == le32(in + 10));
	CHECK(d.max_data_rate == le32(in + 23));
	CHECK(d.features == le32(in + 40));
	CHECK(d.max_msg_len == le32(in + 44));
	CHECK(d.lcd_layout == le16(in + 50));
	CHECK(d.max_busy_slots == in[53]);
}

static void fuzz_rsp(u8 sel, const u8 *in, size_t len)
{
	struct ccid_rsp rsp;
	const char *why = NULL;
	u8 cmd, slot, seq;
	int v, ret;

	/*
	 * Three bytes of cmd, slot and seq first.  Bit 3: cmd is one of the
	 * known commands; bit 2: slot and seq are the frame's own.
	 */
	if (len < 3)
		return;
	cmd = in[0];
	if (sel & 0x08) {
		const u8 *c = commands[in[0] % ARRAY_SIZE(commands)];

		cmd = c[0];
		CHECK(ccid_rsp_type_for(cmd) == c[1]);
	}
	slot = in[1];
	seq = in[2];
	in += 3;
	len -= 3;
	if ((sel & 0x04) && len >= 10) {
		slot = in[5];
		seq = in[6];
	}

	memset(&rsp, 0, sizeof(rsp));
	v = ccid_check_rsp(in, len, cmd, slot, seq, &rsp, &why);
	CHECK(v == CCID_RSP_MATCH || v == CCID_RSP_STALE ||
	      v == CCID_RSP_TIME_EXT || v == CCID_RSP_BAD);
	if (len < 10)
		CHECK(v == CCID_RSP_BAD);
	if (v == CCID_RSP_BAD) {
		CHECK(why);
		return;
	}
	CHECK(rsp.len == len - 10 && rsp.len == le32(in + 1));
	CHECK(rsp.type == in[0] && rsp.status == in[7] &&
	      rsp.error == in[8] && rsp.param == in[9]);
	if (v == CCID_RSP_STALE) {
		CHECK(rsp.slot != slot || rsp.seq != seq);
		return;
	}
	CHECK(rsp.slot == slot && rsp.seq == seq);
	/* the answer's own type, or a failed SlotStatus (QEMU's refusal) */
	CHECK(rsp.type == ccid_rsp_type_for(cmd) ||
	      (rsp.type == CCID_RDR_SLOT_STATUS &&
	       (rsp.status & 0xc0) == 0x40));
	if (v == CCID_RSP_TIME_EXT) {
		CHECK((rsp.status & 0xc0) == 0x80);
		return;
	}
	CHECK(!(rsp.status & 0x80));
	ret = ccid_rsp_errno(&rsp);
	if (!(rsp.status & 0x40) && rsp.type == CCID_RDR_DATA_BLOCK &&
	    (rsp.status & 3) == 2)
		CHECK(ret == -ENOMEDIUM);
	else if (!(rsp.status & 0x40))
		CHECK(ret == 0);
	else
		CHECK(ret == -EINVAL || ret == -EOPNOTSUPP ||
		      ret == -ENOMEDIUM || ret == -ECANCELED ||
		      ret == -ETIME || ret == -EPROTONOSUPPORT ||
		      ret == -EBUSY || ret == -EIO);
}

static void fuzz_secure(u8 sel, const u8 *in, size_t len)
{
	u8 pin_support = (sel >> 2) & 3;
	const char *why = NULL;
	int ret;

	ret = ccid_check_secure(in, len, pin_support, &why);
	if (ret) {
		CHECK((ret == -EINVAL || ret == -EOPNOTSUPP) && why);
		if (len && in[0] > 1)
			CHECK(ret == -EOPNOTSUPP);
		return;
	}
	CHECK(len && in[0] <= 1);
	CHECK((in[2] & 3) != 3);
	if (in[0] == 0) {
		/* verify: 15 bytes, then at least an APDU header */
		CHECK(pin_support & 1);
		CHECK(len >= 19);
		CHECK(in[6] <= in[5]);
		CHECK(in[7] && !(in[7] & ~7));
	} else {
		/* modify: 18 to 20 bytes, then at least an APDU header */
		CHECK(pin_support & 2);
		CHECK(len >= 22u + (in[11] != 0) + (in[11] >= 3));
		CHECK(in[8] <= in[7]);
		CHECK(in[10] && !(in[10] & ~7));
	}
}

static void fuzz_misc(const u8 *in, size_t len)
{
	static const char * const names[] = {
		"character", "tpdu", "short_apdu", "extended_apdu",
	};
	struct ccid_rsp rsp = {};
	u8 hdr[10 + 1];
	int level, ret;
	u32 f;

	if (len < 10)
		return;

	f = le32(in);
	level = ccid_exchange_level(f);
	if (level < 0) {
		CHECK(level == -EINVAL);
		CHECK(!strcmp(ccid_exchange_level_name(f), "invalid"));
	} else {
		CHECK(level <= 3);
		CHECK(!strcmp(ccid_exchange_level_name(f), names[level]));
	}

	rsp.status = in[4];
	rsp.error = in[5];
	ret = ccid_rsp_errno(&rsp);
	CHECK(!ret == ((in[4] & 0xc0) != 0x40));

	hdr[10] = 0xa5;
	ccid_build_hdr(hdr, in[0], le32(in + 1), in[5], in[6],
		       in[7], in[8], in[9]);
	CHECK(!memcmp(hdr, in, 10));
	CHECK(hdr[10] == 0xa5);
}

/*
 * The one length check of every command: a message buffer of exactly
 * buf_len bytes (on the heap, so ASan sees a write past it) and a
 * command of any length.
 */
static void fuzz_frame(const u8 *in, size_t len)
{
	struct ccid_cmd_hdr hdr = {};
	size_t buf_len;
	u8 *buf;
	int ret;

	if (len < 8)
		return;
	buf_len = le16(in) % 512;
	hdr.type = in[2];
	hdr.slot = in[3];
	memcpy(hdr.p, in + 4, 3);
	hdr.len = in[7] + (in[7] & 0x80 ? 0xfff0u << 8 : 0);
	in += 8;
	len -= 8;
	if (hdr.len <= 0x7f && hdr.len > len)
		hdr.len = len;
	buf = malloc(buf_len ? buf_len : 1);
	CHECK(buf);
	ret = ccid_frame_cmd(buf, buf_len, &hdr, 0x5a,
			     hdr.len <= len ? in : NULL);
	if (buf_len < 10 || hdr.len > buf_len - 10) {
		CHECK(ret == -EMSGSIZE);
	} else {
		CHECK(ret == (int)(10 + hdr.len));
		CHECK(buf[0] == hdr.type && buf[5] == hdr.slot &&
		      buf[6] == 0x5a && le32(buf + 1) == hdr.len);
		CHECK(!hdr.len || !memcmp(buf + 10, in, hdr.len));
	}
	free(buf);
}

/* The interrupt-IN parser, for any number of slots */
static void fuzz_int(u8 sel, const u8 *in, size_t len)
{
	unsigned int slots = 1 + (sel >> 5);
	struct ccid_int_msg msg;
	const char *why = NULL;

	if (ccid_parse_int_msg(in, len, slots, &msg, &why)) {
		CHECK(why);
		return;
	}
	CHECK(msg.type == 0x50 || msg.type == 0x51);
	if (msg.type == 0x50) {
		CHECK(!(msg.present >> slots));
		CHECK(!(msg.changed >> slots));
	}
}

/* The quirks= parameter: any string, for a fixed reader */
static void fuzz_quirks(const u8 *in, size_t len)
{
	char param[256];
	u32 flags = 0x80000000;
	int ret;

	if (len < 4)
		return;
	len = len - 4 < sizeof(param) - 1 ? len - 4 : sizeof(param) - 1;
	memcpy(param, in + 4, len);
	param[len] = 0;
	ret = ccid_quirk_override(param, le16(in), le16(in + 2), &flags);
	CHECK(ret >= -EINVAL && ret <= 1);
	if (ret <= 0)
		CHECK(flags == 0x80000000);
	else
		CHECK(!(flags & ~(CCID_QUIRK_BROKEN_SECURE |
				  CCID_QUIRK_BOGUS_FIRMWARE |
				  CCID_QUIRK_OUT_ZLP)));
}

/* The buffers a descriptor asks for, as probe takes them */
static void fuzz_buffers(const u8 *in, size_t len)
{
	size_t buf_len = 0, in_len = 0;
	u32 max_msg;
	u16 maxp;
	int ret;

	if (len < 6)
		return;
	max_msg = le32(in);
	maxp = le16(in + 4);
	ret = ccid_buffer_sizes(max_msg, maxp, &buf_len, &in_len);
	if (!maxp || max_msg <= 10 || (max_msg < 271 && max_msg < maxp)) {
		CHECK(ret == -EINVAL);
		return;
	}
	CHECK(!ret);
	CHECK(buf_len > 10 && buf_len <= CCID_MAX_MSG_LEN && buf_len <= max_msg);
	CHECK(in_len >= buf_len && in_len % maxp == 0 &&
	      in_len < buf_len + maxp);
}

/*
 * The slot-presence state machine, driven by a sequence of answers and
 * NotifySlotChange messages: whatever the order, the changes counted
 * have the parity of the presence flips since the driver learnt it.
 */
static void fuzz_presence(const u8 *in, size_t len)
{
	struct ccid_presence p = {};
	unsigned int total = 0, n;
	bool base = false;
	size_t i;

	for (i = 0; i < len; i++) {
		bool present = in[i] & 2, changed = in[i] & 4, was = p.known;

		if (in[i] & 1)
			n = ccid_presence_from_answer(&p, present ? 0 : 2);
		else
			n = ccid_presence_from_notify(&p, present, changed);
		CHECK(n <= 2);
		CHECK(p.known && p.present == present);
		if (!was)
			base = n ? !present : present;
		total += n;
		CHECK((total & 1) == (p.present != base));
	}
}

/* Tick @a is after tick @b, as the driver's time_after() */
static bool after(unsigned long a, unsigned long b)
{
	return (long)(b - a) < 0;
}

/*
 * The answer loop on a virtual clock that starts near the wrap-around: a
 * reader sends any sequence of frames (each byte pair: how long after the
 * last one, and what it is).  Whatever it sends, the loop ends by the hard
 * end, never moves the deadline past it, drops at most
 * CCID_MAX_STALE - 1 stale frames, and once a frame showed the reader out
 * of step waits no more than the grace for the command's own answer.
 */
static void fuzz_wait(const u8 *in, size_t len)
{
	static const enum ccid_rsp_verdict verdicts[] = {
		CCID_RSP_STALE, CCID_RSP_TIME_EXT, CCID_RSP_TIME_EXT,
		CCID_RSP_TIME_EXT, CCID_RSP_STALE, CCID_RSP_MATCH,
		CCID_RSP_BAD, CCID_RSP_TIME_EXT,
	};
	unsigned long start, now, base, limit;
	struct ccid_answer_wait w;
	struct ccid_rsp rsp = {};
	enum ccid_wait_step step = CCID_WAIT_READ;
	const char *why = NULL;
	unsigned long lag_at = 0;
	unsigned int stale = 0;
	bool was_lagged;
	size_t i;

	if (len < 5)
		return;
	start = now = (unsigned long)-1 - le16(in) * 16ul;
	base = 1 + in[2] * 8ul;
	limit = le16(in + 3);
	ccid_wait_start(&w, now, base, limit, 100);
	CHECK(w.hard_end - start == (base > limit ? base : limit));
	for (i = 5; i + 1 < len && step == CCID_WAIT_READ; i += 2) {
		enum ccid_rsp_verdict v = verdicts[in[i] & 7];

		now += in[i + 1] * (in[i] >> 3);
		if (after(now, w.wait_end))
			break;	/* the driver's read timed out */
		rsp.error = in[i + 1];
		was_lagged = w.lagged;
		step = ccid_wait_frame(&w, now, v, &rsp, in[i] == 0xf8, &why);
		CHECK(!after(w.wait_end, w.hard_end));
		if (w.lagged && !was_lagged)
			lag_at = now;
		/* out of step: the own answer gets the grace, no more */
		if (w.lagged)
			CHECK(!after(w.wait_end, lag_at + 100));
		if (v == CCID_RSP_TIME_EXT) {
			CHECK(step == CCID_WAIT_READ);
			CHECK(!after(now, w.wait_end) || w.wait_end == w.hard_end);
		}
		if (v == CCID_RSP_STALE && step == CCID_WAIT_READ)
			CHECK(++stale < CCID_MAX_STALE);
		if (v == CCID_RSP_MATCH)
			CHECK(step == CCID_WAIT_DONE);
	}
	/* the wait never outlives its hard end */
	CHECK(w.wait_end - start <= w.hard_end - start);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	u8 sel;

	if (!size)
		return 0;
	sel = data[0];
	data++;
	size--;

	switch (sel & 3) {
	case SEL_DESC:
		fuzz_desc(data, size);
		break;
	case SEL_RSP:
		fuzz_rsp(sel, data, size);
		break;
	case SEL_SECURE:
		fuzz_secure(sel, data, size);
		break;
	case SEL_MISC:
		switch ((sel >> 2) & 7) {
		case 0:
			fuzz_misc(data, size);
			break;
		case 1:
			fuzz_frame(data, size);
			break;
		case 2:
			fuzz_int(sel, data, size);
			break;
		case 3:
			fuzz_quirks(data, size);
			break;
		case 4:
			fuzz_buffers(data, size);
			break;
		case 5:
			fuzz_wait(data, size);
			break;
		default:
			fuzz_presence(data, size);
			break;
		}
		break;
	}
	return 0;
}

#ifdef CCID_FUZZ_MAIN
int main(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		static u8 buf[1 << 20];
		FILE *f = fopen(argv[i], "rb");
		size_t n;
		u8 *in;

		if (!f) {
			perror(argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		/* An exact-size copy, as libFuzzer makes */
		in = malloc(n ? n : 1);
		if (!in)
			return 1;
		memcpy(in, buf, n);
		LLVMFuzzerTestOneInput(in, n);
		free(in);
		printf("%s: ok\n", argv[i]);
	}
	return 0;
}
#endif
