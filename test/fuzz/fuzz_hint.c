/* fuzz_hint.c - libFuzzer target: hint file checks and entry walking on
 * arbitrary bytes, with and without entry CRCs. */
#include <stdint.h>

#include "hint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kv__hint_ent e;
	size_t pos;

	/* Claim the size the trailer states, as open would compare it. */
	if (size >= 48)
		(void)kv__hint_check(data, size, 1, 0);
	for (int crc = 0; crc < 2 && size >= KV__FILE_HDR + KV__HINT_TRAILER;
	     crc++) {
		pos = 0;
		while (kv__hint_next(data, size, &pos, &e, crc) == 1)
			;
	}
	return 0;
}
