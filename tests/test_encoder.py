"""BiGRUEncoder: the fast path against nn.GRU on packed sequences, and both against the GRU equations; its kernels and memory."""

import ctypes
import platform
import subprocess
import sys

import pytest
import torch

from sentiment_gru.model import encoder as encoder_module
from sentiment_gru.model import kernels
from sentiment_gru.model.encoder import BiGRUEncoder, resolve_impl

TOL = dict(atol=1e-5, rtol=1e-5)


def _run(encoder, impl, x, lengths, seed=0):
    """Forward + backward with `impl`; returns outputs, h_n, dx and each parameter's gradient."""
    encoder.impl = impl
    encoder.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    out, h_n = encoder(x, lengths)
    g = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=g)).sum() + (h_n * torch.randn(h_n.shape, generator=g)).sum()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in encoder.named_parameters()}
    return out.detach(), h_n.detach(), x.grad, grads


CASES = [
    # num_layers, input_size, hidden_size, lengths, seq
    (1, 5, 4, [3, 1, 7, 7, 2, 5], 9),  # seq > max length, a length-1 sequence
    (2, 8, 6, [4, 4, 4, 4], 4),  # all lengths equal
    (2, 3, 16, [1], 3),  # one sequence of one token
    (3, 7, 5, [2, 9, 9, 1, 6, 3, 8], 9),  # ties in the sort
    (2, 16, 12, list(range(20, 0, -1)), 25),
]


@pytest.mark.parametrize("num_layers, input_size, hidden_size, lengths, seq", CASES)
def test_fast_matches_packed_outputs_states_and_gradients(num_layers, input_size, hidden_size, lengths, seq, steps):
    torch.manual_seed(num_layers * 100 + hidden_size)
    encoder = BiGRUEncoder(input_size, hidden_size, num_layers)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), seq, input_size)
    ref = _run(encoder, "packed", x, lengths)
    fast = _run(encoder, "fast", x, lengths)
    assert fast[0].shape == (len(lengths), seq, 2 * hidden_size)
    assert fast[1].shape == (num_layers * 2, len(lengths), hidden_size)
    for name, a, b in [("outputs", ref[0], fast[0]), ("h_n", ref[1], fast[1]), ("x.grad", ref[2], fast[2])]:
        torch.testing.assert_close(b, a, **TOL, msg=name)
    for name in ref[3]:
        torch.testing.assert_close(fast[3][name], ref[3][name], **TOL, msg=name)
    padding = torch.arange(seq)[None, :] >= lengths[:, None]  # [batch, seq]
    assert (fast[0][padding] == 0).all()


LARGER_CASES = [
    # num_layers, input_size, hidden_size, batch, seq: several tiles of rows, the last one partial
    (2, 10, 33, 21, 30),  # hidden size past a multiple of 16 and of 32 by one: one-unit panel tails
    (1, 7, 40, 9, 12),  # 40 = 32 + 8
    (2, 24, 64, 17, 40),  # whole panels
]


@pytest.mark.parametrize("num_layers, input_size, hidden_size, batch, seq", LARGER_CASES)
def test_fast_matches_packed_on_larger_batches_and_hidden_sizes(num_layers, input_size, hidden_size, batch, seq, steps):
    torch.manual_seed(batch)
    encoder = BiGRUEncoder(input_size, hidden_size, num_layers)
    lengths = torch.randint(1, seq + 1, (batch,))
    lengths[3] = seq
    x = torch.randn(batch, seq, input_size)
    ref, fast = _run(encoder, "packed", x, lengths), _run(encoder, "fast", x, lengths)
    for name, a, b in [("outputs", ref[0], fast[0]), ("h_n", ref[1], fast[1]), ("x.grad", ref[2], fast[2])]:
        torch.testing.assert_close(b, a, **TOL, msg=name)
    for name in ref[3]:
        torch.testing.assert_close(fast[3][name], ref[3][name], **TOL, msg=name)


@pytest.mark.parametrize("used", ["outputs", "h_n"])
def test_gradients_when_the_loss_uses_only_outputs_or_only_final_states(used, steps):
    torch.manual_seed(4)
    encoder = BiGRUEncoder(6, 10, num_layers=2)
    lengths = torch.tensor([5, 1, 7, 3, 7])
    x = torch.randn(5, 7, 6)
    grads = []
    for impl in ("packed", "fast"):
        encoder.impl = impl
        encoder.zero_grad()
        xg = x.clone().requires_grad_(True)
        out, h_n = encoder(xg, lengths)
        (out if used == "outputs" else h_n).pow(2).sum().backward()
        grads.append([xg.grad] + [p.grad for p in encoder.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, **TOL)


def test_projection_through_onednn_matches_torch_matmuls():
    if not encoder_module._onednn_ready(torch.ones(1)):
        pytest.skip("oneDNN is not available in this torch build")
    torch.manual_seed(6)
    x = torch.randn(37, 11, requires_grad=True)
    w0, w1 = torch.randn(15, 11, requires_grad=True), torch.randn(15, 11, requires_grad=True)
    g0, g1 = torch.randn(37, 15), torch.randn(37, 15)
    results = []
    for project in (encoder_module._project, lambda x, w0, w1: (x @ w0.t(), x @ w1.t())):  # 37 rows padded to 40
        y0, y1 = project(x, w0, w1)
        grads = torch.autograd.grad((y0 * g0).sum() + (y1 * g1).sum(), (x, w0, w1))
        results.append((y0, y1, *grads))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, **TOL)


def test_projections_meet_a_bounded_set_of_row_counts():
    # torch keeps oneDNN state for every shape it runs: row counts must come from a short ladder.
    rows = [encoder_module.onednn_rows(n) for n in range(1, 50_001)]
    assert all(n <= r <= max(16, n * 1.125) for n, r in zip(range(1, 50_001), rows))
    assert len(set(rows)) <= 8 * 13


def test_fast_path_without_onednn_matches_packed(monkeypatch):
    monkeypatch.setattr(encoder_module, "_onednn_ready", lambda *tensors: False)  # projections by torch.mm
    torch.manual_seed(8)
    encoder = BiGRUEncoder(9, 12, num_layers=2)
    lengths = torch.tensor([6, 2, 6, 4])
    x = torch.randn(4, 6, 9)
    ref, fast = _run(encoder, "packed", x, lengths), _run(encoder, "fast", x, lengths)
    for a, b in zip(ref[:3], fast[:3]):
        torch.testing.assert_close(b, a, **TOL)
    for name in ref[3]:
        torch.testing.assert_close(fast[3][name], ref[3][name], **TOL, msg=name)


def test_fast_training_is_deterministic(steps):
    torch.manual_seed(9)
    encoder = BiGRUEncoder(16, 20, num_layers=2, dropout=0.3).train()
    lengths = torch.randint(1, 25, (19,))
    x = torch.randn(19, 24, 16)
    runs = []
    for _ in range(2):
        torch.manual_seed(10)
        runs.append(_run(encoder, "fast", x, lengths))
    (out_a, h_a, dx_a, g_a), (out_b, h_b, dx_b, g_b) = runs
    assert torch.equal(out_a, out_b) and torch.equal(h_a, h_b) and torch.equal(dx_a, dx_b)
    assert all(torch.equal(g_a[name], g_b[name]) for name in g_a)


def test_dropout_in_training_matches_packed_given_the_same_seed(steps):
    # The fast path draws its mask exactly as nn.GRU does on the packed data.
    encoder = BiGRUEncoder(6, 5, num_layers=3, dropout=0.4).train()
    lengths = torch.tensor([3, 8, 1, 8, 5])
    x = torch.randn(5, 10, 6)
    results = []
    for impl in ("packed", "fast"):
        torch.manual_seed(7)
        results.append(_run(encoder, impl, x, lengths))
    (out_p, h_p, dx_p, g_p), (out_f, h_f, dx_f, g_f) = results
    assert torch.isfinite(out_f).all() and torch.isfinite(h_f).all()
    torch.testing.assert_close(out_f, out_p, **TOL)
    torch.testing.assert_close(h_f, h_p, **TOL)
    torch.testing.assert_close(dx_f, dx_p, **TOL)
    for name in g_p:
        torch.testing.assert_close(g_f[name], g_p[name], **TOL, msg=name)


def test_dropout_is_off_in_eval_mode(steps):
    encoder = BiGRUEncoder(4, 3, num_layers=2, dropout=0.5, impl="fast").eval()
    x, lengths = torch.randn(3, 6, 4), torch.tensor([6, 2, 4])
    with torch.no_grad():
        fast = encoder(x, lengths)
        torch.testing.assert_close(encoder(x, lengths), fast)
        encoder.impl = "packed"
        torch.testing.assert_close(encoder(x, lengths), fast, **TOL)


def test_bf16_autocast_keeps_the_recurrence_in_float32(steps):
    # Under CPU autocast the projections run in bf16; outputs stay float32 and close to the
    # float32 reference (bf16 has 8 bits of mantissa), and gradients reach every parameter.
    torch.manual_seed(5)
    encoder = BiGRUEncoder(16, 12, num_layers=2)
    lengths = torch.tensor([9, 3, 1, 9, 6])
    x = torch.randn(5, 9, 16)
    ref = _run(encoder, "packed", x, lengths)
    encoder.impl = "fast"
    encoder.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, h_n = encoder(x, lengths)
    assert out.dtype == torch.float32 if steps == "kernels" else out.dtype in (torch.float32, torch.bfloat16)
    torch.testing.assert_close(out.float(), ref[0], atol=3e-2, rtol=0)
    torch.testing.assert_close(h_n.float(), ref[1], atol=3e-2, rtol=0)
    (out.float().sum() + h_n.float().sum()).backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_kernels_build_once_into_the_cache_and_fall_back_without_a_compiler(tmp_path, monkeypatch, caplog):
    compiler = kernels._compiler()
    if compiler is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("SENTIMENT_GRU_CACHE", str(tmp_path / "cache"))
    library = kernels._build(compiler)
    assert library.parent == tmp_path / "cache" and library.suffix == ".so"
    stamp = library.stat().st_mtime_ns
    assert kernels._build(compiler) == library and library.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert list(library.parent.iterdir()) == [library]  # no temporary files left

    kernels.load.cache_clear()
    try:
        monkeypatch.setenv("SENTIMENT_GRU_CACHE", str(tmp_path / "empty"))
        monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
        assert kernels.load() is None
        assert "could not build the fused GRU kernels" in caplog.text
        kernels.load.cache_clear()
        monkeypatch.setenv("SENTIMENT_GRU_KERNELS", "0")
        assert kernels.load() is None
    finally:
        kernels.load.cache_clear()


def test_loading_the_kernels_leaves_the_process_floating_point_state_alone(tmp_path, monkeypatch):
    # A library linked with -ffast-math would turn on flush-to-zero for every float in the process.
    compiler = kernels._compiler()
    if compiler is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("SENTIMENT_GRU_CACHE", str(tmp_path / "cache"))
    library = kernels._build(compiler)
    probe = "import ctypes, sys; ctypes.CDLL(sys.argv[1]); print(sys.float_info.min / 2 > 0)"
    shown = subprocess.run([sys.executable, "-c", probe, str(library)], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "True", "the kernels flush subnormal floats to zero process-wide"


def _load_with_a_compiler_refusing(flag: str, tmp_path, monkeypatch) -> None:
    """Build and load the kernels with a compiler that rejects `flag`: one library, from a later flag set."""
    compiler = kernels._compiler()
    if compiler is None:
        pytest.skip("no C compiler here")
    wrapper = tmp_path / f"cc-without{flag}"
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *{flag}*) echo "unsupported option {flag}" >&2; exit 1;; esac\nexec {compiler} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("SENTIMENT_GRU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(wrapper))
    kernels.load.cache_clear()
    assert kernels.load() is not None
    assert len(list((tmp_path / "cache").glob("*.so"))) == 1


def test_a_compiler_without_openmp_gets_the_plainer_flags_and_the_same_results(tmp_path, monkeypatch):
    try:
        _load_with_a_compiler_refusing("-fopenmp", tmp_path, monkeypatch)
        torch.manual_seed(2)
        encoder = BiGRUEncoder(6, 16, num_layers=2)
        lengths = torch.tensor([5, 2, 7, 1])
        x = torch.randn(4, 7, 6)
        ref, fast = _run(encoder, "packed", x, lengths), _run(encoder, "fast", x, lengths)
        for a, b in zip(ref[:3], fast[:3]):
            torch.testing.assert_close(b, a, **TOL)
    finally:
        kernels.load.cache_clear()


def test_a_compiler_without_native_code_gets_the_plain_flags_and_the_same_results(tmp_path, monkeypatch):
    # Without -march=native the kernels' 16-float vectors compile to SSE2 instructions.
    try:
        _load_with_a_compiler_refusing("-march=native", tmp_path, monkeypatch)
        torch.manual_seed(2)
        encoder = BiGRUEncoder(6, 20, num_layers=2)
        lengths = torch.tensor([5, 2, 7, 1, 7, 3, 6, 4, 2, 5])
        x = torch.randn(10, 7, 6)
        ref, fast = _run(encoder, "packed", x, lengths), _run(encoder, "fast", x, lengths)
        for a, b in zip(ref[:3], fast[:3]):
            torch.testing.assert_close(b, a, **TOL)
        for name in ref[3]:
            torch.testing.assert_close(fast[3][name], ref[3][name], **TOL, msg=name)
    finally:
        kernels.load.cache_clear()


# --- Oracle: a GRU written from the equations, run token by token -------------------------


def _cell(x, h, w_ih, w_hh, b_ih, b_hh, convention="pytorch"):
    """One GRU step; weights stacked as gates r, z, n (PyTorch's layout)."""
    W_ir, W_iz, W_in = w_ih.chunk(3)
    W_hr, W_hz, W_hn = w_hh.chunk(3)
    b_ir, b_iz, b_in = b_ih.chunk(3)
    b_hr, b_hz, b_hn = b_hh.chunk(3)
    r = torch.sigmoid(W_ir @ x + b_ir + W_hr @ h + b_hr)
    z = torch.sigmoid(W_iz @ x + b_iz + W_hz @ h + b_hz)
    if convention == "reset_before_matmul":  # n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
        n = torch.tanh(W_in @ x + b_in + W_hn @ (r * h) + b_hn)
    else:
        n = torch.tanh(W_in @ x + b_in + r * (W_hn @ h + b_hn))
    if convention == "z_on_candidate":  # h' = z * n + (1 - z) * h
        return z * n + (1 - z) * h
    return (1 - z) * n + z * h


def _oracle(gru, x, lengths, convention="pytorch"):
    """Bidirectional multi-layer GRU, one sequence and one real token at a time."""
    H = gru.hidden_size
    outputs = torch.zeros(x.size(0), x.size(1), 2 * H, dtype=x.dtype)
    h_n = torch.zeros(gru.num_layers * 2, x.size(0), H, dtype=x.dtype)
    for b, length in enumerate(lengths.tolist()):
        layer_in = list(x[b, :length])
        for layer in range(gru.num_layers):
            per_direction = []
            for d, suffix in enumerate(["", "_reverse"]):
                w = [getattr(gru, f"{k}_l{layer}{suffix}") for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                order = range(length) if d == 0 else range(length - 1, -1, -1)
                h = torch.zeros(H, dtype=x.dtype)
                outs = [None] * length
                for t in order:
                    h = _cell(layer_in[t], h, *w, convention=convention)
                    outs[t] = h
                h_n[layer * 2 + d, b] = h
                per_direction.append(outs)
            layer_in = [torch.cat([f, r]) for f, r in zip(*per_direction)]
        outputs[b, :length] = torch.stack(layer_in)
    return outputs, h_n


@pytest.fixture(scope="module")
def oracle_case():
    torch.manual_seed(3)
    encoder = BiGRUEncoder(4, 3, num_layers=2).double()
    lengths = torch.tensor([5, 1, 3])
    x = torch.randn(3, 6, 4, dtype=torch.double)
    return encoder, x, lengths


@pytest.mark.parametrize("impl", ["packed", "fast"])
def test_oracle_from_the_equations_reproduces_both_impls(oracle_case, impl):
    encoder, x, lengths = oracle_case
    encoder.impl = impl
    with torch.no_grad():
        out, h_n = encoder(x, lengths)
        ref_out, ref_h_n = _oracle(encoder.gru, x, lengths)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(h_n, ref_h_n, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("convention", ["z_on_candidate", "reset_before_matmul"])
def test_other_gru_conventions_do_not_match(oracle_case, convention):
    # Pins the oracle's equations: the conventions found in older code give other numbers.
    encoder, x, lengths = oracle_case
    encoder.impl = "packed"
    with torch.no_grad():
        out, _ = encoder(x, lengths)
        other, _ = _oracle(encoder.gru, x, lengths, convention=convention)
    assert (out - other).abs().max() > 1e-3


# --- Options and checkpoints -----------------------------------------------------------


def test_unknown_impl_is_rejected_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"'impl' option .* one of 'auto', 'packed', 'fast'\. Got 'dense'"):
        BiGRUEncoder(4, 3, impl="dense")
    encoder = BiGRUEncoder(4, 3)
    with pytest.raises(ValueError, match="Got 'cudnn' instead"):
        encoder.impl = "cudnn"
    with pytest.raises(ValueError, match="'impl' option"):
        resolve_impl("Fast", torch.device("cpu"))


def test_auto_is_fast_on_the_cpu_and_packed_on_cuda():
    assert resolve_impl("auto", torch.device("cpu")) == "fast"
    assert resolve_impl("auto", torch.device("cuda")) == "packed"
    assert resolve_impl("packed", torch.device("cpu")) == "packed"
    assert resolve_impl("fast", torch.device("cuda")) == "fast"


def test_bad_lengths_are_rejected():
    encoder = BiGRUEncoder(4, 3, impl="fast")
    with pytest.raises(ValueError, match=r"each in 1\.\.5"):
        encoder(torch.randn(2, 5, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="one length per sequence"):
        encoder(torch.randn(2, 5, 4), torch.tensor([6, 3]))


def test_state_dict_is_nn_gru_keys_and_loads_across_impls(tmp_path):
    torch.manual_seed(0)
    trained = BiGRUEncoder(5, 4, num_layers=2, impl="fast")
    assert set(trained.state_dict()) == {f"gru.{k}" for k in torch.nn.GRU(5, 4, 2, bidirectional=True).state_dict()}
    torch.save(trained.state_dict(), tmp_path / "encoder.pt")
    loaded = BiGRUEncoder(5, 4, num_layers=2, impl="packed")
    loaded.load_state_dict(torch.load(tmp_path / "encoder.pt"))
    x, lengths = torch.randn(3, 7, 5), torch.tensor([7, 2, 5])
    with torch.no_grad():
        for a, b in zip(trained(x, lengths), loaded(x, lengths)):
            torch.testing.assert_close(a, b, **TOL)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mapped_blocks_while_holding(nbytes: int = 64 << 20) -> int:
    """glibc's count of blocks it mapped from the kernel, read while a tensor of `nbytes` is held."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    tensor = torch.empty(nbytes, dtype=torch.uint8)
    blocks = libc.mallinfo2().hblks
    del tensor
    return blocks


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or sys.platform != "linux", reason="glibc's malloc settings")
def test_training_reuses_freed_memory_for_large_tensors_and_sets_malloc_back_after(monkeypatch):
    outside = _mapped_blocks_while_holding()
    with kernels.reusing_freed_memory():
        assert _mapped_blocks_while_holding() == outside - 1  # from the heap, kept for the next step
        with kernels.reusing_freed_memory():  # a block inside another leaves the setting to the outer one
            pass
        assert _mapped_blocks_while_holding() == outside - 1
    assert _mapped_blocks_while_holding() == outside  # mapped again after the block
    monkeypatch.setenv("SENTIMENT_GRU_KEEP_MEMORY", "0")
    with kernels.reusing_freed_memory():
        assert _mapped_blocks_while_holding() == outside
