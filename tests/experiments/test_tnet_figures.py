import json
import math
import os

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from PIL import Image

from datamodules.megapixel_digits import render_megapixel_digits, to_tensor
from experiments.results import REQUIRED_KEYS
from experiments.tnet_figures import (
    LEVEL_COLORS,
    attended_boxes,
    cell_boxes,
    chance_inside,
    clip_boxes,
    draw_policy,
    draw_traversal,
    inside_any,
    latest_run,
    load_image,
    policy_maps,
    policy_on_image,
    traverse,
    traverse_image,
)
from lightning_modules.tnet import TNetModule, tnet_timm
from lightning_modules.tnet.grid import grid_geometry
from lightning_modules.tnet.network import TNetOutput

N, OVERLAP, SIDE = 5, 0.25, 100  # 25-px cells, stride 19, 1 px of zero padding before the image


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    net = tnet_timm("test_resnet", 10, base_resolution=32, num_patches=N, overlap=OVERLAP, locations_per_level=(2,))
    return net.eval()


@pytest.fixture(scope="module")
def images():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, SIDE, SIDE, generator=generator) * 2 - 1


@pytest.fixture(scope="module")
def output(network, images):
    """Three levels (2 cells, then 2 in each), so that level 1 has two inputs per image."""
    with torch.no_grad():
        return network(images, locations_per_level=(2, 2))


def axis():
    return Figure().add_subplot()


def test_the_grid_has_padding():
    assert grid_geometry(SIDE, N, OVERLAP) == (25, 19, 1, 0)


def test_cell_boxes_are_the_boxes_the_network_crops(output):
    for level in range(2):
        for row, (box, cells) in enumerate(zip(output.boxes[level], output.cells[level], strict=True)):
            expected = output.boxes[level + 1][row * 2 : row * 2 + 2]
            assert torch.equal(cell_boxes(box, N, OVERLAP)[cells], expected.cpu())
    assert torch.equal(attended_boxes(output, 1, level=1), output.boxes[2][4:8])


def test_traversal_rectangles_are_the_clipped_boxes(images, output):
    ax = axis()
    drawn = draw_traversal(ax, images, output, index=1)
    assert [len(level) for level in drawn] == [2, 4]  # k_0 = 2 cells, then 2 in each of them
    for level, rectangles in enumerate(drawn):
        boxes = output.boxes[level + 1][2 * (level + 1) : 4 * (level + 1)]  # image 1's rows
        for rectangle, (y0, x0, y1, x1) in zip(rectangles, boxes.tolist(), strict=True):
            top, left, bottom, right = max(y0, 0), max(x0, 0), min(y1, SIDE), min(x1, SIDE)
            assert rectangle.get_xy() == (left, top)
            assert (rectangle.get_width(), rectangle.get_height()) == (right - left, bottom - top)
            assert rectangle.get_edgecolor() == to_rgba(LEVEL_COLORS[level])
    assert len(ax.patches) == 6
    assert [text.get_text() for text in ax.legend().get_texts()] == ["level 0 cells", "level 1 cells"]
    # The image is shown with pixel edges on integer coordinates, values back in [0, 1].
    shown = ax.images[0]
    assert tuple(shown.get_extent()) == (0, SIDE, SIDE, 0)
    np.testing.assert_allclose(shown.get_array(), ((images[1] + 1) / 2).permute(1, 2, 0).numpy(), atol=1e-6)


def test_boxes_in_the_padding_are_clipped():
    boxes = torch.tensor([[-1, -1, 24, 24], [75, 56, 100, 81], [90, 95, 115, 120]])
    assert clip_boxes(boxes, 100, 110).tolist() == [[0, 0, 24, 24], [75, 56, 100, 81], [90, 95, 100, 110]]
    # A hand-made two-level traversal whose attended cell reaches into the padding on both sides.
    probs = torch.softmax(torch.arange(25.0)[None], dim=1)
    out = TNetOutput(
        logits=torch.zeros(1, 3),
        features=[],
        feature_logits=[],
        positions=[],
        boxes=[torch.tensor([[0, 0, 20, 20]]), torch.tensor([[-3, 15, 7, 25]])],
        probs=[probs],
        cells=[torch.tensor([[4]])],
        log_probs=[],
    )
    ax = axis()
    (rectangle,) = draw_traversal(ax, torch.zeros(1, 3, 20, 20), out, 0)[0]
    assert (rectangle.get_xy(), rectangle.get_width(), rectangle.get_height()) == ((15, 0), 5, 7)


def test_level_zero_heat_map_is_the_policy(output):
    ax = axis()
    shown = draw_policy(ax, output, index=1, level=0)
    np.testing.assert_array_equal(shown.get_array(), output.probs[0][1].view(N, N).numpy())
    assert shown.get_clim() == (0.0, pytest.approx(float(output.probs[0][1].max())))
    # The chosen cells are outlined, centred on their cell of the heat map.
    corners = sorted(patch.get_xy() for patch in ax.patches)
    expected = sorted((c % N - 0.5, c // N - 0.5) for c in output.cells[0][1].tolist())
    assert corners == expected


def test_deeper_level_heat_maps_side_by_side_or_one(output):
    probs = output.probs[1][2:4].view(2, N, N)  # image 1's two inputs at level 1
    tiled = np.ma.filled(draw_policy(axis(), output, index=1, level=1).get_array(), np.nan)
    assert tiled.shape == (N, 2 * N + 1)
    np.testing.assert_array_equal(tiled[:, :N], probs[0].numpy())
    assert np.isnan(tiled[:, N]).all()
    np.testing.assert_array_equal(tiled[:, N + 1 :], probs[1].numpy())
    second = draw_policy(axis(), output, index=1, level=1, input_index=1)
    np.testing.assert_array_equal(second.get_array(), probs[1].numpy())
    assert torch.equal(policy_maps(output, 1, level=1), probs)
    with pytest.raises(ValueError, match="level 2 has no policy"):
        draw_policy(axis(), output, index=0, level=2)
    with pytest.raises(IndexError):
        draw_policy(axis(), output, index=2)


def test_policy_on_image_level_zero(output):
    painted = policy_on_image(output, 1, OVERLAP)
    probs = output.probs[0][1].view(N, N)
    assert painted.shape == (SIDE, SIDE) and not painted.isnan().any()
    for row in range(N):
        for col in range(N):
            y0, x0, y1, x1 = cell_boxes((0, 0, SIDE, SIDE), N, OVERLAP)[row * N + col].tolist()
            assert painted[(y0 + y1) // 2, (x0 + x1) // 2] == probs[row, col]  # the cell's centre pixel
    # An n x n mosaic: each pixel row / column crosses n tiles, in grid order.
    rows = [int(torch.nonzero(probs == painted[y, 0])[0, 0]) for y in range(SIDE)]
    assert rows == sorted(rows) and set(rows) == set(range(N))


def test_policy_on_image_deeper_level_is_inside_its_input(output):
    box = output.boxes[1][3].tolist()  # image 1's second input at level 1
    painted = policy_on_image(output, 1, OVERLAP, level=1, input_index=1)
    y0, x0, y1, x1 = clip_boxes(torch.tensor(box), SIDE, SIDE)[0].tolist()
    inside = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    assert not painted[inside].isnan().any() and painted[~inside].isnan().all()
    assert set(painted[inside].unique().tolist()) <= set(output.probs[1][3].tolist())


def test_inside_any_and_chance():
    cells = np.array([[0, 0, 25, 25], [-1, 18, 24, 43]])
    digits = np.array([[2, 2, 10, 10], [0, 20, 8, 28], [20, 20, 28, 28], [10, 30, 18, 38]])
    assert inside_any(digits, cells).tolist() == [True, True, False, True]
    # On the 100 px grid: the box (2, 2, 10, 10) lies in cell 0 only; (40, 40, 42, 42) in cells 6, 7, 11, 12.
    chance = chance_inside(np.array([[2, 2, 10, 10], [40, 40, 42, 42]]), SIDE, SIDE, N, OVERLAP, count=2)
    np.testing.assert_allclose(chance, [1 - math.comb(24, 2) / math.comb(25, 2), 1 - math.comb(21, 2) / 300])


def test_traverse_image_equals_the_network_on_the_prepared_tensor(network, tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(SIDE, SIDE, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "picture.png")
    batch, out = traverse_image(network, tmp_path / "picture.png", SIDE)
    prepared = torch.from_numpy(rgb).float().permute(2, 0, 1)[None] / 127.5 - 1
    torch.testing.assert_close(batch, prepared, rtol=0, atol=1e-6)
    with torch.no_grad():
        direct = network(prepared)
    torch.testing.assert_close(out.logits, direct.logits)
    assert all(torch.equal(a, b) for a, b in zip(out.cells, direct.cells, strict=True))


def test_traverse_image_on_a_saved_digits_canvas(network, tmp_path):
    canvas = render_megapixel_digits(0, "test", canvas_size=128, digit_size=8, noise_strokes=10).canvas
    Image.fromarray(canvas).save(tmp_path / "canvas.png")  # grey PNG
    batch, out = traverse_image(network, str(tmp_path / "canvas.png"), 128, locations_per_level=(3,))
    assert torch.equal(batch[0], to_tensor(canvas))
    with torch.no_grad():
        direct = network(to_tensor(canvas)[None], locations_per_level=(3,))
    assert torch.equal(out.logits, direct.logits) and torch.equal(out.cells[0], direct.cells[0])


def test_load_image_resizes_and_scales(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, size=(30, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    batch = load_image(tmp_path / "wide.png", (20, 40))
    resized = np.asarray(Image.fromarray(rgb).resize((40, 20), Image.Resampling.BILINEAR), dtype=np.float32)
    assert batch.shape == (1, 3, 20, 40) and batch.min() >= -1 and batch.max() <= 1
    torch.testing.assert_close(batch[0], torch.from_numpy(resized).permute(2, 0, 1) / 127.5 - 1, rtol=0, atol=1e-6)
    assert torch.equal(load_image(rgb, (30, 50)), load_image(Image.fromarray(rgb), (30, 50)))
    with pytest.raises(ValueError, match="uint8"):
        load_image(rgb.astype(np.float32), 30)


def test_a_module_traverses_with_its_evaluation_cells_and_keeps_its_mode(network, images):
    module = TNetModule(network, 10, eval_locations_per_level=(1,))
    module.train()
    assert traverse(module, images).cells[0].shape == (2, 1)
    assert traverse(module, images, locations_per_level=(3,)).cells[0].shape == (2, 3)
    assert module.training and network.training
    network.eval()
    assert traverse(network, images).cells[0].shape == (2, 2)
    with pytest.raises(TypeError, match="TNetModule or a TNet"):
        traverse(torch.nn.Linear(2, 2), images)


def _record(runs, variant, profile, run_id, mtime, checkpoint=True):
    folder = runs / "tnet.megapixel_digits" / variant / run_id
    (folder / "checkpoints").mkdir(parents=True)
    if checkpoint:
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    record = {key: {} for key in REQUIRED_KEYS}
    record.update(experiment="tnet.megapixel_digits", variant=variant, profile=profile, run_id=run_id)
    (folder / "metrics.json").write_text(json.dumps(record))
    os.utime(folder / "metrics.json", (mtime, mtime))
    return folder


def test_latest_run(tmp_path):
    assert latest_run(tmp_path, "tnet.megapixel_digits", "TNet") is None
    small = _record(tmp_path, "TNet", "small", "small-seed0-a", 2000)
    smoke = _record(tmp_path, "TNet", "smoke", "smoke-seed0-b", 1000)
    _record(tmp_path, "TNet", "smoke", "smoke-seed0-c", 3000, checkpoint=False)  # unfinished
    _record(tmp_path, "downsampled", "smoke", "smoke-seed0-d", 4000)  # another row
    (tmp_path / "tnet.megapixel_digits" / "TNet" / "broken").mkdir()
    (tmp_path / "tnet.megapixel_digits" / "TNet" / "broken" / "metrics.json").write_text("{")
    folder, record = latest_run(tmp_path, "tnet.megapixel_digits", "TNet")
    assert folder == small and record["profile"] == "small"
    assert latest_run(tmp_path, "tnet.megapixel_digits", "TNet", profile="smoke")[0] == smoke
    assert latest_run(tmp_path, "tnet.megapixel_digits", "TNet", profile="paper") is None
