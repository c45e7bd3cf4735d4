"""core/registry.py: one registry class, one "unknown name" error shape for every registry of lumos."""

import re

import pytest

from lumos.core.errors import LumosError, LumosTypeError
from lumos.core.registry import Registry

#: The one shape: "The '<param>' parameter must be one of the registered <kind>s: a, b. Got 'x' instead." and,
#: when a registered name is close, " Did you mean 'a'?"
SHAPE = re.compile(r"^The '(?P<param>[\w ]+)' parameter must be one of the registered (?P<kind>[\w -]+)s: "
                   r"(?P<names>.+)\. Got (?P<got>.+) instead\.( Did you mean (?P<close>.+)\?)?$")


def _all_registries():
    from lumos.cli.main import COMMANDS
    from lumos.explain import METHODS
    from lumos.explain.targets import TARGETS
    from lumos.rl.objectives import LOSSES
    from lumos.rl.tasks import TASKS
    from lumos.studies.demo import SECTIONS, registered_sections
    from lumos.valuation.baselines import REGISTRY
    from lumos.valuation.selection_baselines import SELECTORS

    registered_sections()  # imports the section modules
    return {"objectives": LOSSES, "tasks": TASKS, "cam methods": METHODS, "cam targets": TARGETS,
            "valuers": REGISTRY, "selectors": SELECTORS, "demo sections": SECTIONS, "commands": COMMANDS}


REGISTRIES = _all_registries()


@pytest.mark.parametrize("which", sorted(REGISTRIES))
def test_every_registry_gives_one_error_shape(which):
    reg = REGISTRIES[which]
    assert isinstance(reg, Registry) and len(reg) >= 2
    with pytest.raises(LumosError) as exc:
        reg.get("zzz-no-such-name")
    m = SHAPE.match(str(exc.value))
    assert m, str(exc.value)
    assert m["names"] == ", ".join(reg.names()) and m["got"] == "'zzz-no-such-name'" and m["close"] is None
    # a near miss of a registered name is suggested
    name = reg.names()[0]
    typo = name[:-1] + ("x" if name[-1] != "x" else "y")
    if typo not in reg:
        with pytest.raises(LumosError) as exc:
            reg.get(typo)
        m = SHAPE.match(str(exc.value))
        assert m and repr(reg.resolve(name)) in m["close"], str(exc.value)
    # a non-string name is a type error of the same shape
    with pytest.raises(LumosTypeError) as exc:
        reg.get(42)
    assert SHAPE.match(str(exc.value)), str(exc.value)


@pytest.mark.parametrize("which", sorted(REGISTRIES))
def test_every_registry_refuses_to_replace_silently_and_checks_types(which):
    reg = REGISTRIES[which]
    name = reg.names()[0]
    before = reg.get(name)
    with pytest.raises(LumosError, match="already registered"):
        reg.register(name, before)
    assert reg.get(name) is before
    with pytest.raises(LumosTypeError, match="non-empty string"):
        reg.register(123, before)
    with reg.scope():
        with pytest.raises(LumosTypeError):
            reg.register("zz-bad-object", 42 if which == "commands" else object())
        assert "zz-bad-object" not in reg
        reg.register("zz-new", before)
        assert "zz-new" in reg
    assert "zz-new" not in reg and reg.get(name) is before


def test_register_get_aliases_metadata_and_order():
    reg: Registry = Registry("widget", param="kind", expects=callable, case_insensitive=True)

    @reg.register("b-one", aliases=("bee",), size=2)
    def b():
        return "b"

    reg.register("a-two", len, size=1)
    assert reg.names() == ["b-one", "a-two"]  # registration order
    assert reg.get("BEE") is b and reg.resolve(" Bee ") == "b-one" and reg["a-two"] is len
    assert reg.entry("b-one").meta == {"size": 2} and reg.entry("bee").aliases == ("bee",)
    assert "bee" in reg and 3 not in reg and list(reg) == ["b-one", "a-two"]
    with pytest.raises(LumosError, match="already registered"):
        reg.register("other", len, aliases=("bee",))  # an alias is a name too
    reg.register("b-one", len, replace=True)
    assert reg.get("b-one") is len and "bee" not in reg
    reg.unregister("a-two")
    assert reg.names() == ["b-one"]
    with pytest.raises(LumosError, match="'kind' parameter must be one of the registered widgets"):
        reg.unregister("a-two")
    reg.unregister("a-two", missing_ok=True)


def test_typed_registry_and_empty_registry_message():
    reg: Registry = Registry("number", expects=int)
    with pytest.raises(LumosTypeError, match="must be an instance of int. Got str instead"):
        reg.register("x", "1")
    with pytest.raises(LumosError, match=r"registered numbers: \(none registered\)\. Got 'x' instead\.$"):
        reg.get("x")


def test_register_loss_refuses_replacing_a_builtin_and_non_callables():
    """issue 27: register_loss("cispo", ...) replaced the built-in; (42) and (123, ...) broke available_losses."""
    from lumos.rl import objectives

    before = objectives.get_loss("cispo")
    with pytest.raises(LumosError, match="objective named 'cispo' is already registered"):
        objectives.register_loss("cispo", help="mine")(lambda *a, **k: None)
    assert objectives.get_loss("cispo") is before
    with pytest.raises(LumosTypeError, match="must be a callable. Got int instead"):
        objectives.register_loss("zz-int", help="x")(42)
    with pytest.raises(LumosTypeError, match="non-empty string"):
        objectives.register_loss(123, help="x")
    assert "zz-int" not in objectives.available_losses() and all(isinstance(n, str) for n in objectives.available_losses())
    with objectives.LOSSES.scope():
        objectives.register_loss("cispo", help="mine", replace=True)(objectives.grpo_loss)
        assert objectives.get_objective("cispo").help == "mine"
    assert objectives.get_loss("cispo") is before


def test_make_selector_builds_each_registered_selector_with_its_options():
    import torch
    from torch.utils.data import TensorDataset

    from lumos.valuation.selection_baselines import SELECTORS, make_selector

    ds = TensorDataset(torch.randn(20, 3), torch.randint(0, 2, (20,)))
    for name in SELECTORS:
        sel = make_selector(name, ds, fraction=0.5, select_every=2, val_dataset=ds, batch_size=4, eta=0.1, lam=0.0)
        assert type(sel) is SELECTORS.get(name)
        for opt in SELECTORS.entry(name).meta["options"]:
            assert getattr(sel, opt) is {"batch_size": 4, "val_dataset": ds, "eta": 0.1, "lam": 0.0}[opt] or \
                getattr(sel, opt) == {"batch_size": 4, "eta": 0.1, "lam": 0.0}.get(opt)
