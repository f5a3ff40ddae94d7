/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CCID wire format: framing and parsing.
 *
 * Nothing in here touches USB or allocates memory, so the same file is
 * built into ccid.ko and into the userspace unit tests and fuzzers.
 */
#ifndef _CCID_PROTO_H
#define _CCID_PROTO_H

#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/string.h>
#include <linux/types.h>
#else
#include "ccid_user_compat.h"
#endif
#include <linux/usb/ccid_reader.h>

#define CCID_HDR_SIZE			10
#define CCID_CLASS_DESC_SIZE		54
#define CCID_CLASS_DESC_TYPE		0x21
#define CCID_MAX_SLOTS			CCID_MAX_SLOT_COUNT

/*
 * The smallest useful message holds a short APDU: header + 261 bytes.
 * The largest one the spec allows (extended APDU level) is 65544 bytes
 * of data; the driver never allocates more than that.
 */
#define CCID_MIN_MSG_LEN		(CCID_HDR_SIZE + 261)
#define CCID_MAX_MSG_LEN		(CCID_HDR_SIZE + 65544)

/* Answers to older commands dropped before a command gives up */
#define CCID_MAX_STALE			16

/* PC_to_RDR message types */
#define CCID_PC_SET_PARAMS		0x61
#define CCID_PC_POWER_ON		0x62
#define CCID_PC_POWER_OFF		0x63
#define CCID_PC_GET_SLOT_STATUS		0x65
#define CCID_PC_SECURE			0x69
#define CCID_PC_ESCAPE			0x6b
#define CCID_PC_GET_PARAMS		0x6c
#define CCID_PC_RESET_PARAMS		0x6d
#define CCID_PC_XFR_BLOCK		0x6f
#define CCID_PC_ABORT			0x72
#define CCID_PC_SET_DATA_RATE		0x73

/* RDR_to_PC message types */
#define CCID_RDR_DATA_BLOCK		0x80
#define CCID_RDR_SLOT_STATUS		0x81
#define CCID_RDR_PARAMS			0x82
#define CCID_RDR_ESCAPE			0x83
#define CCID_RDR_DATA_RATE		0x84

/* Interrupt-IN messages */
#define CCID_RDR_NOTIFY_SLOT_CHANGE	0x50
#define CCID_RDR_HARDWARE_ERROR		0x51

/* Class-specific requests */
#define CCID_REQ_ABORT			0x01
#define CCID_REQ_GET_CLOCK_FREQS	0x02
#define CCID_REQ_GET_DATA_RATES		0x03

/* bError values */
#define CCID_ERR_CMD_ABORTED		0xff
#define CCID_ERR_ICC_MUTE		0xfe
#define CCID_ERR_XFR_PARITY		0xfd
#define CCID_ERR_XFR_OVERRUN		0xfc
#define CCID_ERR_HW_ERROR		0xfb
#define CCID_ERR_BAD_ATR_TS		0xf8
#define CCID_ERR_BAD_ATR_TCK		0xf7
#define CCID_ERR_PROTO_NOT_SUPPORTED	0xf6
#define CCID_ERR_CLASS_NOT_SUPPORTED	0xf5
#define CCID_ERR_PROCEDURE_BYTE		0xf4
#define CCID_ERR_DEACTIVATED_PROTO	0xf3
#define CCID_ERR_BUSY_AUTO_SEQ		0xf2
#define CCID_ERR_PIN_TIMEOUT		0xf0
#define CCID_ERR_PIN_CANCELLED		0xef
#define CCID_ERR_SLOT_BUSY		0xe0

/* dwFeatures */
#define CCID_FEAT_LEVEL_MASK		0x00070000
#define CCID_FEAT_LEVEL_TPDU		0x00010000
#define CCID_FEAT_LEVEL_SHORT_APDU	0x00020000
#define CCID_FEAT_LEVEL_EXT_APDU	0x00040000

/* Byte offsets in the 10-byte header */
#define CCID_OFF_TYPE			0
#define CCID_OFF_LENGTH			1
#define CCID_OFF_SLOT			5
#define CCID_OFF_SEQ			6
#define CCID_OFF_STATUS			7
#define CCID_OFF_ERROR			8
#define CCID_OFF_PARAM			9

/**
 * struct ccid_class_desc - the CCID class descriptor, in CPU order
 *
 * Field names follow the specification; see ccid_parse_class_desc().
 */
struct ccid_class_desc {
	u16 bcd_ccid;
	u8 max_slot_index;
	u8 voltage_support;
	u32 protocols;
	u32 default_clock;
	u32 max_clock;
	u8 num_clocks;
	u32 data_rate;
	u32 max_data_rate;
	u8 num_data_rates;
	u32 max_ifsd;
	u32 synch_protocols;
	u32 mechanical;
	u32 features;
	u32 max_msg_len;
	u8 class_get_response;
	u8 class_envelope;
	u16 lcd_layout;
	u8 pin_support;
	u8 max_busy_slots;
};

/**
 * struct ccid_rsp - a decoded RDR_to_PC bulk-IN header
 */
struct ccid_rsp {
	u8 type;
	u32 len;
	u8 slot;
	u8 seq;
	u8 status;
	u8 error;
	u8 param;
};

/* What ccid_check_rsp() found */
enum ccid_rsp_verdict {
	CCID_RSP_MATCH,		/* the answer to the command */
	CCID_RSP_STALE,		/* another bSeq or bSlot: drop it */
	CCID_RSP_TIME_EXT,	/* time extension: keep reading */
	CCID_RSP_BAD,		/* garbled: protocol error */
};

static inline u16 ccid_get_le16(const u8 *p)
{
	return p[0] | (u16)p[1] << 8;
}

static inline u32 ccid_get_le32(const u8 *p)
{
	return p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static inline void ccid_put_le16(u8 *p, u16 v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static inline void ccid_put_le32(u8 *p, u32 v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

int ccid_parse_class_desc(const u8 *buf, size_t len,
			  struct ccid_class_desc *desc, const char **why);
int ccid_exchange_level(u32 features);
const char *ccid_exchange_level_name(u32 features);

/**
 * struct ccid_cmd_hdr - the fields of a PC_to_RDR header but bSeq
 * @type: bMessageType
 * @slot: bSlot
 * @p: header bytes 7..9
 * @len: dwLength
 */
struct ccid_cmd_hdr {
	u8 type;
	u8 slot;
	u8 p[3];
	u32 len;
};

void ccid_build_hdr(u8 *hdr, u8 type, u32 len, u8 slot, u8 seq,
		    u8 p1, u8 p2, u8 p3);
int ccid_frame_cmd(u8 *buf, size_t buf_len, const struct ccid_cmd_hdr *hdr,
		   u8 seq, const u8 *data);
bool ccid_cmd_on_card_path(u8 type);
u8 ccid_rsp_type_for(u8 cmd_type);
enum ccid_rsp_verdict ccid_check_rsp(const u8 *buf, size_t actual,
				     u8 cmd_type, u8 slot, u8 seq,
				     struct ccid_rsp *rsp, const char **why);
int ccid_rsp_errno(const struct ccid_rsp *rsp);

int ccid_check_secure(const u8 *blk, size_t len, u8 pin_support,
		      const char **why);

/**
 * struct ccid_int_msg - a decoded interrupt-IN message
 * @type: CCID_RDR_NOTIFY_SLOT_CHANGE or CCID_RDR_HARDWARE_ERROR
 * @present: NotifySlotChange: bit N set when slot N holds a card
 * @changed: NotifySlotChange: bit N set when slot N changed
 * @slot: HardwareError: bSlot
 * @seq: HardwareError: bSeq
 * @code: HardwareError: bHardwareErrorCode
 */
struct ccid_int_msg {
	u8 type;
	u32 present;
	u32 changed;
	u8 slot;
	u8 seq;
	u8 code;
};

int ccid_parse_int_msg(const u8 *buf, size_t len, unsigned int num_slots,
		       struct ccid_int_msg *msg, const char **why);

/**
 * struct ccid_answer_wait - the wait for one command's answer
 * @base: the command's timeout, in clock ticks
 * @wait_end: the wait ends at this tick
 * @hard_end: time extensions never push @wait_end past this tick
 * @grace: how long the command's own answer may still come after a
 *	frame that showed the reader out of step
 * @stale: stale frames dropped so far
 * @extensions: time extensions received so far
 * @lagged: a stale frame carried the bSeq of an abandoned command
 *
 * The clock is the caller's (jiffies in the driver, a virtual one in the
 * fuzzer); ticks compare modulo wrap-around, as time_after() does.
 */
struct ccid_answer_wait {
	unsigned long base;
	unsigned long wait_end;
	unsigned long hard_end;
	unsigned long grace;
	unsigned int stale;
	unsigned int extensions;
	bool lagged;
};

/* What the answer loop does with a frame */
enum ccid_wait_step {
	CCID_WAIT_DONE,		/* the answer: take it */
	CCID_WAIT_READ,		/* dropped or extended: read on */
	CCID_WAIT_BAD,		/* garbled, or too many stale frames */
};

void ccid_wait_start(struct ccid_answer_wait *w, unsigned long now,
		     unsigned long base, unsigned long limit,
		     unsigned long grace);
enum ccid_wait_step ccid_wait_frame(struct ccid_answer_wait *w,
				    unsigned long now,
				    enum ccid_rsp_verdict v,
				    const struct ccid_rsp *rsp, bool abandoned,
				    const char **why);
bool ccid_wait_at_limit(const struct ccid_answer_wait *w);

int ccid_buffer_sizes(u32 max_msg_len, u16 in_maxp, size_t *buf_len,
		      size_t *in_len);

/**
 * struct ccid_presence - what the driver knows of a slot's card
 * @present: a card is in the slot
 * @known: @present was learnt
 * @noted: an answer showed the last change before a NotifySlotChange did
 */
struct ccid_presence {
	bool present;
	bool known;
	bool noted;
};

unsigned int ccid_presence_from_answer(struct ccid_presence *p, u8 status);
unsigned int ccid_presence_from_notify(struct ccid_presence *p, bool present,
				       bool changed);

/* Reader quirks */
#define CCID_QUIRK_BROKEN_SECURE	0x00000001	/* 's' */
#define CCID_QUIRK_BOGUS_FIRMWARE	0x00000002	/* 'f' */
#define CCID_QUIRK_OUT_ZLP		0x00000004	/* 'z' */

/**
 * struct ccid_quirk - a known-bad firmware range
 * @vid: idVendor
 * @pid: idProduct
 * @bcd_min: first bad bcdDevice
 * @bcd_max: last bad bcdDevice
 * @flags: CCID_QUIRK_*
 * @fixed_in: bcdDevice of the first good firmware, for the log
 */
struct ccid_quirk {
	u16 vid;
	u16 pid;
	u16 bcd_min;
	u16 bcd_max;
	u32 flags;
	u16 fixed_in;
};

const struct ccid_quirk *ccid_find_quirk(u16 vid, u16 pid, u16 bcd);
int ccid_quirk_override(const char *param, u16 vid, u16 pid, u32 *flags);

#endif /* _CCID_PROTO_H */
