"""The checkpoint format is a promise: models saved by an earlier natgrad (``tests/fixtures``, one per policy kind,
made by ``python tests/behaviour.py fixtures``) load and predict the actions they predicted when saved."""

from __future__ import annotations

import json

import numpy as np
import pytest
from behaviour import FIXTURES, KINDS, predictions

import natgrad

EXPECTED = json.loads((FIXTURES / "predictions.json").read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_a_saved_model_of_each_kind_loads_and_predicts_as_it_did(kind):
    model = natgrad.load(FIXTURES / f"{kind}.pt", predict_only=True, device="cpu")  # the actions were CPU numbers
    got, want = np.asarray(predictions(model, EXPECTED[kind])), np.asarray(EXPECTED[kind]["actions"])
    if np.issubdtype(want.dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)
    assert model.env is None and model.env_id == KINDS[kind][0]  # the file's env is kept by name, not made
