// SPDX-License-Identifier: GPL-2.0
/*
 * ccid_emu: the reader, above the USB side and below the card model (see
 * "Layers" in ccid_emu.h).  Bulk-OUT messages are put
 * together, counted (command N is the Nth bulk-OUT CCID message since
 * start, 1-based, Abort included, never reset), logged, answered by the
 * slot's card model, and the answer goes through the scripted behaviours
 * (time extension, delay, stall, bad frames, --random, --chaos, --lag)
 * before it is queued for bulk-IN.  The Abort procedure, the PIN pad and the
 * interrupt-IN events live here too.
 *
 * Each CCID interface (--interfaces) is a reader of its own, struct
 * reader; the entry points from the USB side name the interface and
 * make its reader the one served (rd).  The scripts act on one of them.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ccid_emu.h"

#define RANDOM_GAP_MS	10

enum entry { ENTRY_NONE, ENTRY_DIGITS, ENTRY_CANCEL, ENTRY_TIMEOUT };

struct slot {
	bool present, powered;
	uint8_t protocol;		/* 0 = T=0, 1 = T=1 */
	uint8_t params[7];
	size_t params_len;
	uint8_t last_seq;		/* of the last command, Abort included */
	uint8_t cmd_seq;		/* of the last command but Abort */
	unsigned int cmd_no;		/* its number */
	/* A command whose answer is not sent yet */
	bool busy;
	uint8_t busy_seq, busy_type;
	unsigned int busy_cmd;
	/* PIN pad */
	bool pin_wait;
	struct buf sec;			/* the Secure block */
	uint64_t pin_deadline, entry_due;
	enum entry entry;
	char entry_digits[128];
	struct buf chain_in;		/* XfrBlock command chaining */
	struct buf chain_out;		/* XfrBlock response chaining */
	size_t chain_out_off;
	/* The card's own state is ccid_emu_card.c's: card->...(intf, index) */
	uint8_t intf, index;
};

struct answer {
	uint8_t type, status, error, param;
	struct buf data;
	unsigned int delay_ms;
	bool none;			/* no answer at all */
	bool pending;			/* answered later (PIN pad) */
	bool wedge;			/* the reader wedges after this one */
	bool keep_busy;			/* CMD_SLOT_BUSY: not the slot's command */
};

#define LAG_RING	256		/* commands remembered for --lag */

/* A command, for --lag: its bSeq and place among the card commands */
struct lag_rec {
	unsigned int n;			/* 0: none */
	uint8_t seq;
	unsigned int card_no;		/* 0: not XfrBlock or Secure */
};

/* One reader: one CCID interface */
struct reader {
	int intf;
	struct slot slots[EMU_MAX_SLOTS];
	unsigned int cmd_no;
	bool muted, wedged;
	struct buf out;			/* bulk-OUT message being assembled */
	/* Abort: the class request and PC_to_RDR_Abort, in either order */
	bool areq_valid, acmd_valid;
	unsigned int clear_halt_no;	/* cmd_no at the last bulk clear */
	uint16_t areq_value;
	uint8_t acmd_slot, acmd_seq;
	unsigned int acmd_no;
	/* PIN typed on the control channel before the Secure came */
	enum entry typeahead;
	char typeahead_digits[128];
	/* --lag, --lag-drop */
	unsigned int lag_after;		/* K; 0: no lag (any more) */
	unsigned int lag_by;		/* L */
	bool lag_card;			/* only card answers lag */
	bool lag_started;		/* "lag-start" logged */
	bool lag_drop;			/* a card command to drop to come */
	unsigned int card_no;		/* XfrBlocks and Secures so far */
	struct lag_rec lag_cmd[LAG_RING];	/* by command number */
	uint8_t lag_card_seq[LAG_RING];	/* by card command number */
	/* --out-zlp need: a command waiting for its ZLP */
	struct buf held;
	unsigned int held_no;
	/* --out-pending: the command whose bulk-OUT URB is held */
	unsigned int pending_no;
	/* --chaos: the fault drawn for the answer to command chaos_no */
	unsigned int chaos_no;
	int chaos_kind;
};

static struct reader readers[EMU_MAX_INTF];
static struct reader *rd = readers;	/* the one being served */

static const uint8_t params_t0[5] = { 0x11, 0x00, 0x00, 0x0a, 0x00 };
static const uint8_t params_t1[7] = { 0x11, 0x10, 0x00, 0x4d, 0x00, 0xfe,
				      0x00 };

/* ------------------------------------------------------------------ */
/* Helpers */

static uint8_t rsp_type_for(uint8_t cmd)
{
	switch (cmd) {
	case PC_POWER_ON:
	case PC_XFR_BLOCK:
	case PC_SECURE:
		return RDR_DATA_BLOCK;
	case PC_GET_PARAMS:
	case PC_RESET_PARAMS:
	case PC_SET_PARAMS:
		return RDR_PARAMS;
	case PC_ESCAPE:
		return RDR_ESCAPE;
	case PC_SET_RATE:
		return RDR_RATE;
	default:
		return RDR_SLOT_STATUS;
	}
}

static uint8_t ccid_icc_status(int slot)
{
	const struct slot *s;

	if (slot < 0 || slot > cfg.max_slot)
		return 2;
	s = &rd->slots[slot];
	if (!s->present)
		return 2;
	return s->powered ? 0 : 1;
}

static void set_fail(struct answer *a, uint8_t slot, uint8_t error)
{
	a->status = ST_FAILED | ccid_icc_status(slot);
	a->error = error;
}

static size_t max_data(void)
{
	return cfg.max_msg > EMU_HDR ? cfg.max_msg - EMU_HDR : 1;
}

static void reset_params(struct slot *s)
{
	s->protocol = cfg.protocol;
	if (s->protocol) {
		memcpy(s->params, params_t1, sizeof(params_t1));
		s->params_len = sizeof(params_t1);
	} else {
		memcpy(s->params, params_t0, sizeof(params_t0));
		s->params_len = sizeof(params_t0);
	}
}

/* The card model above: see "Layers" in ccid_emu.h */
static const struct reader_card_ops *card;

void reader_register_card(const struct reader_card_ops *ops)
{
	card = ops;
}

/* What a power cycle or a reset clears: the chains, and the card's state */
static void icc_reset(struct slot *s)
{
	buf_free(&s->chain_in);
	buf_free(&s->chain_out);
	s->chain_out_off = 0;
	card->reset(s->intf, s->index);
}

/* Serve interface @intf's reader; its log lines say so */
static void use_reader(int intf)
{
	if (intf < 0 || intf >= EMU_MAX_INTF)
		intf = 0;
	rd = &readers[intf];
	elog_intf(intf);
}

static const struct usb_upper_ops reader_usb_ops;

void ccid_init(void)
{
	int i, k;

	if (!card) {
		elog("error no card model registered (reader_register_card)");
		emu_exit("error");
	}
	usb_register(&reader_usb_ops);
	for (k = 0; k < EMU_MAX_INTF; k++) {
		rd = &readers[k];
		rd->intf = k;
		for (i = 0; i < EMU_MAX_SLOTS; i++) {
			struct slot *s = &rd->slots[i];

			s->intf = k;
			s->index = i;
			s->present = !cfg.absent[i];
			s->powered = s->present && cfg.powered[i];
			reset_params(s);
			icc_reset(s);
		}
		if (k == cfg.script_intf) {
			rd->lag_after = cfg.lag_after;
			rd->lag_by = cfg.lag_drop ? 1 : cfg.lag_by;
			rd->lag_card = cfg.lag_card || cfg.lag_drop;
			rd->lag_drop = cfg.lag_drop != 0;
		}
	}
	rd = readers;
}

/* ------------------------------------------------------------------ */
/* Queueing answers, with the scripts */

static void header(uint8_t *h, uint8_t type, uint32_t len, uint8_t slot,
		   uint8_t seq, uint8_t status, uint8_t error, uint8_t param)
{
	h[0] = type;
	put_le32(h + 1, len);
	h[5] = slot;
	h[6] = seq;
	h[7] = status;
	h[8] = error;
	h[9] = param;
}

/* name: for --bad; what: the frame's label, "bad <what>" in the log */
static const struct {
	const char *name;
	const char *what;
	enum bad_kind kind;
} bad_names[] = {
	{ "wrong-seq", "bad:wrong-seq", BAD_WRONG_SEQ },
	{ "wrong-slot", "bad:wrong-slot", BAD_WRONG_SLOT },
	{ "duplicate", "bad:duplicate", BAD_DUPLICATE },
	{ "wrong-type", "bad:wrong-type", BAD_WRONG_TYPE },
	{ "len-over-data", "bad:len-over-data", BAD_LEN_OVER_DATA },
	{ "len-over-max", "bad:len-over-max", BAD_LEN_OVER_MAX },
	{ "short-header", "bad:short-header", BAD_SHORT_HEADER },
	{ "babble", "bad:babble", BAD_BABBLE },
	{ "wrong-seq-then-right", "bad:wrong-seq-then-right",
	  BAD_WRONG_SEQ_THEN_RIGHT },
	{ "garbage", "bad:garbage", BAD_GARBAGE },
};

int ccid_bad_kind(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_names); i++)
		if (!strcmp(name, bad_names[i].name) &&
		    bad_names[i].kind != BAD_GARBAGE)
			return bad_names[i].kind;
	return -1;
}

/* A frame's label lives as long as the frame: a string constant */
static const char *bad_what(enum bad_kind kind)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_names); i++)
		if (bad_names[i].kind == kind)
			return bad_names[i].what;
	return "bad:unknown";
}

/*
 * The 1-in-100 mix of --random for XfrBlock answers:
 *   0-39 the right answer            40-49 1-3 time extensions, then it
 *   50-54 wrong bSeq, then the right  55-59 the answer twice
 *   60-64 a failed answer (random bError from a list)
 *   65-69 wrong bMessageType          70-74 dwLength beyond the data
 *   75-79 a 5-byte header             80-84 1-64 random bytes
 *   85-89 babble (-EOVERFLOW)         90-94 dwLength past the maximum
 *   95-99 no answer at all
 */
static void random_mix(uint8_t slot, struct answer *a, unsigned int *count,
		       unsigned int *mult, unsigned int *gap,
		       enum bad_kind *bad)
{
	static const uint8_t errors[] = { 0xfe, 0xfd, 0xfc, 0xfb, 0xf3,
					  0xe0, 0x01, 0x05, 0x07 };
	unsigned int r = emu_rand() % 100;

	if (r < 40)
		return;
	if (r < 50) {
		*count = 1 + emu_rand() % 3;
		*mult = emu_rand() % 4;
		*gap = RANDOM_GAP_MS;
	} else if (r < 55) {
		*bad = BAD_WRONG_SEQ_THEN_RIGHT;
	} else if (r < 60) {
		*bad = BAD_DUPLICATE;
	} else if (r < 65) {
		set_fail(a, slot, errors[emu_rand() % sizeof(errors)]);
		a->data.len = 0;
	} else if (r < 70) {
		*bad = BAD_WRONG_TYPE;
	} else if (r < 75) {
		*bad = BAD_LEN_OVER_DATA;
	} else if (r < 80) {
		*bad = BAD_SHORT_HEADER;
	} else if (r < 85) {
		*bad = BAD_GARBAGE;
	} else if (r < 90) {
		*bad = BAD_BABBLE;
	} else if (r < 95) {
		*bad = BAD_LEN_OVER_MAX;
	} else {
		a->none = true;
	}
}

static void queue_frame(unsigned int n, uint8_t slot, uint8_t seq,
			const uint8_t *buf, size_t len, uint64_t due,
			unsigned int flags, const char *what)
{
	usb_queue_frame(rd->intf, n, slot, seq, buf, len, due, flags, what);
}

/* The reader the scripted behaviours act on (--script-intf) */
static bool scripted(void)
{
	return rd->intf == cfg.script_intf;
}

/* ------------------------------------------------------------------ */
/* --lag, --lag-drop: answers that carry an older command's bSeq */

static bool card_path(uint8_t type)
{
	return type == PC_XFR_BLOCK || type == PC_SECURE;
}

/* Command @n arrived: remember its bSeq, in the order received */
static void lag_note(unsigned int n, uint8_t type, uint8_t seq)
{
	struct lag_rec *rec = &rd->lag_cmd[n % LAG_RING];

	rec->n = n;
	rec->seq = seq;
	rec->card_no = 0;
	if (card_path(type)) {
		rec->card_no = ++rd->card_no;
		rd->lag_card_seq[rec->card_no % LAG_RING] = seq;
	}
	if (rd->lag_after && !rd->lag_drop && !rd->lag_started &&
	    n >= rd->lag_after) {
		elog("lag-start after=%u", rd->lag_after);
		rd->lag_started = true;
	}
}

/* The bSeq the answer to command @n (of @type, bSeq @own) carries */
static uint8_t lag_seq(unsigned int n, uint8_t type, uint8_t own)
{
	const struct lag_rec *rec = &rd->lag_cmd[n % LAG_RING], *old;
	bool card = rd->lag_card;
	unsigned int by = rd->lag_by;
	uint8_t seq;

	if (!rd->lag_after || rd->lag_drop || n <= rd->lag_after ||
	    rec->n != n)
		return own;
	if (card) {
		if (!card_path(type) || rec->card_no <= by)
			return own;
		seq = rd->lag_card_seq[(rec->card_no - by) % LAG_RING];
	} else {
		old = &rd->lag_cmd[(n - by) % LAG_RING];
		if (n <= by || old->n != n - by)
			return own;
		seq = old->seq;
	}
	elog("lag %u seq=%u own=%u", n, seq, own);
	return seq;
}

/* --lag-drop: the first card command from N on is lost, the lag begins */
static bool lag_dropped(unsigned int n, uint8_t type)
{
	if (!rd->lag_drop || n < cfg.lag_drop || !card_path(type))
		return false;
	rd->lag_drop = false;
	rd->lag_after = n;
	rd->lag_started = true;
	elog("no-answer %u reason=lag-drop", n);
	elog("lag-start after=%u", n);
	return true;
}

/* A reset ends a lag that began; one still to come stays */
static void lag_reset(void)
{
	if (!rd->lag_started || !rd->lag_after)
		return;
	elog("lag-end reason=reset");
	rd->lag_after = 0;
}

/* ------------------------------------------------------------------ */
/* Answers */

struct plan {
	unsigned int count, mult, gap;	/* time extensions */
	enum bad_kind bad;
	bool stall;
	const char *why;		/* of no answer: "chaos", or NULL */
};

/* ------------------------------------------------------------------ */
/* --chaos: a fault from a fixed menu for a share of the commands */

enum chaos_kind {
	/* when the command arrives */
	CH_STALL_OUT, CH_BOUNCE, CH_HWERROR,
	/* on its answer; CH_BAD: the bad_kind of the menu entry */
	CH_TIME_EXT, CH_DELAY, CH_FAIL, CH_DROP, CH_STALL_IN, CH_LAG, CH_BAD,
};

static const struct {
	const char *name;
	enum chaos_kind kind;
	enum bad_kind bad;
} chaos_menu[] = {
	{ "stall-out", CH_STALL_OUT, BAD_NONE },
	{ "bounce", CH_BOUNCE, BAD_NONE },
	{ "hwerror", CH_HWERROR, BAD_NONE },
	{ "time-ext", CH_TIME_EXT, BAD_NONE },
	{ "delay", CH_DELAY, BAD_NONE },
	{ "fail", CH_FAIL, BAD_NONE },
	{ "drop", CH_DROP, BAD_NONE },
	{ "stall-in", CH_STALL_IN, BAD_NONE },
	{ "lag", CH_LAG, BAD_NONE },
	{ "wrong-seq", CH_BAD, BAD_WRONG_SEQ },
	{ "wrong-slot", CH_BAD, BAD_WRONG_SLOT },
	{ "duplicate", CH_BAD, BAD_DUPLICATE },
	{ "wrong-type", CH_BAD, BAD_WRONG_TYPE },
	{ "len-over-data", CH_BAD, BAD_LEN_OVER_DATA },
	{ "len-over-max", CH_BAD, BAD_LEN_OVER_MAX },
	{ "short-header", CH_BAD, BAD_SHORT_HEADER },
	{ "babble", CH_BAD, BAD_BABBLE },
	{ "wrong-seq-then-right", CH_BAD, BAD_WRONG_SEQ_THEN_RIGHT },
	{ "garbage", CH_BAD, BAD_GARBAGE },
};

static int slot_event(enum script_kind kind, int slot);
static void log_cmd(unsigned int n, const uint8_t *m, size_t mlen);

/*
 * Command @n arrived: draw its fault (one draw per command, so that the
 * same commands get the same faults).  Return the menu entry, or -1.
 */
static int chaos_draw(unsigned int n)
{
	unsigned int r = emu_chaos_rand() % 1000;
	int k = emu_chaos_rand() % ARRAY_SIZE(chaos_menu);

	if (r >= cfg.chaos_permille)
		return -1;
	elog("chaos %u kind=%s", n, chaos_menu[k].name);
	return k;
}

/*
 * The faults of command @n that act before it runs; OUT_STALL when its
 * bulk-OUT URB stalls instead.  The others wait for its answer.
 */
static int chaos_arrival(unsigned int n, const uint8_t *m, size_t len)
{
	int k = chaos_draw(n), slot;

	if (k < 0)
		return 0;
	slot = emu_chaos_rand() % (cfg.max_slot + 1);
	switch (chaos_menu[k].kind) {
	case CH_STALL_OUT:
		rd->cmd_no = n;
		log_cmd(n, m, len);
		usb_halt(rd->intf, ROLE_BULK_OUT);
		elog("no-answer %u reason=stall", n);
		return OUT_STALL;
	case CH_BOUNCE:
		slot_event(SCR_REMOVE, slot);
		slot_event(SCR_INSERT, slot);
		return 0;
	case CH_HWERROR:
		slot_event(SCR_HWERROR, slot);
		return 0;
	default:
		rd->chaos_no = n;
		rd->chaos_kind = k;
		return 0;
	}
}

/* A lag from this command on, unless one runs or the options set one */
static void chaos_lag(unsigned int n)
{
	if (rd->lag_after || cfg.lag_after || cfg.lag_drop)
		return;
	rd->lag_after = n;
	rd->lag_by = 1 + emu_chaos_rand() % 2;
	rd->lag_card = emu_chaos_rand() % 2;
	rd->lag_started = true;
	elog("lag-start after=%u", n);
}

/* The fault drawn for command @n's answer, if any */
static void chaos_answer(unsigned int n, uint8_t slot, struct answer *a,
			 struct plan *pl)
{
	static const uint8_t errors[] = {
		0x00, 0x01, 0x05, 0x07, 0x80, 0xe0, 0xef, 0xf0, 0xf2, 0xf3,
		0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
	};

	if (rd->chaos_no != n || rd->chaos_kind < 0)
		return;
	switch (chaos_menu[rd->chaos_kind].kind) {
	case CH_TIME_EXT:
		pl->count = 1 + emu_chaos_rand() % 3;
		pl->mult = emu_chaos_rand() % 4;
		pl->gap = RANDOM_GAP_MS;
		break;
	case CH_DELAY:
		a->delay_ms += 1 + emu_chaos_rand() % 300;
		break;
	case CH_FAIL:
		set_fail(a, slot, errors[emu_chaos_rand() % sizeof(errors)]);
		if (!(emu_chaos_rand() % 8))
			a->status = ST_FAILED | 2;
		a->data.len = 0;
		break;
	case CH_DROP:
		a->none = true;
		pl->why = "chaos";
		break;
	case CH_STALL_IN:
		pl->stall = true;
		break;
	case CH_LAG:
		chaos_lag(n);
		break;
	default:
		pl->bad = chaos_menu[rd->chaos_kind].bad;
		break;
	}
	rd->chaos_kind = -1;
}

/* The scripts of command @n, and --random */
static void apply_scripts(unsigned int n, uint8_t cmd_type, uint8_t slot,
			  struct answer *a, struct plan *pl)
{
	int i;

	if (!scripted())
		return;
	for (i = 0; i < cfg.num_scripts; i++) {
		const struct script *sc = &cfg.scripts[i];

		if (sc->n != n)
			continue;
		switch (sc->kind) {
		case SCR_TIME_EXT:
			pl->count = sc->a;
			pl->mult = sc->b;
			break;
		case SCR_DELAY:
			a->delay_ms += sc->a;
			break;
		case SCR_DROP:
			a->none = true;
			break;
		case SCR_STALL_IN:
			pl->stall = true;
			break;
		case SCR_BAD:
			pl->bad = sc->a;
			break;
		default:
			break;
		}
	}
	if (cfg.random && cmd_type == PC_XFR_BLOCK)
		random_mix(slot, a, &pl->count, &pl->mult, &pl->gap, &pl->bad);
	chaos_answer(n, slot, a, pl);
}

/*
 * The frames of the answer @f (@len bytes, bSeq as sent already in it)
 * to command @n with bSeq @seq, as --bad asks
 */
static void queue_answer(unsigned int n, uint8_t slot, uint8_t seq,
			 uint8_t *f, size_t len, uint64_t due,
			 enum bad_kind bad, bool wedge)
{
	uint8_t wseq = f[6];

	switch (bad) {
	case BAD_NONE:
		queue_frame(n, slot, seq, f, len, due,
			    FR_FINAL | (wedge ? FR_WEDGE : 0), "answer");
		break;
	case BAD_WRONG_SEQ:
	case BAD_WRONG_SEQ_THEN_RIGHT:
		f[6] = wseq + 1;
		queue_frame(n, slot, seq, f, len, due,
			    bad == BAD_WRONG_SEQ ? FR_FINAL : 0,
			    bad_what(BAD_WRONG_SEQ));
		if (bad == BAD_WRONG_SEQ)
			break;
		f[6] = wseq;
		queue_frame(n, slot, seq, f, len, due, FR_FINAL, "answer");
		break;
	case BAD_WRONG_SLOT:
		f[5] = slot + 1;
		queue_frame(n, slot, seq, f, len, due, FR_FINAL, bad_what(bad));
		break;
	case BAD_DUPLICATE:
		queue_frame(n, slot, seq, f, len, due, FR_FINAL, "answer");
		queue_frame(n, slot, seq, f, len, due, 0, bad_what(bad));
		break;
	case BAD_WRONG_TYPE:
		f[0] = f[0] == RDR_DATA_BLOCK ? RDR_SLOT_STATUS :
						RDR_DATA_BLOCK;
		queue_frame(n, slot, seq, f, len, due, FR_FINAL, bad_what(bad));
		break;
	case BAD_LEN_OVER_DATA:
		put_le32(f + 1, len - EMU_HDR + 5);
		queue_frame(n, slot, seq, f, len, due, FR_FINAL, bad_what(bad));
		break;
	case BAD_LEN_OVER_MAX:
		put_le32(f + 1, len - EMU_HDR);
		queue_frame(n, slot, seq, f, len, due, FR_FINAL | FR_NO_SPLIT,
			    bad_what(bad));
		break;
	case BAD_SHORT_HEADER:
		queue_frame(n, slot, seq, f, 5, due, FR_FINAL, bad_what(bad));
		break;
	case BAD_BABBLE:
		queue_frame(n, slot, seq, f, EMU_HDR, due,
			    FR_FINAL | FR_BABBLE, bad_what(bad));
		break;
	case BAD_GARBAGE: {
		uint8_t junk[64];
		size_t k, m = 1 + emu_rand() % sizeof(junk);

		for (k = 0; k < m; k++)
			junk[k] = emu_rand();
		queue_frame(n, slot, seq, junk, m, due,
			    FR_FINAL | FR_NO_SPLIT, bad_what(bad));
		break;
	}
	}
}

/* Queue the answer to command @n, through its scripts */
static void finish(unsigned int n, uint8_t cmd_type, uint8_t slot,
		   uint8_t seq, struct answer *a)
{
	struct plan pl = { .gap = cfg.time_ext_gap_ms, .bad = BAD_NONE };
	struct slot *s = slot <= cfg.max_slot ? &rd->slots[slot] : NULL;
	uint64_t now = now_ms(), due;
	uint8_t h[EMU_HDR], *f, wseq;
	unsigned int i;
	size_t len;

	apply_scripts(n, cmd_type, slot, a, &pl);
	if (lag_dropped(n, cmd_type)) {
		buf_free(&a->data);
		return;
	}
	if (a->none) {
		elog("no-answer %u reason=%s", n, pl.why ? pl.why :
		     cfg.random ? "random" : "script");
		buf_free(&a->data);
		return;
	}
	if (pl.stall) {
		elog("no-answer %u reason=stall", n);
		usb_halt(rd->intf, ROLE_BULK_IN);
		buf_free(&a->data);
		return;
	}

	if (s && !a->keep_busy) {
		s->busy = true;
		s->busy_seq = seq;
		s->busy_type = cmd_type;
		s->busy_cmd = n;
	}
	wseq = lag_seq(n, cmd_type, seq);
	for (i = 0; i < pl.count; i++) {
		header(h, a->type, 0, slot, wseq,
		       ST_TIME_EXT | ccid_icc_status(slot), pl.mult, 0);
		queue_frame(n, slot, seq, h, EMU_HDR, now + i * pl.gap, 0,
			    "time-ext");
	}
	due = now + pl.count * pl.gap + a->delay_ms;

	len = EMU_HDR + a->data.len;
	if (pl.bad == BAD_LEN_OVER_MAX && len < EMU_HDR + cfg.max_msg)
		len = EMU_HDR + cfg.max_msg;
	f = calloc(1, len);
	if (!f)
		emu_exit("error");
	header(f, a->type, a->data.len, slot, wseq, a->status, a->error,
	       a->param);
	if (a->data.len)
		memcpy(f + EMU_HDR, a->data.p, a->data.len);
	buf_free(&a->data);
	queue_answer(n, slot, seq, f, len, due, pl.bad, a->wedge);
	free(f);
}

/* The last frame of a command went out */
static void ccid_frame_sent(int intf, uint8_t slot, uint8_t seq,
			    unsigned int flags)
{
	struct slot *s;

	use_reader(intf);
	if ((flags & FR_FINAL) && slot <= cfg.max_slot) {
		s = &rd->slots[slot];
		if (s->busy && s->busy_seq == seq && !s->pin_wait)
			s->busy = false;
	}
	if (flags & FR_WEDGE) {
		rd->wedged = true;
		elog("wedged reason=spr332-fw700");
	}
}

/* ------------------------------------------------------------------ */
/* Interrupt-IN events */

/* @changed: the slot whose "changed" bit is set; -1: every slot with a card */
static void notify_slot_change(int changed)
{
	uint8_t msg[1 + EMU_MAX_SLOTS / 4] = { RDR_NOTIFY_SLOT };
	int i;

	for (i = 0; i <= cfg.max_slot; i++) {
		if (rd->slots[i].present)
			msg[1 + i / 4] |= 1 << (2 * (i % 4));
		if (i == changed || (changed < 0 && rd->slots[i].present))
			msg[1 + i / 4] |= 2 << (2 * (i % 4));
	}
	usb_queue_notify(rd->intf, msg, 1 + (2 * (cfg.max_slot + 1) + 7) / 8);
}

/* SET_CONFIGURATION: the reader has just powered up */
static void ccid_configured(void)
{
	int i;

	if (!cfg.notify_on_config)
		return;
	for (i = 0; i < cfg.interfaces; i++) {
		use_reader(i);
		notify_slot_change(-1);
	}
	elog_intf(0);
}

static void fail_pin_wait(int slot, uint8_t error);

static int slot_event(enum script_kind kind, int slot)
{
	struct slot *s;
	uint8_t msg[4];

	if (slot < 0 || slot > cfg.max_slot)
		return -1;
	s = &rd->slots[slot];
	switch (kind) {
	case SCR_INSERT:
		s->present = true;
		s->powered = false;
		icc_reset(s);
		elog("slot-change slot=%d present=1", slot);
		notify_slot_change(slot);
		break;
	case SCR_REMOVE:
		if (s->pin_wait)
			fail_pin_wait(slot, ERR_ICC_MUTE);
		s->present = false;
		s->powered = false;
		icc_reset(s);
		elog("slot-change slot=%d present=0", slot);
		notify_slot_change(slot);
		break;
	case SCR_HWERROR:
		msg[0] = RDR_HW_ERROR;
		msg[1] = slot;
		msg[2] = s->last_seq;
		msg[3] = 0x01;			/* overcurrent */
		elog("hwerror slot=%d seq=%u", slot, s->last_seq);
		usb_queue_notify(rd->intf, msg, sizeof(msg));
		break;
	default:
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The PIN pad */

static const char *pad_source(enum entry *e)
{
	if (!cfg.pad_pin)
		return NULL;
	if (!strcmp(cfg.pad_pin, "timeout"))
		*e = ENTRY_TIMEOUT;
	else if (!strcmp(cfg.pad_pin, "cancel"))
		*e = ENTRY_CANCEL;
	else
		*e = ENTRY_DIGITS;
	return cfg.pad_pin;
}

static void set_entry(struct slot *s, enum entry e, const char *digits,
		      unsigned int delay)
{
	s->entry = e;
	snprintf(s->entry_digits, sizeof(s->entry_digits), "%s",
		 digits ? digits : "");
	s->entry_due = now_ms() + delay;
}

/*
 * The APDU a reader builds from a verify block and the digits: the PIN
 * formatted (binary, BCD or ASCII, justified) into the PIN block, the
 * PIN length field, and Lc for a case 1 template.  Used for the log and
 * to check the template; the card checks the digits themselves.
 */
static void build_pin_apdu(const uint8_t *blk, size_t len, const char *pin,
			   struct buf *out)
{
	const uint8_t *tpl = blk + 15;
	size_t tlen = len - 15, n = strlen(pin), enc, pos, block, i, off;
	uint8_t fmt = blk[2], bs = blk[3], lf = blk[4], data[256];
	unsigned int type = fmt & 3, lbits = bs >> 4;

	memset(data, 0, sizeof(data));
	pos = (fmt >> 3) & 0x0f;
	if (!(fmt & 0x80))
		pos /= 8;
	block = bs & 0x0f;
	enc = type == 1 ? (n + 1) / 2 : n;
	if (!block)
		block = enc;
	if (tlen > 5 && tpl[4] <= tlen - 5) {
		memcpy(data, tpl + 5, tpl[4]);
		len = tpl[4];
	} else {
		len = pos + block;
		if (type == 1)
			memset(data + pos, 0xff, block);
	}
	if (len > sizeof(data))
		len = sizeof(data);
	off = pos + ((fmt & 0x04) && block > enc ? block - enc : 0);
	for (i = 0; i < n && off < sizeof(data); i++) {
		uint8_t d = pin[i] - '0';

		switch (type) {
		case 0:
			data[off + i] = d;
			break;
		case 1:
			if (off + i / 2 >= sizeof(data))
				break;
			if (i & 1)
				data[off + i / 2] = (data[off + i / 2] & 0xf0) | d;
			else
				data[off + i / 2] = d << 4 | 0x0f;
			break;
		default:
			data[off + i] = pin[i];
			break;
		}
		if (off + i >= len && type != 1)
			len = off + i + 1;
	}
	if (lbits) {
		size_t lpos = lf & 0x0f;
		size_t byte = lf & 0x10 ? lpos : lpos / 8;
		unsigned int shift = 0;

		if (!(lf & 0x10) && lbits < 8 && lpos % 8 + lbits <= 8)
			shift = 8 - lbits - lpos % 8;
		if (byte < sizeof(data)) {
			uint8_t mask = lbits >= 8 ? 0xff :
				       ((1u << lbits) - 1) << shift;

			data[byte] = (data[byte] & ~mask) |
				     ((n << shift) & mask);
		}
	}
	buf_add(out, tpl, 4);
	buf_byte(out, len);
	buf_add(out, data, len);
}

/* Split "A,B,C" or "A B C" */
static int split_digits(const char *in, char out[3][64])
{
	int k = 0;
	size_t i = 0;

	memset(out, 0, 3 * 64);
	for (; *in && k < 3; in++) {
		if (*in == ',' || *in == ' ') {
			if (i) {
				k++;
				i = 0;
			}
			continue;
		}
		if (i < 63)
			out[k][i++] = *in;
	}
	return k + (i ? 1 : 0);
}

static uint16_t secure_modify(struct slot *s, const uint8_t *blk,
			      const char *entry)
{
	char tok[3][64];
	uint8_t confirm = blk[9], min = blk[8], max = blk[7];
	int k = split_digits(entry, tok), i = 0;
	const char *old = NULL, *new, *again = NULL;

	if (confirm & 0x02)
		old = tok[i++];
	new = tok[i++];
	if (confirm & 0x01)
		again = tok[i++];
	if (k < i)
		return 0x6403;
	if (strlen(new) < min || strlen(new) > max)
		return 0x6403;
	if (again && strcmp(again, new))
		return 0x6402;
	return card->change_pin(s->intf, s->index, old, new);
}

/* The PIN was entered (or not): answer the Secure command */
static void pin_entered(int slot)
{
	struct slot *s = &rd->slots[slot];
	struct answer a = { .type = RDR_DATA_BLOCK };
	const uint8_t *blk = s->sec.p;
	struct buf apdu = { 0 };
	char hex[600];
	uint16_t sw;
	size_t n;

	s->pin_wait = false;
	s->entry_due = 0;
	a.status = ccid_icc_status(slot);
	switch (s->entry) {
	case ENTRY_CANCEL:
		elog("pin-cancelled slot=%d", slot);
		set_fail(&a, slot, ERR_PIN_CANCELLED);
		break;
	case ENTRY_TIMEOUT:
	case ENTRY_NONE:
		elog("pin-timeout slot=%d", slot);
		set_fail(&a, slot, ERR_PIN_TIMEOUT);
		break;
	case ENTRY_DIGITS:
		if (blk[0] == 1) {
			sw = secure_modify(s, blk, s->entry_digits);
			elog("pin-entered slot=%d op=modify sw=%04X", slot, sw);
			buf_sw(&a.data, sw);
			break;
		}
		n = strlen(s->entry_digits);
		if (cfg.spr332_fw700 && cfg.bcd_device == 0x0700) {
			/* The SPR332 firmware 7.00 story */
			elog("pin-entered slot=%d op=verify sw=6400 spr332-fw700=1",
			     slot);
			buf_sw(&a.data, 0x6400);
			a.wedge = true;
			break;
		}
		if (n < blk[6] || n > blk[5]) {
			sw = 0x6403;
		} else {
			build_pin_apdu(blk, s->sec.len, s->entry_digits, &apdu);
			sw = card->verify(s->intf, s->index, s->entry_digits);
		}
		hexstr(hex, sizeof(hex), apdu.p, apdu.len);
		elog("pin-entered slot=%d op=verify apdu=%s sw=%04X", slot,
		     apdu.len ? hex : "-", sw);
		buf_free(&apdu);
		buf_sw(&a.data, sw);
		break;
	}
	buf_free(&s->sec);
	finish(s->busy_cmd, PC_SECURE, slot, s->busy_seq, &a);
}

static void fail_pin_wait(int slot, uint8_t error)
{
	struct slot *s = &rd->slots[slot];
	struct answer a = { .type = RDR_DATA_BLOCK };

	s->pin_wait = false;
	s->entry_due = 0;
	buf_free(&s->sec);
	set_fail(&a, slot, error);
	a.status = ST_FAILED | 2;
	finish(s->busy_cmd, PC_SECURE, slot, s->busy_seq, &a);
}

static void cmd_secure(unsigned int n, uint8_t slot, uint8_t seq,
		       const uint8_t *d, size_t len, struct answer *a)
{
	struct slot *s = &rd->slots[slot];
	unsigned int timeout;
	enum entry e = ENTRY_NONE;
	const char *src;
	size_t fixed;

	if (!len) {
		set_fail(a, slot, 1);
		return;
	}
	if (d[0] == 0) {
		fixed = 15;
		if (!(cfg.pin_support & 0x01)) {
			set_fail(a, slot, 10);
			return;
		}
	} else if (d[0] == 1) {
		fixed = len > 11 ? 18 + (d[11] != 0) + (d[11] >= 3) : 18;
		if (!(cfg.pin_support & 0x02)) {
			set_fail(a, slot, 10);
			return;
		}
	} else {
		set_fail(a, slot, 10);
		return;
	}
	if (len < fixed + 4) {
		set_fail(a, slot, 1);
		return;
	}

	buf_free(&s->sec);
	buf_add(&s->sec, d, len);
	s->pin_wait = true;
	s->busy = true;
	s->busy_seq = seq;
	s->busy_type = PC_SECURE;
	s->busy_cmd = n;
	timeout = d[1] ? d[1] * 1000u : cfg.pin_timeout_ms;
	s->pin_deadline = now_ms() + timeout;
	s->entry = ENTRY_NONE;
	s->entry_due = 0;
	elog("secure-%s slot=%u seq=%u timeout=%u", d[0] ? "modify" : "verify",
	     slot, seq, timeout);

	src = pad_source(&e);
	if (src) {
		set_entry(s, e, src, cfg.pin_delay_ms);
	} else if (rd->typeahead != ENTRY_NONE) {
		set_entry(s, rd->typeahead, rd->typeahead_digits,
			  cfg.pin_delay_ms);
		rd->typeahead = ENTRY_NONE;
	}
	a->pending = true;
}

/* ------------------------------------------------------------------ */
/* Commands */

static void cmd_xfr(uint8_t slot, const uint8_t *m, const uint8_t *d,
		    size_t len, struct answer *a)
{
	struct slot *s = &rd->slots[slot];
	uint32_t level = cfg.features & LEVEL_MASK;
	uint16_t wlevel = m[8] | m[9] << 8;
	size_t maxd = max_data(), chunk;
	struct buf r = { 0 };

	if (!s->present || !s->powered) {
		set_fail(a, slot, ERR_ICC_MUTE);
		return;
	}
	if (level == LEVEL_TPDU || level == LEVEL_CHAR) {
		card->tpdu(s->intf, s->index, s->protocol, d, len, &a->data,
			   &a->delay_ms);
		return;
	}

	switch (wlevel) {
	case 0x0000:
		card->apdu(s->intf, s->index, s->protocol, d, len, &r,
			   &a->delay_ms);
		break;
	case 0x0001:
	case 0x0003:
		if (wlevel == 1)
			buf_free(&s->chain_in);
		buf_add(&s->chain_in, d, len);
		a->param = 0x10;
		return;
	case 0x0002:
		buf_add(&s->chain_in, d, len);
		card->apdu(s->intf, s->index, s->protocol, s->chain_in.p,
			   s->chain_in.len, &r, &a->delay_ms);
		buf_free(&s->chain_in);
		break;
	case 0x0010:
		if (!s->chain_out.len) {
			set_fail(a, slot, 8);
			return;
		}
		chunk = s->chain_out.len - s->chain_out_off;
		if (chunk > maxd)
			chunk = maxd;
		buf_add(&a->data, s->chain_out.p + s->chain_out_off, chunk);
		s->chain_out_off += chunk;
		if (s->chain_out_off < s->chain_out.len) {
			a->param = 0x03;
		} else {
			a->param = 0x02;
			buf_free(&s->chain_out);
			s->chain_out_off = 0;
		}
		return;
	default:
		set_fail(a, slot, 8);
		return;
	}

	if (r.len > maxd) {
		/* Response chaining: the rest on wLevelParameter 0x10 */
		buf_free(&s->chain_out);
		s->chain_out = r;
		s->chain_out_off = maxd;
		buf_add(&a->data, r.p, maxd);
		a->param = 0x01;
		return;
	}
	a->data = r;
}

static void cmd_params(struct slot *s, uint8_t slot, uint8_t type,
		       const uint8_t *m, const uint8_t *d, size_t len,
		       struct answer *a)
{
	uint8_t proto = m[7];

	if (type == PC_RESET_PARAMS) {
		reset_params(s);
	} else if (type == PC_SET_PARAMS) {
		if (proto > 1 || !(cfg.protocols & (1u << proto))) {
			set_fail(a, slot, 7);
		} else if (len != (proto ? 7u : 5u)) {
			set_fail(a, slot, 1);
		} else {
			s->protocol = proto;
			memcpy(s->params, d, len);
			s->params_len = len;
			card->params_set(s->intf, s->index);
		}
	}
	a->param = s->protocol;
	buf_add(&a->data, s->params, s->params_len);
}

/* Everything but Abort; @a is the answer */
static void run_cmd(unsigned int n, const uint8_t *m, size_t mlen,
		    struct answer *a)
{
	uint8_t type = m[0], slot = m[5];
	const uint8_t *d = m + EMU_HDR;
	size_t len = mlen - EMU_HDR;
	struct slot *s = &rd->slots[slot];

	a->status = ccid_icc_status(slot);
	switch (type) {
	case PC_POWER_ON:
		if (m[7] > 3) {
			set_fail(a, slot, 7);
		} else if (!s->present) {
			set_fail(a, slot, ERR_ICC_MUTE);
		} else {
			s->powered = true;
			icc_reset(s);
			reset_params(s);
			a->status = ccid_icc_status(slot);
			buf_add(&a->data, cfg.atr[slot], cfg.atr_len[slot]);
		}
		break;
	case PC_POWER_OFF:
		s->powered = false;
		icc_reset(s);
		a->status = ccid_icc_status(slot);
		break;
	case PC_GET_SLOT_STATUS:
		break;
	case PC_ICC_CLOCK:
		a->param = m[7] ? 1 : 0;
		break;
	case PC_T0APDU:
		break;
	case PC_XFR_BLOCK:
		cmd_xfr(slot, m, d, len, a);
		break;
	case PC_SECURE:
		if (!s->present || !s->powered)
			set_fail(a, slot, ERR_ICC_MUTE);
		else
			cmd_secure(n, slot, m[6], d, len, a);
		break;
	case PC_ESCAPE:
		buf_add(&a->data, d, len);
		break;
	case PC_GET_PARAMS:
	case PC_RESET_PARAMS:
	case PC_SET_PARAMS:
		cmd_params(s, slot, type, m, d, len, a);
		break;
	case PC_SET_RATE:
		if (len != 8)
			set_fail(a, slot, 1);
		else
			buf_add(&a->data, d, len);
		break;
	default:		/* Mechanical and anything unknown */
		set_fail(a, slot, 0);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Abort */

static void answer_abort(void)
{
	uint8_t slot = rd->acmd_slot, seq = rd->acmd_seq, h[EMU_HDR];
	struct slot *s = slot <= cfg.max_slot ? &rd->slots[slot] : NULL;
	uint8_t icc = ccid_icc_status(slot);
	bool aborted = false;

	usb_drop_frames(rd->intf, slot, seq);
	if (s && s->busy && s->busy_seq == seq) {
		/* The aborted command ends with CMD_ABORTED */
		aborted = true;
		s->busy = false;
		s->pin_wait = false;
		s->entry_due = 0;
		buf_free(&s->sec);
		header(h, rsp_type_for(s->busy_type), 0, slot,
		       lag_seq(s->busy_cmd, s->busy_type, seq),
		       ST_FAILED | icc, ERR_CMD_ABORTED, 0);
		queue_frame(s->busy_cmd, slot, seq, h, EMU_HDR, now_ms(), 0,
			    "answer");
	}
	header(h, RDR_SLOT_STATUS, 0, slot,
	       lag_seq(rd->acmd_no, PC_ABORT, seq),
	       s ? icc : ST_FAILED | 2, s ? 0 : 5, 0);
	queue_frame(rd->acmd_no, slot, seq, h, EMU_HDR, now_ms(), 0, "answer");
	elog("abort-answered seq=%u slot=%u aborted=%d", seq, slot, aborted);
	rd->areq_valid = rd->acmd_valid = false;
}

/*
 * after-clear-halt: an Abort is answered once a bulk endpoint was cleared
 * after the command it aborts (the last one with its bSeq on its slot)
 * arrived.
 */
static bool cleared_since_aborted_cmd(void)
{
	unsigned int n = rd->acmd_no;

	if (rd->acmd_slot <= cfg.max_slot &&
	    rd->slots[rd->acmd_slot].cmd_no &&
	    rd->slots[rd->acmd_slot].cmd_seq == rd->acmd_seq)
		n = rd->slots[rd->acmd_slot].cmd_no;
	return rd->clear_halt_no >= n;
}

static void try_abort(void)
{
	if (!rd->acmd_valid)
		return;
	if (cfg.abort_req != AREQ_STALL &&
	    (!rd->areq_valid ||
	     rd->areq_value != (rd->acmd_seq << 8 | rd->acmd_slot)))
		return;
	if (rd->wedged || cfg.abort_mode == ABORT_IGNORE) {
		elog("abort-ignored seq=%u slot=%u reason=%s", rd->acmd_seq,
		     rd->acmd_slot, rd->wedged ? "wedged" : "option");
		rd->areq_valid = rd->acmd_valid = false;
		return;
	}
	if (cfg.abort_mode == ABORT_AFTER_CLEAR_HALT &&
	    !cleared_since_aborted_cmd()) {
		elog("abort-held seq=%u slot=%u", rd->acmd_seq, rd->acmd_slot);
		return;
	}
	answer_abort();
}

/* The ABORT class request; return the status for ep0 (1: never answer) */
static int ccid_abort_request(int intf, uint16_t value)
{
	use_reader(intf);
	elog("abort-request wValue=0x%04x slot=%u seq=%u", value, value & 0xff,
	     value >> 8);
	if (cfg.abort_req == AREQ_STALL)
		return -EPIPE;
	rd->areq_valid = true;
	rd->areq_value = value;
	try_abort();
	return cfg.abort_req == AREQ_IGNORE ? 1 : 0;
}

static void ccid_clear_halt(int intf, enum ep_role role)
{
	use_reader(intf);
	if (role != ROLE_BULK_IN && role != ROLE_BULK_OUT)
		return;
	rd->clear_halt_no = rd->cmd_no;
	if (cfg.abort_mode == ABORT_AFTER_CLEAR_HALT && rd->acmd_valid) {
		try_abort();
		usb_pump();
	}
}

static void reader_reset(void)
{
	int i;

	for (i = 0; i < EMU_MAX_SLOTS; i++) {
		struct slot *s = &rd->slots[i];

		s->powered = false;
		s->busy = false;
		s->pin_wait = false;
		s->entry_due = 0;
		buf_free(&s->sec);
		icc_reset(s);
		reset_params(s);
	}
	rd->out.len = 0;
	rd->held.len = 0;
	rd->pending_no = 0;
	rd->areq_valid = rd->acmd_valid = false;
	if (rd->wedged) {
		rd->wedged = false;
		elog("revived reason=reset");
	}
	if (rd->muted && cfg.revive_on_reset) {
		rd->muted = false;
		elog("unmuted reason=reset");
	}
	lag_reset();
}

/* A USB reset (or a replug) resets every reader of the device */
void ccid_usb_reset(void)
{
	int i;

	for (i = 0; i < cfg.interfaces; i++) {
		use_reader(i);
		reader_reset();
	}
	elog_intf(0);
}

/* ------------------------------------------------------------------ */
/* Bulk-OUT */

static void log_cmd(unsigned int n, const uint8_t *m, size_t mlen)
{
	char hex[2 * 64 + 2];

	hexstr(hex, sizeof(hex), m + EMU_HDR,
	       mlen - EMU_HDR > 64 ? 65 : mlen - EMU_HDR);
	elog("cmd %u type=0x%02x slot=%u seq=%u len=%u p=%02x%02x%02x data=%s",
	     n, m[0], m[5], m[6], get_le32(m + 1), m[7], m[8], m[9],
	     mlen > EMU_HDR ? hex : "-");
}

static void process(unsigned int n, const uint8_t *m, size_t mlen)
{
	uint8_t type = m[0], slot = m[5], seq = m[6];
	struct answer a = { .type = rsp_type_for(type) };
	int i;

	log_cmd(n, m, mlen);
	lag_note(n, type, seq);
	for (i = 0; scripted() && i < cfg.num_scripts; i++) {
		const struct script *sc = &cfg.scripts[i];

		if (sc->n == n && (sc->kind == SCR_INSERT ||
				   sc->kind == SCR_REMOVE ||
				   sc->kind == SCR_HWERROR))
			slot_event(sc->kind, sc->a);
	}
	if (slot <= cfg.max_slot) {
		rd->slots[slot].last_seq = seq;
		if (type != PC_ABORT) {
			rd->slots[slot].cmd_seq = seq;
			rd->slots[slot].cmd_no = n;
		}
	}

	if (type == PC_ABORT) {
		elog("abort-cmd seq=%u slot=%u", seq, slot);
		rd->acmd_valid = true;
		rd->acmd_slot = slot;
		rd->acmd_seq = seq;
		rd->acmd_no = n;
		try_abort();
		return;
	}
	if (rd->wedged || rd->muted) {
		elog("no-answer %u reason=%s", n,
		     rd->wedged ? "wedged" : "muted");
	} else {
		if (slot > cfg.max_slot) {
			set_fail(&a, slot, 5);
		} else if (rd->slots[slot].busy) {
			/* Answered at once; the slot stays busy */
			elog("busy %u slot=%u busy-seq=%u", n, slot,
			     rd->slots[slot].busy_seq);
			set_fail(&a, slot, ERR_SLOT_BUSY);
			a.keep_busy = true;
		} else {
			run_cmd(n, m, mlen, &a);
		}
		if (!a.pending)
			finish(n, type, slot, seq, &a);
	}
	if (scripted() && cfg.mute_after && n == cfg.mute_after &&
	    !rd->muted) {
		rd->muted = true;
		elog("muted after=%u", n);
	}
}

static bool script_at(unsigned int n, enum script_kind kind)
{
	int i;

	for (i = 0; scripted() && i < cfg.num_scripts; i++)
		if (cfg.scripts[i].n == n && cfg.scripts[i].kind == kind)
			return true;
	return false;
}

/* A malformed bulk-OUT message: answered with bError 1 (dwLength) */
static void bad_message(const uint8_t *m, size_t len)
{
	uint8_t h[EMU_HDR] = { 0 };
	struct answer a;
	unsigned int n = ++rd->cmd_no;

	memcpy(h, m, len < EMU_HDR ? len : EMU_HDR);
	elog("cmd %u type=0x%02x slot=%u seq=%u len=%u bad-length bytes=%zu",
	     n, h[0], h[5], h[6], get_le32(h + 1), len);
	lag_note(n, h[0], h[6]);
	if (len < EMU_HDR || rd->wedged || rd->muted)
		return;
	memset(&a, 0, sizeof(a));
	a.type = rsp_type_for(h[0]);
	set_fail(&a, h[5], 1);
	finish(n, h[0], h[5], h[6], &a);
}

/*
 * What happens to command @n before it runs: --disconnect-at, --stall
 * N:out, --out-pending.  Return 0 (it runs), OUT_STALL or OUT_PENDING.
 */
static int out_scripts(unsigned int n, const uint8_t *m, size_t len)
{
	if (!scripted())
		return 0;
	if (cfg.chaos_permille && chaos_arrival(n, m, len))
		return OUT_STALL;
	if (cfg.disconnect_at && n == cfg.disconnect_at) {
		rd->cmd_no = n;
		log_cmd(n, m, len);
		elog("detached reason=disconnect-at cmd=%u", n);
		emu_exit(NULL);
	}
	if (script_at(n, SCR_STALL_OUT)) {
		rd->cmd_no = n;
		log_cmd(n, m, len);
		usb_halt(rd->intf, ROLE_BULK_OUT);
		elog("no-answer %u reason=stall", n);
		return OUT_STALL;
	}
	if (cfg.out_pending && n == cfg.out_pending) {
		/* Never taken: no "cmd" line, the number is used up */
		rd->cmd_no = n;
		rd->pending_no = n;
		elog("out-pending %u type=0x%02x slot=%u seq=%u", n, m[0], m[5],
		     m[6]);
		return OUT_PENDING;
	}
	return 0;
}

/* --out-zlp need: the command waiting for its ZLP runs (@how: why) */
static void run_held(const char *how)
{
	size_t len = rd->held.len;

	if (!len)
		return;
	elog("out-zlp %s %u", how, rd->held_no);
	rd->held.len = 0;
	process(rd->held_no, rd->held.p, len);
}

/*
 * One bulk-OUT URB of @intf's reader.  Messages may span URBs; a short
 * transfer (@short_end) ends the message.  Return 0, OUT_STALL,
 * OUT_PENDING or OUT_DISCONNECT (the URB is not answered).
 */
static int ccid_out_urb(int intf, const uint8_t *data, size_t len, bool short_end)
{
	int ret = 0;
	size_t off = 0, need;

	use_reader(intf);
	/* The next command came instead of the ZLP */
	run_held("missing");
	buf_add(&rd->out, data, len);
	for (;;) {
		const uint8_t *m = rd->out.p + off;
		size_t have = rd->out.len - off;
		unsigned int n;

		if (have < EMU_HDR) {
			if (short_end && have) {
				bad_message(m, have);
				off = rd->out.len;
			}
			break;
		}
		need = EMU_HDR + (size_t)get_le32(m + 1);
		if (need > cfg.max_msg && need > EMU_HDR + 65544) {
			bad_message(m, have);
			off = rd->out.len;
			break;
		}
		if (have < need) {
			if (short_end) {
				bad_message(m, have);
				off = rd->out.len;
			}
			break;
		}
		n = rd->cmd_no + 1;
		ret = out_scripts(n, m, need);
		if (ret) {
			off = rd->out.len;
			break;
		}
		rd->cmd_no = n;
		if (cfg.out_zlp == ZLP_NEED && !short_end &&
		    off + need == rd->out.len) {
			/* A whole number of packets: the ZLP ends it */
			buf_free(&rd->held);
			buf_add(&rd->held, m, need);
			rd->held_no = n;
			elog("out-zlp-wait %u", n);
		} else {
			process(n, m, need);
		}
		off += need;
	}
	memmove(rd->out.p, rd->out.p + off, rd->out.len - off);
	rd->out.len -= off;
	return ret;
}

/*
 * A zero-length bulk-OUT packet of @intf's reader (see bulk_out() in
 * ccid_emu_usb.c for how it arrives); it ends a message cut short too.
 * Return 0 or OUT_STALL.
 */
static int ccid_out_zlp(int intf)
{
	use_reader(intf);
	if (rd->out.len) {
		bad_message(rd->out.p, rd->out.len);
		rd->out.len = 0;
		return 0;
	}
	switch (cfg.out_zlp) {
	case ZLP_STALL:
		/* QEMU 7.2: a transfer of less than a header stalls */
		elog("out-zlp stall %u", rd->cmd_no);
		usb_halt(rd->intf, ROLE_BULK_OUT);
		return OUT_STALL;
	case ZLP_NEED:
		if (rd->held.len) {
			run_held("ok");
			return 0;
		}
		break;
	case ZLP_IGNORE:
		break;
	}
	elog("out-zlp %u", rd->cmd_no);
	return 0;
}

/* --out-pending: the host gave up on the held URB; the command is lost */
static void ccid_out_unlinked(int intf)
{
	use_reader(intf);
	if (!rd->pending_no)
		return;
	elog("out-pending-unlinked %u", rd->pending_no);
	rd->pending_no = 0;
}

/* ------------------------------------------------------------------ */
/* Timers and the control channel */

int64_t ccid_next_timer(void)
{
	uint64_t now = now_ms(), t = UINT64_MAX;
	int i, k;

	for (k = 0; k < cfg.interfaces; k++) {
		for (i = 0; i <= cfg.max_slot; i++) {
			const struct slot *s = &readers[k].slots[i];

			if (!s->pin_wait)
				continue;
			if (s->entry_due && s->entry_due < t)
				t = s->entry_due;
			if (s->pin_deadline < t)
				t = s->pin_deadline;
		}
	}
	if (t == UINT64_MAX)
		return -1;
	return t > now ? (int64_t)(t - now) : 0;
}

static void reader_timers(uint64_t now)
{
	int i;

	for (i = 0; i <= cfg.max_slot; i++) {
		struct slot *s = &rd->slots[i];

		if (!s->pin_wait)
			continue;
		if (s->entry_due && now >= s->entry_due &&
		    s->entry_due <= s->pin_deadline) {
			pin_entered(i);
		} else if (now >= s->pin_deadline) {
			s->entry = ENTRY_TIMEOUT;
			pin_entered(i);
		}
	}
}

void ccid_timers(void)
{
	uint64_t now = now_ms();
	int i;

	for (i = 0; i < cfg.interfaces; i++) {
		use_reader(i);
		reader_timers(now);
	}
	elog_intf(0);
}

static int ctl_slot(const char *arg)
{
	char *end;
	long v;

	if (!arg)
		return -1;
	v = strtol(arg, &end, 0);
	if (*end || v < 0 || v > cfg.max_slot)
		return -1;
	return v;
}

/* A PIN for the slot waiting for one, or for the next Secure */
static int ctl_pin(enum entry e, const char *digits)
{
	int i;

	if (e == ENTRY_DIGITS && (!digits || !*digits))
		return -1;
	for (i = 0; i <= cfg.max_slot; i++) {
		struct slot *s = &rd->slots[i];

		if (s->pin_wait && !s->entry_due) {
			set_entry(s, e, digits,
				  e == ENTRY_DIGITS ? cfg.pin_delay_ms : 0);
			return 0;
		}
	}
	rd->typeahead = e;
	snprintf(rd->typeahead_digits, sizeof(rd->typeahead_digits), "%s",
		 digits ? digits : "");
	elog("pin-typeahead kind=%s", e == ENTRY_DIGITS ? "digits" : "cancel");
	return 0;
}

/* "chaos PERMILLE": the odds of --chaos from now on */
static int ctl_chaos(const char *arg)
{
	char *end;
	long v;

	if (!arg)
		return -1;
	v = strtol(arg, &end, 0);
	if (*end || v < 0 || v > 1000)
		return -1;
	cfg.chaos_permille = v;
	return 0;
}

/* Reader commands of the control channel, for rd; 0 when done */
static int reader_ctl(const char *cmd, const char *arg)
{
	if (!strcmp(cmd, "insert"))
		return slot_event(SCR_INSERT, ctl_slot(arg));
	if (!strcmp(cmd, "remove"))
		return slot_event(SCR_REMOVE, ctl_slot(arg));
	if (!strcmp(cmd, "hwerror"))
		return slot_event(SCR_HWERROR, ctl_slot(arg));
	if (!strcmp(cmd, "pin"))
		return ctl_pin(ENTRY_DIGITS, arg);
	if (!strcmp(cmd, "cancel-pin"))
		return ctl_pin(ENTRY_CANCEL, NULL);
	if (!strcmp(cmd, "mute")) {
		rd->muted = true;
		elog("muted reason=ctl");
		return 0;
	}
	if (!strcmp(cmd, "unmute")) {
		rd->muted = false;
		elog("unmuted reason=ctl");
		return 0;
	}
	if (!strcmp(cmd, "wedge")) {
		rd->wedged = true;
		elog("wedged reason=ctl");
		return 0;
	}
	if (!strcmp(cmd, "chaos"))
		return ctl_chaos(arg);
	return -1;
}

/*
 * Reader commands of the control channel; 0 when done.  "intf I LINE":
 * LINE for interface I's reader (default: interface 0's).
 */
int ccid_ctl(char *line)
{
	char *cmd = strtok(line, " \t"), *arg = strtok(NULL, ""), *end;
	long intf = 0;
	int ret;

	if (cmd && !strcmp(cmd, "intf")) {
		cmd = arg ? strtok(arg, " \t") : NULL;
		intf = cmd ? strtol(cmd, &end, 0) : -1;
		if (!cmd || *end || intf < 0 || intf >= cfg.interfaces)
			return -1;
		cmd = strtok(NULL, " \t");
		arg = strtok(NULL, "");
	}
	if (arg)
		arg += strspn(arg, " \t");
	if (!cmd)
		return -1;
	use_reader(intf);
	ret = reader_ctl(cmd, arg);
	elog_intf(0);
	return ret;
}

/* What the transport below calls: see "Layers" in ccid_emu.h */
static const struct usb_upper_ops reader_usb_ops = {
	.out_urb	= ccid_out_urb,
	.out_zlp	= ccid_out_zlp,
	.out_unlinked	= ccid_out_unlinked,
	.abort_request	= ccid_abort_request,
	.clear_halt	= ccid_clear_halt,
	.usb_reset	= ccid_usb_reset,
	.configured	= ccid_configured,
	.frame_sent	= ccid_frame_sent,
};
