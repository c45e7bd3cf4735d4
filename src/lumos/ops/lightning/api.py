"""Public lightning-attention entry points: validate once, then dispatch to a trusted implementation."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lumos.core.errors import bad_param, check
from lumos.core.validation import check_choice, check_same_device, check_tensor
from lumos.ops.lightning.chunk import chunked_lightning_attention
from lumos.ops.lightning.naive import naive_lightning_attention
from lumos.ops.lightning.recurrent import recurrent_lightning_attention, recurrent_step

__all__ = ["lightning_attention", "lightning_attention_step", "BACKENDS", "resolve_backend"]

BACKENDS = ("auto", "chunked", "recurrent", "naive", "triton")
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_STATE_DTYPES = (torch.float32, torch.float64)
#: Decode calls with at most this many tokens run the token loop; longer ones the blocked path.
STEP_LOOP_MAX_TOKENS = 16


def _triton_usable(x: torch.Tensor) -> bool:
    if not x.is_cuda:
        return False
    from lumos.ops.lightning import triton as tl_impl

    return x.dtype in tl_impl.TRITON_DTYPES and tl_impl.is_available()


def resolve_backend(backend: str, q: torch.Tensor) -> Callable:
    """The implementation ``backend`` names for tensors like ``q`` ("auto": Triton on CUDA, else chunked)."""
    owner = "lightning_attention"
    check_choice(backend, "backend", BACKENDS, owner=owner)
    if backend == "auto":
        backend = "triton" if _triton_usable(q) else "chunked"
    if backend == "triton":
        if not _triton_usable(q):
            raise bad_param("backend", "'triton' only for CUDA float32/bfloat16/float16 tensors with Triton "
                            "installed", f"'triton' with {q.dtype} tensors on {q.device}", owner=owner,
                            fix="Use backend='auto' (falls back to 'chunked') or 'chunked'.")
        from lumos.ops.lightning import triton as tl_impl

        return tl_impl.triton_lightning_attention
    return {"chunked": chunked_lightning_attention, "recurrent": recurrent_lightning_attention,
            "naive": naive_lightning_attention}[backend]


def _check_qkv(q, k, v, slope, owner):
    q = check_tensor(q, "q", ndim=4, dtypes=_FLOATS, owner=owner)
    B, H, L, Dk = q.shape
    check_tensor(k, "k", ndim=4, dtypes=_FLOATS, owner=owner, shape=(B, H, L, Dk))
    check_tensor(v, "v", ndim=4, dtypes=_FLOATS, owner=owner, shape=(B, H, L, None))
    if not (q.dtype == k.dtype == v.dtype):
        raise bad_param("q, k, v", "tensors of one dtype", f"{q.dtype}, {k.dtype}, {v.dtype}", owner=owner,
                        fix="Cast them to one dtype.", type_error=True)
    check(min(q.shape) > 0 and v.shape[-1] > 0,
          f"{owner}: q, k, v need non-empty dimensions; got q {tuple(q.shape)}, v {tuple(v.shape)}.")
    check_tensor(slope, "slope", ndim=1, dtypes=_FLOATS, owner=owner, shape=(H,))
    if slope.device.type == "cpu" and not bool((torch.isfinite(slope) & (slope >= 0)).all()):
        raise bad_param("slope", "finite and >= 0 (decay λ = exp(-slope) in (0, 1])", slope.tolist(), owner=owner)


def _check_cu_seqlens(cu_seqlens, B, L, owner):
    check_tensor(cu_seqlens, "cu_seqlens", ndim=1, dtypes=(torch.int32, torch.int64), owner=owner)
    if B != 1:
        raise bad_param("q", "batch size 1 when cu_seqlens is given (sequences packed along L)", f"batch size {B}",
                        owner=owner, fix="Concatenate the sequences along dim 2 and pass their offsets.")
    offs = cu_seqlens.tolist()
    ok = len(offs) >= 2 and offs[0] == 0 and offs[-1] == L and all(a <= b for a, b in zip(offs, offs[1:]))
    if not ok:
        raise bad_param("cu_seqlens", f"non-decreasing offsets starting at 0 and ending at L={L}", offs, owner=owner,
                        fix="Use cu_seqlens = [0, len_0, len_0 + len_1, ...].")
    return len(offs) - 1


def _check_state(state, name, N, H, Dk, Dv, owner):
    check_tensor(state, name, ndim=4, dtypes=_STATE_DTYPES, owner=owner, shape=(N, H, Dk, Dv))


def lightning_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    slope: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Lightning attention (MiniMax): S_t = λ_h S_{t−1} + k_tᵀ v_t, o_t = q_t S_t with λ_h = exp(−slope_h).

    No 1/√d scale, no normaliser, no positional encoding. Accumulation and states are float32 (float64 for
    float64 inputs) whatever the input dtype.

    Args:
        q, k: (B, H, L, Dk); v: (B, H, L, Dv); one dtype among float16, bfloat16, float32, float64.
        slope: (H,) non-negative decay rates s_h (gradients are not propagated to it except by 'naive'/'recurrent').
        initial_state: (N, H, Dk, Dv) float32/float64 state entering the sequence(s), or None for zeros;
            N = B, or the number of packed sequences with ``cu_seqlens``.
        output_final_state: return the state after the last token of each sequence.
        cu_seqlens: (N + 1,) int32/int64 offsets of sequences packed along L (B must be 1); no state flows
            between sequences.
        backend: "auto" (Triton for CUDA fp32/bf16/fp16 tensors, else "chunked"), "chunked", "recurrent", "naive" or "triton".

    Returns:
        (o, final_state): o (B, H, L, Dv) in v's dtype; final_state (N, H, Dk, Dv) or None.

    Example:
        >>> q, k, v = (torch.randn(1, 2, 300, 16) for _ in range(3))
        >>> o, s = lightning_attention(q, k, v, torch.tensor([0.5, 0.1]), output_final_state=True)
        >>> o.shape, s.shape
        (torch.Size([1, 2, 300, 16]), torch.Size([1, 2, 16, 16]))
    """
    owner = "lightning_attention"
    _check_qkv(q, k, v, slope, owner)
    B, H, L, Dk = q.shape
    Dv = v.shape[-1]
    N = B if cu_seqlens is None else _check_cu_seqlens(cu_seqlens, B, L, owner)
    if initial_state is not None:
        _check_state(initial_state, "initial_state", N, H, Dk, Dv, owner)
    check_same_device(owner, q=q, k=k, v=v, slope=slope, initial_state=initial_state)
    if cu_seqlens is not None:
        check_same_device(owner, q=q, cu_seqlens=cu_seqlens)
    impl = resolve_backend(backend, q)
    if slope.requires_grad and torch.is_grad_enabled() and impl is not naive_lightning_attention \
            and impl is not recurrent_lightning_attention:
        raise bad_param("slope", "a tensor without requires_grad for the blocked/Triton backends", "requires_grad=True",
                        owner=owner, fix="Pass slope.detach(), or use backend='naive'/'recurrent' for slope gradients.")
    return impl(q, k, v, slope, initial_state, bool(output_final_state), cu_seqlens)


def lightning_attention_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slope: torch.Tensor, state: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode T new tokens (usually 1) from a cached state; functional (``state`` is not modified).

    Args:
        q, k: (B, H, T, Dk); v: (B, H, T, Dv); slope: (H,); state: (B, H, Dk, Dv) float32/float64 or None (zeros).

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
    _check_qkv(q, k, v, slope, owner)
    B, H, T, Dk = q.shape
    if state is not None:
        _check_state(state, "state", B, H, Dk, v.shape[-1], owner)
    check_same_device(owner, q=q, k=k, v=v, slope=slope, state=state)
    if T <= STEP_LOOP_MAX_TOKENS:
        return recurrent_step(q, k, v, slope, state)
    o, new_state = lightning_attention(q, k, v, slope.detach(), state, True, None, "auto")
    return o, new_state
