# Shoal: a plain GNU Makefile. `make` builds bin/shoal-router, bin/shoal-node
# and bin/shoalctl; `make test` installs what is missing, builds and runs
# every test; `make asan` builds with AddressSanitizer + UBSan into
# build-asan/ and runs every test against that build; `make run` starts a demo cluster.

CC       ?= cc
BUILD    ?= build
BINDIR   ?= bin
PKGS     := lmdb libzmq libprotobuf-c libcares openssl libevent \
            libevent_openssl libconfig libsystemd jansson libmicrohttpd \
            libcurl zlib
CPPFLAGS += -I. -I$(BUILD) -D_GNU_SOURCE
# OPT: optimization and debug flags; SAN: sanitizer flags for compiling and
# linking. The asan build sets both on the command line; CFLAGS itself is
# never set there, since that would drop the warning flags below.
OPT      ?= -O2 -g
# Parallel jobs for the builds that test, asan, fuzz and run start.
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
CFLAGS   += $(OPT) $(SAN)
LDFLAGS  += $(SAN)
CFLAGS   += -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter \
            -fno-strict-aliasing -MMD -MP
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcrypt -lpthread
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

PROTOS     := $(wildcard proto/*.proto)
PROTO_C    := $(PROTOS:%.proto=$(BUILD)/%.pb-c.c)
PROTO_H    := $(PROTOS:%.proto=$(BUILD)/%.pb-c.h)

LIB_SRC    := $(wildcard lib/*.c) $(PROTO_C)
ROUTER_SRC := $(filter-out router/main.c,$(wildcard router/*.c))
NODE_SRC   := $(filter-out node/main.c,$(wildcard node/*.c node/*/*.c))
CLI_SRC    := $(filter-out cli/main.c,$(wildcard cli/*.c))

LIB_OBJ    := $(patsubst %.c,$(BUILD)/%.o,$(patsubst $(BUILD)/%,%,$(LIB_SRC)))
ROUTER_OBJ := $(ROUTER_SRC:%.c=$(BUILD)/%.o)
NODE_OBJ   := $(NODE_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o)

FUZZ_SRC   := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN   := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_TIME  ?= 60

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

BINS := $(BINDIR)/shoal-router $(BINDIR)/shoal-node $(BINDIR)/shoalctl

.PHONY: all deps test unit e2e asan run clean fuzz fuzz-build fuzzers format
all: $(BINS) $(UNIT_BIN)

deps:
	@bash deploy/install-deps.sh

# Generated protobuf-c code lives in $(BUILD)/proto, never in the tree.
$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/proto
	protoc-c -I. --c_out=$(BUILD) $<

# Generated sources are kept between builds, not removed as intermediates
# (that made every second build regenerate them and recompile everything).
.SECONDARY: $(PROTO_C) $(PROTO_H)

# Every object may include generated headers.
$(BUILD)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

# The built-in shaping rules are assembled into the binary (.incbin).
$(BUILD)/lib/config_file.o: deploy/shaping.rules

# protobuf-c's generated code is not ours to make -Wextra clean.
$(BUILD)/proto/%.pb-c.o: $(BUILD)/proto/%.pb-c.c
	$(CC) $(CPPFLAGS) $(filter-out -Werror,$(CFLAGS)) $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/libshoal.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/librouter.a: $(ROUTER_OBJ)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/libnode.a: $(NODE_OBJ)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/libcli.a: $(CLI_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BINDIR)/shoal-router: $(BUILD)/router/main.o $(BUILD)/librouter.a $(BUILD)/libshoal.a
	@mkdir -p $(BINDIR)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BINDIR)/shoal-node: $(BUILD)/node/main.o $(BUILD)/libnode.a $(BUILD)/libshoal.a
	@mkdir -p $(BINDIR)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BINDIR)/shoalctl: $(BUILD)/cli/main.o $(BUILD)/libcli.a $(BUILD)/libshoal.a
	@mkdir -p $(BINDIR)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Unit tests link every library; each test_x.c holds one Check suite.
$(BUILD)/tests/test_%: tests/unit/test_%.c $(wildcard tests/unit/*.h) \
		$(BUILD)/librouter.a $(BUILD)/libnode.a $(BUILD)/libcli.a $(BUILD)/libshoal.a | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) $(CHECK_CFLAGS) -o $@ $< \
		$(BUILD)/librouter.a $(BUILD)/libnode.a $(BUILD)/libcli.a $(BUILD)/libshoal.a \
		$(PKG_LIBS) $(CHECK_LIBS)

# libFuzzer harnesses (fuzz/): built with clang, ASan and UBSan into
# build-fuzz/; `make fuzz` runs each for FUZZ_TIME seconds, `make test` for
# a few (tests/run.sh).
$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c $(BUILD)/librouter.a $(BUILD)/libnode.a $(BUILD)/libshoal.a | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(BUILD)/librouter.a $(BUILD)/libnode.a $(BUILD)/libshoal.a $(PKG_LIBS)

fuzzers: $(FUZZ_BIN)

fuzz-build:
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-fuzz BINDIR=build-fuzz/bin \
		CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
		SAN="-fsanitize=address,undefined -fsanitize=fuzzer-no-link" \
		fuzzers

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_TIME=$(FUZZ_TIME) bash fuzz/run.sh

# The fuzz build runs while the unit tests do (tests/run.sh,
# SHOAL_FUZZ_BUILD): they mostly wait on timers.
test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@SHOAL_FUZZ_BUILD=1 bash tests/run.sh

unit: all
	@bash tests/run.sh unit

e2e: all
	@bash tests/run.sh e2e

asan: deps
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-asan BINDIR=build-asan/bin \
		OPT="-O1 -g -fno-omit-frame-pointer" \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	@$(MAKE) --no-print-directory fuzz-build
	@SHOAL_BUILD=build-asan SHOAL_BIN=build-asan/bin bash tests/run.sh

run: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@bash deploy/local/cluster.sh run

format:
	clang-format -i $(wildcard lib/*.[ch] router/*.[ch] node/*.[ch] node/*/*.[ch] cli/*.[ch] tests/unit/*.[ch])

clean:
	rm -rf build build-asan build-fuzz bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
