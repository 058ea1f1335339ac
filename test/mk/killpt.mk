# Kill points (RELIABILITY-PLAN T5, test/test_killpoints.c). The short run
# (a dry run, the 1st-5th hit of every point, 60 random cases) is part of
# test-run like every test_*.c; this is the long run: KILLPT_ROUNDS random
# cases, enough for every point to be killed at least 50 times (the test
# fails if one is not), with the table of hits and kills per point.
KILLPT_ROUNDS ?= 2000

.PHONY: torture-killpoints
torture-killpoints: all $(B)/test_killpoints
	KV_KILLPT_ROUNDS=$(KILLPT_ROUNDS) KV_KILLPT_VERBOSE=1 \
		$(B)/test_killpoints

torture: torture-killpoints
