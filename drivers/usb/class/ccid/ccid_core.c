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

void ccid_delete(struct kref *kref)
{
	struct ccid_dev *dev = container_of(kref, struct ccid_dev, kref);

	ccid_free_io(dev);
	usb_put_intf(dev->intf);
	usb_put_dev(dev->udev);
	kfree(dev);
}

static int ccid_open(struct inode *inode, struct file *file)
{
	struct usb_interface *intf;
	struct ccid_dev *dev;

	intf = usb_find_interface(&ccid_driver, iminor(inode));
	if (!intf)
		return -ENODEV;
	dev = usb_get_intfdata(intf);
	if (!dev)
		return -ENODEV;

	/* usb_register_dev() serializes open against disconnect */
	kref_get(&dev->kref);
	file->private_data = dev;
	return stream_open(inode, file);
}

static int ccid_release(struct inode *inode, struct file *file)
{
	struct ccid_dev *dev = file->private_data;

	kref_put(&dev->kref, ccid_delete);
	return 0;
}

static __poll_t ccid_poll(struct file *file, poll_table *wait)
{
	struct ccid_dev *dev = file->private_data;

	poll_wait(file, &dev->poll_wait, wait);
	if (test_bit(CCID_FLAG_GONE, &dev->flags))
		return EPOLLHUP | EPOLLERR;
	return 0;
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
	struct usb_endpoint_descriptor *in, *out;
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
	in_maxp = usb_endpoint_maxp(in);
	dev->out_maxp = usb_endpoint_maxp(out);
	if (!in_maxp || !dev->out_maxp) {
		dev_err(d, "bulk endpoint with wMaxPacketSize 0\n");
		return -ENODEV;
	}

	if (dev->desc.max_msg_len < CCID_MIN_MSG_LEN &&
	    dev->desc.max_msg_len < in_maxp) {
		dev_err(d, "dwMaxCCIDMessageLength %u too small\n",
			dev->desc.max_msg_len);
		return -ENODEV;
	}

	dev->in_pipe = usb_rcvbulkpipe(dev->udev, usb_endpoint_num(in));
	dev->out_pipe = usb_sndbulkpipe(dev->udev, usb_endpoint_num(out));
	dev->buf_len = min_t(size_t, dev->desc.max_msg_len, CCID_MAX_MSG_LEN);
	dev->in_len = roundup(dev->buf_len, in_maxp);
	dev->iface_class = alt->desc.bInterfaceClass;
	dev->ifnum = alt->desc.bInterfaceNumber;
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
	mutex_init(&dev->io_mutex);
	spin_lock_init(&dev->lock);
	init_waitqueue_head(&dev->wait);
	init_waitqueue_head(&dev->poll_wait);
	dev->busy_slot = -1;
	dev->udev = usb_get_dev(interface_to_usbdev(intf));
	dev->intf = usb_get_intf(intf);

	ret = ccid_parse_intf(dev, intf);
	if (ret)
		goto error;

	ret = ccid_alloc_io(dev);
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
	usb_poison_urb(dev->in_urb);
	usb_poison_urb(dev->out_urb);

	mutex_lock(&dev->io_mutex);
	dev->disconnected = true;
	mutex_unlock(&dev->io_mutex);

	usb_set_intfdata(intf, NULL);
	kref_put(&dev->kref, ccid_delete);
}

/*
 * Someone is resetting the device: finish the command in flight and hold
 * io_mutex until the reset is over, so that the driver stays bound.
 */
static int ccid_pre_reset(struct usb_interface *intf)
{
	struct ccid_dev *dev = usb_get_intfdata(intf);

	set_bit(CCID_FLAG_RESETTING, &dev->flags);
	usb_poison_urb(dev->in_urb);
	usb_poison_urb(dev->out_urb);
	mutex_lock(&dev->io_mutex);
	return 0;
}

static int ccid_post_reset(struct usb_interface *intf)
{
	struct ccid_dev *dev = usb_get_intfdata(intf);

	usb_unpoison_urb(dev->in_urb);
	usb_unpoison_urb(dev->out_urb);
	clear_bit(CCID_FLAG_RESETTING, &dev->flags);
	mutex_unlock(&dev->io_mutex);
	return 0;
}

struct usb_driver ccid_driver = {
	.name		= "ccid",
	.probe		= ccid_probe,
	.disconnect	= ccid_disconnect,
	.pre_reset	= ccid_pre_reset,
	.post_reset	= ccid_post_reset,
	.id_table	= ccid_ids,
	.dev_groups	= ccid_groups,
};

module_usb_driver(ccid_driver);

MODULE_DESCRIPTION("USB CCID smart-card reader driver");
MODULE_LICENSE("GPL");
