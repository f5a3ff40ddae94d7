// SPDX-License-Identifier: GPL-2.0
/*
 * USB CCID smart-card reader driver.
 *
 * Binds to CCID interfaces (class 0x0B, bulk protocol) and to listed
 * pre-standard readers that use vendor class 0xFF with a CCID class
 * descriptor, and gives each one a character device, /dev/ccidN, driven
 * with the ioctls of <linux/usb/ccid_reader.h>.
 *
 * See Documentation/usb/ccid.rst.
 */

#include <linux/fs.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/sysfs.h>
#include <linux/usb.h>

#include "ccid.h"
#include "ccid_trace.h"

/*
 * Only used on kernels without CONFIG_USB_DYNAMIC_MINORS; minors 240..255
 * are not taken by another in-tree USB class driver.
 */
#define CCID_MINOR_BASE		240

#define CCID_PROTO_BULK		0
#define CCID_PROTO_ICCD_A	1
#define CCID_PROTO_ICCD_B	2

#define CCID_DEVICE_VENDOR_CLASS(vend, prod)			\
	USB_DEVICE_INTERFACE_CLASS(vend, prod, USB_CLASS_VENDOR_SPEC)

static const struct usb_device_id ccid_ids[] = {
	{
		.match_flags = USB_DEVICE_ID_MATCH_INT_CLASS,
		.bInterfaceClass = USB_CLASS_CSCID,
	},
	/* SCM SPR532/SPR332: old firmware reports vendor class 0xFF */
	{ CCID_DEVICE_VENDOR_CLASS(0x04e6, 0xe003) },
	{ }
};
MODULE_DEVICE_TABLE(usb, ccid_ids);

static char quirks[256];
module_param_string(quirks, quirks, sizeof(quirks), 0644);
MODULE_PARM_DESC(quirks,
		 "VID:PID:FLAGS[,...] replaces the built-in quirks of a reader; FLAGS: s = Secure is broken, f = bogus firmware, z = bulk-OUT needs a zero-length packet, none = empty");

unsigned int ccid_time_ext_limit = CCID_TIME_EXT_LIMIT_DEFAULT;
module_param_named(time_ext_limit, ccid_time_ext_limit, uint, 0644);
MODULE_PARM_DESC(time_ext_limit,
		 "seconds time extensions may stretch the wait for an answer (1-3600, default 300)");

void ccid_delete(struct kref *kref)
{
	struct ccid_dev *dev = container_of(kref, struct ccid_dev, kref);

	ccid_free_io(dev);
	lockdep_unregister_key(&dev->io_key);
	usb_free_urb(dev->int_urb);
	kfree(dev->int_buf);
	usb_put_intf(dev->intf);
	usb_put_dev(dev->udev);
	kfree(dev);
}

static void ccid_int_complete(struct urb *urb)
{
	struct ccid_dev *dev = urb->context;
	struct ccid_int_msg msg;
	unsigned long flags;
	const char *why;
	unsigned int i;
	int ret;

	switch (urb->status) {
	case 0:
		break;
	case -ENOENT:
	case -ECONNRESET:
	case -ESHUTDOWN:
	case -EPERM:
		return;
	default:
		if (++dev->int_errors >= CCID_MAX_INT_ERRORS) {
			dev_err_ratelimited(&dev->intf->dev,
					    "interrupt-IN keeps failing (%d): slot events stop\n",
					    urb->status);
			return;
		}
		goto resubmit;
	}

	dev->int_errors = 0;
	if (ccid_parse_int_msg(dev->int_buf, urb->actual_length,
			       dev->desc.max_slot_index + 1, &msg, &why)) {
		atomic_inc(&dev->stats.protocol_errors);
		dev_warn_ratelimited(&dev->intf->dev, "interrupt-IN: %s\n", why);
		goto resubmit;
	}

	if (msg.type == CCID_RDR_HARDWARE_ERROR) {
		atomic_inc(&dev->stats.hw_errors);
		dev_warn_ratelimited(&dev->intf->dev,
				     "slot %u: hardware error 0x%02x\n",
				     msg.slot, msg.code);
		spin_lock_irqsave(&dev->lock, flags);
		dev->event_seq++;
		spin_unlock_irqrestore(&dev->lock, flags);
	} else {
		spin_lock_irqsave(&dev->lock, flags);
		for (i = 0; i <= dev->desc.max_slot_index; i++)
			ccid_int_presence(dev, i, msg.present & BIT(i),
					  msg.changed & BIT(i));
		spin_unlock_irqrestore(&dev->lock, flags);
	}
	wake_up_interruptible(&dev->poll_wait);

resubmit:
	ret = usb_submit_urb(urb, GFP_ATOMIC);
	if (ret && ret != -EPERM && ret != -ENODEV)
		dev_err_ratelimited(&dev->intf->dev,
				    "cannot resubmit interrupt-IN: %d\n", ret);
}

static int ccid_open(struct inode *inode, struct file *file)
{
	struct usb_interface *intf;
	struct ccid_file *f;
	struct ccid_dev *dev;
	unsigned int i;
	int ret;

	intf = usb_find_interface(&ccid_driver, iminor(inode));
	if (!intf)
		return -ENODEV;
	dev = usb_get_intfdata(intf);
	if (!dev)
		return -ENODEV;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;

	/*
	 * usb_register_dev() serializes open against disconnect.  An open
	 * reader stays resumed; the resume, if any, starts new generations
	 * before this file takes them for acknowledged.
	 */
	ret = usb_autopm_get_interface(intf);
	if (ret) {
		kfree(f);
		return ret;
	}
	kref_get(&dev->kref);
	f->dev = dev;
	spin_lock_irq(&dev->lock);
	for (i = 0; i < CCID_MAX_SLOTS; i++)
		f->acked_gen[i] = dev->slots[i].gen;
	f->seen_event_seq = dev->event_seq;
	spin_unlock_irq(&dev->lock);
	file->private_data = f;

	mutex_lock(&dev->open_mutex);
	if (!dev->open_count++ && dev->int_urb) {
		dev->int_errors = 0;
		ret = usb_submit_urb(dev->int_urb, GFP_KERNEL);
		if (ret)
			dev_warn_ratelimited(&intf->dev,
					     "no slot events: interrupt-IN failed: %d\n",
					     ret);
	}
	mutex_unlock(&dev->open_mutex);

	return stream_open(inode, file);
}

static int ccid_release(struct inode *inode, struct file *file)
{
	struct ccid_file *f = file->private_data;
	struct ccid_dev *dev = f->dev;

	mutex_lock(&dev->open_mutex);
	if (!--dev->open_count && dev->int_urb)
		usb_kill_urb(dev->int_urb);
	/* after disconnect the USB core has dropped our PM references */
	if (!dev->unbound)
		usb_autopm_put_interface(dev->intf);
	mutex_unlock(&dev->open_mutex);

	kfree(f);
	kref_put(&dev->kref, ccid_delete);
	return 0;
}

static __poll_t ccid_poll(struct file *file, poll_table *wait)
{
	struct ccid_file *f = file->private_data;
	struct ccid_dev *dev = f->dev;
	__poll_t mask = 0;
	unsigned int i;

	poll_wait(file, &dev->poll_wait, wait);
	if (ccid_io_state(dev) == -ENODEV)
		return EPOLLHUP | EPOLLERR;

	spin_lock_irq(&dev->lock);
	if (f->seen_event_seq != dev->event_seq)
		mask |= EPOLLIN | EPOLLRDNORM;
	for (i = 0; i <= dev->desc.max_slot_index; i++)
		if (f->acked_gen[i] != dev->slots[i].gen)
			mask |= EPOLLPRI;
	spin_unlock_irq(&dev->lock);
	return mask;
}

static const struct file_operations ccid_fops = {
	.owner		= THIS_MODULE,
	.open		= ccid_open,
	.release	= ccid_release,
	.poll		= ccid_poll,
	.unlocked_ioctl	= ccid_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static struct usb_class_driver ccid_class = {
	.name		= "ccid%d",
	.fops		= &ccid_fops,
	.minor_base	= CCID_MINOR_BASE,
};

/* sysfs: what the reader is and what it went through */

static struct ccid_dev *ccid_from_dev(struct device *d)
{
	return usb_get_intfdata(to_usb_interface(d));
}

static ssize_t firmware_version_show(struct device *d,
				     struct device_attribute *attr, char *buf)
{
	struct ccid_dev *dev = ccid_from_dev(d);
	u16 bcd = le16_to_cpu(dev->udev->descriptor.bcdDevice);

	return sysfs_emit(buf, "%x.%02x\n", bcd >> 8, bcd & 0xff);
}
static DEVICE_ATTR_RO(firmware_version);

static ssize_t ccid_version_show(struct device *d,
				 struct device_attribute *attr, char *buf)
{
	u16 bcd = ccid_from_dev(d)->desc.bcd_ccid;

	return sysfs_emit(buf, "%x.%02x\n", bcd >> 8, bcd & 0xff);
}
static DEVICE_ATTR_RO(ccid_version);

static ssize_t slots_show(struct device *d, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%u\n",
			  ccid_from_dev(d)->desc.max_slot_index + 1);
}
static DEVICE_ATTR_RO(slots);

static ssize_t protocols_show(struct device *d, struct device_attribute *attr,
			      char *buf)
{
	u32 protocols = ccid_from_dev(d)->desc.protocols;

	return sysfs_emit(buf, "%s%s%s\n",
			  protocols & BIT(0) ? "T=0" : "",
			  (protocols & BIT(0)) && (protocols & BIT(1)) ? " " : "",
			  protocols & BIT(1) ? "T=1" : "");
}
static DEVICE_ATTR_RO(protocols);

static ssize_t exchange_level_show(struct device *d,
				   struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n",
		ccid_exchange_level_name(ccid_from_dev(d)->desc.features));
}
static DEVICE_ATTR_RO(exchange_level);

static ssize_t max_message_length_show(struct device *d,
				       struct device_attribute *attr,
				       char *buf)
{
	return sysfs_emit(buf, "%u\n", ccid_from_dev(d)->desc.max_msg_len);
}
static DEVICE_ATTR_RO(max_message_length);

static ssize_t pin_support_show(struct device *d,
				struct device_attribute *attr, char *buf)
{
	u8 pin = ccid_from_dev(d)->desc.pin_support;

	if (!(pin & (CCID_PIN_VERIFY | CCID_PIN_MODIFY)))
		return sysfs_emit(buf, "none\n");
	return sysfs_emit(buf, "%s%s%s\n",
			  pin & CCID_PIN_VERIFY ? "verify" : "",
			  (pin & CCID_PIN_VERIFY) && (pin & CCID_PIN_MODIFY) ?
			  " " : "",
			  pin & CCID_PIN_MODIFY ? "modify" : "");
}
static DEVICE_ATTR_RO(pin_support);

static ssize_t features_show(struct device *d, struct device_attribute *attr,
			     char *buf)
{
	return sysfs_emit(buf, "0x%08x\n", ccid_from_dev(d)->desc.features);
}
static DEVICE_ATTR_RO(features);

struct ccid_counter_attr {
	struct device_attribute attr;
	size_t offset;
};

static ssize_t ccid_counter_show(struct device *d,
				 struct device_attribute *attr, char *buf)
{
	struct ccid_counter_attr *ca =
		container_of(attr, struct ccid_counter_attr, attr);
	atomic_t *counter = (void *)&ccid_from_dev(d)->stats + ca->offset;

	return sysfs_emit(buf, "%u\n", (unsigned int)atomic_read(counter));
}

#define CCID_COUNTER_ATTR(_name)					\
	struct ccid_counter_attr ccid_attr_##_name = {			\
		.attr = __ATTR(_name, 0444, ccid_counter_show, NULL),	\
		.offset = offsetof(struct ccid_stats, _name),		\
	}

static CCID_COUNTER_ATTR(timeouts);
static CCID_COUNTER_ATTR(aborts);
static CCID_COUNTER_ATTR(stale_frames);
static CCID_COUNTER_ATTR(time_extensions);
static CCID_COUNTER_ATTR(protocol_errors);
static CCID_COUNTER_ATTR(clear_halts);
static CCID_COUNTER_ATTR(usb_resets);
static CCID_COUNTER_ATTR(hw_errors);
static CCID_COUNTER_ATTR(slot_changes);
static CCID_COUNTER_ATTR(out_of_step);

static ssize_t quirks_show(struct device *d, struct device_attribute *attr,
			   char *buf)
{
	static const struct {
		u32 flag;
		const char *name;
	} names[] = {
		{ CCID_QUIRK_BROKEN_SECURE, "broken_secure" },
		{ CCID_QUIRK_BOGUS_FIRMWARE, "bogus_firmware" },
		{ CCID_QUIRK_OUT_ZLP, "out_zlp" },
	};
	u32 q = ccid_from_dev(d)->quirks;
	const char *sep = "";
	unsigned int i;
	int len = 0;

	if (!q)
		return sysfs_emit(buf, "none\n");
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		if (!(q & names[i].flag))
			continue;
		len += sysfs_emit_at(buf, len, "%s%s", sep, names[i].name);
		sep = " ";
	}
	return len + sysfs_emit_at(buf, len, "\n");
}
static DEVICE_ATTR_RO(quirks);

static struct attribute *ccid_attrs[] = {
	&dev_attr_firmware_version.attr,
	&dev_attr_ccid_version.attr,
	&dev_attr_slots.attr,
	&dev_attr_protocols.attr,
	&dev_attr_exchange_level.attr,
	&dev_attr_max_message_length.attr,
	&dev_attr_pin_support.attr,
	&dev_attr_features.attr,
	&ccid_attr_timeouts.attr.attr,
	&ccid_attr_aborts.attr.attr,
	&ccid_attr_stale_frames.attr.attr,
	&ccid_attr_time_extensions.attr.attr,
	&ccid_attr_protocol_errors.attr.attr,
	&ccid_attr_clear_halts.attr.attr,
	&ccid_attr_usb_resets.attr.attr,
	&ccid_attr_hw_errors.attr.attr,
	&ccid_attr_slot_changes.attr.attr,
	&ccid_attr_out_of_step.attr.attr,
	&dev_attr_quirks.attr,
	NULL
};
ATTRIBUTE_GROUPS(ccid);

/*
 * The class descriptor normally sits in the interface's extra bytes;
 * a few old readers put it after the last endpoint instead.
 */
static int ccid_find_class_desc(struct usb_host_interface *alt, u8 **desc,
				size_t *len)
{
	struct usb_host_endpoint *ep;

	if (!__usb_get_extra_descriptor(alt->extra, alt->extralen,
					CCID_CLASS_DESC_TYPE, (void **)desc, 2)) {
		*len = alt->extra + alt->extralen - *desc;
		return 0;
	}
	if (!alt->desc.bNumEndpoints)
		return -ENOENT;
	ep = &alt->endpoint[alt->desc.bNumEndpoints - 1];
	if (!__usb_get_extra_descriptor(ep->extra, ep->extralen,
					CCID_CLASS_DESC_TYPE, (void **)desc, 2)) {
		*len = ep->extra + ep->extralen - *desc;
		return 0;
	}
	return -ENOENT;
}

static int ccid_parse_intf(struct ccid_dev *dev, struct usb_interface *intf)
{
	struct usb_host_interface *alt = intf->cur_altsetting;
	struct usb_endpoint_descriptor *in, *out, *irq;
	struct device *d = &intf->dev;
	const char *why;
	size_t len;
	u16 in_maxp;
	u8 *raw;
	int ret;

	if (ccid_find_class_desc(alt, &raw, &len)) {
		dev_err(d, "no CCID class descriptor\n");
		return -ENODEV;
	}
	ret = ccid_parse_class_desc(raw, len, &dev->desc, &why);
	if (ret) {
		dev_err(d, "bad CCID class descriptor: %s\n", why);
		return -ENODEV;
	}

	if (usb_find_common_endpoints(alt, &in, &out, NULL, NULL)) {
		dev_err(d, "bulk-IN or bulk-OUT endpoint missing\n");
		return -ENODEV;
	}
	/* Slot events are optional: without interrupt-IN, poll() stays quiet */
	if (!usb_find_int_in_endpoint(alt, &irq)) {
		if (usb_endpoint_maxp(irq) < 2) {
			dev_err(d, "interrupt-IN wMaxPacketSize below 2\n");
			return -ENODEV;
		}
		dev->int_ep = irq;
	}
	in_maxp = usb_endpoint_maxp(in);
	dev->out_maxp = usb_endpoint_maxp(out);
	if (!in_maxp || !dev->out_maxp) {
		dev_err(d, "bulk endpoint with wMaxPacketSize 0\n");
		return -ENODEV;
	}

	if (ccid_buffer_sizes(dev->desc.max_msg_len, in_maxp, &dev->buf_len,
			      &dev->in_len)) {
		dev_err(d, "dwMaxCCIDMessageLength %u too small\n",
			dev->desc.max_msg_len);
		return -ENODEV;
	}

	dev->in_pipe = usb_rcvbulkpipe(dev->udev, usb_endpoint_num(in));
	dev->out_pipe = usb_sndbulkpipe(dev->udev, usb_endpoint_num(out));
	dev->iface_class = alt->desc.bInterfaceClass;
	dev->ifnum = alt->desc.bInterfaceNumber;
	return 0;
}

/*
 * Known-bad firmware: refuse what libccid refuses, keep the PIN pad of
 * firmware that wedges after a verify from being used.  quirks= replaces
 * the table's verdict for a VID:PID.
 */
static int ccid_apply_quirks(struct ccid_dev *dev)
{
	const struct usb_device_descriptor *dd = &dev->udev->descriptor;
	u16 vid = le16_to_cpu(dd->idVendor), pid = le16_to_cpu(dd->idProduct);
	u16 bcd = le16_to_cpu(dd->bcdDevice);
	const struct ccid_quirk *q = ccid_find_quirk(vid, pid, bcd);
	struct device *d = &dev->intf->dev;
	u32 flags = q ? q->flags : 0;
	int ret;

	if (quirks[0]) {
		/* the parameter may be rewritten at any time */
		kernel_param_lock(THIS_MODULE);
		ret = ccid_quirk_override(quirks, vid, pid, &flags);
		kernel_param_unlock(THIS_MODULE);
		if (ret < 0)
			dev_warn(d, "ignoring malformed quirks parameter\n");
		else if (ret)
			dev_info(d, "quirks 0x%x set by the quirks parameter\n",
				 flags);
	}
	dev->quirks = flags;

	if (flags & CCID_QUIRK_BOGUS_FIRMWARE) {
		if (q && q->flags & CCID_QUIRK_BOGUS_FIRMWARE)
			dev_err(d, "firmware %x.%02x is broken, %x.%02x or later needed (ccid.quirks=%04x:%04x: overrides)\n",
				bcd >> 8, bcd & 0xff, q->fixed_in >> 8,
				q->fixed_in & 0xff, vid, pid);
		else
			dev_err(d, "firmware %x.%02x is marked broken by the quirks parameter\n",
				bcd >> 8, bcd & 0xff);
		return -ENODEV;
	}
	if (flags & CCID_QUIRK_BROKEN_SECURE) {
		if (q && q->flags & CCID_QUIRK_BROKEN_SECURE)
			dev_warn(d, "firmware %x.%02x wedges after a PIN-pad verify: Secure disabled; firmware %x.%02x fixes it (ccid.quirks=%04x:%04x: overrides)\n",
				 bcd >> 8, bcd & 0xff, q->fixed_in >> 8,
				 q->fixed_in & 0xff, vid, pid);
		else
			dev_warn(d, "Secure disabled by the quirks parameter\n");
	}
	return 0;
}

static int ccid_alloc_int(struct ccid_dev *dev)
{
	struct usb_endpoint_descriptor *ep = dev->int_ep;

	if (!ep)
		return 0;
	dev->int_buf = kmalloc(usb_endpoint_maxp(ep), GFP_KERNEL);
	dev->int_urb = usb_alloc_urb(0, GFP_KERNEL);
	if (!dev->int_buf || !dev->int_urb)
		return -ENOMEM;
	usb_fill_int_urb(dev->int_urb, dev->udev,
			 usb_rcvintpipe(dev->udev, usb_endpoint_num(ep)),
			 dev->int_buf, usb_endpoint_maxp(ep), ccid_int_complete,
			 dev, ep->bInterval);
	return 0;
}

static int ccid_probe(struct usb_interface *intf,
		      const struct usb_device_id *id)
{
	struct usb_host_interface *alt = intf->cur_altsetting;
	struct ccid_dev *dev;
	int ret;

	if (alt->desc.bInterfaceClass == USB_CLASS_CSCID) {
		switch (alt->desc.bInterfaceProtocol) {
		case CCID_PROTO_BULK:
			break;
		case CCID_PROTO_ICCD_A:
		case CCID_PROTO_ICCD_B:
			dev_info(&intf->dev,
				 "ICCD (protocol %u) is not supported\n",
				 alt->desc.bInterfaceProtocol);
			return -ENODEV;
		default:
			dev_info(&intf->dev, "unknown CCID protocol %u\n",
				 alt->desc.bInterfaceProtocol);
			return -ENODEV;
		}
	}

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;

	kref_init(&dev->kref);
	lockdep_register_key(&dev->io_key);
	mutex_init(&dev->io_mutex);
	lockdep_set_class(&dev->io_mutex, &dev->io_key);
	ratelimit_state_init(&dev->uevent_rs, CCID_UEVENT_INTERVAL,
			     CCID_UEVENT_BURST);
	ratelimit_set_flags(&dev->uevent_rs, RATELIMIT_MSG_ON_RELEASE);
	mutex_init(&dev->open_mutex);
	spin_lock_init(&dev->lock);
	init_waitqueue_head(&dev->wait);
	init_waitqueue_head(&dev->poll_wait);
	dev->busy_slot = -1;
	dev->udev = usb_get_dev(interface_to_usbdev(intf));
	dev->intf = usb_get_intf(intf);

	ret = ccid_parse_intf(dev, intf) ?: ccid_apply_quirks(dev);
	if (ret)
		goto error;

	ret = ccid_alloc_io(dev) ?: ccid_alloc_int(dev);
	if (ret)
		goto error;

	usb_set_intfdata(intf, dev);

	ret = usb_register_dev(intf, &ccid_class);
	if (ret) {
		dev_err(&intf->dev, "no minor for the character device\n");
		usb_set_intfdata(intf, NULL);
		goto error;
	}

	dev_info(&intf->dev,
		 "%s: %04x:%04x firmware %x.%02x, %u slot(s), %s level\n",
		 dev_name(intf->usb_dev),
		 le16_to_cpu(dev->udev->descriptor.idVendor),
		 le16_to_cpu(dev->udev->descriptor.idProduct),
		 le16_to_cpu(dev->udev->descriptor.bcdDevice) >> 8,
		 le16_to_cpu(dev->udev->descriptor.bcdDevice) & 0xff,
		 dev->desc.max_slot_index + 1,
		 ccid_exchange_level_name(dev->desc.features));
	return 0;

error:
	kref_put(&dev->kref, ccid_delete);
	return ret;
}

static void ccid_stop_io(struct ccid_dev *dev)
{
	usb_poison_urb(dev->in_urb);
	usb_poison_urb(dev->out_urb);
	usb_poison_urb(dev->int_urb);
}

/*
 * The interrupt URB is unpoisoned under open_mutex: a first open() in
 * between would submit it too, and submit it twice.
 */
static void ccid_restart_io(struct ccid_dev *dev)
{
	usb_unpoison_urb(dev->in_urb);
	usb_unpoison_urb(dev->out_urb);

	mutex_lock(&dev->open_mutex);
	usb_unpoison_urb(dev->int_urb);
	if (dev->open_count && dev->int_urb) {
		dev->int_errors = 0;
		if (usb_submit_urb(dev->int_urb, GFP_NOIO))
			dev_warn_ratelimited(&dev->intf->dev,
					     "slot events lost\n");
	}
	mutex_unlock(&dev->open_mutex);
}

/* A reset or a suspend begins: end the I/O in flight, hold new I/O. */
static void ccid_quiesce(struct ccid_dev *dev, int flag)
{
	set_bit(flag, &dev->flags);
	ccid_stop_io(dev);
}

/* ...and is over: the cards lost power, every slot starts a new generation. */
static void ccid_wake(struct ccid_dev *dev, int flag)
{
	clear_bit(flag, &dev->flags);
	ccid_restart_io(dev);
	ccid_reset_slots(dev, GENMASK(dev->desc.max_slot_index, 0));
}

static void ccid_disconnect(struct usb_interface *intf)
{
	struct ccid_dev *dev = usb_get_intfdata(intf);

	/*
	 * Open files see the reader gone before its node goes, then the
	 * command in flight ends at once and no URB goes out any more.
	 */
	set_bit(CCID_FLAG_GONE, &dev->flags);
	wake_up_interruptible_all(&dev->poll_wait);
	usb_deregister_dev(intf, &ccid_class);
	ccid_stop_io(dev);

	/* Wait for the command in flight: it sees GONE and ends. */
	mutex_lock(&dev->io_mutex);
	mutex_unlock(&dev->io_mutex);

	mutex_lock(&dev->open_mutex);
	dev->unbound = true;
	mutex_unlock(&dev->open_mutex);

	usb_set_intfdata(intf, NULL);
	kref_put(&dev->kref, ccid_delete);
}

/*
 * A reset: finish the command in flight and hold io_mutex until the reset
 * is over, so that the driver stays bound.  When the driver's own recovery
 * resets the device, it holds io_mutex already.
 */
static int ccid_pre_reset(struct usb_interface *intf)
{
	struct ccid_dev *dev = usb_get_intfdata(intf);

	ccid_quiesce(dev, CCID_FLAG_RESETTING);
	if (!dev->self_reset)
		mutex_lock(&dev->io_mutex);
	return 0;
}

static int ccid_post_reset(struct usb_interface *intf)
{
	struct ccid_dev *dev = usb_get_intfdata(intf);

	/* The reader's queues are empty: no answer is owed any more */
	bitmap_zero(dev->abandoned, 256);
	ccid_wake(dev, CCID_FLAG_RESETTING);
	if (!dev->self_reset) {
		/* the driver's own resets are traced by its recovery */
		trace_ccid_usb_reset(dev, "external", 0);
		mutex_unlock(&dev->io_mutex);
	}
	return 0;
}

/*
 * Suspend ends the command in flight with -EIO; after resume the cards
 * are taken as powered off, as after a reset.  Open files hold a PM
 * reference, so only a system suspend finds the reader open: autosuspend
 * waits until the last file is closed.
 */
static int ccid_suspend(struct usb_interface *intf, pm_message_t message)
{
	struct ccid_dev *dev = usb_get_intfdata(intf);

	ccid_quiesce(dev, CCID_FLAG_SUSPENDED);
	return 0;
}

static int ccid_resume(struct usb_interface *intf)
{
	struct ccid_dev *dev = usb_get_intfdata(intf);

	ccid_wake(dev, CCID_FLAG_SUSPENDED);
	return 0;
}

struct usb_driver ccid_driver = {
	.name		= "ccid",
	.probe		= ccid_probe,
	.disconnect	= ccid_disconnect,
	.pre_reset	= ccid_pre_reset,
	.post_reset	= ccid_post_reset,
	.suspend	= ccid_suspend,
	.resume		= ccid_resume,
	.reset_resume	= ccid_resume,
	.id_table	= ccid_ids,
	.dev_groups	= ccid_groups,
	.supports_autosuspend = 1,
};

module_usb_driver(ccid_driver);

MODULE_DESCRIPTION("USB CCID smart-card reader driver");
MODULE_LICENSE("GPL");
