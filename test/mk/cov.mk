# ---- cov: coverage, static analysis, hardened and valgrind runs (T16) ----
# None of these is part of `make check`: they need optional packages
# (gcovr, cppcheck, clang-tidy, clang-tools, valgrind) and minutes.
#   make coverage        gcovr line/branch coverage of lib/ (build-cov)
#   make lint            cppcheck + clang-tidy + scan-build; fails on a finding
#   make check-hardened  _FORTIFY_SOURCE=3 + stack protector, C tests
#   make check-valgrind  memcheck over the C tests and the Python tests
.PHONY: coverage lint check-hardened check-valgrind analysis-deps

analysis-deps:
	@scripts/deps.sh analysis

coverage: analysis-deps
	scripts/coverage.sh build-cov

lint: analysis-deps
	scripts/lint.sh

# ---- hardened build: what Debian's hardening=+all adds, with
# ---- _FORTIFY_SOURCE at level 3 where compiler and libc have it.
# Level 3 needs __builtin_dynamic_object_size (gcc >= 12, clang >= 9) and
# glibc >= 2.34; where either lacks it, glibc quietly drops to level 2, so
# the level is probed from the effective __USE_FORTIFY_LEVEL and reported.
HARDEN_FORTIFY = $(shell printf '\043include <stdio.h>\n\043if __USE_FORTIFY_LEVEL < 3\n\043error\n\043endif\n' | \
	$(CC) -O2 -D_FORTIFY_SOURCE=3 -x c -c -o /dev/null - 2>/dev/null && echo 3 || echo 2)
HARDEN_CFLAGS = -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=$(HARDEN_FORTIFY) \
	-fstack-protector-strong -fstack-clash-protection
HARDEN_LDFLAGS = -Wl,-z,relro,-z,now

check-hardened:
	@echo "check-hardened: _FORTIFY_SOURCE=$(HARDEN_FORTIFY)"
	$(MAKE) --no-print-directory B=build-cov-hardened \
		SAN="$(HARDEN_CFLAGS)" LDFLAGS="$(LDFLAGS) $(HARDEN_LDFLAGS)" \
		test-run fuzz-replay kvctl-check python-check

# ---- valgrind memcheck over the C tests (build-cov-vg, the flags of
# ---- `make check`) and the Python binding's tests.
# Exit status 99 marks a memcheck error (an invalid access, a use of an
# uninitialised value, a definite leak), told apart from a failing test.
# The long harnesses are scaled down through their environment variables;
# VG_SKIP names test binaries to leave out (none by default).
VG = valgrind -q --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--num-callers=30 --suppressions=$(VG_B)/vg/tests.supp
VG_ENV = KV_KILL_ROUNDS=3 KV_KILLPT_ROUNDS=10 KV_COMPOUND_STRIDE=20 \
	KV_LIN_HISTORIES=20 KV_POWER_SCALE=1
VG_SKIP ?=
VG_B = build-cov-vg
# The interpreter itself: `python3` may be a wrapper script (pyenv's shim),
# and valgrind would then check the shell and not follow into Python.
VG_PYTHON = $(shell python3 -c 'import sys; print(sys.executable)')
VG_TESTS = $(filter-out $(VG_SKIP:%=$(VG_B)/%),$(TEST_SRC:test/%.c=$(VG_B)/%))

# What the tests themselves leave, not the library: each entry says why.
define VG_SUPP
# A test process that ends in a child's _exit, or a failed assertion,
# never frees its store's path.
{
   test-store-path
   Memcheck:Leak
   match-leak-kinds: definite
   ...
   fun:tu_mkdir
}
{
   test-store-path-powerloss
   Memcheck:Leak
   match-leak-kinds: definite
   ...
   fun:pl_mkdir
}
# test_killpoints' children end by _exit at a kill point, in the middle
# of a library call (a simulated crash): that call's buffers are lost
# with the process, by design.
{
   killpoint-child-dies-mid-call
   Memcheck:Leak
   match-leak-kinds: definite
   ...
   fun:run_child
}
# mount(2) ignores its type argument for MS_PRIVATE (test_faults' tmpfs
# setup passes NULL); valgrind 3.19 checks it as a string anyway.
{
   mount-type-null
   Memcheck:Param
   mount(type)
   fun:mount
}
endef

$(VG_B)/vg:
	mkdir -p $@

$(VG_B)/vg/tests.supp: test/mk/cov.mk | $(VG_B)/vg
	$(file >$@,$(VG_SUPP))

check-valgrind: analysis-deps
	$(MAKE) --no-print-directory B=$(VG_B) all $(VG_TESTS) \
		$(FUZZ_TARGETS:%=$(VG_B)/replay_%) $(VG_B)/vg/tests.supp
	@pass=0; fail=0; failed=""; \
	run() { name=$$1; shift; s=$$(date +%s); \
		if env $(VG_ENV) $(VG) --log-file=$(VG_B)/vg/$$name.log "$$@" \
			>$(VG_B)/vg/$$name.out 2>&1; then rc=0; else rc=$$?; fi; \
		printf '%-28s rc=%-3s %4ss\n' $$name $$rc $$(( $$(date +%s) - s )); \
		if [ $$rc -eq 0 ] && [ ! -s $(VG_B)/vg/$$name.log ]; then \
			pass=$$((pass + 1)); \
		else fail=$$((fail + 1)); failed="$$failed $$name"; \
			head -40 $(VG_B)/vg/$$name.log; fi; }; \
	for t in $(VG_TESTS); do run $${t##*/} $$t; done; \
	for t in $(FUZZ_TARGETS); do \
		run replay_$$t $(VG_B)/replay_$$t test/fuzz/corpus/$$t/*; done; \
	export LIBKV_LIBRARY=$(CURDIR)/$(VG_B)/libkv.so PYTHONMALLOC=malloc; \
	run python --suppressions=bindings/python/tests/cpython.supp \
		$(VG_PYTHON) -m unittest discover -s bindings/python/tests \
		-t bindings/python; \
	[ -n "$$failed" ] && echo "valgrind failed:$$failed"; \
	echo "valgrind: $$pass passed, $$fail failed (logs in $(VG_B)/vg)"; \
	[ $$fail -eq 0 ]
