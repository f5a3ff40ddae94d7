/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ioctl interface of the USB CCID smart-card reader driver (ccid.ko).
 *
 * Each bound CCID interface is one character device, /dev/ccidN.  Every
 * command below names a slot; the driver frames the CCID message, owns
 * bSeq, waits for the matching answer and hands back both an errno and
 * the reader's own bStatus and bError.
 *
 * Conventions:
 *  - all structures have a fixed layout, identical for 32- and 64-bit
 *    userspace; user buffers are passed as __u64 (cast from a pointer);
 *  - every field named reserved* must be zero on input, otherwise the
 *    call fails with -EINVAL;
 *  - timeout_ms == 0 selects the driver's default timeout for the
 *    command; other values are raised to CCID_MIN_TIMEOUT_MS and capped
 *    at CCID_MAX_TIMEOUT_MS; a Secure command waits at least 90 s, or
 *    bTimeOut + 10 s if that is longer;
 *  - a file opened read-only may only use CCID_IOC_GET_INFO,
 *    CCID_IOC_SLOT_STATUS, CCID_IOC_GET_PARAMS and CCID_IOC_SLOT_EVENTS;
 *    the others fail with -EBADF;
 *  - the out fields (status, error, ...) are written back even when the
 *    call fails after the reader answered, so that a daemon can see the
 *    reader's words next to the errno.
 *
 * See Documentation/usb/ccid.rst for the errno contract.
 */

#ifndef _UAPI__LINUX_USB_CCID_READER_H
#define _UAPI__LINUX_USB_CCID_READER_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Registered in Documentation/userspace-api/ioctl/ioctl-number.rst */
#define CCID_IOC_MAGIC			0xC1

#define CCID_MAX_SLOT_COUNT		16
#define CCID_MAX_ATR_SIZE		64
#define CCID_MAX_PARAMS_SIZE		32
#define CCID_MIN_TIMEOUT_MS		500
#define CCID_MAX_TIMEOUT_MS		600000

/* bPowerSelect of PC_to_RDR_IccPowerOn */
#define CCID_VOLTAGE_AUTO		0x00
#define CCID_VOLTAGE_5V			0x01
#define CCID_VOLTAGE_3V			0x02
#define CCID_VOLTAGE_1_8V		0x03

/* bStatus: bmICCStatus (bits 1..0) and bmCommandStatus (bits 7..6) */
#define CCID_ICC_STATUS_MASK		0x03
#define CCID_ICC_ACTIVE			0x00
#define CCID_ICC_INACTIVE		0x01
#define CCID_ICC_ABSENT			0x02
#define CCID_CMD_STATUS_MASK		0xC0
#define CCID_CMD_STATUS_OK		0x00
#define CCID_CMD_STATUS_FAILED		0x40
#define CCID_CMD_STATUS_TIME_EXT	0x80

/* ccid_reader_info.exchange_level */
#define CCID_LEVEL_CHARACTER		0
#define CCID_LEVEL_TPDU			1
#define CCID_LEVEL_SHORT_APDU		2
#define CCID_LEVEL_EXTENDED_APDU	3

/* ccid_reader_info.pin_support (bPINSupport) */
#define CCID_PIN_VERIFY			0x01
#define CCID_PIN_MODIFY			0x02

/* bPINOperation, first byte of a Secure block */
#define CCID_PIN_OP_VERIFY		0x00
#define CCID_PIN_OP_MODIFY		0x01

/**
 * struct ccid_reader_info - what the reader says about itself
 * @vendor_id: idVendor
 * @product_id: idProduct
 * @bcd_device: bcdDevice, the reader's firmware version (0x0701 = 7.01)
 * @bcd_ccid: bcdCCID, the CCID release the reader implements
 * @num_slots: bMaxSlotIndex + 1
 * @voltage_support: bVoltageSupport
 * @pin_support: bPINSupport, as the driver uses it (CCID_PIN_*)
 * @max_busy_slots: bMaxCCIDBusySlots
 * @protocols: dwProtocols
 * @default_clock: dwDefaultClock, kHz
 * @max_clock: dwMaximumClock, kHz
 * @data_rate: dwDataRate, bps
 * @max_data_rate: dwMaxDataRate, bps
 * @max_ifsd: dwMaxIFSD
 * @synch_protocols: dwSynchProtocols
 * @mechanical: dwMechanical
 * @features: dwFeatures
 * @max_message_length: dwMaxCCIDMessageLength as the descriptor states it
 * @buffer_length: largest message, header included, that the driver
 *	sends or accepts; tx_len and rx lengths are bounded by this minus 10
 * @num_clocks: bNumClockSupported
 * @num_data_rates: bNumDataRatesSupported
 * @class_get_response: bClassGetResponse
 * @class_envelope: bClassEnvelope
 * @lcd_layout: wLcdLayout
 * @exchange_level: CCID_LEVEL_*
 * @interface_class: 0x0B, or 0xFF for pre-standard readers
 * @reserved: zero
 */
struct ccid_reader_info {
	__u16 vendor_id;
	__u16 product_id;
	__u16 bcd_device;
	__u16 bcd_ccid;
	__u8  num_slots;
	__u8  voltage_support;
	__u8  pin_support;
	__u8  max_busy_slots;
	__u32 protocols;
	__u32 default_clock;
	__u32 max_clock;
	__u32 data_rate;
	__u32 max_data_rate;
	__u32 max_ifsd;
	__u32 synch_protocols;
	__u32 mechanical;
	__u32 features;
	__u32 max_message_length;
	__u32 buffer_length;
	__u8  num_clocks;
	__u8  num_data_rates;
	__u8  class_get_response;
	__u8  class_envelope;
	__u16 lcd_layout;
	__u8  exchange_level;
	__u8  interface_class;
	__u32 reserved[8];
};

/**
 * struct ccid_power_on - PC_to_RDR_IccPowerOn
 * @slot: in, slot index
 * @voltage: in, CCID_VOLTAGE_*
 * @status: out, bStatus of the answer
 * @error: out, bError of the answer
 * @atr_len: out, number of valid bytes in @atr
 * @timeout_ms: in, 0 for the default
 * @reserved0: zero
 * @atr: out, the card's answer to reset
 * @reserved: zero
 */
struct ccid_power_on {
	__u8  slot;
	__u8  voltage;
	__u8  status;
	__u8  error;
	__u32 atr_len;
	__u32 timeout_ms;
	__u32 reserved0;
	__u8  atr[CCID_MAX_ATR_SIZE];
	__u64 reserved[2];
};

/**
 * struct ccid_slot_status - PC_to_RDR_GetSlotStatus and PC_to_RDR_IccPowerOff
 * @slot: in, slot index
 * @status: out, bStatus (CCID_ICC_STATUS_MASK gives the card state)
 * @error: out, bError
 * @clock_status: out, bClockStatus
 * @timeout_ms: in, 0 for the default
 * @reserved: zero
 */
struct ccid_slot_status {
	__u8  slot;
	__u8  status;
	__u8  error;
	__u8  clock_status;
	__u32 timeout_ms;
	__u32 reserved[2];
};

/**
 * struct ccid_xfer - PC_to_RDR_XfrBlock, PC_to_RDR_Secure, PC_to_RDR_Escape
 * @slot: in, slot index (ignored by the reader for Escape, still checked)
 * @bwi: in, bBWI (XfrBlock and Secure; zero for Escape)
 * @level: in, wLevelParameter (XfrBlock and Secure; zero for Escape)
 * @tx_len: in, bytes at @tx_buf: the APDU/TPDU, the PIN operation block
 *	(bPINOperation up to and including abPINApdu) or the escape data
 * @tx_buf: in, user pointer
 * @rx_buf: in, user pointer for the answer's abData
 * @rx_size: in, room at @rx_buf
 * @rx_len: out, length of the answer's abData
 * @timeout_ms: in, 0 for the default
 * @status: out, bStatus
 * @error: out, bError
 * @chain: out, bChainParameter (XfrBlock, Secure)
 * @reserved0: zero
 * @reserved: zero
 */
struct ccid_xfer {
	__u8  slot;
	__u8  bwi;
	__u16 level;
	__u32 tx_len;
	__u64 tx_buf;
	__u64 rx_buf;
	__u32 rx_size;
	__u32 rx_len;
	__u32 timeout_ms;
	__u8  status;
	__u8  error;
	__u8  chain;
	__u8  reserved0;
	__u64 reserved[3];
};

/**
 * struct ccid_params - Get/Set/ResetParameters
 * @slot: in, slot index
 * @protocol: bProtocolNum, in for Set, out for all three
 * @status: out, bStatus
 * @error: out, bError
 * @len: length of @data, in for Set, out for all three
 * @timeout_ms: in, 0 for the default
 * @reserved0: zero
 * @data: abProtocolDataStructure (5 bytes for T=0, 7 for T=1)
 * @reserved: zero
 */
struct ccid_params {
	__u8  slot;
	__u8  protocol;
	__u8  status;
	__u8  error;
	__u32 len;
	__u32 timeout_ms;
	__u32 reserved0;
	__u8  data[CCID_MAX_PARAMS_SIZE];
	__u64 reserved[2];
};

/**
 * struct ccid_abort - cancel the command in flight on a slot
 * @slot: in, slot index
 * @reserved: zero
 */
struct ccid_abort {
	__u8  slot;
	__u8  reserved[7];
};

/* ccid_slot_events.flags */
#define CCID_EVENTS_ACK_RESET		0x00000001

/**
 * struct ccid_slot_events - card presence, slot changes and resets
 * @flags: in, CCID_EVENTS_ACK_RESET: acknowledge every reset reported in
 *	@reset_pending, so that this file may use the slots again
 * @present: out, bit N set while slot N holds a card; meaningful only for
 *	the slots in @known
 * @reset_pending: out, bit N set when slot N was reset (by the driver's
 *	recovery, a USB reset or a resume) since this file last acknowledged
 * @hw_errors: out, RDR_to_PC_HardwareError messages seen so far
 * @changes: out, per slot, card insertions and removals seen so far; a
 *	counter that moved tells of a change even when @present looks the same
 * @generation: out, per slot, how many times the slot was reset
 * @known: out, bit N set once the driver has learnt whether slot N holds
 *	a card, from an answer of the reader or a slot-change message;
 *	learning it is not a change (CCID_IOC_SLOT_STATUS teaches it)
 * @reserved0: zero
 * @reserved: zero
 *
 * Reading the events also clears EPOLLIN for this file until the next
 * change.
 */
struct ccid_slot_events {
	__u32 flags;
	__u32 present;
	__u32 reset_pending;
	__u32 hw_errors;
	__u32 changes[CCID_MAX_SLOT_COUNT];
	__u32 generation[CCID_MAX_SLOT_COUNT];
	__u32 known;
	__u32 reserved0;
	__u64 reserved[3];
};

#define CCID_IOC_GET_INFO	_IOR(CCID_IOC_MAGIC, 0x00, struct ccid_reader_info)
#define CCID_IOC_POWER_ON	_IOWR(CCID_IOC_MAGIC, 0x01, struct ccid_power_on)
#define CCID_IOC_POWER_OFF	_IOWR(CCID_IOC_MAGIC, 0x02, struct ccid_slot_status)
#define CCID_IOC_SLOT_STATUS	_IOWR(CCID_IOC_MAGIC, 0x03, struct ccid_slot_status)
#define CCID_IOC_XFR_BLOCK	_IOWR(CCID_IOC_MAGIC, 0x04, struct ccid_xfer)
#define CCID_IOC_SECURE		_IOWR(CCID_IOC_MAGIC, 0x05, struct ccid_xfer)
#define CCID_IOC_GET_PARAMS	_IOWR(CCID_IOC_MAGIC, 0x06, struct ccid_params)
#define CCID_IOC_SET_PARAMS	_IOWR(CCID_IOC_MAGIC, 0x07, struct ccid_params)
#define CCID_IOC_RESET_PARAMS	_IOWR(CCID_IOC_MAGIC, 0x08, struct ccid_params)
#define CCID_IOC_ESCAPE		_IOWR(CCID_IOC_MAGIC, 0x09, struct ccid_xfer)
#define CCID_IOC_ABORT		_IOW(CCID_IOC_MAGIC, 0x0A, struct ccid_abort)
#define CCID_IOC_SLOT_EVENTS	_IOWR(CCID_IOC_MAGIC, 0x0B, struct ccid_slot_events)

#endif /* _UAPI__LINUX_USB_CCID_READER_H */
