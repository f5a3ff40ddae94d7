/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small helpers shared by the ccid kselftests (ccid_test, recovery_test,
 * emu_test).  Include after kselftest_harness.h.
 */
#ifndef CCID_TEST_UTIL_H
#define CCID_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* "ETIMEDOUT" for -ETIMEDOUT or ETIMEDOUT, "0" for 0 */
static inline const char *errname(int err)
{
	const char *name;

	if (err < 0)
		err = -err;
	if (!err)
		return "0";
	name = strerrorname_np(err);
	return name ? name : "?";
}

/* Inside a run-vm guest */
static inline bool in_vm(void)
{
	const char *vm = getenv("CCID_VM");

	return vm && !strcmp(vm, "1");
}

static inline long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static inline void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* snprintf() for paths and lines: truncation leaves "" (never a wrong path) */
static inline void __printf(3, 4) strf(char *buf, size_t size,
				       const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		buf[0] = '\0';
}

/* Write @len bytes to a (sysfs) file in one write(); 0 or -errno */
static inline int write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	close(fd);
	return ret;
}

/* @len bytes as hex, each but the first after @sep; cut to fit @size */
static inline void hex_sep(char *out, size_t size, const uint8_t *buf,
			   size_t len, const char *sep)
{
	size_t i, pos = 0, step = 2 + strlen(sep);

	out[0] = '\0';
	for (i = 0; i < len && pos + step + 1 < size; i++)
		pos += snprintf(out + pos, size - pos, "%s%02X", i ? sep : "",
				buf[i]);
}

/* "3B 88 80" */
static inline void hex(char *out, size_t size, const uint8_t *buf, size_t len)
{
	hex_sep(out, size, buf, len, " ");
}

/* "3B8880", as ccid_emu logs data */
static inline void hex_compact(char *out, size_t size, const uint8_t *buf,
			       size_t len)
{
	hex_sep(out, size, buf, len, "");
}

/* ioctl(), 0 or -errno */
static inline int do_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

/* Assertions every C test uses (kselftest_harness.h is included first) */
#define ASSERT_OK(expr) do {						\
	int __ret = (expr);						\
	ASSERT_EQ(0, __ret) TH_LOG("%s: %s", #expr, errname(__ret));	\
} while (0)

/* Exactly @want_len bytes equal to @want, both shown in hex otherwise */
#define ASSERT_BYTES(want, want_len, got, got_len) do {			\
	char __w[512], __g[512];					\
	hex(__w, sizeof(__w), want, want_len);				\
	hex(__g, sizeof(__g), got, got_len);				\
	ASSERT_EQ((size_t)(want_len), (size_t)(got_len))		\
		TH_LOG("got [%s], expected [%s]", __g, __w);		\
	ASSERT_EQ(0, memcmp(want, got, want_len))			\
		TH_LOG("got [%s], expected [%s]", __g, __w);		\
} while (0)

#endif /* CCID_TEST_UTIL_H */
