// SPDX-License-Identifier: GPL-2.0
/*
 * USB CCID smart-card reader driver: slot state.
 *
 * What the driver knows of each slot: whether a card is there (learnt
 * from answers and from NotifySlotChange), how often it came and went,
 * the reset generation that tells open files the card lost its state,
 * and the ATR of the last power-on.
 */

#include <linux/kobject.h>
#include <linux/ratelimit.h>
#include <linux/spinlock.h>
#include <linux/string.h>

#include "ccid.h"

/* A slot's card came or went @n times: count it.  Under dev->lock. */
static void ccid_count_change(struct ccid_dev *dev, u8 slot, unsigned int n)
{
	dev->slots[slot].changes += n;
	dev->event_seq++;
	atomic_add(n, &dev->stats.slot_changes);
}

/**
 * ccid_note_presence() - learn a slot's card presence from an answer
 * @dev: the reader
 * @slot: the slot an answer came for
 * @status: its bStatus
 */
void ccid_note_presence(struct ccid_dev *dev, u8 slot, u8 status)
{
	unsigned long flags;
	unsigned int n;

	spin_lock_irqsave(&dev->lock, flags);
	n = ccid_presence_from_answer(&dev->slots[slot].presence, status);
	if (n) {
		ccid_count_change(dev, slot, n);
		wake_up_interruptible(&dev->poll_wait);
	}
	spin_unlock_irqrestore(&dev->lock, flags);
}

/**
 * ccid_int_presence() - a NotifySlotChange for a slot
 * @dev: the reader, with dev->lock held
 * @slot: the slot
 * @present: whether a card is there now
 * @changed: whether the reader saw a change since its last message
 */
void ccid_int_presence(struct ccid_dev *dev, u8 slot, bool present,
		       bool changed)
{
	unsigned int n;

	lockdep_assert_held(&dev->lock);

	n = ccid_presence_from_notify(&dev->slots[slot].presence, present,
				      changed);
	if (n)
		ccid_count_change(dev, slot, n);
}

/**
 * ccid_reset_slots() - start a new generation on slots whose card was reset
 * @dev: the reader
 * @mask: bit N for slot N
 *
 * The slots' ATRs are dropped.  Files that have not acknowledged the new
 * generation get -ECONNRESET for the slot until they power the card on
 * again or read the events; poll() reports EPOLLPRI, and a KOBJ_CHANGE
 * uevent tells udev (rate-limited: a reader that keeps failing must not
 * flood udev; poll() still sees every reset).
 */
void ccid_reset_slots(struct ccid_dev *dev, u32 mask)
{
	char event[] = "CCID_EVENT=reset";
	char slots[24];
	char *envp[3] = { event, slots, NULL };
	unsigned int i;

	spin_lock_irq(&dev->lock);
	for (i = 0; i <= dev->desc.max_slot_index; i++) {
		if (!(mask & BIT(i)))
			continue;
		dev->slots[i].gen++;
		dev->slots[i].atr_len = 0;
	}
	dev->event_seq++;
	spin_unlock_irq(&dev->lock);

	wake_up_interruptible(&dev->poll_wait);
	if (!__ratelimit(&dev->uevent_rs))
		return;
	snprintf(slots, sizeof(slots), "CCID_SLOTS=0x%x", mask);
	kobject_uevent_env(&dev->intf->dev.kobj, KOBJ_CHANGE, envp);
}

/**
 * ccid_set_atr() - keep the ATR of a successful power-on
 * @dev: the reader
 * @slot: the slot
 * @atr: the ATR
 * @len: its length, at most CCID_MAX_ATR_SIZE
 */
void ccid_set_atr(struct ccid_dev *dev, u8 slot, const u8 *atr, u8 len)
{
	struct ccid_slot *s = &dev->slots[slot];

	spin_lock_irq(&dev->lock);
	memcpy(s->atr, atr, len);
	s->atr_len = len;
	spin_unlock_irq(&dev->lock);
}

/**
 * ccid_check_gen() - refuse card commands on a slot reset behind a file
 * @f: the open file
 * @slot: the slot
 *
 * A slot that was reset since this file last acknowledged it refuses card
 * commands: the card lost any state (a verified PIN, a selected
 * application) the file may rely on.  Called with io_mutex held, so that
 * the driver's own recovery, which runs under it, cannot start a new
 * generation between this check and the command; a reset or a resume
 * that starts one meanwhile fails the command on its own.
 *
 * Return: 0, or -ECONNRESET.
 */
int ccid_check_gen(struct ccid_file *f, u8 slot)
{
	struct ccid_dev *dev = f->dev;
	int ret = 0;

	lockdep_assert_held(&dev->io_mutex);

	spin_lock_irq(&dev->lock);
	if (f->acked_gen[slot] != dev->slots[slot].gen)
		ret = -ECONNRESET;
	spin_unlock_irq(&dev->lock);
	return ret;
}

/**
 * ccid_ack_gen() - a file takes note of a slot's current generation
 * @f: the open file
 * @slot: the slot
 */
void ccid_ack_gen(struct ccid_file *f, u8 slot)
{
	spin_lock_irq(&f->dev->lock);
	f->acked_gen[slot] = f->dev->slots[slot].gen;
	spin_unlock_irq(&f->dev->lock);
}
