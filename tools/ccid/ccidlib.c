// SPDX-License-Identifier: GPL-2.0
/*
 * Pure helpers of ccidctl: hex parsing and formatting, errno and bError
 * naming, and the Secure PIN block builder.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <linux/usb/ccid_reader.h>

#include "ccid_user_compat.h"
#include "ccidlib.h"

static bool hex_separator(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == ':';
}

/**
 * ccid_parse_hex() - parse a hex string into bytes
 * @s: the string, e.g. "00A40400", "00 a4 04 00" or "00:A4:04:00"
 * @buf: where the bytes go
 * @size: room at @buf
 *
 * Blanks and colons may separate the bytes; every group of digits
 * between two separators must hold whole bytes.
 *
 * Return: the number of bytes, -EINVAL for bad hex, -ENOSPC when the
 * bytes do not fit in @buf.
 */
ssize_t ccid_parse_hex(const char *s, uint8_t *buf, size_t size)
{
	size_t len = 0;

	while (*s) {
		int hi, lo;

		if (hex_separator(*s)) {
			s++;
			continue;
		}
		hi = hex_to_bin(s[0]);
		if (hi < 0)
			return -EINVAL;
		lo = hex_to_bin(s[1]);
		if (lo < 0)
			return -EINVAL;
		if (len == size)
			return -ENOSPC;
		buf[len++] = hi << 4 | lo;
		s += 2;
	}
	return len;
}

/**
 * ccid_format_hex() - format bytes as "3B 8F 80 01"
 * @out: where the text goes, NUL-terminated (may be NULL if @size is 0)
 * @size: room at @out
 * @buf: the bytes
 * @len: number of bytes at @buf
 *
 * Uppercase hex pairs separated by one space; no bytes give "".
 *
 * Return: the length of the whole text, as snprintf() does; the text
 * was truncated if that is @size or more.
 */
size_t ccid_format_hex(char *out, size_t size, const uint8_t *buf,
		       size_t len)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t need = len ? 3 * len - 1 : 0;
	size_t i, pos = 0;

	if (!size)
		return need;
	for (i = 0; i < len; i++) {
		if (pos + (i ? 3 : 2) > size - 1)
			break;
		if (i)
			out[pos++] = ' ';
		out[pos++] = digits[buf[i] >> 4];
		out[pos++] = digits[buf[i] & 0xf];
	}
	out[pos] = '\0';
	return need;
}

struct errno_entry {
	int err;
	const char *name;
	const char *text;	/* NULL: strerror() */
};

/* The driver's errno contract first, then what open() may add */
static const struct errno_entry errno_table[] = {
	{ ENODEV, "ENODEV", "the reader is gone" },
	{ EINVAL, "EINVAL",
	  "bad slot, nonzero reserved field, bad argument or malformed Secure block" },
	{ EMSGSIZE, "EMSGSIZE", "the command is larger than the reader accepts" },
	{ EOVERFLOW, "EOVERFLOW", "the answer is larger than the receive buffer" },
	{ EFAULT, "EFAULT", "bad address" },
	{ ENOTTY, "ENOTTY", "not a CCID reader (the device does not know this ioctl)" },
	{ EPERM, "EPERM", "escape commands need CAP_SYS_ADMIN" },
	{ EOPNOTSUPP, "EOPNOTSUPP", "the reader does not support this command" },
	{ ETIMEDOUT, "ETIMEDOUT", "the reader did not answer" },
	{ EPROTO, "EPROTO", "garbled answer from the reader" },
	{ EINTR, "EINTR", "interrupted by a signal" },
	{ ECANCELED, "ECANCELED", "the command was cancelled" },
	{ ENOMEDIUM, "ENOMEDIUM", "no card in the slot" },
	{ EIO, "EIO", "card error" },
	{ EPROTONOSUPPORT, "EPROTONOSUPPORT",
	  "the card's protocol or voltage class is not supported" },
	{ EBUSY, "EBUSY", "the slot is busy" },
	{ ETIME, "ETIME", "PIN entry timed out" },
	{ ECONNRESET, "ECONNRESET",
	  "the slot was reset: power the card on again, or acknowledge with 'events --ack'" },
	{ ENOENT, "ENOENT", NULL },
	{ ENXIO, "ENXIO", NULL },
	{ EACCES, "EACCES", NULL },
	{ ENOMEM, "ENOMEM", NULL },
	{ EAGAIN, "EAGAIN", NULL },
	{ EBADF, "EBADF", NULL },
	{ ENOSPC, "ENOSPC", NULL },
	{ ENOTDIR, "ENOTDIR", NULL },
	{ EISDIR, "EISDIR", NULL },
	{ EROFS, "EROFS", NULL },
	{ ESHUTDOWN, "ESHUTDOWN", NULL },
	{ EPIPE, "EPIPE", NULL },
};

static const struct errno_entry *errno_lookup(int err)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(errno_table); i++)
		if (errno_table[i].err == err)
			return &errno_table[i];
	return NULL;
}

/**
 * ccid_errno_name() - symbolic name of an errno value
 * @err: positive errno value
 *
 * Return: "ENODEV" and the like, or NULL when the table does not know it.
 */
const char *ccid_errno_name(int err)
{
	const struct errno_entry *e = errno_lookup(err);

	return e ? e->name : NULL;
}

/**
 * ccid_errno_text() - what an errno means coming from the ccid driver
 * @err: positive errno value
 *
 * Return: a sentence in driver terms, or strerror(@err).
 */
const char *ccid_errno_text(int err)
{
	const struct errno_entry *e = errno_lookup(err);

	return e && e->text ? e->text : strerror(err);
}

/**
 * ccid_berror_name() - CCID name of a bError value
 * @error: bError of a failed command
 *
 * Return: "ICC_MUTE" and the like; NULL for 0x01..0x7F (the offset of a
 * bad parameter) and for values the specification does not define.
 */
const char *ccid_berror_name(uint8_t error)
{
	switch (error) {
	case 0xff: return "CMD_ABORTED";
	case 0xfe: return "ICC_MUTE";
	case 0xfd: return "XFR_PARITY_ERROR";
	case 0xfc: return "XFR_OVERRUN";
	case 0xfb: return "HW_ERROR";
	case 0xf8: return "BAD_ATR_TS";
	case 0xf7: return "BAD_ATR_TCK";
	case 0xf6: return "ICC_PROTOCOL_NOT_SUPPORTED";
	case 0xf5: return "ICC_CLASS_NOT_SUPPORTED";
	case 0xf4: return "PROCEDURE_BYTE_CONFLICT";
	case 0xf3: return "DEACTIVATED_PROTOCOL";
	case 0xf2: return "BUSY_WITH_AUTO_SEQUENCE";
	case 0xf0: return "PIN_TIMEOUT";
	case 0xef: return "PIN_CANCELLED";
	case 0xe0: return "CMD_SLOT_BUSY";
	case 0x00: return "CMD_NOT_SUPPORTED";
	default: return NULL;
	}
}

/**
 * ccid_words_failed() - did the reader answer that the command failed?
 * @w: bStatus and bError as the driver wrote them back, or NULL
 *
 * The driver fills them in only when the reader answered; a failed
 * answer always has bmCommandStatus 1, which a zeroed struct has not.
 */
bool ccid_words_failed(const struct ccid_words *w)
{
	return w && (w->status & CCID_CMD_STATUS_MASK) == CCID_CMD_STATUS_FAILED;
}

/**
 * ccid_describe_error() - the human part of an error line
 * @out: where the text goes, NUL-terminated
 * @size: room at @out
 * @err: positive errno value
 * @w: the reader's words, or NULL
 *
 * E.g. "card error (bStatus 0x41, bError 0xFE: ICC_MUTE)": the words are
 * added when the reader answered that the command failed.
 *
 * Return: the length of the whole text, as snprintf() does.
 */
size_t ccid_describe_error(char *out, size_t size, int err,
			   const struct ccid_words *w)
{
	const char *text = ccid_errno_text(err);
	const char *name;
	int n;

	if (!ccid_words_failed(w))
		return snprintf(out, size, "%s", text);

	name = ccid_berror_name(w->error);
	if (name)
		n = snprintf(out, size, "%s (bStatus 0x%02X, bError 0x%02X: %s)",
			     text, w->status, w->error, name);
	else if (w->error < 0x80)
		n = snprintf(out, size,
			     "%s (bStatus 0x%02X, bError 0x%02X: bad parameter at offset %u)",
			     text, w->status, w->error, w->error);
	else
		n = snprintf(out, size,
			     "%s (bStatus 0x%02X, bError 0x%02X: unknown error)",
			     text, w->status, w->error);
	return n < 0 ? 0 : n;
}

/**
 * ccid_level_name() - name of a CCID_LEVEL_* value, as sysfs spells it
 * @level: ccid_reader_info.exchange_level
 *
 * Return: "character", "tpdu", "short_apdu", "extended_apdu" or NULL.
 */
const char *ccid_level_name(unsigned int level)
{
	static const char * const names[] = {
		[CCID_LEVEL_CHARACTER] = "character",
		[CCID_LEVEL_TPDU] = "tpdu",
		[CCID_LEVEL_SHORT_APDU] = "short_apdu",
		[CCID_LEVEL_EXTENDED_APDU] = "extended_apdu",
	};

	return level < ARRAY_SIZE(names) ? names[level] : NULL;
}

/**
 * ccid_card_state_name() - bmICCStatus as a word
 * @status: bStatus
 *
 * Return: "active", "inactive", "absent" or "unknown".
 */
const char *ccid_card_state_name(uint8_t status)
{
	switch (status & CCID_ICC_STATUS_MASK) {
	case CCID_ICC_ACTIVE: return "active";
	case CCID_ICC_INACTIVE: return "inactive";
	case CCID_ICC_ABSENT: return "absent";
	default: return "unknown";
	}
}

/**
 * ccid_clock_name() - bClockStatus as a word
 * @clock_status: bClockStatus
 *
 * Return: "running", "stopped-L", "stopped-H", "stopped-unknown" or
 * "unknown".
 */
const char *ccid_clock_name(uint8_t clock_status)
{
	switch (clock_status) {
	case 0: return "running";
	case 1: return "stopped-L";
	case 2: return "stopped-H";
	case 3: return "stopped-unknown";
	default: return "unknown";
	}
}

/**
 * ccid_parse_voltage() - parse a --voltage argument
 * @s: "auto", "5", "3" or "1.8", the last three optionally followed by V
 *
 * Return: a CCID_VOLTAGE_* value, or -EINVAL.
 */
int ccid_parse_voltage(const char *s)
{
	static const struct {
		const char *name;
		int value;
	} volts[] = {
		{ "auto", CCID_VOLTAGE_AUTO },
		{ "5", CCID_VOLTAGE_5V }, { "5V", CCID_VOLTAGE_5V },
		{ "3", CCID_VOLTAGE_3V }, { "3V", CCID_VOLTAGE_3V },
		{ "1.8", CCID_VOLTAGE_1_8V }, { "1.8V", CCID_VOLTAGE_1_8V },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(volts); i++)
		if (!strcasecmp(s, volts[i].name))
			return volts[i].value;
	return -EINVAL;
}

/**
 * ccid_apdu_set_le() - copy a short APDU with another Le
 * @apdu: the command APDU
 * @len: bytes at @apdu
 * @le: the new Le (as in a 6Cxx answer)
 * @out: room for @len + 1 bytes
 *
 * Le is appended to a case 1 or case 3 APDU and replaced in a case 2 or
 * case 4 one.
 *
 * Return: the length of the new APDU, or 0 when @apdu is not a short
 * APDU of a known case.
 */
size_t ccid_apdu_set_le(const uint8_t *apdu, size_t len, uint8_t le,
			uint8_t *out)
{
	size_t lc;

	if (len < 4)
		return 0;
	memcpy(out, apdu, len);
	if (len == 4 || len == 5) {
		out[4] = le;
		return 5;
	}
	lc = apdu[4];
	if (!lc)
		return 0;	/* extended length */
	if (len == 5 + lc) {
		out[len] = le;
		return len + 1;
	}
	if (len == 6 + lc) {
		out[len - 1] = le;
		return len;
	}
	return 0;
}

/**
 * ccid_pin_opts_init() - ccidctl's defaults for a PIN block
 * @o: the options to fill in
 * @modify: false for verify, true for modify
 *
 * ASCII, left-justified, PIN at byte 0, no fixed block, 1..25 digits,
 * validation by the OK key, wLangId 0x0409, one message for a verify and
 * three for a modify (bMsgIndex 0, 1, 2), bConfirmPIN 3 (old PIN asked,
 * new PIN confirmed).  The APDU is left empty.
 */
void ccid_pin_opts_init(struct ccid_pin_opts *o, bool modify)
{
	memset(o, 0, sizeof(*o));
	o->modify = modify;
	o->format = CCID_PIN_FMT_ASCII;
	o->min_len = 1;
	o->max_len = 25;
	o->entry_condition = 0x02;
	o->num_messages = modify ? 3 : 1;
	o->lang_id = 0x0409;
	o->msg_index[1] = 1;
	o->msg_index[2] = 2;
	o->confirm = modify ? 0x03 : 0;
}

/*
 * bMsgIndex2 is present unless bNumberMessage is 0, and bMsgIndex3 when
 * it is 3 or more (0xff included), as libccid and the driver read it.
 */
static size_t pin_msg_indexes(const struct ccid_pin_opts *o)
{
	if (!o->modify)
		return 1;
	return 1 + (o->num_messages != 0) + (o->num_messages >= 3);
}

/**
 * ccid_pin_block_len() - size of the block ccid_build_pin_block() makes
 * @o: the options
 */
size_t ccid_pin_block_len(const struct ccid_pin_opts *o)
{
	size_t hdr = o->modify ? CCID_PIN_MODIFY_HDR - 1 : CCID_PIN_VERIFY_HDR - 1;

	return hdr + pin_msg_indexes(o) + o->apdu_len;
}

static int pin_opts_check(const struct ccid_pin_opts *o)
{
	if (o->format > CCID_PIN_FMT_ASCII || o->pin_position > 15 ||
	    o->block_size > 15 || o->len_size > 15 || o->len_position > 15)
		return -EINVAL;
	if (o->min_len > o->max_len)
		return -EINVAL;
	if (!o->apdu || o->apdu_len < CCID_PIN_APDU_MIN)
		return -EINVAL;
	return 0;
}

static uint8_t *put_le16(uint8_t *p, uint16_t v)
{
	*p++ = v & 0xff;
	*p++ = v >> 8;
	return p;
}

/**
 * ccid_build_pin_block() - build the abData of a PC_to_RDR_Secure
 * @o: the options
 * @buf: where the block goes
 * @size: room at @buf
 *
 * The block runs from bPINOperation up to and including abPINApdu; it
 * is what CCID_IOC_SECURE takes as tx_buf.  In a modify block,
 * bMsgIndex2 is present unless bNumberMessage is 0, and bMsgIndex3 only
 * when bNumberMessage is 3, as the CCID specification says (libccid
 * also sends bMsgIndex3 for 0xFF).  bTeoPrologue is zero.
 *
 * Return: the block length, -EINVAL for an option that does not fit its
 * field, a minimum length above the maximum or an APDU shorter than 4
 * bytes, -ENOSPC when @size is too small.
 */
ssize_t ccid_build_pin_block(const struct ccid_pin_opts *o, uint8_t *buf,
			     size_t size)
{
	size_t len = ccid_pin_block_len(o);
	size_t i, n = pin_msg_indexes(o);
	uint8_t *p = buf;
	int ret;

	ret = pin_opts_check(o);
	if (ret)
		return ret;
	if (len > size)
		return -ENOSPC;

	*p++ = o->modify ? CCID_PIN_OP_MODIFY : CCID_PIN_OP_VERIFY;
	*p++ = o->timeout;
	*p++ = 0x80 | o->pin_position << 3 | (o->right_justify ? 0x04 : 0) |
	       o->format;
	*p++ = o->len_size << 4 | o->block_size;
	*p++ = (o->len_in_bytes ? 0x10 : 0) | o->len_position;
	if (o->modify) {
		*p++ = o->offset_old;
		*p++ = o->offset_new;
	}
	p = put_le16(p, o->min_len << 8 | o->max_len);
	if (o->modify)
		*p++ = o->confirm;
	*p++ = o->entry_condition;
	*p++ = o->num_messages;
	p = put_le16(p, o->lang_id);
	for (i = 0; i < n; i++)
		*p++ = o->msg_index[i];
	memset(p, 0, 3);		/* bTeoPrologue */
	p += 3;
	memcpy(p, o->apdu, o->apdu_len);
	return len;
}
