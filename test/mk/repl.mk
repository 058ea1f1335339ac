# Replication. test_repl runs in test-run like every test/test_*.c; this
# fragment adds a longer run of its random workloads to `make torture`,
# and the frame fuzz target (test/fuzz/fuzz_frame.c: kv_repl_apply of
# untrusted bytes) to `make fuzz` and to the corpus replay of `make check`.
.PHONY: repl-torture

REPL_SCALE ?= 20

repl-torture: $(B)/test_repl
	KV_REPL_SCALE=$(REPL_SCALE) $(B)/test_repl

torture: repl-torture

# The Makefile's fuzz recipes loop over FUZZ_TARGETS when they run; their
# prerequisites were read before this file, hence the two lines after.
FUZZ_TARGETS += frame
fuzz-replay: $(B)/replay_frame
fuzz: build-fuzz/fuzz_frame
