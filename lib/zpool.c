/* zpool.c - a few kept blocks of deflate and inflate working memory.
 *
 * Each slot is taken and given back by an atomic exchange, so there is no
 * lock to leave held across a fork and no ABA: a block is in one slot or in
 * one caller's hands. A full pool frees what it is given. */
#include <stdatomic.h>
#include <stdlib.h>

#include "zpool.h"

static _Atomic(void *) kept_def[KV__ZPOOL_MAX];
static _Atomic(void *) kept_inf[KV__ZPOOL_MAX];

static void *take(_Atomic(void *) *slots, size_t size)
{
	for (int i = 0; i < KV__ZPOOL_MAX; i++) {
		void *p = atomic_exchange(&slots[i], NULL);

		if (p)
			return p;
	}
	return malloc(size);
}

static void give(_Atomic(void *) *slots, void *p)
{
	for (int i = 0; p && i < KV__ZPOOL_MAX; i++) {
		void *none = NULL;

		if (atomic_compare_exchange_strong(&slots[i], &none, p))
			return;
	}
	free(p);
}

kv__zdeflate *kv__zpool_deflater(void)
{
	return take(kept_def, sizeof(kv__zdeflate));
}

struct inflate_state *kv__zpool_inflater(void)
{
	return take(kept_inf, sizeof(struct inflate_state));
}

void kv__zpool_put_deflater(kv__zdeflate *d)
{
	give(kept_def, d);
}

void kv__zpool_put_inflater(struct inflate_state *s)
{
	give(kept_inf, s);
}

/* At unload (or exit), so that leak checkers see every block freed. */
__attribute__((destructor)) static void zpool_drain(void)
{
	for (int i = 0; i < KV__ZPOOL_MAX; i++) {
		free(atomic_exchange(&kept_def[i], NULL));
		free(atomic_exchange(&kept_inf[i], NULL));
	}
}
