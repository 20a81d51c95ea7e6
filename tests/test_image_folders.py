"""Image folders are checked before the first step: every file's header, links out of the folder,
empty class folders; a damaged file that passes the cheap check is named when it is loaded."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from sevenprune import cli
from sevenprune.tasks import loading as tasks
from sevenprune.tasks.features import image_tensor


def png_bytes(colour=(200, 0, 0), size=(8, 8), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "img"
    for split, n in (("train", 2), ("val", 1)):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                (root / split / c / f"{i}.png").write_bytes(png_bytes())
    return root


def test_a_good_folder_loads_and_other_files_are_left_out(folder):
    (folder / "train" / "cat" / "README.txt").write_text("notes")
    (folder / "train" / "dog" / "link.png").symlink_to(folder / "train" / "dog" / "0.png")  # inside: fine
    data = tasks.load_task("image-classification", data_dir=folder)
    assert len(data.train["image"]) == 5 and data.info["classes"] == ["cat", "dog"]


@pytest.mark.parametrize("content, reason", [
    (b"this is text, not a picture", "cannot identify image file"),
    (png_bytes()[:40], ""),  # a truncated PNG: the header is there, the chunks are cut
    (b"", "cannot identify image file"),
], ids=["text", "truncated-png", "empty"])
def test_a_file_that_is_not_an_image_is_named(folder, content, reason):
    bad = folder / "val" / "dog" / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=f"{bad} is not a readable image.*{reason}"):
        tasks.load_task("image-classification", data_dir=folder)


def test_a_link_out_of_the_folder_is_refused(folder, tmp_path):
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(png_bytes())
    link = folder / "train" / "cat" / "x.png"
    link.symlink_to(outside)
    with pytest.raises(ValueError, match=f"{link} is a symbolic link to .*elsewhere.png, outside --data-dir"):
        tasks.load_task("image-classification", data_dir=folder)


def test_a_class_folder_linked_from_outside_is_refused(folder, tmp_path):
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "0.png").write_bytes(png_bytes())
    (folder / "train" / "bird").symlink_to(tmp_path / "more")
    with pytest.raises(ValueError, match="train/bird is a symbolic link .* outside --data-dir"):
        tasks.load_task("image-classification", data_dir=folder)


@pytest.mark.parametrize("split", ["train", "val"])
def test_an_empty_class_folder_is_named(folder, split):
    (folder / split / "cat" / "0.png").unlink()
    if split == "train":
        (folder / split / "cat" / "1.png").unlink()
    (folder / split / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=f"{folder / split / 'cat'}: the class folder holds no images"):
        tasks.load_task("image-classification", data_dir=folder)


def test_a_damaged_image_is_named_when_loaded(tmp_path):
    jpeg = png_bytes(size=(64, 64), fmt="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(ValueError, match=f"{path} is not a readable image"):
        image_tensor(str(path), 16)


def test_the_command_line_names_the_file_before_training(folder, tmp_path, capsys):
    bad = folder / "train" / "dog" / "bad.jpg"
    bad.write_text("not a jpeg")
    argv = ["run", "--task", "image-classification", "--data-dir", str(folder), "--model", "vit-scratch",
            "--method", "dense", "--max-steps", "1", "--no-progress", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{bad} is not a readable image" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
