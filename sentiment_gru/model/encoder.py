"""Bidirectional multi-layer GRU encoder for padded batches of variable length.

`BiGRUEncoder` computes exactly what `nn.GRU` computes on
`pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)`:
each direction reads only a sequence's real tokens, padded outputs are zero and
`h_n` holds each direction's state after its last real token.

Two implementations share one `nn.GRU`'s parameters (so checkpoints load into
either):

- ``"packed"``: the reference, `nn.GRU` on a `PackedSequence`.
- ``"fast"``: the same arithmetic on the packed token layout (time-major, longest
  sequence first, no padding) with a hand-written backward pass. Per layer, the
  input projections of all tokens are two matrix products (through oneDNN on the
  CPU), and the whole recurrence is one call of the compiled kernels
  (`gru_kernels.c`, one thread per direction), its backward pass another. On the
  CPU the packed `nn.GRU` slows down sharply with length: the backward pass of each
  step's slice of the packed data allocates and zero-fills a gradient the size of
  all the packed data. ``"fast"`` avoids that and computes nothing for padding.
  Without the compiled kernels (no C compiler, or `SENTIMENT_GRU_KERNELS=0`) and
  off the CPU it runs the recurrence step by step in torch operations.

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

from ..config import GRU_IMPLS as IMPLS
from . import kernels


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
        self.batch_sizes = batch_sizes  # [max_len]: sequences still running at each step
        self.offsets = offsets  # [max_len]: each step's first packed row
        self.sorted_indices = sorted_indices  # [batch]: row i of every step -> its batch element
        # Packed row -> flat position in the padded [batch * seq] layout.
        self.padded_index = sorted_indices[i] * seq_len + t  # [tokens]
        # Packed row (t, i) -> row (len_i - 1 - t, i): the sequence reversed within its length.
        self.reverse_index = offsets[seq_lengths - 1 - t] + i  # [tokens]
        # Original batch element b -> packed row of its last real token.
        ranks = torch.empty_like(sorted_indices)
        ranks[sorted_indices] = torch.arange(len(lengths))
        self.last_index = offsets[lengths - 1] + ranks  # [batch]
        self.first_index = ranks  # original batch element b -> packed row of its first token (t = 0)


def _onednn_ready(*tensors: Tensor) -> bool:
    """Whether oneDNN's matmul applies: float32 CPU tensors, oneDNN built into torch and enabled."""
    return (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors))


def _linear(x: Tensor, w: Tensor) -> Tensor:
    """x w^T for x: [M, K], w: [N, K] (any strides) through oneDNN's matmul: [M, N]."""
    return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")


class _Projection(torch.autograd.Function):
    """Both directions' input projections x0 w0^T and x1 w1^T over all tokens, forward and backward through
    oneDNN's matmul. x0 and x1 are the same tensor for the classifier; language-model pretraining gives each
    direction its own input (see BiGRUEncoder.forward_directions).

    torch.mm computes the same with MKL's sgemm, which on AMD CPUs takes a path without
    AVX-512 and runs at half of oneDNN's speed or less; on Intel CPUs the two are about even.
    """

    @staticmethod
    def forward(ctx, x0, x1, w0, w1):
        ctx.save_for_backward(x0, x1, w0, w1)
        ctx.shared = x0 is x1
        return _linear(x0, w0), _linear(x1, w1)

    @staticmethod
    def backward(ctx, grad0, grad1):
        x0, x1, w0, w1 = ctx.saved_tensors
        grad_x0 = grad_x1 = grad_w0 = grad_w1 = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            grad_x0 = _linear(grad0, w0.t().contiguous())
            grad_x1 = _linear(grad1, w1.t().contiguous())
            if ctx.shared:  # one input: its gradient is the sum, returned once
                grad_x0, grad_x1 = grad_x0.add_(grad_x1), None
        if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
            # [in, tokens]: grad_w^T = x^T grad, with grad^T read as strided weights
            x0_t = x0.t().contiguous()
            x1_t = x0_t if ctx.shared else x1.t().contiguous()
            grad_w0, grad_w1 = (_linear(x_t, grad.t()).t() for x_t, grad in ((x0_t, grad0), (x1_t, grad1)))
        return grad_x0, grad_x1, grad_w0, grad_w1


def _project(x: Tensor, w0: Tensor, w1: Tensor, x1: Tensor | None = None) -> list[Tensor]:
    """x w0^T and x w1^T (x1 w1^T when `x1` is given) for x: [tokens, in], w0, w1: [3H, in]: oneDNN where it
    applies (float32 on the CPU, no autocast), else torch.mm.

    One product per direction rather than one of twice the width: each output then stays under
    glibc's largest mmap threshold (32 MB) up to twice as many tokens (see _forward_fused).
    """
    x1 = x if x1 is None else x1
    if _onednn_ready(x, x1, w0, w1) and not torch.is_autocast_enabled("cpu"):
        tokens = x.shape[0]
        rows = onednn_rows(tokens)
        if rows != tokens:  # zero rows project to zero rows, and their gradients are dropped by the slice
            shared, pad = x1 is x, (0, 0, 0, rows - tokens)
            x = torch.nn.functional.pad(x, pad)
            x1 = x if shared else torch.nn.functional.pad(x1, pad)
        return [gi[:tokens] for gi in _Projection.apply(x, x1, w0, w1)]
    return [x @ w0.t(), x1 @ w1.t()]


def onednn_rows(tokens: int) -> int:
    """The row count a projection of `tokens` rows is padded to: one of 8 sizes per power of two (at most 12.5% more).

    torch keeps a oneDNN primitive, with its buffers, for every input shape it has run and never frees it: with a new
    token count per batch, a server's memory grew by about 1 MB per distinct count (715 MiB after 10,000 requests,
    1,162 MiB after 100,000). On this ladder a process meets at most 94 shapes up to 50,000 rows, and its memory levels off.
    """
    if tokens <= 16:
        return 16
    step = 1 << (tokens.bit_length() - 4)
    return -(-tokens // step) * step


class _BiGRURecurrence(torch.autograd.Function):
    """Both directions' GRU recurrences over packed rows, given the input projections.

    Inputs: gi0, gi1: [tokens, 3*hidden], the two directions' input projections x W_ih^T in
    packed order, then each direction's parameters in nn.GRU's order: weight_hh
    [3*hidden, hidden], bias_ih and bias_hh [3*hidden], direction 0's and then direction 1's.
    Returns out: [tokens, 2*hidden], both directions' states in packed order, and
    h_n: [2, batch, hidden], each direction's final state (direction 0 after a sequence's
    last token, direction 1 after its first). Where the compiled kernels apply, the forward
    pass is one C call and the backward pass another; elsewhere each step is one batched
    matmul for both directions plus the gate arithmetic in torch.
    """

    @staticmethod
    def forward(ctx, layout, need_grad, gi0, gi1, *params):
        ctx.set_materialize_grads(False)
        ctx.param_dtype, ctx.gi_dtype = params[0].dtype, gi0.dtype
        lib = _kernels_for(gi0, params[0])
        if lib is not None:
            # Under CPU autocast gi arrives in bf16; the recurrence itself stays float32.
            with torch.autocast("cpu", enabled=False):
                out, saved = _forward_fused(lib, layout, need_grad, gi0.float(), gi1.float(), *params)
        else:
            # Stacked per direction: [2, 3H, H], [2, 3H], [2, 3H]; e.g. bf16 like gi under CUDA autocast.
            w_hh, b_ih, b_hh = (torch.stack([params[k], params[k + 3]]).to(gi0.dtype) for k in range(3))
            out, saved = _forward_torch(gi0, gi1, w_hh, b_ih, b_hh, layout, need_grad)
        H = params[0].size(1)
        last, first = layout.last_index.to(out.device), layout.first_index.to(out.device)
        h_n = torch.stack([out[last, :H], out[first, H:]])  # [2, batch, H]
        if need_grad:
            ctx.lib, ctx.layout = lib, layout
            ctx.save_for_backward(*saved)
        return out, h_n

    @staticmethod
    def backward(ctx, grad_out, grad_h_n):
        if ctx.lib is not None:
            grads = _backward_fused(ctx.lib, ctx.layout, grad_out, grad_h_n, *ctx.saved_tensors)
        else:
            grad_gi0, grad_gi1, *stacked = _backward_torch(grad_out, grad_h_n, *ctx.saved_tensors, ctx.layout)
            grads = grad_gi0, grad_gi1, *(g[d] for d in range(2) for g in stacked)
        grad_gi0, grad_gi1, *grad_params = grads
        return (None, None, grad_gi0.to(ctx.gi_dtype), grad_gi1.to(ctx.gi_dtype),
                *(g.to(ctx.param_dtype) for g in grad_params))


def _kernels_for(gi: Tensor, w_hh: Tensor):
    """The compiled kernels when they apply (CPU, float32 weights, float32 or bf16 gi), else None."""
    if gi.device.type != "cpu" or w_hh.dtype != torch.float32 or gi.dtype not in (torch.float32, torch.bfloat16):
        return None
    return kernels.load()


def _forward_fused(lib, layout, need_grad, gi0, gi1, *params):
    """The recurrence in one C call; returns out and what backward needs."""
    gi0, gi1, *params = (t.contiguous() for t in (gi0, gi1, *params))
    w_hh0, b_ih0, b_hh0, w_hh1, b_ih1, b_hh1 = params
    tokens, H = gi0.size(0), w_hh0.size(1)
    out = gi0.new_empty(tokens, 2 * H)
    # Step order: each row's r, z, n and W_hn h + b_hn. One tensor per direction, as for gi: the
    # smaller a tensor, the longer it stays under glibc's largest mmap threshold (32 MB), above
    # which its memory is mapped and faulted in afresh every step instead of being recycled.
    gates = [gi0.new_empty(tokens, 4 * H) for _ in range(2)] if need_grad else [None, None]
    status = lib.gru_forward(
        kernels.pointers(gi0, gi1), kernels.pointers(w_hh0, w_hh1), kernels.pointers(b_ih0, b_ih1),
        kernels.pointers(b_hh0, b_hh1), layout.reverse_index.data_ptr(), layout.offsets.data_ptr(),
        layout.batch_sizes.data_ptr(), len(layout.offsets), tokens, H, out.data_ptr(), kernels.pointers(*gates),
    )
    _check(status)
    return out, (out, *gates, w_hh0, w_hh1)


def _backward_fused(lib, layout, grad_out, grad_h_n, out, gates0, gates1, w_hh0, w_hh1):
    """grad_gi0, grad_gi1 (packed order) and the parameters' gradients (forward's order), in one C call."""
    tokens, H = out.size(0), w_hh0.size(1)
    grad_gi = [out.new_empty(tokens, 3 * H) for _ in range(2)]
    grad_params = [[out.new_empty(3 * H, H), out.new_empty(3 * H), out.new_empty(3 * H)] for _ in range(2)]
    grad_out = grad_out.float().contiguous() if grad_out is not None else None
    grad_h_n = grad_h_n.float().contiguous() if grad_h_n is not None else None
    status = lib.gru_backward(
        grad_out.data_ptr() if grad_out is not None else None, grad_h_n.data_ptr() if grad_h_n is not None else None,
        layout.sorted_indices.data_ptr(), layout.reverse_index.data_ptr(), kernels.pointers(w_hh0, w_hh1),
        out.data_ptr(), kernels.pointers(gates0, gates1), layout.offsets.data_ptr(), layout.batch_sizes.data_ptr(),
        len(layout.offsets), tokens, H, kernels.pointers(*grad_gi),
        *(kernels.pointers(*(grad_params[d][k] for d in range(2))) for k in range(3)),
    )
    _check(status)
    return (*grad_gi, *grad_params[0], *grad_params[1])


def _check(status: int) -> None:
    if status != 0:
        raise MemoryError("The GRU kernels could not allocate their scratch memory.")


def _forward_torch(gi0, gi1, w_hh, b_ih, b_hh, layout, need_grad):
    """The recurrence in torch operations (any dtype and device); returns out and what backward needs."""
    H = w_hh.size(2)
    rev = layout.reverse_index.to(gi0.device)
    tokens = gi0.size(0)
    # b_hr and b_hz add to the input projection; b_hn stays inside r * (...).
    b = b_ih + torch.cat([b_hh[:, :2 * H], b_hh.new_zeros(2, H)], 1)  # [2, 3H]
    gi = torch.stack([gi0 + b[0], (gi1 + b[1]).index_select(0, rev)])  # [2, tokens, 3H], step order
    hs = gi.new_empty(2, tokens, H)  # [2, tokens, H]
    rz = gi.new_empty(2, tokens, 2 * H)  # gates r, z
    n = gi.new_empty(2, tokens, H)  # candidate state
    ghn = gi.new_empty(2, tokens, H)  # W_hn h + b_hn
    h_prev = gi.new_zeros(2, tokens, H) if need_grad else None  # state before each row's step
    w_hh_t = w_hh.transpose(1, 2)  # [2, H, 3H]
    b_hn = b_hh[:, None, 2 * H:]  # [2, 1, H]
    h = gi.new_zeros(2, int(layout.batch_sizes[0]), H)  # initial state
    for t, (off, bs) in enumerate(zip(layout.offsets.tolist(), layout.batch_sizes.tolist())):
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
    return out, (w_hh, h_prev, rz, n, ghn)


def _backward_torch(grad_out, grad_h_n, w_hh, h_prev, rz, n, ghn, layout):
    """grad_gi0, grad_gi1 (packed order), then grad_w_hh, grad_b_ih and grad_b_hh stacked per direction,
    in torch operations."""
    H = w_hh.size(2)
    tokens = h_prev.size(1)
    rev = layout.reverse_index.to(h_prev.device)
    if grad_out is None:
        grad_out = h_prev.new_zeros(tokens, 2 * H)
    if grad_h_n is not None:  # a final state's gradient joins its row's output gradient
        grad_out = grad_out.clone(memory_format=torch.contiguous_format)
        grad_out[:, :H].index_add_(0, layout.last_index.to(h_prev.device), grad_h_n[0].to(grad_out.dtype))
        grad_out[:, H:].index_add_(0, layout.first_index.to(h_prev.device), grad_h_n[1].to(grad_out.dtype))
    dh = torch.stack([grad_out[:, :H], grad_out[:, H:].index_select(0, rev)])  # [2, tokens, H], step order
    d_gh = h_prev.new_empty(2, tokens, 3 * H)  # d(W_hh h + b_hh) per gate
    d_n = h_prev.new_empty(2, tokens, H)  # d(W_in x + b_in + r * ghn)
    one = h_prev.new_ones(())
    steps = list(zip(layout.offsets.tolist(), layout.batch_sizes.tolist()))
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
    grad_w_hh = torch.bmm(d_gh.transpose(1, 2), h_prev)  # [2, 3H, H]: sum_t d_gh_t^T h_{t-1}
    return d_gi[0], d_gi[1].index_select(0, rev), grad_w_hh, d_gi.sum(1), d_gh.sum(1)


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

    def _forward_fast(self, x: Tensor, lengths: Tensor, directions_apart: bool = False) -> tuple[Tensor, Tensor]:
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
            if layer > 0 and directions_apart:  # each direction reads its own half of the layer below
                # (column slices of the weights copied: oneDNN runs a strided weight matrix many times slower)
                gi = _project(layer_in[:, :H].contiguous(), w[0][:, :H].contiguous(), w[4][:, H:].contiguous(),
                              x1=layer_in[:, H:].contiguous())
            else:
                gi = _project(layer_in, w[0], w[4])  # [tokens, 3H] per direction
            layer_in, h_n = _BiGRURecurrence.apply(layout, need_grad, *gi, *w[1:4], *w[5:8])  # [tokens, 2H], [2, batch, H]
            finals.append(h_n)
        out = layer_in.new_zeros(batch * seq, 2 * H).index_copy_(0, padded_index, layer_in)
        return out.view(batch, seq, 2 * H), torch.cat(finals)

    def forward_directions(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The outputs [batch, seq, 2*hidden] of two one-way stacks in this encoder's weights, for language-model
        pretraining: above the first layer each direction reads only its own direction's outputs (the first
        `hidden` input columns of the forward weights, the last `hidden` of the backward ones), so the forward
        half at position t has seen tokens 0..t and the backward half tokens t..end. The other input columns
        get no gradient here; the classifier learns them when it is trained.
        """
        return self._forward_fast(x, lengths, directions_apart=True)[0]
