// SPDX-License-Identifier: GPL-2.0
/*
 * USB CCID smart-card reader driver: the ioctl interface.
 *
 * Arguments are checked and user data is copied in before the reader is
 * touched; every command then runs through ccid_run(), which holds
 * io_mutex only around the command itself.  User memory is never touched
 * with io_mutex held: a page that never faults in must not block unplug
 * or a reset.  When the reader answered, the structure goes back to
 * userspace with bStatus and bError even if the call fails.
 *
 * A file opened read-only may look (GET_INFO, SLOT_STATUS, GET_PARAMS,
 * SLOT_EVENTS); everything that changes the card's or the reader's state
 * needs a file opened for writing.
 */

#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/minmax.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "ccid.h"

static void ccid_bad_arg(struct ccid_dev *dev, const char *why)
{
	dev_notice_ratelimited(&dev->intf->dev, "%s: %s\n", current->comm,
			       why);
}

static int ccid_check_slot(struct ccid_dev *dev, u8 slot)
{
	if (slot > dev->desc.max_slot_index) {
		ccid_bad_arg(dev, "no such slot");
		return -EINVAL;
	}
	return 0;
}

static int ccid_check_reserved(struct ccid_dev *dev, const void *p,
			       size_t len)
{
	if (memchr_inv(p, 0, len)) {
		ccid_bad_arg(dev, "reserved field not zero");
		return -EINVAL;
	}
	return 0;
}

/* A caller's timeout: 0 for the default, else within the floor and cap */
static unsigned int ccid_timeout(u32 user_ms, unsigned int def_ms)
{
	if (!user_ms)
		return def_ms;
	return clamp_t(u32, user_ms, CCID_MIN_TIMEOUT_MS, CCID_MAX_TIMEOUT_MS);
}

/* ccid_run() flags */
#define CCID_RUN_CARD		BIT(0)	/* refused on a slot reset behind the file */
#define CCID_RUN_POWER_ON	BIT(1)	/* a good ATR is kept and acknowledged */

/* A successful power-on: the slot's ATR, and this file knows the reset */
static void ccid_power_on_done(struct ccid_file *f, const struct ccid_cmd *cmd)
{
	u8 slot = cmd->hdr.slot;

	if (ccid_rsp_errno(&cmd->rsp) || cmd->rsp.len > cmd->rx_size)
		return;
	ccid_set_atr(f->dev, slot, cmd->rx, cmd->rsp.len);
	ccid_ack_gen(f, slot);
}

/**
 * ccid_run() - run one command of an ioctl
 * @f: the file
 * @cmd: the command, its data and answer in kernel memory
 * @flags: CCID_RUN_*
 *
 * The one path from the ioctls to the wire: io_mutex, the reader's state,
 * the slot's generation (CCID_RUN_CARD), the transaction, and what must
 * happen under the same lock after it (CCID_RUN_POWER_ON).
 *
 * Return: as ccid_transact(), or -ERESTARTSYS, -ECONNRESET.
 */
static int ccid_run(struct ccid_file *f, struct ccid_cmd *cmd,
		    unsigned int flags)
{
	struct ccid_dev *dev = f->dev;
	int ret;

	if (mutex_lock_interruptible(&dev->io_mutex))
		return -ERESTARTSYS;
	ret = ccid_io_state(dev);
	if (!ret && (flags & CCID_RUN_CARD))
		ret = ccid_check_gen(f, cmd->hdr.slot);
	if (!ret)
		ret = ccid_transact(dev, cmd);
	if (!ret && (flags & CCID_RUN_POWER_ON))
		ccid_power_on_done(f, cmd);
	mutex_unlock(&dev->io_mutex);
	return ret;
}

static long ccid_ioctl_info(struct ccid_dev *dev, void __user *argp)
{
	const struct ccid_class_desc *d = &dev->desc;
	const struct usb_device_descriptor *dd = &dev->udev->descriptor;
	struct ccid_reader_info info;

	memset(&info, 0, sizeof(info));
	info.vendor_id = le16_to_cpu(dd->idVendor);
	info.product_id = le16_to_cpu(dd->idProduct);
	info.bcd_device = le16_to_cpu(dd->bcdDevice);
	info.bcd_ccid = d->bcd_ccid;
	info.num_slots = d->max_slot_index + 1;
	info.voltage_support = d->voltage_support;
	info.pin_support = d->pin_support;
	info.max_busy_slots = d->max_busy_slots;
	info.protocols = d->protocols;
	info.default_clock = d->default_clock;
	info.max_clock = d->max_clock;
	info.data_rate = d->data_rate;
	info.max_data_rate = d->max_data_rate;
	info.max_ifsd = d->max_ifsd;
	info.synch_protocols = d->synch_protocols;
	info.mechanical = d->mechanical;
	info.features = d->features;
	info.max_message_length = d->max_msg_len;
	info.buffer_length = dev->buf_len;
	info.num_clocks = d->num_clocks;
	info.num_data_rates = d->num_data_rates;
	info.class_get_response = d->class_get_response;
	info.class_envelope = d->class_envelope;
	info.lcd_layout = d->lcd_layout;
	info.exchange_level = ccid_exchange_level(d->features);
	info.interface_class = dev->iface_class;

	if (copy_to_user(argp, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

static long ccid_ioctl_power_on(struct ccid_file *f, void __user *argp)
{
	struct ccid_dev *dev = f->dev;
	struct ccid_power_on p;
	struct ccid_cmd cmd = { .hdr.type = CCID_PC_POWER_ON };
	int ret;

	if (copy_from_user(&p, argp, sizeof(p)))
		return -EFAULT;
	ret = ccid_check_slot(dev, p.slot) ?:
	      ccid_check_reserved(dev, &p.reserved0, sizeof(p.reserved0)) ?:
	      ccid_check_reserved(dev, p.reserved, sizeof(p.reserved));
	if (ret)
		return ret;
	if (p.voltage > CCID_VOLTAGE_1_8V) {
		ccid_bad_arg(dev, "bad voltage");
		return -EINVAL;
	}

	cmd.hdr.slot = p.slot;
	cmd.hdr.p[0] = p.voltage;
	cmd.timeout_ms = ccid_timeout(p.timeout_ms, CCID_TIMEOUT_XFR_MS);
	memset(p.atr, 0, sizeof(p.atr));
	cmd.rx = p.atr;
	cmd.rx_size = sizeof(p.atr);
	ret = ccid_run(f, &cmd, CCID_RUN_POWER_ON);
	if (ret)
		return ret;

	p.status = cmd.rsp.status;
	p.error = cmd.rsp.error;
	p.atr_len = 0;
	ret = ccid_rsp_errno(&cmd.rsp);
	if (!ret && cmd.rsp.len > sizeof(p.atr)) {
		memset(p.atr, 0, sizeof(p.atr));
		ret = ccid_bad_answer(dev, p.slot, "ATR too long");
	} else if (!ret) {
		p.atr_len = cmd.rsp.len;
	}
	if (copy_to_user(argp, &p, sizeof(p)))
		return -EFAULT;
	return ret;
}

static long ccid_ioctl_slot_status(struct ccid_file *f, u8 type,
				   void __user *argp)
{
	struct ccid_dev *dev = f->dev;
	struct ccid_slot_status st;
	struct ccid_cmd cmd = { .hdr.type = type };
	int ret;

	if (copy_from_user(&st, argp, sizeof(st)))
		return -EFAULT;
	ret = ccid_check_slot(dev, st.slot) ?:
	      ccid_check_reserved(dev, st.reserved, sizeof(st.reserved));
	if (ret)
		return ret;

	cmd.hdr.slot = st.slot;
	cmd.timeout_ms = ccid_timeout(st.timeout_ms, CCID_TIMEOUT_CTRL_MS);
	ret = ccid_run(f, &cmd, 0);
	if (ret)
		return ret;

	st.status = cmd.rsp.status;
	st.error = cmd.rsp.error;
	st.clock_status = cmd.rsp.param;
	if (copy_to_user(argp, &st, sizeof(st)))
		return -EFAULT;
	return ccid_rsp_errno(&cmd.rsp);
}

/* PC_to_RDR_Secure waits for a person: never less than bTimeOut + 10 s */
static unsigned int ccid_secure_timeout(const u8 *blk, size_t len,
					u32 user_ms)
{
	unsigned int ms = CCID_TIMEOUT_SECURE_MS;

	if (len > 1)
		ms = max_t(unsigned int, ms,
			   blk[1] * 1000 + CCID_SECURE_SLACK_MS);
	return max_t(unsigned int, ms, ccid_timeout(user_ms, 0));
}

static int ccid_check_xfer(struct ccid_dev *dev, unsigned int ioc,
			   const struct ccid_xfer *x)
{
	int ret;

	if (ioc == CCID_IOC_ESCAPE && !capable(CAP_SYS_ADMIN))
		return -EPERM;
	ret = ccid_check_slot(dev, x->slot) ?:
	      ccid_check_reserved(dev, &x->reserved0, sizeof(x->reserved0)) ?:
	      ccid_check_reserved(dev, x->reserved, sizeof(x->reserved));
	if (ret)
		return ret;
	if (x->tx_len > dev->buf_len - CCID_HDR_SIZE) {
		ccid_bad_arg(dev, "command longer than the reader takes");
		return -EMSGSIZE;
	}
	if (ioc == CCID_IOC_ESCAPE && (x->bwi || x->level)) {
		ccid_bad_arg(dev, "escape with bBWI or wLevelParameter");
		return -EINVAL;
	}
	if (ioc == CCID_IOC_SECURE && !x->tx_len) {
		ccid_bad_arg(dev, "empty PIN operation block");
		return -EINVAL;
	}
	if (ioc == CCID_IOC_SECURE &&
	    (dev->quirks & CCID_QUIRK_BROKEN_SECURE)) {
		ccid_bad_arg(dev, "Secure disabled by the broken_secure quirk");
		return -EOPNOTSUPP;
	}
	return 0;
}

/*
 * The command of an XfrBlock, Secure or Escape, with the user's data
 * copied in and a buffer for the answer.  The Secure block is checked
 * here, on the kernel's copy, so that what is checked is what is sent.
 */
static int ccid_xfer_cmd(struct ccid_dev *dev, unsigned int ioc,
			 const struct ccid_xfer *x, struct ccid_cmd *cmd)
{
	const char *why;
	u8 *tx;
	int ret;

	cmd->hdr.type = ioc == CCID_IOC_XFR_BLOCK ? CCID_PC_XFR_BLOCK :
			ioc == CCID_IOC_SECURE ? CCID_PC_SECURE : CCID_PC_ESCAPE;
	cmd->hdr.slot = x->slot;
	cmd->hdr.len = x->tx_len;
	cmd->hdr.p[0] = x->bwi;
	cmd->hdr.p[1] = x->level & 0xff;
	cmd->hdr.p[2] = x->level >> 8;
	cmd->timeout_ms = ccid_timeout(x->timeout_ms, CCID_TIMEOUT_XFR_MS);

	tx = vmemdup_user(u64_to_user_ptr(x->tx_buf), x->tx_len);
	if (IS_ERR(tx))
		return PTR_ERR(tx);
	cmd->tx = tx;
	if (cmd->hdr.type == CCID_PC_SECURE) {
		ret = ccid_check_secure(tx, x->tx_len, dev->desc.pin_support,
					&why);
		if (ret) {
			ccid_bad_arg(dev, why);
			return ret;
		}
		cmd->timeout_ms = ccid_secure_timeout(tx, x->tx_len,
						      x->timeout_ms);
	}

	cmd->rx_size = min_t(size_t, x->rx_size,
			     dev->buf_len - CCID_HDR_SIZE);
	cmd->rx = kvmalloc(max_t(size_t, cmd->rx_size, 1), GFP_KERNEL);
	return cmd->rx ? 0 : -ENOMEM;
}

/* The answer of an XfrBlock, Secure or Escape, back to the user */
static int ccid_xfer_answer(const struct ccid_cmd *cmd, struct ccid_xfer *x)
{
	int ret = ccid_rsp_errno(&cmd->rsp);

	x->status = cmd->rsp.status;
	x->error = cmd->rsp.error;
	x->chain = cmd->rsp.param;
	x->rx_len = cmd->rsp.len;
	if (cmd->rsp.len > x->rx_size)
		return ret ?: -EOVERFLOW;
	if (copy_to_user(u64_to_user_ptr(x->rx_buf), cmd->rx, cmd->rsp.len))
		return -EFAULT;
	return ret;
}

static long ccid_ioctl_xfer(struct ccid_file *f, unsigned int ioc,
			    void __user *argp)
{
	struct ccid_dev *dev = f->dev;
	struct ccid_cmd cmd = { };
	struct ccid_xfer x;
	int ret;

	if (copy_from_user(&x, argp, sizeof(x)))
		return -EFAULT;
	ret = ccid_check_xfer(dev, ioc, &x) ?: ccid_xfer_cmd(dev, ioc, &x, &cmd);
	if (!ret)
		ret = ccid_run(f, &cmd, ioc == CCID_IOC_ESCAPE ? 0 : CCID_RUN_CARD);
	if (!ret) {
		ret = ccid_xfer_answer(&cmd, &x);
		if (ret != -EFAULT && copy_to_user(argp, &x, sizeof(x)))
			ret = -EFAULT;
	}
	kvfree(cmd.tx);
	kvfree(cmd.rx);
	return ret;
}

/* The command of a GET, SET or RESET_PARAMS */
static int ccid_params_cmd(struct ccid_dev *dev, unsigned int ioc,
			   const struct ccid_params *pr, struct ccid_cmd *cmd)
{
	cmd->hdr.type = CCID_PC_GET_PARAMS;
	if (ioc == CCID_IOC_SET_PARAMS) {
		/* abProtocolDataStructure: 5 bytes for T=0, 7 for T=1 */
		if ((pr->protocol == 0 && pr->len != 5) ||
		    (pr->protocol == 1 && pr->len != 7) || pr->protocol > 1) {
			ccid_bad_arg(dev, "bad protocol data structure");
			return -EINVAL;
		}
		cmd->hdr.type = CCID_PC_SET_PARAMS;
		cmd->hdr.p[0] = pr->protocol;
		cmd->hdr.len = pr->len;
		cmd->tx = pr->data;
	} else if (ioc == CCID_IOC_RESET_PARAMS) {
		cmd->hdr.type = CCID_PC_RESET_PARAMS;
	}
	cmd->hdr.slot = pr->slot;
	cmd->timeout_ms = ccid_timeout(pr->timeout_ms, CCID_TIMEOUT_CTRL_MS);
	return 0;
}

static long ccid_ioctl_params(struct ccid_file *f, unsigned int ioc,
			      void __user *argp)
{
	struct ccid_dev *dev = f->dev;
	u8 data[CCID_MAX_PARAMS_SIZE];
	struct ccid_cmd cmd = { };
	struct ccid_params pr;
	int ret;

	if (copy_from_user(&pr, argp, sizeof(pr)))
		return -EFAULT;
	ret = ccid_check_slot(dev, pr.slot) ?:
	      ccid_check_reserved(dev, &pr.reserved0, sizeof(pr.reserved0)) ?:
	      ccid_check_reserved(dev, pr.reserved, sizeof(pr.reserved)) ?:
	      ccid_params_cmd(dev, ioc, &pr, &cmd);
	if (ret)
		return ret;

	cmd.rx = data;
	cmd.rx_size = sizeof(data);
	ret = ccid_run(f, &cmd, CCID_RUN_CARD);
	if (ret)
		return ret;

	pr.status = cmd.rsp.status;
	pr.error = cmd.rsp.error;
	pr.protocol = cmd.rsp.param;
	pr.len = 0;
	memset(pr.data, 0, sizeof(pr.data));
	ret = ccid_rsp_errno(&cmd.rsp);
	if (cmd.rsp.len > sizeof(pr.data)) {
		ret = ret ?: ccid_bad_answer(dev, pr.slot,
					     "protocol data structure too long");
	} else {
		pr.len = cmd.rsp.len;
		memcpy(pr.data, data, cmd.rsp.len);
	}
	if (copy_to_user(argp, &pr, sizeof(pr)))
		return -EFAULT;
	return ret;
}

static long ccid_ioctl_abort(struct ccid_dev *dev, void __user *argp)
{
	struct ccid_abort a;
	int ret;

	if (copy_from_user(&a, argp, sizeof(a)))
		return -EFAULT;
	ret = ccid_check_slot(dev, a.slot) ?:
	      ccid_check_reserved(dev, a.reserved, sizeof(a.reserved));
	if (ret)
		return ret;
	if (ccid_io_state(dev) == -ENODEV)
		return -ENODEV;
	/* An idle slot has nothing to abort. */
	ccid_cancel(dev, a.slot);
	return 0;
}

static long ccid_ioctl_slot_events(struct ccid_file *f, void __user *argp)
{
	struct ccid_dev *dev = f->dev;
	struct ccid_slot_events ev;
	unsigned int i;
	u32 flags;
	int ret;

	if (copy_from_user(&ev, argp, sizeof(ev)))
		return -EFAULT;
	ret = ccid_check_reserved(dev, &ev.reserved0, sizeof(ev.reserved0)) ?:
	      ccid_check_reserved(dev, ev.reserved, sizeof(ev.reserved));
	if (ret)
		return ret;
	if (ev.flags & ~CCID_EVENTS_ACK_RESET) {
		ccid_bad_arg(dev, "unknown flags");
		return -EINVAL;
	}

	flags = ev.flags;
	memset(&ev, 0, sizeof(ev));
	ev.flags = flags;
	spin_lock_irq(&dev->lock);
	for (i = 0; i <= dev->desc.max_slot_index; i++) {
		const struct ccid_slot *s = &dev->slots[i];

		if (s->presence.present)
			ev.present |= BIT(i);
		if (s->presence.known)
			ev.known |= BIT(i);
		ev.changes[i] = s->changes;
		ev.generation[i] = s->gen;
		if (f->acked_gen[i] != s->gen)
			ev.reset_pending |= BIT(i);
		if (ev.flags & CCID_EVENTS_ACK_RESET)
			f->acked_gen[i] = s->gen;
	}
	f->seen_event_seq = dev->event_seq;
	spin_unlock_irq(&dev->lock);
	ev.hw_errors = atomic_read(&dev->stats.hw_errors);

	if (copy_to_user(argp, &ev, sizeof(ev)))
		return -EFAULT;
	return 0;
}

/*
 * The ioctls that change the card's or the reader's state, or disturb
 * another user's command: they need a file opened for writing
 */
static bool ccid_ioctl_needs_write(unsigned int ioc)
{
	switch (ioc) {
	case CCID_IOC_POWER_ON:
	case CCID_IOC_POWER_OFF:
	case CCID_IOC_XFR_BLOCK:
	case CCID_IOC_SECURE:
	case CCID_IOC_ESCAPE:
	case CCID_IOC_SET_PARAMS:
	case CCID_IOC_RESET_PARAMS:
	case CCID_IOC_ABORT:
		return true;
	default:
		return false;
	}
}

long ccid_ioctl(struct file *file, unsigned int ioc, unsigned long arg)
{
	struct ccid_file *f = file->private_data;
	struct ccid_dev *dev = f->dev;
	void __user *argp = (void __user *)arg;

	if (ccid_io_state(dev) == -ENODEV)
		return -ENODEV;
	if (!(file->f_mode & FMODE_WRITE) && ccid_ioctl_needs_write(ioc))
		return -EBADF;

	switch (ioc) {
	case CCID_IOC_GET_INFO:
		return ccid_ioctl_info(dev, argp);
	case CCID_IOC_POWER_ON:
		return ccid_ioctl_power_on(f, argp);
	case CCID_IOC_POWER_OFF:
		return ccid_ioctl_slot_status(f, CCID_PC_POWER_OFF, argp);
	case CCID_IOC_SLOT_STATUS:
		return ccid_ioctl_slot_status(f, CCID_PC_GET_SLOT_STATUS, argp);
	case CCID_IOC_XFR_BLOCK:
	case CCID_IOC_SECURE:
	case CCID_IOC_ESCAPE:
		return ccid_ioctl_xfer(f, ioc, argp);
	case CCID_IOC_GET_PARAMS:
	case CCID_IOC_SET_PARAMS:
	case CCID_IOC_RESET_PARAMS:
		return ccid_ioctl_params(f, ioc, argp);
	case CCID_IOC_ABORT:
		return ccid_ioctl_abort(dev, argp);
	case CCID_IOC_SLOT_EVENTS:
		return ccid_ioctl_slot_events(f, argp);
	default:
		return -ENOTTY;
	}
}
