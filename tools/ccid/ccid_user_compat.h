/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel types and errno values that ccid_proto.c uses, so that it
 * builds unchanged in userspace for the unit tests and fuzzers.
 */
#ifndef _CCID_USER_COMPAT_H
#define _CCID_USER_COMPAT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define BIT(n)		(1U << (n))

/* The kernel's hex_to_bin(): the value of a hex digit, or -1 */
static inline int hex_to_bin(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

#endif /* _CCID_USER_COMPAT_H */
