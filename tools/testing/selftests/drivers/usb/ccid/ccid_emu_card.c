// SPDX-License-Identifier: GPL-2.0
/*
 * ccid_emu: the card model, the top layer (see "Layers" in ccid_emu.h).
 * One card per slot of each reader: its PIN and tries, the APDUs it
 * knows (echo, delay, SELECT, VERIFY, GET CHALLENGE), T=0 GET RESPONSE,
 * and the T=1 block protocol of a TPDU level reader.  The reader below
 * calls it only through struct reader_card_ops, which card_init()
 * registers; of the reader, the card calls only reader_register_card().
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ccid_emu.h"

/* The state of one card; a power cycle or a reset clears most of it */
struct card {
	char pin[64];
	int tries;
	bool verified;
	struct buf t0_data;		/* T=0: waiting for GET RESPONSE */
	uint8_t t0_sw[2];
	/* T=1 block protocol (TPDU level) */
	uint8_t t1_ns, t1_nr;
	size_t t1_ifsd;
	struct buf t1_rx, t1_tx;
	size_t t1_tx_off;
	uint8_t t1_last[260];
	size_t t1_last_len;
};

static struct card cards[EMU_MAX_INTF][EMU_MAX_SLOTS];

static struct card *card_of(int intf, int slot)
{
	if (intf < 0 || intf >= EMU_MAX_INTF)
		intf = 0;
	if (slot < 0 || slot >= EMU_MAX_SLOTS)
		slot = 0;
	return &cards[intf][slot];
}

/* ------------------------------------------------------------------ */
/* APDUs */

struct apdu {
	uint8_t cla, ins, p1, p2;
	const uint8_t *data;
	size_t lc, le;
	bool has_le;
};

static int parse_apdu(const uint8_t *b, size_t n, struct apdu *a)
{
	memset(a, 0, sizeof(*a));
	if (n < 4)
		return -1;
	a->cla = b[0];
	a->ins = b[1];
	a->p1 = b[2];
	a->p2 = b[3];
	if (n == 4)
		return 0;
	if (n == 5) {
		a->has_le = true;
		a->le = b[4] ? b[4] : 256;
		return 0;
	}
	if (b[4]) {
		a->lc = b[4];
		a->data = b + 5;
		if (n == 5 + a->lc)
			return 0;
		if (n == 6 + a->lc) {
			a->has_le = true;
			a->le = b[n - 1] ? b[n - 1] : 256;
			return 0;
		}
		return -1;
	}
	/* Extended: 00 and two bytes */
	if (n < 7)
		return -1;
	if (n == 7) {
		a->has_le = true;
		a->le = (b[5] << 8 | b[6]) ? (size_t)(b[5] << 8 | b[6]) : 65536;
		return 0;
	}
	a->lc = b[5] << 8 | b[6];
	a->data = b + 7;
	if (!a->lc)
		return -1;
	if (n == 7 + a->lc)
		return 0;
	if (n == 9 + a->lc) {
		a->has_le = true;
		a->le = (b[n - 2] << 8 | b[n - 1]) ?
			(size_t)(b[n - 2] << 8 | b[n - 1]) : 65536;
		return 0;
	}
	return -1;
}

static uint16_t card_verify_digits(struct card *s, const char *digits)
{
	if (!s->tries)
		return 0x6983;
	if (!strcmp(digits, s->pin)) {
		s->tries = cfg.pin_tries;
		s->verified = true;
		return 0x9000;
	}
	s->verified = false;
	s->tries--;
	return s->tries ? 0x63c0 | (s->tries & 0x0f) : 0x6983;
}

/* VERIFY data: ASCII digits, else BCD, padded with FF or 00 */
static void pin_from_data(const uint8_t *d, size_t n, char *out,
			  size_t size)
{
	size_t i, k = 0;

	while (n && (d[n - 1] == 0xff || d[n - 1] == 0x00))
		n--;
	for (i = 0; i < n && d[i] >= '0' && d[i] <= '9'; i++)
		;
	if (i == n) {
		for (i = 0; i < n && k + 1 < size; i++)
			out[k++] = d[i];
		out[k] = '\0';
		return;
	}
	for (i = 0; i < 2 * n && k + 1 < size; i++) {
		uint8_t nib = i & 1 ? d[i / 2] & 0x0f : d[i / 2] >> 4;

		if (nib > 9)
			break;
		out[k++] = '0' + nib;
	}
	out[k] = '\0';
}

static bool known_aid(const uint8_t *aid, size_t len)
{
	int i;

	for (i = 0; i < cfg.num_aids; i++)
		if (len >= 5 && len <= cfg.aid_len[i] &&
		    !memcmp(aid, cfg.aids[i], len))
			return true;
	return false;
}

/*
 * One APDU to the card.  The answer (data and SW) goes to @r;
 * *@delay_ms is how long the card thinks about it.
 */
static void card_apdu(struct card *s, const uint8_t *cmd, size_t n,
		      struct buf *r, unsigned int *delay_ms)
{
	char digits[128];
	struct apdu a;
	size_t i;

	if (parse_apdu(cmd, n, &a)) {
		buf_sw(r, 0x6700);
		return;
	}
	if (a.cla == 0x80 && a.ins == 0xee) {
		/* Echo: the command data, or Le bytes 00 01 02 ... */
		if (a.lc)
			buf_add(r, a.data, a.lc);
		else
			for (i = 0; i < (a.has_le ? a.le : 0); i++)
				buf_byte(r, i);
		buf_sw(r, 0x9000);
		return;
	}
	if (a.cla == 0x80 && a.ins == 0xef) {
		*delay_ms += a.p1 << 8 | a.p2;
		buf_sw(r, 0x9000);
		return;
	}
	switch (a.ins) {
	case 0xa4:		/* SELECT */
		if (a.p1 != 0x04)
			buf_sw(r, 0x6a86);
		else if (!a.lc)
			buf_sw(r, 0x6700);
		else
			buf_sw(r, known_aid(a.data, a.lc) ? 0x9000 : 0x6a82);
		return;
	case 0x20:		/* VERIFY */
		if (a.p1) {
			buf_sw(r, 0x6b00);
		} else if (!a.lc) {
			if (!s->tries)
				buf_sw(r, 0x6983);
			else if (s->verified)
				buf_sw(r, 0x9000);
			else
				buf_sw(r, 0x63c0 | (s->tries & 0x0f));
		} else {
			pin_from_data(a.data, a.lc, digits, sizeof(digits));
			buf_sw(r, card_verify_digits(s, digits));
		}
		return;
	case 0x84:		/* GET CHALLENGE */
		if (!a.has_le || a.le > 256) {
			buf_sw(r, 0x6700);
			return;
		}
		for (i = 0; i < a.le; i++)
			buf_byte(r, emu_rand());
		buf_sw(r, 0x9000);
		return;
	case 0xc0:		/* GET RESPONSE, with nothing pending */
		buf_sw(r, 0x6985);
		return;
	default:
		buf_sw(r, 0x6d00);
		return;
	}
}

/*
 * T=0: an answer with data is "61 La", to be fetched with GET RESPONSE
 * (00 C0 00 00 Le); a wrong Le gets "6C La".
 */
static void card_t0(struct card *s, const uint8_t *cmd, size_t n,
		    struct buf *r, unsigned int *delay_ms)
{
	struct buf full = { 0 };
	size_t le, rest;

	if (n >= 4 && cmd[1] == 0xc0 && s->t0_data.len) {
		le = n >= 5 ? (cmd[4] ? cmd[4] : 256) : 256;
		if (le > s->t0_data.len) {
			buf_byte(r, 0x6c);
			buf_byte(r, s->t0_data.len);
			return;
		}
		buf_add(r, s->t0_data.p, le);
		rest = s->t0_data.len - le;
		if (rest) {
			memmove(s->t0_data.p, s->t0_data.p + le, rest);
			s->t0_data.len = rest;
			buf_byte(r, 0x61);
			buf_byte(r, rest > 255 ? 0 : rest);
		} else {
			buf_add(r, s->t0_sw, 2);
			buf_free(&s->t0_data);
		}
		return;
	}
	buf_free(&s->t0_data);
	card_apdu(s, cmd, n, &full, delay_ms);
	if (full.len <= 2) {
		buf_add(r, full.p, full.len);
	} else {
		buf_add(&s->t0_data, full.p, full.len - 2);
		memcpy(s->t0_sw, full.p + full.len - 2, 2);
		buf_byte(r, 0x61);
		buf_byte(r, s->t0_data.len > 255 ? 0 : s->t0_data.len);
	}
	buf_free(&full);
}

/*
 * T=1 blocks, for a TPDU or character level reader with a T=1 card:
 * NAD PCB LEN INF LRC.  I-blocks carry (chained) APDUs, R-blocks ask for
 * the next part or a resend, S-blocks (IFS, RESYNCH, ABORT, WTX) are
 * answered with their response.
 */
static void t1_send(struct card *s, struct buf *r, uint8_t pcb,
		    const uint8_t *inf, size_t len)
{
	uint8_t blk[260], lrc = 0;
	size_t i;

	blk[0] = 0;
	blk[1] = pcb;
	blk[2] = len;
	if (len)
		memcpy(blk + 3, inf, len);
	for (i = 0; i < len + 3; i++)
		lrc ^= blk[i];
	blk[len + 3] = lrc;
	memcpy(s->t1_last, blk, len + 4);
	s->t1_last_len = len + 4;
	buf_add(r, blk, len + 4);
}

static void t1_send_next(struct card *s, struct buf *r)
{
	size_t rest = s->t1_tx.len - s->t1_tx_off;
	size_t n = rest > s->t1_ifsd ? s->t1_ifsd : rest;
	uint8_t pcb = s->t1_ns << 6 | (rest > n ? 0x20 : 0);

	t1_send(s, r, pcb, s->t1_tx.p + s->t1_tx_off, n);
	s->t1_ns ^= 1;
	s->t1_tx_off += n;
	if (s->t1_tx_off >= s->t1_tx.len) {
		buf_free(&s->t1_tx);
		s->t1_tx_off = 0;
	}
}

static void card_t1_block(struct card *s, const uint8_t *b, size_t n,
			  struct buf *r, unsigned int *delay_ms)
{
	uint8_t lrc = 0, pcb;
	size_t i;

	for (i = 0; i < n; i++)
		lrc ^= b[i];
	if (n < 4 || b[2] != n - 4 || lrc) {
		t1_send(s, r, 0x81 | s->t1_nr << 4, NULL, 0);
		return;
	}
	pcb = b[1];
	if (!(pcb & 0x80)) {				/* I-block */
		s->t1_nr = ((pcb >> 6) & 1) ^ 1;
		buf_add(&s->t1_rx, b + 3, b[2]);
		if (pcb & 0x20) {
			t1_send(s, r, 0x80 | s->t1_nr << 4, NULL, 0);
			return;
		}
		buf_free(&s->t1_tx);
		s->t1_tx_off = 0;
		card_apdu(s, s->t1_rx.p, s->t1_rx.len, &s->t1_tx, delay_ms);
		buf_free(&s->t1_rx);
		t1_send_next(s, r);
		return;
	}
	if ((pcb & 0xc0) == 0x80) {			/* R-block */
		if (s->t1_tx.len && ((pcb >> 4) & 1) == s->t1_ns)
			t1_send_next(s, r);
		else if (s->t1_last_len)
			buf_add(r, s->t1_last, s->t1_last_len);
		else
			t1_send(s, r, 0x82 | s->t1_nr << 4, NULL, 0);
		return;
	}
	/* S-block request: answer it */
	switch (pcb & 0x1f) {
	case 0x00:					/* RESYNCH */
		s->t1_ns = s->t1_nr = 0;
		break;
	case 0x01:					/* IFS */
		if (b[2] == 1 && b[3] >= 1 && b[3] <= 254)
			s->t1_ifsd = b[3];
		break;
	case 0x02:					/* ABORT */
		buf_free(&s->t1_rx);
		buf_free(&s->t1_tx);
		s->t1_tx_off = 0;
		break;
	}
	t1_send(s, r, pcb | 0x20, b + 3, b[2]);
}

/* ------------------------------------------------------------------ */
/* What the reader below calls */

/* The card's state that a power cycle or a reset clears */
static void card_reset(int intf, int slot)
{
	struct card *s = card_of(intf, slot);

	buf_free(&s->t0_data);
	buf_free(&s->t1_rx);
	buf_free(&s->t1_tx);
	s->t1_ns = s->t1_nr = 0;
	s->t1_ifsd = 32;
	s->t1_tx_off = 0;
	s->t1_last_len = 0;
	s->verified = false;
}

/* SetParameters took: a T=0 answer waiting for GET RESPONSE is gone */
static void card_params_set(int intf, int slot)
{
	buf_free(&card_of(intf, slot)->t0_data);
}

/* An APDU (short or extended APDU level): T=0 with GET RESPONSE, or T=1 */
static void card_exchange(int intf, int slot, int protocol,
			  const uint8_t *cmd, size_t n, struct buf *r,
			  unsigned int *delay_ms)
{
	struct card *s = card_of(intf, slot);

	if (protocol == 0)
		card_t0(s, cmd, n, r, delay_ms);
	else
		card_apdu(s, cmd, n, r, delay_ms);
}

/* A TPDU (TPDU or character level): a T=1 block, or a T=0 TPDU */
static void card_tpdu(int intf, int slot, int protocol, const uint8_t *b,
		      size_t n, struct buf *r, unsigned int *delay_ms)
{
	struct card *s = card_of(intf, slot);

	if (protocol)
		card_t1_block(s, b, n, r, delay_ms);
	else
		card_t0(s, b, n, r, delay_ms);
}

static uint16_t card_verify(int intf, int slot, const char *digits)
{
	return card_verify_digits(card_of(intf, slot), digits);
}

/* PIN modify: check @old if given, then take @new */
static uint16_t card_change_pin(int intf, int slot, const char *old,
				const char *new)
{
	struct card *s = card_of(intf, slot);
	uint16_t sw;

	if (old) {
		sw = card_verify_digits(s, old);
		if (sw != 0x9000)
			return sw;
	}
	snprintf(s->pin, sizeof(s->pin), "%.63s", new);
	return 0x9000;
}

static const struct reader_card_ops card_ops = {
	.reset		= card_reset,
	.params_set	= card_params_set,
	.apdu		= card_exchange,
	.tpdu		= card_tpdu,
	.verify		= card_verify,
	.change_pin	= card_change_pin,
};

/* Every card with --pin and --pin-tries; register with the reader */
void card_init(void)
{
	int i, k;

	for (k = 0; k < EMU_MAX_INTF; k++) {
		for (i = 0; i < EMU_MAX_SLOTS; i++) {
			struct card *s = &cards[k][i];

			snprintf(s->pin, sizeof(s->pin), "%s", cfg.pin);
			s->tries = cfg.pin_tries;
			card_reset(k, i);
		}
	}
	reader_register_card(&card_ops);
}
