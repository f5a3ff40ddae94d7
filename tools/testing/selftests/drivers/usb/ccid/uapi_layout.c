// SPDX-License-Identifier: GPL-2.0
/*
 * The layout of every ioctl structure and every ioctl number, for
 * comparing the layout seen by 32-bit userspace with the 64-bit one: the
 * ABI promises they are the same, with no compat translation.
 *
 * Nothing here is run.  As the kernel's asm-offsets.c does, each value is
 * emitted as a "->name value" line into the compiler's assembly output
 * (cc -S), so the check works on a build machine that cannot execute
 * 32-bit programs: check.sh compiles this with -m32 and -m64 and
 * compares the two lists.
 */
#include <stddef.h>
#include <linux/usb/ccid_reader.h>

#define EMIT(name, val)							\
	asm volatile("\n.ascii \"->" name " %0\"" : : "i" (val))

#define SIZE(s)		EMIT(#s, sizeof(struct s))
#define FIELD(s, f)	EMIT(#s "." #f, offsetof(struct s, f));		\
			EMIT(#s "." #f ".size", sizeof(((struct s *)0)->f))
/* in parts: an assembler prints a 32-bit immediate with its sign */
#define IOCTL(nr)	EMIT(#nr ".dir", _IOC_DIR(nr));			\
			EMIT(#nr ".type", _IOC_TYPE(nr));		\
			EMIT(#nr ".nr", _IOC_NR(nr));			\
			EMIT(#nr ".size", _IOC_SIZE(nr))

void uapi_layout(void);

void uapi_layout(void)
{
	SIZE(ccid_reader_info);
	FIELD(ccid_reader_info, vendor_id);
	FIELD(ccid_reader_info, bcd_device);
	FIELD(ccid_reader_info, num_slots);
	FIELD(ccid_reader_info, protocols);
	FIELD(ccid_reader_info, features);
	FIELD(ccid_reader_info, max_message_length);
	FIELD(ccid_reader_info, buffer_length);
	FIELD(ccid_reader_info, lcd_layout);
	FIELD(ccid_reader_info, exchange_level);
	FIELD(ccid_reader_info, interface_class);
	FIELD(ccid_reader_info, reserved);

	SIZE(ccid_power_on);
	FIELD(ccid_power_on, atr_len);
	FIELD(ccid_power_on, timeout_ms);
	FIELD(ccid_power_on, atr);
	FIELD(ccid_power_on, reserved);

	SIZE(ccid_slot_status);
	FIELD(ccid_slot_status, clock_status);
	FIELD(ccid_slot_status, timeout_ms);
	FIELD(ccid_slot_status, reserved);

	SIZE(ccid_xfer);
	FIELD(ccid_xfer, level);
	FIELD(ccid_xfer, tx_len);
	FIELD(ccid_xfer, tx_buf);
	FIELD(ccid_xfer, rx_buf);
	FIELD(ccid_xfer, rx_size);
	FIELD(ccid_xfer, rx_len);
	FIELD(ccid_xfer, timeout_ms);
	FIELD(ccid_xfer, status);
	FIELD(ccid_xfer, chain);
	FIELD(ccid_xfer, reserved);

	SIZE(ccid_params);
	FIELD(ccid_params, len);
	FIELD(ccid_params, timeout_ms);
	FIELD(ccid_params, data);
	FIELD(ccid_params, reserved);

	SIZE(ccid_abort);
	FIELD(ccid_abort, reserved);

	SIZE(ccid_slot_events);
	FIELD(ccid_slot_events, present);
	FIELD(ccid_slot_events, hw_errors);
	FIELD(ccid_slot_events, changes);
	FIELD(ccid_slot_events, generation);
	FIELD(ccid_slot_events, reserved);

	IOCTL(CCID_IOC_GET_INFO);
	IOCTL(CCID_IOC_POWER_ON);
	IOCTL(CCID_IOC_POWER_OFF);
	IOCTL(CCID_IOC_SLOT_STATUS);
	IOCTL(CCID_IOC_XFR_BLOCK);
	IOCTL(CCID_IOC_SECURE);
	IOCTL(CCID_IOC_GET_PARAMS);
	IOCTL(CCID_IOC_SET_PARAMS);
	IOCTL(CCID_IOC_RESET_PARAMS);
	IOCTL(CCID_IOC_ESCAPE);
	IOCTL(CCID_IOC_ABORT);
	IOCTL(CCID_IOC_SLOT_EVENTS);
}
