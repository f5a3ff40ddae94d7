// SPDX-License-Identifier: GPL-2.0
/*
 * CCID wire format: framing and parsing, with no USB and no allocation.
 *
 * Every function here takes bytes that came from a device or from
 * userspace and must never read outside them; the userspace unit tests
 * and fuzzers in tools/testing/selftests/drivers/usb/ccid/ build this file
 * unchanged.
 */

#include "ccid_proto.h"

/* Offsets in the class descriptor */
#define DESC_BCD_CCID		2
#define DESC_MAX_SLOT		4
#define DESC_VOLTAGE		5
#define DESC_PROTOCOLS		6
#define DESC_DEFAULT_CLOCK	10
#define DESC_MAX_CLOCK		14
#define DESC_NUM_CLOCKS		18
#define DESC_DATA_RATE		19
#define DESC_MAX_DATA_RATE	23
#define DESC_NUM_RATES		27
#define DESC_MAX_IFSD		28
#define DESC_SYNCH		32
#define DESC_MECHANICAL		36
#define DESC_FEATURES		40
#define DESC_MAX_MSG		44
#define DESC_GET_RESPONSE	48
#define DESC_ENVELOPE		49
#define DESC_LCD		50
#define DESC_PIN		52
#define DESC_BUSY_SLOTS		53

#define CCID_VOLTAGE_MASK	0x07
#define CCID_PROTO_T0_T1	0x03

/**
 * ccid_parse_class_desc() - decode and validate a CCID class descriptor
 * @buf: the descriptor, starting at bLength
 * @len: bytes available at @buf
 * @desc: decoded fields, valid only on success
 * @why: on failure, what is wrong, for the one log line probe prints
 *
 * Return: 0, or -EINVAL for a descriptor the driver refuses to use.
 */
int ccid_parse_class_desc(const u8 *buf, size_t len,
			  struct ccid_class_desc *desc, const char **why)
{
	if (len < 2) {
		*why = "class descriptor truncated";
		return -EINVAL;
	}
	if (buf[1] != CCID_CLASS_DESC_TYPE) {
		*why = "class descriptor has the wrong type";
		return -EINVAL;
	}
	if (buf[0] != CCID_CLASS_DESC_SIZE) {
		*why = "class descriptor bLength is not 54";
		return -EINVAL;
	}
	if (len < CCID_CLASS_DESC_SIZE) {
		*why = "class descriptor truncated";
		return -EINVAL;
	}

	desc->bcd_ccid = ccid_get_le16(buf + DESC_BCD_CCID);
	desc->max_slot_index = buf[DESC_MAX_SLOT];
	desc->voltage_support = buf[DESC_VOLTAGE];
	desc->protocols = ccid_get_le32(buf + DESC_PROTOCOLS);
	desc->default_clock = ccid_get_le32(buf + DESC_DEFAULT_CLOCK);
	desc->max_clock = ccid_get_le32(buf + DESC_MAX_CLOCK);
	desc->num_clocks = buf[DESC_NUM_CLOCKS];
	desc->data_rate = ccid_get_le32(buf + DESC_DATA_RATE);
	desc->max_data_rate = ccid_get_le32(buf + DESC_MAX_DATA_RATE);
	desc->num_data_rates = buf[DESC_NUM_RATES];
	desc->max_ifsd = ccid_get_le32(buf + DESC_MAX_IFSD);
	desc->synch_protocols = ccid_get_le32(buf + DESC_SYNCH);
	desc->mechanical = ccid_get_le32(buf + DESC_MECHANICAL);
	desc->features = ccid_get_le32(buf + DESC_FEATURES);
	desc->max_msg_len = ccid_get_le32(buf + DESC_MAX_MSG);
	desc->class_get_response = buf[DESC_GET_RESPONSE];
	desc->class_envelope = buf[DESC_ENVELOPE];
	desc->lcd_layout = ccid_get_le16(buf + DESC_LCD);
	desc->pin_support = buf[DESC_PIN];
	desc->max_busy_slots = buf[DESC_BUSY_SLOTS];

	if (desc->max_slot_index >= CCID_MAX_SLOTS) {
		*why = "bMaxSlotIndex out of range";
		return -EINVAL;
	}
	if (!desc->voltage_support ||
	    (desc->voltage_support & ~CCID_VOLTAGE_MASK)) {
		*why = "bVoltageSupport invalid";
		return -EINVAL;
	}
	if (!(desc->protocols & CCID_PROTO_T0_T1)) {
		*why = "dwProtocols names neither T=0 nor T=1";
		return -EINVAL;
	}
	if (ccid_exchange_level(desc->features) < 0) {
		*why = "dwFeatures exchange level invalid";
		return -EINVAL;
	}
	if (desc->max_msg_len <= CCID_HDR_SIZE) {
		*why = "dwMaxCCIDMessageLength too small";
		return -EINVAL;
	}
	return 0;
}

/**
 * ccid_exchange_level() - decode the exchange level bits of dwFeatures
 * @features: dwFeatures
 *
 * Return: a CCID_LEVEL_* value, or -EINVAL when
 * the bits hold none of the four defined values.
 */
int ccid_exchange_level(u32 features)
{
	switch (features & CCID_FEAT_LEVEL_MASK) {
	case 0:
		return CCID_LEVEL_CHARACTER;
	case CCID_FEAT_LEVEL_TPDU:
		return CCID_LEVEL_TPDU;
	case CCID_FEAT_LEVEL_SHORT_APDU:
		return CCID_LEVEL_SHORT_APDU;
	case CCID_FEAT_LEVEL_EXT_APDU:
		return CCID_LEVEL_EXTENDED_APDU;
	default:
		return -EINVAL;
	}
}

const char *ccid_exchange_level_name(u32 features)
{
	static const char * const names[] = {
		"character", "tpdu", "short_apdu", "extended_apdu",
	};
	int level = ccid_exchange_level(features);

	return level < 0 ? "invalid" : names[level];
}

/**
 * ccid_build_hdr() - fill in a PC_to_RDR message header
 * @hdr: CCID_HDR_SIZE bytes
 * @type: bMessageType
 * @len: dwLength, the bytes of abData that follow
 * @slot: bSlot
 * @seq: bSeq
 * @p1: byte 7 (bPowerSelect, bBWI, bProtocolNum, ...)
 * @p2: byte 8 (low byte of wLevelParameter, ...)
 * @p3: byte 9 (high byte of wLevelParameter, ...)
 */
void ccid_build_hdr(u8 *hdr, u8 type, u32 len, u8 slot, u8 seq,
		    u8 p1, u8 p2, u8 p3)
{
	hdr[CCID_OFF_TYPE] = type;
	ccid_put_le32(hdr + CCID_OFF_LENGTH, len);
	hdr[CCID_OFF_SLOT] = slot;
	hdr[CCID_OFF_SEQ] = seq;
	hdr[7] = p1;
	hdr[8] = p2;
	hdr[9] = p3;
}

/**
 * ccid_frame_cmd() - frame one PC_to_RDR message in a message buffer
 * @buf: the buffer, @buf_len bytes
 * @buf_len: its size: the largest message the reader takes
 * @hdr: the header fields (bMessageType, bSlot, bytes 7..9); its len is
 *	the length of @data
 * @seq: bSeq
 * @data: abData, @hdr->len bytes (may be NULL when that is 0)
 *
 * This is the one place where a command's length is checked against the
 * buffer: every command the driver sends, the user's and its own, is
 * framed here.
 *
 * Return: the length of the message, or -EMSGSIZE when it does not fit.
 */
int ccid_frame_cmd(u8 *buf, size_t buf_len, const struct ccid_cmd_hdr *hdr,
		   u8 seq, const u8 *data)
{
	if (buf_len < CCID_HDR_SIZE || hdr->len > buf_len - CCID_HDR_SIZE)
		return -EMSGSIZE;
	ccid_build_hdr(buf, hdr->type, hdr->len, hdr->slot, seq, hdr->p[0],
		       hdr->p[1], hdr->p[2]);
	if (hdr->len)
		memcpy(buf + CCID_HDR_SIZE, data, hdr->len);
	return CCID_HDR_SIZE + hdr->len;
}

/**
 * ccid_cmd_on_card_path() - whether a command is carried out by the card
 * @type: a PC_to_RDR bMessageType
 *
 * XfrBlock and Secure go to the card; everything else (power, status,
 * parameters, Escape, Abort) a reader answers on its own.  A recovery is
 * proven only by an answer on the path that failed.
 *
 * Return: true for the card path.
 */
bool ccid_cmd_on_card_path(u8 type)
{
	return type == CCID_PC_XFR_BLOCK || type == CCID_PC_SECURE;
}

/**
 * ccid_rsp_type_for() - the RDR_to_PC message that answers a command
 * @cmd_type: a PC_to_RDR bMessageType
 *
 * Return: the expected bMessageType of the answer.
 */
u8 ccid_rsp_type_for(u8 cmd_type)
{
	switch (cmd_type) {
	case CCID_PC_POWER_ON:
	case CCID_PC_XFR_BLOCK:
	case CCID_PC_SECURE:
		return CCID_RDR_DATA_BLOCK;
	case CCID_PC_GET_PARAMS:
	case CCID_PC_RESET_PARAMS:
	case CCID_PC_SET_PARAMS:
		return CCID_RDR_PARAMS;
	case CCID_PC_ESCAPE:
		return CCID_RDR_ESCAPE;
	case CCID_PC_SET_DATA_RATE:
		return CCID_RDR_DATA_RATE;
	default:
		return CCID_RDR_SLOT_STATUS;
	}
}

/**
 * ccid_check_rsp() - decode one bulk-IN frame and match it to a command
 * @buf: the frame
 * @actual: bytes received
 * @cmd_type: bMessageType of the command waiting for an answer
 * @slot: its bSlot
 * @seq: its bSeq
 * @rsp: the decoded header (filled in whenever @actual covers it)
 * @why: for CCID_RSP_BAD, what is wrong
 *
 * A frame for another bSeq or bSlot is an answer to an earlier command
 * that gave up waiting; it is reported as stale whatever its type.  A
 * failed SlotStatus answers any command.
 *
 * Return: the verdict.
 */
enum ccid_rsp_verdict ccid_check_rsp(const u8 *buf, size_t actual,
				     u8 cmd_type, u8 slot, u8 seq,
				     struct ccid_rsp *rsp, const char **why)
{
	if (actual < CCID_HDR_SIZE) {
		*why = "short header";
		return CCID_RSP_BAD;
	}

	rsp->type = buf[CCID_OFF_TYPE];
	rsp->len = ccid_get_le32(buf + CCID_OFF_LENGTH);
	rsp->slot = buf[CCID_OFF_SLOT];
	rsp->seq = buf[CCID_OFF_SEQ];
	rsp->status = buf[CCID_OFF_STATUS];
	rsp->error = buf[CCID_OFF_ERROR];
	rsp->param = buf[CCID_OFF_PARAM];

	if (rsp->len != actual - CCID_HDR_SIZE) {
		*why = "dwLength does not match the data received";
		return CCID_RSP_BAD;
	}
	if (rsp->seq != seq || rsp->slot != slot)
		return CCID_RSP_STALE;
	/*
	 * Some readers (QEMU's usb-ccid among them) refuse any command with
	 * a failed SlotStatus rather than the answer type the command
	 * expects; the failure is still the answer.
	 */
	if (rsp->type != ccid_rsp_type_for(cmd_type) &&
	    !(rsp->type == CCID_RDR_SLOT_STATUS &&
	      (rsp->status & CCID_CMD_STATUS_MASK) == CCID_CMD_STATUS_FAILED)) {
		*why = "wrong message type";
		return CCID_RSP_BAD;
	}

	switch (rsp->status & CCID_CMD_STATUS_MASK) {
	case CCID_CMD_STATUS_OK:
	case CCID_CMD_STATUS_FAILED:
		return CCID_RSP_MATCH;
	case CCID_CMD_STATUS_TIME_EXT:
		return CCID_RSP_TIME_EXT;
	default:
		*why = "reserved bmCommandStatus";
		return CCID_RSP_BAD;
	}
}

/**
 * ccid_rsp_errno() - the errno for a matched answer
 * @rsp: a frame ccid_check_rsp() called CCID_RSP_MATCH
 *
 * The mapping is part of the ABI; Documentation/usb/ccid.rst lists it.
 *
 * Return: 0 when the reader processed the command, else a negative errno.
 */
int ccid_rsp_errno(const struct ccid_rsp *rsp)
{
	/*
	 * A DataBlock carries what the card said: one that claims success
	 * with no card in the slot did not come from one (QEMU's reader
	 * flushes a pending XfrBlock that way as it is unplugged).
	 */
	if ((rsp->status & CCID_CMD_STATUS_MASK) == CCID_CMD_STATUS_OK &&
	    rsp->type == CCID_RDR_DATA_BLOCK &&
	    (rsp->status & CCID_ICC_STATUS_MASK) == CCID_ICC_ABSENT)
		return -ENOMEDIUM;
	if ((rsp->status & CCID_CMD_STATUS_MASK) != CCID_CMD_STATUS_FAILED)
		return 0;

	/* bError 1..0x7f: index of the offending field of the command */
	if (rsp->error >= 0x01 && rsp->error <= 0x7f)
		return -EINVAL;
	if (rsp->error == 0x00)
		return -EOPNOTSUPP;
	if ((rsp->status & CCID_ICC_STATUS_MASK) == CCID_ICC_ABSENT)
		return -ENOMEDIUM;

	switch (rsp->error) {
	case CCID_ERR_CMD_ABORTED:
	case CCID_ERR_PIN_CANCELLED:
		return -ECANCELED;
	case CCID_ERR_PIN_TIMEOUT:
		return -ETIME;
	case CCID_ERR_PROTO_NOT_SUPPORTED:
	case CCID_ERR_CLASS_NOT_SUPPORTED:
		return -EPROTONOSUPPORT;
	case CCID_ERR_BUSY_AUTO_SEQ:
	case CCID_ERR_SLOT_BUSY:
		return -EBUSY;
	default:
		/* ICC_MUTE, parity, overrun, HW_ERROR, bad ATR, ... */
		return -EIO;
	}
}

/* Offsets shared by the verify and modify structures */
#define PIN_OP			0
#define PIN_FORMAT		2
#define PIN_BLOCK		3

/* PC_to_RDR_Secure verify structure */
#define VERIFY_MAX_EXTRA	5
#define VERIFY_CONDITION	7
#define VERIFY_FIXED		15	/* bPINOperation .. bTeoPrologue */

/* PC_to_RDR_Secure modify structure */
#define MODIFY_OFFSET_OLD	5
#define MODIFY_OFFSET_NEW	6
#define MODIFY_MAX_EXTRA	7
#define MODIFY_CONDITION	10
#define MODIFY_NUM_MSG		11
#define MODIFY_FIXED		18	/* with bMsgIndex1 only */

#define PIN_FORMAT_TYPE		0x03
#define PIN_CONDITION_MASK	0x07

static int ccid_check_pin_apdu(const u8 *apdu, size_t len, const char **why)
{
	if (len < 4) {
		*why = "abPINApdu shorter than an APDU header";
		return -EINVAL;
	}
	/* Case 1 (the reader inserts Lc) or Lc = 0 / Le only */
	if (len <= 5)
		return 0;
	if (len != 5 + (size_t)apdu[4] && len != 6 + (size_t)apdu[4]) {
		*why = "abPINApdu length does not match its Lc";
		return -EINVAL;
	}
	return 0;
}

static int ccid_check_pin_fields(const u8 *blk, size_t extra_off,
				 size_t cond_off, const char **why)
{
	u8 fmt = blk[PIN_FORMAT];

	if ((fmt & PIN_FORMAT_TYPE) == PIN_FORMAT_TYPE) {
		*why = "bmFormatString has a reserved PIN format";
		return -EINVAL;
	}
	/* wPINMaxExtraDigit: high byte minimum, low byte maximum */
	if (blk[extra_off + 1] > blk[extra_off]) {
		*why = "wPINMaxExtraDigit minimum above maximum";
		return -EINVAL;
	}
	if (!blk[cond_off] || (blk[cond_off] & ~PIN_CONDITION_MASK)) {
		*why = "bEntryValidationCondition invalid";
		return -EINVAL;
	}
	return 0;
}

/*
 * When the APDU carries data, the PIN block must fit in it: for verify
 * the block starts at the first data byte (the PIN position of
 * bmFormatString lies inside the block), for modify at the insertion
 * offsets.
 */
static int ccid_check_pin_place(const u8 *blk, const u8 *apdu, size_t len,
				size_t offset, const char **why)
{
	size_t size = blk[PIN_BLOCK] & 0x0f;

	if (len <= 5 || !size)
		return 0;
	if (offset + size > apdu[4]) {
		*why = "PIN block lies outside the APDU data";
		return -EINVAL;
	}
	return 0;
}

/**
 * ccid_check_secure() - validate the abData of a PC_to_RDR_Secure
 * @blk: bPINOperation followed by the verify or modify structure
 * @len: bytes at @blk
 * @pin_support: bPINSupport of the reader
 * @why: on failure, what is wrong
 *
 * Only PIN verification and modification are passed to the reader.
 *
 * Return: 0, -EINVAL for a malformed block, or -EOPNOTSUPP for an
 * operation the reader or the driver does not support.
 */
int ccid_check_secure(const u8 *blk, size_t len, u8 pin_support,
		      const char **why)
{
	size_t fixed, off;
	int ret;

	if (!len) {
		*why = "empty PIN operation block";
		return -EINVAL;
	}

	switch (blk[PIN_OP]) {
	case CCID_PIN_OP_VERIFY:
		if (!(pin_support & CCID_PIN_VERIFY)) {
			*why = "reader has no PIN verification";
			return -EOPNOTSUPP;
		}
		if (len < VERIFY_FIXED) {
			*why = "verify structure truncated";
			return -EINVAL;
		}
		ret = ccid_check_pin_fields(blk, VERIFY_MAX_EXTRA,
					    VERIFY_CONDITION, why);
		if (ret)
			return ret;
		ret = ccid_check_pin_apdu(blk + VERIFY_FIXED,
					  len - VERIFY_FIXED, why);
		if (ret)
			return ret;
		return ccid_check_pin_place(blk, blk + VERIFY_FIXED,
					    len - VERIFY_FIXED, 0, why);
	case CCID_PIN_OP_MODIFY:
		if (!(pin_support & CCID_PIN_MODIFY)) {
			*why = "reader has no PIN modification";
			return -EOPNOTSUPP;
		}
		if (len <= MODIFY_NUM_MSG) {
			*why = "modify structure truncated";
			return -EINVAL;
		}
		/*
		 * bMsgIndex2 is there unless bNumberMessage is 0, bMsgIndex3
		 * when it is 3 or more (0xff, the reader's default, included),
		 * as libccid builds the block.
		 */
		fixed = MODIFY_FIXED + (blk[MODIFY_NUM_MSG] != 0) +
			(blk[MODIFY_NUM_MSG] >= 3);
		if (len < fixed) {
			*why = "modify structure truncated";
			return -EINVAL;
		}
		ret = ccid_check_pin_fields(blk, MODIFY_MAX_EXTRA,
					    MODIFY_CONDITION, why);
		if (ret)
			return ret;
		ret = ccid_check_pin_apdu(blk + fixed, len - fixed, why);
		if (ret)
			return ret;
		off = blk[MODIFY_OFFSET_OLD];
		if (blk[MODIFY_OFFSET_NEW] > off)
			off = blk[MODIFY_OFFSET_NEW];
		return ccid_check_pin_place(blk, blk + fixed, len - fixed,
					    off, why);
	default:
		*why = "PIN operation not supported";
		return -EOPNOTSUPP;
	}
}

/**
 * ccid_parse_int_msg() - decode one interrupt-IN message
 * @buf: the message
 * @len: bytes received
 * @num_slots: slots of the reader
 * @msg: the decoded message
 * @why: on failure, what is wrong
 *
 * NotifySlotChange carries two bits per slot, packed from byte 1: bit 0
 * card present, bit 1 changed.
 *
 * Return: 0, or -EPROTO for a message the driver cannot use.
 */
int ccid_parse_int_msg(const u8 *buf, size_t len, unsigned int num_slots,
		       struct ccid_int_msg *msg, const char **why)
{
	unsigned int i;
	u8 bits;

	if (!len) {
		*why = "empty interrupt message";
		return -EPROTO;
	}
	msg->type = buf[0];
	msg->present = 0;
	msg->changed = 0;

	switch (msg->type) {
	case CCID_RDR_NOTIFY_SLOT_CHANGE:
		if (len < 1 + (num_slots * 2 + 7) / 8) {
			*why = "NotifySlotChange too short";
			return -EPROTO;
		}
		for (i = 0; i < num_slots; i++) {
			bits = buf[1 + i / 4] >> (i % 4 * 2);
			if (bits & 0x01)
				msg->present |= 1U << i;
			if (bits & 0x02)
				msg->changed |= 1U << i;
		}
		return 0;
	case CCID_RDR_HARDWARE_ERROR:
		if (len < 4) {
			*why = "HardwareError too short";
			return -EPROTO;
		}
		msg->slot = buf[1];
		msg->seq = buf[2];
		msg->code = buf[3];
		if (msg->slot >= num_slots) {
			*why = "HardwareError for a slot the reader lacks";
			return -EPROTO;
		}
		return 0;
	default:
		*why = "unknown interrupt message";
		return -EPROTO;
	}
}

/*
 * Firmware known to misbehave.  The bogus-firmware entries are the
 * versions libccid refuses; SPR332 firmware 7.00 wedges after a PIN-pad
 * verify (see Documentation/usb/ccid.rst).
 */
static const struct ccid_quirk ccid_quirks[] = {
	/* SCM SPR532/SPR332: answers a Secure verify, then never again */
	{ 0x04e6, 0xe003, 0x0700, 0x0700, CCID_QUIRK_BROKEN_SECURE, 0x0701 },
	{ 0x04e6, 0xe003, 0x0000, 0x050f, CCID_QUIRK_BOGUS_FIRMWARE, 0x0510 },
	/* SCM SCR331 */
	{ 0x04e6, 0xe001, 0x0000, 0x0515, CCID_QUIRK_BOGUS_FIRMWARE, 0x0516 },
	/* SCM SCR331-DI */
	{ 0x04e6, 0x5111, 0x0000, 0x061f, CCID_QUIRK_BOGUS_FIRMWARE, 0x0620 },
	/* SCM SCL010 */
	{ 0x04e6, 0x5291, 0x0000, 0x0111, CCID_QUIRK_BOGUS_FIRMWARE, 0x0112 },
};

/* Tick @a is after tick @b, modulo wrap-around */
static bool ccid_tick_after(unsigned long a, unsigned long b)
{
	return (long)(b - a) < 0;
}

/**
 * ccid_wait_start() - start waiting for a command's answer
 * @w: the wait
 * @now: the tick the command was sent
 * @base: its timeout, in ticks
 * @limit: how long time extensions may stretch the wait, in ticks
 * @grace: how long the command's own answer may still come after a
 *	stale frame with an abandoned command's bSeq, in ticks
 *
 * The wait ends @base after @now; time extensions may push it to
 * max(@base, @limit) after @now, never further.
 */
void ccid_wait_start(struct ccid_answer_wait *w, unsigned long now,
		     unsigned long base, unsigned long limit,
		     unsigned long grace)
{
	w->base = base;
	w->wait_end = now + base;
	w->hard_end = now + (base > limit ? base : limit);
	w->grace = grace;
	w->stale = 0;
	w->extensions = 0;
	w->lagged = false;
}

/**
 * ccid_wait_frame() - the answer loop's rule for one frame
 * @w: the wait
 * @now: the tick the frame arrived
 * @v: what ccid_check_rsp() said of it
 * @rsp: its header, for CCID_RSP_STALE and CCID_RSP_TIME_EXT
 * @abandoned: for a stale frame: its bSeq is that of a command the
 *	driver gave up on
 * @why: set for CCID_WAIT_BAD when the reason is the loop's own
 *
 * Stale frames do not extend the wait, and the CCID_MAX_STALE-th one
 * fails the command.  One with an abandoned command's bSeq is either a
 * late answer, after which the command's own answer follows, or the
 * sign of a reader out of step, whose answer to this command it is: the
 * wait is cut to @grace, and ends with @w->lagged set when nothing else
 * comes.  A time extension restarts the wait with the timeout multiplied
 * by bError (0 and 0xff: once), cut at the hard end; it carries this
 * command's bSeq, so the reader is in step after all.
 *
 * Return: what to do next.
 */
enum ccid_wait_step ccid_wait_frame(struct ccid_answer_wait *w,
				    unsigned long now,
				    enum ccid_rsp_verdict v,
				    const struct ccid_rsp *rsp, bool abandoned,
				    const char **why)
{
	unsigned long mult;

	switch (v) {
	case CCID_RSP_MATCH:
		return CCID_WAIT_DONE;
	case CCID_RSP_STALE:
		if (abandoned && !w->lagged) {
			w->lagged = true;
			if (ccid_tick_after(w->wait_end, now + w->grace))
				w->wait_end = now + w->grace;
		}
		if (++w->stale < CCID_MAX_STALE)
			return CCID_WAIT_READ;
		*why = "too many stale answers";
		return CCID_WAIT_BAD;
	case CCID_RSP_TIME_EXT:
		w->extensions++;
		mult = rsp->error && rsp->error != 0xff ? rsp->error : 1;
		w->wait_end = now + w->base * mult;
		if (ccid_tick_after(w->wait_end, w->hard_end) ||
		    ccid_tick_after(now, w->hard_end))
			w->wait_end = w->hard_end;
		/* the reader knows this command: it is in step after all */
		w->lagged = false;
		return CCID_WAIT_READ;
	default:
		return CCID_WAIT_BAD;
	}
}

/**
 * ccid_wait_at_limit() - the wait was cut at its hard end
 * @w: the wait
 *
 * Return: true when time extensions brought the wait to its hard end: a
 * timeout then is logged as such.
 */
bool ccid_wait_at_limit(const struct ccid_answer_wait *w)
{
	return w->extensions && w->wait_end == w->hard_end;
}

/**
 * ccid_buffer_sizes() - the message buffers a reader's descriptor asks for
 * @max_msg_len: dwMaxCCIDMessageLength
 * @in_maxp: wMaxPacketSize of bulk-IN (not 0)
 * @buf_len: the largest message sent or accepted, header included
 * @in_len: the bulk-IN buffer: @buf_len rounded up to whole packets
 *
 * CCID asks for at least 271 bytes (a short APDU), but SCM firmware says
 * 263: a reader is taken when its messages hold a header and one byte,
 * and at least a short APDU or a packet; ccid_frame_cmd() refuses the
 * commands that do not fit.  The buffer never exceeds the largest message
 * the specification allows.
 *
 * Return: 0, or -EINVAL when the reader's messages are too small.
 */
int ccid_buffer_sizes(u32 max_msg_len, u16 in_maxp, size_t *buf_len,
		      size_t *in_len)
{
	if (!in_maxp || max_msg_len <= CCID_HDR_SIZE ||
	    (max_msg_len < CCID_MIN_MSG_LEN && max_msg_len < in_maxp))
		return -EINVAL;
	*buf_len = max_msg_len < CCID_MAX_MSG_LEN ? max_msg_len :
						    CCID_MAX_MSG_LEN;
	*in_len = (*buf_len + in_maxp - 1) / in_maxp * in_maxp;
	return 0;
}

/**
 * ccid_presence_from_answer() - learn a slot's card presence from bStatus
 * @p: the slot's presence
 * @status: the bStatus of an answer for the slot
 *
 * The first answer for a slot only teaches what is there; a later one
 * that disagrees is a change, which the reader's NotifySlotChange may
 * repeat (see ccid_presence_from_notify()).
 *
 * Return: the insertions and removals to count: 0 or 1.
 */
unsigned int ccid_presence_from_answer(struct ccid_presence *p, u8 status)
{
	bool present = (status & CCID_ICC_STATUS_MASK) != CCID_ICC_ABSENT;

	if (!p->known) {
		p->known = true;
		p->present = present;
		return 0;
	}
	if (p->present == present)
		return 0;
	p->present = present;
	p->noted = true;
	return 1;
}

/**
 * ccid_presence_from_notify() - a NotifySlotChange for a slot
 * @p: the slot's presence
 * @present: whether a card is there now
 * @changed: whether the reader saw a change since its last message
 *
 * Return: the insertions and removals to count: 0, 1 or 2 (the same
 * presence as before, yet changed: out and in again).
 */
unsigned int ccid_presence_from_notify(struct ccid_presence *p, bool present,
				       bool changed)
{
	unsigned int n = 0;

	if (!p->known)
		n = changed;
	else if (p->present != present)
		n = 1;
	else if (changed && !p->noted)
		n = 2;
	/* else: the change an answer's bmICCStatus already showed */
	p->noted = false;
	p->known = true;
	p->present = present;
	return n;
}

/**
 * ccid_find_quirk() - look a reader up in the built-in quirk table
 * @vid: idVendor
 * @pid: idProduct
 * @bcd: bcdDevice
 *
 * Return: the matching entry, or NULL.
 */
const struct ccid_quirk *ccid_find_quirk(u16 vid, u16 pid, u16 bcd)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ccid_quirks); i++) {
		const struct ccid_quirk *q = &ccid_quirks[i];

		if (q->vid == vid && q->pid == pid &&
		    bcd >= q->bcd_min && bcd <= q->bcd_max)
			return q;
	}
	return NULL;
}

/* Four hex digits, then @sep */
static int ccid_parse_id(const char **p, char sep, u16 *id)
{
	int i, d;

	*id = 0;
	for (i = 0; i < 4; i++) {
		d = hex_to_bin((*p)[i]);
		if (d < 0)
			return -EINVAL;
		*id = *id << 4 | d;
	}
	if ((*p)[4] != sep)
		return -EINVAL;
	*p += 5;
	return 0;
}

/**
 * ccid_quirk_override() - apply the quirks= module parameter
 * @param: "VID:PID:FLAGS[,VID:PID:FLAGS...]", VID and PID as four hex
 *	digits, FLAGS letters ('s' broken Secure, 'f' bogus firmware, 'z'
 *	bulk-OUT needs a zero-length packet), empty
 *	for none; the last entry for a reader wins
 * @vid: idVendor of the reader
 * @pid: idProduct of the reader
 * @flags: replaced when an entry names the reader
 *
 * Return: 1 when an entry named the reader, 0 when none did, -EINVAL when
 * @param is malformed (then @flags is untouched).
 */
int ccid_quirk_override(const char *param, u16 vid, u16 pid, u32 *flags)
{
	const char *p = param;
	int found = 0;
	u32 f, result = 0;
	u16 v, d;

	while (*p) {
		/* "echo > quirks" leaves a lone newline: nothing more */
		if (*p == '\n' && !p[1])
			break;
		if (ccid_parse_id(&p, ':', &v) || ccid_parse_id(&p, ':', &d))
			return -EINVAL;
		for (f = 0; *p && *p != ',' && *p != '\n'; p++) {
			if (*p == 's')
				f |= CCID_QUIRK_BROKEN_SECURE;
			else if (*p == 'f')
				f |= CCID_QUIRK_BOGUS_FIRMWARE;
			else if (*p == 'z')
				f |= CCID_QUIRK_OUT_ZLP;
			else
				return -EINVAL;
		}
		if (v == vid && d == pid) {
			result = f;
			found = 1;
		}
		if (*p == '\n' && p[1])
			return -EINVAL;
		if (*p)
			p++;
	}
	if (found)
		*flags = result;
	return found;
}
