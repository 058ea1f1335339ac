# T13 linearizability (test/test_linearize.c). `make check` runs it through
# test-run with its default of 1,000 histories x 200 ops (about 15-20 s,
# mostly fsync waits); `make torture` adds a long run.
LIN_TORTURE_HISTORIES ?= 10000

.PHONY: lin-torture
lin-torture: $(B)/test_linearize
	KV_LIN_HISTORIES=$(LIN_TORTURE_HISTORIES) $(B)/test_linearize

torture: lin-torture
