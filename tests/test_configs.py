"""Every config dataclass declares its constraints in field metadata and reports a bad value in one shape:
"The '<field>' parameter of <Config> must be <what it accepts>. Got <value> instead." (lumos.core.validation)."""

from __future__ import annotations

import dataclasses
import importlib
import re

import pytest

from lumos.core.errors import LumosError

CONFIGS = ["lumos.rl.config:RLConfig", "lumos.rl.config:DataConfig", "lumos.rl.config:ModelOptions",
           "lumos.rl.sft:SFTConfig", "lumos.models.minimax.config:MiniMaxConfig", "lumos.sandbox.limits:SandboxLimits",
           "lumos.studies.rl_study:StudyConfig", "lumos.studies.selection_study:SelectionStudyConfig",
           "lumos.vision.models:VisionConfig", "lumos.vision.train:TrainConfig"]


def _load(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("spec", CONFIGS)
def test_every_field_is_declared_and_a_bad_value_reads_the_same(spec):
    cls = _load(spec)
    cls()                                                   # the defaults are valid
    fields = [f for f in dataclasses.fields(cls) if f.init]
    undeclared = [f.name for f in fields if not f.metadata.get("constraints") and f.metadata.get("cli", True)
                  and f.default is not dataclasses.MISSING and not isinstance(f.default, (dict, list))]
    assert not undeclared, f"{cls.__name__}: fields without declared constraints: {undeclared}"
    declared = [f for f in fields if f.metadata.get("constraints")]
    assert declared
    for f in declared:
        with pytest.raises(LumosError) as err:
            cls(**{f.name: object()})
        msg = str(err.value)
        assert re.fullmatch(rf"The '{f.name}' parameter of {cls.__name__} must be .+\. Got <object object at "
                            r"0x[0-9a-f]+> instead\..*", msg), msg
        assert "\n" not in msg
