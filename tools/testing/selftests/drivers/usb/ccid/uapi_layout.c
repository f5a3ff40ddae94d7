// SPDX-License-Identifier: GPL-2.0
/*
 * Print the layout of every ioctl structure, so that the layout built for
 * 32-bit userspace can be compared with the 64-bit one: the ABI promises
 * they are the same, with no compat translation.
 */
#include <stddef.h>
#include <stdio.h>
#include <linux/usb/ccid_reader.h>

#define SIZE(s)		printf("%-24s %3zu\n", #s, sizeof(struct s))
#define FIELD(s, f)	printf("  %-22s %3zu %3zu\n", #f,		\
			       offsetof(struct s, f),			\
			       sizeof(((struct s *)0)->f))

int main(void)
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

	printf("GET_INFO %08lx XFR_BLOCK %08lx SECURE %08lx PARAMS %08lx\n",
	       (unsigned long)CCID_IOC_GET_INFO,
	       (unsigned long)CCID_IOC_XFR_BLOCK,
	       (unsigned long)CCID_IOC_SECURE,
	       (unsigned long)CCID_IOC_SET_PARAMS);
	printf("SLOT_EVENTS %08lx\n", (unsigned long)CCID_IOC_SLOT_EVENTS);
	return 0;
}
