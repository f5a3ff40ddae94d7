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

/* A URB came back with an error: what the caller should see */
static int ccid_usb_error(struct ccid_dev *dev, unsigned int pipe, int err)
{
	if (test_bit(CCID_FLAG_GONE, &dev->flags))
		return -ENODEV;
	if (test_bit(CCID_FLAG_RESETTING, &dev->flags))
		return -EIO;

	switch (err) {
	case -ETIMEDOUT:
		atomic_inc(&dev->stats.timeouts);
		dev_warn_ratelimited(&dev->intf->dev,
				     "reader does not accept a command\n");
		return -ETIMEDOUT;
	case -EPIPE:
		dev_warn_ratelimited(&dev->intf->dev,
				     "bulk-%s endpoint stalled\n",
				     usb_pipein(pipe) ? "IN" : "OUT");
		usb_clear_halt(dev->udev, pipe);
		return -EIO;
	case -EOVERFLOW:
		atomic_inc(&dev->stats.protocol_errors);
		dev_warn_ratelimited(&dev->intf->dev,
				     "reader sent more than a message\n");
		return -EPROTO;
	case -ENODEV:
	case -ESHUTDOWN:
	case -EPERM:
		return -ENODEV;
	default:
		return usb_translate_errors(err);
	}
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
	unsigned long step = msecs_to_jiffies(CCID_ABORT_STEP_MS);
	struct ccid_rsp rsp;
	const char *why;
	size_t actual;
	int i, ret;

	if (test_bit(CCID_FLAG_GONE, &dev->flags) ||
	    test_bit(CCID_FLAG_RESETTING, &dev->flags))
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

	for (i = 0; !ret && i < CCID_MAX_STALE; i++) {
		ret = ccid_recv(dev, step, false, &actual);
		/* Anything but the SlotStatus for this bSeq is dropped. */
		if (!ret && ccid_check_rsp(dev->in_buf, actual, CCID_PC_ABORT,
					   slot, seq, &rsp, &why) ==
			    CCID_RSP_MATCH)
			return 0;
	}
	if (test_bit(CCID_FLAG_GONE, &dev->flags))
		return -ENODEV;
	return ret ?: -EPROTO;
}

/*
 * Give up the command with @seq: abort it in the reader, say so once.
 * Return: @why, or -ENODEV when the reader went away meanwhile.
 */
static int ccid_give_up(struct ccid_dev *dev, u8 slot, u8 seq, int why)
{
	int ret = ccid_abort_cmd(dev, slot, seq);

	if (ret == -ENODEV)
		return ret;
	if (ret)
		dev_warn_ratelimited(&dev->intf->dev,
				     "slot %u: abort after %d failed: %d\n",
				     slot, why, ret);
	return why;
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
	return ccid_give_up(dev, cmd->slot, seq, -ETIMEDOUT);
}

/*
 * Read bulk-IN until the answer to the command with @seq arrives.  Stale
 * answers do not extend the wait; a time extension restarts it with the
 * timeout multiplied by bError, but never past max(timeout,
 * CCID_TIME_EXT_LIMIT_MS) after the command was sent.
 */
static int ccid_read_answer(struct ccid_dev *dev, struct ccid_cmd *cmd,
			    u8 seq)
{
	unsigned long base = msecs_to_jiffies(cmd->timeout_ms);
	unsigned long now = jiffies, wait_end, hard_end;
	unsigned int stale = 0, extensions = 0;
	enum ccid_rsp_verdict v;
	const char *why;
	size_t actual;
	int ret;

	wait_end = now + base;
	hard_end = now + max(base, msecs_to_jiffies(CCID_TIME_EXT_LIMIT_MS));

	for (;;) {
		now = jiffies;
		if (time_after_eq(now, wait_end))
			ret = -ETIMEDOUT;
		else
			ret = ccid_recv(dev, wait_end - now, true, &actual);
		if (ret == -ETIMEDOUT)
			return ccid_timed_out(dev, cmd, seq, extensions ?
					      "time extensions past the limit" :
					      "no answer");
		if (ret == -EINTR || ret == -ECANCELED)
			return ccid_give_up(dev, cmd->slot, seq, ret);
		if (ret)
			return ccid_usb_error(dev, dev->in_pipe, ret);

		if (actual > dev->buf_len) {
			why = "message longer than dwMaxCCIDMessageLength";
			v = CCID_RSP_BAD;
		} else {
			v = ccid_check_rsp(dev->in_buf, actual, cmd->type,
					   cmd->slot, seq, &cmd->rsp, &why);
		}

		switch (v) {
		case CCID_RSP_MATCH:
			cmd->data = dev->in_buf + CCID_HDR_SIZE;
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

		return ccid_bad_answer(dev, cmd->slot, why);
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

	ccid_build_hdr(dev->out_buf, cmd->type, cmd->len, cmd->slot, seq,
		       cmd->p[0], cmd->p[1], cmd->p[2]);

	ccid_set_busy(dev, cmd->slot);
	ret = ccid_send(dev, CCID_HDR_SIZE + cmd->len);
	if (ret)
		ret = ccid_usb_error(dev, dev->out_pipe, ret);
	else
		ret = ccid_read_answer(dev, cmd, seq);
	ccid_set_busy(dev, -1);
	return ret;
}
