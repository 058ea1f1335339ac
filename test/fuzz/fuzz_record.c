/* fuzz_record.c - libFuzzer target: the record decoder, CRC check and
 * value inflation on arbitrary bytes. Nothing may crash, read out of
 * bounds, or allocate more than the input can justify. */
#include <stdint.h>
#include <stdlib.h>

#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kv__rec r;
	void *out;
	size_t olen;

	if (size < KV__REC_HDR || kv__rec_decode(data, &r))
		return 0;
	if (kv__rec_size(r.klen, r.vlen) > size)
		return 0; /* what open does: bounds before anything else */
	(void)kv__rec_crc_ok(&r, data);
	if ((r.flags & KV__RF_ZLIB) &&
	    kv__rec_uncompress(data + KV__REC_HDR + r.klen, r.vlen, &out,
			       &olen) == 0)
		free(out);
	return 0;
}
