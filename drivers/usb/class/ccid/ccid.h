/* SPDX-License-Identifier: GPL-2.0 */
/*
 * USB CCID smart-card reader driver: shared definitions.
 */
#ifndef _CCID_H
#define _CCID_H

#include <linux/atomic.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/usb.h>
#include <linux/wait.h>

#include "ccid_proto.h"

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
/* Answers to older commands dropped before a command gives up */
#define CCID_MAX_STALE		16
/* Recoveries in a row that only the Abort answered before a USB reset */
#define CCID_MAX_ABORT_ONLY	2
/* Interrupt-IN errors in a row before the driver stops listening */
#define CCID_MAX_INT_ERRORS	16

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
 * @io_mutex: serializes commands; protects @seq, the buffers, the URBs
 *	and @disconnected
 * @disconnected: set once under @io_mutex by disconnect, after
 *	CCID_FLAG_GONE, which lockless readers test
 * @seq: bSeq of the next command
 * @out_buf: bulk-OUT message buffer, @buf_len bytes
 * @in_buf: bulk-IN message buffer, @in_len bytes
 * @in_len: @buf_len rounded up to whole packets
 * @out_urb: preallocated bulk-OUT URB
 * @in_urb: preallocated bulk-IN URB
 * @flags: CCID_FLAG_*
 * @wait: the command in flight waits here for its URBs or a cancel
 * @lock: protects @busy_slot against CCID_IOC_ABORT
 * @busy_slot: slot of the command in flight, or -1
 * @poll_wait: poll() waiters: slot events, resets, disconnect
 * @stats: error counters
 * @quirks: CCID_QUIRK_* in force
 * @int_ep: the interrupt-IN endpoint, or NULL
 * @int_urb: interrupt-IN URB, or NULL when the reader has no such endpoint
 * @int_buf: its buffer
 * @open_mutex: protects @open_count and @unbound
 * @open_count: open files; the interrupt URB runs while it is not zero
 * @unbound: set by disconnect: open files hold no PM reference any more
 * @int_errors: interrupt-IN errors in a row
 * @self_reset: the driver's own recovery is resetting the device, with
 *	io_mutex held; set and read only by that task
 * @abort_only: under @io_mutex: recoveries in a row in which the reader
 *	answered the Abort but not the power off or parameter reset after it
 * @present: under @lock: bit N set while slot N holds a card
 * @known: under @lock: bit N set once slot N's presence was learnt
 * @noted: under @lock: bit N set when a bmICCStatus showed slot N's last
 *	change before a NotifySlotChange did; its changed bit then repeats it
 * @changes: under @lock: per slot, insertions and removals seen
 * @gen: under @lock: per slot reset generation
 * @event_seq: under @lock: bumped by every presence change and reset
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

	struct mutex io_mutex;		/* one command at a time */
	bool disconnected;
	u8 seq;
	u8 *out_buf;
	u8 *in_buf;
	size_t in_len;
	struct urb *out_urb;
	struct urb *in_urb;

	unsigned long flags;
	wait_queue_head_t wait;
	spinlock_t lock;		/* busy_slot vs. CCID_IOC_ABORT */
	int busy_slot;

	wait_queue_head_t poll_wait;
	struct ccid_stats stats;
	u32 quirks;

	struct usb_endpoint_descriptor *int_ep;
	struct urb *int_urb;
	u8 *int_buf;
	struct mutex open_mutex;	/* open_count */
	unsigned int open_count;
	bool unbound;
	unsigned int int_errors;
	bool self_reset;
	unsigned int abort_only;

	u32 present;
	u32 known;
	u32 noted;
	u32 changes[CCID_MAX_SLOTS];
	u32 gen[CCID_MAX_SLOTS];
	u32 event_seq;
};

/**
 * struct ccid_file - one open file
 * @dev: the reader
 * @acked_gen: per slot, the reset generation this file last acknowledged
 *	(under dev->lock)
 * @seen_event_seq: event_seq when this file last read the events
 *	(under dev->lock)
 */
struct ccid_file {
	struct ccid_dev *dev;
	u32 acked_gen[CCID_MAX_SLOTS];
	u32 seen_event_seq;
};

/**
 * struct ccid_cmd - one PC_to_RDR command and its answer
 * @type: bMessageType
 * @slot: bSlot
 * @p: header bytes 7..9
 * @len: dwLength; the data is already at out_buf + CCID_HDR_SIZE
 * @timeout_ms: how long to wait for the answer
 * @rsp: the answer's header
 * @data: the answer's abData (in_buf + CCID_HDR_SIZE), rsp.len bytes
 */
struct ccid_cmd {
	u8 type;
	u8 slot;
	u8 p[3];
	u32 len;
	unsigned int timeout_ms;
	struct ccid_rsp rsp;
	const u8 *data;
};

extern struct usb_driver ccid_driver;

void ccid_delete(struct kref *kref);
int ccid_alloc_io(struct ccid_dev *dev);
void ccid_free_io(struct ccid_dev *dev);
int ccid_transact(struct ccid_dev *dev, struct ccid_cmd *cmd);
int ccid_bad_answer(struct ccid_dev *dev, u8 slot, const char *why);
int ccid_cancel(struct ccid_dev *dev, u8 slot);
void ccid_reset_slots(struct ccid_dev *dev, u32 mask);
void ccid_note_presence(struct ccid_dev *dev, u8 slot, u8 status);
long ccid_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

#endif /* _CCID_H */
