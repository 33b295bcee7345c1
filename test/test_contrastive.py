"""SynCL's instance-aware contrastive loss and its train-only projector."""

import pytest
import torch
import torch.nn.functional as F

from syncl_ros.training.syncl.contrastive import ContrastiveProjector, kernel_contrastive_loss, kernel_weights


def _batch(seed: int = 0, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    det = torch.randn(9, dim, generator=gen)
    det_ids = torch.tensor([1, 1, 1, 2, 2, 3, 4, -1, 9])  # -1: unmatched; 9: no track
    track = torch.randn(5, dim, generator=gen)
    track_ids = torch.tensor([1, 2, 3, 4, -1])  # -1: free slot
    return det, det_ids, track, track_ids


def test_kernel_weights_equal_the_ridge_solve() -> None:
    det_ids = torch.tensor([1, 2, 3, 7])
    track_ids = torch.tensor([1, 2, 1, 3, 1, 5])  # instance 1 seen in three batched frames
    ridge = 0.3
    k_tracks = (track_ids[:, None] == track_ids[None, :]).float()
    k_cross = (det_ids[:, None] == track_ids[None, :]).float()
    expected = torch.linalg.solve(k_tracks + ridge * torch.eye(6), k_cross.T).T
    torch.testing.assert_close(kernel_weights(det_ids, track_ids, ridge), expected)


def test_contrastive_with_unique_tracks_and_no_ridge_is_infonce() -> None:
    det, det_ids, track, track_ids = _batch()
    loss = kernel_contrastive_loss(det, det_ids, track, track_ids, temperature=0.1, ridge=0.0)
    anchors = (det_ids >= 1) & (det_ids <= 4)  # detections whose instance has a track
    logits = F.normalize(det[anchors], dim=-1) @ F.normalize(track[:4], dim=-1).T / 0.1
    expected = F.cross_entropy(logits, det_ids[anchors] - 1)  # track j follows instance j + 1
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_contrastive_loss_drops_when_positives_move_together() -> None:
    det, det_ids, track, track_ids = _batch(1)
    det.requires_grad_(True)
    track.requires_grad_(True)
    before = kernel_contrastive_loss(det, det_ids, track, track_ids)
    before.backward()
    assert det.grad is not None and track.grad is not None
    assert det.grad.abs().sum() > 0 and track.grad.abs().sum() > 0  # both sides learn
    assert det.grad[7].abs().sum() == 0 and det.grad[8].abs().sum() == 0  # ignored anchors
    with torch.no_grad():
        after = kernel_contrastive_loss(det - 0.5 * det.grad, det_ids, track - 0.5 * track.grad, track_ids)
        # Moving a detection right onto its own track also lowers the loss.
        moved = det.clone()
        moved[0] = track[0] * 3.0
        closer = kernel_contrastive_loss(moved, det_ids, track, track_ids)
    assert after < before
    assert closer < before


def test_contrastive_loss_ignores_a_consistent_reordering() -> None:
    det, det_ids, track, track_ids = _batch(2)
    base = kernel_contrastive_loss(det, det_ids, track, track_ids)
    p_det, p_track = torch.randperm(len(det)), torch.randperm(len(track))
    permuted = kernel_contrastive_loss(det[p_det], det_ids[p_det], track[p_track], track_ids[p_track])
    assert permuted.item() == pytest.approx(base.item(), rel=1e-5)
    # Only equality of ids matters, not their values.
    relabel = {-1: -1, 1: 40, 2: 7, 3: 13, 4: 0, 9: 99}
    new_det_ids = torch.tensor([relabel[int(i)] for i in det_ids])
    new_track_ids = torch.tensor([relabel[int(i)] for i in track_ids])
    relabelled = kernel_contrastive_loss(det, new_det_ids, track, new_track_ids)
    assert relabelled.item() == pytest.approx(base.item(), rel=1e-5)


def test_contrastive_loss_without_pairs_is_zero_and_differentiable() -> None:
    det = torch.randn(3, 8, requires_grad=True)
    track = torch.randn(2, 8, requires_grad=True)
    cases = [
        (torch.tensor([5, 6, -1]), torch.tensor([1, 2])),  # no shared instance
        (torch.tensor([-1, -1, -1]), torch.tensor([1, 2])),  # nothing matched
        (torch.tensor([1, 2, 1]), torch.tensor([-1, -1])),  # no live tracks
    ]
    for det_ids, track_ids in cases:
        loss = kernel_contrastive_loss(det, det_ids, track, track_ids)
        assert loss.item() == 0.0
        loss.backward()
    empty = kernel_contrastive_loss(
        torch.empty(0, 8),
        torch.empty(0, dtype=torch.long),
        torch.empty(0, 8),
        torch.empty(0, dtype=torch.long),
    )
    assert empty.item() == 0.0


def test_contrastive_loss_is_finite_at_low_temperature_and_with_repeated_tracks() -> None:
    det, det_ids, track, track_ids = _batch(3)
    track_ids = torch.tensor([1, 2, 1, 4, 3])  # instance 1 twice (two batched frames)
    loss = kernel_contrastive_loss(det, det_ids, track, track_ids, temperature=1e-3)
    assert torch.isfinite(loss) and loss.item() >= 0.0


def test_gradient_reaches_the_projector() -> None:
    torch.manual_seed(0)
    projector = ContrastiveProjector(16, ffn_dim=32)
    det, det_ids, track, track_ids = _batch(4)
    projected = projector(det)
    assert projected.shape == det.shape
    kernel_contrastive_loss(projected, det_ids, track, track_ids).backward()
    for name, param in projector.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
