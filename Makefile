# papscan — build, test and run the slide-scanning agent.
# `make run` is the simulated robot out of the box; `make test` is the whole suite.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin
PKG      := ./cmd/papscan
FLEETPKG := ./cmd/papscan-fleet

export CGO_ENABLED := 0

.PHONY: all build cross test test-short run run-fleet bench lint clean install verify-unit test-vivid test-powercut test-qemu-user

all: build

# bin/papscan (the robot's agent and tools) and bin/papscan-fleet (the fleet
# side: reference receiver, keygen, send; not for the robot).
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/papscan $(PKG)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/papscan-fleet $(FLEETPKG)

# Static binaries for the robot's controllers (papscan only).
cross:
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/papscan-linux-arm64 $(PKG)
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/papscan-linux-armv7 $(PKG)
	@file $(BIN)/papscan-linux-arm64 $(BIN)/papscan-linux-armv7 2>/dev/null || ls -l $(BIN)

# The whole test suite; installs what the tests need first.
test:
	./scripts/test.sh

# The V4L2 camera driver against the kernel's vivid driver in a qemu VM.
test-vivid:
	./scripts/vm/vivid.sh

# The outbox and result files across power cuts (qemu VM killed at random
# moments; POWERCUT_CUTS sets how many, default 5).
test-powercut:
	./scripts/vm/powercut.sh

# go test ./... on arm64 and armv7 under qemu-user (32-bit int bugs).
test-qemu-user:
	./scripts/qemu-user.sh

run: build
	$(BIN)/papscan sim --serve

# The fleet side on the embedded defaults (MQTT broker, receiver, SQLite,
# review station) with three demonstration slides; prints the review link.
# A robot joins with: bin/papscan sim --broker tcp://127.0.0.1:1883
run-fleet: build
	$(BIN)/papscan-fleet local --demo

bench:
	./scripts/bench.sh

# staticcheck, pinned; `go run pkg@version` fetches it through the module
# proxy (CI has only Go), outside this module's go.mod.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

clean:
	rm -rf $(BIN) papscan-state

# The robot's service: binary, systemd unit, sysusers.d user, and the robot
# profile as /etc/papscan/papscan.yaml unless one exists. DESTDIR for
# packaging; on a live system the user is created and systemd reloaded.
PREFIX     ?= /usr/local
SYSTEMDDIR ?= /etc/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
install: build
	install -D -m 0755 $(BIN)/papscan $(DESTDIR)$(PREFIX)/bin/papscan
	install -d $(DESTDIR)$(SYSTEMDDIR)
	sed -e 's|/usr/local/bin/papscan|$(PREFIX)/bin/papscan|' -e 's|/usr/local/share/doc|$(PREFIX)/share/doc|' deploy/papscan.service >$(DESTDIR)$(SYSTEMDDIR)/papscan.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/papscan.service
	install -D -m 0644 deploy/papscan.sysusers $(DESTDIR)$(SYSUSERSDIR)/papscan.conf
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/papscan/README.md
	test -e $(DESTDIR)/etc/papscan/papscan.yaml || install -D -m 0644 firmware-config/profiles/papscan-r2.yaml $(DESTDIR)/etc/papscan/papscan.yaml
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		systemd-sysusers papscan.conf && systemctl daemon-reload && \
		echo "installed; edit /etc/papscan/papscan.yaml, then: systemctl enable --now papscan"; \
	fi

# `systemd-analyze verify` on the unit, offline (scripts/test.sh runs it).
verify-unit: build
	deploy/verify.sh $(BIN)/papscan
