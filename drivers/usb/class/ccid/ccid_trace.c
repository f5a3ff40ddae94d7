// SPDX-License-Identifier: GPL-2.0
/*
 * USB CCID smart-card reader driver: trace events, see ccid_trace.h.
 */

#define CREATE_TRACE_POINTS
#include "ccid_trace.h"
