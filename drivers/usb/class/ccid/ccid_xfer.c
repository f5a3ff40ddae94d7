// SPDX-License-Identifier: GPL-2.0
/*
 * USB CCID smart-card reader driver: the wire engine.
 *
 * One command is on the wire at a time, under io_mutex.  It is sent on
 * bulk-OUT, then bulk-IN is read until the frame carrying the command's
 * bSeq and bSlot arrives.  Older answers are dropped, time extensions
 * stretch the wait up to a ceiling, and a command that is given up
 * (timeout, signal or CCID_IOC_ABORT) is aborted in the reader with the
 * CCID Abort procedure before the caller gets its errno.
 */

#include <linux/jiffies.h>
#include <linux/minmax.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "ccid.h"

static void ccid_urb_complete(struct urb *urb)
{
	struct ccid_dev *dev = urb->context;

	set_bit(urb == dev->in_urb ? CCID_FLAG_IN_DONE : CCID_FLAG_OUT_DONE,
		&dev->flags);
	wake_up(&dev->wait);
}

int ccid_alloc_io(struct ccid_dev *dev)
{
	dev->out_buf = kmalloc(dev->buf_len, GFP_KERNEL);
	dev->in_buf = kmalloc(dev->in_len, GFP_KERNEL);
	dev->out_urb = usb_alloc_urb(0, GFP_KERNEL);
	dev->in_urb = usb_alloc_urb(0, GFP_KERNEL);
	if (!dev->out_buf || !dev->in_buf || !dev->out_urb || !dev->in_urb)
		return -ENOMEM;
	return 0;
}

void ccid_free_io(struct ccid_dev *dev)
{
	usb_free_urb(dev->in_urb);
	usb_free_urb(dev->out_urb);
	kfree(dev->in_buf);
	kfree(dev->out_buf);
}

static bool ccid_done_or_cancel(struct ccid_dev *dev, int bit)
{
	return test_bit(bit, &dev->flags) ||
	       test_bit(CCID_FLAG_CANCEL, &dev->flags);
}

/*
 * Wait for a URB to complete.  @interruptible waits also end on a signal
 * or on CCID_IOC_ABORT; the URB is killed on every early exit.
 */
static int ccid_wait_urb(struct ccid_dev *dev, struct urb *urb, int bit,
			 unsigned long timeout, bool interruptible)
{
	long left;

	if (interruptible)
		left = wait_event_interruptible_timeout(dev->wait,
							ccid_done_or_cancel(dev, bit),
							timeout);
	else
		left = wait_event_timeout(dev->wait,
					  test_bit(bit, &dev->flags), timeout);

	if (test_bit(bit, &dev->flags))
		return urb->status;

	usb_kill_urb(urb);
	if (left < 0)
		return -EINTR;
	if (left > 0)
		return -ECANCELED;
	return -ETIMEDOUT;
}

static int ccid_send(struct ccid_dev *dev, size_t len)
{
	struct urb *urb = dev->out_urb;
	int ret;

	usb_fill_bulk_urb(urb, dev->udev, dev->out_pipe, dev->out_buf, len,
			  ccid_urb_complete, dev);
	urb->transfer_flags = len % dev->out_maxp ? 0 : URB_ZERO_PACKET;
	clear_bit(CCID_FLAG_OUT_DONE, &dev->flags);
	ret = usb_submit_urb(urb, GFP_KERNEL);
	if (ret)
		return ret;
	ret = ccid_wait_urb(dev, urb, CCID_FLAG_OUT_DONE,
			    msecs_to_jiffies(CCID_OUT_TIMEOUT_MS), false);
	if (!ret && urb->actual_length != len)
		ret = -EIO;
	return ret;
}

static int ccid_recv(struct ccid_dev *dev, unsigned long timeout,
		     bool interruptible, size_t *actual)
{
	struct urb *urb = dev->in_urb;
	int ret;

	usb_fill_bulk_urb(urb, dev->udev, dev->in_pipe, dev->in_buf,
			  dev->in_len, ccid_urb_complete, dev);
	clear_bit(CCID_FLAG_IN_DONE, &dev->flags);
	ret = usb_submit_urb(urb, GFP_KERNEL);
	if (ret)
		return ret;
	ret = ccid_wait_urb(dev, urb, CCID_FLAG_IN_DONE, timeout,
			    interruptible);
	*actual = urb->actual_length;
	return ret;
}

/* Commands the driver sends on its own stay off the user's slot state */
static bool ccid_io_blocked(struct ccid_dev *dev)
{
	return test_bit(CCID_FLAG_GONE, &dev->flags) ||
	       test_bit(CCID_FLAG_RESETTING, &dev->flags) ||
	       test_bit(CCID_FLAG_SUSPENDED, &dev->flags);
}

/*
 * Read bulk-IN, without giving way to signals, until the answer to the
 * command @type with @seq arrives; everything else is dropped.  Used by
 * the Abort procedure and by the commands recovery sends itself.  With
 * @any_frame, a garbled frame that carries @slot and @seq also counts as
 * the answer: the reader is alive, which is all the driver's own commands
 * ask (QEMU 7.2 answers ResetParameters with a bad dwLength).  The Abort
 * cannot take that: it shares its bSeq with the command it aborts.
 */
static int ccid_drain_for(struct ccid_dev *dev, u8 type, u8 slot, u8 seq,
			  bool any_frame)
{
	unsigned long step = msecs_to_jiffies(CCID_ABORT_STEP_MS);
	struct ccid_rsp rsp;
	const char *why;
	size_t actual;
	int i, ret;

	for (i = 0; i < CCID_MAX_STALE; i++) {
		ret = ccid_recv(dev, step, false, &actual);
		if (ret)
			return ret;
		if (actual <= dev->buf_len &&
		    ccid_check_rsp(dev->in_buf, actual, type, slot, seq, &rsp,
				   &why) == CCID_RSP_MATCH) {
			ccid_note_presence(dev, slot, rsp.status);
			return 0;
		}
		if (any_frame && actual >= CCID_HDR_SIZE &&
		    dev->in_buf[CCID_OFF_SLOT] == slot &&
		    dev->in_buf[CCID_OFF_SEQ] == seq)
			return 0;
	}
	return -EPROTO;
}

/* A header-only command of the driver's own, e.g. IccPowerOff */
static int ccid_simple_cmd(struct ccid_dev *dev, u8 type, u8 slot)
{
	u8 seq = dev->seq++;
	int ret;

	if (ccid_io_blocked(dev))
		return -ENODEV;
	ccid_build_hdr(dev->out_buf, type, 0, slot, seq, 0, 0, 0);
	ret = ccid_send(dev, CCID_HDR_SIZE);
	return ret ?: ccid_drain_for(dev, type, slot, seq, true);
}

/*
 * The CCID Abort procedure (CCID 1.1, 5.3.1) for the command with @seq
 * on @slot: the ABORT class request, PC_to_RDR_Abort with the same bSlot
 * and bSeq, then bulk-IN is drained until the matching SlotStatus.  Every
 * step is bounded and none of them can be interrupted, so a caller that
 * was killed still leaves the reader idle.
 *
 * Return: 0 when the reader confirmed the abort, else a negative errno.
 */
static int ccid_abort_cmd(struct ccid_dev *dev, u8 slot, u8 seq)
{
	int ret;

	if (ccid_io_blocked(dev))
		return -ENODEV;

	atomic_inc(&dev->stats.aborts);

	/* Readers that do not implement the request stall it: go on. */
	usb_control_msg(dev->udev, usb_sndctrlpipe(dev->udev, 0),
			CCID_REQ_ABORT,
			USB_DIR_OUT | USB_TYPE_CLASS | USB_RECIP_INTERFACE,
			seq << 8 | slot, dev->ifnum, NULL, 0,
			CCID_ABORT_STEP_MS);

	ccid_build_hdr(dev->out_buf, CCID_PC_ABORT, 0, slot, seq, 0, 0, 0);
	ret = ccid_send(dev, CCID_HDR_SIZE);
	if (!ret)
		ret = ccid_drain_for(dev, CCID_PC_ABORT, slot, seq, false);
	if (ret && test_bit(CCID_FLAG_GONE, &dev->flags))
		return -ENODEV;
	return ret;
}

/*
 * Last resort: reset the device.  pre_reset and post_reset see
 * self_reset and leave io_mutex, which this task holds, alone; post_reset
 * starts a new generation on every slot.
 */
static int ccid_usb_reset(struct ccid_dev *dev)
{
	int ret;

	atomic_inc(&dev->stats.usb_resets);
	dev_warn_ratelimited(&dev->intf->dev,
			     "reader does not answer: resetting it\n");

	ret = usb_lock_device_for_reset(dev->udev, dev->intf);
	if (ret)
		return ret;
	dev->self_reset = true;
	ret = usb_reset_device(dev->udev);
	dev->self_reset = false;
	usb_unlock_device(dev->udev);
	if (ret)
		return ret;

	/* Does it answer now? */
	return ccid_simple_cmd(dev, CCID_PC_GET_SLOT_STATUS, 0);
}

/* The last step of the ladder; the USB reset starts every slot anew */
static int ccid_recover_by_reset(struct ccid_dev *dev, int reason)
{
	int ret;

	dev->abort_only = 0;
	ret = ccid_usb_reset(dev);

	if (ret == -ENODEV || test_bit(CCID_FLAG_GONE, &dev->flags))
		return -ENODEV;
	if (ret)
		dev_err_ratelimited(&dev->intf->dev,
				    "reader still dead after a reset: %d\n", ret);
	return reason;
}

/*
 * The command with @seq on @slot went wrong (@reason).  Walk the ladder
 * and stop at the first step that brings the reader back:
 *
 *  1. the CCID Abort procedure;
 *  2. clear halt on both bulk endpoints, then the Abort again;
 *  3. usb_reset_device().
 *
 * After a timeout or a garbled answer the card's state is unknown: the
 * slot is powered off, its parameters are reset and it starts a new
 * generation; a reader that answers the Abort but not those two, twice
 * in a row with no answer to a command in between, is reset as in step
 * 3.  A command that was only interrupted or cancelled and whose Abort
 * worked leaves the slot as it is.
 *
 * Return: @reason, or -ENODEV when the reader went away meanwhile.
 */
static int ccid_recover(struct ccid_dev *dev, u8 slot, u8 seq, int reason)
{
	bool card_lost = reason != -EINTR && reason != -ECANCELED;
	struct device *d = &dev->intf->dev;
	int ret;

	ret = ccid_abort_cmd(dev, slot, seq);
	if (ret && ret != -ENODEV) {
		atomic_inc(&dev->stats.clear_halts);
		dev_warn_ratelimited(d, "slot %u: abort failed (%d), clearing halts\n",
				     slot, ret);
		usb_clear_halt(dev->udev, dev->in_pipe);
		usb_clear_halt(dev->udev, dev->out_pipe);
		ret = ccid_abort_cmd(dev, slot, seq);
	}
	if (ret == -ENODEV)
		return -ENODEV;
	if (ret)
		return ccid_recover_by_reset(dev, reason);

	if (card_lost) {
		const char *what = "power off";

		/* Any answer will do, failed or garbled: the reader is alive */
		ret = ccid_simple_cmd(dev, CCID_PC_POWER_OFF, slot);
		if (!ret) {
			what = "parameter reset";
			ret = ccid_simple_cmd(dev, CCID_PC_RESET_PARAMS, slot);
		}
		if (ret == -ENODEV)
			return -ENODEV;
		if (ret) {
			dev_warn_ratelimited(d, "slot %u: abort answered, but not a %s (%d)\n",
					     slot, what, ret);
			/*
			 * Once may be a reader still busy with the card (QEMU's
			 * is): the new generation makes every user power the
			 * card on again.  Twice in a row, the reader answers
			 * nothing but Aborts: only a reset brings it back.
			 */
			if (++dev->abort_only >= CCID_MAX_ABORT_ONLY)
				return ccid_recover_by_reset(dev, reason);
		} else {
			dev->abort_only = 0;
		}
		ccid_reset_slots(dev, BIT(slot));
	}
	return reason;
}

/* A URB came back with an error: what the caller should see */
static int ccid_usb_error(struct ccid_dev *dev, const struct ccid_cmd *cmd,
			  u8 seq, unsigned int pipe, int err)
{
	struct device *d = &dev->intf->dev;

	if (test_bit(CCID_FLAG_GONE, &dev->flags))
		return -ENODEV;
	if (test_bit(CCID_FLAG_RESETTING, &dev->flags) ||
	    test_bit(CCID_FLAG_SUSPENDED, &dev->flags))
		return -EIO;

	switch (err) {
	case -ETIMEDOUT:
		atomic_inc(&dev->stats.timeouts);
		dev_warn_ratelimited(d, "slot %u: reader does not take command 0x%02x\n",
				     cmd->slot, cmd->type);
		return ccid_recover(dev, cmd->slot, seq, -ETIMEDOUT);
	case -EPIPE:
		atomic_inc(&dev->stats.clear_halts);
		dev_warn_ratelimited(d, "bulk-%s endpoint stalled\n",
				     usb_pipein(pipe) ? "IN" : "OUT");
		usb_clear_halt(dev->udev, pipe);
		return ccid_recover(dev, cmd->slot, seq, -EIO);
	case -EOVERFLOW:
		ccid_bad_answer(dev, cmd->slot, "more than a message");
		return ccid_recover(dev, cmd->slot, seq, -EPROTO);
	case -ENODEV:
	case -ESHUTDOWN:
	case -EPERM:
		return -ENODEV;
	default:
		return usb_translate_errors(err);
	}
}

/**
 * ccid_bad_answer() - count and report an answer the driver cannot use
 * @dev: the reader
 * @slot: the slot the command was for
 * @why: what is wrong with it
 *
 * Return: -EPROTO
 */
int ccid_bad_answer(struct ccid_dev *dev, u8 slot, const char *why)
{
	atomic_inc(&dev->stats.protocol_errors);
	dev_warn_ratelimited(&dev->intf->dev, "slot %u: bad answer: %s\n",
			     slot, why);
	return -EPROTO;
}

static void ccid_set_busy(struct ccid_dev *dev, int slot)
{
	spin_lock_irq(&dev->lock);
	dev->busy_slot = slot;
	clear_bit(CCID_FLAG_CANCEL, &dev->flags);
	spin_unlock_irq(&dev->lock);
}

/**
 * ccid_cancel() - cancel the command in flight on a slot
 * @dev: the reader
 * @slot: the slot
 *
 * Called without io_mutex, which the command in flight holds.
 *
 * Return: 0 when a command was in flight and will be aborted, -ENOENT
 * when the slot was idle.
 */
int ccid_cancel(struct ccid_dev *dev, u8 slot)
{
	int ret = -ENOENT;

	spin_lock_irq(&dev->lock);
	if (dev->busy_slot == slot) {
		set_bit(CCID_FLAG_CANCEL, &dev->flags);
		wake_up(&dev->wait);
		ret = 0;
	}
	spin_unlock_irq(&dev->lock);
	return ret;
}

static int ccid_timed_out(struct ccid_dev *dev, const struct ccid_cmd *cmd,
			  u8 seq, const char *what)
{
	atomic_inc(&dev->stats.timeouts);
	dev_warn_ratelimited(&dev->intf->dev, "slot %u: command 0x%02x: %s\n",
			     cmd->slot, cmd->type, what);
	return ccid_recover(dev, cmd->slot, seq, -ETIMEDOUT);
}

/*
 * Read bulk-IN until the answer to the command with @seq arrives.  Stale
 * answers do not extend the wait; a time extension restarts it with the
 * timeout multiplied by bError, but never past max(timeout,
 * time_ext_limit) after the command was sent.
 */
static int ccid_read_answer(struct ccid_dev *dev, struct ccid_cmd *cmd,
			    u8 seq)
{
	unsigned long base = msecs_to_jiffies(cmd->timeout_ms);
	unsigned int limit_s = clamp_val(READ_ONCE(ccid_time_ext_limit), 1,
					 CCID_TIME_EXT_LIMIT_MAX);
	unsigned long now = jiffies, wait_end, hard_end;
	unsigned int stale = 0, extensions = 0;
	enum ccid_rsp_verdict v;
	const char *why;
	size_t actual;
	int ret;

	wait_end = now + base;
	hard_end = now + max(base, msecs_to_jiffies(limit_s * MSEC_PER_SEC));

	for (;;) {
		now = jiffies;
		if (time_after_eq(now, wait_end))
			ret = -ETIMEDOUT;
		else
			ret = ccid_recv(dev, wait_end - now, true, &actual);
		if (ret == -ETIMEDOUT)
			return ccid_timed_out(dev, cmd, seq,
					      extensions && wait_end == hard_end ?
					      "time extensions past the limit" :
					      "no answer");
		if (ret == -EINTR || ret == -ECANCELED)
			return ccid_recover(dev, cmd->slot, seq, ret);
		if (ret)
			return ccid_usb_error(dev, cmd, seq, dev->in_pipe, ret);

		if (actual > dev->buf_len) {
			why = "message longer than dwMaxCCIDMessageLength";
			v = CCID_RSP_BAD;
		} else {
			v = ccid_check_rsp(dev->in_buf, actual, cmd->type,
					   cmd->slot, seq, &cmd->rsp, &why);
		}

		switch (v) {
		case CCID_RSP_MATCH:
			dev->abort_only = 0;
			cmd->data = dev->in_buf + CCID_HDR_SIZE;
			ccid_note_presence(dev, cmd->slot, cmd->rsp.status);
			return 0;
		case CCID_RSP_STALE:
			atomic_inc(&dev->stats.stale_frames);
			dev_dbg_ratelimited(&dev->intf->dev,
					    "dropped answer to bSeq %u\n",
					    cmd->rsp.seq);
			if (++stale < CCID_MAX_STALE)
				continue;
			why = "too many stale answers";
			break;
		case CCID_RSP_TIME_EXT:
			atomic_inc(&dev->stats.time_extensions);
			extensions++;
			/* bError multiplies the timeout; 0 and 0xff keep it */
			wait_end = jiffies + base *
				(cmd->rsp.error && cmd->rsp.error != 0xff ?
				 cmd->rsp.error : 1);
			if (time_after(wait_end, hard_end))
				wait_end = hard_end;
			continue;
		case CCID_RSP_BAD:
			break;
		}

		ccid_bad_answer(dev, cmd->slot, why);
		return ccid_recover(dev, cmd->slot, seq, -EPROTO);
	}
}

/**
 * ccid_transact() - send one command and wait for its answer
 * @dev: the reader, with io_mutex held
 * @cmd: the command; its data is already in out_buf
 *
 * Return: 0 when the reader answered (the answer may still report a
 * failure: see ccid_rsp_errno()), or a negative errno: -ETIMEDOUT,
 * -EINTR and -ECANCELED after the command was aborted in the reader,
 * -EPROTO for a garbled answer, -ENODEV once the reader is gone.
 */
int ccid_transact(struct ccid_dev *dev, struct ccid_cmd *cmd)
{
	u8 seq = dev->seq++;
	int ret;

	lockdep_assert_held(&dev->io_mutex);

	if (test_bit(CCID_FLAG_GONE, &dev->flags))
		return -ENODEV;
	if (test_bit(CCID_FLAG_SUSPENDED, &dev->flags))
		return -EIO;

	ccid_build_hdr(dev->out_buf, cmd->type, cmd->len, cmd->slot, seq,
		       cmd->p[0], cmd->p[1], cmd->p[2]);

	ccid_set_busy(dev, cmd->slot);
	ret = ccid_send(dev, CCID_HDR_SIZE + cmd->len);
	if (ret)
		ret = ccid_usb_error(dev, cmd, seq, dev->out_pipe, ret);
	else
		ret = ccid_read_answer(dev, cmd, seq);
	ccid_set_busy(dev, -1);
	return ret;
}
