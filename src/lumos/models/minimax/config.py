"""``MiniMaxConfig``: one dataclass for MiniMax's release ``config.json`` and transformers' ``minimax`` one.

Field names are the release ones (``attn_type_list``, ``layernorm_*_alpha``, ``rotary_dim``, ...).
:meth:`MiniMaxConfig.from_json` reads either format; :meth:`MiniMaxConfig.to_json` writes either. Every
problem in a config (unknown field, wrong type, contradictory values) is collected and reported in one
:class:`~lumos.core.errors.LumosError`.

Format differences handled here (see ``shared/reference/minimax-m1.md`` §1.3, §2):

* layer pattern: release ``attn_type_list`` (0 = lightning, 1 = softmax) ↔ transformers ``layer_types``
  (``"linear_attention"`` / ``"full_attention"``);
* residual factors: ``layernorm_{full_attention,linear_attention,mlp}_{alpha,beta}`` ↔
  ``{full_attn,linear_attn,mlp}_{alpha,beta}_factor``; transformers always uses the post-norm form;
* partial RoPE: release ``rotary_dim`` (NeoX rotate-half on the first ``rotary_dim`` dims, inverse
  frequencies over ``rotary_dim``) ↔ transformers ``rope_parameters`` with ``rope_type: "proportional"``
  and ``partial_rotary_factor`` (rotate-half pairs (i, i + head_dim/2), frequencies over ``head_dim``).
  The two are the same function up to a permutation of the q/k head dimensions and
  ``theta_tf = theta ** (head_dim / rotary_dim)``; ``lumos.models.minimax.convert`` permutes the q/k rows.
* lightning decay slopes: the release code uses rate = s_h·(1 − l/(L−1) + 1e−5), transformers
  1 − l/(L−1+1e−5) + 1e−5. ``lightning_slope_variant`` selects the formula: configs read from the
  transformers format default to ``"transformers"`` (so logits equal transformers'), release configs to
  ``"release"``. lumos writes the field into both formats so a round trip keeps it; transformers ignores it
  (the two formulas differ by < 1e−5 relative in the decay rate).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumos.core.errors import LumosError
from lumos.core.io import atomic_write_json, read_json
from lumos.core.validation import (
    POSITIVE,
    POSITIVE_INT,
    Boolean,
    Constraint,
    InstanceOf,
    Interval,
    Options,
    Problems,
    Satisfies,
    constraint,
    is_int,
    is_real,
)

__all__ = ["MiniMaxConfig", "CONFIG_FORMATS", "is_minimax_model_type"]

CONFIG_FORMATS = ("minimax_m1", "transformers")
_RELEASE_MODEL_TYPES = ("minimax_m1", "minimax_text_01", "MiniMaxM1", "MiniMaxText01")
_SLOPE_VARIANTS = ("release", "transformers")

#: Bookkeeping fields written by the two codes that carry no model meaning; accepted and dropped.
_IGNORED = frozenset({
    "architectures", "auto_map", "model_type", "torch_dtype", "dtype", "transformers_version", "use_cache",
    "output_router_logits", "_name_or_path", "return_dict", "output_hidden_states", "output_attentions",
    "torchscript", "id2label", "label2id", "problem_type", "tokenizer_class", "is_encoder_decoder",
    "chunk_size_feed_forward", "sliding_window",
})

_FACTOR_NAMES = {  # release name -> transformers name
    "layernorm_full_attention_alpha": "full_attn_alpha_factor",
    "layernorm_full_attention_beta": "full_attn_beta_factor",
    "layernorm_linear_attention_alpha": "linear_attn_alpha_factor",
    "layernorm_linear_attention_beta": "linear_attn_beta_factor",
    "layernorm_mlp_alpha": "mlp_alpha_factor",
    "layernorm_mlp_beta": "mlp_beta_factor",
}
_LAYER_TYPE_NAMES = {0: "linear_attention", 1: "full_attention"}


_is_int = is_int
_is_num = is_real
_TORCH_DTYPES = ("float32", "float16", "bfloat16", "float64")
_FINITE = Interval(float, None, None)
_TOKEN = Interval(int, 0, None, closed="left")
_LAYER_LIST = Satisfies(lambda v: isinstance(v, list) and all(is_int(t) and t in (0, 1) for t in v),
                        "a list of 0 (lightning) / 1 (softmax), one per layer")


def _f(default: Any, *accepted: Constraint | None, help: str | None = None) -> Any:
    return dataclasses.field(default=default, metadata=constraint(*accepted, help=help))


#: the fields whose None default ``MiniMaxConfig.__post_init__`` derives from others
_DERIVED = ("head_dim", "rotary_dim", "attn_type_list", "layernorm_full_attention_alpha",
            "layernorm_linear_attention_alpha", "layernorm_mlp_alpha")


@dataclass
class MiniMaxConfig:
    """Configuration of the MiniMax-M1 hybrid MoE language model (release field names; small defaults).

    The defaults describe a tiny model that uses the built-in :class:`~lumos.models.tokenizer.ByteTokenizer`
    (vocab 259, pad 256, bos 257, eos 258). The released MiniMax-M1 uses hidden 6144, 80 layers, 64 heads of
    128, 8 KV heads, 32 experts of 9216, top-2, ``rotary_dim`` 64, ``rope_theta`` 1e7 (reference §2.1).

    ``attn_type_list`` (0 = lightning, 1 = softmax) defaults to MiniMax-M1's 7:1 pattern: softmax at every
    8th layer (l = 7, 15, ...), and in the last layer when there are fewer than 8. ``layernorm_*_alpha``
    default to the DeepNorm value (2·num_hidden_layers)^(1/4), as in the release (3.5566 for 80 layers).

    ``head_dim``, ``rotary_dim``, ``attn_type_list`` and the three ``layernorm_*_alpha`` may be passed as None
    (their default): ``__post_init__`` derives them, so on a built config they always hold the type annotated.
    """

    vocab_size: int = _f(259, POSITIVE_INT)
    hidden_size: int = _f(64, POSITIVE_INT)
    num_hidden_layers: int = _f(4, POSITIVE_INT)
    num_attention_heads: int = _f(4, POSITIVE_INT)
    head_dim: int = _f(None, POSITIVE_INT, help="per-head width (default: hidden // heads)")
    num_key_value_heads: int = _f(2, POSITIVE_INT)
    intermediate_size: int = _f(128, POSITIVE_INT)
    num_local_experts: int = _f(4, POSITIVE_INT)
    num_experts_per_tok: int = _f(2, POSITIVE_INT)
    attn_type_list: list[int] = _f(None, _LAYER_LIST,
                                          help="per layer 0 (lightning) / 1 (softmax); default: MiniMax-M1's 7:1")
    rotary_dim: int = _f(None, POSITIVE_INT, help="head dims RoPE rotates (default: head_dim // 2)")
    rope_theta: float = _f(10000.0, Interval(float, 1, None, closed="neither"))
    rms_norm_eps: float = _f(1e-5, POSITIVE)
    postnorm: bool = _f(True, Boolean())
    layernorm_full_attention_alpha: float = _f(None, _FINITE)
    layernorm_full_attention_beta: float = _f(1.0, _FINITE)
    layernorm_linear_attention_alpha: float = _f(None, _FINITE)
    layernorm_linear_attention_beta: float = _f(1.0, _FINITE)
    layernorm_mlp_alpha: float = _f(None, _FINITE)
    layernorm_mlp_beta: float = _f(1.0, _FINITE)
    tie_word_embeddings: bool = _f(False, Boolean())
    router_aux_loss_coef: float = _f(0.001, _FINITE)
    router_jitter_noise: float = _f(0.0, Interval(float, 0, 1, closed="left"))
    bos_token_id: int | None = _f(257, _TOKEN, None)
    eos_token_id: int | None = _f(258, _TOKEN, None)
    pad_token_id: int | None = _f(256, _TOKEN, None)
    block_size: int = _f(256, POSITIVE_INT)
    max_position_embeddings: int = _f(10_240_000, POSITIVE_INT)
    hidden_act: str = _f("silu", Options(str, ("silu",)), help="the only activation MiniMax uses")
    initializer_range: float = _f(0.02, _FINITE)
    attention_dropout: float = _f(0.0, Satisfies(lambda v: is_real(v) and v == 0, "0.0 (dropout is not implemented)"))
    shared_intermediate_size: int = _f(0, Satisfies(lambda v: is_int(v) and v == 0, "0 (the shared expert is not "
                                                    "implemented; no MiniMax release uses it)"))
    shared_moe_mode: str = _f("sigmoid", InstanceOf(str))
    lightning_slope_variant: str = _f("release", Options(str, _SLOPE_VARIANTS))
    torch_dtype: str | None = _f(None, Options(str, _TORCH_DTYPES), None)

    def __post_init__(self) -> None:
        # the fields are checked below (p.fields): derive the defaults only from valid ints (numpy ones too)
        if self.head_dim is None and _is_int(self.hidden_size) and _is_int(self.num_attention_heads) \
                and int(self.num_attention_heads) > 0:
            self.head_dim = int(self.hidden_size) // int(self.num_attention_heads)
        if self.rotary_dim is None and _is_int(self.head_dim):
            self.rotary_dim = int(self.head_dim) // 2
        if self.attn_type_list is None and _is_int(self.num_hidden_layers) and int(self.num_hidden_layers) > 0:
            n = int(self.num_hidden_layers)
            self.attn_type_list = [1 if (l + 1) % 8 == 0 or (n < 8 and l == n - 1) else 0 for l in range(n)]
        if _is_int(self.num_hidden_layers) and int(self.num_hidden_layers) > 0:
            deepnorm = (2.0 * int(self.num_hidden_layers)) ** 0.25
            for name in ("layernorm_full_attention_alpha", "layernorm_linear_attention_alpha", "layernorm_mlp_alpha"):
                if getattr(self, name) is None:
                    setattr(self, name, deepnorm)
        p = Problems("MiniMaxConfig")
        # a derived default still None could not be derived: its source field is bad and reported itself
        p.fields(self, consequences={name for name in _DERIVED if getattr(self, name) is None})
        self._check_values(p)  # the rules relating fields (each only when its fields are fine)
        p.raise_if_any()

    # ----------------------------------------------------------------------------------------- validation
    def _check_values(self, p: Problems) -> None:
        if p.ok("attn_type_list", "num_hidden_layers") and len(self.attn_type_list) != self.num_hidden_layers:
            p.param("attn_type_list", f"a list of num_hidden_layers ({self.num_hidden_layers}) entries",
                    f"{len(self.attn_type_list)} entries", fix="Give one entry per layer.")
        if p.ok("num_attention_heads", "num_key_value_heads") and self.num_attention_heads % self.num_key_value_heads:
            p.param("num_key_value_heads", f"a divisor of num_attention_heads ({self.num_attention_heads})",
                    self.num_key_value_heads)
        if p.ok("rotary_dim", "head_dim") and (self.rotary_dim > self.head_dim or self.rotary_dim % 2):
            p.param("rotary_dim", f"even and ≤ head_dim ({self.head_dim})", self.rotary_dim)
        if p.ok("num_experts_per_tok", "num_local_experts") and self.num_experts_per_tok > self.num_local_experts:
            p.param("num_experts_per_tok", f"≤ num_local_experts ({self.num_local_experts})", self.num_experts_per_tok)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            v = getattr(self, name)
            if p.ok(name, "vocab_size") and v is not None and not v < self.vocab_size:
                p.param(name, f"in the range [0, vocab_size={self.vocab_size})", v)

    # ------------------------------------------------------------------------------------ derived facts
    @property
    def layer_kinds(self) -> list[str]:
        """Per layer ``"lightning"`` or ``"softmax"``."""
        return ["softmax" if t == 1 else "lightning" for t in self.attn_type_list]

    def to_dict(self) -> dict[str, Any]:
        """All fields (release names)."""
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, data: dict[str, Any], format: str | None = None) -> MiniMaxConfig:
        """Build from a parsed ``config.json`` of either format (detected from ``model_type``/fields)."""
        if not isinstance(data, dict):
            raise LumosError(f"A MiniMax config must be a JSON object; got {type(data).__name__}.")
        fmt = format or detect_format(data)
        if fmt not in CONFIG_FORMATS:
            raise LumosError(f"The 'format' parameter must be one of {CONFIG_FORMATS}. Got {fmt!r} instead.")
        problems: list[str] = []
        kwargs = _from_transformers(data, problems) if fmt == "transformers" else _from_release(data, problems)
        defaults = {"bos_token_id": 1, "eos_token_id": 2} if fmt == "transformers" else {}
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):  # the format's defaults, not lumos' byte ids
            kwargs.setdefault(name, defaults.get(name))
        p = Problems(f"the {fmt} MiniMax config")
        for text in problems:
            p.require(False, text)
        try:
            config = cls(**kwargs)
        except LumosError as exc:  # value problems, reported together with the field problems above
            p.items.extend(getattr(exc, "problems", [str(exc)]))
        p.raise_if_any()
        return config

    @classmethod
    def from_json(cls, path: str | os.PathLike[str], format: str | None = None) -> MiniMaxConfig:
        """Read ``config.json`` (or a directory holding it) in either format."""
        p = Path(path)
        if p.is_dir():
            p = p / "config.json"
        data = read_json(p)  # its errors already name the file
        try:
            return cls.from_dict(data, format=format)
        except LumosError as exc:
            raise LumosError(f"{p}: {exc}") from None

    # ------------------------------------------------------------------------------------------ writing
    def to_format_dict(self, format: str = "minimax_m1") -> dict[str, Any]:
        """The ``config.json`` content in ``format`` ("minimax_m1" release names or "transformers")."""
        if format not in CONFIG_FORMATS:
            raise LumosError(f"The 'format' parameter must be one of {CONFIG_FORMATS}. Got {format!r} instead.")
        return _to_transformers(self) if format == "transformers" else _to_release(self)

    def to_json(self, path: str | os.PathLike[str], format: str = "minimax_m1") -> Path:
        """Write ``config.json`` atomically in ``format``; returns the path."""
        return atomic_write_json(path, self.to_format_dict(format))


def is_minimax_model_type(model_type: object) -> bool:
    """Whether a ``config.json``'s ``model_type`` is a MiniMax model lumos builds itself (the release's names or
    transformers' ``"minimax"``); the one rule :func:`detect_format`, the model loaders and ``lumos generate`` use."""
    return model_type == "minimax" or model_type in _RELEASE_MODEL_TYPES


def detect_format(data: dict[str, Any]) -> str:
    """``"transformers"`` for ``model_type: minimax`` or ``layer_types``; else ``"minimax_m1"``."""
    mt = data.get("model_type")
    if mt == "minimax":
        return "transformers"
    if is_minimax_model_type(mt):
        return "minimax_m1"
    if mt is not None:
        raise LumosError(f"config.json has model_type {mt!r}; expected 'minimax_m1' (MiniMax release) or "
                         "'minimax' (transformers). Another model's directory (e.g. an RL checkpoint of your own "
                         "transformers model) is already in transformers' layout: open it with "
                         "AutoModelForCausalLM or 'lumos generate --model DIR'.")
    return "transformers" if "layer_types" in data or "rope_parameters" in data else "minimax_m1"


_OWN = tuple(f.name for f in dataclasses.fields(MiniMaxConfig))
_RELEASE_ONLY = ("attn_type_list", "rotary_dim", "postnorm", "shared_intermediate_size", "shared_moe_mode",
                 *_FACTOR_NAMES)


def _from_release(data: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in _OWN:
            kwargs[key] = value
        elif key in _IGNORED:
            continue
        elif key in ("layer_types", "rope_parameters", *_FACTOR_NAMES.values()):
            problems.append(f"'{key}' is a transformers field in a release (model_type minimax_m1) config; "
                            "write the config in one format")
        else:
            problems.append(f"unknown field '{key}'")
    if "torch_dtype" in data or "dtype" in data:
        kwargs["torch_dtype"] = data.get("torch_dtype", data.get("dtype"))
    _release_defaults(data, kwargs, problems)
    if isinstance(kwargs.get("shared_intermediate_size"), list):  # MiniMax-VL writes a per-layer list
        vals = set(kwargs["shared_intermediate_size"])
        kwargs["shared_intermediate_size"] = vals.pop() if len(vals) == 1 else kwargs["shared_intermediate_size"]
    return kwargs


#: Defaults of MiniMax's own code (``configuration_minimax_m1.py`` / ``modeling_minimax_m1.py``) for fields a
#: release config may leave out, where lumos' own dataclass defaults differ (issue #15): ``postnorm`` False,
#: every ``layernorm_*_alpha`` 1, ``rotary_dim`` = head_dim (RoPE over the whole head).
RELEASE_CODE_DEFAULTS: dict[str, Any] = {
    "postnorm": False,
    "layernorm_full_attention_alpha": 1.0,
    "layernorm_linear_attention_alpha": 1.0,
    "layernorm_mlp_alpha": 1.0,
}
#: Shape fields whose release-code defaults (Mixtral's 4096 hidden, 32 layers, ...) are nothing like lumos' tiny
#: defaults: a release config (model_type minimax_m1) that leaves one out is ambiguous, hence an error.
_RELEASE_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                     "intermediate_size", "num_local_experts", "num_experts_per_tok", "attn_type_list")


def _release_defaults(data: dict[str, Any], kwargs: dict[str, Any], problems: list[str]) -> None:
    """Fill fields a release-format config omits with the release code's defaults (not lumos')."""
    if data.get("model_type") in _RELEASE_MODEL_TYPES:
        missing = [k for k in _RELEASE_REQUIRED if k not in data]
        if missing:
            problems.append(f"the release config omits {', '.join(missing)}, whose MiniMax-code defaults (Mixtral's) "
                            "differ from lumos'; write them into config.json explicitly")
    for key, value in RELEASE_CODE_DEFAULTS.items():
        kwargs.setdefault(key, value)
    if "rotary_dim" not in data:
        heads, hidden = kwargs.get("num_attention_heads"), kwargs.get("hidden_size")
        head_dim = kwargs.get("head_dim")
        if head_dim is None and isinstance(heads, int) and isinstance(hidden, int) and heads > 0:
            head_dim = hidden // heads
        if _is_int(head_dim):
            kwargs["rotary_dim"] = head_dim  # the release modeling code rotates the whole head by default


def _from_transformers(data: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    tf_factor = {v: k for k, v in _FACTOR_NAMES.items()}
    for key, value in data.items():
        if key in tf_factor:
            kwargs[tf_factor[key]] = value
        elif key == "layer_types":
            if not isinstance(value, list) or not all(v in ("linear_attention", "full_attention") for v in value):
                problems.append(f"'layer_types' must list 'linear_attention'/'full_attention', got {value!r}")
            else:
                kwargs["attn_type_list"] = [0 if v == "linear_attention" else 1 for v in value]
        elif key in ("rope_parameters", "rope_theta", "partial_rotary_factor", "rope_scaling"):
            continue
        elif key in _RELEASE_ONLY:
            problems.append(f"'{key}' is a release (minimax_m1) field in a transformers config; write the config "
                            "in one format")
        elif key in _OWN:
            kwargs[key] = value
        elif key in _IGNORED or key == "num_experts":
            continue
        else:
            problems.append(f"unknown field '{key}'")
    if "num_experts" in data and data["num_experts"] != data.get("num_local_experts", data["num_experts"]):
        problems.append(f"'num_experts' ({data['num_experts']}) contradicts 'num_local_experts' "
                        f"({data['num_local_experts']})")
    elif "num_experts" in data:
        kwargs["num_local_experts"] = data["num_experts"]
    if "layer_types" not in data:
        problems.append("'layer_types' is missing; transformers' default alternates layer kinds, so lumos "
                        "requires it to be explicit")
    if data.get("dtype") is not None or data.get("torch_dtype") is not None:
        kwargs["torch_dtype"] = data.get("dtype") or data.get("torch_dtype")
    kwargs.setdefault("lightning_slope_variant", "transformers")
    kwargs.setdefault("head_dim", None)
    kwargs["postnorm"] = True
    _rope_from_transformers(data, kwargs, problems)
    return kwargs


def _rope_from_transformers(data: dict[str, Any], kwargs: dict[str, Any], problems: list[str]) -> None:
    rp = data.get("rope_parameters") or data.get("rope_scaling") or {}
    if not isinstance(rp, dict):
        problems.append(f"'rope_parameters' must be an object, got {rp!r}")
        return
    theta = rp.get("rope_theta", data.get("rope_theta", 1_000_000.0))  # transformers' MiniMax default_theta
    rtype = rp.get("rope_type", rp.get("type", "default"))
    factor = rp.get("partial_rotary_factor", data.get("partial_rotary_factor", 1.0))
    unknown = set(rp) - {"rope_theta", "rope_type", "type", "partial_rotary_factor", "factor"}
    if unknown:
        problems.append(f"unknown 'rope_parameters' field(s) {sorted(unknown)}")
    if rp.get("factor", 1.0) != 1.0:
        problems.append(f"RoPE scaling factor {rp['factor']} is not supported (only unscaled RoPE)")
    if not _is_num(theta) or theta <= 1:
        problems.append(f"'rope_theta' must be a number > 1, got {theta!r}")
        return
    head_dim = kwargs.get("head_dim") or (kwargs.get("hidden_size", 64) // max(kwargs.get("num_attention_heads", 4), 1))
    if rtype == "default":
        if factor != 1.0:
            problems.append(f"'partial_rotary_factor' {factor} with rope_type 'default' is ignored by transformers' "
                            "MiniMax (it rotates every head dim); use rope_type 'proportional' for partial RoPE")
        kwargs["rotary_dim"], kwargs["rope_theta"] = head_dim, float(theta)
    elif rtype == "proportional":
        if not _is_num(factor) or not 0 < float(factor) <= 1:
            problems.append(f"'partial_rotary_factor' must be in (0, 1], got {factor!r}")
            return
        rotary_dim = 2 * int(factor * head_dim // 2)
        # proportional frequencies theta_tf^(-2i/head_dim) == theta^(-2i/rotary_dim)  (see module docstring)
        kwargs["rotary_dim"] = rotary_dim
        kwargs["rope_theta"] = _clean_float(float(theta) ** (rotary_dim / head_dim))
    else:
        problems.append(f"rope_type {rtype!r} is not supported; use 'default' or 'proportional'")


def _clean_float(x: float) -> float:
    r = round(x)
    return float(r) if r != 0 and abs(x - r) <= 1e-9 * abs(r) else x


def _to_release(cfg: MiniMaxConfig) -> dict[str, Any]:
    d: dict[str, Any] = {"architectures": ["MiniMaxM1ForCausalLM"], "model_type": "minimax_m1"}
    d.update(cfg.to_dict())
    if d["torch_dtype"] is None:
        d.pop("torch_dtype")
    return d


def _to_transformers(cfg: MiniMaxConfig) -> dict[str, Any]:
    if not cfg.postnorm:
        raise LumosError("postnorm=False (residual taken before the norm) has no transformers equivalent (its MiniMax "
                         "always uses the post-norm residual); save in the 'minimax_m1' format instead.")
    d: dict[str, Any] = {"architectures": ["MiniMaxForCausalLM"], "model_type": "minimax"}
    skip = set(_RELEASE_ONLY) | {"rope_theta", "torch_dtype"}
    for key, value in cfg.to_dict().items():
        if key not in skip:
            d[key] = value
    d["layer_types"] = [_LAYER_TYPE_NAMES[t] for t in cfg.attn_type_list]
    for rel, tf in _FACTOR_NAMES.items():
        d[tf] = getattr(cfg, rel)
    if cfg.rotary_dim == cfg.head_dim:
        d["rope_parameters"] = {"rope_type": "default", "rope_theta": cfg.rope_theta}
    else:
        factor = cfg.rotary_dim / cfg.head_dim
        if 2 * int(factor * cfg.head_dim // 2) != cfg.rotary_dim:
            raise LumosError(f"rotary_dim {cfg.rotary_dim} of head_dim {cfg.head_dim} cannot be written exactly as a "
                             "transformers partial_rotary_factor; save in the 'minimax_m1' format instead.")
        d["rope_parameters"] = {"rope_type": "proportional", "partial_rotary_factor": factor,
                                "rope_theta": cfg.rope_theta ** (cfg.head_dim / cfg.rotary_dim)}
    if cfg.torch_dtype is not None:
        d["dtype"] = cfg.torch_dtype
    return d

