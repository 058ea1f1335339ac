# kvrepl: the ZeroMQ replication daemon (tools/kvrepl, kvrepl(1)) and its
# multi-process tests (test/kvrepl/run.py, loopback only). `make check`
# runs tests 1-8 short (1,000 evil-peer messages, 6 rounds of random
# kill -9; about 15 s); `make torture` the evil peer at 10,000 messages
# and 30 rounds (about a minute). The daemon's own build rule and install
# lines are in the main Makefile.
.PHONY: kvrepl kvrepl-check kvrepl-torture

kvrepl: $(B)/kvrepl

# Test helpers: a deterministic writer / digest / replay tool, and a
# fake primary that damages what it sends (T15 evil peer).
$(B)/kvrepl_tool: test/kvrepl/tool.c include/kv.h $(B)/libkv.a
	$(CC) $(KVREPL_CFLAGS) -Wno-conversion $< -o $@ $(B)/libkv.a \
		$(DEP_LIBS) $(LDFLAGS)

$(B)/kvrepl_evil: test/kvrepl/evil.c tools/kvrepl/proto.c \
		tools/kvrepl/proto.h include/kv.h $(B)/libkv.a
	$(CC) $(KVREPL_CFLAGS) -Wno-conversion test/kvrepl/evil.c \
		tools/kvrepl/proto.c -o $@ $(B)/libkv.a $(DEP_LIBS) \
		$(ZMQ_LIBS) $(LDFLAGS)

KVREPL_TEST_BIN = $(B)/kvrepl $(B)/kvrepl_tool $(B)/kvrepl_evil $(B)/kvctl \
	$(B)/kvrepl_mutant

kvrepl-check: all $(KVREPL_TEST_BIN)
	python3 test/kvrepl/run.py --bin $(B)

kvrepl-torture: all $(KVREPL_TEST_BIN)
	python3 test/kvrepl/run.py --bin $(B) --long

check: kvrepl-check
torture: kvrepl-torture

# The mutation check of test 5: a follower whose applies skip the CRC
# check (test/kvrepl/mutant.c) must make the evil-peer test fail.
$(B)/kvrepl_mutant: $(KVREPL_SRC) $(KVREPL_HDR) test/kvrepl/mutant.c \
		include/kv.h $(B)/libkv.a
	$(CC) $(KVREPL_CFLAGS) -Dkv_repl_apply=mutant_repl_apply -c \
		tools/kvrepl/follower.c -o $(B)/obj/kvrepl_mutant_follower.o
	$(CC) $(KVREPL_CFLAGS) $(B)/obj/kvrepl_mutant_follower.o \
		$(filter-out tools/kvrepl/follower.c,$(KVREPL_SRC)) \
		test/kvrepl/mutant.c -o $@ $(B)/libkv.a $(DEP_LIBS) \
		$(ZMQ_LIBS) $(LDFLAGS)
