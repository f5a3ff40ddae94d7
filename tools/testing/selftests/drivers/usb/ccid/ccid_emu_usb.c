// SPDX-License-Identifier: GPL-2.0
/*
 * ccid_emu: the USB side.  Attaches to vhci_hcd through a socketpair,
 * speaks USB/IP (CMD_SUBMIT/CMD_UNLINK in, RET_SUBMIT/RET_UNLINK out),
 * answers ep0, and keeps the IN URBs pending until the reader has a frame
 * for them.
 *
 * The rules this file keeps (see usbip-facts):
 *  - every CMD_UNLINK is answered, with its own seqnum: -ECONNRESET when
 *    the URB was still pending here, 0 when it had been answered;
 *  - a URB is taken off the pending list before its RET_SUBMIT is sent,
 *    so no RET_SUBMIT ever follows the RET_UNLINK of the same URB;
 *  - IN data never exceeds the URB's transfer_buffer_length (vhci drops
 *    the connection otherwise); "babble" is a full URB with -EOVERFLOW.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/usbdevice_fs.h>

#include "ccid_emu.h"

#define VHCI_DIR	"/sys/devices/platform/vhci_hcd.0"

#define USBIP_CMD_SUBMIT	1
#define USBIP_CMD_UNLINK	2
#define USBIP_RET_SUBMIT	3
#define USBIP_RET_UNLINK	4
#define USBIP_HDR		48
#define USBIP_MAX_XFER		(16u << 20)
#define USBIP_URB_ZERO_PACKET	0x0040	/* = URB_ZERO_PACKET */

#define NODE_SCAN_STEP_MS	20

struct urb {
	struct urb *next;
	uint32_t seqnum;
	uint32_t ep;		/* bEndpointAddress, direction bit included */
	uint32_t len;		/* transfer_buffer_length */
	uint32_t flags;		/* transfer_flags, USBIP_URB_* */
};

struct frame {
	struct frame *next;
	uint64_t due;
	unsigned int cmd_no;
	uint8_t slot, seq;
	unsigned int flags;
	const char *what;
	size_t len, off;
	uint8_t data[];
};

static struct {
	int fd;
	int port;
	uint32_t devid;
	char busid[32];
	uint8_t *rx;
	size_t rx_len, rx_size;
	struct urb *urbs;		/* pending, in arrival order */
	/* Per interface */
	struct frame *frames[EMU_MAX_INTF];	/* bulk-IN, by due time */
	struct frame *notes[EMU_MAX_INTF];	/* interrupt-IN, in order */
	bool node_seen[EMU_MAX_INTF];		/* "node" line logged */
	uint8_t config;			/* bConfigurationValue, 0 = none */
	uint64_t scan_next, scan_end;	/* looking for /dev/ccidN */
} usb = { .fd = -1, .port = -1 };

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* The layer above: see "Layers" in ccid_emu.h */
static const struct usb_upper_ops *upper;

void usb_register(const struct usb_upper_ops *ops)
{
	upper = ops;
}

int usb_fd(void)
{
	return usb.fd;
}

/* ------------------------------------------------------------------ */
/* Attaching */

/* The local_busid column of our port's line in the vhci status files */
static int read_busid(int port, char *busid, size_t size)
{
	char path[128], line[256], hub[8], id[32];
	unsigned int p, sta;
	int i, ret = -1;
	FILE *f;

	for (i = 0; ret && i < 64; i++) {
		if (i)
			snprintf(path, sizeof(path), VHCI_DIR "/status.%d", i);
		else
			snprintf(path, sizeof(path), VHCI_DIR "/status");
		f = fopen(path, "r");
		if (!f)
			break;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "%7s %u %u %*s %*s %*s %31s", hub, &p,
				   &sta, id) != 4 || (int)p != port)
				continue;
			snprintf(busid, size, "%s", id);
			ret = 0;
			break;
		}
		fclose(f);
	}
	return ret;
}

static int try_attach(int port)
{
	char buf[64];
	int sv[2], fd, n, err;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
		elog("error socketpair: %s", strerror(errno));
		return -errno;
	}
	usb.devid = 0x10000u | (port + 1);
	n = snprintf(buf, sizeof(buf), "%d %d %u %d", port, sv[1], usb.devid,
		     cfg.speed);
	fd = open(VHCI_DIR "/attach", O_WRONLY);
	if (fd < 0) {
		err = -errno;
		elog("error cannot open " VHCI_DIR "/attach: %s (vhci-hcd? root?)",
		     strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return err;
	}
	err = write(fd, buf, n) == n ? 0 : -errno;
	close(fd);
	/* vhci holds its own reference to the socket now */
	close(sv[1]);
	if (err) {
		close(sv[0]);
		return err;
	}
	usb.fd = sv[0];
	usb.port = port;
	usb.busid[0] = '\0';
	elog("attached port=%d speed=%d devid=0x%08x", port, cfg.speed,
	     usb.devid);
	return 0;
}

/*
 * Take the first free high-speed port (state 004) of any vhci controller,
 * or cfg.port; a port someone else took meanwhile gives EBUSY: next one.
 */
int usb_attach(void)
{
	char path[128], line[256], hub[8];
	unsigned int port, sta, nports = 0;
	int i, ret, tried = 0;
	FILE *f;

	if (!upper) {
		elog("error no reader registered (usb_register)");
		return -EINVAL;
	}
	f = fopen(VHCI_DIR "/nports", "r");
	if (!f || fscanf(f, "%u", &nports) != 1) {
		elog("error no " VHCI_DIR "/nports: is vhci-hcd loaded?");
		if (f)
			fclose(f);
		return -ENODEV;
	}
	fclose(f);

	for (i = 0; i < 64; i++) {
		if (i)
			snprintf(path, sizeof(path), VHCI_DIR "/status.%d", i);
		else
			snprintf(path, sizeof(path), VHCI_DIR "/status");
		f = fopen(path, "r");
		if (!f)
			break;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "%7s %u %u", hub, &port, &sta) != 3 ||
			    strcmp(hub, "hs") || sta != 4 || port >= nports)
				continue;
			if (cfg.port >= 0 && (int)port != cfg.port)
				continue;
			tried++;
			ret = try_attach(port);
			if (!ret) {
				fclose(f);
				return 0;
			}
			if (ret != -EBUSY) {
				elog("error attach port %u: %s", port,
				     strerror(-ret));
				fclose(f);
				return ret;
			}
		}
		fclose(f);
	}
	elog("error no free high-speed vhci port (%d tried)", tried);
	return -EBUSY;
}

static void free_frames(struct frame **list)
{
	struct frame *f;

	while ((f = *list)) {
		*list = f->next;
		free(f);
	}
}

static void free_list(void)
{
	struct urb *u;
	int i;

	while ((u = usb.urbs)) {
		usb.urbs = u->next;
		free(u);
	}
	for (i = 0; i < EMU_MAX_INTF; i++) {
		free_frames(&usb.frames[i]);
		free_frames(&usb.notes[i]);
	}
}

void usb_close(void)
{
	if (usb.fd >= 0)
		close(usb.fd);
	usb.fd = -1;
	usb.rx_len = 0;
	usb.config = 0;
	usb.scan_end = 0;
	free_list();
}

/*
 * USBDEVFS_RESET on the device with @busid, as a helper for tests: the
 * same usb_reset_device() a driver's recovery does.
 */
int usb_reset_device(const char *busid)
{
	char path[128], dev[64];
	unsigned int bus, num;
	int fd, ret;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/busnum", busid);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%u", &bus) != 1) {
		fprintf(stderr, "ccid_emu: no USB device %s\n", busid);
		return 1;
	}
	fclose(f);
	snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/devnum", busid);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%u", &num) != 1) {
		fprintf(stderr, "ccid_emu: no USB device %s\n", busid);
		return 1;
	}
	fclose(f);
	snprintf(dev, sizeof(dev), "/dev/bus/usb/%03u/%03u", bus, num);
	fd = open(dev, O_WRONLY);
	if (fd < 0) {
		fprintf(stderr, "ccid_emu: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	ret = ioctl(fd, USBDEVFS_RESET, 0);
	if (ret)
		fprintf(stderr, "ccid_emu: USBDEVFS_RESET %s: %s\n", dev,
			strerror(errno));
	close(fd);
	return ret ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* Sending */

static void send_all(const struct iovec *iov_in, int cnt)
{
	struct iovec iov[4];
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = cnt };
	ssize_t n;

	memcpy(iov, iov_in, cnt * sizeof(*iov));
	while (msg.msg_iovlen) {
		n = sendmsg(usb.fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			elog("detached reason=send-error error=%s",
			     strerror(errno));
			emu_exit(NULL);
		}
		while (n > 0 && msg.msg_iovlen) {
			if ((size_t)n >= msg.msg_iov->iov_len) {
				n -= msg.msg_iov->iov_len;
				msg.msg_iov++;
				msg.msg_iovlen--;
			} else {
				msg.msg_iov->iov_base =
					(uint8_t *)msg.msg_iov->iov_base + n;
				msg.msg_iov->iov_len -= n;
				n = 0;
			}
		}
	}
}

/*
 * RET_SUBMIT for @u (already off the pending list); frees @u.  IN: @len
 * bytes of @data; OUT: actual_length @len.
 */
static void ret_submit_len(struct urb *u, int status, const uint8_t *data,
			   size_t len)
{
	uint8_t h[USBIP_HDR] = { 0 };
	struct iovec iov[2] = {
		{ .iov_base = h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)data, .iov_len = len },
	};
	bool in = u->ep & 0x80;

	put_be32(h, USBIP_RET_SUBMIT);
	put_be32(h + 4, u->seqnum);
	put_be32(h + 0x14, (uint32_t)status);
	put_be32(h + 0x18, len);
	send_all(iov, in && len ? 2 : 1);
	free(u);
}

/* The same; OUT: actual_length is the whole transfer, or 0 on error */
static void ret_submit(struct urb *u, int status, const uint8_t *data,
		       size_t len)
{
	if (!(u->ep & 0x80))
		len = status ? 0 : u->len;
	ret_submit_len(u, status, data, len);
}

static void ret_unlink(uint32_t seqnum, int status)
{
	uint8_t h[USBIP_HDR] = { 0 };
	struct iovec iov = { .iov_base = h, .iov_len = sizeof(h) };

	put_be32(h, USBIP_RET_UNLINK);
	put_be32(h + 4, seqnum);
	put_be32(h + 0x14, (uint32_t)status);
	send_all(&iov, 1);
}

/* ------------------------------------------------------------------ */
/* Endpoints and queues */

static struct ep_cfg *ep_by_addr(uint8_t addr)
{
	int i;

	for (i = 0; i < cfg.num_eps; i++)
		if (cfg.eps[i].addr == addr)
			return &cfg.eps[i];
	return NULL;
}

static struct ep_cfg *ep_by_role(int intf, enum ep_role role)
{
	int i;

	for (i = 0; i < cfg.num_eps; i++)
		if (cfg.eps[i].intf == intf && cfg.eps[i].role == role)
			return &cfg.eps[i];
	return NULL;
}

bool usb_has_role(int intf, enum ep_role role)
{
	return ep_by_role(intf, role) != NULL;
}

void usb_halt(int intf, enum ep_role role)
{
	struct ep_cfg *ep = ep_by_role(intf, role);

	if (!ep)
		return;
	ep->halted = true;
	elog("stall ep=0x%02x", ep->addr);
}

static struct urb *take_urb(uint8_t addr)
{
	struct urb **pp, *u;

	for (pp = &usb.urbs; (u = *pp); pp = &u->next) {
		if (u->ep == addr) {
			*pp = u->next;
			return u;
		}
	}
	return NULL;
}

static struct urb *find_urb(uint8_t addr)
{
	struct urb *u;

	for (u = usb.urbs; u; u = u->next)
		if (u->ep == addr)
			return u;
	return NULL;
}

static void add_urb(struct urb *u)
{
	struct urb **pp = &usb.urbs;

	while (*pp)
		pp = &(*pp)->next;
	u->next = NULL;
	*pp = u;
}

static struct frame *new_frame(const uint8_t *buf, size_t len)
{
	struct frame *f = calloc(1, sizeof(*f) + len);

	if (!f) {
		elog("error out of memory");
		emu_exit("error");
	}
	if (len)
		memcpy(f->data, buf, len);
	f->len = len;
	return f;
}

/*
 * Queue a bulk-IN frame; frames go out by due time, frames due at the
 * same time in the order they were queued.
 */
void usb_queue_frame(int intf, unsigned int cmd_no, uint8_t slot,
		     uint8_t seq, const uint8_t *buf, size_t len, uint64_t due,
		     unsigned int flags, const char *what)
{
	struct frame *f = new_frame(buf, len), **pp;

	f->cmd_no = cmd_no;
	f->slot = slot;
	f->seq = seq;
	f->due = due;
	f->flags = flags;
	f->what = what;
	for (pp = &usb.frames[intf]; *pp && (*pp)->due <= due;
	     pp = &(*pp)->next)
		;
	f->next = *pp;
	*pp = f;
}

void usb_queue_notify(int intf, const uint8_t *buf, size_t len)
{
	struct frame *f, **pp;
	char hex[80];

	hexstr(hex, sizeof(hex), buf, len);
	if (!usb_has_role(intf, ROLE_INT_IN)) {
		elog("notify-dropped data=%s reason=no-int-in", hex);
		return;
	}
	f = new_frame(buf, len);
	f->due = now_ms() + cfg.notify_delay_ms;
	for (pp = &usb.notes[intf]; *pp; pp = &(*pp)->next)
		;
	*pp = f;
}

/*
 * Drop the frames not yet (even partly) sent for @slot and bSeq @seq
 * (any bSeq if @seq < 0).  Return: the flags of the dropped frames, ORed.
 */
unsigned int usb_drop_frames(int intf, uint8_t slot, int seq)
{
	struct frame **pp = &usb.frames[intf], *f;
	unsigned int flags = 0;

	while ((f = *pp)) {
		if (!f->off && f->slot == slot && (seq < 0 || f->seq == seq)) {
			*pp = f->next;
			flags |= f->flags;
			free(f);
		} else {
			pp = &f->next;
		}
	}
	return flags;
}

static void log_frame(const struct frame *f, size_t sent, int status)
{
	const uint8_t *h = f->data;

	if (!strncmp(f->what, "bad:", 4)) {
		elog("bad %u kind=%s bytes=%zu usb=%d", f->cmd_no, f->what + 4,
		     sent, status);
	} else if (!strcmp(f->what, "time-ext")) {
		elog("time-ext %u slot=%u seq=%u mult=%u", f->cmd_no, h[5],
		     h[6], h[8]);
	} else {
		elog("answer %u type=0x%02x slot=%u seq=%u len=%u status=0x%02x "
		     "error=0x%02x param=0x%02x", f->cmd_no, h[0], h[5], h[6],
		     h[1] | h[2] << 8 | h[3] << 16 | (uint32_t)h[4] << 24,
		     h[7], h[8], h[9]);
	}
}

/*
 * --in-zlp: a frame of a whole number of packets that filled the URB is
 * ended, as on the wire, by a zero-length packet, which the next URB gets
 */
static void queue_in_zlp(int intf, const struct frame *f, size_t n,
			 const struct urb *u)
{
	struct ep_cfg *in = ep_by_role(intf, ROLE_BULK_IN);
	struct frame *z;

	if (!cfg.in_zlp || !in || !in->maxp || n != u->len ||
	    f->len % in->maxp)
		return;
	z = new_frame(NULL, 0);
	z->slot = 0xff;			/* no Abort drops it */
	z->what = "in-zlp";
	z->next = usb.frames[intf];
	usb.frames[intf] = z;
}

/* A full URB of a frame claiming more than fits */
static void deliver_babble(int intf, struct urb *u, struct frame *f)
{
	uint8_t *buf = malloc(u->len ? u->len : 1);

	if (!buf)
		emu_exit("error");
	memset(buf, 0xbb, u->len);
	memcpy(buf, f->data, f->len < u->len ? f->len : u->len);
	if (u->len >= 5)
		put_le32(buf + 1, u->len);
	usb.frames[intf] = f->next;
	log_frame(f, u->len, -EOVERFLOW);
	ret_submit(u, -EOVERFLOW, buf, u->len);
	free(buf);
	upper->frame_sent(intf, f->slot, f->seq, f->flags);
	free(f);
}

/* Send (the next part of) the head frame of @intf to @u */
static void deliver(int intf, struct urb *u)
{
	struct frame *f = usb.frames[intf];
	size_t n = f->len - f->off;

	if (f->flags & FR_BABBLE) {
		deliver_babble(intf, u, f);
		return;
	}
	if (n > u->len) {
		n = u->len;
		if (!(f->flags & FR_NO_SPLIT)) {
			/* The rest goes to the next URB, as on the wire */
			ret_submit(u, 0, f->data + f->off, n);
			f->off += n;
			return;
		}
	}
	usb.frames[intf] = f->next;
	if (!f->len && !strcmp(f->what, "in-zlp"))
		elog("in-zlp");
	else if (f->len >= EMU_HDR || strncmp(f->what, "bad:", 4) == 0 ||
		 f->off)
		log_frame(f, f->off + n, 0);
	if (!(f->flags & FR_NO_SPLIT))
		queue_in_zlp(intf, f, n, u);
	ret_submit(u, 0, f->data + f->off, n);
	upper->frame_sent(intf, f->slot, f->seq, f->flags);
	free(f);
}

static void pump_intf(int intf, uint64_t now)
{
	struct ep_cfg *in = ep_by_role(intf, ROLE_BULK_IN);
	struct ep_cfg *irq = ep_by_role(intf, ROLE_INT_IN);
	struct frame *f;
	struct urb *u;
	char hex[80];

	while (in && (u = find_urb(in->addr))) {
		if (in->halted) {
			take_urb(in->addr);
			ret_submit(u, -EPIPE, NULL, 0);
			continue;
		}
		f = usb.frames[intf];
		if (!f || f->due > now)
			break;
		take_urb(in->addr);
		deliver(intf, u);
	}
	while (irq && (u = find_urb(irq->addr))) {
		if (irq->halted) {
			take_urb(irq->addr);
			ret_submit(u, -EPIPE, NULL, 0);
			continue;
		}
		f = usb.notes[intf];
		if (!f || f->due > now)
			break;
		take_urb(irq->addr);
		usb.notes[intf] = f->next;
		hexstr(hex, sizeof(hex), f->data, f->len);
		elog("notify data=%s", hex);
		ret_submit(u, 0, f->data, f->len < u->len ? f->len : u->len);
		free(f);
	}
}

void usb_pump(void)
{
	uint64_t now = now_ms();
	int i, old = elog_intf(0);

	for (i = 0; usb.fd >= 0 && i < cfg.interfaces; i++) {
		elog_intf(i);
		pump_intf(i, now);
	}
	elog_intf(old);
}

/* ------------------------------------------------------------------ */
/* Descriptors */

static size_t device_desc(uint8_t *d)
{
	int i;

	memset(d, 0, 18);
	d[0] = 18;
	d[1] = 1;
	put_le16(d + 2, cfg.bcd_usb);
	d[7] = 64;
	put_le16(d + 8, cfg.vid);
	put_le16(d + 10, cfg.pid);
	put_le16(d + 12, cfg.bcd_device);
	d[14] = 1;
	d[15] = 2;
	d[16] = 3;
	d[17] = 1;
	for (i = 0; i < cfg.num_dev_patch; i++) {
		const struct patch *p = &cfg.dev_patch[i];

		if (p->offset + p->len <= 18)
			memcpy(d + p->offset, p->bytes, p->len);
	}
	return 18;
}

static size_t class_desc(uint8_t *d)
{
	size_t len;

	if (cfg.class_raw_len) {
		len = cfg.class_raw_len;
		memcpy(d, cfg.class_raw, len);
	} else {
		len = EMU_CLASS_DESC_LEN;
		memset(d, 0, len);
		d[0] = EMU_CLASS_DESC_LEN;
		d[1] = 0x21;
		put_le16(d + 2, cfg.bcd_ccid);
		d[4] = cfg.max_slot;
		d[5] = cfg.voltage;
		put_le32(d + 6, cfg.protocols);
		put_le32(d + 10, 4000);		/* dwDefaultClock, kHz */
		put_le32(d + 14, 8000);		/* dwMaximumClock */
		d[18] = 2;			/* bNumClockSupported */
		put_le32(d + 19, 10752);	/* dwDataRate, bps */
		put_le32(d + 23, 344086);	/* dwMaxDataRate */
		d[27] = 2;			/* bNumDataRatesSupported */
		put_le32(d + 28, cfg.max_ifsd);
		put_le32(d + 32, 0);		/* dwSynchProtocols */
		put_le32(d + 36, 0);		/* dwMechanical */
		put_le32(d + 40, cfg.features);
		put_le32(d + 44, cfg.max_msg);
		d[48] = cfg.class_get_response;
		d[49] = cfg.class_envelope;
		put_le16(d + 50, cfg.lcd_layout);
		d[52] = cfg.pin_support;
		d[53] = cfg.max_busy;
	}
	if (cfg.class_len >= 0) {
		/* bLength and the bytes actually sent, both */
		if ((size_t)cfg.class_len > len)
			memset(d + len, 0, cfg.class_len - len);
		len = cfg.class_len;
		if (len)
			d[0] = len;
	}
	if (cfg.class_type >= 0 && len >= 2)
		d[1] = cfg.class_type;
	return len;
}

/* Interface @intf: its descriptor, class descriptor and endpoints */
static size_t intf_desc(uint8_t *d, int intf)
{
	size_t p = 0;
	int i, n = 0;

	for (i = 0; i < cfg.num_eps; i++)
		n += cfg.eps[i].intf == intf;
	d[p++] = 9;
	d[p++] = 4;
	d[p++] = intf;			/* bInterfaceNumber */
	d[p++] = 0;			/* bAlternateSetting */
	d[p++] = n;
	d[p++] = cfg.iface_class;
	d[p++] = cfg.iface_subclass;
	d[p++] = cfg.iface_protocol;
	d[p++] = 0;

	if (cfg.class_place == PLACE_INTERFACE)
		p += class_desc(d + p);
	for (i = 0; i < cfg.num_eps; i++) {
		const struct ep_cfg *ep = &cfg.eps[i];

		if (ep->intf != intf)
			continue;
		d[p++] = 7;
		d[p++] = 5;
		d[p++] = ep->addr;
		d[p++] = ep->type;
		put_le16(d + p, ep->maxp);
		p += 2;
		d[p++] = ep->interval;
	}
	if (cfg.class_place == PLACE_ENDPOINT)
		p += class_desc(d + p);
	return p;
}

static size_t config_desc(uint8_t *d)
{
	size_t p = 0;
	int i;

	d[p++] = 9;
	d[p++] = 2;
	p += 2;				/* wTotalLength */
	d[p++] = cfg.interfaces;	/* bNumInterfaces */
	d[p++] = 1;			/* bConfigurationValue */
	d[p++] = 0;
	d[p++] = 0x80;			/* bus powered */
	d[p++] = 50;			/* 100 mA */
	for (i = 0; i < cfg.interfaces; i++)
		p += intf_desc(d + p, i);
	put_le16(d + 2, p);
	for (i = 0; i < cfg.num_cfg_patch; i++) {
		const struct patch *pt = &cfg.cfg_patch[i];

		if (pt->offset + pt->len <= p)
			memcpy(d + pt->offset, pt->bytes, pt->len);
	}
	return p;
}

static size_t string_desc(int index, uint8_t *d)
{
	const char *s;
	size_t i, n;

	switch (index) {
	case 0:
		d[0] = 4;
		d[1] = 3;
		put_le16(d + 2, 0x0409);
		return 4;
	case 1:
		s = cfg.manufacturer;
		break;
	case 2:
		s = cfg.product;
		break;
	case 3:
		s = cfg.serial;
		break;
	default:
		return 0;
	}
	n = strlen(s);
	if (n > 126)
		n = 126;
	d[0] = 2 + 2 * n;
	d[1] = 3;
	for (i = 0; i < n; i++)
		put_le16(d + 2 + 2 * i, (uint8_t)s[i]);
	return 2 + 2 * n;
}

/* ------------------------------------------------------------------ */
/* ep0 */

/* Answer a control URB: @len bytes of @data (IN), or a status */
static void ctrl_answer(struct urb *u, int status, const uint8_t *data,
			size_t len, uint16_t wlength)
{
	if (len > wlength)
		len = wlength;
	if (len > u->len)
		len = u->len;
	ret_submit(u, status, data, status ? 0 : len);
}

static void usb_reset_seen(void)
{
	int i;

	elog("reset");
	usb.config = 0;
	usb.scan_end = 0;
	for (i = 0; i < EMU_MAX_INTF; i++) {
		free_frames(&usb.frames[i]);
		free_frames(&usb.notes[i]);
	}
	for (i = 0; i < cfg.num_eps; i++)
		cfg.eps[i].halted = false;
	upper->usb_reset();
}

static void control(struct urb *u, const uint8_t *setup)
{
	uint8_t rt = setup[0], req = setup[1], buf[1024];
	uint16_t value = get_le16(setup + 2), index = get_le16(setup + 4);
	uint16_t wlength = get_le16(setup + 6);
	struct ep_cfg *ep;
	size_t n;
	int ret;

	vlog("ctrl rt=0x%02x req=0x%02x value=0x%04x index=0x%04x len=%u",
	     rt, req, value, index, wlength);

	switch (rt << 8 | req) {
	case 0x8006:			/* GET_DESCRIPTOR */
		switch (value >> 8) {
		case 1:
			/* After SET_CONFIGURATION: usb_reset_device() */
			if (usb.config)
				usb_reset_seen();
			n = device_desc(buf);
			break;
		case 2:
			n = config_desc(buf);
			break;
		case 3:
			n = string_desc(value & 0xff, buf);
			break;
		default:
			n = 0;
			break;
		}
		if (!n)
			goto stall;
		ctrl_answer(u, 0, buf, n, wlength);
		return;
	case 0x0009:			/* SET_CONFIGURATION */
		if (value > 1)
			goto stall;
		usb.config = value;
		elog("configured value=%u", value);
		ctrl_answer(u, 0, NULL, 0, 0);
		if (value) {
			usb.scan_next = now_ms();
			usb.scan_end = usb.scan_next + cfg.node_timeout_ms;
			memset(usb.node_seen, 0, sizeof(usb.node_seen));
			upper->configured();
		}
		return;
	case 0x8008:			/* GET_CONFIGURATION */
		buf[0] = usb.config;
		ctrl_answer(u, 0, buf, 1, wlength);
		return;
	case 0x010b:			/* SET_INTERFACE */
		if (value)
			goto stall;
		ctrl_answer(u, 0, NULL, 0, 0);
		return;
	case 0x810a:			/* GET_INTERFACE */
		buf[0] = 0;
		ctrl_answer(u, 0, buf, 1, wlength);
		return;
	case 0x8000:			/* GET_STATUS */
	case 0x8100:
		buf[0] = buf[1] = 0;
		ctrl_answer(u, 0, buf, 2, wlength);
		return;
	case 0x8200:
		ep = ep_by_addr(index);
		if (!ep && (index & 0x7f))
			goto stall;
		buf[0] = ep && ep->halted;
		buf[1] = 0;
		ctrl_answer(u, 0, buf, 2, wlength);
		return;
	case 0x0001:			/* CLEAR_FEATURE, SET_FEATURE */
	case 0x0003:
		ctrl_answer(u, 0, NULL, 0, 0);
		return;
	case 0x0201:			/* CLEAR_FEATURE(ENDPOINT_HALT) */
	case 0x0203:			/* SET_FEATURE(ENDPOINT_HALT) */
		ep = ep_by_addr(index);
		if (value != 0 || (!ep && (index & 0x7f)))
			goto stall;
		if (!ep) {
			ctrl_answer(u, 0, NULL, 0, 0);
			return;
		}
		if (req == 3) {
			ep->halted = true;
			elog("set-halt ep=0x%02x", ep->addr);
			ctrl_answer(u, 0, NULL, 0, 0);
			return;
		}
		ep->halted = false;
		elog_intf(ep->intf);
		elog("clear-halt ep=0x%02x", ep->addr);
		ctrl_answer(u, 0, NULL, 0, 0);
		upper->clear_halt(ep->intf, ep->role);
		return;
	case 0x2101:			/* CCID ABORT, wIndex = interface */
		if (cfg.interfaces > 1) {
			if ((index & 0xff) >= cfg.interfaces)
				goto stall;
			elog_intf(index & 0xff);
		}
		ret = upper->abort_request(cfg.interfaces > 1 ? index & 0xff : 0,
					    value);
		if (ret > 0) {
			/* --abort-request ignore: never completes */
			add_urb(u);
			return;
		}
		ctrl_answer(u, ret, NULL, 0, 0);
		return;
	case 0xa102:			/* GET_CLOCK_FREQUENCIES */
		put_le32(buf, 4000);
		put_le32(buf + 4, 8000);
		ctrl_answer(u, 0, buf, 8, wlength);
		return;
	case 0xa103:			/* GET_DATA_RATES */
		put_le32(buf, 10752);
		put_le32(buf + 4, 344086);
		ctrl_answer(u, 0, buf, 8, wlength);
		return;
	}
stall:
	elog("ctrl-stall rt=0x%02x req=0x%02x value=0x%04x index=0x%04x len=%u",
	     rt, req, value, index, wlength);
	ctrl_answer(u, -EPIPE, NULL, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Receiving */

/*
 * A bulk-OUT URB of a reader.  A zero-length packet (ZLP) ends a
 * transfer of a whole number of packets.  vhci_hcd forwards each URB as
 * one CMD_SUBMIT and never makes up a ZLP itself (vhci_tx.c
 * setup_cmd_submit_pdu(), usbip_common.c usbip_pack_cmd_submit()): a
 * driver's 0-byte URB is a CMD_SUBMIT with transfer_buffer_length 0 and
 * no data, and URB_ZERO_PACKET on a data URB only shows as
 * USBIP_URB_ZERO_PACKET (0x0040, the same value) in its transfer_flags;
 * the data is sent once.  Both are taken as a ZLP here, the flag only on
 * a URB of a whole number of packets, as a host controller does.
 */
static void bulk_out(struct urb *u, const struct ep_cfg *ep,
		     const uint8_t *data)
{
	bool whole = ep->maxp && u->len % ep->maxp == 0;
	bool zlp = !u->len || (whole && (u->flags & USBIP_URB_ZERO_PACKET));
	size_t taken = 0;
	int ret = 0;

	if (u->len)
		ret = upper->out_urb(ep->intf, data, u->len, !whole);
	if (!ret && zlp) {
		/* stall: the data before the ZLP went through */
		taken = u->len;
		ret = upper->out_zlp(ep->intf);
	}
	switch (ret) {
	case OUT_DISCONNECT:
		free(u);
		return;
	case OUT_PENDING:
		/* NAKed until the host gives up: unlink_urb() */
		add_urb(u);
		return;
	case OUT_STALL:
		ret_submit_len(u, -EPIPE, NULL, taken);
		return;
	}
	ret_submit(u, 0, NULL, 0);
}

static void submit(const uint8_t *h, const uint8_t *data)
{
	uint32_t dir = get_be32(h + 12), epnum = get_be32(h + 16);
	struct urb *u = calloc(1, sizeof(*u));
	struct ep_cfg *ep;

	if (!u)
		emu_exit("error");
	u->seqnum = get_be32(h + 4);
	u->flags = get_be32(h + 0x14);
	u->len = get_be32(h + 0x18);
	u->ep = (epnum & 0x0f) | (dir ? 0x80 : 0);

	if (epnum == 0) {
		control(u, h + 0x28);
		return;
	}
	ep = ep_by_addr(u->ep);
	if (!ep) {
		elog("urb-stall ep=0x%02x reason=no-such-endpoint", u->ep);
		ret_submit(u, -EPIPE, NULL, 0);
		return;
	}
	elog_intf(ep->intf);
	if (ep->halted) {
		ret_submit(u, -EPIPE, NULL, 0);
		return;
	}
	if (!dir) {
		if (ep->role != ROLE_BULK_OUT)
			ret_submit(u, 0, NULL, 0);
		else
			bulk_out(u, ep, data);
		return;
	}
	/* IN: it waits for something to answer */
	add_urb(u);
}

static void unlink_urb(const uint8_t *h)
{
	uint32_t seqnum = get_be32(h + 4), victim = get_be32(h + 0x14);
	struct urb **pp, *u;

	for (pp = &usb.urbs; (u = *pp); pp = &u->next) {
		if (u->seqnum == victim) {
			const struct ep_cfg *ep = ep_by_addr(u->ep);

			*pp = u->next;
			if (ep)
				elog_intf(ep->intf);
			elog("unlink seqnum=%u ep=0x%02x status=-104", victim,
			     u->ep);
			free(u);
			ret_unlink(seqnum, -ECONNRESET);
			/* --out-pending: the command that never went through */
			if (ep && ep->role == ROLE_BULK_OUT)
				upper->out_unlinked(ep->intf);
			return;
		}
	}
	elog("unlink seqnum=%u status=0", victim);
	ret_unlink(seqnum, 0);
}

/* Read what the socket has and handle every complete message */
int usb_input(void)
{
	size_t need, off = 0;
	uint32_t cmd;
	ssize_t n;

	if (usb.rx_size - usb.rx_len < 65536) {
		size_t size = usb.rx_size ? usb.rx_size * 2 : 262144;
		uint8_t *p = realloc(usb.rx, size);

		if (!p)
			emu_exit("error");
		usb.rx = p;
		usb.rx_size = size;
	}
	n = recv(usb.fd, usb.rx + usb.rx_len, usb.rx_size - usb.rx_len,
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		elog("detached reason=%s", n ? strerror(errno) : "peer-closed");
		return -1;
	}
	usb.rx_len += n;

	while (usb.fd >= 0 && usb.rx_len - off >= USBIP_HDR) {
		const uint8_t *h = usb.rx + off;

		cmd = get_be32(h);
		need = USBIP_HDR;
		if (cmd == USBIP_CMD_SUBMIT) {
			uint32_t len = get_be32(h + 0x18);
			uint32_t np = get_be32(h + 0x20);
			struct ep_cfg *ep;

			if (len > USBIP_MAX_XFER) {
				elog("detached reason=transfer-too-long len=%u",
				     len);
				return -1;
			}
			if (!get_be32(h + 12))
				need += len;
			ep = ep_by_addr((get_be32(h + 16) & 0x0f) |
					(get_be32(h + 12) ? 0x80 : 0));
			if (ep && ep->type == 1 && np && np <= 1024)
				need += 16 * np;
		} else if (cmd != USBIP_CMD_UNLINK) {
			elog("detached reason=bad-usbip-command cmd=0x%x", cmd);
			return -1;
		}
		if (usb.rx_len - off < need)
			break;
		if (cmd == USBIP_CMD_SUBMIT)
			submit(h, h + USBIP_HDR);
		else
			unlink_urb(h);
		elog_intf(0);
		off += need;
		usb_pump();
	}
	if (usb.fd < 0)
		return -1;
	memmove(usb.rx, usb.rx + off, usb.rx_len - off);
	usb.rx_len -= off;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Timers: frames that become due, and looking for our /dev/ccidN */

int64_t usb_next_timer(void)
{
	uint64_t now = now_ms(), t = UINT64_MAX;
	struct ep_cfg *in, *irq;
	int i;

	for (i = 0; i < cfg.interfaces; i++) {
		struct frame *f = usb.frames[i], *note = usb.notes[i];

		in = ep_by_role(i, ROLE_BULK_IN);
		irq = ep_by_role(i, ROLE_INT_IN);
		if (f && in && find_urb(in->addr) && f->due < t)
			t = f->due;
		if (note && irq && find_urb(irq->addr) && note->due < t)
			t = note->due;
	}
	if (usb.scan_end && usb.scan_next < t)
		t = usb.scan_next;
	if (t == UINT64_MAX)
		return -1;
	return t > now ? (int64_t)(t - now) : 0;
}

/* The ccid* node of interface @intf, once the driver is done binding */
static bool find_intf_node(int intf, char *name, size_t size)
{
	char path[192];
	struct dirent *e;
	DIR *d;

	/*
	 * probe() makes the node; the driver core adds the driver's sysfs
	 * attributes after probe() returns.  Report the node once they are
	 * there, so that tests may read them at once.
	 */
	snprintf(path, sizeof(path),
		 "/sys/bus/usb/devices/%s:1.%d/firmware_version", usb.busid,
		 intf);
	if (access(path, F_OK))
		return false;
	snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s:1.%d/usbmisc",
		 usb.busid, intf);
	d = opendir(path);
	if (!d)
		return false;
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, "ccid", 4)) {
			snprintf(name, size, "%s", e->d_name);
			closedir(d);
			return true;
		}
	}
	closedir(d);
	return false;
}

/*
 * One "node" line per interface, interface 0's first and as it is with
 * one interface ("node dev=/dev/ccidN busid=B"), so that parsers taking
 * the first line get it; interface 1's line ends with " intf=1".
 * Return: every interface has its line.
 */
static bool find_node(void)
{
	char name[256];
	int i;

	if (!usb.busid[0] &&
	    read_busid(usb.port, usb.busid, sizeof(usb.busid)))
		return false;
	for (i = 0; i < cfg.interfaces; i++) {
		if (usb.node_seen[i])
			continue;
		if (!find_intf_node(i, name, sizeof(name)))
			return false;
		elog_intf(i);
		elog("node dev=/dev/%s busid=%s", name, usb.busid);
		elog_intf(0);
		usb.node_seen[i] = true;
	}
	return true;
}

/* Time is up: "node none" for each interface with no node */
static void node_timeout(void)
{
	char name[256];
	int i;

	if (!usb.busid[0])
		read_busid(usb.port, usb.busid, sizeof(usb.busid));
	for (i = 0; i < cfg.interfaces; i++) {
		if (usb.node_seen[i])
			continue;
		elog_intf(i);
		if (usb.busid[0] && find_intf_node(i, name, sizeof(name)))
			elog("node dev=/dev/%s busid=%s", name, usb.busid);
		else
			elog("node none busid=%s",
			     usb.busid[0] ? usb.busid : "?");
	}
	elog_intf(0);
}

void usb_timers(void)
{
	uint64_t now = now_ms();

	if (usb.scan_end && now >= usb.scan_next) {
		if (find_node()) {
			usb.scan_end = 0;
		} else if (now >= usb.scan_end) {
			node_timeout();
			usb.scan_end = 0;
		} else {
			usb.scan_next = now + NODE_SCAN_STEP_MS;
		}
	}
	usb_pump();
}
