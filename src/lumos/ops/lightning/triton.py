"""Triton (CUDA) kernels for lightning attention: forward and backward, dense or packed (``cu_seqlens``).

Each program walks one (sequence, head) through its blocks of ``BLOCK`` tokens, carrying the recurrent state in
registers (float32), and owns one tile of the head dimension it writes:

- forward, grid (Dv tiles, N·H): O = (Q S_in) ⊙ λ^{j+1} + ((Q Kᵀ) ⊙ M) V;  S ← λ^m S + (K ⊙ λ^{m−1−i})ᵀ V.
- dq, grid (Dk tiles, N·H), forward in time: dQ = (dO S_inᵀ) ⊙ λ^{j+1} + ((dO Vᵀ) ⊙ M) K.
- dk, grid (Dk tiles, N·H), backward in time with dS = ∂/∂S_out: dK = ((dO Vᵀ) ⊙ M)ᵀ Q + (V dSᵀ) ⊙ λ^{m−1−i};
  dS ← λ^m dS + (Q ⊙ λ^{j+1})ᵀ dO; after the first block dS = ∂/∂initial_state.
- dv, grid (Dv tiles, N·H), backward in time: dV = ((Q Kᵀ) ⊙ M)ᵀ dO + (K ⊙ λ^{m−1−i}) dS.

Nothing but q, k, v (and the initial state) is saved for the backward: memory linear in L. Head dims are padded
to powers of two with masked loads, so any Dk, Dv work. float32 inputs use exact (IEEE) dots; bf16/fp16 inputs
use tensor-core dots on input-dtype operands with float32 accumulation and a float32 state (as
flash-linear-attention does). The CPU has no Triton path: ``backend="auto"`` picks this only for CUDA tensors.
Tested on CPU through the Triton interpreter (``TRITON_INTERPRET=1``, tests/ops/lightning/test_triton.py);
``benchmarks/gpu_lightning_check.py`` is the prepared GPU check.
"""

# Triton's DSL annotates kernel arguments with ``tl.constexpr`` (a value, not a type), and ``tl`` is None where
# Triton is missing (the kernels are then never defined): both are right at run time, so the checker is told so.
# pyright: reportInvalidTypeForm=false, reportOptionalMemberAccess=false

from __future__ import annotations

import torch

try:  # Triton is optional: without it (or without CUDA) the blocked PyTorch path is used.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where Triton is missing
    triton = None
    tl = None

__all__ = ["is_available", "triton_lightning_attention", "TRITON_DTYPES"]

TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
#: Tokens per block inside the kernels.
BLOCK = 64


def is_available() -> bool:
    """Triton importable and a CUDA device present."""
    return triton is not None and torch.cuda.is_available()


if triton is not None:

    @triton.jit
    def _seq_bounds(CU, i_n, L, H, i_h, VARLEN: tl.constexpr):
        # Returns (first token, end token, row of the first token of this (sequence, head) in the (·, L, D) view).
        if VARLEN:
            bos = tl.load(CU + i_n).to(tl.int64)
            eos = tl.load(CU + i_n + 1).to(tl.int64)
            row0 = i_h.to(tl.int64) * L
        else:
            bos = tl.zeros([], dtype=tl.int64)
            eos = bos + L
            row0 = (i_n * H + i_h).to(tl.int64) * L
        return bos, eos, row0

    @triton.jit
    def _decays(s, m, BLOCK: tl.constexpr):
        o_c = tl.arange(0, BLOCK)
        valid = o_c < m
        qd = tl.exp(-s * (o_c + 1).to(tl.float32))
        kd = tl.where(valid, tl.exp(-s * tl.maximum(m - 1 - o_c, 0).to(tl.float32)), 0.0)
        diff = o_c[:, None] - o_c[None, :]
        mask = tl.where(diff >= 0, tl.exp(-s * tl.maximum(diff, 0).to(tl.float32)), 0.0)
        return qd, kd, mask, valid

    @triton.jit
    def _fwd_kernel(Q, K, V, O, SLOPE, S0, SF, CU, L, H, DK: tl.constexpr, DV: tl.constexpr,
                    BK: tl.constexpr, BV: tl.constexpr, BLOCK: tl.constexpr, VARLEN: tl.constexpr,
                    HAS_S0: tl.constexpr, STORE_SF: tl.constexpr, PREC: tl.constexpr):
        i_v, i_nh = tl.program_id(0), tl.program_id(1)
        i_n, i_h = i_nh // H, i_nh % H
        bos, eos, row0 = _seq_bounds(CU, i_n, L, H, i_h, VARLEN)
        s = tl.load(SLOPE + i_h).to(tl.float32)
        o_k, o_v, o_c = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BLOCK)
        mk, mv = o_k < DK, o_v < DV
        st_off = i_nh.to(tl.int64) * DK * DV + o_k[:, None] * DV + o_v[None, :]
        S = tl.zeros([BK, BV], dtype=tl.float32)
        if HAS_S0:
            S = tl.load(S0 + st_off, mask=mk[:, None] & mv[None, :], other=0.0).to(tl.float32)
        for ib in range(0, tl.cdiv(eos - bos, BLOCK)):
            t0 = bos + ib * BLOCK
            m = tl.minimum(eos - t0, BLOCK).to(tl.int32)
            qd, kd, mask, valid = _decays(s, m, BLOCK)
            rows = row0 + t0 + o_c
            q = tl.load(Q + rows[:, None] * DK + o_k[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
            k = tl.load(K + rows[:, None] * DK + o_k[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
            v = tl.load(V + rows[:, None] * DV + o_v[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
            qk = tl.dot(q, tl.trans(k), input_precision=PREC) * mask
            o = tl.dot(qk.to(v.dtype), v, input_precision=PREC)
            o += tl.dot(q, S.to(q.dtype), input_precision=PREC) * qd[:, None]
            tl.store(O + rows[:, None] * DV + o_v[None, :], o.to(O.dtype.element_ty), mask=valid[:, None] & mv[None, :])
            kk = (k * kd[:, None]).to(k.dtype)
            S = S * tl.exp(-s * m.to(tl.float32)) + tl.dot(tl.trans(kk), v, input_precision=PREC)
        if STORE_SF:
            tl.store(SF + st_off, S, mask=mk[:, None] & mv[None, :])

    @triton.jit
    def _dq_kernel(Q, K, V, DO, DQ, SLOPE, S0, CU, L, H, DK: tl.constexpr, DV: tl.constexpr,
                   BK: tl.constexpr, BV: tl.constexpr, BLOCK: tl.constexpr, VARLEN: tl.constexpr,
                   HAS_S0: tl.constexpr, PREC: tl.constexpr):
        i_k, i_nh = tl.program_id(0), tl.program_id(1)
        i_n, i_h = i_nh // H, i_nh % H
        bos, eos, row0 = _seq_bounds(CU, i_n, L, H, i_h, VARLEN)
        s = tl.load(SLOPE + i_h).to(tl.float32)
        o_k, o_v, o_c = i_k * BK + tl.arange(0, BK), tl.arange(0, BV), tl.arange(0, BLOCK)
        mk, mv = o_k < DK, o_v < DV
        S = tl.zeros([BK, BV], dtype=tl.float32)
        if HAS_S0:
            st_off = i_nh.to(tl.int64) * DK * DV + o_k[:, None] * DV + o_v[None, :]
            S = tl.load(S0 + st_off, mask=mk[:, None] & mv[None, :], other=0.0).to(tl.float32)
        for ib in range(0, tl.cdiv(eos - bos, BLOCK)):
            t0 = bos + ib * BLOCK
            m = tl.minimum(eos - t0, BLOCK).to(tl.int32)
            qd, kd, mask, valid = _decays(s, m, BLOCK)
            rows = row0 + t0 + o_c
            k = tl.load(K + rows[:, None] * DK + o_k[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
            v = tl.load(V + rows[:, None] * DV + o_v[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
            do = tl.load(DO + rows[:, None] * DV + o_v[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
            dp = tl.dot(do, tl.trans(v), input_precision=PREC) * mask
            dq = tl.dot(dp.to(k.dtype), k, input_precision=PREC)
            dq += tl.dot(do, tl.trans(S.to(do.dtype)), input_precision=PREC) * qd[:, None]
            tl.store(DQ + rows[:, None] * DK + o_k[None, :], dq.to(DQ.dtype.element_ty),
                     mask=valid[:, None] & mk[None, :])
            kk = (k * kd[:, None]).to(k.dtype)
            S = S * tl.exp(-s * m.to(tl.float32)) + tl.dot(tl.trans(kk), v, input_precision=PREC)

    @triton.jit
    def _dk_kernel(Q, K, V, DO, DK_, DS0, SLOPE, DSF, CU, L, H, DK: tl.constexpr, DV: tl.constexpr,
                   BK: tl.constexpr, BV: tl.constexpr, BLOCK: tl.constexpr, VARLEN: tl.constexpr,
                   HAS_DSF: tl.constexpr, PREC: tl.constexpr):
        i_k, i_nh = tl.program_id(0), tl.program_id(1)
        i_n, i_h = i_nh // H, i_nh % H
        bos, eos, row0 = _seq_bounds(CU, i_n, L, H, i_h, VARLEN)
        s = tl.load(SLOPE + i_h).to(tl.float32)
        o_k, o_v, o_c = i_k * BK + tl.arange(0, BK), tl.arange(0, BV), tl.arange(0, BLOCK)
        mk, mv = o_k < DK, o_v < DV
        st_off = i_nh.to(tl.int64) * DK * DV + o_k[:, None] * DV + o_v[None, :]
        dS = tl.zeros([BK, BV], dtype=tl.float32)
        if HAS_DSF:
            dS = tl.load(DSF + st_off, mask=mk[:, None] & mv[None, :], other=0.0).to(tl.float32)
        nb = tl.cdiv(eos - bos, BLOCK)
        for i in range(0, nb):
            t0 = bos + (nb - 1 - i) * BLOCK
            m = tl.minimum(eos - t0, BLOCK).to(tl.int32)
            qd, kd, mask, valid = _decays(s, m, BLOCK)
            rows = row0 + t0 + o_c
            q = tl.load(Q + rows[:, None] * DK + o_k[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
            v = tl.load(V + rows[:, None] * DV + o_v[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
            do = tl.load(DO + rows[:, None] * DV + o_v[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
            dp = tl.dot(do, tl.trans(v), input_precision=PREC) * mask
            dk = tl.dot(tl.trans(dp.to(q.dtype)), q, input_precision=PREC)
            dk += tl.dot(v, tl.trans(dS.to(v.dtype)), input_precision=PREC) * kd[:, None]
            tl.store(DK_ + rows[:, None] * DK + o_k[None, :], dk.to(DK_.dtype.element_ty),
                     mask=valid[:, None] & mk[None, :])
            qq = (q * qd[:, None]).to(q.dtype)
            dS = dS * tl.exp(-s * m.to(tl.float32)) + tl.dot(tl.trans(qq), do, input_precision=PREC)
        tl.store(DS0 + st_off, dS, mask=mk[:, None] & mv[None, :])

    @triton.jit
    def _dv_kernel(Q, K, DO, DV_, SLOPE, DSF, CU, L, H, DK: tl.constexpr, DV: tl.constexpr,
                   BK: tl.constexpr, BV: tl.constexpr, BLOCK: tl.constexpr, VARLEN: tl.constexpr,
                   HAS_DSF: tl.constexpr, PREC: tl.constexpr):
        i_v, i_nh = tl.program_id(0), tl.program_id(1)
        i_n, i_h = i_nh // H, i_nh % H
        bos, eos, row0 = _seq_bounds(CU, i_n, L, H, i_h, VARLEN)
        s = tl.load(SLOPE + i_h).to(tl.float32)
        o_k, o_v, o_c = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BLOCK)
        mk, mv = o_k < DK, o_v < DV
        dS = tl.zeros([BK, BV], dtype=tl.float32)
        if HAS_DSF:
            st_off = i_nh.to(tl.int64) * DK * DV + o_k[:, None] * DV + o_v[None, :]
            dS = tl.load(DSF + st_off, mask=mk[:, None] & mv[None, :], other=0.0).to(tl.float32)
        nb = tl.cdiv(eos - bos, BLOCK)
        for i in range(0, nb):
            t0 = bos + (nb - 1 - i) * BLOCK
            m = tl.minimum(eos - t0, BLOCK).to(tl.int32)
            qd, kd, mask, valid = _decays(s, m, BLOCK)
            rows = row0 + t0 + o_c
            q = tl.load(Q + rows[:, None] * DK + o_k[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
            k = tl.load(K + rows[:, None] * DK + o_k[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
            do = tl.load(DO + rows[:, None] * DV + o_v[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
            a = tl.dot(q, tl.trans(k), input_precision=PREC) * mask
            dv = tl.dot(tl.trans(a.to(do.dtype)), do, input_precision=PREC)
            kk = (k * kd[:, None]).to(k.dtype)
            dv += tl.dot(kk, dS.to(k.dtype), input_precision=PREC)
            tl.store(DV_ + rows[:, None] * DV + o_v[None, :], dv.to(DV_.dtype.element_ty),
                     mask=valid[:, None] & mv[None, :])
            qq = (q * qd[:, None]).to(q.dtype)
            dS = dS * tl.exp(-s * m.to(tl.float32)) + tl.dot(tl.trans(qq), do, input_precision=PREC)


def _pow2(n: int, lo: int = 16) -> int:
    return max(lo, 1 << (int(n) - 1).bit_length())


def _geometry(q: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor | None) -> dict:
    B, H, L, Dk = q.shape
    Dv = v.shape[-1]
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    BK, BV = _pow2(Dk), _pow2(Dv)
    return {"N": N, "H": H, "L": L, "DK": Dk, "DV": Dv, "BK": BK, "BV": BV, "TK": min(BK, 64), "TV": min(BV, 64),
            "PREC": "ieee" if q.dtype == torch.float32 else "tf32"}


class _TritonFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, slope, init, cu, geo):
        N, H, L, Dk, Dv = geo["N"], geo["H"], geo["L"], geo["DK"], geo["DV"]
        o = torch.empty_like(v)
        final = torch.empty(N, H, Dk, Dv, device=q.device, dtype=torch.float32)
        grid = (triton.cdiv(Dv, geo["TV"]), N * H)
        _fwd_kernel[grid](q, k, v, o, slope, init if init is not None else final, final,
                          cu if cu is not None else slope, L, H, DK=Dk, DV=Dv, BK=geo["BK"], BV=geo["TV"],
                          BLOCK=BLOCK, VARLEN=cu is not None, HAS_S0=init is not None, STORE_SF=True,
                          PREC=geo["PREC"])
        ctx.save_for_backward(q, k, v, slope, init, cu)
        ctx.geo = geo
        return o, final

    @staticmethod
    def backward(ctx, do, dfinal):
        q, k, v, slope, init, cu = ctx.saved_tensors
        geo = ctx.geo
        N, H, L, Dk, Dv = geo["N"], geo["H"], geo["L"], geo["DK"], geo["DV"]
        do = do.contiguous()
        dsf = dfinal.float().contiguous() if dfinal is not None else None
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        dinit = torch.empty(N, H, Dk, Dv, device=q.device, dtype=torch.float32)
        cu_arg = cu if cu is not None else slope
        common = {"DK": Dk, "DV": Dv, "BLOCK": BLOCK, "VARLEN": cu is not None, "PREC": geo["PREC"]}
        gk, gv = (triton.cdiv(Dk, geo["TK"]), N * H), (triton.cdiv(Dv, geo["TV"]), N * H)
        _dq_kernel[gk](q, k, v, do, dq, slope, init if init is not None else dinit, cu_arg, L, H, BK=geo["TK"],
                       BV=geo["BV"], HAS_S0=init is not None, **common)
        _dk_kernel[gk](q, k, v, do, dk, dinit, slope, dsf if dsf is not None else dinit, cu_arg, L, H,
                       BK=geo["TK"], BV=geo["BV"], HAS_DSF=dsf is not None, **common)
        _dv_kernel[gv](q, k, do, dv, slope, dsf if dsf is not None else dinit, cu_arg, L, H, BK=geo["BK"],
                       BV=geo["TV"], HAS_DSF=dsf is not None, **common)
        return dq, dk, dv, None, (dinit if init is not None else None), None, None


def triton_lightning_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    slope: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Lightning attention by the Triton kernels (same contract as ``lightning_attention``; inputs are trusted).

    Args:
        q, k: (B, H, L, Dk). v: (B, H, L, Dv); float32, bfloat16 or float16. slope: (H,) (no gradient).
        initial_state: (N, H, Dk, Dv) or None; N = B, or the number of packed sequences.
        output_final_state: also return S after the last token of each sequence.
        cu_seqlens: (N + 1,) int offsets of packed sequences (then B == 1), or None.

    Returns:
        o (B, H, L, Dv) in v's dtype; final state (N, H, Dk, Dv) float32 or None.
    """
    if triton is None:
        raise RuntimeError("Triton is not installed; use backend='chunked'.")
    geo = _geometry(q, v, cu_seqlens)
    init = None if initial_state is None else initial_state.float().contiguous()
    cu = None if cu_seqlens is None else cu_seqlens.to(torch.int32).contiguous()
    o, final = _TritonFunction.apply(q.contiguous(), k.contiguous(), v.contiguous(), slope.detach().float().contiguous(),
                                     init, cu, geo)
    return o, (final if output_final_state else None)
