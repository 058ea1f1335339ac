# kv_refresh (read-only handles following a writer). test_refresh runs in
# test-run like every test/test_*.c; this adds a longer run to `make
# torture`: more refresh rounds against writes and compactions with reader
# threads, and more kill -9 cycles of a forked writer.
.PHONY: refresh-torture

REFRESH_SCALE ?= 30

refresh-torture: $(B)/test_refresh
	KV_REFRESH_SCALE=$(REFRESH_SCALE) $(B)/test_refresh

torture: refresh-torture
