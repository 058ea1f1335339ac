/* fuzz_hint.c - libFuzzer target: hint file checks and entry walking on
 * arbitrary bytes. */
#include <stdint.h>

#include "hint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kv__hint_ent e;
	kv__hint_cur c = {0};

	/* Claim the size the trailer states, as open would compare it. */
	if (size >= 48)
		(void)kv__hint_check(data, size, 1, 0);
	if (size >= KV__FILE_HDR + KV__HINT_TRAILER)
		while (kv__hint_next(data, size, &c, &e) == 1)
			;
	return 0;
}
