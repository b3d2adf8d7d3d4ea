# kms-rotator — see README.md. Everything here runs offline, without AWS credentials.
SHELL := /bin/bash
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Node 22 and the CDK CLI come from package.json (node@22 is a devDependency), so
# node_modules/.bin goes first on PATH for everything that may start jsii.
# cfn-lint, when the machine has none, is installed into .cache/cfn-lint.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.cache/cfn-lint/bin:$(PATH)
export AWS_EC2_METADATA_DISABLED := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: all build test lint cfn-lint demo synth deploy bench fuzz clean

all: test

# The deployable function: linux/arm64, no RPC shim, static and trimmed, no
# VCS stamp (the same binary as the CDK bundling, whatever the commit).
build:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -buildvcs=false -tags lambda.norpc -trimpath -ldflags='-s -w' -o bootstrap ./lambda

# The ledger's DynamoDB is dynalite on Node 22, both from node_modules.
# DEMOFLAGS passes demo flags, e.g. to rehearse a deployment's settings:
# DEMOFLAGS='-env ROTATOR_INTERVAL_DAYS=30 -timeout 60s' (go run ./tools/demo -h).
demo: node_modules/.installed ## the real bootstrap under the Lambda Runtime Interface Emulator against kmslocal
	$(GO) run ./tools/demo $(DEMOFLAGS)

# The scale benchmark (issue 5): the engine against the emulator at 10x KMS's
# quotas, 5 ms latency, for 1,000, 10,000 and 100,000 keys (about 5 minutes;
# BENCHFLAGS='-sizes 1000,10000' for a quick run), then an organization of 4
# member accounts × 5,000 keys swept side by side; the sweep's peak RSS is
# printed per fleet; last line is one JSON object.
# BENCHFLAGS passes more flags (e.g. -due-fraction 0.05, -cpuprofile cpu.out).
# The rotation ledger's dynalite runs on Node 22 from node_modules.
bench: node_modules/.installed
	$(GO) build -o bin/bench ./tools/bench
	GO=$(GO) ./bin/bench $(BENCHFLAGS)

# npm packages (CDK CLI, Node 22, IAM simulator) pinned by package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# cfn-lint (a Python tool) checks the synthesized templates in make test
# (infra/cfnlint_test.go). The machine's own is used; without one, the pinned
# version is installed into a virtual environment under .cache/ (git-ignored):
# distributions' system Python refuses a global pip install (PEP 668).
CFN_LINT_VERSION := 1.51.0
cfn-lint:
	@command -v cfn-lint >/dev/null || { python3 -m venv .cache/cfn-lint && \
	  .cache/cfn-lint/bin/python -m pip install -q 'cfn-lint==$(CFN_LINT_VERSION)'; }
	@cfn-lint --version

# The infra and policy tests start jsii on Node 22 and the IAM simulator from
# node_modules, and cfn-lint.
test: lint node_modules/.installed cfn-lint
	$(GO) test -race -count=1 ./...

# cdk.out/ from the CDK app (go run ./infra), offline and without credentials.
# cdk-nag's AwsSolutions checks run inside the app; an unsuppressed error makes
# the CLI exit 1, so this target fails on it.
synth: node_modules/.installed
	npx cdk synth -q

# Deploys every stack (all Regions of -c regions=…) with the CDK CLI pinned
# in package-lock.json, never one npx would download. Needs AWS credentials
# and a bootstrapped environment (cdk bootstrap). DEPLOY_FLAGS passes CLI
# flags and context, e.g. DEPLOY_FLAGS='-c alarmEmail=oncall@example.com'.
deploy: node_modules/.installed
	cdk deploy --all $(DEPLOY_FLAGS)

# Fuzz each target for FUZZTIME (go test runs one fuzz target per invocation);
# crashers land in <pkg>/testdata/fuzz/ and become regression cases. Minimizing
# a long new input can take the fuzzer's default 60s, so it is capped.
FUZZTIME ?= 30s
FUZZFLAGS ?= -fuzzminimizetime 5s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./lambda/request/
	$(GO) test -run '^$$' -fuzz '^FuzzParseKeyRef$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./lambda/request/
	$(GO) test -run '^$$' -fuzz '^FuzzServeHTTP$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./tools/kmsemu/

clean:
	rm -rf bootstrap bin cdk.out .cache/harness
