"""The torch flavor: padding, outputs, loading through a real MLflow registry, missing torch."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from sibyl.errors import (  # noqa: E402
    InvalidInputError,
    MissingExtraError,
    ModelLoadError,
    PredictionError,
)
from sibyl.runtime import (  # noqa: E402
    Engine,
    InputSchema,
    LoadedModel,
    Prediction,
    TorchPredictor,
    load_model,
)
from sibyl.runtime._torch import import_torch, pad  # noqa: E402
from sibyl.settings import RuntimeSettings  # noqa: E402
from tests.torch_toys import (  # noqa: E402
    SEQUENCE_META,
    LastToy,
    LinearToy,
    MeanToy,
    TinyGRU,
    example_frame,
    log_sequence_model,
)

SHORT = {"exercises": [3, 3, 8], "correct": [1, 0, 1], "query": 3}
LONG = {"exercises": [1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 3, 1], "correct": [0, 1] * 6, "query": 8}


def _schema(meta: dict[str, Any] | None = None) -> InputSchema:
    from mlflow.models import infer_signature

    sig = infer_signature(example_frame(), pd.DataFrame({"p": [0.1, 0.2, 0.3]}))
    return InputSchema.from_signature(sig, sequence_metadata=meta or SEQUENCE_META)


def _predictor(module: Any, schema: InputSchema) -> TorchPredictor:
    assert schema.sequence is not None
    return TorchPredictor(module.eval(), columns=schema.columns, outputs=schema.sequence.outputs)


def _predict(p: TorchPredictor, schema: InputSchema, *records: dict[str, Any]) -> Prediction:
    return p.predict(schema.from_records(list(records)))


def test_pad_right_pads_with_zero_and_gives_true_lengths() -> None:
    padded, lengths = pad([[5, 6, 7], [9], [1, 2]])
    assert padded.dtype == lengths.dtype == np.int64
    assert padded.tolist() == [[5, 6, 7], [9, 0, 0], [1, 2, 0]]
    assert lengths.tolist() == [3, 1, 2]


@pytest.mark.parametrize("module", [MeanToy(), TinyGRU(), LastToy()],
                         ids=["mean", "gru", "last"])
def test_a_row_predicts_the_same_alone_and_padded_in_a_batch(module: Any) -> None:
    meta = SEQUENCE_META if not isinstance(module, LastToy) else {**SEQUENCE_META,
                                                                  "outputs": ["last"]}
    schema = _schema(meta)
    p = _predictor(module, schema)
    alone = _predict(p, schema, SHORT)
    batched = _predict(p, schema, LONG, SHORT, LONG)
    assert alone.outputs is not None and batched.outputs is not None
    for name, values in alone.outputs.items():
        np.testing.assert_allclose(batched.outputs[name][1], values[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(batched.outputs[name][0], batched.outputs[name][2])


def test_outputs_become_one_object_per_row_and_named_arrays() -> None:
    schema = _schema()
    pred = _predict(_predictor(MeanToy(), schema), schema, SHORT, LONG)
    assert pred.outputs is not None and list(pred.outputs) == ["p_correct", "mastery"]  # no "unused"
    assert pred.outputs["p_correct"].shape == (2,) and pred.outputs["mastery"].shape == (2, 50)
    first = pred.predictions[0]
    assert set(first) == {"p_correct", "mastery"}
    assert first["p_correct"] == pytest.approx(2 / 3)
    assert first["mastery"][3] == pytest.approx(0.5) and first["mastery"][8] == pytest.approx(1.0)
    assert first["mastery"][0] == pytest.approx(0.5)  # never seen
    part = pred.slice(1, 2)
    assert part.outputs is not None and part.outputs["mastery"].shape == (1, 50)
    assert part.predictions[0]["p_correct"] == pytest.approx(0.5)


def test_a_single_output_gives_plain_values() -> None:
    schema = _schema({**SEQUENCE_META, "outputs": ["last"]})
    pred = _predict(_predictor(LastToy(), schema), schema, SHORT, LONG)
    assert pred.predictions.tolist() == [1.0, 1.0]
    assert pred.outputs is not None and list(pred.outputs) == ["last"]


def test_outputs_the_metadata_names_must_be_returned() -> None:
    schema = _schema({**SEQUENCE_META, "outputs": ["p_correct", "risk"]})
    with pytest.raises(PredictionError, match=r"missing \['risk'\]"):
        _predict(_predictor(MeanToy(), schema), schema, SHORT)


class _WrongRows(torch.nn.Module):  # type: ignore[misc]
    def forward(self, **kwargs: Any) -> dict[str, Any]:
        return {"p_correct": torch.zeros(1)}


def test_an_output_without_one_row_per_input_is_a_prediction_error() -> None:
    schema = _schema({**SEQUENCE_META, "outputs": ["p_correct"]})
    with pytest.raises(PredictionError, match="first dimension 1 for 2 input rows"):
        _predict(_predictor(_WrongRows(), schema), schema, SHORT, LONG)


def test_describe_outputs_before_and_after_the_first_call() -> None:
    schema = _schema()
    p = _predictor(MeanToy(), schema)
    assert [o["name"] for o in p.describe_outputs()] == ["p_correct", "mastery"]
    _predict(p, schema, SHORT)
    assert p.describe_outputs() == [
        {"name": "p_correct", "datatype": "FP32", "shape": [-1]},
        {"name": "mastery", "datatype": "FP32", "shape": [-1, 50]},
    ]


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"sibyl\[torch\]"):
        import_torch()


# -- through MLflow --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temp SQLite registry holding the toy; yields the downloaded version 1 directory."""
    import mlflow

    tmp = tmp_path_factory.mktemp("torch-registry")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    try:
        exp = mlflow.create_experiment("torch", artifact_location=(tmp / "art").as_uri())
        with mlflow.start_run(experiment_id=exp):
            assert log_sequence_model(MeanToy(), "kt") == "1"
        yield Path(mlflow.artifacts.download_artifacts("models:/kt/1", dst_path=str(tmp / "dl")))
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    yield
    torch.set_num_threads(1)


def _load(path: Path, **settings: Any) -> LoadedModel:
    return load_model(path, name="kt", version="1", settings=RuntimeSettings(**settings))


def test_loads_from_the_registry_and_serves_the_contract(registry: Path,
                                                         one_torch_thread: None) -> None:
    loaded = _load(registry, inference_threads=2)
    torch.set_num_threads(1)
    loaded.predict(loaded.schema.from_records([SHORT]))
    assert torch.get_num_threads() == 2  # set in the thread that predicts
    assert (loaded.flavor, loaded.engine.engine) == ("pytorch", Engine.TORCH)
    assert "eager module under inference_mode, 2 intra-op" in loaded.engine.reason
    assert "no ONNX converter" in loaded.engine.reason
    assert loaded.output_names == ("p_correct", "mastery")
    assert isinstance(loaded.input_example, pd.DataFrame) and len(loaded.input_example) == 3
    assert isinstance(loaded.predictor, TorchPredictor)
    assert loaded.predictor.describe_outputs()[1]["shape"] == [-1, 50]  # warmed on the example
    assert not loaded.predictor.module.training
    batch = loaded.schema.from_records([SHORT, LONG])
    pred = loaded.predict(batch)
    assert pred.predictions[0]["p_correct"] == pytest.approx(2 / 3)
    with pytest.raises(InvalidInputError, match=r"exercises id 77 is outside 0\.\.49"):
        loaded.schema.from_records([{**SHORT, "exercises": [1, 2, 77]}])


def test_without_an_input_example_warm_up_uses_a_minimal_row(tmp_path: Path) -> None:
    import mlflow.pytorch
    from mlflow.models import infer_signature

    sig = infer_signature(example_frame(), pd.DataFrame({"p": [0.1, 0.2, 0.3]}))
    mlflow.pytorch.save_model(MeanToy(), tmp_path / "m", signature=sig,
                              serialization_format="pickle", pip_requirements=["torch"],
                              metadata={"sibyl": {"sequence": SEQUENCE_META}})
    loaded = _load(tmp_path / "m")
    assert loaded.input_example is None
    assert isinstance(loaded.predictor, TorchPredictor)
    assert loaded.predictor.describe_outputs()[1]["shape"] == [-1, 50]


def test_metadata_contradicting_the_signature_fails_the_load(tmp_path: Path) -> None:
    path = log_sequence_model(MeanToy(), "x", path=str(tmp_path / "m"),
                              meta={**SEQUENCE_META, "columns": ["exercises"]})
    with pytest.raises(ModelLoadError, match=r"sequence metadata failed.*must name exactly"):
        _load(Path(path))


def test_a_missing_torch_fails_the_load_naming_the_pip_command(
        registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModelLoadError, match=r"pip install torch==2\.13\.0") as err:
        _load(registry)
    assert "MissingExtraError" in str(err.value) and "sibyl[torch]" in str(err.value)


def test_a_tensor_signature_module_gets_a_float32_tensor(tmp_path: Path) -> None:
    import mlflow.pytorch
    from mlflow.models import infer_signature

    module = LinearToy()
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    want = module(torch.from_numpy(x)).detach().numpy()
    mlflow.pytorch.save_model(module, tmp_path / "lin", signature=infer_signature(x, want),
                              input_example=x, pip_requirements=["torch"])  # pt2 (exported)
    loaded = _load(tmp_path / "lin")
    assert loaded.engine.engine is Engine.TORCH and loaded.schema.numeric
    assert "exported (pt2) program" in loaded.engine.reason
    pred = loaded.predict(loaded.schema.from_rows(x.astype(np.float64).tolist()))
    assert pred.outputs is None
    np.testing.assert_allclose(pred.predictions, want, rtol=1e-5, atol=1e-6)
    assert isinstance(loaded.predictor, TorchPredictor)
    assert loaded.predictor.describe_outputs() == [
        {"name": "predict", "datatype": "FP32", "shape": [-1, 2]}]


class _Scaled(torch.nn.Module):  # type: ignore[misc]
    def forward(self, a: Any, n: Any) -> dict[str, Any]:
        assert a.dtype == torch.float32 and n.dtype == torch.int64
        return {"y": a * n}


def test_a_numeric_column_module_gets_one_tensor_per_column() -> None:
    x = pd.DataFrame({"a": [0.5, 1.5], "n": [2, 3]})
    from mlflow.models import infer_signature

    schema = InputSchema.from_signature(infer_signature(x))
    p = TorchPredictor(_Scaled(), columns=schema.columns)
    pred = p.predict(schema.from_records(x.to_dict("records")))
    assert pred.predictions.tolist() == [1.0, 4.5]
