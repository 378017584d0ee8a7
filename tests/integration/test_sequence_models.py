"""Sequence models (the torch flavor) through a real ``sibyl serve`` and a real MLflow registry.

Toy modules that follow the contract of docs/zoo.md (tests/torch_toys.py) are registered and
served; the three protocols must carry list-valued cells to them and refuse bad histories with
a 400 in their own error shape; concurrent requests of different lengths, padded together in
one batch, must get the answers they get one at a time.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.helpers import Server, run_server, set_alias  # noqa: E402
from tests.torch_toys import N_IDS, MeanToy, TinyGRU, log_sequence_model  # noqa: E402

HISTORIES = [
    {"exercises": [3, 3, 8], "correct": [1, 0, 1], "query": 3},
    {"exercises": [12], "correct": [0], "query": 12},
    {"exercises": [1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 3, 1], "correct": [0, 1] * 6, "query": 49},
]
NATIVE = "/v1/models/kt/predict"
MLFLOW = "/v1/models/kt/invocations"
V2 = "/v2/models/kt/infer"


@dataclass
class SeqEnv:
    server: Server

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=60)


def _register(tmp: Path) -> str:
    """Register the toys in a fresh SQLite registry; the global tracking URI is restored."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        exp = mlflow.create_experiment("sequence", artifact_location=(tmp / "art").as_uri())
        for name, module in (("kt", MeanToy()), ("kt_gru", TinyGRU())):
            with mlflow.start_run(experiment_id=exp):
                set_alias(name, "production", log_sequence_model(module, name))
    finally:
        mlflow.set_tracking_uri(previous)
    return uri


@pytest.fixture(scope="session")
def seq_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeqEnv]:
    tmp = tmp_path_factory.mktemp("sequence")
    env = {
        "MLFLOW_TRACKING_URI": _register(tmp),
        "SIBYL_DATA_DIR": str(tmp / ".sibyl"),
        "SIBYL_REGISTRY__WATCH_INTERVAL_S": "5",
        # a lazy batcher, so concurrent requests are padded together in one batch
        "SIBYL_BATCHING_OVERRIDES": json.dumps({"kt_gru": {"eager": False, "max_wait_ms": 30}}),
        # the concurrent pass must reach the model (padding together), not the cache
        "SIBYL_CACHE_OVERRIDES": json.dumps({"kt_gru": {"enabled": False}}),
    }
    with run_server(env, tmp, ready_timeout=180) as server:
        yield SeqEnv(server)


def _expected(module: Any, history: dict[str, Any]) -> dict[str, np.ndarray]:
    """What the module says for one unpadded history, called directly."""
    t = {k: torch.tensor([history[k]]) for k in ("exercises", "correct")}
    with torch.inference_mode():
        out = module.eval()(**t, lengths=torch.tensor([len(history["exercises"])]),
                            query=torch.tensor([history["query"]]))
    return {k: out[k][0].numpy() for k in ("p_correct", "mastery")}


def _assert_rows(predictions: list[dict[str, Any]], module: Any = None) -> None:
    assert len(predictions) == len(HISTORIES)
    for row, history in zip(predictions, HISTORIES, strict=True):
        want = _expected(module or MeanToy(), history)
        assert set(row) == {"p_correct", "mastery"}
        assert row["p_correct"] == pytest.approx(float(want["p_correct"]), abs=1e-6)
        np.testing.assert_allclose(row["mastery"], want["mastery"], atol=1e-6)


def test_native_records_columns_and_rows_carry_histories(seq_live: SeqEnv) -> None:
    columns = {k: [h[k] for h in HISTORIES] for k in ("exercises", "correct", "query")}
    bodies = [
        {"records": HISTORIES},
        {"columns": columns},
        {"rows": [[h["query"], h["correct"], h["exercises"]] for h in HISTORIES],
         "names": ["query", "correct", "exercises"]},
    ]
    with seq_live.client() as c:
        for body in bodies:
            r = c.post(NATIVE, json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["engine"] == "pytorch" and r.headers["x-model-engine"] == "pytorch"
            _assert_rows(out["predictions"])


def test_mlflow_records_split_and_csv_carry_histories(seq_live: SeqEnv) -> None:
    names = ["exercises", "correct", "query"]
    split = {"columns": names, "data": [[h[n] for n in names] for h in HISTORIES]}
    csv = "exercises,correct,query\n" + "".join(
        f"\"{h['exercises']}\",\"{h['correct']}\",{h['query']}\n" for h in HISTORIES)
    with seq_live.client() as c:
        for body in ({"dataframe_records": HISTORIES}, {"dataframe_split": split}):
            r = c.post(MLFLOW, json=body)
            assert r.status_code == 200, r.text
            assert set(r.json()) == {"predictions"}
            _assert_rows(r.json()["predictions"])
        r = c.post(MLFLOW, content=csv.encode(), headers={"content-type": "text/csv"})
        assert r.status_code == 200, r.text
        _assert_rows(r.json()["predictions"])


def _v2_columns(histories: list[dict[str, Any]], *, ragged: bool) -> list[dict[str, Any]]:
    n = len(histories)
    inputs = []
    for col in ("exercises", "correct"):
        seqs = [h[col] for h in histories]
        if ragged:
            inputs.append({"name": col, "shape": [n], "datatype": "BYTES",
                           "data": [json.dumps(s) for s in seqs]})
        else:
            inputs.append({"name": col, "shape": [n, len(seqs[0])], "datatype": "INT64",
                           "data": seqs})
    inputs.append({"name": "query", "shape": [n, 1], "datatype": "INT64",
                   "data": [h["query"] for h in histories]})
    return inputs


def test_v2_int64_tensors_and_json_bytes_carry_histories(seq_live: SeqEnv) -> None:
    equal = [HISTORIES[0], {**HISTORIES[0], "exercises": [9, 9, 9], "query": 9}]
    with seq_live.client() as c:
        r = c.post(V2, json={"id": "s-1", "parameters": {"content_type": "pd"},
                             "inputs": _v2_columns(HISTORIES, ragged=True)})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["id"] == "s-1" and out["parameters"]["engine"] == "pytorch"
        by_name = {o["name"]: o for o in out["outputs"]}
        assert list(by_name) == ["p_correct", "mastery"]
        assert by_name["p_correct"]["shape"] == [3] and by_name["p_correct"]["datatype"] == "FP32"
        assert by_name["mastery"]["shape"] == [3, N_IDS]
        rows = [{"p_correct": p, "mastery": m} for p, m in zip(
            by_name["p_correct"]["data"],
            np.reshape(by_name["mastery"]["data"], (3, N_IDS)), strict=True)]
        _assert_rows(rows)
        r = c.post(V2, json={"inputs": _v2_columns(equal, ragged=False),
                             "outputs": [{"name": "mastery"}]})
        assert r.status_code == 200, r.text
        (mastery,) = r.json()["outputs"]
        assert mastery["name"] == "mastery" and mastery["shape"] == [2, N_IDS]
        want = _expected(MeanToy(), equal[1])["mastery"]
        np.testing.assert_allclose(np.reshape(mastery["data"], (2, N_IDS))[1], want, atol=1e-6)
        r = c.post(V2, json={"inputs": _v2_columns(equal, ragged=False),
                             "outputs": [{"name": "predict_proba"}]})
        assert r.status_code == 400 and "available: ['p_correct', 'mastery']" in r.json()["error"]
        ragged = _v2_columns(HISTORIES[:2], ragged=False)
        ragged[0] = {**ragged[0], "data": [[3, 3, 8], [12, 0]]}
        r = c.post(V2, json={"inputs": ragged})
        assert r.status_code == 400 and "as BYTES JSON strings" in r.json()["error"], r.text


def test_v2_metadata_and_model_status_describe_the_sequence_model(seq_live: SeqEnv) -> None:
    with seq_live.client() as c:
        meta = c.get("/v2/models/kt").json()
        status = c.get("/v1/models/kt").json()
    assert meta["platform"] == "sibyl-pytorch"
    assert meta["inputs"] == [
        {"name": "exercises", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "correct", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "query", "datatype": "INT64", "shape": [-1]},
    ]
    assert meta["outputs"] == [
        {"name": "p_correct", "datatype": "FP32", "shape": [-1]},
        {"name": "mastery", "datatype": "FP32", "shape": [-1, N_IDS]},
    ]
    (loaded,) = status["loaded"]
    assert loaded["engine"] == "pytorch" and loaded["flavor"] == "pytorch"
    assert "torch" in loaded["engine_reason"] and "inference_mode" in loaded["engine_reason"]


GOOD = HISTORIES[0]
# (case, bad history, the field the error names, words it must contain)
BAD = [
    ("id out of range", {**GOOD, "exercises": [3, 57, 8]}, "exercises[1]",
     "exercises id 57 is outside 0..49"),
    ("answer out of range", {**GOOD, "correct": [1, 3, 1]}, "correct[1]", "outside 0..1"),
    ("empty history", {**GOOD, "exercises": [], "correct": []}, "exercises", "is empty"),
    ("unequal lengths", {**GOOD, "correct": [1, 0]}, None, "must have equal lengths"),
    ("too long", {**GOOD, "exercises": [1] * 21, "correct": [1] * 21}, "exercises",
     "the maximum is 20"),
    ("query out of range", {**GOOD, "query": 50}, "query", "outside the allowed ids 0..49"),
    ("boolean id", {**GOOD, "correct": [True, False, True]}, "correct[0]", "booleans are not ids"),
    ("fractional id", {**GOOD, "exercises": [3, 3.5, 8]}, "exercises[1]", "float → int"),
    ("not a list", {**GOOD, "exercises": 3}, "exercises", "expected a list of integers"),
]


@pytest.mark.parametrize(("case", "history", "field", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_histories_are_400_in_every_protocol(seq_live: SeqEnv, case: str,
                                                 history: dict[str, Any], field: str | None,
                                                 words: str) -> None:
    names = ["exercises", "correct", "query"]
    with seq_live.client() as c:
        r = c.post(NATIVE, json={"records": [history]})
        assert r.status_code == 400, r.text
        assert words in r.json()["error"] and r.json()["code"], r.json()
        if field is not None:
            assert f"'records[0].{field}" in r.json()["error"]
        for body in ({"dataframe_records": [history]},
                     {"dataframe_split": {"columns": names, "data": [[history[n] for n in names]]}}):
            r = c.post(MLFLOW, json=body)
            assert r.status_code == 400, r.text
            out = r.json()
            assert out["error_code"] == "BAD_REQUEST" and words in out["message"], out
        inputs = _v2_columns([history], ragged=True) if isinstance(history["exercises"], list) \
            else [{"name": "exercises", "shape": [1], "datatype": "INT64", "data": [3]},
                  *_v2_columns([history], ragged=True)[1:]]
        r = c.post(V2, json={"inputs": inputs})
        assert r.status_code == 400, r.text
        assert set(r.json()) == {"error"} and words in r.json()["error"], r.json()
        if field is not None:
            base = field.split("[")[0]
            assert re.search(rf"'inputs\.{base}\[0\]", r.json()["error"]), r.json()


def test_concurrent_histories_padded_together_get_the_one_at_a_time_answers(
        seq_live: SeqEnv) -> None:
    rng = np.random.default_rng(7)
    histories = []
    for i in range(40):
        length = int(rng.integers(1, 21))
        histories.append({"exercises": rng.integers(0, N_IDS, length).tolist(),
                          "correct": rng.integers(0, 2, length).tolist(), "query": i % N_IDS})
    path = "/v1/models/kt_gru/predict"
    with seq_live.client() as c:
        alone = [c.post(path, json={"records": [h]}).json()["predictions"][0] for h in histories]
        before = _batch_stats(c)

    async def together() -> list[Any]:
        async with httpx.AsyncClient(base_url=seq_live.server.url, timeout=60) as ac:
            rs = await asyncio.gather(*(ac.post(path, json={"records": [h]}) for h in histories))
        return [r.json()["predictions"][0] for r in rs]

    batched = asyncio.run(together())
    with seq_live.client() as c:
        after = _batch_stats(c)
    batches, rows = after[0] - before[0], after[1] - before[1]
    assert rows == len(histories) and batches < len(histories), (batches, rows)  # real batches
    for one, many, h in zip(alone, batched, histories, strict=True):
        want = _expected(TinyGRU(), h)
        assert many["p_correct"] == pytest.approx(one["p_correct"], abs=1e-6)
        np.testing.assert_allclose(many["mastery"], one["mastery"], atol=1e-6)
        np.testing.assert_allclose(one["mastery"], want["mastery"], atol=1e-5)


def _batch_stats(c: httpx.Client) -> tuple[float, float]:
    """(batches, rows) the kt_gru version has run, from the Prometheus batch-size histogram."""
    text = c.get("/metrics").text
    count = re.search(r'ml_batch_size_count\{[^}]*model="kt_gru"[^}]*\} (\S+)', text)
    total = re.search(r'ml_batch_size_sum\{[^}]*model="kt_gru"[^}]*\} (\S+)', text)
    assert count and total, "ml_batch_size for kt_gru not in /metrics"
    return float(count.group(1)), float(total.group(1))
