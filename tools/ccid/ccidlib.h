/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pure helpers of ccidctl: hex parsing and formatting, errno and bError
 * naming, and the Secure PIN block builder.  Nothing in here does I/O,
 * so the functions can be unit-tested on their own.
 */
#ifndef _CCIDLIB_H
#define _CCIDLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* bmFormatString bits 1..0 */
#define CCID_PIN_FMT_BINARY	0
#define CCID_PIN_FMT_BCD	1
#define CCID_PIN_FMT_ASCII	2

/* Sizes of the Secure PIN structures, bPINOperation included */
#define CCID_PIN_VERIFY_HDR	15	/* up to abPINApdu */
#define CCID_PIN_MODIFY_HDR	18	/* with bMsgIndex1 only */
#define CCID_PIN_APDU_MIN	4	/* CLA INS P1 P2 */

/**
 * struct ccid_pin_opts - what goes into a PC_to_RDR_Secure PIN block
 * @modify: false for a verify block, true for a modify block
 * @timeout: bTimeOut, seconds (0: the reader's default)
 * @format: bmFormatString bits 1..0, CCID_PIN_FMT_*
 * @right_justify: bmFormatString bit 2
 * @pin_position: bmFormatString bits 6..3, in bytes (bit 7 is always set)
 * @block_size: bmPINBlockString bits 3..0, bytes
 * @len_size: bmPINBlockString bits 7..4, bits
 * @len_position: bmPINLengthFormat bits 3..0
 * @len_in_bytes: bmPINLengthFormat bit 4 (false: @len_position in bits)
 * @min_len: high byte of wPINMaxExtraDigit
 * @max_len: low byte of wPINMaxExtraDigit
 * @entry_condition: bEntryValidationCondition
 * @num_messages: bNumberMessage
 * @lang_id: wLangId
 * @msg_index: bMsgIndex (verify) or bMsgIndex1..3 (modify)
 * @offset_old: bInsertionOffsetOld (modify)
 * @offset_new: bInsertionOffsetNew (modify)
 * @confirm: bConfirmPIN (modify)
 * @apdu: abPINApdu, the command template
 * @apdu_len: bytes at @apdu
 */
struct ccid_pin_opts {
	bool modify;
	uint8_t timeout;
	uint8_t format;
	bool right_justify;
	uint8_t pin_position;
	uint8_t block_size;
	uint8_t len_size;
	uint8_t len_position;
	bool len_in_bytes;
	uint8_t min_len;
	uint8_t max_len;
	uint8_t entry_condition;
	uint8_t num_messages;
	uint16_t lang_id;
	uint8_t msg_index[3];
	uint8_t offset_old;
	uint8_t offset_new;
	uint8_t confirm;
	const uint8_t *apdu;
	size_t apdu_len;
};

/* Reader words (bStatus, bError) returned next to an errno */
struct ccid_words {
	uint8_t status;
	uint8_t error;
};

ssize_t ccid_parse_hex(const char *s, uint8_t *buf, size_t size);
size_t ccid_format_hex(char *out, size_t size, const uint8_t *buf,
		       size_t len);

const char *ccid_errno_name(int err);
const char *ccid_errno_text(int err);
const char *ccid_berror_name(uint8_t error);
bool ccid_words_failed(const struct ccid_words *w);
size_t ccid_describe_error(char *out, size_t size, int err,
			   const struct ccid_words *w);

const char *ccid_level_name(unsigned int level);
const char *ccid_card_state_name(uint8_t status);
const char *ccid_clock_name(uint8_t clock_status);
int ccid_parse_voltage(const char *s);

size_t ccid_apdu_set_le(const uint8_t *apdu, size_t len, uint8_t le,
			uint8_t *out);

void ccid_pin_opts_init(struct ccid_pin_opts *o, bool modify);
size_t ccid_pin_block_len(const struct ccid_pin_opts *o);
ssize_t ccid_build_pin_block(const struct ccid_pin_opts *o, uint8_t *buf,
			     size_t size);

#endif /* _CCIDLIB_H */
