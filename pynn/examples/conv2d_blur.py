"""Section 6.2 of the textbook, "Images and convolutions" and "Pooling layers": an image and its
three channels; a Conv2D whose single 9x9 filter is set to a Gaussian (the same on the red, green
and blue channels, summing to 1) turns the colour image into a blurred greyscale one,
`(x * f)(i, j) = sum_{k,l,c} f_{k,l,c} x_{i+k,j+l,c}`; and `MaxPool2D(pool_size=2)` on a small
grid of numbers.

    python -m pynn.examples.conv2d_blur [--quick] [--out DIR] [--seed S]

The image is a picture matplotlib ships as sample data (the textbook uses a photograph of a
cat); without it, a generated image of shapes. Writes `image_channels.png` (the image and its
red, green and blue intensities), `conv2d_blur.png` (the filter, the image, the output) and
`max_pooling.png` (a 4x4 grid and its 2x2 max pooling).
"""

from __future__ import annotations

import numpy as np

from pynn.examples import _cli
from pynn.layers import Conv2D, InputLayer, MaxPool2D
from pynn.models import Sequential


def gaussian_filter(size: int = 9, sigma: float = 2.0, channels: int = 3) -> np.ndarray:
    """A `(size, size, channels, 1)` kernel: one Gaussian per channel, all summing to 1."""
    k = np.arange(size) - size // 2
    plane = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / (2 * sigma**2))
    kernel = np.repeat(plane[:, :, None], channels, axis=2) / (plane.sum() * channels)
    return kernel[..., None].astype(np.float32)


def load_image() -> np.ndarray:
    """`(height, width, 3)` float32 in [0, 1]: matplotlib's sample picture on white."""
    try:
        from matplotlib import cbook

        path = cbook.get_sample_data("Minduka_Present_Blue_Pack.png", asfileobj=False)
        rgba = _cli.pyplot().imread(path).astype(np.float32)
    except (ImportError, OSError, ValueError):
        return generated_image()
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    return rgb * alpha + (1 - alpha)


def generated_image(size: int = 256) -> np.ndarray:
    """Sharp-edged discs and stripes in three colours."""
    i, j = np.mgrid[:size, :size] / size
    red = ((i - 0.3) ** 2 + (j - 0.3) ** 2 < 0.04).astype(np.float32)
    green = (np.sin(40 * j) > 0).astype(np.float32) * (i > 0.5)
    blue = ((i - 0.7) ** 2 + (j - 0.7) ** 2 < 0.02).astype(np.float32)
    return np.stack([red, green, blue], axis=-1)


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The image through a Conv2D holding `kernel` ("same" padding, no bias)."""
    model = Sequential(
        [
            InputLayer(shape=image.shape),
            Conv2D(1, kernel.shape[0], padding="same", use_bias=False),
        ]
    )
    model.set_weights([kernel])
    return model.predict(image[None], verbose=0)[0, :, :, 0]


def max_pool(grid: np.ndarray) -> np.ndarray:
    """`MaxPool2D(pool_size=2)` of a single-channel grid."""
    model = Sequential([InputLayer(shape=(*grid.shape, 1)), MaxPool2D(pool_size=2)])
    return model.predict(grid[None, :, :, None].astype(np.float32), verbose=0)[0, :, :, 0]


def plot_channels(image: np.ndarray, out: str) -> None:
    figure, axes = _cli.pyplot().subplots(1, 4, figsize=(14, 4))
    axes[0].imshow(image)
    axes[0].set_title("image")
    for ax, channel, colours in zip(axes[1:], range(3), ("Reds", "Greens", "Blues")):
        ax.imshow(image[:, :, channel], cmap=colours, vmin=0, vmax=1)
        ax.set_title(f"{colours[:-1].lower()} intensity")
    for ax in axes:
        ax.axis("off")
    _cli.save(figure, out, "image_channels.png")


def plot_pooling(grid: np.ndarray, pooled: np.ndarray, out: str) -> None:
    figure, axes = _cli.pyplot().subplots(1, 2, figsize=(8, 4))
    for ax, values, title in zip(axes, (grid, pooled), ("input", "MaxPool2D(pool_size=2)")):
        ax.imshow(values, cmap="Blues", vmin=0, vmax=grid.max() * 1.5)
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=14)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    _cli.save(figure, out, "max_pooling.png")


def main(argv: list[str] | None = None) -> dict:
    args = _cli.parser(__doc__, __spec__.name).parse_args(argv)
    image = load_image()
    kernel = gaussian_filter()
    blurred = blur(image, kernel)
    # The same sum written out in NumPy, at the centre pixel.
    ci, cj = image.shape[0] // 2, image.shape[1] // 2
    patch = image[ci - 4 : ci + 5, cj - 4 : cj + 5]
    direct = float(np.sum(patch * kernel[..., 0]))
    print(
        f"image {image.shape[0]}x{image.shape[1]}x3 -> {blurred.shape[0]}x{blurred.shape[1]}x1; "
        f"centre pixel {blurred[ci, cj]:.6f} (the sum written out: {direct:.6f})"
    )

    figure, axes = _cli.pyplot().subplots(1, 3, figsize=(12, 4))
    for ax, picture, title in zip(
        axes,
        (kernel[:, :, 0, 0], image, blurred),
        ("9x9 Gaussian filter", "input", "Conv2D output"),
    ):
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
        ax.set_title(title)
        ax.axis("off")
    _cli.save(figure, args.out, "conv2d_blur.png")
    plot_channels(image, args.out)

    grid = np.random.default_rng(args.seed).integers(0, 10, size=(4, 4)).astype(np.float32)
    pooled = max_pool(grid)
    print(f"MaxPool2D(pool_size=2): {grid.astype(int).tolist()} -> {pooled.astype(int).tolist()}")
    plot_pooling(grid, pooled, args.out)
    return {"image": image, "blurred": blurred, "direct": direct, "grid": grid, "pooled": pooled}


if __name__ == "__main__":
    _cli.run(main)
