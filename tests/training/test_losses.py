"""The pure losses against their closed forms and against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from iopo_eval.training.losses import dpo_loss, iopo_loss, sft_loss


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_iopo_equals_closed_form_on_random_inputs() -> None:
    g = torch.Generator().manual_seed(0)
    pol = torch.randn(16, 4, generator=g, dtype=torch.float64) * 30
    ref = torch.randn(16, 4, generator=g, dtype=torch.float64) * 30
    beta = 0.1
    r = pol - ref
    r11, r12, r22, r21 = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
    closed = -torch.nn.functional.logsigmoid(beta * (r11 + r22 - r12 - r21))
    out = iopo_loss(pol, ref, beta)
    torch.testing.assert_close(out.losses, closed)


def test_iopo_hand_values() -> None:
    # r11 = 2, r12 = -1, r22 = 1, r21 = 0.5  ->  logits = 2 + 1 + 1 - 0.5 = 3.5; β = 0.5 -> βz = 1.75
    pol = torch.tensor([[-10.0, -20.0, -30.0, -40.0]], dtype=torch.float64)
    ref = pol - torch.tensor([[2.0, -1.0, 1.0, 0.5]], dtype=torch.float64)
    out = iopo_loss(pol, ref, beta=0.5)
    assert out.losses.item() == pytest.approx(-math.log(_sig(1.75)), abs=1e-12)
    assert out.losses.item() == pytest.approx(0.160224, abs=1e-5)  # log(1 + e^-1.75)
    assert out.metrics["logits"].item() == pytest.approx(3.5)
    assert out.metrics["rewards/chosen_v1"].item() == pytest.approx(1.0)
    assert out.metrics["rewards/accuracies_v1"].item() == 1.0
    assert out.metrics["rewards/accuracies_v2"].item() == 1.0
    # label smoothing ε = 0.2: 0.8·(−log σ(1.75)) + 0.2·(−log σ(−1.75))
    smoothed = iopo_loss(pol, ref, beta=0.5, label_smoothing=0.2).losses.item()
    assert smoothed == pytest.approx(-0.8 * math.log(_sig(1.75)) - 0.2 * math.log(_sig(-1.75)), abs=1e-12)


def test_iopo_at_reference_is_log_two_and_sft_term() -> None:
    pol = torch.tensor([[-6.0, -9.0, -4.0, -8.0]])
    out = iopo_loss(pol, pol.clone(), beta=0.1)
    assert out.losses.item() == pytest.approx(math.log(2.0), abs=1e-6)
    counts = torch.tensor([[3, 9, 2, 8]])
    with_sft = iopo_loss(pol, pol.clone(), beta=0.1, token_counts=counts, sft_weight=0.5)
    # 0.5·(−(−6/3) − (−4/2)) = 0.5·(2 + 2) = 2
    assert with_sft.losses.item() == pytest.approx(math.log(2.0) + 2.0, abs=1e-6)
    with pytest.raises(ValueError, match="token_counts"):
        iopo_loss(pol, pol, beta=0.1, sft_weight=1.0)


def test_iopo_gradient_signs() -> None:
    pol = torch.zeros(1, 4, requires_grad=True)
    iopo_loss(pol, torch.zeros(1, 4), beta=1.0).losses.sum().backward()
    g = pol.grad[0]
    # Raising the matched pairs lowers the loss, raising the mismatched ones raises it, all equally (0.5).
    assert g.tolist() == pytest.approx([-0.5, 0.5, -0.5, 0.5])


def test_dpo_hand_value_and_shape_errors() -> None:
    pol = torch.tensor([[-5.0, -7.0]])
    ref = torch.tensor([[-6.0, -6.0]])  # margin = 1 - (-1) = 2, β = 0.1 -> −log σ(0.2)
    assert dpo_loss(pol, ref, 0.1).losses.item() == pytest.approx(-math.log(_sig(0.2)), abs=1e-6)
    with pytest.raises(ValueError, match=r"\[batch, 4\]"):
        iopo_loss(pol, ref, 0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(pol, ref, 0.1, label_smoothing=0.5)


def test_sft_token_mean() -> None:
    assert sft_loss(torch.tensor([-6.0, -2.0]), torch.tensor([3, 1])).item() == pytest.approx(2.0)
