"""The one tiling module: receptive fields from the layers, margins, boxes, padding."""
import numpy as np
import pytest
import torch
from torch import nn

from cosmiq_pyro.deepcr.inpaint_net import InpaintUNet
from cosmiq_pyro.utils.tiling import TILE_ALIGN, pad_to_grid, receptive_radius, tile_boxes, tile_margin


def impulse_reach(net, n_channels, size=64):
    """Largest distance (px, Chebyshev) at which a single input pixel changes the output, over
    the pooling cells' parities: the receptive-field radius measured."""
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                layer.bias.abs_()  # keep ReLUs open so every path carries the impulse
        base = net(torch.zeros(1, n_channels, size, size))[0, 0]
        reach = 0
        for r, c in [(32, 32), (33, 33), (34, 35), (35, 34)]:
            x = torch.zeros(1, n_channels, size, size)
            x[0, :, r, c] = 100.0
            rows, cols = torch.nonzero(net(x)[0, 0] != base, as_tuple=True)
            reach = max(reach, int((rows - r).abs().max()), int((cols - c).abs().max()))
    return reach


@pytest.mark.parametrize("depth,radius", [(2, 9), (3, 23)])
def test_radius_from_the_layers_equals_the_measured_reach_of_the_inpainting_nets(depth, radius):
    net = InpaintUNet(hidden=4, depth=depth).eval()
    assert receptive_radius(net) == radius == impulse_reach(net, 2)
    assert tile_margin(net, align=2 ** depth) == -(-radius // 2 ** depth) * 2 ** depth


def test_a_layer_of_unknown_reach_is_refused():
    with pytest.raises(ValueError, match="unknown receptive field"):
        receptive_radius(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Upsample(scale_factor=2)))
    with pytest.raises(ValueError, match="stride-1 'same' convolution"):
        receptive_radius(nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=1)))


@pytest.mark.parametrize("shape,tile", [((1024, 1020), 384), ((36, 8), 16), ((5, 7), 4)])
def test_boxes_cover_every_pixel_once_on_the_grid(shape, tile):
    count = np.zeros(shape, int)
    for (r0, r1, c0, c1), (ir0, ir1, ic0, ic1) in tile_boxes(shape, tile, 12):
        count[r0:r1, c0:c1] += 1
        assert r1 - r0 <= tile and c1 - c0 <= tile and r0 % TILE_ALIGN == 0 and c0 % TILE_ALIGN == 0
        assert ir0 == max(r0 - 12, 0) and ir1 == min(r1 + 12, shape[0]) and ic0 == max(c0 - 12, 0)
    assert (count == 1).all()


def test_padding_mirrors_to_the_grid():
    image = np.arange(30, dtype=np.float32).reshape(5, 6)
    padded = pad_to_grid(image)
    assert padded.shape == (8, 8)
    np.testing.assert_array_equal(padded[:5, :6], image)
    np.testing.assert_array_equal(padded[5, :6], image[4])  # symmetric: the edge row repeated first
    np.testing.assert_array_equal(padded[:5, 6], image[:, 5])
