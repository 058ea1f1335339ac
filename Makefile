# libkv - GNU make. The two commands a new user needs:
#   make example   build the library and run examples/quickstart.c
#   make check     build and run every test
# Both install missing Debian build dependencies first (scripts/deps.sh).

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKG_CONFIG ?= pkg-config
CC ?= cc
CXX ?= c++

MAJOR := $(shell sed -n 's/^\#define KV_VERSION_MAJOR *\([0-9]*\).*/\1/p' include/kv.h)
MINOR := $(shell sed -n 's/^\#define KV_VERSION_MINOR *\([0-9]*\).*/\1/p' include/kv.h)
PATCH := $(shell sed -n 's/^\#define KV_VERSION_PATCH *\([0-9]*\).*/\1/p' include/kv.h)
VERSION := $(MAJOR).$(MINOR).$(PATCH)

# B is the build directory; check-asan and check-tsan use their own.
B ?= build
SAN ?=
DEPS := zlib libisal libxxhash libbsd
WARN := -Wall -Wextra -Werror -Wshadow -Wconversion -Wstrict-prototypes \
	-Wmissing-prototypes
DEP_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(DEPS))
DEP_LIBS = $(shell $(PKG_CONFIG) --libs $(DEPS)) -pthread
ALL_CFLAGS = -std=c11 $(WARN) -O2 -g -fPIC -fvisibility=hidden \
	-D_GNU_SOURCE -Iinclude -Ilib $(SAN) $(DEP_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN) $(LDFLAGS)

LIB_SRC := $(wildcard lib/*.c)
LIB_OBJ := $(LIB_SRC:lib/%.c=$(B)/obj/%.o)
TEST_SRC := $(wildcard test/test_*.c)
TEST_BIN := $(TEST_SRC:test/%.c=$(B)/%)
HELPER_SRC := $(wildcard test/helpers/*.c)
HELPER_OBJ := $(HELPER_SRC:test/helpers/%.c=$(B)/obj/helpers/%.o)
TEST_CFLAGS = $(ALL_CFLAGS) -Wno-conversion -Itest/helpers \
	$(shell $(PKG_CONFIG) --cflags cmocka)
TEST_LIBS = $(B)/libkv.a $(DEP_LIBS) $(shell $(PKG_CONFIG) --libs cmocka)

.PHONY: all deps example examples check check-asan check-tsan test-run \
	man-check cxx-check bench-compact bench-stalls bench-compress \
	kvctl-check python-check rust-check \
	install uninstall install-check torture fuzz fuzz-replay bench clean
.DELETE_ON_ERROR:
# Keep objects built by pattern rules (helpers) between runs.
.SECONDARY:

all: deps $(B)/libkv.so $(B)/libkv.a $(B)/libkv.pc $(B)/libkv-static.pc

deps:
	@scripts/deps.sh

$(B)/obj/%.o: lib/%.c $(wildcard lib/*.h) include/kv.h | $(B)/obj
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/obj $(B)/obj/helpers:
	mkdir -p $@

$(B)/libkv.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(B)/libkv.so.$(VERSION): $(LIB_OBJ) lib/libkv.map
	$(CC) -shared -Wl,-soname,libkv.so.$(MAJOR) \
		-Wl,--version-script,lib/libkv.map $(ALL_LDFLAGS) \
		-o $@ $(LIB_OBJ) $(DEP_LIBS)

$(B)/libkv.so: $(B)/libkv.so.$(VERSION)
	ln -sf libkv.so.$(VERSION) $(B)/libkv.so.$(MAJOR)
	ln -sf libkv.so.$(VERSION) $@

PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|'

$(B)/%.pc: pkgconfig/%.pc.in include/kv.h | $(B)/obj
	$(PC_SED) $< > $@

# ---- examples: each takes a store directory and exits 0 when all it
# ---- checked held; `make example` runs the quickstart, `make examples` all

EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(B)/ex_%)

$(B)/ex_%: examples/%.c $(B)/libkv.so
	$(CC) -std=c11 $(WARN) -g -Iinclude $(SAN) $(CFLAGS) $< -o $@ \
		-L$(B) -Wl,-rpath,'$$ORIGIN' -lkv -pthread $(LDFLAGS)

example: all $(B)/ex_quickstart
	@dir=$$(mktemp -d) && echo "quickstart: store in $$dir/store" && \
		$(B)/ex_quickstart "$$dir/store" && rm -rf "$$dir"

examples: all $(EXAMPLE_BIN)
	@for ex in $(EXAMPLE_BIN); do \
		dir=$$(mktemp -d) && echo "== $${ex##*/ex_}: store in $$dir/store" && \
		$$ex "$$dir/store" && rm -rf "$$dir" || exit 1; \
	done

# ---- kvctl: linked with libkv.a, so an installed kvctl needs no rpath ----

$(B)/kvctl: tools/kvctl.c include/kv.h $(B)/libkv.a
	$(CC) -std=c11 $(WARN) -O2 -g -D_GNU_SOURCE -Iinclude $(SAN) \
		$(shell $(PKG_CONFIG) --cflags libbsd) $(CFLAGS) $< -o $@ \
		$(B)/libkv.a $(DEP_LIBS) $(LDFLAGS)

kvctl-check: $(B)/kvctl
	test/kvctl/run.sh $(B)/kvctl

# ---- kvrepl: the ZeroMQ replication daemon, kvrepl(1); tests in
# test/mk/kvrepl.mk. The library never links libzmq, only this tool. ----

ZMQ_CFLAGS = $(shell $(PKG_CONFIG) --cflags libzmq)
ZMQ_LIBS = $(shell $(PKG_CONFIG) --libs libzmq)
KVREPL_SRC := $(wildcard tools/kvrepl/*.c)
KVREPL_HDR := $(wildcard tools/kvrepl/*.h)
KVREPL_CFLAGS = -std=c11 $(WARN) -O2 -g -D_GNU_SOURCE -Iinclude \
	-Itools/kvrepl $(SAN) $(ZMQ_CFLAGS) $(CFLAGS)

$(B)/kvrepl: $(KVREPL_SRC) $(KVREPL_HDR) include/kv.h $(B)/libkv.a
	$(CC) $(KVREPL_CFLAGS) $(KVREPL_SRC) -o $@ $(B)/libkv.a $(DEP_LIBS) \
		$(ZMQ_LIBS) $(LDFLAGS)

# ---- bindings ----

python-check: $(B)/libkv.so
	LIBKV_LIBRARY=$(CURDIR)/$(B)/libkv.so python3 -m unittest discover \
		-s bindings/python/tests -t bindings/python

rust-check: $(B)/libkv.so
	@if command -v cargo >/dev/null 2>&1; then \
		cd bindings/rust && LIBKV_LIB_DIR=$(CURDIR)/$(B) \
		cargo test --offline; \
	else echo "rust-check: cargo is not installed; skipped"; fi

# ---- install: every path under $(DESTDIR); `make uninstall` reverses it ----

MAN_PAGES := $(wildcard man/man1/*.1 man/man3/*.3 man/man5/*.5)
INSTALL ?= install

install: all $(B)/kvctl $(B)/kvrepl
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(BINDIR)
	$(INSTALL) -m 644 include/kv.h $(DESTDIR)$(INCLUDEDIR)/kv.h
	$(INSTALL) -m 755 $(B)/libkv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libkv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libkv.so.$(MAJOR)
	ln -sf libkv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libkv.so
	$(INSTALL) -m 644 $(B)/libkv.a $(DESTDIR)$(LIBDIR)/libkv.a
	$(PC_SED) pkgconfig/libkv.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libkv.pc
	$(PC_SED) pkgconfig/libkv-static.pc.in \
		> $(DESTDIR)$(LIBDIR)/pkgconfig/libkv-static.pc
	$(INSTALL) -m 755 $(B)/kvctl $(DESTDIR)$(BINDIR)/kvctl
	$(INSTALL) -m 755 $(B)/kvrepl $(DESTDIR)$(BINDIR)/kvrepl
	scripts/install-man.sh install $(DESTDIR)$(MANDIR) $(MAN_PAGES)

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/kv.h $(DESTDIR)$(BINDIR)/kvctl \
		$(DESTDIR)$(BINDIR)/kvrepl \
		$(DESTDIR)$(LIBDIR)/libkv.so.$(VERSION) \
		$(DESTDIR)$(LIBDIR)/libkv.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libkv.so \
		$(DESTDIR)$(LIBDIR)/libkv.a $(DESTDIR)$(LIBDIR)/pkgconfig/libkv.pc \
		$(DESTDIR)$(LIBDIR)/pkgconfig/libkv-static.pc
	scripts/install-man.sh uninstall $(DESTDIR)$(MANDIR) $(MAN_PAGES)

# Installs into a temporary DESTDIR and builds the quickstart from it with
# pkg-config alone, shared and static; then uninstalls and checks that
# nothing is left.
install-check: all $(B)/kvctl $(B)/kvrepl
	scripts/install-check.sh

# ---- measurements (bench/RESULTS.md) ----

$(B)/reopen_compact: bench/reopen_compact.c $(B)/libkv.so
	$(CC) -std=c11 $(WARN) -O2 -Iinclude $(CFLAGS) $< -o $@ \
		-L$(B) -Wl,-rpath,'$$ORIGIN' -lkv $(LDFLAGS)

bench-compact: all $(B)/reopen_compact
	$(B)/reopen_compact $(N)

$(B)/fill_stalls: bench/fill_stalls.c bench/store_dir.h $(B)/libkv.so
	$(CC) -std=c11 $(WARN) -O2 -Iinclude $(CFLAGS) $< -o $@ \
		-L$(B) -Wl,-rpath,'$$ORIGIN' -lkv $(LDFLAGS)

# Where a fill's time goes: puts by latency band, and the slow ones.
bench-stalls: all $(B)/fill_stalls
	$(B)/fill_stalls $(N)

$(B)/compress_speed: bench/compress_speed.c bench/store_dir.h $(B)/libkv.so
	$(CC) -std=c11 $(WARN) -O2 -Iinclude $(CFLAGS) $< -o $@ \
		-L$(B) -Wl,-rpath,'$$ORIGIN' -lkv $(LDFLAGS)

# What KV_COMPRESS costs per put and get, and saves per value.
bench-compress: all $(B)/compress_speed
	$(B)/compress_speed

# make bench: kvbench against the peer engines (installs them first).
include bench/bench.mk

# ---- tests ----

# The helpers reach into the library's tables (io.h): a changed layout
# there must rebuild them, or the tests write to the wrong fields.
$(B)/obj/helpers/%.o: test/helpers/%.c $(wildcard test/helpers/*.h) \
		include/kv.h $(wildcard lib/*.h) | $(B)/obj/helpers
	$(CC) $(TEST_CFLAGS) -c $< -o $@

$(B)/test_%: test/test_%.c $(HELPER_OBJ) $(B)/libkv.a $(wildcard test/helpers/*.h)
	$(CC) $(TEST_CFLAGS) $< $(HELPER_OBJ) -o $@ $(ALL_LDFLAGS) $(TEST_LIBS)

# test_alloc, test_compound and test_order fail the Nth allocation: every
# allocator call in the link goes through the wrappers of test/helpers/wrap/.
ALLOCFAIL_OBJ = $(B)/obj/helpers/allocfail.o
$(ALLOCFAIL_OBJ): test/helpers/wrap/allocfail.c test/helpers/wrap/allocfail.h \
		| $(B)/obj/helpers
	$(CC) $(TEST_CFLAGS) -c $< -o $@
ALLOCFAIL_BIN = $(B)/test_alloc $(B)/test_compound $(B)/test_order
$(ALLOCFAIL_BIN): $(ALLOCFAIL_OBJ)
$(ALLOCFAIL_BIN): TEST_CFLAGS += -Itest/helpers/wrap
$(ALLOCFAIL_BIN): TEST_LIBS += $(ALLOCFAIL_OBJ) \
	-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
	-Wl,--wrap=reallocarray,--wrap=strdup

# The header must compile as C++ (extern "C", no C-only constructs).
$(B)/cxx_header_test: test/cxx/header.cc include/kv.h $(B)/libkv.so
	$(CXX) -std=c++11 -Wall -Wextra -Werror -Iinclude $< -o $@ \
		-L$(B) -Wl,-rpath,'$$ORIGIN' -lkv

cxx-check: $(B)/cxx_header_test
	$(B)/cxx_header_test

man-check: $(B)/libkv.so
	scripts/check-man.sh $(B)

test-run: all $(TEST_BIN)
	@scripts/run-tests.sh $(TEST_BIN)

check: test-run fuzz-replay man-check cxx-check examples install-check \
	kvctl-check python-check rust-check

# ---- fuzzing: make fuzz runs each libFuzzer target (clang, ASan, UBSan)
# ---- for FUZZ_SECONDS; make check replays the seed corpus through them ----

FUZZ_TARGETS := record hint store
FUZZ_SECONDS ?= 60
FUZZ_FLAGS = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-g -O1 -D_GNU_SOURCE -Iinclude -Ilib $(DEP_CFLAGS)

$(B)/replay_%: test/fuzz/fuzz_%.c test/fuzz/replay.c $(B)/libkv.a
	$(CC) $(TEST_CFLAGS) $< test/fuzz/replay.c -o $@ $(ALL_LDFLAGS) \
		$(B)/libkv.a $(DEP_LIBS)

fuzz-replay: $(FUZZ_TARGETS:%=$(B)/replay_%)
	@for t in $(FUZZ_TARGETS); do \
		printf '%s: ' $$t; $(B)/replay_$$t test/fuzz/corpus/$$t/* || exit 1; \
	done

build-fuzz/fuzz_%: test/fuzz/fuzz_%.c $(LIB_SRC) $(wildcard lib/*.h)
	@mkdir -p build-fuzz/corpus/$*
	clang $(FUZZ_FLAGS) $(LIB_SRC) $< -o $@ $(DEP_LIBS)

fuzz: deps $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
			-rss_limit_mb=512 -timeout=2 -print_final_stats=1 \
			-artifact_prefix=build-fuzz/ \
			build-fuzz/corpus/$$t test/fuzz/corpus/$$t 2>&1 | \
			grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Done' \
			|| true; \
		ls build-fuzz/crash-* build-fuzz/leak-* 2>/dev/null && exit 1; \
	done; true

# The long runs of the reliability harnesses (test/RELIABILITY.md).
torture: all $(B)/test_kill9
	KV_KILL_ROUNDS=1000 $(B)/test_kill9

check-asan:
	$(MAKE) B=build-asan SAN="-fsanitize=address,undefined \
		-fno-omit-frame-pointer -fno-sanitize-recover=all" test-run

check-tsan:
	$(MAKE) B=build-tsan SAN="-fsanitize=thread" KV_TEST_SCALE=1 test-run

# Harness fragments (test/mk/*.mk) add their own targets and hook them
# into check and torture by naming those as extra prerequisites.
include $(wildcard test/mk/*.mk)

clean:
	rm -rf build build-asan build-tsan build-fuzz build-*
