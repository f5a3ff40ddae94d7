// SPDX-License-Identifier: GPL-2.0
/*
 * USB CCID smart-card reader driver: the wire engine.
 *
 * One command is on the wire at a time, under io_mutex.  It is framed
 * (ccid_frame_cmd() checks its length), sent on bulk-OUT with no
 * zero-length packet (the reader knows the end from dwLength), then
 * bulk-IN is read until the frame carrying the command's bSeq and bSlot
 * arrives.  Older answers are dropped, time extensions stretch the wait
 * up to a ceiling.
 *
 * What can go wrong is first classified (struct ccid_failure), then
 * recovered from in one place, ccid_recover(), before the caller gets its
 * errno.  A recovery is proven only by a correctly sequenced answer to a
 * later command on the path that failed; until then each slot remembers
 * where its next recovery starts on the ladder.
 */

#include <linux/jiffies.h>
#include <linux/minmax.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "ccid.h"
#include "ccid_trace.h"

/* What went wrong with a command */
enum ccid_fault {
	CCID_FAULT_NONE,
	CCID_FAULT_CANCELLED,	/* a signal or CCID_IOC_ABORT */
	CCID_FAULT_OUT_TIMEOUT,	/* the reader did not take the command */
	CCID_FAULT_TIMEOUT,	/* no answer in time */
	CCID_FAULT_STALL,	/* a bulk endpoint halted */
	CCID_FAULT_GARBLED,	/* an answer the driver cannot use */
	CCID_FAULT_LAG,		/* an answer with an abandoned command's bSeq */
	CCID_FAULT_USB,		/* another URB error */
	CCID_FAULT_STATE,	/* unplugged, or a reset or suspend ended it */
};

/**
 * struct ccid_failure - a classified failure of one command
 * @fault: what went wrong
 * @err: the errno the caller gets once the reader is recovered
 * @why: for the log
 * @pipe: CCID_FAULT_STALL: the halted pipe
 */
struct ccid_failure {
	enum ccid_fault fault;
	int err;
	const char *why;
	unsigned int pipe;
};

/* Internal: a driver's own command saw an answer with an abandoned bSeq */
#define CCID_OUT_OF_STEP	(-EILSEQ)

/* The reason a recovery gives in the trace */
static const char *ccid_fault_name(enum ccid_fault fault)
{
	static const char * const names[] = {
		[CCID_FAULT_CANCELLED]		= "cancelled",
		[CCID_FAULT_OUT_TIMEOUT]	= "not_taken",
		[CCID_FAULT_TIMEOUT]		= "timeout",
		[CCID_FAULT_STALL]		= "stall",
		[CCID_FAULT_GARBLED]		= "garbled",
		[CCID_FAULT_LAG]		= "out_of_step",
		[CCID_FAULT_USB]		= "usb_error",
	};

	if (fault < ARRAY_SIZE(names) && names[fault])
		return names[fault];
	return "unknown";
}

/*
 * Whether @got is the bSeq of a command the driver gave up on and that
 * went out before the last one sent.  A bSeq ahead of the last one sent
 * (a reader's garbled "next" bSeq) is never evidence, even when a
 * command 256 commands ago had it.  Under io_mutex.
 */
static bool ccid_seq_abandoned(struct ccid_dev *dev, u8 got)
{
	u8 behind = (u8)(dev->seq - 1 - got);

	return behind && behind < 128 && test_bit(got, dev->abandoned);
}

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

/*
 * Send the message of @len bytes in out_buf.  No zero-length packet
 * follows a message of whole packets, as with libccid and GnuPG: readers
 * know the end of a message from dwLength, and some (QEMU's) stall the
 * ZLP.  The quirk 'z' is for a reader that needs one.
 */
static int ccid_send(struct ccid_dev *dev, size_t len)
{
	struct urb *urb = dev->out_urb;
	int ret;

	usb_fill_bulk_urb(urb, dev->udev, dev->out_pipe, dev->out_buf, len,
			  ccid_urb_complete, dev);
	urb->transfer_flags = 0;
	if ((dev->quirks & CCID_QUIRK_OUT_ZLP) && !(len % dev->out_maxp))
		urb->transfer_flags = URB_ZERO_PACKET;
	clear_bit(CCID_FLAG_OUT_DONE, &dev->flags);
	ret = usb_submit_urb(urb, GFP_KERNEL);
	if (!ret)
		ret = ccid_wait_urb(dev, urb, CCID_FLAG_OUT_DONE,
				    msecs_to_jiffies(CCID_OUT_TIMEOUT_MS),
				    false);
	if (!ret && urb->actual_length != len)
		ret = -EIO;
	/* the header only: abData may hold a PIN */
	trace_ccid_cmd_sent(dev, dev->out_buf, ret);
	return ret;
}

/*
 * Trace one bulk-IN frame with what the driver made of it (@v); @actual
 * and @why for a frame it cannot use.  Only the header is traced.
 */
static void ccid_trace_frame(struct ccid_dev *dev, enum ccid_rsp_verdict v,
			     const struct ccid_rsp *rsp, size_t actual,
			     bool abandoned, const char *why)
{
	switch (v) {
	case CCID_RSP_MATCH:
		trace_ccid_answer(dev, rsp);
		break;
	case CCID_RSP_STALE:
		trace_ccid_stale_frame(dev, rsp, abandoned);
		break;
	case CCID_RSP_TIME_EXT:
		trace_ccid_time_ext(dev, rsp);
		break;
	default:
		trace_ccid_bad_frame(dev, actual, why);
		break;
	}
}

/*
 * Read one bulk-IN frame before @end (jiffies).  A zero-length packet is
 * not a frame: it ends a transfer that filled the URB exactly, and the
 * read goes on.
 */
static int ccid_recv(struct ccid_dev *dev, unsigned long end,
		     bool interruptible, size_t *actual)
{
	struct urb *urb = dev->in_urb;
	unsigned long now;
	int ret;

	for (;;) {
		now = jiffies;
		if (time_after_eq(now, end))
			return -ETIMEDOUT;
		usb_fill_bulk_urb(urb, dev->udev, dev->in_pipe, dev->in_buf,
				  dev->in_len, ccid_urb_complete, dev);
		clear_bit(CCID_FLAG_IN_DONE, &dev->flags);
		ret = usb_submit_urb(urb, GFP_KERNEL);
		if (ret)
			return ret;
		ret = ccid_wait_urb(dev, urb, CCID_FLAG_IN_DONE, end - now,
				    interruptible);
		*actual = urb->actual_length;
		if (ret || *actual)
			return ret;
	}
}

/*
 * Read bulk-IN, without giving way to signals, until the answer to the
 * command @type with @seq arrives; everything else is dropped.  Used by
 * the Abort procedure and by the commands recovery sends itself.  With
 * @any_frame, a garbled frame that carries @slot and @seq also counts as
 * the answer: the reader is alive, which is all the driver's own commands
 * ask (QEMU 7.2 answers ResetParameters with a bad dwLength).  The Abort
 * cannot take that: it shares its bSeq with the command it aborts.
 *
 * Return: 0, CCID_OUT_OF_STEP when a frame carried the bSeq of another
 * abandoned command and the answer did not follow, or a negative errno.
 */
static int ccid_drain_for(struct ccid_dev *dev, u8 type, u8 slot, u8 seq,
			  bool any_frame)
{
	unsigned long step = msecs_to_jiffies(CCID_ABORT_STEP_MS);
	enum ccid_rsp_verdict v;
	bool lagged = false, abandoned;
	struct ccid_rsp rsp;
	const char *why;
	size_t actual;
	int i, ret;

	for (i = 0; i < CCID_MAX_STALE; i++) {
		ret = ccid_recv(dev, jiffies + step, false, &actual);
		if (ret)
			return lagged && ret == -ETIMEDOUT ? CCID_OUT_OF_STEP : ret;
		v = CCID_RSP_BAD;
		why = "message longer than dwMaxCCIDMessageLength";
		if (actual <= dev->buf_len)
			v = ccid_check_rsp(dev->in_buf, actual, type, slot, seq,
					   &rsp, &why);
		/*
		 * Only a well-formed frame is evidence; a late answer is
		 * followed by the one awaited, a reader out of step sends
		 * nothing more
		 */
		abandoned = v == CCID_RSP_STALE && rsp.seq != seq &&
			    ccid_seq_abandoned(dev, rsp.seq);
		ccid_trace_frame(dev, v, &rsp, actual, abandoned, why);
		if (v == CCID_RSP_MATCH) {
			ccid_note_presence(dev, slot, rsp.status);
			return 0;
		}
		if (abandoned)
			lagged = true;
		if (any_frame && actual >= CCID_HDR_SIZE &&
		    dev->in_buf[CCID_OFF_SEQ] == seq &&
		    dev->in_buf[CCID_OFF_SLOT] == slot)
			return 0;
	}
	return lagged ? CCID_OUT_OF_STEP : -EPROTO;
}

/* Frame and send a header-only message of the driver's own */
static int ccid_send_hdr(struct ccid_dev *dev, u8 type, u8 slot, u8 seq)
{
	struct ccid_cmd_hdr hdr = { .type = type, .slot = slot };
	int len = ccid_frame_cmd(dev->out_buf, dev->buf_len, &hdr, seq, NULL);

	return len < 0 ? len : ccid_send(dev, len);
}

/* A header-only command of the driver's own, e.g. IccPowerOff */
static int ccid_simple_cmd(struct ccid_dev *dev, u8 type, u8 slot)
{
	u8 seq = dev->seq++;
	int ret;

	ret = ccid_io_state(dev);
	if (ret)
		return ret;
	clear_bit(seq, dev->abandoned);
	ret = ccid_send_hdr(dev, type, slot, seq);
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

	ret = ccid_io_state(dev);
	if (ret)
		return ret;

	atomic_inc(&dev->stats.aborts);

	/* Readers that do not implement the request stall it: go on. */
	usb_control_msg(dev->udev, usb_sndctrlpipe(dev->udev, 0),
			CCID_REQ_ABORT,
			USB_DIR_OUT | USB_TYPE_CLASS | USB_RECIP_INTERFACE,
			seq << 8 | slot, dev->ifnum, NULL, 0,
			CCID_ABORT_STEP_MS);

	ret = ccid_send_hdr(dev, CCID_PC_ABORT, slot, seq);
	return ret ?: ccid_drain_for(dev, CCID_PC_ABORT, slot, seq, false);
}

/*
 * After a timeout or a garbled answer the card's state is unknown: power
 * the slot off and reset its parameters.  Any answer will do, failed or
 * garbled: the reader is alive on its control path.
 */
static int ccid_power_off_slot(struct ccid_dev *dev, u8 slot)
{
	const char *what = "power off";
	int ret;

	ret = ccid_simple_cmd(dev, CCID_PC_POWER_OFF, slot);
	if (!ret) {
		what = "parameter reset";
		ret = ccid_simple_cmd(dev, CCID_PC_RESET_PARAMS, slot);
	}
	if (ret && ret != CCID_OUT_OF_STEP && !ccid_io_state(dev))
		dev_warn_ratelimited(&dev->intf->dev,
				     "slot %u: abort answered, but not a %s (%d)\n",
				     slot, what, ret);
	return ret;
}

/*
 * The last step of the ladder: reset the device.  pre_reset and
 * post_reset see self_reset and leave io_mutex, which this task holds,
 * alone; post_reset starts a new generation on every slot and forgets
 * every abandoned bSeq, since the reader's queues are empty again.
 *
 * Return: 0 when the reader answers a GetSlotStatus after the reset.
 */
static int ccid_usb_reset(struct ccid_dev *dev, const char *why)
{
	int ret;

	atomic_inc(&dev->stats.usb_resets);
	dev_warn_ratelimited(&dev->intf->dev,
			     "reader does not answer: resetting it\n");

	ret = usb_lock_device_for_reset(dev->udev, dev->intf);
	if (!ret) {
		dev->self_reset = true;
		ret = usb_reset_device(dev->udev);
		dev->self_reset = false;
		usb_unlock_device(dev->udev);
	}
	trace_ccid_usb_reset(dev, why, ret);
	if (ret)
		return ccid_io_state(dev) ?: ret;

	ret = ccid_simple_cmd(dev, CCID_PC_GET_SLOT_STATUS, 0);
	if (ret && !ccid_io_state(dev))
		dev_err_ratelimited(&dev->intf->dev,
				    "reader still dead after a reset: %d\n", ret);
	return ret;
}

static void ccid_note_out_of_step(struct ccid_dev *dev, u8 slot)
{
	atomic_inc(&dev->stats.out_of_step);
	dev_warn_ratelimited(&dev->intf->dev,
			     "slot %u: reader is out of step (it answers with the bSeq of a command given up on): resetting it\n",
			     slot);
}

/* One step of the ladder, for @why; 0 when the reader confirmed it */
static int ccid_run_step(struct ccid_dev *dev, u8 slot, u8 seq,
			 enum ccid_step step, const char *why)
{
	switch (step) {
	case CCID_STEP_ABORT:
		return ccid_abort_cmd(dev, slot, seq);
	case CCID_STEP_CLEAR_HALT:
		atomic_inc(&dev->stats.clear_halts);
		usb_clear_halt(dev->udev, dev->in_pipe);
		usb_clear_halt(dev->udev, dev->out_pipe);
		return ccid_abort_cmd(dev, slot, seq);
	default:
		return ccid_usb_reset(dev, why);
	}
}

/*
 * Climb the ladder from @step for the command with @seq on @slot, which
 * failed as @fail says, and stop at the first step that brings the
 * reader back; unless the command was only cancelled, the card's state
 * is lost and a step below the reset is taken only when the slot's power
 * off and parameter reset are answered too.  An answer carrying the bSeq
 * of an abandoned command goes straight to the reset: an Abort cannot
 * realign a reader's own queue.
 *
 * Return: the step that brought the reader back (CCID_STEP_RESET also
 * when it did not), -ENODEV when it was unplugged meanwhile, -EIO when a
 * reset or a suspend from elsewhere took over.
 */
static int ccid_climb_ladder(struct ccid_dev *dev, u8 slot, u8 seq,
			     enum ccid_step step,
			     const struct ccid_failure *fail)
{
	bool card_lost = fail->fault != CCID_FAULT_CANCELLED;
	const char *why = ccid_fault_name(fail->fault);
	bool aborted;
	int ret, state;

	if (step == CCID_STEP_CLEAR_HALT)
		dev_warn_ratelimited(&dev->intf->dev,
				     "slot %u: the last recovery did not hold: clearing halts\n",
				     slot);
	for (;; step++) {
		trace_ccid_recover_step(dev, slot, seq, step, why);
		ret = ccid_run_step(dev, slot, seq, step, why);
		aborted = !ret;
		if (aborted && card_lost && step != CCID_STEP_RESET)
			ret = ccid_power_off_slot(dev, slot);
		state = ccid_io_state(dev);
		trace_ccid_recover_done(dev, slot, seq, step, state ?: ret);
		if (state)
			return state;
		if (!ret || step == CCID_STEP_RESET)
			return step;
		/* why the next step is taken */
		why = "not_confirmed";
		if (ret == CCID_OUT_OF_STEP) {
			ccid_note_out_of_step(dev, slot);
			step = CCID_STEP_RESET - 1;
			why = "out_of_step";
		} else if (step == CCID_STEP_ABORT && !aborted) {
			dev_warn_ratelimited(&dev->intf->dev,
					     "slot %u: abort failed (%d), clearing halts\n",
					     slot, ret);
		}
	}
}

/* Count and log a failure: the one place that does */
static void ccid_report_failure(struct ccid_dev *dev,
				const struct ccid_cmd *cmd,
				const struct ccid_failure *fail)
{
	struct device *d = &dev->intf->dev;
	u8 slot = cmd->hdr.slot, type = cmd->hdr.type;

	switch (fail->fault) {
	case CCID_FAULT_OUT_TIMEOUT:
		atomic_inc(&dev->stats.timeouts);
		dev_warn_ratelimited(d, "slot %u: reader does not take command 0x%02x\n",
				     slot, type);
		break;
	case CCID_FAULT_TIMEOUT:
		atomic_inc(&dev->stats.timeouts);
		dev_warn_ratelimited(d, "slot %u: command 0x%02x: %s\n",
				     slot, type, fail->why);
		break;
	case CCID_FAULT_STALL:
		atomic_inc(&dev->stats.clear_halts);
		dev_warn_ratelimited(d, "bulk-%s endpoint stalled\n",
				     usb_pipein(fail->pipe) ? "IN" : "OUT");
		break;
	case CCID_FAULT_GARBLED:
		ccid_bad_answer(dev, slot, fail->why);
		break;
	case CCID_FAULT_LAG:
		ccid_note_out_of_step(dev, slot);
		break;
	case CCID_FAULT_USB:
		dev_warn_ratelimited(d, "slot %u: command 0x%02x: USB error %d\n",
				     slot, type, fail->err);
		break;
	default:
		break;
	}
}

/*
 * The command with @seq went wrong (@fail).  Its bSeq is abandoned: an
 * answer that carries it from now on shows the reader out of step.  The
 * ladder starts where the slot's memory says (a cancelled command: at the
 * Abort; an out-of-step reader: at the reset).  After a timeout, a
 * garbled answer or a transport error the card's state is unknown: the
 * slot is powered off and starts a new generation, and the next failure
 * before a proven recovery starts one step higher.
 *
 * Return: the errno for the caller: @fail->err, or -ENODEV or -EIO when
 * an unplug or a reset or suspend from elsewhere took over.
 */
static int ccid_recover(struct ccid_dev *dev, const struct ccid_cmd *cmd,
			u8 seq, const struct ccid_failure *fail)
{
	bool card_lost = fail->fault != CCID_FAULT_CANCELLED;
	struct ccid_slot *s = &dev->slots[cmd->hdr.slot];
	enum ccid_step step = CCID_STEP_ABORT;
	int ret;

	ccid_report_failure(dev, cmd, fail);
	if (fail->fault == CCID_FAULT_STATE)
		return fail->err;

	set_bit(seq, dev->abandoned);
	if (fail->fault == CCID_FAULT_STALL)
		usb_clear_halt(dev->udev, fail->pipe);
	if (fail->fault == CCID_FAULT_LAG)
		step = CCID_STEP_RESET;
	else if (card_lost)
		step = s->ladder;

	ret = ccid_climb_ladder(dev, cmd->hdr.slot, seq, step, fail);
	if (ret < 0)
		return ret;
	if (card_lost || ret != CCID_STEP_ABORT) {
		s->ladder = min_t(int, ret + 1, CCID_STEP_RESET);
		s->failed_card_path = ccid_cmd_on_card_path(cmd->hdr.type);
	}
	/* the reset started every slot anew already */
	if (card_lost && ret != CCID_STEP_RESET)
		ccid_reset_slots(dev, BIT(cmd->hdr.slot));
	return fail->err;
}

/* A URB came back with @err on @pipe: what kind of failure it is */
static void ccid_classify_urb_error(struct ccid_dev *dev, unsigned int pipe,
				    int err, struct ccid_failure *fail)
{
	int state = ccid_io_state(dev);

	fail->pipe = pipe;
	fail->err = err;
	if (state) {
		fail->fault = CCID_FAULT_STATE;
		fail->err = state;
		return;
	}
	switch (err) {
	case -ETIMEDOUT:
		fail->fault = usb_pipein(pipe) ? CCID_FAULT_TIMEOUT :
						 CCID_FAULT_OUT_TIMEOUT;
		fail->why = "no answer";
		break;
	case -EINTR:
	case -ECANCELED:
		fail->fault = CCID_FAULT_CANCELLED;
		break;
	case -EPIPE:
		fail->fault = CCID_FAULT_STALL;
		fail->err = -EIO;
		break;
	case -EOVERFLOW:
		fail->fault = CCID_FAULT_GARBLED;
		fail->err = -EPROTO;
		fail->why = "more than a message";
		break;
	case -ENODEV:
	case -ESHUTDOWN:
		fail->fault = CCID_FAULT_STATE;
		fail->err = -ENODEV;
		break;
	default:
		fail->fault = CCID_FAULT_USB;
		fail->err = usb_translate_errors(err);
		break;
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

/* The answer to @cmd arrived: keep its data */
static void ccid_take_answer(struct ccid_dev *dev, struct ccid_cmd *cmd)
{
	if (cmd->rx_size)
		memcpy(cmd->rx, dev->in_buf + CCID_HDR_SIZE,
		       min_t(size_t, cmd->rsp.len, cmd->rx_size));
	ccid_note_presence(dev, cmd->hdr.slot, cmd->rsp.status);
}

/* Count a frame that is not the answer; the rules are ccid_wait_frame()'s */
static void ccid_count_frame(struct ccid_dev *dev, enum ccid_rsp_verdict v,
			     const struct ccid_rsp *rsp)
{
	if (v == CCID_RSP_TIME_EXT) {
		atomic_inc(&dev->stats.time_extensions);
	} else if (v == CCID_RSP_STALE) {
		atomic_inc(&dev->stats.stale_frames);
		dev_dbg_ratelimited(&dev->intf->dev,
				    "dropped answer to bSeq %u\n", rsp->seq);
	}
}

/*
 * Read bulk-IN until the answer to the command with @seq arrives, as
 * ccid_wait_frame() rules: stale answers do not extend the wait, but one
 * that carries the bSeq of an abandoned command cuts it to
 * CCID_LAG_GRACE_MS, after which the reader is out of step; a time
 * extension restarts it, never past max(timeout, time_ext_limit) after
 * the command was sent.
 */
static void ccid_read_answer(struct ccid_dev *dev, struct ccid_cmd *cmd,
			     u8 seq, struct ccid_failure *fail)
{
	unsigned int limit_s = clamp_val(READ_ONCE(ccid_time_ext_limit), 1,
					 CCID_TIME_EXT_LIMIT_MAX);
	struct ccid_answer_wait w;
	enum ccid_rsp_verdict v;
	bool abandoned;
	size_t actual;
	int ret;

	ccid_wait_start(&w, jiffies, msecs_to_jiffies(cmd->timeout_ms),
			msecs_to_jiffies(limit_s * MSEC_PER_SEC),
			msecs_to_jiffies(CCID_LAG_GRACE_MS));
	for (;;) {
		ret = ccid_recv(dev, w.wait_end, true, &actual);
		if (ret == -ETIMEDOUT && w.lagged) {
			fail->fault = CCID_FAULT_LAG;
			fail->err = -EIO;
			return;
		}
		if (ret) {
			ccid_classify_urb_error(dev, dev->in_pipe, ret, fail);
			if (ccid_wait_at_limit(&w))
				fail->why = "time extensions past the limit";
			return;
		}

		v = CCID_RSP_BAD;
		fail->why = "message longer than dwMaxCCIDMessageLength";
		if (actual <= dev->buf_len)
			v = ccid_check_rsp(dev->in_buf, actual, cmd->hdr.type,
					   cmd->hdr.slot, seq, &cmd->rsp,
					   &fail->why);
		ccid_count_frame(dev, v, &cmd->rsp);
		abandoned = v == CCID_RSP_STALE &&
			    ccid_seq_abandoned(dev, cmd->rsp.seq);
		ccid_trace_frame(dev, v, &cmd->rsp, actual, abandoned,
				 fail->why);
		switch (ccid_wait_frame(&w, jiffies, v, &cmd->rsp, abandoned,
					&fail->why)) {
		case CCID_WAIT_DONE:
			ccid_take_answer(dev, cmd);
			return;
		case CCID_WAIT_READ:
			continue;
		case CCID_WAIT_BAD:
			fail->fault = CCID_FAULT_GARBLED;
			fail->err = -EPROTO;
			return;
		}
	}
}

/* An answer on the path that failed proves the slot's recovery */
static void ccid_note_answer(struct ccid_dev *dev, const struct ccid_cmd *cmd)
{
	struct ccid_slot *s = &dev->slots[cmd->hdr.slot];

	if (s->failed_card_path == ccid_cmd_on_card_path(cmd->hdr.type))
		s->ladder = CCID_STEP_ABORT;
}

/**
 * ccid_transact() - send one command and wait for its answer
 * @dev: the reader, with io_mutex held
 * @cmd: the command; its data is at @cmd->tx
 *
 * A command that fails after it was sent may still have run in the card;
 * it is never sent again.
 *
 * Return: 0 when the reader answered (the answer may still report a
 * failure: see ccid_rsp_errno()), or a negative errno: -EMSGSIZE before
 * anything was sent; after recovery, -ETIMEDOUT (no answer, or the
 * reader did not take the command), -EPROTO (a garbled answer), -EIO (a
 * stalled endpoint, a transport error, an out-of-step reader that was
 * reset, or a reset or suspend from elsewhere), -EINTR and -ECANCELED
 * (a signal, CCID_IOC_ABORT); -ENODEV only once the reader is unplugged.
 */
int ccid_transact(struct ccid_dev *dev, struct ccid_cmd *cmd)
{
	struct ccid_failure fail = { .fault = CCID_FAULT_NONE };
	u8 seq = dev->seq;
	int ret;

	lockdep_assert_held(&dev->io_mutex);

	ret = ccid_io_state(dev);
	if (ret)
		return ret;
	ret = ccid_frame_cmd(dev->out_buf, dev->buf_len, &cmd->hdr, seq,
			     cmd->tx);
	if (ret < 0)
		return ret;
	dev->seq++;
	clear_bit(seq, dev->abandoned);

	ccid_set_busy(dev, cmd->hdr.slot);
	ret = ccid_send(dev, ret);
	if (ret)
		ccid_classify_urb_error(dev, dev->out_pipe, ret, &fail);
	else
		ccid_read_answer(dev, cmd, seq, &fail);
	if (fail.fault == CCID_FAULT_NONE)
		ccid_note_answer(dev, cmd);
	else
		ret = ccid_recover(dev, cmd, seq, &fail);
	ccid_set_busy(dev, -1);
	return ret;
}
