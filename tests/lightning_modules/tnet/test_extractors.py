"""TNet's feature extractors: EfficientNet-B0's grid features where the spec takes them, its global feature
equal to timm's own pooled features, the official stochastic-depth schedule; the generic timm extractor."""

import pytest
import timm
import torch
import torch.nn.functional as F

from lightning_modules.tnet.extractors import EfficientNetExtractor, TimmExtractor


def test_efficientnet_grid_is_the_80_channel_stage_after_its_third_block_at_rows_2_6_10():
    extractor = EfficientNetExtractor(drop_path_rate=0.0).eval()
    model = extractor.model
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        grid, h = extractor(images)
        x = model.bn1(model.conv_stem(images))
        for stage in model.blocks[:4]:
            x = stage(x)
        assert x.shape[1:] == (80, 14, 14)
        torch.testing.assert_close(grid, x[:, :, [2, 6, 10]][:, :, :, [2, 6, 10]])
        torch.testing.assert_close(h, model(images))
    assert h.shape == (2, 1280)


def test_efficientnet_stochastic_depth_grows_to_the_rate_at_the_last_block():
    extractor = EfficientNetExtractor(drop_path_rate=0.32)
    blocks = [block for stage in extractor.model.blocks for block in stage]
    rates = [getattr(block.drop_path, "drop_prob", 0.0) for block in blocks]
    expected = [0.32 * b / 16 if block.has_skip else 0.0 for b, block in enumerate(blocks, start=1)]
    assert rates == pytest.approx(expected)
    assert rates[-1] == 0.0 and rates[-2] == pytest.approx(0.3)  # the last block changes width: no skip


def test_efficientnet_later_cub_configuration_gives_a_5x5_grid():
    extractor = EfficientNetExtractor(location_block=0, location_rows=(2, 4, 6, 8, 10)).eval()
    grid, _ = extractor(torch.randn(1, 3, 224, 224))
    assert grid.shape == (1, 80, 5, 5)
    with pytest.raises(ValueError, match=r"location_block must be in 0\.\.2"):
        EfficientNetExtractor(location_block=3)


def test_timm_extractor_pools_a_stage_into_the_grid():
    extractor = TimmExtractor("test_resnet", grid_size=5).eval()
    reference = timm.create_model("test_resnet", num_classes=0).eval()
    reference.load_state_dict(extractor.model.state_dict())
    images = torch.randn(2, 3, 112, 112)
    grid, h = extractor(images)
    _, (stage,) = reference.forward_intermediates(images, indices=[3])
    torch.testing.assert_close(grid, F.adaptive_avg_pool2d(stage, 5))
    torch.testing.assert_close(h, reference(images))
    assert extractor.location_channels == stage.shape[1]


def test_timm_extractor_errors_name_the_problem():
    with pytest.raises(ValueError, match="Unknown backbone 'resnet_5'"):
        TimmExtractor("resnet_5", grid_size=3)
    with pytest.raises(ValueError, match="location_stage must index the 5 stages"):
        TimmExtractor("test_resnet", grid_size=3, location_stage=7)


def test_efficientnet_global_features_alone_work_at_any_size_and_the_grid_needs_224_px():
    extractor = EfficientNetExtractor(drop_path_rate=0.0).eval()
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(extractor.global_features(images), extractor(images)[1])
        assert extractor.global_features(torch.randn(1, 3, 64, 64)).shape == (1, 1280)
        with pytest.raises(ValueError, match=r"the 80-channel map is \(4, 4\) for \(64, 64\) px inputs"):
            extractor(torch.randn(1, 3, 64, 64))
