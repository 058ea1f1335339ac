/*
 * order.h - the ordered index behind kv_scan: a B+tree of keydir entry ids.
 *
 * The tree stores 32-bit ids; key bytes stay in the keydir and are reached
 * through the comparison callback, except copies of short separator keys
 * in the inner nodes, so the index costs about 5 bytes per key and no
 * per-key allocation. Not thread-safe: the caller (kv.c) holds the keydir
 * lock around every call.
 */
#ifndef KV_ORDER_H
#define KV_ORDER_H

#include <stddef.h>
#include <stdint.h>

/* Compares the key of entry `id` with (key, klen): <0, 0, >0 as memcmp
 * would, with a shorter key that is a prefix of the other ordering first. */
typedef int (*kv__order_cmp_fn)(void *ctx, uint32_t id, const void *key,
				size_t klen);

/* Optional: the key bytes of `id` and their length, for the inner nodes'
 * copies of short separator keys (order.c, struct ord_sep). */
typedef const uint8_t *(*kv__order_key_fn)(void *ctx, uint32_t id,
					   size_t *klen);

typedef struct kv__order_node kv__order_node;

typedef struct kv__order {
	kv__order_node *root;
	kv__order_cmp_fn cmp;
	kv__order_key_fn key;   /* NULL unless set after kv__order_init */
	void *ctx;
	uint64_t count;   /* ids in the tree */
	uint64_t bytes;   /* heap held by the nodes */
	unsigned height;  /* 0 when empty, 1 when the root is a leaf */
} kv__order;

/* A position in the leaf level; invalidated by any insert or remove. */
typedef struct kv__order_cur {
	const kv__order_node *leaf;
	unsigned pos;
} kv__order_cur;

void kv__order_init(kv__order *o, kv__order_cmp_fn cmp, void *ctx);
void kv__order_free(kv__order *o);
/* Adds id, whose key is (key, klen) and not yet in the tree. KV_ENOMEM. */
int kv__order_insert(kv__order *o, uint32_t id, const void *key, size_t klen);
/* Fills an empty tree with ids[0..n), which must be sorted by key with no
 * key twice, in O(n) and without a comparison: KV_EINVAL if the tree is
 * not empty, KV_ENOMEM (the tree left empty). */
int kv__order_load(kv__order *o, const uint32_t *ids, size_t n);
/* Removes id, whose key is (key, klen); KV_ENOTFOUND if the tree does not
 * hold id under that key. */
int kv__order_remove(kv__order *o, uint32_t id, const void *key, size_t klen);
/* Positions *c at the first id whose key is >= (key, klen), or > it when
 * `after` is non-zero; key NULL means the first id of all. */
void kv__order_seek(const kv__order *o, const void *key, size_t klen,
		    int after, kv__order_cur *c);
/* Stores the id under the cursor and advances: 1, or 0 at the end. */
int kv__order_next(kv__order_cur *c, uint32_t *id);
/* For tests, O(n): 0 when the structure holds (each separator the smallest
 * id under its child, every kept copy of a separator's key equal to the
 * key, leaves non-empty and at one depth, the count right), else -1. */
int kv__order_check(const kv__order *o);

#endif /* KV_ORDER_H */
