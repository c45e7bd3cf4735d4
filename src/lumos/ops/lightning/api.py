"""Public lightning-attention entry points: validate once, then dispatch to a trusted implementation.

Two front doors over the same implementations (:mod:`~lumos.ops.lightning.naive`, ``recurrent``, ``chunk``,
``triton``):

- :func:`lightning_attention` — lumos's head-first layout ``(B, H, L, D)`` (as torch's SDPA and transformers'
  MiniMax), decay given as ``slope`` (λ = exp(−slope)), no scale: MiniMax's lightning attention exactly.
- :func:`lightning_attn` — flash-linear-attention's layout ``(B, T, H, D)`` and the semantics of its
  ``chunk_simple_gla`` with a per-head decay: ``g_gamma`` = log λ = −slope, ``scale`` defaulting to ``D ** -0.5``.

The checks are compatible with ``torch.compile(fullgraph=True)``: shapes, dtypes and devices are checked always
(they are static under tracing); value checks that need the data (slope ≥ 0, ``cu_seqlens`` offsets given as a
tensor) run only in eager mode (``cu_seqlens`` given as a Python list is checked always: it is a constant). Under
``torch.compile`` the implementation is called through the opaque op of :mod:`lumos.ops.lightning.opaque`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from lumos.core.errors import bad_param, check
from lumos.core.validation import check_choice, check_float, check_same_device, check_tensor, is_int
from lumos.ops.lightning.opaque import SLOPE_GRAD_IMPLEMENTATIONS, implementation, lightning_attention_op
from lumos.ops.lightning.recurrent import recurrent_step
from lumos.ops.lightning.utils import compute_dtype

__all__ = ["lightning_attention", "lightning_attention_step", "lightning_attn", "BACKENDS", "resolve_backend"]

BACKENDS = ("auto", "chunked", "recurrent", "naive", "triton")
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INTS = (torch.int32, torch.int64)
#: Decode calls with at most this many tokens run the token loop; longer ones the blocked path.
STEP_LOOP_MAX_TOKENS = 16

_HEAD_FIRST_FIX = ("{owner} takes head-first tensors q, k (B, H, L, Dk), v (B, H, L, Dv) and slope (H,); for "
                   "flash-linear-attention's (B, T, H, D) layout call lumos.ops.lightning_attn (or pass "
                   "x.transpose(1, 2)).")
_FLA_FIX = ("lightning_attn takes flash-linear-attention's layout q, k (B, T, H, K), v (B, T, H, V) and g_gamma or "
            "slope (H,); for head-first (B, H, L, D) tensors call lumos.ops.lightning_attention (or pass "
            "x.transpose(1, 2)).")


def _triton_usable(x: torch.Tensor) -> bool:
    if not x.is_cuda:
        return False
    from lumos.ops.lightning import triton as tl_impl

    return x.dtype in tl_impl.TRITON_DTYPES and tl_impl.is_available()


def _backend_name(backend: str, q: torch.Tensor, owner: str = "lightning_attention") -> str:
    """The implementation name ``backend`` resolves to for tensors like ``q``."""
    check_choice(backend, "backend", BACKENDS, owner=owner)
    if backend == "auto":
        return "triton" if _triton_usable(q) else "chunked"
    if backend == "triton" and not _triton_usable(q):
        raise bad_param("backend", "'triton' only for CUDA float32/bfloat16/float16 tensors with Triton "
                        "installed", f"'triton' with {q.dtype} tensors on {q.device}", owner=owner,
                        fix="Use backend='auto' (falls back to 'chunked') or 'chunked'.")
    return backend


def resolve_backend(backend: str, q: torch.Tensor) -> Callable:
    """The implementation ``backend`` names for tensors like ``q`` ("auto": Triton on CUDA, else chunked)."""
    return implementation(_backend_name(backend, q))


# ----------------------------------------------------------------------------------------------------------- checks


def _check_qkv(q, k, v, decay, decay_name, owner, *, fla=False):
    """Shapes and dtypes of q, k, v and the per-head decay, in the head-first or (``fla``) FLA layout."""
    fix = (_FLA_FIX if fla else _HEAD_FIRST_FIX).format(owner=owner)
    h_ax, t_ax = (2, 1) if fla else (1, 2)
    q = check_tensor(q, "q", ndim=4, dtypes=_FLOATS, owner=owner, fix=fix)
    check_tensor(decay, decay_name, ndim=1, dtypes=_FLOATS, owner=owner, fix=fix)
    H = decay.shape[0]
    if q.shape[h_ax] != H:
        layout = "(B, T, H, K)" if fla else "(B, H, L, Dk)"
        if q.shape[t_ax] == H:
            other = "head-first (B, H, L, D)" if fla else "flash-linear-attention's (B, T, H, D)"
            raise bad_param("q", f"of layout {layout} with H = {H} ({decay_name} has {H} entries)",
                            f"shape {tuple(q.shape)} ({other} layout)", owner=owner, fix=fix)
        raise bad_param(decay_name, f"of shape ({q.shape[h_ax]}) (one entry per head; q is {layout})",
                        f"shape {tuple(decay.shape)}", owner=owner, fix=fix)
    check_tensor(k, "k", ndim=4, dtypes=_FLOATS, owner=owner, shape=tuple(q.shape), fix=fix)
    check_tensor(v, "v", ndim=4, dtypes=_FLOATS, owner=owner, shape=(*q.shape[:3], None), fix=fix)
    if not (q.dtype == k.dtype == v.dtype):
        raise bad_param("q, k, v", "tensors of one dtype", f"{q.dtype}, {k.dtype}, {v.dtype}", owner=owner,
                        fix="Cast them to one dtype.", type_error=True)
    check(min(q.shape) > 0 and v.shape[-1] > 0,
          f"{owner}: q, k, v need non-empty dimensions; got q {tuple(q.shape)}, v {tuple(v.shape)}.")


def _check_decay_values(decay, decay_name, owner, *, log=False):
    """slope ≥ 0 (or g_gamma ≤ 0) and finite; needs the values, so only in eager mode and only on the CPU
    (reading a CUDA tensor would synchronise)."""
    if torch.compiler.is_compiling() or decay.device.type != "cpu":
        return
    d = decay.detach()
    if not bool((torch.isfinite(d) & ((d <= 0) if log else (d >= 0))).all()):
        want = ("finite and <= 0 (log decay: λ = exp(g_gamma) in (0, 1])" if log
                else "finite and >= 0 (decay λ = exp(-slope) in (0, 1])")
        raise bad_param(decay_name, want, d.tolist(), owner=owner)


def _check_offsets(offs: list, L: int, owner: str) -> None:
    ok = len(offs) >= 2 and offs[0] == 0 and offs[-1] == L and all(a <= b for a, b in zip(offs, offs[1:]))
    if not ok:
        raise bad_param("cu_seqlens", f"non-decreasing offsets starting at 0 and ending at the {L} packed tokens",
                        offs, owner=owner, fix="Use cu_seqlens = [0, len_0, len_0 + len_1, ...].")


def _check_cu_seqlens(cu_seqlens, q, L, owner, seq_dim):
    """``cu_seqlens`` as a tensor of offsets on q's device, and the number of sequences N.

    A Python list/tuple is checked always (under ``torch.compile`` it is a constant); a tensor's values only in
    eager mode (reading them is a host sync and a graph break)."""
    fix_pack = f"Concatenate the sequences along dim {seq_dim} and pass their offsets."
    if isinstance(cu_seqlens, (list, tuple)):
        if not all(is_int(x) for x in cu_seqlens):
            raise bad_param("cu_seqlens", "a list of int offsets or an int32/int64 tensor", list(cu_seqlens),
                            owner=owner, type_error=True)
        _check_offsets([int(x) for x in cu_seqlens], L, owner)
        cu = torch.tensor([int(x) for x in cu_seqlens], dtype=torch.long, device=q.device)
    else:
        cu = check_tensor(cu_seqlens, "cu_seqlens", ndim=1, dtypes=_INTS, owner=owner,
                          fix="Pass a LongTensor or a list of offsets.")
        check_same_device(owner, q=q, cu_seqlens=cu)
        if cu.shape[0] < 2:
            raise bad_param("cu_seqlens", "at least 2 offsets [0, ..., total length]", f"shape {tuple(cu.shape)}",
                            owner=owner)
        if not torch.compiler.is_compiling():
            _check_offsets(cu.tolist(), L, owner)
    if q.shape[0] != 1:
        raise bad_param("q", "batch size 1 when cu_seqlens is given (sequences packed along the token dim)",
                        f"batch size {q.shape[0]}", owner=owner, fix=fix_pack)
    return cu, cu.shape[0] - 1


def _check_state(state, name, N, H, Dk, Dv, q, owner):
    """A state (N, H, Dk, Dv) of any float dtype, returned in the compute dtype (float32, float64 for float64)."""
    check_tensor(state, name, ndim=4, dtypes=_FLOATS, owner=owner, shape=(N, H, Dk, Dv),
                 fix="States are (sequences, heads, key dim, value dim).")
    return state.to(compute_dtype(q))


def _check_slope_grad(decay, decay_name, impl, owner):
    if decay.requires_grad and torch.is_grad_enabled() and impl not in SLOPE_GRAD_IMPLEMENTATIONS:
        raise bad_param(decay_name, "a tensor without requires_grad for the blocked/Triton backends",
                        "requires_grad=True", owner=owner,
                        fix=f"Pass {decay_name}.detach(), or use backend='naive'/'recurrent' for its gradient.")


def _run(impl, q, k, v, slope, initial_state, output_final_state, cu):
    """Call implementation ``impl`` directly, or under ``torch.compile`` through the opaque op."""
    if torch.compiler.is_compiling():
        o, final = lightning_attention_op(q, k, v, slope, initial_state, cu, impl)
        return o, (final if output_final_state else None)
    return implementation(impl)(q, k, v, slope, initial_state, bool(output_final_state), cu)


# ------------------------------------------------------------------------------------------------------ front doors


def lightning_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    slope: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | Sequence[int] | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Lightning attention (MiniMax): S_t = λ_h S_{t−1} + k_tᵀ v_t, o_t = q_t S_t with λ_h = exp(−slope_h).

    Head-first layout; no 1/√d scale, no normaliser, no positional encoding. Accumulation and states are float32
    (float64 for float64 inputs) whatever the input dtype. For flash-linear-attention's ``(B, T, H, D)`` layout
    and arguments use :func:`lightning_attn`.

    Args:
        q: (B, H, L, Dk); one dtype among float16, bfloat16, float32, float64.
        k: (B, H, L, Dk), q's dtype.
        v: (B, H, L, Dv), q's dtype.
        slope: (H,) non-negative decay rates s_h (gradients are not propagated to it except by 'naive'/'recurrent').
        initial_state: (N, H, Dk, Dv) state entering the sequence(s) in any float dtype (used in float32, float64
            for float64 inputs), or None for zeros; N = B, or the number of packed sequences with ``cu_seqlens``.
        output_final_state: return the state after the last token of each sequence.
        cu_seqlens: (N + 1,) int32/int64 tensor or list of offsets of sequences packed along L (B must be 1);
            no state flows between sequences.
        backend: "auto" (Triton for CUDA fp32/bf16/fp16 tensors, else "chunked"), "chunked", "recurrent", "naive"
            or "triton".

    Returns:
        (o, final_state): o (B, H, L, Dv) in v's dtype; final_state (N, H, Dk, Dv) float32 (float64 for float64
        inputs) or None.

    Example:
        >>> q, k, v = (torch.randn(1, 2, 300, 16) for _ in range(3))
        >>> o, s = lightning_attention(q, k, v, torch.tensor([0.5, 0.1]), output_final_state=True)
        >>> o.shape, s.shape
        (torch.Size([1, 2, 300, 16]), torch.Size([1, 2, 16, 16]))
        >>> o, s = lightning_attention(q, k, v, torch.tensor([0.5, 0.1]), torch.zeros(2, 2, 16, 16),
        ...                            output_final_state=True, cu_seqlens=[0, 100, 300])
        >>> s.shape
        torch.Size([2, 2, 16, 16])
    """
    owner = "lightning_attention"
    _check_qkv(q, k, v, slope, "slope", owner)
    _check_decay_values(slope, "slope", owner)
    B, H, L, Dk = q.shape
    Dv = v.shape[-1]
    cu, N = (None, B) if cu_seqlens is None else _check_cu_seqlens(cu_seqlens, q, L, owner, seq_dim=2)
    check_same_device(owner, q=q, k=k, v=v, slope=slope, initial_state=initial_state)
    if initial_state is not None:
        initial_state = _check_state(initial_state, "initial_state", N, H, Dk, Dv, q, owner)
    impl = _backend_name(backend, q)
    _check_slope_grad(slope, "slope", impl, owner)
    return _run(impl, q, k, v, slope, initial_state, output_final_state, cu)


def lightning_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    g_gamma: torch.Tensor | None = None,
    slope: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | Sequence[int] | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Lightning attention with flash-linear-attention's layout and arguments (its ``chunk_simple_gla`` with a
    per-head decay ``g_gamma``).

    Per sequence, head h and token t:  h_t = exp(g_gamma_h) · h_{t−1} + k_tᵀ v_t,   o_t = scale · q_t h_t,
    with h_{−1} = initial_state (or 0). ``g_gamma`` is the log decay, ``slope = −g_gamma``; give exactly one.

    MiniMax's lightning attention has **no** scale: pass ``scale=1.0`` to get it (then this equals
    :func:`lightning_attention` on the transposed tensors). The default ``scale=None`` is FLA's ``D ** -0.5``.

    Args:
        q: (B, T, H, K); one dtype among float16, bfloat16, float32, float64.
        k: (B, T, H, K), q's dtype.
        v: (B, T, H, V), q's dtype.
        g_gamma: (H,) log decay, ≤ 0 (FLA's argument); or
        slope: (H,) decay rate, ≥ 0 (MiniMax's ``slope_rate``; λ = exp(−slope)).
        scale: factor on q·h; None gives K ** -0.5 as in FLA (MiniMax: 1.0).
        initial_state: (N, H, K, V) in any float dtype (used in float32, float64 for float64 inputs), or None for
            zeros; N = B, or the number of packed sequences with ``cu_seqlens``.
        output_final_state: also return the state after the last token of each sequence.
        cu_seqlens: (N + 1,) LongTensor (or int32, or a Python list) of offsets of sequences packed along T
            (B must be 1), as in FLA; no state flows between sequences.
        backend: as in :func:`lightning_attention` ("auto": Triton on CUDA, else the blocked CPU path).
            ``g_gamma``/``slope`` get gradients only from "naive" and "recurrent" (FLA gives none).

    Returns:
        (o, final_state): o (B, T, H, V) contiguous in v's dtype; final_state (N, H, K, V) float32 (float64 for
        float64 inputs) or None.

    Example:
        >>> B, T, H, D = 2, 64, 4, 16
        >>> q, k, v = (torch.randn(B, T, H, D) for _ in range(3))
        >>> g_gamma = -torch.tensor([0.1, 0.2, 0.4, 0.8])
        >>> o, ht = lightning_attn(q, k, v, g_gamma=g_gamma, output_final_state=True)  # FLA: scale = D ** -0.5
        >>> o.shape, ht.shape
        (torch.Size([2, 64, 4, 16]), torch.Size([2, 4, 16, 16]))
        >>> o_mm, _ = lightning_attn(q, k, v, slope=-g_gamma, scale=1.0)               # MiniMax: no scale
        >>> ref, _ = lightning_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), -g_gamma)
        >>> torch.allclose(o_mm, ref.transpose(1, 2), atol=1e-5)
        True
        >>> packed = [x.reshape(1, B * T, H, D) for x in (q, k, v)]                    # varlen: B = 1
        >>> o, ht = lightning_attn(*packed, g_gamma=g_gamma, initial_state=torch.zeros(3, H, D, D, dtype=torch.bfloat16),
        ...                        output_final_state=True, cu_seqlens=torch.tensor([0, 10, 64, 128]))
        >>> o.shape, ht.shape, ht.dtype
        (torch.Size([1, 128, 4, 16]), torch.Size([3, 4, 16, 16]), torch.float32)
    """
    owner = "lightning_attn"
    if (g_gamma is None) == (slope is None):
        raise bad_param("g_gamma", "given, or else slope (exactly one of them: slope = -g_gamma)",
                        "both" if slope is not None else "neither", owner=owner,
                        fix="Pass g_gamma=<(H,) log decay, <= 0> as in FLA's chunk_simple_gla, or slope=<(H,) >= 0>.")
    decay, decay_name = (g_gamma, "g_gamma") if g_gamma is not None else (slope, "slope")
    _check_qkv(q, k, v, decay, decay_name, owner, fla=True)
    _check_decay_values(decay, decay_name, owner, log=g_gamma is not None)
    B, T, H, K = q.shape
    V = v.shape[-1]
    if scale is None:
        q_scale: float = K**-0.5
    else:
        check_float(scale, "scale", owner=owner)
        q_scale = float(scale)
    cu, N = (None, B) if cu_seqlens is None else _check_cu_seqlens(cu_seqlens, q, T, owner, seq_dim=1)
    check_same_device(owner, q=q, k=k, v=v, **{decay_name: decay}, initial_state=initial_state)
    if initial_state is not None:
        initial_state = _check_state(initial_state, "initial_state", N, H, K, V, q, owner)
    impl = _backend_name(backend, q, owner)
    _check_slope_grad(decay, decay_name, impl, owner)
    s = -g_gamma if g_gamma is not None else slope
    qh = q.transpose(1, 2)
    if q_scale != 1.0:  # o is linear in q: scaling q is FLA's o = scale · q h (the state is not scaled)
        qh = qh * q_scale
    o, final = _run(impl, qh, k.transpose(1, 2), v.transpose(1, 2), s, initial_state, output_final_state, cu)
    return o.transpose(1, 2).contiguous(), final


def lightning_attention_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slope: torch.Tensor, state: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode T new tokens (usually 1) from a cached state; functional (``state`` is not modified).

    Args:
        q: (B, H, T, Dk).
        k: (B, H, T, Dk).
        v: (B, H, T, Dv).
        slope: (H,).
        state: (B, H, Dk, Dv) in any float dtype (used in float32, float64 for float64 inputs), or None (zeros).

    Returns:
        (o, new_state): o (B, H, T, Dv) in v's dtype, new_state (B, H, Dk, Dv) in float32 (float64 for float64
        inputs) — equal to running :func:`lightning_attention` over the whole sequence.

    Example:
        >>> q, k, v = (torch.randn(2, 4, 1, 8) for _ in range(3))
        >>> o, s = lightning_attention_step(q, k, v, torch.full((4,), 0.3), torch.zeros(2, 4, 8, 8))
        >>> o.shape, s.shape
        (torch.Size([2, 4, 1, 8]), torch.Size([2, 4, 8, 8]))
    """
    owner = "lightning_attention_step"
    _check_qkv(q, k, v, slope, "slope", owner)
    _check_decay_values(slope, "slope", owner)
    B, H, T, Dk = q.shape
    check_same_device(owner, q=q, k=k, v=v, slope=slope, state=state)
    if state is not None:
        state = _check_state(state, "state", B, H, Dk, v.shape[-1], q, owner)
    if T <= STEP_LOOP_MAX_TOKENS:
        return recurrent_step(q, k, v, slope, state)
    o, new_state = lightning_attention(q, k, v, slope.detach(), state, True, None, "auto")
    assert new_state is not None  # output_final_state=True
    return o, new_state
