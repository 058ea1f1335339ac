# Corrupt files at scale (RELIABILITY-PLAN T9, test/test_corrupt.c).
# The short run (KV_CORRUPT_CASES, 5,000 cases by default, about 10 s) is
# part of test-run like every test/test_*.c. This fragment adds the long
# run to `make torture` and `make corrupt-asan`, the short run under ASan,
# UBSan and LeakSanitizer. A failure prints KV_CORRUPT_SEED and
# KV_CORRUPT_ONLY, which replay that one case (KV_CORRUPT_KEEP=<dir> also
# leaves its damaged files there).
CORRUPT_TORTURE_CASES ?= 100000
CORRUPT_TORTURE_SEED ?= 1
CORRUPT_ASAN_CASES ?= 5000

.PHONY: corrupt-torture corrupt-asan

corrupt-torture: $(B)/test_corrupt
	KV_CORRUPT_CASES=$(CORRUPT_TORTURE_CASES) \
		KV_CORRUPT_SEED=$(CORRUPT_TORTURE_SEED) KV_CORRUPT_VERBOSE=1 \
		$(B)/test_corrupt

torture: corrupt-torture

corrupt-asan:
	$(MAKE) B=build-corrupt-asan SAN="-fsanitize=address,undefined \
		-fno-omit-frame-pointer -fno-sanitize-recover=all" all \
		build-corrupt-asan/test_corrupt
	KV_CORRUPT_CASES=$(CORRUPT_ASAN_CASES) build-corrupt-asan/test_corrupt
