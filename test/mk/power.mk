# Power loss (T2) and ordering (T3) harnesses.
# test_powerloss_compact runs in test-run like every test/test_*.c; this
# fragment adds the strace cross-check to `make check`, a longer power-loss
# run to `make torture`, and `make power-mutants`, which shows that both
# checkers catch seeded ordering bugs (in a copy of the tree, never lib/).
.PHONY: ordering-check power-torture power-mutants

POWER_SCALE ?= 4

$(B)/ordering_workload: test/ordering/workload.c $(B)/libkv.a include/kv.h \
		lib/io.h
	$(CC) $(ALL_CFLAGS) $< -o $@ $(ALL_LDFLAGS) $(B)/libkv.a $(DEP_LIBS)

# Skips (exit 0, with a message) when strace is not installed.
ordering-check: $(B)/ordering_workload
	python3 test/ordering/check_order.py $(B)/ordering_workload

power-torture: $(B)/test_powerloss_compact
	KV_POWER_SCALE=$(POWER_SCALE) $(B)/test_powerloss_compact

power-mutants:
	test/ordering/mutants.sh $(B)/mutants

check: ordering-check
torture: power-torture
