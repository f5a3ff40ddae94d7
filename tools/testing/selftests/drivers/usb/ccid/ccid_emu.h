/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ccid_emu - an emulated USB CCID smart-card reader, served to the
 * kernel's vhci_hcd over USB/IP.  Shared definitions of the four parts:
 *
 *   ccid_emu.c         options, the event log, the control channel, the loop
 *   ccid_emu_usb.c     USB/IP, attaching, descriptors, ep0, URB queues
 *   ccid_emu_reader.c  the CCID reader, its slots, the PIN pad, the scripts
 *   ccid_emu_card.c    the card model of each slot
 *
 * See the comment at the top of ccid_emu.c (or ccid_emu --help).
 */
#ifndef CCID_EMU_H
#define CCID_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif

#define EMU_MAX_SLOTS		16
#define EMU_MAX_INTF		2	/* CCID interfaces: readers */
#define EMU_MAX_INTF_EPS	8	/* endpoints of one interface */
#define EMU_MAX_EPS		(EMU_MAX_INTF * EMU_MAX_INTF_EPS)
#define EMU_MAX_AIDS		16
#define EMU_MAX_SCRIPTS		128
#define EMU_MAX_PATCHES		16
#define EMU_MAX_ATR		256	/* more than a real ATR: hostile ones too */
#define EMU_CLASS_DESC_LEN	54
#define EMU_LAG_MAX		64	/* --lag K:L: the largest L */
#define EMU_HDR			10	/* CCID message header */

/* CCID message types */
#define PC_SET_PARAMS		0x61
#define PC_POWER_ON		0x62
#define PC_POWER_OFF		0x63
#define PC_GET_SLOT_STATUS	0x65
#define PC_SECURE		0x69
#define PC_T0APDU		0x6a
#define PC_ESCAPE		0x6b
#define PC_GET_PARAMS		0x6c
#define PC_RESET_PARAMS		0x6d
#define PC_ICC_CLOCK		0x6e
#define PC_XFR_BLOCK		0x6f
#define PC_MECHANICAL		0x71
#define PC_ABORT		0x72
#define PC_SET_RATE		0x73
#define RDR_DATA_BLOCK		0x80
#define RDR_SLOT_STATUS		0x81
#define RDR_PARAMS		0x82
#define RDR_ESCAPE		0x83
#define RDR_RATE		0x84
#define RDR_NOTIFY_SLOT		0x50
#define RDR_HW_ERROR		0x51

/* bError */
#define ERR_CMD_ABORTED		0xff
#define ERR_ICC_MUTE		0xfe
#define ERR_HW_ERROR		0xfb
#define ERR_PIN_TIMEOUT		0xf0
#define ERR_PIN_CANCELLED	0xef
#define ERR_SLOT_BUSY		0xe0

#define ST_FAILED		0x40
#define ST_TIME_EXT		0x80

#define LEVEL_MASK		0x00070000u
#define LEVEL_CHAR		0x00000000u
#define LEVEL_TPDU		0x00010000u
#define LEVEL_SHORT		0x00020000u
#define LEVEL_EXT		0x00040000u

enum ep_role {
	ROLE_BULK_IN,		/* CCID answers */
	ROLE_BULK_OUT,		/* CCID commands */
	ROLE_INT_IN,		/* slot change and hardware error */
	ROLE_INT_OUT,		/* junk: data taken and dropped */
	ROLE_ISO_IN,		/* junk: URBs stay pending */
	ROLE_ISO_OUT,		/* junk: data taken and dropped */
};

struct ep_cfg {
	uint8_t addr;		/* bEndpointAddress */
	uint8_t type;		/* bmAttributes transfer type, 0..3 */
	enum ep_role role;
	uint16_t maxp;
	uint8_t interval;
	uint8_t intf;		/* bInterfaceNumber */
	bool halted;
};

enum script_kind {
	SCR_TIME_EXT,		/* a = count, b = multiplier */
	SCR_DELAY,		/* a = ms */
	SCR_DROP,		/* no answer */
	SCR_STALL_IN,
	SCR_STALL_OUT,
	SCR_BAD,		/* a = enum bad_kind */
	SCR_INSERT,		/* a = slot */
	SCR_REMOVE,		/* a = slot */
	SCR_HWERROR,		/* a = slot */
};

enum bad_kind {
	BAD_WRONG_SEQ,
	BAD_WRONG_SLOT,
	BAD_DUPLICATE,
	BAD_WRONG_TYPE,
	BAD_LEN_OVER_DATA,
	BAD_LEN_OVER_MAX,
	BAD_SHORT_HEADER,
	BAD_BABBLE,
	BAD_WRONG_SEQ_THEN_RIGHT,
	BAD_GARBAGE,		/* --random only: random bytes */
	BAD_NONE,
};

struct script {
	unsigned int n;		/* 1-based bulk-OUT command number */
	enum script_kind kind;
	unsigned int a, b;
};

enum abort_mode { ABORT_ANSWER, ABORT_IGNORE, ABORT_AFTER_CLEAR_HALT };
enum zlp_mode { ZLP_IGNORE, ZLP_STALL, ZLP_NEED };
enum abort_req_mode { AREQ_OK, AREQ_STALL, AREQ_IGNORE };
enum class_place { PLACE_INTERFACE, PLACE_ENDPOINT, PLACE_NONE };

struct patch {
	unsigned int offset;
	uint8_t bytes[32];
	size_t len;
};

/* Everything the command line sets */
struct emu_cfg {
	/* USB personality */
	int speed;
	uint16_t vid, pid, bcd_device, bcd_usb;
	uint8_t iface_class, iface_subclass, iface_protocol;
	const char *manufacturer, *product, *serial;
	struct ep_cfg eps[EMU_MAX_EPS];
	int num_eps;			/* of all interfaces */
	int interfaces;			/* --interfaces: 1 or 2 */
	int bulk_maxp, int_maxp;
	/* CCID class descriptor */
	uint16_t bcd_ccid;
	uint8_t max_slot;
	uint8_t voltage;
	uint32_t protocols;
	uint32_t features;
	uint32_t max_msg;
	bool max_msg_set;	/* --max-msg given, 0 included */
	uint8_t pin_support;
	uint8_t max_busy;
	uint16_t lcd_layout;
	uint32_t max_ifsd;
	uint8_t class_get_response, class_envelope;
	uint8_t class_raw[512];
	size_t class_raw_len;		/* --class-desc: 0 = built */
	int class_len;			/* --class-desc-len, -1 = 54 */
	int class_type;			/* --class-desc-type, -1 = 0x21 */
	enum class_place class_place;
	struct patch dev_patch[EMU_MAX_PATCHES], cfg_patch[EMU_MAX_PATCHES];
	int num_dev_patch, num_cfg_patch;
	/* Cards */
	uint8_t atr[EMU_MAX_SLOTS][EMU_MAX_ATR];
	size_t atr_len[EMU_MAX_SLOTS];
	bool absent[EMU_MAX_SLOTS];
	bool powered[EMU_MAX_SLOTS];
	int protocol;			/* 0 or 1: the card's protocol */
	const char *pin;
	int pin_tries;
	uint8_t aids[EMU_MAX_AIDS][16];
	size_t aid_len[EMU_MAX_AIDS];
	int num_aids;
	/* PIN pad */
	const char *pad_pin;		/* NULL: wait for "pin" on the ctl */
	unsigned int pin_delay_ms;
	unsigned int pin_timeout_ms;
	bool spr332_fw700;
	bool notify_on_config;
	unsigned int notify_delay_ms;
	/* Scripts */
	struct script scripts[EMU_MAX_SCRIPTS];
	int num_scripts;
	unsigned int time_ext_gap_ms;
	unsigned int mute_after;	/* 0 = never */
	unsigned int disconnect_at;	/* 0 = never */
	enum abort_mode abort_mode;
	enum abort_req_mode abort_req;
	bool revive_on_reset;
	bool random;
	uint64_t seed;
	unsigned int chaos_permille;	/* --chaos SEED:PERMILLE, "chaos" ctl */
	uint64_t chaos_seed;
	int script_intf;		/* the reader the scripts act on */
	unsigned int lag_after;		/* --lag K: 0 = no lag */
	unsigned int lag_by;		/* L */
	bool lag_card;			/* only XfrBlock and Secure lag */
	unsigned int lag_drop;		/* --lag-drop N: 0 = none */
	unsigned int out_pending;	/* --out-pending N: 0 = none */
	/* Zero-length packets */
	enum zlp_mode out_zlp;
	bool in_zlp;
	/* Process */
	const char *log_path;
	const char *ctl_path;
	bool timestamps;
	bool verbose;
	int port;			/* -1: the first free one */
	unsigned int node_timeout_ms;	/* "node none" after this */
};

extern struct emu_cfg cfg;

/*
 * Byte order helpers.  The emulator shares no code with the driver, not
 * even these: it is the other side of the wire, and a framing bug common
 * to both would go unseen.
 */
static inline uint16_t get_le16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

/*
 * Layers.  Each file calls only the layers below it; the way up is a
 * struct of callbacks that the upper layer registers.
 *
 *   ccid_emu.c         the program: options (cfg), the main loop, the
 *                      control channel.  Calls every layer (card_init(),
 *                      ccid_init(), ccid_ctl(), usb_attach() ...).  Its
 *                      log, time, random and buffer helpers (elog(),
 *                      now_ms(), emu_rand(), buf_add() ...) and cfg are
 *                      used by every layer: a library, not a layer.
 *   ccid_emu_card.c    top: the card model of each slot (PIN, APDUs,
 *                      T=0 GET RESPONSE, T=1 blocks).  Calls no function
 *                      of the reader or the transport; card_init()
 *                      registers struct reader_card_ops with the reader.
 *   ccid_emu_reader.c  middle: the CCID reader (message framing and
 *                      numbering, slots, parameters, chaining, the
 *                      scripts, Abort, the PIN pad, interrupt events).
 *                      Calls the transport's usb_*() functions (queue a
 *                      frame or an interrupt message, drop frames, halt
 *                      an endpoint, pump), and the card only through
 *                      the registered reader_card_ops; ccid_init()
 *                      registers struct usb_upper_ops with the transport.
 *   ccid_emu_usb.c     bottom: USB/IP, attaching, descriptors, ep0, URB
 *                      queues.  Calls no function of the layers above,
 *                      only the registered usb_upper_ops.
 *
 * Checked with grep: "grep -E '\b(ccid|card|reader)_[a-z_]*\(' ccid_emu_usb.c"
 * finds no call, and "grep -E '\b(ccid|usb|reader)_[a-z_]*\(' ccid_emu_card.c"
 * only reader_register_card().  ccid_emu.c calls card_init() before
 * ccid_init() before usb_attach(): each layer is registered before the
 * one below needs it.
 *
 * usb_upper_ops, the transport's way up to the reader, each callback
 * with the interface (reader) it concerns:
 *   out_urb        a bulk-OUT URB's data; short_end: it ends a transfer
 *                  (not a whole number of packets).  0, or OUT_STALL,
 *                  OUT_DISCONNECT, OUT_PENDING.
 *   out_zlp        a bulk-OUT zero-length packet; the same results.
 *   out_unlinked   the host unlinked the bulk-OUT URB kept pending
 *                  (OUT_PENDING).
 *   abort_request  the CCID ABORT class request on ep0; 0, a negative
 *                  errno (stall), or > 0: the request stays pending.
 *   clear_halt     CLEAR_FEATURE(ENDPOINT_HALT) of an endpoint of @intf.
 *   usb_reset      a USB reset: every queued frame is already gone.
 *   configured     SET_CONFIGURATION with a non-zero value.
 *   frame_sent     a frame queued with usb_queue_frame() went out on
 *                  bulk-IN (its flags as queued).
 *
 * reader_card_ops, the reader's way up to the card of slot @slot of
 * interface @intf:
 *   reset          power on, power off, insertion, removal, USB reset:
 *                  the card's session state goes (not its PIN or tries).
 *   params_set     SetParameters changed the protocol parameters.
 *   apdu           an APDU at short or extended APDU level; @protocol
 *                  0: T=0 (61 La, GET RESPONSE), 1: T=1.  The answer,
 *                  data and SW, goes to @r; *@delay_ms grows by the
 *                  card's thinking time.
 *   tpdu           the same at TPDU or character level: @protocol 1: a
 *                  T=1 block (NAD PCB LEN INF LRC), 0: a T=0 TPDU.
 *   verify         a PIN typed on the pad; the card's SW.
 *   change_pin     PIN modify on the pad: @old (NULL: not asked) is
 *                  verified, then @new taken; the card's SW.
 */
struct usb_upper_ops {
	int (*out_urb)(int intf, const uint8_t *data, size_t len,
		       bool short_end);
	int (*out_zlp)(int intf);
	void (*out_unlinked)(int intf);
	int (*abort_request)(int intf, uint16_t value);
	void (*clear_halt)(int intf, enum ep_role role);
	void (*usb_reset)(void);
	void (*configured)(void);
	void (*frame_sent)(int intf, uint8_t slot, uint8_t seq,
			   unsigned int flags);
};

/* A growing byte buffer (ccid_emu.c); { 0 } is empty */
struct buf {
	uint8_t *p;
	size_t len, size;
};

struct reader_card_ops {
	void (*reset)(int intf, int slot);
	void (*params_set)(int intf, int slot);
	void (*apdu)(int intf, int slot, int protocol, const uint8_t *cmd,
		     size_t n, struct buf *r, unsigned int *delay_ms);
	void (*tpdu)(int intf, int slot, int protocol, const uint8_t *b,
		     size_t n, struct buf *r, unsigned int *delay_ms);
	uint16_t (*verify)(int intf, int slot, const char *digits);
	uint16_t (*change_pin)(int intf, int slot, const char *old,
			       const char *new);
};

/* ccid_emu.c */
void elog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hexstr(char *out, size_t size, const uint8_t *buf, size_t len);
int elog_intf(int intf);
uint64_t now_ms(void);
uint64_t emu_rand(void);
uint64_t emu_chaos_rand(void);
void emu_exit(const char *reason);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_byte(struct buf *b, uint8_t v);
void buf_sw(struct buf *b, uint16_t sw);
void buf_free(struct buf *b);

/* ccid_emu_usb.c */
void usb_register(const struct usb_upper_ops *ops);
int usb_attach(void);
int usb_fd(void);
void usb_close(void);
int usb_input(void);
void usb_pump(void);
int64_t usb_next_timer(void);
void usb_timers(void);
void usb_queue_frame(int intf, unsigned int cmd_no, uint8_t slot,
		     uint8_t seq, const uint8_t *buf, size_t len, uint64_t due,
		     unsigned int flags, const char *what);
void usb_queue_notify(int intf, const uint8_t *buf, size_t len);
unsigned int usb_drop_frames(int intf, uint8_t slot, int seq);
void usb_halt(int intf, enum ep_role role);
bool usb_has_role(int intf, enum ep_role role);
int usb_reset_device(const char *busid);

/* usb_queue_frame() flags */
#define FR_FINAL	0x01	/* the last frame of a command's answer */
#define FR_BABBLE	0x02	/* fill the URB, complete with -EOVERFLOW */
#define FR_NO_SPLIT	0x04	/* truncate to the URB instead of splitting */
#define FR_WEDGE	0x08	/* the reader wedges once this is sent */

/* ccid_emu_reader.c: what ccid_emu.c calls (options, the loop, the ctl) */
void ccid_init(void);		/* also registers reader_usb_ops */
void ccid_usb_reset(void);	/* "replug": the new device starts afresh */
int64_t ccid_next_timer(void);
void ccid_timers(void);
int ccid_ctl(char *line);
int ccid_bad_kind(const char *name);
void reader_register_card(const struct reader_card_ops *ops);

/* ccid_emu_card.c */
void card_init(void);		/* registers card_ops with the reader */

/* usb_upper_ops.out_urb() and .out_zlp() results besides 0 */
#define OUT_STALL	1
#define OUT_DISCONNECT	2
#define OUT_PENDING	3	/* the URB stays pending until unlinked */

#endif /* CCID_EMU_H */
