/* allocfail.c - the allocator wrappers behind allocfail.h. */
#include <stdlib.h>
#include <string.h>

#include "allocfail.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_reallocarray(void *p, size_t n, size_t m);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_reallocarray(void *p, size_t n, size_t m);
char *__wrap_strdup(const char *s);

static struct {
	int armed, persistent, fired;
	long countdown;
} am;

size_t tu_alloc_fail_size;

void tu_alloc_arm(long n, int persistent)
{
	am.fired = 0;
	am.countdown = n;
	am.persistent = persistent;
	am.armed = 1;
}

void tu_alloc_disarm(void)
{
	am.armed = 0;
}

int tu_alloc_fired(void)
{
	return am.fired;
}

static int fail_now(void)
{
	if (!am.armed)
		return 0;
	if (am.fired && am.persistent)
		return 1;
	if (am.countdown-- != 0)
		return 0;
	am.fired = 1;
	return 1;
}

static int fail_sized(size_t n)
{
	if (!tu_alloc_fail_size || n != tu_alloc_fail_size)
		return 0;
	tu_alloc_fail_size = 0;
	return 1;
}

void *__wrap_malloc(size_t n)
{
	return fail_sized(n) || fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return fail_now() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

void *__wrap_reallocarray(void *p, size_t n, size_t m)
{
	return fail_now() ? NULL : __real_reallocarray(p, n, m);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}
