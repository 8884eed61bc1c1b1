"""Acceptance 1 and 5: the parallel/chunked GDN equals the per-frame reference; key scaling keeps
the state bounded."""

import pytest
import torch

from sanawm.model.ops.gdn import GDNInputs, GDNState, gdn_parallel, gdn_reference

B, H, T, S, D = 2, 3, 9, 6, 8


def _inputs(numerator_only: bool, seed: int = 0, key_scale: float | None = None) -> GDNInputs:
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64

    def r(*shape):
        return torch.rand(*shape, generator=g, dtype=dt)

    scale = (D * S) ** -0.5 if key_scale is None else key_scale
    q, k = r(B, H, T, S, D), r(B, H, T, S, D) * scale
    v = torch.randn(B, H, T, S, D, generator=g, dtype=dt)
    beta, decay = r(B, H, T, S), 0.5 + 0.5 * r(B, H, T)
    if numerator_only:
        return GDNInputs(q, k, v, beta, decay)
    return GDNInputs(q, k, v, beta, decay, q.flip(-1), k.flip(-1))


def _state(numerator_only: bool) -> GDNState:
    g = torch.Generator().manual_seed(7)
    num = torch.randn(B, H, D, D, generator=g, dtype=torch.float64)
    return GDNState(num, None if numerator_only else torch.rand(B, H, D, generator=g, dtype=torch.float64))


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("mode", ["bidirectional", "chunk_causal", "streaming"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("numerator_only", [False, True])
@pytest.mark.parametrize("scan_chunk", [1, 4, 32])
def test_parallel_matches_reference(mode, with_state, numerator_only, scan_chunk):
    x = _inputs(numerator_only)
    state = _state(numerator_only) if with_state else None
    chunks = {"bidirectional": None, "chunk_causal": (4, 3, 2), "streaming": None}[mode]
    if mode == "streaming":  # one chunk at a time, forward state carried
        ref_parts, par_parts, s_ref, s_par = [], [], state, state
        start = 0
        for size in (4, 3, 2):
            part = GDNInputs(
                *(
                    None if t is None else t[:, :, start : start + size]
                    for t in (x.q, x.k, x.v, x.beta, x.decay, x.q_den, x.k_den)
                )
            )
            a, b = gdn_reference(part, None, s_ref), gdn_parallel(part, None, s_par, scan_chunk)
            ref_parts.append(a)
            par_parts.append(b)
            s_ref, s_par = a.state, b.state
            start += size
        ref_num = torch.cat([p.num for p in ref_parts], 2)
        par_num = torch.cat([p.num for p in par_parts], 2)
        assert _rel(par_num, ref_num) <= 1e-8
        # streaming == chunk-causal over the whole clip
        full = gdn_reference(x, (4, 3, 2), state)
        assert _rel(ref_num, full.num) <= 1e-8
        assert _rel(s_par.num, full.state.num) <= 1e-8
        return
    ref, par = gdn_reference(x, chunks, state), gdn_parallel(x, chunks, state, scan_chunk)
    assert _rel(par.num, ref.num) <= 1e-8
    assert _rel(par.state.num, ref.state.num) <= 1e-8
    if numerator_only:
        assert par.den is None and ref.den is None
    else:
        assert _rel(par.den, ref.den) <= 1e-8
        assert _rel(par.state.den, ref.state.den) <= 1e-8


def test_modes_differ_where_they_should():
    x = _inputs(False)
    bi, cc = gdn_reference(x, None), gdn_reference(x, (4, 3, 2))
    # the last chunk sees the same frames in both modes; earlier chunks lose their future
    assert torch.allclose(bi.num[:, :, 7:], cc.num[:, :, 7:])
    assert not torch.allclose(bi.num[:, :, :4], cc.num[:, :, :4])


def test_chunk_causal_future_independence():
    x = _inputs(False)
    y = GDNInputs(x.q, x.k.clone(), x.v.clone(), x.beta, x.decay, x.q_den, x.k_den.clone())
    y.k[:, :, 4:] += 1.0
    y.v[:, :, 4:] -= 2.0
    y.k_den[:, :, 4:] *= 3.0
    a, b = gdn_parallel(x, (4, 3, 2)), gdn_parallel(y, (4, 3, 2))
    assert torch.equal(a.num[:, :, :4], b.num[:, :, :4]) and torch.equal(a.den[:, :, :4], b.den[:, :, :4])


def _feature_map(k: torch.Tensor) -> torch.Tensor:
    """ReLU(RMSNorm(k)): every key has norm <= sqrt(D)."""
    return torch.relu(torch.nn.functional.rms_norm(k, (k.shape[-1],)))


def _state_norms(key_scale: float, frames: int = 121) -> torch.Tensor:
    """Spectral norms of the state over a long scan of unit-scale ReLU features (γ = 1: worst case)."""
    g = torch.Generator().manual_seed(3)
    Sb, Db = 64, 16
    k = _feature_map(torch.randn(1, 1, frames, Sb, Db, generator=g, dtype=torch.float64)) * key_scale
    v = torch.randn(1, 1, frames, Sb, Db, generator=g, dtype=torch.float64)
    x = GDNInputs(
        k,
        k,
        v,
        torch.ones(1, 1, frames, Sb, dtype=torch.float64),
        torch.ones(1, 1, frames, dtype=torch.float64),
    )
    norms, state = [], None
    for t in range(frames):
        part = GDNInputs(
            x.q[:, :, t : t + 1],
            x.k[:, :, t : t + 1],
            x.v[:, :, t : t + 1],
            x.beta[:, :, t : t + 1],
            x.decay[:, :, t : t + 1],
        )
        state = gdn_parallel(part, None, state).state
        norms.append(torch.linalg.matrix_norm(state.num[0, 0], ord=2))
    return torch.stack(norms)


def test_key_scale_bounds_the_state():
    """With K̂ = ReLU(RMSNorm K)/sqrt(D·S), ‖M_t‖ ≤ 1 and the state stays bounded over 121 frames;
    with 1/sqrt(D) the transition expands and the state blows up."""
    Sb, Db = 64, 16
    good = _state_norms(1.0 / (Db * Sb) ** 0.5)
    bad = _state_norms(1.0 / Db**0.5)
    assert torch.isfinite(good).all()
    assert good.max() < 10.0 and good[-1] < 2 * good[60]  # bounded: no growth over the second half
    assert not torch.isfinite(bad[-1]) or bad[-1] > 1e6 * good[-1]


def test_transition_is_contractive_with_scaled_keys():
    from sanawm.model.ops.gdn import transitions

    x = _inputs(True, key_scale=None)
    k = _feature_map(torch.randn_like(x.k)) / (D * S) ** 0.5
    M, _ = transitions(k, x.v, torch.ones_like(x.beta), torch.ones_like(x.decay))
    assert torch.linalg.matrix_norm(M, ord=2).max() <= 1.0 + 1e-12


def test_chunk_ends():
    """The last frame of every chunk; one chunk (chunks=None) built on the requested device."""
    from sanawm.model.ops.gdn import chunk_ends

    assert chunk_ends(5, (2, 3)).tolist() == [False, True, False, False, True]
    assert chunk_ends(4, None).tolist() == [False, False, False, True]
    assert chunk_ends(1, None, torch.device("cpu")).tolist() == [True]
    assert chunk_ends(3, None, "meta").device.type == "meta"
