"""Tests for sedc.imaging.io: finding image files, loading them, naming outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from sedc.imaging.io import IMAGE_EXTENSIONS, ImageLoadError, find_images, image_id, load_image, safe_stem

ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((128, 128), Image.Resampling.BICUBIC)


def _touch(path: Path, image: Image.Image | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (image or Image.new("RGB", (4, 4), (10, 20, 30))).save(path)
    return path


# ---------------------------------------------------------------------------------------------
# find_images
# ---------------------------------------------------------------------------------------------

def test_find_images_searches_folders_recursively(tmp_path) -> None:
    root = tmp_path / "photos"
    expected = [_touch(root / "a.png"), _touch(root / "sub" / "B.JPG"),
                _touch(root / "sub" / "deeper" / "c.webp"), _touch(root / "z.tiff")]
    (root / "notes.txt").write_text("not an image")
    _touch(root / ".hidden.png")
    _touch(root / ".cache" / "x.png")
    assert find_images([root]) == expected
    assert find_images(str(root)) == expected  # a single path is accepted too


def test_find_images_keeps_argument_order_and_deduplicates(tmp_path) -> None:
    folder = tmp_path / "dir"
    inside = [_touch(folder / "x.bmp"), _touch(folder / "y.jpeg")]
    explicit = _touch(tmp_path / "first.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("explicit files are kept whatever their extension")
    found = find_images([explicit, str(folder), notes, folder / "y.jpeg", explicit])
    assert found == [explicit, *inside, notes]


def test_find_images_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="image path does not exist: '.*missing.png'"):
        find_images([tmp_path / "missing.png"])
    with pytest.raises(TypeError, match="str or pathlib.Path"):
        find_images([3])  # type: ignore[list-item]
    assert find_images([]) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_images([empty]) == []


def test_extensions_are_lower_case_with_dots() -> None:
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)
    assert {".jpg", ".png", ".webp", ".tif"} <= set(IMAGE_EXTENSIONS)


# ---------------------------------------------------------------------------------------------
# load_image
# ---------------------------------------------------------------------------------------------

def test_png_round_trip_and_resize(tmp_path, astronaut) -> None:
    path = _touch(tmp_path / "astronaut.png", astronaut)
    image = load_image(path)
    assert image.dtype == np.float32 and image.shape == (128, 128, 3)
    assert np.array_equal(image, np.asarray(astronaut, dtype=np.float32) / 255)
    assert load_image(str(path), 64).shape == (64, 64, 3)
    resized = load_image(path, (40, 96))
    assert resized.shape == (40, 96, 3)
    assert resized.min() >= 0.0 and resized.max() <= 1.0


def test_jpeg_exif_orientation_is_applied(tmp_path) -> None:
    photo = data.chelsea()  # 300 x 451
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(photo).save(path, quality=95, exif=exif)
    image = load_image(path)
    assert image.shape == (451, 300, 3)
    upright = np.rot90(photo, k=-1).astype(np.float32) / 255
    assert np.abs(image - upright).mean() < 0.03
    assert load_image(path, 224).shape == (224, 224, 3)


def test_grayscale_and_16_bit_become_rgb(tmp_path) -> None:
    camera = data.camera()
    gray = load_image(_touch(tmp_path / "gray.png", Image.fromarray(camera)))
    assert gray.shape == camera.shape + (3,)
    assert np.array_equal(gray[..., 0], gray[..., 2])
    assert np.allclose(gray[..., 1], camera / 255, atol=1e-6)
    deep = Image.fromarray(camera.astype(np.uint16) * 257)
    wide = load_image(_touch(tmp_path / "deep.png", deep))
    assert wide.shape == camera.shape + (3,)
    assert np.allclose(wide[..., 0], camera / 255, atol=1e-5)
    small = load_image(tmp_path / "deep.png", 32)
    assert small.shape == (32, 32, 3) and 0.0 <= small.min() and small.max() <= 1.0


def test_rgba_is_composited_on_white(tmp_path, astronaut) -> None:
    rgb = np.asarray(astronaut)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :64] = 0
    alpha[:, 64:96] = 128
    path = _touch(tmp_path / "rgba.png", Image.fromarray(np.dstack([rgb, alpha])))
    image = load_image(path)
    assert np.all(image[:, :64] == 1.0)
    assert np.allclose(image[:, 96:], rgb[:, 96:] / 255, atol=1e-6)
    half = image[:, 64:96]
    assert np.allclose(half, (rgb[:, 64:96] / 255 + 1) / 2, atol=0.01)


def test_palette_images(tmp_path, astronaut) -> None:
    palette = astronaut.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    image = load_image(_touch(tmp_path / "palette.png", palette))
    assert np.allclose(image, np.asarray(palette.convert("RGB")) / 255, atol=1e-6)
    transparent = palette.copy()
    transparent.info["transparency"] = int(np.asarray(palette)[0, 0])
    path = tmp_path / "transparent.png"
    transparent.save(path, transparency=transparent.info["transparency"])
    loaded = load_image(path)
    assert np.all(loaded[0, 0] == 1.0)
    assert loaded.shape == (128, 128, 3)


def test_cmyk_jpeg(tmp_path, astronaut) -> None:
    path = tmp_path / "cmyk.jpg"
    astronaut.convert("CMYK").save(path, quality=95)
    image = load_image(path)
    assert image.shape == (128, 128, 3)
    assert np.abs(image - np.asarray(astronaut) / 255).mean() < 0.05


def test_unreadable_files_raise_image_load_error(tmp_path, astronaut) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    with pytest.raises(ImageLoadError, match="cannot load image '.*bad.jpg'") as info:
        load_image(bad)
    assert isinstance(info.value, ValueError) and info.value.path == bad and info.value.reason

    full = _touch(tmp_path / "full.png", astronaut).read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full[: len(full) // 2])
    with pytest.raises(ImageLoadError, match="truncated.png"):
        load_image(truncated)

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImageLoadError, match=r"notes.txt.*supported extensions: \.jpg"):
        load_image(text)
    with pytest.raises(ImageLoadError, match="missing.png': file not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="not a file"):
        load_image(tmp_path)


def test_bad_sizes(tmp_path) -> None:
    path = _touch(tmp_path / "x.png")
    with pytest.raises(ValueError, match="size must be positive"):
        load_image(path, 0)
    with pytest.raises(TypeError, match=r"size must be an int, a \(height, width\) pair"):
        load_image(path, (2, 3, 4))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="size must be"):
        load_image(path, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="size must be"):
        load_image(path, True)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Output names
# ---------------------------------------------------------------------------------------------

def test_image_id(tmp_path) -> None:
    root = tmp_path / "photos"
    assert image_id(root / "sub" / "cat.png", root) == "sub/cat.png"
    assert image_id(root / "cat.png", str(root)) == "cat.png"
    assert image_id(tmp_path / "other" / "dog.jpg", root) == (tmp_path / "other" / "dog.jpg").as_posix()
    assert image_id("relative/dog.jpg") == "relative/dog.jpg"


def test_safe_stem_is_unique_and_safe() -> None:
    taken: set[str] = set()
    assert safe_stem("cat.png", taken) == "cat"
    assert safe_stem("sub/cat.png", taken) == "sub_cat"
    assert safe_stem("Sub/CAT.jpg", taken) == "Sub_CAT_2"  # case-insensitive file systems
    assert safe_stem("cat.jpg", taken) == "cat_2"
    assert safe_stem("a/sub/cat.png", taken) == "a_sub_cat"
    assert safe_stem("my photo (1).JPG", taken) == "my_photo_1"
    assert safe_stem("???.png", taken) == "image"
    assert safe_stem("con.png", taken) == "_con"
    assert safe_stem("../up.png", taken) == "up"
    assert taken == {"cat", "sub_cat", "Sub_CAT_2", "cat_2", "a_sub_cat", "my_photo_1", "image",
                     "_con", "up"}
    assert len(safe_stem("x" * 500 + ".png", taken)) <= 120
    with pytest.raises(TypeError, match="taken must be a set"):
        safe_stem("cat.png", [])  # type: ignore[arg-type]
