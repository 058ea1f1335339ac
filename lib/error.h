/* error.h - error codes and the per-thread failure detail behind kv_errmsg. */
#ifndef KV_ERROR_H
#define KV_ERROR_H

#include "kv.h"

/* Records "<fmt>" as the calling thread's last failure and returns code,
 * so a failure path reads `return kv__fail(KV_EINVAL, "...")`. */
int kv__fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* As kv__fail for a failed system call: appends strerror(errno) and maps
 * errno to a code (ENOMEM -> KV_ENOMEM, anything else -> KV_EIO). */
int kv__fail_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __clang_analyzer__
/* The analyzer sees one file at a time: told nothing, it assumes kv__fail
 * may return 0 and follows failure paths as successes, reporting outputs
 * they never wrote (scripts/lint.sh). Only its view changes here. */
#define kv__fail(code, ...) (kv__fail((code), __VA_ARGS__), (code))
#endif

#endif
