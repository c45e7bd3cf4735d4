"""Lightning attention as one op that ``torch.compile`` treats as opaque (``lumos::lightning_attention``).

The implementations plan their work from the packed-sequence offsets (``cu_seqlens`` becomes Python ints for the
block plan and the per-sequence slices), query the thread count and run custom ``autograd.Function`` s: none of
that can be traced by Dynamo without graph breaks. Under ``torch.compile`` the front doors
(:func:`lumos.ops.lightning_attention`, :func:`lumos.ops.lightning_attn`) therefore call the implementation
through this custom op instead: the compiled graph holds one node whose fake (meta) rule gives the output shapes,
and the implementation runs eagerly inside it, so ``fullgraph=True`` holds with or without ``cu_seqlens``.

Backward: :func:`lightning_attention_backward` is a second opaque op that reruns the chosen implementation with
autograd and differentiates it (``torch.autograd.grad``) — the same maths and gradients as the eager call, at the
price of one more forward inside the compiled backward. ``slope`` receives a gradient only through the
``naive`` and ``recurrent`` implementations, as in eager mode (the front doors refuse the others).

Outside ``torch.compile`` the front doors call the implementations directly; tests compare both routes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lumos.ops.lightning.chunk import chunked_lightning_attention
from lumos.ops.lightning.naive import naive_lightning_attention
from lumos.ops.lightning.recurrent import recurrent_lightning_attention
from lumos.ops.lightning.utils import compute_dtype

__all__ = ["IMPLEMENTATIONS", "implementation", "lightning_attention_op", "lightning_attention_backward"]

#: Implementation names the op accepts (the front door resolves "auto" before calling it).
IMPLEMENTATIONS = ("chunked", "recurrent", "naive", "triton")
#: Implementations that differentiate through ``slope``.
SLOPE_GRAD_IMPLEMENTATIONS = ("naive", "recurrent")


def implementation(name: str) -> Callable:
    """The implementation function called ``name`` (one of :data:`IMPLEMENTATIONS`)."""
    if name == "triton":
        from lumos.ops.lightning import triton as tl_impl

        return tl_impl.triton_lightning_attention
    return {"chunked": chunked_lightning_attention, "recurrent": recurrent_lightning_attention,
            "naive": naive_lightning_attention}[name]


@torch.library.custom_op("lumos::lightning_attention", mutates_args=())
def lightning_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slope: torch.Tensor,
                           initial_state: torch.Tensor | None, cu_seqlens: torch.Tensor | None, impl: str
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run implementation ``impl`` on trusted inputs (the front doors' contract, head-first).

    Args:
        q, k: (B, H, L, Dk); v: (B, H, L, Dv); slope: (H,); initial_state: (N, H, Dk, Dv) in the compute dtype
            or None; cu_seqlens: (N + 1,) integer offsets or None; impl: one of :data:`IMPLEMENTATIONS`.

    Returns:
        (o (B, H, L, Dv) in v's dtype, final_state (N, H, Dk, Dv) in the compute dtype) — the final state always.
    """
    # Fresh outputs, as a custom op must return: every implementation allocates o and the final states (the
    # blocked path clones the initial states it updates; the token loops rebind theirs for every token).
    # Contiguous, as the fake rule says (inductor checks the strides).
    o, final = implementation(impl)(q, k, v, slope, initial_state, True, cu_seqlens)
    return o.contiguous(), final.contiguous()


@lightning_attention_op.register_fake
def _op_fake(q, k, v, slope, initial_state, cu_seqlens, impl):
    B, H, L, Dk = q.shape
    Dv = v.shape[-1]
    N = B if cu_seqlens is None else cu_seqlens.shape[0] - 1
    return v.new_empty(B, H, L, Dv), q.new_empty(N, H, Dk, Dv, dtype=compute_dtype(q))


def _autograd_inside_op():
    # A custom op's kernel runs below the autograd dispatch key (autograd is excluded from the thread's dispatch
    # set, so enable_grad alone records nothing); re-admit it for the recomputation the backward differentiates.
    return torch._C._SetExcludeDispatchKeyGuard(torch._C.DispatchKey.AutogradFunctionality, False)


@torch.library.custom_op("lumos::lightning_attention_backward", mutates_args=())
def lightning_attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slope: torch.Tensor,
                                 initial_state: torch.Tensor | None, cu_seqlens: torch.Tensor | None, impl: str,
                                 do: torch.Tensor, dfinal: torch.Tensor, slope_grad: bool
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``(o · do).sum() + (final · dfinal).sum()`` by rerunning ``impl`` with autograd.

    Returns (dq, dk, dv, dslope, dinitial_state); dslope is zeros unless ``slope_grad``, dinitial_state is an
    empty tensor when there is no initial state.
    """
    with _autograd_inside_op(), torch.enable_grad():
        q_, k_, v_ = (t.detach().requires_grad_(True) for t in (q, k, v))
        s_ = slope.detach().requires_grad_(slope_grad)
        s0 = None if initial_state is None else initial_state.detach().requires_grad_(True)
        o, final = implementation(impl)(q_, k_, v_, s_, s0, True, cu_seqlens)
        wrt = [q_, k_, v_] + ([s_] if slope_grad else []) + ([s0] if s0 is not None else [])
        grads = list(torch.autograd.grad((o, final), wrt, (do.to(o.dtype), dfinal.to(final.dtype)),
                                         allow_unused=True, materialize_grads=True))
    dq, dk, dv = grads[:3]
    dslope = grads[3] if slope_grad else torch.zeros_like(slope)
    dinit = grads[-1] if s0 is not None else q.new_empty(0)
    # contiguous, as the fake rule says
    return dq.contiguous(), dk.contiguous(), dv.contiguous(), dslope.contiguous(), dinit.contiguous()


@lightning_attention_backward.register_fake
def _backward_fake(q, k, v, slope, initial_state, cu_seqlens, impl, do, dfinal, slope_grad):
    dinit = q.new_empty(0) if initial_state is None else initial_state.new_empty(initial_state.shape)
    return tuple(t.new_empty(t.shape) for t in (q, k, v, slope)) + (dinit,)


def _setup_context(ctx, inputs, output):
    q, k, v, slope, initial_state, cu_seqlens, impl = inputs
    ctx.save_for_backward(q, k, v, slope, initial_state, cu_seqlens)
    ctx.impl = impl
    ctx.slope_grad = bool(ctx.needs_input_grad[3]) and impl in SLOPE_GRAD_IMPLEMENTATIONS


def _backward(ctx, do, dfinal):
    q, k, v, slope, initial_state, cu_seqlens = ctx.saved_tensors
    dq, dk, dv, dslope, dinit = lightning_attention_backward(q, k, v, slope, initial_state, cu_seqlens, ctx.impl,
                                                             do, dfinal, ctx.slope_grad)
    return (dq, dk, dv, dslope if ctx.slope_grad else None, dinit if initial_state is not None else None,
            None, None)


lightning_attention_op.register_autograd(_backward, setup_context=_setup_context)
