/*
 * allocfail.h - allocation failure for the binaries linked with
 * -Wl,--wrap=malloc,calloc,realloc,reallocarray,strdup (test_alloc,
 * test_compound): every allocator call of the test and the library goes
 * through the wrappers in allocfail.c. Kept out of test/helpers/ proper
 * because the wrappers refer to __real_malloc, which only such a link has.
 */
#ifndef KV_ALLOCFAIL_H
#define KV_ALLOCFAIL_H

#include <stddef.h>

/* Arms a failure of allocation number n (0: the next one); persistent
 * also fails every one after it until tu_alloc_disarm. */
void tu_alloc_arm(long n, int persistent);
void tu_alloc_disarm(void);
/* Whether the armed failure happened. */
int tu_alloc_fired(void);
/* Fails the next malloc of exactly n bytes, once (0: none); reads back 0
 * once it has. */
extern size_t tu_alloc_fail_size;

#endif
