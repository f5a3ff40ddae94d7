/* SPDX-License-Identifier: GPL-2.0 */
/*
 * USB CCID smart-card reader driver: trace events.
 *
 * What went over the wire and what the driver made of it: every command
 * sent, every bulk-IN frame and its verdict, and each step of a recovery.
 * Each event names the reader by its interface (dev_name(), "3-1:1.0"),
 * the field to filter on.  Only CCID headers are recorded, never abData:
 * an XfrBlock carries VERIFY APDUs, and so PINs, in clear.
 *
 * See "Following a reader through tracefs" in Documentation/usb/ccid.rst.
 */

#undef TRACE_SYSTEM
#define TRACE_SYSTEM ccid

#if !defined(_CCID_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _CCID_TRACE_H

#include <linux/tracepoint.h>

#include "ccid.h"

/*
 * The driver builds against 6.1 and 6.12, and __assign_str() changed in
 * between: 6.10 dropped its second argument, the source, which it now
 * takes from the field's __string().  Copying by hand works with both
 * (and needs no kernel version test): __string() sized the field for
 * @src and its NUL.
 */
#define ccid_assign_str(dst, src)					\
	memcpy(__get_str(dst), (src), strlen(src) + 1)

#define ccid_show_type(type)						\
	__print_symbolic(type,						\
		{ CCID_PC_SET_PARAMS,		"SetParameters" },	\
		{ CCID_PC_POWER_ON,		"IccPowerOn" },		\
		{ CCID_PC_POWER_OFF,		"IccPowerOff" },	\
		{ CCID_PC_GET_SLOT_STATUS,	"GetSlotStatus" },	\
		{ CCID_PC_SECURE,		"Secure" },		\
		{ CCID_PC_ESCAPE,		"Escape" },		\
		{ CCID_PC_GET_PARAMS,		"GetParameters" },	\
		{ CCID_PC_RESET_PARAMS,		"ResetParameters" },	\
		{ CCID_PC_XFR_BLOCK,		"XfrBlock" },		\
		{ CCID_PC_ABORT,		"Abort" },		\
		{ CCID_PC_SET_DATA_RATE,	"SetDataRateAndClockFrequency" }, \
		{ CCID_RDR_DATA_BLOCK,		"DataBlock" },		\
		{ CCID_RDR_SLOT_STATUS,		"SlotStatus" },		\
		{ CCID_RDR_PARAMS,		"Parameters" },		\
		{ CCID_RDR_ESCAPE,		"Escape" },		\
		{ CCID_RDR_DATA_RATE,		"DataRateAndClockFrequency" })

/* The ladder's steps are an enum: user space needs their values */
TRACE_DEFINE_ENUM(CCID_STEP_ABORT);
TRACE_DEFINE_ENUM(CCID_STEP_CLEAR_HALT);
TRACE_DEFINE_ENUM(CCID_STEP_RESET);

#define ccid_show_step(step)						\
	__print_symbolic(step,						\
		{ CCID_STEP_ABORT,	"abort" },			\
		{ CCID_STEP_CLEAR_HALT,	"clear_halt" },			\
		{ CCID_STEP_RESET,	"reset" })

/*
 * A command went out on bulk-OUT (@ret: 0, or why not).  Only the
 * 10-byte header at @hdr is read.
 */
TRACE_EVENT(ccid_cmd_sent,
	    TP_PROTO(const struct ccid_dev *dev, const u8 *hdr, int ret),
	    TP_ARGS(dev, hdr, ret),
	    TP_STRUCT__entry(__string(dev, dev_name(&dev->intf->dev))
			     __field(u32, len)
			     __field(int, ret)
			     __field(u8, type)
			     __field(u8, slot)
			     __field(u8, seq)),
	    TP_fast_assign(ccid_assign_str(dev, dev_name(&dev->intf->dev));
			   __entry->len = ccid_get_le32(hdr + CCID_OFF_LENGTH);
			   __entry->ret = ret;
			   __entry->type = hdr[CCID_OFF_TYPE];
			   __entry->slot = hdr[CCID_OFF_SLOT];
			   __entry->seq = hdr[CCID_OFF_SEQ];),
	    TP_printk("%s type=%s slot=%u seq=%u len=%u ret=%d",
		      __get_str(dev), ccid_show_type(__entry->type),
		      __entry->slot, __entry->seq, __entry->len, __entry->ret)
);

/* A well-formed bulk-IN frame: its decoded header */
DECLARE_EVENT_CLASS(ccid_rsp_class,
		    TP_PROTO(const struct ccid_dev *dev,
			     const struct ccid_rsp *rsp),
		    TP_ARGS(dev, rsp),
		    TP_STRUCT__entry(__string(dev, dev_name(&dev->intf->dev))
				     __field(u32, len)
				     __field(u8, type)
				     __field(u8, slot)
				     __field(u8, seq)
				     __field(u8, status)
				     __field(u8, error)),
		    TP_fast_assign(ccid_assign_str(dev,
						   dev_name(&dev->intf->dev));
				   __entry->len = rsp->len;
				   __entry->type = rsp->type;
				   __entry->slot = rsp->slot;
				   __entry->seq = rsp->seq;
				   __entry->status = rsp->status;
				   __entry->error = rsp->error;),
		    TP_printk("%s type=%s slot=%u seq=%u status=0x%02x error=0x%02x len=%u",
			      __get_str(dev), ccid_show_type(__entry->type),
			      __entry->slot, __entry->seq, __entry->status,
			      __entry->error, __entry->len)
);

/* The answer the command waited for, accepted */
DEFINE_EVENT(ccid_rsp_class, ccid_answer,
	     TP_PROTO(const struct ccid_dev *dev, const struct ccid_rsp *rsp),
	     TP_ARGS(dev, rsp)
);

/* A time extension: the wait restarts, bError (0, 0xff: 1) times longer */
DEFINE_EVENT_PRINT(ccid_rsp_class, ccid_time_ext,
		   TP_PROTO(const struct ccid_dev *dev,
			    const struct ccid_rsp *rsp),
		   TP_ARGS(dev, rsp),
		   TP_printk("%s slot=%u seq=%u mult=%u",
			     __get_str(dev), __entry->slot, __entry->seq,
			     __entry->error && __entry->error != 0xff ?
			     __entry->error : 1)
);

/*
 * A frame for another bSeq or bSlot, dropped.  @abandoned: its bSeq is
 * that of a command the driver gave up on; the reader is late, or out of
 * step when the awaited answer does not follow.
 */
TRACE_EVENT(ccid_stale_frame,
	    TP_PROTO(const struct ccid_dev *dev, const struct ccid_rsp *rsp,
		     bool abandoned),
	    TP_ARGS(dev, rsp, abandoned),
	    TP_STRUCT__entry(__string(dev, dev_name(&dev->intf->dev))
			     __field(u8, type)
			     __field(u8, slot)
			     __field(u8, seq)
			     __field(bool, abandoned)),
	    TP_fast_assign(ccid_assign_str(dev, dev_name(&dev->intf->dev));
			   __entry->type = rsp->type;
			   __entry->slot = rsp->slot;
			   __entry->seq = rsp->seq;
			   __entry->abandoned = abandoned;),
	    TP_printk("%s type=%s slot=%u seq=%u why=%s",
		      __get_str(dev), ccid_show_type(__entry->type),
		      __entry->slot, __entry->seq,
		      __entry->abandoned ? "abandoned" : "stale")
);

/* A frame the driver cannot use: @actual bytes, and what is wrong */
TRACE_EVENT(ccid_bad_frame,
	    TP_PROTO(const struct ccid_dev *dev, size_t actual,
		     const char *why),
	    TP_ARGS(dev, actual, why),
	    TP_STRUCT__entry(__string(dev, dev_name(&dev->intf->dev))
			     __string(why, why)
			     __field(u32, actual)),
	    TP_fast_assign(ccid_assign_str(dev, dev_name(&dev->intf->dev));
			   ccid_assign_str(why, why);
			   __entry->actual = actual;),
	    TP_printk("%s actual=%u why=%s",
		      __get_str(dev), __entry->actual, __get_str(why))
);

/*
 * A step of the recovery ladder for the command with @seq on @slot
 * begins; @reason is what went wrong with the command (first step) or
 * with the step below.
 */
TRACE_EVENT(ccid_recover_step,
	    TP_PROTO(const struct ccid_dev *dev, u8 slot, u8 seq,
		     enum ccid_step step, const char *reason),
	    TP_ARGS(dev, slot, seq, step, reason),
	    TP_STRUCT__entry(__string(dev, dev_name(&dev->intf->dev))
			     __string(reason, reason)
			     __field(u8, slot)
			     __field(u8, seq)
			     __field(u8, step)),
	    TP_fast_assign(ccid_assign_str(dev, dev_name(&dev->intf->dev));
			   ccid_assign_str(reason, reason);
			   __entry->slot = slot;
			   __entry->seq = seq;
			   __entry->step = step;),
	    TP_printk("%s slot=%u seq=%u step=%s reason=%s",
		      __get_str(dev), __entry->slot, __entry->seq,
		      ccid_show_step(__entry->step), __get_str(reason))
);

/* ...and its outcome: 0 when the reader confirmed it, else an errno */
TRACE_EVENT(ccid_recover_done,
	    TP_PROTO(const struct ccid_dev *dev, u8 slot, u8 seq,
		     enum ccid_step step, int ret),
	    TP_ARGS(dev, slot, seq, step, ret),
	    TP_STRUCT__entry(__string(dev, dev_name(&dev->intf->dev))
			     __field(int, ret)
			     __field(u8, slot)
			     __field(u8, seq)
			     __field(u8, step)),
	    TP_fast_assign(ccid_assign_str(dev, dev_name(&dev->intf->dev));
			   __entry->ret = ret;
			   __entry->slot = slot;
			   __entry->seq = seq;
			   __entry->step = step;),
	    TP_printk("%s slot=%u seq=%u step=%s ret=%d",
		      __get_str(dev), __entry->slot, __entry->seq,
		      ccid_show_step(__entry->step), __entry->ret)
);

/*
 * The device was reset: by the driver's recovery, for @reason, with the
 * result of usb_reset_device(); or from elsewhere ("external", 0: the
 * driver is not told how such a reset went).
 */
TRACE_EVENT(ccid_usb_reset,
	    TP_PROTO(const struct ccid_dev *dev, const char *reason, int ret),
	    TP_ARGS(dev, reason, ret),
	    TP_STRUCT__entry(__string(dev, dev_name(&dev->intf->dev))
			     __string(reason, reason)
			     __field(int, ret)),
	    TP_fast_assign(ccid_assign_str(dev, dev_name(&dev->intf->dev));
			   ccid_assign_str(reason, reason);
			   __entry->ret = ret;),
	    TP_printk("%s reason=%s ret=%d",
		      __get_str(dev), __get_str(reason), __entry->ret)
);

#endif /* _CCID_TRACE_H */

/* This part must be outside the include guard */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE ccid_trace
#include <trace/define_trace.h>
