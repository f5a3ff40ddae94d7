/* SPDX-License-Identifier: GPL-2.0 */
/*
 * USB CCID smart-card reader driver: the state of one slot.
 */
#ifndef _CCID_SLOT_H
#define _CCID_SLOT_H

#include <linux/types.h>
#include <linux/usb/ccid_reader.h>

#include "ccid_proto.h"

struct ccid_dev;
struct ccid_file;

/*
 * The steps of the recovery ladder, in the order they are climbed.  A
 * slot remembers where the next recovery starts (see ccid_recover()).
 */
enum ccid_step {
	CCID_STEP_ABORT,	/* the CCID Abort procedure */
	CCID_STEP_CLEAR_HALT,	/* clear halt on both bulk pipes, then Abort */
	CCID_STEP_RESET,	/* usb_reset_device() */
};

/**
 * struct ccid_slot - one slot of a reader, and the card in it
 * @presence: whether a card is there, as answers and NotifySlotChange
 *	told (the rules are ccid_presence_from_*() in ccid_proto.c)
 * @changes: insertions and removals seen
 * @gen: reset generation: bumped whenever the card lost its state
 * @atr: the ATR of the last successful power-on, @atr_len bytes; a new
 *	generation drops it
 * @atr_len: its length, 0 when there is none
 * @ladder: the recovery step the next failure on this slot starts at
 * @failed_card_path: the failure that set @ladder was on the card path
 *	(XfrBlock, Secure); only an answer on that path proves recovery
 *
 * @presence to @atr_len are guarded by ccid_dev.lock (the interrupt-IN
 * completion and answers update presence); @ladder and
 * @failed_card_path by ccid_dev.io_mutex (only the command in flight
 * recovers).
 */
struct ccid_slot {
	struct ccid_presence presence;
	u32 changes;
	u32 gen;
	u8 atr[CCID_MAX_ATR_SIZE];
	u8 atr_len;
	u8 ladder;
	bool failed_card_path;
};

void ccid_note_presence(struct ccid_dev *dev, u8 slot, u8 status);
void ccid_int_presence(struct ccid_dev *dev, u8 slot, bool present,
		       bool changed);
void ccid_reset_slots(struct ccid_dev *dev, u32 mask);
void ccid_set_atr(struct ccid_dev *dev, u8 slot, const u8 *atr, u8 len);
int ccid_check_gen(struct ccid_file *f, u8 slot);
void ccid_ack_gen(struct ccid_file *f, u8 slot);

#endif /* _CCID_SLOT_H */
