# Two commands matter: `make run` and `make test`. Both bootstrap everything from the lock file
# on a machine that has only python3.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
HOST ?= 127.0.0.1
PORT ?= 4000
export LITELLM_LOCAL_MODEL_COST_MAP := True
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Compile .pyc at install time: with PYTHONDONTWRITEBYTECODE set (as on these machines) Python
# never caches bytecode itself, and every proxy start would recompile LiteLLM (~10 s of CPU).
export UV_COMPILE_BYTECODE ?= 1
# The system trust store (it holds this network's registry CA), also in a shell without SSL_CERT_FILE
# (UV_SYSTEM_CERTS: uv 0.13 calls the older UV_NATIVE_TLS deprecated).
export UV_SYSTEM_CERTS ?= 1

.PHONY: run test test-fast test-compat lint smoke-live bench soak doctor env node-deps system-deps codex-e2e clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# The environment is rebuilt whenever the lock file or the project metadata changes.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --extra dev --python $(PYTHON)
	@touch $@

env: $(VENV)/.synced

# .env into the shell of a recipe, under the variables the environment already sets (they win, as
# with `litellm` itself, which reads .env the same way): `LITELLM_ENABLE_CODEX_AGENT=0 make run`
# means off whatever .env says. An empty LITELLM_MASTER_KEY counts as unset (preset: the one the environment set).
LOAD_DOTENV = preset="$$LITELLM_MASTER_KEY"; saved="$$(export -p)"; set -a; if [ -f .env ]; then source .env; fi; set +a; \
	  dotkey="$$LITELLM_MASTER_KEY"; eval "$$saved"; if [ -z "$$preset" ] && [ -n "$$dotkey" ]; then export LITELLM_MASTER_KEY="$$dotkey"; fi

# The master key: LITELLM_MASTER_KEY from the environment wins; else the one in .env; else a new
# random one is written to .env (mode 600, git-ignored). Never a weak or fixed key.
run: env
	@if [ -z "$$LITELLM_MASTER_KEY" ] && ! grep -qs '^LITELLM_MASTER_KEY=' .env; then \
	  umask 077; printf 'LITELLM_MASTER_KEY=sk-%s\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(24))')" >> .env; \
	  echo "Generated a random master key in $(CURDIR)/.env (git-ignored). Use it as your Bearer token."; fi
	@$(LOAD_DOTENV); \
	  if [ -n "$$preset" ]; then where="the LITELLM_MASTER_KEY environment variable"; else where="$(CURDIR)/.env"; fi; \
	  echo "proxy_ext: serving on http://$(HOST):$(PORT) — master key in $$where"; \
	  exec $(VENV)/bin/litellm --config proxy_config.yaml --host $(HOST) --port $(PORT)

# Checks the config with the environment `make run` would give the proxy (.env included).
doctor: env
	@$(LOAD_DOTENV); \
	  exec $(VENV)/bin/proxy-ext doctor --config proxy_config.yaml

CODEX_CLI_STAMP := tests/codex_cli/node_modules/.package-lock.json
MCP_SERVER_STAMP := tests/mcp_everything/node_modules/.package-lock.json

node-deps: $(CODEX_CLI_STAMP) $(MCP_SERVER_STAMP)
	@if command -v npm >/dev/null 2>&1 && [ -f tests/node/package-lock.json ]; then \
	  (cd tests/node && npm ci --no-audit --no-fund --silent); \
	else echo "node/npm not present or no tests/node/package-lock.json: Node tests will be skipped"; fi

# The real @openai/codex CLI for tests/test_codex_cli_e2e.py (version pinned by package-lock.json).
# Re-installed only when the lock file changes; without npm the e2e test skips with a reason.
$(CODEX_CLI_STAMP): tests/codex_cli/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  (cd tests/codex_cli && npm ci --no-audit --no-fund --silent) && touch $@; \
	else echo "node/npm not present: the real codex CLI end-to-end test will be skipped"; fi

# The official MCP reference server for tests/test_mcp_tools.py (version pinned by package-lock.json).
$(MCP_SERVER_STAMP): tests/mcp_everything/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  (cd tests/mcp_everything && npm ci --no-audit --no-fund --silent) && touch $@; \
	else echo "node/npm not present: the MCP reference-server tests will be skipped"; fi

codex-e2e: env node-deps
	$(VENV)/bin/python -m pytest tests/test_codex_cli_e2e.py -q $(PYTEST_ARGS)

# bubblewrap isolates the exec tools (tools.exec.isolation) and redis-server backs the Redis run store
# and global run limit (scale.global_max_concurrent_runs) tests; Debian packages, installed here when missing and possible (root with apt-get), so those
# tests run instead of skipping.
system-deps:
	@if ! command -v bwrap >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap (exec tool isolation)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1; } || \
	      echo "bubblewrap could not be installed: the exec isolation tests will be skipped"; \
	  else echo "bwrap not found (and not root with apt-get): the exec isolation tests will be skipped"; fi; \
	fi
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (tests of the Redis run store)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1; } || \
	      echo "redis-server could not be installed: the Redis tests will be skipped"; \
	  else echo "redis-server not found (and not root with apt-get): the Redis tests will be skipped"; fi; \
	fi

# pytest exits 5 when it collects no test; that is not a failure of the suite. The suite runs on
# three pytest-xdist workers, a whole module per worker (--dist loadfile: each module's proxies still
# start once; the modules using the session-wide proxies share one worker, see tests/conftest.py): most of its time is proxies starting and waiting on timeouts and latency, so a third
# worker beats two even on two cores (6:37 vs 8:14 for the parallel part, same machine, same hour).
# Tests marked `serial` (timing-sensitive) run afterwards, alone; that run collects only the modules
# that have such tests (collecting all of them costs ~13 s of CPU). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 3
SERIAL_MODULES = $(shell grep -l 'mark\.serial' tests/test_*.py)
test: env node-deps system-deps
	@$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not serial" --durations=15 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then rc=0; fi; \
	  $(VENV)/bin/python -m pytest -m serial --durations=5 $(PYTEST_ARGS) $(SERIAL_MODULES); serial=$$?; \
	  if [ $$serial -eq 5 ]; then serial=0; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$serial

# The unit tier: no proxy subprocess, no make, no node (well under a minute). It runs on two
# xdist workers (36 s vs 50 s in one process on this 2-core machine); its one timing-sensitive
# (`serial`) test runs afterwards, alone.
TEST_FAST_WORKERS ?= 2
test-fast: env
	@$(VENV)/bin/python -m pytest -n $(TEST_FAST_WORKERS) -m "not integration and not serial" -q $(PYTEST_ARGS); rc=$$?; \
	  $(VENV)/bin/python -m pytest -m "serial and not integration" -q $(PYTEST_ARGS) $(SERIAL_MODULES); serial=$$?; \
	  if [ $$serial -eq 5 ]; then serial=0; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$serial

# ruff (bugs: pyflakes, bugbear) and mypy on the package, with the versions the lock file pins;
# both must report zero problems (settings in pyproject.toml).
lint: env
	$(VENV)/bin/ruff check proxy_ext
	$(VENV)/bin/mypy

# The durable-run soak (tests/soak_runs.py: two workers, Redis, the global limit; about a minute).
soak: env system-deps
	$(VENV)/bin/python -m tests.soak_runs $(SOAK_ARGS)

# The supported LiteLLM range (pyproject.toml): the built wheel in throwaway environments with the
# oldest, a middle and the newest supported release (tests/test_compat.py there), and one release
# below the range (the extension loads and /ready says degraded). Uses the uv cache; a few minutes.
test-compat: env
	$(VENV)/bin/python -m tests.compat_run $(COMPAT_ARGS)

# The live tier (tests/test_live.py): the key flows against real providers. Each flow runs when its
# variables are set (OPENAI_API_KEY, ANTHROPIC_API_KEY, CODEX_AGENT_API_BASE, ...) and is skipped,
# naming them, otherwise (the codex CLI flow uses the binary `make node-deps` installs, or CODEX_BIN).
# Variables may come from .env; the environment wins over it.
smoke-live: env
	@saved="$$(export -p)"; set -a; if [ -f .env ]; then source .env; fi; set +a; eval "$$saved"; \
	  $(VENV)/bin/python -m pytest tests/test_live.py --live -m live -rs $(PYTEST_ARGS)

bench: env
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache
