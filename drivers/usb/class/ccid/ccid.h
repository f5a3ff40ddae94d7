/* SPDX-License-Identifier: GPL-2.0 */
/*
 * USB CCID smart-card reader driver: shared definitions.
 */
#ifndef _CCID_H
#define _CCID_H

#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/ratelimit.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/usb.h>
#include <linux/wait.h>

#include "ccid_proto.h"
#include "ccid_slot.h"

/* Default timeouts; a caller's timeout_ms replaces them (Secure: see below) */
#define CCID_TIMEOUT_CTRL_MS	5000	/* status, power off, parameters */
#define CCID_TIMEOUT_XFR_MS	10000	/* power on, XfrBlock, Escape */
#define CCID_TIMEOUT_SECURE_MS	90000	/* at least this, or bTimeOut + 10 s */
#define CCID_SECURE_SLACK_MS	10000
/*
 * Time extensions may stretch the wait for an answer up to time_ext_limit
 * seconds (or the command's own timeout, if longer) after the command was
 * sent
 */
#define CCID_TIME_EXT_LIMIT_DEFAULT	300
#define CCID_TIME_EXT_LIMIT_MAX		3600
extern unsigned int ccid_time_ext_limit;
/* Bulk-OUT of one command, and each step of an abort */
#define CCID_OUT_TIMEOUT_MS	5000
#define CCID_ABORT_STEP_MS	1000
/*
 * After a stale answer with the bSeq of a command given up on, the
 * command's own answer may still follow (the stale one was late); when it
 * does not within this time, the reader is out of step
 */
#define CCID_LAG_GRACE_MS	1000
/* Interrupt-IN errors in a row before the driver stops listening */
#define CCID_MAX_INT_ERRORS	16
/*
 * CCID_MIN_TIMEOUT_MS (UAPI) is the shortest timeout a caller may ask
 * for: below it, every command of a slow card would run the recovery
 * ladder and reset the card under every other user of the reader.
 */
/* KOBJ_CHANGE uevents for slot resets: at most this many per interval */
#define CCID_UEVENT_BURST	10
#define CCID_UEVENT_INTERVAL	(5 * HZ)

/* ccid_dev.flags */
#define CCID_FLAG_IN_DONE	0	/* bulk-IN URB completed */
#define CCID_FLAG_OUT_DONE	1	/* bulk-OUT URB completed */
#define CCID_FLAG_CANCEL	2	/* CCID_IOC_ABORT for the busy slot */
#define CCID_FLAG_GONE		3	/* disconnect in progress */
#define CCID_FLAG_RESETTING	4	/* a USB reset is in progress */
#define CCID_FLAG_SUSPENDED	5	/* suspended */

/**
 * struct ccid_stats - error counters shown in sysfs
 */
struct ccid_stats {
	atomic_t timeouts;
	atomic_t aborts;
	atomic_t stale_frames;
	atomic_t time_extensions;
	atomic_t protocol_errors;
	atomic_t clear_halts;
	atomic_t usb_resets;
	atomic_t hw_errors;
	atomic_t slot_changes;
	atomic_t out_of_step;
};

/**
 * struct ccid_dev - one bound CCID interface
 * @kref: the interface and every open file hold a reference
 * @udev: the USB device (referenced)
 * @intf: the interface (referenced)
 * @desc: the validated class descriptor
 * @iface_class: bInterfaceClass (0x0B, or 0xFF for pre-standard readers)
 * @ifnum: bInterfaceNumber, for class requests
 * @in_pipe: bulk-IN
 * @out_pipe: bulk-OUT
 * @out_maxp: wMaxPacketSize of bulk-OUT
 * @buf_len: largest message the driver sends or accepts, header included
 * @io_key: the lockdep class of @io_mutex: one per interface, since one
 *	interface's recovery resets the device, with its io_mutex held,
 *	and every other interface's pre_reset then takes its own
 * @io_mutex: one command on the wire at a time.  Guards @seq,
 *	@abandoned, @out_buf, @in_buf, the bulk URBs, @self_reset and each
 *	slot's recovery memory (struct ccid_slot)
 * @seq: bSeq of the next command
 * @abandoned: bit Q set while bSeq Q belongs to a command the driver gave
 *	up on; an answer carrying it later means the reader is out of step
 * @out_buf: bulk-OUT message buffer, @buf_len bytes
 * @in_buf: bulk-IN message buffer, @in_len bytes
 * @in_len: @buf_len rounded up to whole packets
 * @out_urb: preallocated bulk-OUT URB
 * @in_urb: preallocated bulk-IN URB
 * @self_reset: the driver's own recovery is resetting the device, with
 *	@io_mutex held; pre_reset and post_reset read it, in that task
 * @flags: CCID_FLAG_*; GONE, RESETTING and SUSPENDED are the reader's
 *	state, read through ccid_io_state() only
 * @wait: the command in flight waits here for its URBs or a cancel
 * @lock: guards @busy_slot, the presence, generation and ATR of every
 *	slot (struct ccid_slot), @event_seq, and each file's acknowledged
 *	generations and seen event count
 * @busy_slot: slot of the command in flight, or -1
 * @slots: per-slot state
 * @event_seq: bumped by every presence change, hardware error and reset
 * @poll_wait: poll() waiters: slot events, resets, disconnect
 * @uevent_rs: rate limit of the reset uevents
 * @stats: error counters
 * @quirks: CCID_QUIRK_* in force
 * @int_ep: the interrupt-IN endpoint, or NULL
 * @int_urb: interrupt-IN URB, or NULL when the reader has no such endpoint
 * @int_buf: its buffer
 * @int_errors: interrupt-IN errors in a row (the URB's completion only)
 * @open_mutex: guards @open_count, @unbound and the submission and
 *	poisoning state of @int_urb
 * @open_count: open files; the interrupt URB runs while it is not zero
 * @unbound: set by disconnect: open files hold no PM reference any more
 */
struct ccid_dev {
	struct kref kref;
	struct usb_device *udev;
	struct usb_interface *intf;
	struct ccid_class_desc desc;
	u8 iface_class;
	u8 ifnum;

	unsigned int in_pipe;
	unsigned int out_pipe;
	u16 out_maxp;
	size_t buf_len;

	struct lock_class_key io_key;
	struct mutex io_mutex;		/* one command on the wire */
	u8 seq;
	DECLARE_BITMAP(abandoned, 256);
	u8 *out_buf;
	u8 *in_buf;
	size_t in_len;
	struct urb *out_urb;
	struct urb *in_urb;
	bool self_reset;

	unsigned long flags;
	wait_queue_head_t wait;
	spinlock_t lock;		/* see above: slots, busy_slot, files */
	int busy_slot;
	struct ccid_slot slots[CCID_MAX_SLOTS];
	u32 event_seq;

	wait_queue_head_t poll_wait;
	struct ratelimit_state uevent_rs;
	struct ccid_stats stats;
	u32 quirks;

	struct usb_endpoint_descriptor *int_ep;
	struct urb *int_urb;
	u8 *int_buf;
	unsigned int int_errors;
	struct mutex open_mutex;	/* open_count, unbound, int_urb */
	unsigned int open_count;
	bool unbound;
};

/**
 * ccid_io_state() - whether the reader can take a command now
 * @dev: the reader
 *
 * The one check of the reader's state.  -ENODEV means unplugged (or
 * unbound) and nothing else: a daemon drops the reader on it.  A reset or
 * a suspend in progress is -EIO: the reader is still there.
 *
 * Return: 0, -EIO or -ENODEV.
 */
static inline int ccid_io_state(struct ccid_dev *dev)
{
	if (test_bit(CCID_FLAG_GONE, &dev->flags))
		return -ENODEV;
	if (test_bit(CCID_FLAG_RESETTING, &dev->flags) ||
	    test_bit(CCID_FLAG_SUSPENDED, &dev->flags))
		return -EIO;
	return 0;
}

/**
 * struct ccid_file - one open file
 * @dev: the reader
 * @acked_gen: per slot, the reset generation this file last acknowledged
 *	(under dev->lock)
 * @seen_event_seq: event_seq when this file last read the events
 *	(under dev->lock)
 *
 * This is the only per-file state: commands, buffers and the card session
 * belong to the reader, shared by every file.
 */
struct ccid_file {
	struct ccid_dev *dev;
	u32 acked_gen[CCID_MAX_SLOTS];
	u32 seen_event_seq;
};

/**
 * struct ccid_cmd - one PC_to_RDR command and its answer
 * @hdr: the header fields
 * @tx: abData, hdr.len bytes, copied into the message buffer under
 *	io_mutex (never user memory)
 * @rx: where abData of the answer goes, @rx_size bytes (never user memory)
 * @rx_size: its size
 * @timeout_ms: how long to wait for the answer
 * @rsp: the answer's header; rsp.len may exceed @rx_size, then only
 *	@rx_size bytes were copied
 */
struct ccid_cmd {
	struct ccid_cmd_hdr hdr;
	const u8 *tx;
	u8 *rx;
	size_t rx_size;
	unsigned int timeout_ms;
	struct ccid_rsp rsp;
};

extern struct usb_driver ccid_driver;

void ccid_delete(struct kref *kref);
int ccid_alloc_io(struct ccid_dev *dev);
void ccid_free_io(struct ccid_dev *dev);
int ccid_transact(struct ccid_dev *dev, struct ccid_cmd *cmd);
int ccid_bad_answer(struct ccid_dev *dev, u8 slot, const char *why);
int ccid_cancel(struct ccid_dev *dev, u8 slot);
long ccid_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

#endif /* _CCID_H */
