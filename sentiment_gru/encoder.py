"""Bidirectional multi-layer GRU encoder for padded batches of variable length.

`BiGRUEncoder` computes exactly what `nn.GRU` computes on
`pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)`:
each direction reads only a sequence's real tokens, padded outputs are zero and
`h_n` holds each direction's state after its last real token.

Two implementations share one `nn.GRU`'s parameters (so checkpoints load into
either):

- ``"packed"``: the reference, `nn.GRU` on a `PackedSequence`.
- ``"fast"``: the same arithmetic on the packed token layout (time-major, longest
  sequence first, no padding), with both directions advanced together by one
  batched matmul per step and a hand-written backward pass. On the CPU the
  packed `nn.GRU` slows down sharply with length: the backward pass of each
  step's slice of the packed data allocates and zero-fills a gradient the size
  of all the packed data. ``"fast"`` avoids that and computes nothing for padding.

The GRU equations (PyTorch's form; gates stacked r, z, n in `weight_ih`/`weight_hh`):

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import kernels
from .config import GRU_IMPLS as IMPLS


def resolve_impl(impl: str, device: torch.device) -> str:
    """Return the concrete implementation ("packed" or "fast") for `impl` on `device`."""
    _check_impl(impl)
    if impl != "auto":
        return impl
    # cuDNN runs packed sequences natively and fast. On the CPU the fast path trains several times
    # faster, and it also leads for inference: 1.1-1.7x on batches of 64 texts of 32-256 tokens and
    # 1.6-2.4x for one text of 32-128 tokens (`python scripts/benchmark.py --batch-size 1 --lengths 8 32 128`);
    # only a single text of a few tokens runs faster packed, by a fraction of a millisecond.
    return "packed" if torch.device(device).type == "cuda" else "fast"


def _check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(
            f"The 'impl' option of BiGRUEncoder must be one of {', '.join(map(repr, IMPLS))}. "
            f"Got {impl!r} instead."
        )


class _PackedLayout:
    """Index maps between a padded batch and the packed (time-major, longest-first) token order."""

    def __init__(self, lengths: Tensor, seq_len: int):
        # Same call as pack_padded_sequence, so ties sort the same way (dropout masks match).
        sorted_lengths, sorted_indices = torch.sort(lengths, descending=True)
        max_len = int(sorted_lengths[0])
        steps = torch.arange(max_len)
        valid = steps[:, None] < sorted_lengths[None, :]  # [max_len, batch]
        batch_sizes = valid.sum(1)  # [max_len]
        offsets = torch.cumsum(batch_sizes, 0) - batch_sizes  # [max_len]
        t, i = valid.nonzero(as_tuple=True)  # row-major over (t, i): the packed order
        seq_lengths = sorted_lengths[i]
        self.batch_sizes = batch_sizes.tolist()
        self.offsets = offsets.tolist()
        # Packed row -> flat position in the padded [batch * seq] layout.
        self.padded_index = sorted_indices[i] * seq_len + t  # [tokens]
        # Packed row (t, i) -> row (len_i - 1 - t, i): the sequence reversed within its length.
        self.reverse_index = offsets[seq_lengths - 1 - t] + i  # [tokens]
        # Original batch element b -> packed row of its last real token.
        ranks = torch.empty_like(sorted_indices)
        ranks[sorted_indices] = torch.arange(len(lengths))
        self.last_index = offsets[lengths - 1] + ranks  # [batch]
        self.first_index = ranks  # original batch element b -> packed row of its first token (t = 0)


class _BiGRURecurrence(torch.autograd.Function):
    """Both directions' GRU recurrences over packed rows, given the input projections.

    Inputs: gi: [tokens, 6*hidden] in packed order (x W_ih^T + b_ih plus b_hr and b_hz;
    direction 0 in columns :3H, direction 1 in 3H:), w_hh: [2, 3*hidden, hidden],
    b_hn: [2, hidden]. Returns out: [tokens, 2*hidden], both directions' states in
    packed order, and h_n: [2, batch, hidden], each direction's final state (direction 0
    after a sequence's last token, direction 1 after its first). Each step is one batched
    matmul for both directions plus the gate arithmetic on the rows of the sequences still
    running (one fused C call where the compiled kernels apply); the backward pass mirrors it.
    """

    @staticmethod
    def forward(ctx, gi, w_hh, b_hn, layout, need_grad):
        ctx.set_materialize_grads(False)
        ctx.param_dtype, ctx.gi_dtype = w_hh.dtype, gi.dtype
        lib = _kernels_for(gi, w_hh)
        rev = layout.reverse_index.to(gi.device)
        if lib is not None:
            # Under CPU autocast gi arrives in bf16; the recurrence itself stays float32.
            with torch.autocast("cpu", enabled=False):
                out, saved = _forward_fused(lib, gi.float().contiguous(), w_hh, b_hn, rev, layout, need_grad)
        else:
            w_hh, b_hn = w_hh.to(gi.dtype), b_hn.to(gi.dtype)  # e.g. bf16 gi under CUDA autocast
            out, saved = _forward_torch(gi, w_hh, b_hn, rev, layout, need_grad)
        H = w_hh.size(2)
        last, first = layout.last_index.to(out.device), layout.first_index.to(out.device)
        h_n = torch.stack([out[last, :H], out[first, H:]])  # [2, batch, H]
        if need_grad:
            ctx.lib, ctx.layout = lib, layout
            ctx.save_for_backward(w_hh, rev, last, first, *saved)
        return out, h_n

    @staticmethod
    def backward(ctx, grad_out, grad_h_n):
        w_hh, rev, last, first, h_prev, rz, n, ghn = ctx.saved_tensors
        H = w_hh.size(2)
        if grad_out is None:
            grad_out = h_prev.new_zeros(h_prev.size(1), 2 * H)
        if grad_h_n is not None:  # a final state's gradient joins its row's output gradient
            grad_out = grad_out.clone(memory_format=torch.contiguous_format)
            grad_out[:, :H].index_add_(0, last, grad_h_n[0].to(grad_out.dtype))
            grad_out[:, H:].index_add_(0, first, grad_h_n[1].to(grad_out.dtype))
        if ctx.lib is not None:
            d_gh, grad_gi = _backward_fused(ctx.lib, grad_out.contiguous(), w_hh, rev, h_prev, rz, n, ghn, ctx.layout)
        else:
            d_gh, grad_gi = _backward_torch(grad_out, w_hh, rev, h_prev, rz, n, ghn, ctx.layout)
        grad_w_hh = torch.bmm(d_gh.transpose(1, 2), h_prev)  # [2, 3H, H]: sum_t d_gh_t^T h_{t-1}
        grad_b_hn = d_gh[..., 2 * H:].sum(1)  # [2, H]
        dtype = ctx.param_dtype
        return grad_gi.to(ctx.gi_dtype), grad_w_hh.to(dtype), grad_b_hn.to(dtype), None, None


def _kernels_for(gi: Tensor, w_hh: Tensor):
    """The compiled step kernels when they apply (CPU, float32 weights, float32 or bf16 gi), else None."""
    if gi.device.type != "cpu" or w_hh.dtype != torch.float32 or gi.dtype not in (torch.float32, torch.bfloat16):
        return None
    return kernels.load()


def _forward_fused(lib, gi, w_hh, b_hn, rev, layout, need_grad):
    """The recurrence with one fused C call per step for the gates; returns out and what backward needs."""
    H = w_hh.size(2)
    tokens = gi.size(0)
    out = gi.new_empty(tokens, 2 * H)
    hs = gi.new_empty(2, tokens, H)  # step order: each step's new states, the next step's matmul input
    rz = gi.new_empty(2, tokens, 2 * H)
    n = gi.new_empty(2, tokens, H)
    ghn = gi.new_empty(2, tokens, H)
    h_prev = gi.new_empty(2, tokens, H) if need_grad else None
    w_hh_t = w_hh.transpose(1, 2).contiguous()  # [2, H, 3H]
    b_hn = b_hn.contiguous()
    gi_p, rev_p, b_p, hs_p, out_p, rz_p, n_p, ghn_p = (t.data_ptr() for t in (gi, rev, b_hn, hs, out, rz, n, ghn))
    h_prev_p = h_prev.data_ptr() if need_grad else None
    prev = -1
    for off, bs in zip(layout.offsets, layout.batch_sizes):
        gh = gi.new_zeros(2, bs, 3 * H) if prev < 0 else torch.bmm(hs[:, prev:prev + bs], w_hh_t)  # [2, bs, 3H]
        lib.gru_forward_step(gi_p, rev_p, gh.data_ptr(), b_p, hs_p, out_p, rz_p, n_p, ghn_p, h_prev_p, tokens, off, prev, bs, H)
        prev = off
    return out, (h_prev, rz, n, ghn)


def _backward_fused(lib, grad_out, w_hh, rev, h_prev, rz, n, ghn, layout):
    """d(W_hh h + b_hh) per gate (step order) and d(gi) (packed order): one C call and one matmul per step."""
    H = w_hh.size(2)
    tokens = h_prev.size(1)
    dh = h_prev.new_empty(2, tokens, H)  # step order: the share each row's state gets from the next step
    d_gh = h_prev.new_empty(2, tokens, 3 * H)
    grad_gi = h_prev.new_empty(tokens, 6 * H)
    pointers = [t.data_ptr() for t in (grad_out, grad_gi, rev, dh)], [t.data_ptr() for t in (rz, n, ghn, h_prev, d_gh)]
    m, m_rows = None, 0  # the next step's d_gh W_hh: [2, m_rows, H]
    steps = list(zip(layout.offsets, layout.batch_sizes))
    for k in range(len(steps) - 1, -1, -1):
        off, bs = steps[k]
        prev = steps[k - 1][0] if k > 0 else -1
        lib.gru_backward_step(*pointers[0], m.data_ptr() if m is not None else None, *pointers[1],
                              tokens, off, prev, bs, m_rows, H)
        if k > 0:
            m, m_rows = torch.bmm(d_gh[:, off:off + bs], w_hh), bs
    return d_gh, grad_gi


def _forward_torch(gi, w_hh, b_hn, rev, layout, need_grad):
    """The recurrence in torch operations (any dtype and device); returns out and what backward needs."""
    H = w_hh.size(2)
    tokens = gi.size(0)
    gi = torch.stack([gi[:, :3 * H], gi[:, 3 * H:].index_select(0, rev)])  # [2, tokens, 3H], step order
    hs = gi.new_empty(2, tokens, H)  # [2, tokens, H]
    rz = gi.new_empty(2, tokens, 2 * H)  # gates r, z
    n = gi.new_empty(2, tokens, H)  # candidate state
    ghn = gi.new_empty(2, tokens, H)  # W_hn h + b_hn
    h_prev = gi.new_zeros(2, tokens, H) if need_grad else None  # state before each row's step
    w_hh_t = w_hh.transpose(1, 2)  # [2, H, 3H]
    b_hn = b_hn[:, None, :]  # [2, 1, H]
    h = gi.new_zeros(2, layout.batch_sizes[0], H)  # initial state
    for t, (off, bs) in enumerate(zip(layout.offsets, layout.batch_sizes)):
        rows = slice(off, off + bs)
        h = h[:, :bs]  # sequences still running: the first bs (longest first)
        if need_grad and t > 0:
            h_prev[:, rows] = h
        gh = torch.bmm(h, w_hh_t)  # [2, bs, 3H]
        rz_t, n_t, ghn_t = rz[:, rows], n[:, rows], ghn[:, rows]
        torch.add(gi[:, rows, :2 * H], gh[..., :2 * H], out=rz_t).sigmoid_()
        torch.add(gh[..., 2 * H:], b_hn, out=ghn_t)
        torch.addcmul(gi[:, rows, 2 * H:], rz_t[..., :H], ghn_t, out=n_t).tanh_()
        torch.addcmul(n_t, rz_t[..., H:], h - n_t, out=hs[:, rows])  # (1 - z) n + z h
        h = hs[:, rows]
    out = torch.cat([hs[0], hs[1].index_select(0, rev)], 1)  # rev is its own inverse
    return out, (h_prev, rz, n, ghn)


def _backward_torch(grad_out, w_hh, rev, h_prev, rz, n, ghn, layout):
    """d(W_hh h + b_hh) per gate (step order) and d(gi) (packed order), in torch operations."""
    H = w_hh.size(2)
    tokens = h_prev.size(1)
    dh = torch.stack([grad_out[:, :H], grad_out[:, H:].index_select(0, rev)])  # [2, tokens, H], step order
    d_gh = h_prev.new_empty(2, tokens, 3 * H)  # d(W_hh h + b_hh) per gate
    d_n = h_prev.new_empty(2, tokens, H)  # d(W_in x + b_in + r * ghn)
    one = h_prev.new_ones(())
    steps = list(zip(layout.offsets, layout.batch_sizes))
    for k in range(len(steps) - 1, -1, -1):
        off, bs = steps[k]
        rows = slice(off, off + bs)
        dh_t, rz_t, n_t, d_gh_t = dh[:, rows], rz[:, rows], n[:, rows], d_gh[:, rows]
        z_t = rz_t[..., H:]
        dh_z = dh_t * z_t  # d(h_prev) through the z * h term
        torch.mul(dh_t - dh_z, torch.addcmul(one, n_t, n_t, value=-1), out=d_n[:, rows])
        torch.mul(d_n[:, rows], rz_t[..., :H], out=d_gh_t[..., 2 * H:])
        torch.mul(d_n[:, rows], ghn[:, rows], out=d_gh_t[..., :H])
        torch.mul(dh_t, h_prev[:, rows] - n_t, out=d_gh_t[..., H:2 * H])
        d_gh_t[..., :2 * H].mul_(torch.addcmul(rz_t, rz_t, rz_t, value=-1))  # sigmoid'
        if k > 0:
            prev = steps[k - 1][0]
            dh_prev = dh[:, prev:prev + bs]
            dh_prev.add_(dh_z).baddbmm_(d_gh_t, w_hh)
    d_gi = torch.cat([d_gh[..., :2 * H], d_n], 2)  # [2, tokens, 3H], step order
    return d_gh, torch.cat([d_gi[0], d_gi[1].index_select(0, rev)], 1)


class BiGRUEncoder(nn.Module):
    """Bidirectional GRU over padded batches, with `nn.GRU`-on-packed-sequence semantics.

    Args:
        impl: "packed" (nn.GRU on a PackedSequence), "fast" (this module's packed
            recurrence, several times faster to train on the CPU) or "auto" (fast
            on the CPU, packed on CUDA). May be reassigned after construction.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        impl: str = "auto",
    ):
        super().__init__()
        self.gru = nn.GRU(
            input_size, hidden_size, num_layers,
            batch_first=True, bidirectional=True, dropout=dropout,
        )
        self.impl = impl

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        _check_impl(value)
        self._impl = value

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Encode `x`: [batch, seq, input_size] with `lengths`: [batch] (int64, CPU, all >= 1).

        Returns outputs: [batch, seq, 2*hidden] (zero at padding) and
        h_n: [num_layers*2, batch, hidden].
        """
        if resolve_impl(self.impl, x.device) == "packed":
            return self._forward_packed(x, lengths)
        return self._forward_fast(x, lengths)

    def _forward_packed(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, h_n = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return out, h_n

    def _forward_fast(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        gru = self.gru
        batch, seq, _ = x.shape
        H = gru.hidden_size
        lengths = lengths.cpu()
        if lengths.numel() != batch or int(lengths.min()) < 1 or int(lengths.max()) > seq:
            raise ValueError(
                f"BiGRUEncoder needs one length per sequence, each in 1..{seq} (x.size(1)). "
                f"Got lengths {lengths.tolist()} for a batch of {batch}."
            )
        layout = _PackedLayout(lengths, seq)
        padded_index = layout.padded_index.to(x.device)
        need_grad = torch.is_grad_enabled()
        layer_in = x.reshape(batch * seq, -1).index_select(0, padded_index)  # [tokens, input_size], packed order
        finals = []
        for layer in range(gru.num_layers):
            if layer > 0 and gru.dropout > 0 and self.training:
                # Same mask draw as nn.GRU's dropout on the packed data.
                noise = torch.empty_like(layer_in).bernoulli_(1 - gru.dropout).div_(1 - gru.dropout)
                layer_in = layer_in * noise
            w = gru._flat_weights[layer * 8:(layer + 1) * 8]  # w_ih, w_hh, b_ih, b_hh; then reverse
            w_ih = torch.cat([w[0], w[4]])  # [6H, in]
            b_hh = torch.stack([w[3], w[7]])  # [2, 3H]
            # b_hr and b_hz add to the input projection; b_hn stays inside r * (...).
            bias = torch.stack([w[2], w[6]]) + torch.cat([b_hh[:, :2 * H], b_hh.new_zeros(2, H)], 1)  # [2, 3H]
            gi = torch.addmm(bias.reshape(-1), layer_in, w_ih.t())  # [tokens, 6H]
            layer_in, h_n = _BiGRURecurrence.apply(
                gi, torch.stack([w[1], w[5]]), b_hh[:, 2 * H:], layout, need_grad
            )  # [tokens, 2H], [2, batch, H]
            finals.append(h_n)
        out = layer_in.new_zeros(batch * seq, 2 * H).index_copy(0, padded_index, layer_in)
        return out.view(batch, seq, 2 * H), torch.cat(finals)
