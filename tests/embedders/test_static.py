"""The default embedder: the static model shipped with memlane, distilled from the bundled
MiniLM, loaded with no torch and no network."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from memlane.embedders.static import StaticEmbedder
from memlane.models import STATIC_MODEL_DIR, provenance

NO_TORCH = """
import json, sys
from memlane import Memory
with Memory({"vector_store": {"provider": "sqlite", "config": {"path": sys.argv[1]}}}) as m:
    m.add(["Is allergic to cheese", "Lives in San Francisco"], user_id="alice", infer=False)
    top = m.search("dairy allergy", user_id="alice", limit=1)["results"][0]["memory"]
    print(json.dumps({"top": top, "torch": "torch" in sys.modules, "model": m.embedder.model_id}))
"""


def test_the_shipped_model_says_where_it_came_from() -> None:
    record = provenance(STATIC_MODEL_DIR)
    assert record is not None, "run `memlane models build` (make model) to create the shipped model"
    assert record["teacher"] == "sentence-transformers/all-MiniLM-L6-v2" and record["licence"].startswith("Apache-2.0")
    assert record["command"].startswith("memlane models build") and record["pca_dims"] == 256
    size = sum(f.stat().st_size for f in STATIC_MODEL_DIR.iterdir())
    assert size < 20 * 1024 * 1024, f"the shipped model is {size / 1e6:.1f} MB"


def test_the_default_engine_runs_without_torch(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", NO_TORCH, str(tmp_path / "m.db")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {"top": "Is allergic to cheese", "torch": False, "model": provenance(STATIC_MODEL_DIR)["name"]}


def test_vectors_are_unit_length_deterministic_and_fast() -> None:
    embedder = StaticEmbedder()
    vectors = embedder.embed(["I love Indian food", "I love Indian food", ""])
    assert vectors.shape == (3, embedder.dims) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5) and np.array_equal(vectors[0], vectors[1])
    food, city = embedder.embed(["Loves curry and spicy dishes", "Moved to Lisbon last spring"])
    query = embedder.embed(["What food does she like?"])[0]
    assert float(query @ food) > float(query @ city)
    started = time.perf_counter()
    for _ in range(200):
        embedder.embed(["Suggest dinner options in San Francisco."])
    assert (time.perf_counter() - started) / 200 < 0.005, "a query embedding should take well under a millisecond"


def test_many_threads_can_embed_at_once() -> None:
    """The Rust tokenizer refuses concurrent use of one instance ("Already borrowed"); the
    embedder serialises its calls, so chats and learner threads can embed together."""
    from tests.threads import run_in_threads

    embedder = StaticEmbedder()

    def work() -> None:
        for i in range(200):
            embedder.embed([f"Suggest dinner options in San Francisco {i}", "I love Indian food " * (i % 7)])

    assert run_in_threads(work, 8, 60) == []
