/* error.c - kv_strerror's table and the thread-local failure detail. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

/* A failed kv_open has no handle to hang a message on, and a shared handle
 * would mix threads' messages, so the detail lives per thread. */
static _Thread_local char last_msg[512] = "no error";

static const char *const messages[] = {
	[0] = "success",
	[-KV_ENOTFOUND] = "key not found",
	[-KV_EINVAL] = "invalid argument",
	[-KV_ENOMEM] = "out of memory",
	[-KV_EIO] = "input/output error",
	[-KV_ECORRUPT] = "corrupt data",
	[-KV_ELOCKED] = "store is locked by another writer",
	[-KV_EREADONLY] = "store is read-only",
	[-KV_ETOOBIG] = "key or value too large",
	[-KV_EEXIST] = "store already exists",
	[-KV_ENOENT] = "no store at that path",
	[-KV_EVERSION] = "unsupported format version",
	[-KV_ERANGE] = "buffer too small",
	[-KV_EBUSY] = "call not allowed here",
	[-KV_ENOTSUP] = "not supported by this store's options",
	[-KV_ECANCELED] = "compaction canceled by its progress callback",
	[-KV_EGAP] = "records missing before these (replication gap)",
	[-KV_ESNAPSHOT] = "records needed are gone; a snapshot is needed",
	[-KV_EHOOK] = "replication hook failed; the write is committed",
};

KV_API const char *kv_strerror(int err)
{
	if (err > 0 || -err >= (int)(sizeof messages / sizeof messages[0]))
		return "unknown error";
	return messages[-err];
}

KV_API const char *kv_errmsg(void)
{
	return last_msg;
}

static void record(const char *fmt, va_list ap, const char *suffix)
{
	int n = vsnprintf(last_msg, sizeof last_msg, fmt, ap);

	if (suffix && n >= 0 && (size_t)n < sizeof last_msg)
		snprintf(last_msg + n, sizeof last_msg - (size_t)n, ": %s",
			 suffix);
}

/* The name in parentheses: error.h may define a macro of it. */
int (kv__fail)(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	record(fmt, ap, NULL);
	va_end(ap);
	return code;
}

int kv__fail_sys(const char *fmt, ...)
{
	int saved = errno;
	char buf[128];
	va_list ap;

	/* GNU strerror_r may return a static string instead of filling buf. */
	const char *text = strerror_r(saved, buf, sizeof buf);

	va_start(ap, fmt);
	record(fmt, ap, text);
	va_end(ap);
	errno = saved;
	return saved == ENOMEM ? KV_ENOMEM : KV_EIO;
}
