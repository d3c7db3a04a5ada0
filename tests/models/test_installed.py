"""installed_model: map a recorded model id back to a local model directory."""
from __future__ import annotations

import pytest

from vidsearch.demo.models import tiny_random_model
from vidsearch.errors import ModelError, UserError
from vidsearch.models.installed import installed_model


def test_finds_the_installed_model_by_id(colour, tiny):
    assert installed_model(colour.model_id).path == colour.path
    assert installed_model(tiny.model_id, "tiny-random").path == tiny.path


def test_a_requested_model_must_be_that_model_unless_only_preferred(colour, tiny):
    with pytest.raises(UserError, match="is not the model these results came from"):
        installed_model(colour.model_id, "tiny-random")
    # a worker's VIDSEARCH_MODEL is only preferred: another installed copy serves
    assert installed_model(colour.model_id, "tiny-random", strict=False).path == colour.path


def test_a_missing_model_is_one_line_naming_what_is_installed(colour, tmp_path):
    other = tiny_random_model(tmp_path / "elsewhere")
    with pytest.raises(ModelError) as e:
        installed_model(other.model_id)
    msg = str(e.value)
    assert "\n" not in msg and other.model_id in msg and colour.model_id in msg and "--model DIR" in msg
    with pytest.raises(ModelError, match="re-run the ingest$"):
        installed_model(other.model_id, hint="copy it there and re-run the ingest")
    assert installed_model(other.model_id, str(other.path)).model_id == other.model_id
