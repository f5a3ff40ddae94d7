// SPDX-License-Identifier: GPL-2.0
/*
 * ccid_emu - an emulated USB CCID smart-card reader for the ccid selftests.
 *
 * A USB/IP device server attached to the running kernel's vhci_hcd through
 * a socketpair (no network, no usbip tools; root and vhci-hcd needed).
 * One process is one reader; start it, read its event log, talk to it on
 * the control channel, and find its /dev/ccidN from the "node" event or
 * from sysfs.  "ccid_emu --help" prints the whole reference, which is the
 * usage() text below.
 *
 * Files: ccid_emu.c (this: options, log, control channel, main loop),
 * ccid_emu_usb.c (USB/IP, descriptors, ep0), ccid_emu_reader.c (the
 * CCID reader, PIN pad, scripted behaviours), ccid_emu_card.c (the card
 * model).  They are layered: see "Layers" in ccid_emu.h.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ccid_emu.h"

struct emu_cfg cfg;

static int log_fd = STDOUT_FILENO;
static int ctl_fd = STDIN_FILENO;
static bool ctl_is_fifo;
static uint64_t start_ms;
static uint64_t rng_state, chaos_state;
static int log_intf;		/* lines get " intf=N" for N > 0 */
static volatile sig_atomic_t got_signal;

/* ccid_emu --help, one string per section, printed in this order */
static const char usage_intro[] =
"Usage: ccid_emu [OPTIONS]\n"
"       ccid_emu --reset-device BUSID\n"
"\n";

static const char usage_about[] =
"An emulated CCID reader on vhci_hcd (USB/IP over a socketpair).  Runs as\n"
"root until \"quit\", a detach, or SIGTERM/SIGINT; exit status 0, or 1 when\n"
"it could not attach (2 for a usage error).\n"
"\n";

static const char usage_process[] =
"Process:\n"
"  --port N              vhci port (default: the first free high-speed one)\n"
"  --speed 2|3           full or high speed (default 3)\n"
"  --log FILE            event log (default stdout); one line per event\n"
"  --ctl FIFO            control channel (default stdin); the FIFO is made\n"
"                        if missing and never reaches EOF\n"
"  --timestamps          prefix each log line with seconds since start\n"
"                        (microseconds)\n"
"  --node-timeout MS     how long to look for the /dev/ccidN of the\n"
"                        configured reader before \"node none\" (5000)\n"
"  -v, --verbose         also log every ep0 request (\"ctrl ...\")\n"
"  --reset-device BUSID  helper: USBDEVFS_RESET the USB device BUSID (e.g.\n"
"                        3-1, from the \"node\" event) and exit\n"
"\n";

static const char usage_usb[] =
"USB personality:\n"
"  --vid HEX --pid HEX   idVendor, idProduct (default 04e6:e003)\n"
"  --bcd-device HEX      bcdDevice, the firmware version (default 0x0701)\n"
"  --bcd-usb HEX         bcdUSB (default 0x0200)\n"
"  --manufacturer S --product S --serial S     string descriptors 1..3\n"
"  --iface-class N       bInterfaceClass, 0x0b or 0xff (default 0x0b)\n"
"  --iface-subclass N --iface-protocol N       (default 0, 0)\n"
"  --endpoints LIST      comma list of ROLE[-as-TYPE][@ADDR] in descriptor\n"
"                        order (default bulk-in,bulk-out,int-in); ROLE is\n"
"                        bulk-in (answers), bulk-out (commands), int-in\n"
"                        (events), int-out, iso-in, iso-out (junk); TYPE\n"
"                        bulk|int|iso|ctrl declares another transfer type\n"
"                        (bulk-in-as-int); ADDR overrides the address\n"
"                        (default: number = position + 1, IN bit by role)\n"
"  --max-packet N        bulk wMaxPacketSize (default 512, 64 at speed 2)\n"
"  --int-max-packet N    interrupt wMaxPacketSize (default 8)\n"
"  --int-interval N      interrupt bInterval (default 8)\n"
"  --interfaces 1|2      CCID interfaces, each a reader of its own (default\n"
"                        1); interface 1 has a copy of interface 0's\n"
"                        endpoints numbered after them (0x84 0x05 0x86),\n"
"                        class descriptor, slots and cards; its ABORT\n"
"                        request has wIndex 1; a USB reset resets both.\n"
"                        Interface 1's log lines end with \" intf=1\"\n"
"\n";

static const char usage_class[] =
"CCID class descriptor:\n"
"  --bcd-ccid HEX        (default 0x0110)\n"
"  --max-slot-index N    bMaxSlotIndex (default 0)\n"
"  --voltage N           bVoltageSupport (default 0x07)\n"
"  --protocols N         dwProtocols (default 0x03)\n"
"  --features HEX        dwFeatures (default 0x000204ba: short APDU level,\n"
"                        automatic parameters, voltage, clock, baud rate,\n"
"                        PPS and IFSD)\n"
"  --level L             exchange level bits of dwFeatures: character,\n"
"                        tpdu, short or extended\n"
"  --max-msg N           dwMaxCCIDMessageLength (default 271; 65546 with\n"
"                        --level extended)\n"
"  --pin-support N       bPINSupport (default 0x03: verify and modify)\n"
"  --max-busy-slots N    (default 1)   --lcd-layout HEX (default 0)\n"
"  --max-ifsd N          (default 254)\n"
"  --class-get-response N --class-envelope N   (default 0xff, 0xff)\n"
"  --class-desc HEX      raw bytes sent instead of the built descriptor\n"
"                        (bLength and type included; any length, garbage)\n"
"  --class-desc-place P  interface (default: after the interface\n"
"                        descriptor), endpoint (after the last endpoint),\n"
"                        none\n"
"  --class-desc-len N    bLength, and the number of bytes sent (cut or\n"
"                        zero-padded)\n"
"  --class-desc-type N   bDescriptorType (default 0x21)\n"
"  --patch-device OFF:HEX, --patch-config OFF:HEX\n"
"                        overwrite bytes of the device or the whole\n"
"                        configuration descriptor (repeatable; any field,\n"
"                        bLength, bDescriptorType, wTotalLength ...)\n"
"\n";

static const char usage_cards[] =
"Cards (one per slot):\n"
"  --atr HEX             ATR of every slot (default 3B 88 80 01 \"CCID-EMU\"\n"
"                        TCK with T=1, 3B 08 \"CCID-EMU\" with --protocol t0)\n"
"  --slot-atr S=HEX      ATR of slot S\n"
"  --absent LIST         slots with no card at start (comma list, or all)\n"
"  --powered LIST        slots whose card is powered at start\n"
"  --protocol t0|t1      the card's protocol (default t1)\n"
"  --pin DIGITS          the card's PIN (default 123456)\n"
"  --pin-tries N         VERIFY tries (default 3)\n"
"  --aid HEX             a known AID for SELECT (repeatable; always known:\n"
"                        D2760001240103040000000000000000 (OpenPGP) and\n"
"                        F04343494445 (\"\\xF0CCIDE\"); a prefix of 5+ bytes\n"
"                        selects)\n"
"\n";

static const char usage_pad[] =
"PIN pad (PC_to_RDR_Secure):\n"
"  --pad-pin D|cancel|timeout\n"
"                        what the user types for every Secure: digits\n"
"                        (modify: OLD,NEW,CONFIRM as bConfirmPIN asks),\n"
"                        or cancel/timeout; default: wait for \"pin\" or\n"
"                        \"cancel-pin\" on the control channel\n"
"  --pin-delay MS        time between the entry and the answer (default 0)\n"
"  --pin-timeout MS      entry timeout when bTimeOut is 0 (default 30000)\n"
"  --spr332-fw700        with bcdDevice 0x0700, a verify is answered with a\n"
"                        successful DataBlock 64 00 after the entry, then\n"
"                        nothing on bulk-IN (Abort included) until a USB\n"
"                        reset; the reset powers the card off\n"
"\n";

static const char usage_scripts[] =
"Scripts (N: the Nth bulk-OUT CCID message since start, 1-based, Abort\n"
"included, never reset, counted per interface; the \"cmd N\" event shows\n"
"N; repeatable):\n"
"  --script-intf I       the interface whose reader the scripts below act\n"
"                        on (default 0); the other one just works\n"
"  --time-ext N:COUNT:MULT  COUNT time extensions (bError MULT) first\n"
"  --time-ext-gap MS     spacing of time extensions (default 100); the\n"
"                        answer comes COUNT * MS after the command\n"
"  --delay N:MS          answer command N MS later (after the extensions)\n"
"  --drop N              no answer to command N (\"no-answer N reason=script\")\n"
"  --mute-after K        no bulk-IN answer to commands after K (Abort is\n"
"                        --abort's business)\n"
"  --revive-on-reset     a USB reset ends the mute (else only \"unmute\")\n"
"  --abort MODE          PC_to_RDR_Abort, once its ABORT request (same\n"
"                        wValue) came too: answer (default: the aborted\n"
"                        command's pending answer is dropped, a failed\n"
"                        answer with CMD_ABORTED is sent if it was still\n"
"                        busy, then SlotStatus with the Abort's bSeq);\n"
"                        ignore (never); after-clear-halt (held until a\n"
"                        CLEAR_FEATURE(ENDPOINT_HALT) of a bulk endpoint\n"
"                        that came after the aborted command)\n"
"  --abort-request M     the ABORT class request: ok (default), stall\n"
"                        (-EPIPE; then PC_to_RDR_Abort alone is enough),\n"
"                        ignore (never completes: only an unlink ends it)\n"
"  --stall N:in|out      out: command N's bulk-OUT URB is stalled (not\n"
"                        executed); in: N runs but bulk-IN stalls instead\n"
"                        of answering; both until CLEAR_FEATURE(HALT)\n"
"  --bad N:KIND          answer command N with a bad frame: wrong-seq (bSeq\n"
"                        + 1, instead of the answer), wrong-slot (bSlot +\n"
"                        1), duplicate (the answer twice), wrong-type,\n"
"                        len-over-data (dwLength 5 more than sent),\n"
"                        len-over-max (dwLength = dwMaxCCIDMessageLength,\n"
"                        that much data, cut to the URB), short-header (5\n"
"                        bytes), babble (a full URB, dwLength = URB size,\n"
"                        status -EOVERFLOW), wrong-seq-then-right\n"
"  --notify-delay MS     interrupt-IN messages go out MS after their event\n"
"                        (default 0), e.g. after the answer that shows it\n"
"  --notify-on-config    queue a NotifySlotChange (changed bit set for\n"
"                        every slot with a card) at each SET_CONFIGURATION,\n"
"                        i.e. at power-up and after a reset\n"
"  --insert-at N:S, --remove-at N:S, --hwerror-at N:S\n"
"                        slot events when command N arrives\n"
"  --disconnect-at N     close the socket when command N arrives, its\n"
"                        bulk-OUT URB unanswered; then exit\n"
"  --lag K:L[:card]      the out-of-step reader: after command K, each\n"
"                        answer carries the bSeq of the command L (1-64)\n"
"                        before it in the order received, until a USB\n"
"                        reset; with :card, XfrBlock and Secure answers\n"
"                        carry the bSeq of the XfrBlock or Secure L such\n"
"                        commands before, the others their own\n"
"  --lag-drop N          QEMU 7.2 after a card lost an APDU: the first\n"
"                        XfrBlock or Secure from command N on is never\n"
"                        answered, each later card answer carries the bSeq\n"
"                        of the oldest one unanswered (--lag M:1:card from\n"
"                        that command M on), until a USB reset\n"
"  --out-pending N       command N's bulk-OUT URB never completes (the\n"
"                        reader NAKs) until the host unlinks it; the\n"
"                        command is not run, its number is used up\n"
"  --random SEED         XfrBlock answers: 40% right, 10% 1-3 time\n"
"                        extensions then right, 5% each: wrong bSeq then\n"
"                        right, duplicate, failed with a random bError,\n"
"                        wrong type, len-over-data, short-header, 1-64\n"
"                        random bytes, babble, len-over-max, no answer\n"
"  --chaos SEED:PERMILLE every command (Abort too) draws a fault from a\n"
"                        fixed menu with PERMILLE/1000 odds, from a stream\n"
"                        of its own (the same commands, the same faults):\n"
"                        stall-out (bulk-OUT stalls, not run), bounce (a\n"
"                        card goes and comes back on a random slot, both\n"
"                        notified), hwerror; and, on its answer (not for\n"
"                        Abort): time-ext, delay, fail (random bError),\n"
"                        drop, stall-in, lag (--lag N:1|2[:card] from this\n"
"                        command on, until a USB reset), and each --bad\n"
"                        KIND and garbage; logged as \"chaos N kind=K\"\n"
"\n";

static const char usage_zlp[] =
"Zero-length packets (ZLP: a bulk-OUT URB of length 0, or one of a whole\n"
"number of packets with URB_ZERO_PACKET, taken as the data, then a ZLP):\n"
"  --out-zlp MODE        a bulk-OUT ZLP: ignore (default: logged only,\n"
"                        \"out-zlp N\" after command N); stall (as QEMU\n"
"                        7.2: the command before it has run, the ZLP gets\n"
"                        -EPIPE and bulk-OUT stays halted until\n"
"                        CLEAR_FEATURE(HALT)); need (a command of a whole\n"
"                        number of packets runs when its ZLP comes; if the\n"
"                        next command comes first, it runs then: \"out-zlp\n"
"                        missing N\"; any other ZLP: \"out-zlp N\")\n"
"  --in-zlp              a bulk-IN answer of a whole number of packets that\n"
"                        fills the host's URB is followed by a ZLP: the\n"
"                        next bulk-IN URB completes with 0 bytes (with\n"
"                        --max-msg a multiple of --max-packet, an answer\n"
"                        of dwMaxCCIDMessageLength bytes fills the\n"
"                        driver's URB: echo 80 EE 00 00 Le, Le = that - 12)\n"
"\n";

static const char usage_card_cmds[] =
"Card commands (XfrBlock at short/extended APDU level; TPDU level: T=0\n"
"TPDUs, or T=1 blocks NAD PCB LEN INF LRC with IFS/RESYNCH/ABORT):\n"
"  80 EE P1 P2 [Lc DATA] [Le]  echo: DATA 90 00, or with no DATA Le bytes\n"
"                              00 01 02 ... 90 00\n"
"  80 EF HI LO                 90 00 after HI*256+LO ms\n"
"  00 A4 04 00 Lc AID          90 00 known AID, 6A 82 unknown (P1 != 4:\n"
"                              6A 86)\n"
"  00 20 00 P2 Lc PIN          90 00 if PIN (ASCII, or BCD; FF/00 padding)\n"
"                              is --pin, else 63 Cx, 69 83 when blocked;\n"
"                              no data: 90 00 if verified, else 63 Cx\n"
"  00 84 00 00 Le              Le random bytes 90 00\n"
"  anything else               6D 00 (bad length 67 00)\n"
"  T=0 card: an answer with data is 61 La; GET RESPONSE 00 C0 00 00 Le\n"
"  returns it (6C La for a too-long Le).  Responses longer than\n"
"  dwMaxCCIDMessageLength - 10 are chained (bChainParameter 1, 3, 2;\n"
"  continue with an empty XfrBlock, wLevelParameter 0x10); command\n"
"  chaining (wLevelParameter 1, 3, 2) is answered with 0x10.  Escape is\n"
"  echoed.  A Secure verify answers the card's SW (64 03: length outside\n"
"  wPINMaxExtraDigit); failures: PIN_TIMEOUT (0xF0), PIN_CANCELLED (0xEF).\n"
"\n";

static const char usage_ctl[] =
"Control channel, one command a line (\"ctl-ok LINE\" or \"ctl-error LINE\"\n"
"is logged after each):\n"
"  insert S | remove S   card in or out, with NotifySlotChange on int-in\n"
"  hwerror S             HardwareError (overcurrent) on int-in\n"
"  pin DIGITS            type a PIN on the pad (modify: OLD NEW CONFIRM);\n"
"                        kept for the next Secure if none is waiting\n"
"  cancel-pin            press cancel on the pad\n"
"  mute | unmute         stop / resume answering commands\n"
"  wedge                 answer nothing on bulk-IN until a USB reset\n"
"  chaos PERMILLE        the odds of --chaos from now on (0: no faults)\n"
"  disconnect            close the socket (unplug) and exit\n"
"  replug                close the socket, attach again as a new device\n"
"  quit                  close the socket and exit\n"
"  intf I LINE           LINE (a reader command above) for interface I\n"
"\n";

static const char usage_events[] =
"Events (stdout or --log, one line each, flushed):\n"
"  attached port=P speed=S devid=0x...     configured value=V\n"
"  node dev=/dev/ccidN busid=B             node none busid=B\n"
"    (--interfaces 2: interface 0's line first, then interface 1's,\n"
"    which ends with \" intf=1\" as every line of interface 1 does)\n"
"  reset                                   revived reason=reset\n"
"  cmd N type=0xTT slot=S seq=Q len=L p=XXXXXX data=HEX|-\n"
"  answer N type=0xTT slot=S seq=Q len=L status=0xSS error=0xEE param=0xPP\n"
"  time-ext N slot=S seq=Q mult=M          bad N kind=K bytes=B usb=ERR\n"
"  no-answer N reason=muted|wedged|stall|script|random|lag-drop|chaos\n"
"  chaos N kind=K\n"
"  lag-start after=K    lag N seq=Q own=O    lag-end reason=reset\n"
"  out-zlp N            out-zlp stall N      out-zlp-wait N\n"
"  out-zlp ok N         out-zlp missing N    in-zlp\n"
"  out-pending N type=0xTT slot=S seq=Q     out-pending-unlinked N\n"
"  busy N slot=S busy-seq=Q                muted after=K | reason=ctl\n"
"  abort-request wValue=0xVVVV slot=S seq=Q\n"
"  abort-cmd seq=Q slot=S                  abort-held seq=Q slot=S\n"
"  abort-answered seq=Q slot=S aborted=0|1\n"
"  abort-ignored seq=Q slot=S reason=option|wedged\n"
"  clear-halt ep=0xEE   set-halt ep=0xEE   stall ep=0xEE\n"
"  unlink seqnum=X [ep=0xEE] status=-104|0 urb-stall ep=0xEE reason=...\n"
"  ctrl-stall rt=.. req=.. value=.. index=.. len=..\n"
"  secure-verify|secure-modify slot=S seq=Q timeout=MS\n"
"  pin-entered slot=S op=verify apdu=HEX sw=XXXX | op=modify sw=XXXX\n"
"  pin-cancelled slot=S   pin-timeout slot=S   pin-typeahead kind=K\n"
"  wedged reason=spr332-fw700|ctl          unmuted reason=ctl|reset\n"
"  slot-change slot=S present=0|1          hwerror slot=S seq=Q\n"
"  notify data=HEX       notify-dropped data=HEX reason=no-int-in\n"
"  ctl-ok LINE | ctl-error LINE            error TEXT\n"
"  detached reason=quit|disconnect|disconnect-at cmd=N|peer-closed|signal|..\n";

static const char *const usage_sections[] = {
	usage_intro,
	usage_about,
	usage_process,
	usage_usb,
	usage_class,
	usage_cards,
	usage_pad,
	usage_scripts,
	usage_zlp,
	usage_card_cmds,
	usage_ctl,
	usage_events,
};
static void usage(int status)
{
	FILE *f = status ? stderr : stdout;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(usage_sections); i++)
		fputs(usage_sections[i], f);
	exit(status);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("ccid_emu: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'ccid_emu --help'.\n", stderr);
	exit(2);
}

/* ------------------------------------------------------------------ */
/* Log, time, randomness */

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void vlog_line(const char *fmt, va_list ap)
{
	char line[4096];
	int n = 0, m;

	if (cfg.timestamps) {
		struct timespec ts;
		uint64_t t;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		t = (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 -
		    start_ms * 1000;
		n = snprintf(line, sizeof(line), "%llu.%06llu ",
			     (unsigned long long)(t / 1000000),
			     (unsigned long long)(t % 1000000));
	}
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if (log_intf && n < (int)sizeof(line) - 2)
		n += snprintf(line + n, sizeof(line) - n - 1, " intf=%d",
			      log_intf);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line: readers never see half a line */
	if (write(log_fd, line, n) < 0)
		return;
}

/*
 * The interface whose reader the next lines are about: lines of
 * interface 0 (and of the device) look as they do with one interface.
 */
int elog_intf(int intf)
{
	int old = log_intf;

	log_intf = intf;
	return old;
}

void elog(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_line(fmt, ap);
	va_end(ap);
}

void vlog(const char *fmt, ...)
{
	va_list ap;

	if (!cfg.verbose)
		return;
	va_start(ap, fmt);
	vlog_line(fmt, ap);
	va_end(ap);
}

/* Uppercase hex without blanks; "+" at the end when cut */
void hexstr(char *out, size_t size, const uint8_t *buf, size_t len)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t i, k = 0;

	for (i = 0; i < len && k + 3 < size; i++) {
		out[k++] = digits[buf[i] >> 4];
		out[k++] = digits[buf[i] & 15];
	}
	if (i < len && k + 1 < size)
		out[k++] = '+';
	out[k] = '\0';
}

/* xorshift64*: reproducible for a given seed */
static uint64_t xorshift(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return (*state * 0x2545f4914f6cdd1dull) >> 32;
}

static uint64_t seed_state(uint64_t seed, uint64_t salt)
{
	uint64_t state = seed * 0x9e3779b97f4a7c15ull + salt;

	return state ? state : 1;
}

/* --random SEED */
uint64_t emu_rand(void)
{
	return xorshift(&rng_state);
}

/* --chaos SEED:PERMILLE, a stream of its own */
uint64_t emu_chaos_rand(void)
{
	return xorshift(&chaos_state);
}

void emu_exit(const char *reason)
{
	int status = reason && !strcmp(reason, "error");

	if (reason && !status)
		elog("detached reason=%s", reason);
	usb_close();
	if (ctl_is_fifo && cfg.ctl_path)
		close(ctl_fd);
	exit(status);
}

/* ------------------------------------------------------------------ */
/* Growing buffers, for the reader and the card */

void buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->size) {
		size_t size = b->size ? b->size : 64;
		uint8_t *p;

		while (size < b->len + len)
			size *= 2;
		p = realloc(b->p, size);
		if (!p) {
			elog("error out of memory");
			emu_exit("error");
		}
		b->p = p;
		b->size = size;
	}
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
}

void buf_byte(struct buf *b, uint8_t v)
{
	buf_add(b, &v, 1);
}

void buf_sw(struct buf *b, uint16_t sw)
{
	buf_byte(b, sw >> 8);
	buf_byte(b, sw & 0xff);
}

void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------------ */
/* Option parsing */

static unsigned long num(const char *opt, const char *s, unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || !*s || *end || v > max || *s == '-')
		bad_usage("%s: bad number '%s'", opt, s);
	return v;
}

static unsigned long hexnum(const char *opt, const char *s,
			    unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 16);
	if (errno || !*s || *end || v > max || *s == '-')
		bad_usage("%s: bad hex number '%s'", opt, s);
	return v;
}

/* Hex pairs, blanks, ':' and '.' ignored; return the byte count */
static size_t hexbytes(const char *opt, const char *s, uint8_t *out,
		       size_t size)
{
	size_t n = 0;
	int hi = -1, v;

	for (; *s; s++) {
		if (*s == ' ' || *s == ':' || *s == '.')
			continue;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else
			bad_usage("%s: bad hex '%c'", opt, *s);
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n >= size)
			bad_usage("%s: more than %zu bytes", opt, size);
		out[n++] = hi << 4 | v;
		hi = -1;
	}
	if (hi >= 0)
		bad_usage("%s: odd number of hex digits", opt);
	return n;
}

/* "N:REST": the number, and REST */
static unsigned int cmd_num(const char *opt, const char *s, const char **rest)
{
	const char *colon = strchr(s, ':');
	char tmp[32];

	if (!colon || colon - s >= (long)sizeof(tmp))
		bad_usage("%s: expected N:..., got '%s'", opt, s);
	memcpy(tmp, s, colon - s);
	tmp[colon - s] = '\0';
	*rest = colon + 1;
	return num(opt, tmp, 0xffffffffu);
}

static struct script *add_script(const char *opt, unsigned int n,
				 enum script_kind kind)
{
	struct script *sc;

	if (!n)
		bad_usage("%s: commands count from 1", opt);
	if (cfg.num_scripts >= EMU_MAX_SCRIPTS)
		bad_usage("%s: too many scripted behaviours", opt);
	sc = &cfg.scripts[cfg.num_scripts++];
	sc->n = n;
	sc->kind = kind;
	return sc;
}

static void slot_list(const char *opt, const char *s, bool *set)
{
	char tmp[128], *tok, *save;
	int i;

	if (!strcmp(s, "all")) {
		for (i = 0; i < EMU_MAX_SLOTS; i++)
			set[i] = true;
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s", s);
	for (tok = strtok_r(tmp, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save))
		set[num(opt, tok, EMU_MAX_SLOTS - 1)] = true;
}

static void parse_endpoints(const char *s)
{
	static const struct {
		const char *name;
		enum ep_role role;
		uint8_t type;
		bool in;
	} roles[] = {
		{ "bulk-in", ROLE_BULK_IN, 2, true },
		{ "bulk-out", ROLE_BULK_OUT, 2, false },
		{ "int-in", ROLE_INT_IN, 3, true },
		{ "int-out", ROLE_INT_OUT, 3, false },
		{ "iso-in", ROLE_ISO_IN, 1, true },
		{ "iso-out", ROLE_ISO_OUT, 1, false },
	};
	static const char * const types[] = { "ctrl", "iso", "bulk", "int" };
	char tmp[256], *tok, *save, *as, *at;
	size_t i;
	int t;

	cfg.num_eps = 0;
	snprintf(tmp, sizeof(tmp), "%s", s);
	for (tok = strtok_r(tmp, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		struct ep_cfg *ep;

		if (cfg.num_eps >= EMU_MAX_INTF_EPS)
			bad_usage("--endpoints: at most %d", EMU_MAX_INTF_EPS);
		ep = &cfg.eps[cfg.num_eps];
		at = strchr(tok, '@');
		if (at)
			*at++ = '\0';
		as = strstr(tok, "-as-");
		if (as) {
			*as = '\0';
			as += 4;
		}
		for (i = 0; i < ARRAY_SIZE(roles); i++)
			if (!strcmp(tok, roles[i].name))
				break;
		if (i == ARRAY_SIZE(roles))
			bad_usage("--endpoints: unknown endpoint '%s'", tok);
		ep->role = roles[i].role;
		ep->type = roles[i].type;
		ep->addr = (cfg.num_eps + 1) | (roles[i].in ? 0x80 : 0);
		if (as) {
			for (t = 0; t < 4; t++)
				if (!strcmp(as, types[t]))
					break;
			if (t == 4)
				bad_usage("--endpoints: unknown type '%s'", as);
			ep->type = t;
		}
		if (at)
			ep->addr = num("--endpoints", at, 0xff);
		cfg.num_eps++;
	}
}

/*
 * --interfaces 2: interface 1 gets a copy of interface 0's endpoints,
 * numbered after them (0x81 0x02 0x83 -> 0x84 0x05 0x86).
 */
static void second_interface(void)
{
	int i, n = cfg.num_eps;

	if (cfg.interfaces < 2)
		return;
	for (i = 0; i < n; i++) {
		struct ep_cfg *ep = &cfg.eps[n + i];

		*ep = cfg.eps[i];
		ep->intf = 1;
		ep->addr = (ep->addr & 0x80) | (((ep->addr & 0x0f) + n) & 0x0f);
	}
	cfg.num_eps = 2 * n;
}

/* --lag K:L[:card] */
static void parse_lag(const char *opt, const char *s)
{
	const char *rest;
	char tmp[32];

	cfg.lag_after = cmd_num(opt, s, &rest);
	if (!cfg.lag_after)
		bad_usage("%s: commands count from 1", opt);
	snprintf(tmp, sizeof(tmp), "%s", rest);
	if (strchr(tmp, ':')) {
		cfg.lag_by = cmd_num(opt, tmp, &rest);
		if (strcmp(rest, "card"))
			bad_usage("%s: K:L or K:L:card", opt);
		cfg.lag_card = true;
	} else {
		cfg.lag_by = num(opt, tmp, EMU_LAG_MAX);
	}
	if (!cfg.lag_by || cfg.lag_by > EMU_LAG_MAX)
		bad_usage("%s: L from 1 to %d", opt, EMU_LAG_MAX);
}

static void set_default_atr(void)
{
	static const char hist[] = "CCID-EMU";
	uint8_t atr[EMU_MAX_ATR], tck = 0;
	size_t n = 0, i;
	int s;

	atr[n++] = 0x3b;
	if (cfg.protocol) {
		atr[n++] = 0x88;		/* TD1, 8 historical bytes */
		atr[n++] = 0x80;		/* TD2, T=0 */
		atr[n++] = 0x01;		/* T=1 */
	} else {
		atr[n++] = 0x08;
	}
	memcpy(atr + n, hist, 8);
	n += 8;
	if (cfg.protocol) {
		for (i = 1; i < n; i++)
			tck ^= atr[i];
		atr[n++] = tck;
	}
	for (s = 0; s < EMU_MAX_SLOTS; s++) {
		if (cfg.atr_len[s])
			continue;
		memcpy(cfg.atr[s], atr, n);
		cfg.atr_len[s] = n;
	}
}

static void add_aid(const char *s)
{
	if (cfg.num_aids >= EMU_MAX_AIDS)
		bad_usage("--aid: at most %d", EMU_MAX_AIDS);
	cfg.aid_len[cfg.num_aids] = hexbytes("--aid", s,
					     cfg.aids[cfg.num_aids], 16);
	cfg.num_aids++;
}

static void add_patch(const char *opt, const char *s, struct patch *p,
		      int *count)
{
	const char *rest;

	if (*count >= EMU_MAX_PATCHES)
		bad_usage("%s: at most %d", opt, EMU_MAX_PATCHES);
	p += (*count)++;
	p->offset = cmd_num(opt, s, &rest);
	p->len = hexbytes(opt, rest, p->bytes, sizeof(p->bytes));
}

enum {
	O_PORT = 256, O_NODE_TIMEOUT, O_SPEED, O_LOG, O_CTL, O_TIMESTAMPS, O_RESET_DEVICE,
	O_VID, O_PID, O_BCD_DEVICE, O_BCD_USB, O_MANUFACTURER, O_PRODUCT,
	O_SERIAL, O_IFACE_CLASS, O_IFACE_SUBCLASS, O_IFACE_PROTOCOL,
	O_ENDPOINTS, O_MAX_PACKET, O_INT_MAX_PACKET, O_INT_INTERVAL,
	O_BCD_CCID, O_MAX_SLOT, O_VOLTAGE, O_PROTOCOLS, O_FEATURES, O_LEVEL,
	O_MAX_MSG, O_PIN_SUPPORT, O_MAX_BUSY, O_LCD, O_MAX_IFSD, O_CLASS_GR,
	O_CLASS_ENV, O_CLASS_DESC, O_CLASS_PLACE, O_CLASS_LEN, O_CLASS_TYPE,
	O_PATCH_DEVICE, O_PATCH_CONFIG, O_ATR, O_SLOT_ATR, O_ABSENT,
	O_POWERED, O_PROTOCOL, O_PIN, O_PIN_TRIES, O_AID, O_PAD_PIN,
	O_PIN_DELAY, O_PIN_TIMEOUT, O_SPR332, O_TIME_EXT, O_TIME_EXT_GAP,
	O_DELAY, O_DROP, O_MUTE_AFTER, O_REVIVE, O_ABORT, O_ABORT_REQ, O_STALL, O_BAD,
	O_NOTIFY_ON_CONFIG, O_NOTIFY_DELAY, O_INSERT_AT, O_REMOVE_AT, O_HWERROR_AT, O_DISCONNECT_AT, O_RANDOM,
	O_INTERFACES, O_SCRIPT_INTF, O_LAG, O_LAG_DROP, O_OUT_PENDING,
	O_OUT_ZLP, O_IN_ZLP, O_CHAOS,
};

static const struct option longopts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "port", required_argument, NULL, O_PORT },
	{ "node-timeout", required_argument, NULL, O_NODE_TIMEOUT },
	{ "speed", required_argument, NULL, O_SPEED },
	{ "log", required_argument, NULL, O_LOG },
	{ "ctl", required_argument, NULL, O_CTL },
	{ "timestamps", no_argument, NULL, O_TIMESTAMPS },
	{ "reset-device", required_argument, NULL, O_RESET_DEVICE },
	{ "vid", required_argument, NULL, O_VID },
	{ "pid", required_argument, NULL, O_PID },
	{ "bcd-device", required_argument, NULL, O_BCD_DEVICE },
	{ "bcd-usb", required_argument, NULL, O_BCD_USB },
	{ "manufacturer", required_argument, NULL, O_MANUFACTURER },
	{ "product", required_argument, NULL, O_PRODUCT },
	{ "serial", required_argument, NULL, O_SERIAL },
	{ "iface-class", required_argument, NULL, O_IFACE_CLASS },
	{ "iface-subclass", required_argument, NULL, O_IFACE_SUBCLASS },
	{ "iface-protocol", required_argument, NULL, O_IFACE_PROTOCOL },
	{ "endpoints", required_argument, NULL, O_ENDPOINTS },
	{ "max-packet", required_argument, NULL, O_MAX_PACKET },
	{ "int-max-packet", required_argument, NULL, O_INT_MAX_PACKET },
	{ "int-interval", required_argument, NULL, O_INT_INTERVAL },
	{ "bcd-ccid", required_argument, NULL, O_BCD_CCID },
	{ "max-slot-index", required_argument, NULL, O_MAX_SLOT },
	{ "voltage", required_argument, NULL, O_VOLTAGE },
	{ "protocols", required_argument, NULL, O_PROTOCOLS },
	{ "features", required_argument, NULL, O_FEATURES },
	{ "level", required_argument, NULL, O_LEVEL },
	{ "max-msg", required_argument, NULL, O_MAX_MSG },
	{ "pin-support", required_argument, NULL, O_PIN_SUPPORT },
	{ "max-busy-slots", required_argument, NULL, O_MAX_BUSY },
	{ "lcd-layout", required_argument, NULL, O_LCD },
	{ "max-ifsd", required_argument, NULL, O_MAX_IFSD },
	{ "class-get-response", required_argument, NULL, O_CLASS_GR },
	{ "class-envelope", required_argument, NULL, O_CLASS_ENV },
	{ "class-desc", required_argument, NULL, O_CLASS_DESC },
	{ "class-desc-place", required_argument, NULL, O_CLASS_PLACE },
	{ "class-desc-len", required_argument, NULL, O_CLASS_LEN },
	{ "class-desc-type", required_argument, NULL, O_CLASS_TYPE },
	{ "patch-device", required_argument, NULL, O_PATCH_DEVICE },
	{ "patch-config", required_argument, NULL, O_PATCH_CONFIG },
	{ "atr", required_argument, NULL, O_ATR },
	{ "slot-atr", required_argument, NULL, O_SLOT_ATR },
	{ "absent", required_argument, NULL, O_ABSENT },
	{ "powered", required_argument, NULL, O_POWERED },
	{ "protocol", required_argument, NULL, O_PROTOCOL },
	{ "pin", required_argument, NULL, O_PIN },
	{ "pin-tries", required_argument, NULL, O_PIN_TRIES },
	{ "aid", required_argument, NULL, O_AID },
	{ "pad-pin", required_argument, NULL, O_PAD_PIN },
	{ "pin-delay", required_argument, NULL, O_PIN_DELAY },
	{ "pin-timeout", required_argument, NULL, O_PIN_TIMEOUT },
	{ "spr332-fw700", no_argument, NULL, O_SPR332 },
	{ "time-ext", required_argument, NULL, O_TIME_EXT },
	{ "time-ext-gap", required_argument, NULL, O_TIME_EXT_GAP },
	{ "delay", required_argument, NULL, O_DELAY },
	{ "drop", required_argument, NULL, O_DROP },
	{ "mute-after", required_argument, NULL, O_MUTE_AFTER },
	{ "revive-on-reset", no_argument, NULL, O_REVIVE },
	{ "abort", required_argument, NULL, O_ABORT },
	{ "abort-request", required_argument, NULL, O_ABORT_REQ },
	{ "stall", required_argument, NULL, O_STALL },
	{ "bad", required_argument, NULL, O_BAD },
	{ "notify-on-config", no_argument, NULL, O_NOTIFY_ON_CONFIG },
	{ "notify-delay", required_argument, NULL, O_NOTIFY_DELAY },
	{ "insert-at", required_argument, NULL, O_INSERT_AT },
	{ "remove-at", required_argument, NULL, O_REMOVE_AT },
	{ "hwerror-at", required_argument, NULL, O_HWERROR_AT },
	{ "disconnect-at", required_argument, NULL, O_DISCONNECT_AT },
	{ "random", required_argument, NULL, O_RANDOM },
	{ "chaos", required_argument, NULL, O_CHAOS },
	{ "interfaces", required_argument, NULL, O_INTERFACES },
	{ "script-intf", required_argument, NULL, O_SCRIPT_INTF },
	{ "lag", required_argument, NULL, O_LAG },
	{ "lag-drop", required_argument, NULL, O_LAG_DROP },
	{ "out-pending", required_argument, NULL, O_OUT_PENDING },
	{ "out-zlp", required_argument, NULL, O_OUT_ZLP },
	{ "in-zlp", no_argument, NULL, O_IN_ZLP },
	{ NULL, 0, NULL, 0 }
};

static void defaults(void)
{
	cfg.speed = 3;
	cfg.port = -1;
	cfg.node_timeout_ms = 5000;
	cfg.vid = 0x04e6;
	cfg.pid = 0xe003;
	cfg.bcd_device = 0x0701;
	cfg.bcd_usb = 0x0200;
	cfg.manufacturer = "SCM Microsystems Inc.";
	cfg.product = "SPRx32 USB Smart Card Reader";
	cfg.serial = "CCIDEMU0001";
	cfg.iface_class = 0x0b;
	cfg.bulk_maxp = -1;
	cfg.int_maxp = 8;
	cfg.bcd_ccid = 0x0110;
	cfg.voltage = 0x07;
	cfg.protocols = 0x03;
	cfg.features = 0x000204ba;
	cfg.max_msg = 0;
	cfg.pin_support = 0x03;
	cfg.max_busy = 1;
	cfg.max_ifsd = 254;
	cfg.class_get_response = 0xff;
	cfg.class_envelope = 0xff;
	cfg.class_len = -1;
	cfg.class_type = -1;
	cfg.protocol = 1;
	cfg.pin = "123456";
	cfg.pin_tries = 3;
	cfg.pin_timeout_ms = 30000;
	cfg.time_ext_gap_ms = 100;
	cfg.interfaces = 1;
	parse_endpoints("bulk-in,bulk-out,int-in");
	hexbytes("", "D2760001240103040000000000000000", cfg.aids[0], 16);
	cfg.aid_len[0] = 16;
	hexbytes("", "F04343494445", cfg.aids[1], 16);
	cfg.aid_len[1] = 6;
	cfg.num_aids = 2;
}

/*
 * The options, one function per group of the --help text.  Each returns
 * false for an option not of its group; parse_args() tries them in turn.
 */
static const char *reset_busid;		/* --reset-device */
static int int_interval = 8;		/* --int-interval */

/* A keyword of names[], or the usage error msg */
static int keyword(const char *arg, const char *const *names, size_t n,
		   const char *msg)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(arg, names[i]))
			return i;
	bad_usage("%s", msg);
}

static bool opt_process(int opt, const char *o, char *arg)
{
	switch (opt) {
	case 'h':
		usage(0);
		break;
	case 'v':
		cfg.verbose = true;
		break;
	case O_PORT:
		cfg.port = num(o, arg, 4095);
		break;
	case O_NODE_TIMEOUT:
		cfg.node_timeout_ms = num(o, arg, 3600000);
		break;
	case O_SPEED:
		cfg.speed = num(o, arg, 3);
		if (cfg.speed < 2)
			bad_usage("--speed: 2 or 3");
		break;
	case O_LOG:
		cfg.log_path = arg;
		break;
	case O_CTL:
		cfg.ctl_path = arg;
		break;
	case O_TIMESTAMPS:
		cfg.timestamps = true;
		break;
	case O_RESET_DEVICE:
		reset_busid = arg;
		break;
	default:
		return false;
	}
	return true;
}

static bool opt_usb(int opt, const char *o, char *arg)
{
	switch (opt) {
	case O_VID:
		cfg.vid = hexnum(o, arg, 0xffff);
		break;
	case O_PID:
		cfg.pid = hexnum(o, arg, 0xffff);
		break;
	case O_BCD_DEVICE:
		cfg.bcd_device = hexnum(o, arg, 0xffff);
		break;
	case O_BCD_USB:
		cfg.bcd_usb = hexnum(o, arg, 0xffff);
		break;
	case O_MANUFACTURER:
		cfg.manufacturer = arg;
		break;
	case O_PRODUCT:
		cfg.product = arg;
		break;
	case O_SERIAL:
		cfg.serial = arg;
		break;
	case O_IFACE_CLASS:
		cfg.iface_class = num(o, arg, 0xff);
		break;
	case O_IFACE_SUBCLASS:
		cfg.iface_subclass = num(o, arg, 0xff);
		break;
	case O_IFACE_PROTOCOL:
		cfg.iface_protocol = num(o, arg, 0xff);
		break;
	case O_ENDPOINTS:
		parse_endpoints(arg);
		break;
	case O_MAX_PACKET:
		cfg.bulk_maxp = num(o, arg, 0xffff);
		break;
	case O_INT_MAX_PACKET:
		cfg.int_maxp = num(o, arg, 0xffff);
		break;
	case O_INT_INTERVAL:
		int_interval = num(o, arg, 0xff);
		break;
	case O_INTERFACES:
		cfg.interfaces = num("--interfaces", arg, EMU_MAX_INTF);
		if (!cfg.interfaces)
			bad_usage("--interfaces: 1 or 2");
		break;
	default:
		return false;
	}
	return true;
}

/* The fields of the class descriptor: bcdCCID to bClassEnvelope */
static bool opt_class_fields(int opt, const char *o, char *arg)
{
	static const char *const levels[] = {
		"character", "tpdu", "short", "extended",
	};
	static const uint32_t level_bits[] = {
		LEVEL_CHAR, LEVEL_TPDU, LEVEL_SHORT, LEVEL_EXT,
	};

	switch (opt) {
	case O_BCD_CCID:
		cfg.bcd_ccid = hexnum(o, arg, 0xffff);
		break;
	case O_MAX_SLOT:
		cfg.max_slot = num(o, arg, EMU_MAX_SLOTS - 1);
		break;
	case O_VOLTAGE:
		cfg.voltage = num(o, arg, 0xff);
		break;
	case O_PROTOCOLS:
		cfg.protocols = num(o, arg, 0xffffffffu);
		break;
	case O_FEATURES:
		cfg.features = hexnum(o, arg, 0xffffffffu);
		break;
	case O_LEVEL:
		cfg.features &= ~LEVEL_MASK;
		cfg.features |= level_bits[keyword(arg, levels,
			ARRAY_SIZE(levels),
			"--level: character, tpdu, short or extended")];
		break;
	case O_MAX_MSG:
		cfg.max_msg = num(o, arg, 0xffffffffu);
		cfg.max_msg_set = true;
		break;
	case O_PIN_SUPPORT:
		cfg.pin_support = num(o, arg, 0xff);
		break;
	case O_MAX_BUSY:
		cfg.max_busy = num(o, arg, 0xff);
		break;
	case O_LCD:
		cfg.lcd_layout = hexnum(o, arg, 0xffff);
		break;
	case O_MAX_IFSD:
		cfg.max_ifsd = num(o, arg, 0xffffffffu);
		break;
	case O_CLASS_GR:
		cfg.class_get_response = num(o, arg, 0xff);
		break;
	case O_CLASS_ENV:
		cfg.class_envelope = num(o, arg, 0xff);
		break;
	default:
		return false;
	}
	return true;
}

/* The class descriptor as bytes, and the descriptor patches */
static bool opt_class_bytes(int opt, const char *o, char *arg)
{
	static const char *const places[] = {
		[PLACE_INTERFACE] = "interface",
		[PLACE_ENDPOINT] = "endpoint",
		[PLACE_NONE] = "none",
	};

	switch (opt) {
	case O_CLASS_DESC:
		cfg.class_raw_len = hexbytes(o, arg, cfg.class_raw,
					     sizeof(cfg.class_raw));
		if (!cfg.class_raw_len)
			cfg.class_place = PLACE_NONE;
		break;
	case O_CLASS_PLACE:
		cfg.class_place = keyword(arg, places, ARRAY_SIZE(places),
			"--class-desc-place: interface, endpoint or none");
		break;
	case O_CLASS_LEN:
		cfg.class_len = num(o, arg, 255);
		break;
	case O_CLASS_TYPE:
		cfg.class_type = num(o, arg, 255);
		break;
	case O_PATCH_DEVICE:
		add_patch(o, arg, cfg.dev_patch, &cfg.num_dev_patch);
		break;
	case O_PATCH_CONFIG:
		add_patch(o, arg, cfg.cfg_patch, &cfg.num_cfg_patch);
		break;
	default:
		return false;
	}
	return true;
}

static bool opt_cards(int opt, const char *o, char *arg)
{
	static const char *const protocols[] = { "t0", "t1" };
	char *eq;
	int s;

	switch (opt) {
	case O_ATR:
		for (s = 0; s < EMU_MAX_SLOTS; s++)
			cfg.atr_len[s] = hexbytes(o, arg, cfg.atr[s],
						  EMU_MAX_ATR);
		break;
	case O_SLOT_ATR:
		eq = strchr(arg, '=');
		if (!eq)
			bad_usage("--slot-atr: S=HEX");
		*eq = '\0';
		s = num(o, arg, EMU_MAX_SLOTS - 1);
		cfg.atr_len[s] = hexbytes(o, eq + 1, cfg.atr[s], EMU_MAX_ATR);
		break;
	case O_ABSENT:
		slot_list(o, arg, cfg.absent);
		break;
	case O_POWERED:
		slot_list(o, arg, cfg.powered);
		break;
	case O_PROTOCOL:
		cfg.protocol = keyword(arg, protocols, ARRAY_SIZE(protocols),
				       "--protocol: t0 or t1");
		break;
	case O_PIN:
		cfg.pin = arg;
		break;
	case O_PIN_TRIES:
		cfg.pin_tries = num(o, arg, 15);
		break;
	case O_AID:
		add_aid(arg);
		break;
	default:
		return false;
	}
	return true;
}

static bool opt_pin_pad(int opt, const char *o, char *arg)
{
	switch (opt) {
	case O_PAD_PIN:
		cfg.pad_pin = arg;
		break;
	case O_PIN_DELAY:
		cfg.pin_delay_ms = num(o, arg, 3600000);
		break;
	case O_PIN_TIMEOUT:
		cfg.pin_timeout_ms = num(o, arg, 3600000);
		break;
	case O_SPR332:
		cfg.spr332_fw700 = true;
		break;
	default:
		return false;
	}
	return true;
}

/* Scripts that act at command N: --OPT N:... or --OPT N */
static bool opt_scripts(int opt, const char *o, char *arg)
{
	unsigned int n, count;
	const char *rest;
	struct script *sc;
	int kind;

	switch (opt) {
	case O_TIME_EXT:
		n = cmd_num(o, arg, &rest);
		count = cmd_num(o, rest, &rest);
		sc = add_script(o, n, SCR_TIME_EXT);
		sc->a = count;
		sc->b = num(o, rest, 0xff);
		break;
	case O_DELAY:
		n = cmd_num(o, arg, &rest);
		add_script(o, n, SCR_DELAY)->a = num(o, rest, 3600000);
		break;
	case O_DROP:
		add_script(o, num(o, arg, 0xffffffffu), SCR_DROP);
		break;
	case O_STALL:
		n = cmd_num(o, arg, &rest);
		if (!strcmp(rest, "in"))
			add_script(o, n, SCR_STALL_IN);
		else if (!strcmp(rest, "out"))
			add_script(o, n, SCR_STALL_OUT);
		else
			bad_usage("--stall: N:in or N:out");
		break;
	case O_BAD:
		n = cmd_num(o, arg, &rest);
		kind = ccid_bad_kind(rest);
		if (kind < 0)
			bad_usage("--bad: unknown kind '%s'", rest);
		add_script(o, n, SCR_BAD)->a = kind;
		break;
	case O_INSERT_AT:
	case O_REMOVE_AT:
	case O_HWERROR_AT:
		n = cmd_num(o, arg, &rest);
		add_script(o, n, opt == O_INSERT_AT ? SCR_INSERT :
			   opt == O_REMOVE_AT ? SCR_REMOVE :
			   SCR_HWERROR)->a = num(o, rest, EMU_MAX_SLOTS - 1);
		break;
	case O_DISCONNECT_AT:
		cfg.disconnect_at = num(o, arg, 0xffffffffu);
		break;
	default:
		return false;
	}
	return true;
}

/* --chaos SEED:PERMILLE */
static void parse_chaos(const char *opt, const char *s)
{
	const char *rest;

	cfg.chaos_seed = cmd_num(opt, s, &rest);
	cfg.chaos_permille = num(opt, rest, 1000);
}

/* The reader's scripted manners: mute, Abort, notifications, --random */
static bool opt_reader_modes(int opt, const char *o, char *arg)
{
	static const char *const aborts[] = {
		[ABORT_ANSWER] = "answer",
		[ABORT_IGNORE] = "ignore",
		[ABORT_AFTER_CLEAR_HALT] = "after-clear-halt",
	};
	static const char *const abort_reqs[] = {
		[AREQ_OK] = "ok", [AREQ_STALL] = "stall",
		[AREQ_IGNORE] = "ignore",
	};

	switch (opt) {
	case O_SCRIPT_INTF:
		cfg.script_intf = num("--script-intf", arg, EMU_MAX_INTF - 1);
		break;
	case O_TIME_EXT_GAP:
		cfg.time_ext_gap_ms = num(o, arg, 3600000);
		break;
	case O_MUTE_AFTER:
		cfg.mute_after = num(o, arg, 0xffffffffu);
		break;
	case O_REVIVE:
		cfg.revive_on_reset = true;
		break;
	case O_ABORT:
		cfg.abort_mode = keyword(arg, aborts, ARRAY_SIZE(aborts),
			"--abort: answer, ignore or after-clear-halt");
		break;
	case O_ABORT_REQ:
		cfg.abort_req = keyword(arg, abort_reqs,
					ARRAY_SIZE(abort_reqs),
					"--abort-request: ok, stall or ignore");
		break;
	case O_NOTIFY_ON_CONFIG:
		cfg.notify_on_config = true;
		break;
	case O_NOTIFY_DELAY:
		cfg.notify_delay_ms = num(o, arg, 3600000);
		break;
	case O_RANDOM:
		cfg.random = true;
		cfg.seed = num(o, arg, ~0ul);
		break;
	case O_CHAOS:
		parse_chaos(o, arg);
		break;
	default:
		return false;
	}
	return true;
}

/* The out-of-step reader, pending OUT URBs and zero-length packets */
static bool opt_lag_zlp(int opt, const char *o __attribute__((unused)),
			char *arg)
{
	static const char *const zlps[] = {
		[ZLP_IGNORE] = "ignore", [ZLP_STALL] = "stall",
		[ZLP_NEED] = "need",
	};

	switch (opt) {
	case O_LAG:
		parse_lag("--lag", arg);
		break;
	case O_LAG_DROP:
		cfg.lag_drop = num("--lag-drop", arg, 0xffffffffu);
		if (!cfg.lag_drop)
			bad_usage("--lag-drop: commands count from 1");
		break;
	case O_OUT_PENDING:
		cfg.out_pending = num("--out-pending", arg, 0xffffffffu);
		if (!cfg.out_pending)
			bad_usage("--out-pending: count from 1");
		break;
	case O_OUT_ZLP:
		cfg.out_zlp = keyword(arg, zlps, ARRAY_SIZE(zlps),
				      "--out-zlp: ignore, stall or need");
		break;
	case O_IN_ZLP:
		cfg.in_zlp = true;
		break;
	default:
		return false;
	}
	return true;
}

static bool (*const option_groups[])(int opt, const char *o, char *arg) = {
	opt_process, opt_usb, opt_class_fields, opt_class_bytes, opt_cards,
	opt_pin_pad, opt_scripts, opt_reader_modes, opt_lag_zlp,
};

/* What the options imply together, once all are read */
static void finish_args(void)
{
	int i;

	if (!cfg.max_msg_set)
		cfg.max_msg = (cfg.features & LEVEL_MASK) == LEVEL_EXT ?
			      EMU_HDR + 65536 : 271;
	if (cfg.bulk_maxp < 0)
		cfg.bulk_maxp = cfg.speed == 3 ? 512 : 64;
	for (i = 0; i < cfg.num_eps; i++) {
		struct ep_cfg *ep = &cfg.eps[i];

		ep->maxp = ep->type == 3 ? cfg.int_maxp : cfg.bulk_maxp;
		ep->interval = ep->type == 3 ? int_interval : 0;
	}
	if (cfg.script_intf >= cfg.interfaces)
		bad_usage("--script-intf: interface %d of %d", cfg.script_intf,
			  cfg.interfaces);
	if (cfg.lag_after && cfg.lag_drop)
		bad_usage("--lag and --lag-drop: one of them");
	second_interface();
	set_default_atr();
	rng_state = seed_state(cfg.seed, 0x1234567);
	chaos_state = seed_state(cfg.chaos_seed, 0x7654321);
}

static void parse_args(int argc, char **argv)
{
	size_t g;
	int opt;

	while ((opt = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
		const char *o = argv[optind - 1];

		for (g = 0; g < ARRAY_SIZE(option_groups); g++)
			if (option_groups[g](opt, o, optarg))
				break;
		if (g == ARRAY_SIZE(option_groups)) {
			fputs("Try 'ccid_emu --help'.\n", stderr);
			exit(2);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
	finish_args();
}

/* ------------------------------------------------------------------ */
/* The control channel */

static void ctl_line(char *line)
{
	char copy[512];
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' ||
		     line[n - 1] == '\t'))
		line[--n] = '\0';
	line += strspn(line, " \t");
	if (!*line || *line == '#')
		return;
	snprintf(copy, sizeof(copy), "%s", line);
	if (!strcmp(line, "quit"))
		emu_exit("quit");
	if (!strcmp(line, "disconnect"))
		emu_exit("disconnect");
	if (!strcmp(line, "replug")) {
		elog("detached reason=replug");
		usb_close();
		ccid_usb_reset();
		if (usb_attach())
			emu_exit("error");
		elog("ctl-ok %s", copy);
		return;
	}
	if (ccid_ctl(line))
		elog("ctl-error %s", copy);
	else
		elog("ctl-ok %s", copy);
}

static void ctl_input(void)
{
	static char buf[4096];
	static size_t len;
	char *nl;
	ssize_t n;

	n = read(ctl_fd, buf + len, sizeof(buf) - 1 - len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* stdin closed: no more commands, keep serving */
		ctl_fd = -1;
		return;
	}
	len += n;
	buf[len] = '\0';
	while ((nl = strchr(buf, '\n'))) {
		*nl = '\0';
		ctl_line(buf);
		len -= nl + 1 - buf;
		memmove(buf, nl + 1, len);
		buf[len] = '\0';
	}
	if (len == sizeof(buf) - 1)
		len = 0;		/* a line too long: dropped */
}

static void on_signal(int sig)
{
	got_signal = sig;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct pollfd pfd[2];
	int64_t t, t2;

	start_ms = now_ms();
	defaults();
	parse_args(argc, argv);
	if (reset_busid)
		return usb_reset_device(reset_busid);

	if (cfg.log_path) {
		log_fd = open(cfg.log_path, O_WRONLY | O_CREAT | O_TRUNC |
			      O_APPEND | O_CLOEXEC, 0644);
		if (log_fd < 0) {
			fprintf(stderr, "ccid_emu: %s: %s\n", cfg.log_path,
				strerror(errno));
			return 1;
		}
	}
	if (cfg.ctl_path) {
		if (mkfifo(cfg.ctl_path, 0600) && errno != EEXIST) {
			fprintf(stderr, "ccid_emu: mkfifo %s: %s\n",
				cfg.ctl_path, strerror(errno));
			return 1;
		}
		/* O_RDWR: never EOF when a writer closes */
		ctl_fd = open(cfg.ctl_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (ctl_fd < 0) {
			fprintf(stderr, "ccid_emu: %s: %s\n", cfg.ctl_path,
				strerror(errno));
			return 1;
		}
		ctl_is_fifo = true;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	card_init();
	ccid_init();
	if (usb_attach())
		return 1;

	for (;;) {
		t = usb_next_timer();
		t2 = ccid_next_timer();
		if (t < 0 || (t2 >= 0 && t2 < t))
			t = t2;
		pfd[0].fd = usb_fd();
		pfd[0].events = POLLIN;
		pfd[1].fd = ctl_fd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, t > 600000 ? 600000 : (int)t) < 0 &&
		    errno != EINTR) {
			elog("error poll: %s", strerror(errno));
			emu_exit("error");
		}
		if (got_signal)
			emu_exit("signal");
		if (pfd[0].revents && usb_input())
			emu_exit(NULL);
		if (ctl_fd >= 0 && pfd[1].revents)
			ctl_input();
		ccid_timers();
		usb_timers();
	}
}
