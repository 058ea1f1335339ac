# faults.mk - the fault harnesses (test_faults, test_alloc, test_compound;
# RELIABILITY-PLAN T6, T7, T8). Their short runs are ordinary test
# binaries, so `make check` (test-run) runs them already.

# test_compound fails the Nth allocation of an open, as test_alloc does
# (the wrappers and their link flags are in the Makefile).

# The long run opens every crash state (make check opens every third).
.PHONY: faults-torture faults-asan
faults-torture: all $(B)/test_compound
	KV_COMPOUND_STRIDE=1 KV_COMPOUND_OPS=150 $(B)/test_compound
torture: faults-torture

# The three harnesses under ASan, UBSan and LeakSanitizer.
faults-asan:
	$(MAKE) B=build-faults-asan SAN="-fsanitize=address,undefined \
		-fno-omit-frame-pointer -fno-sanitize-recover=all" all \
		build-faults-asan/test_faults build-faults-asan/test_alloc \
		build-faults-asan/test_compound
	@scripts/run-tests.sh build-faults-asan/test_faults \
		build-faults-asan/test_alloc build-faults-asan/test_compound
