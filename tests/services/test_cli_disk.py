"""`skas disk create` makes clean ext2 images: the default busybox tree, or a
copy of a directory."""
from __future__ import annotations

import subprocess

import pytest

from conftest import skas


def debugfs(img, request: str) -> str:
    r = subprocess.run(["debugfs", "-R", request, str(img)], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def e2fsck_clean(img) -> bool:
    r = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, check=False)
    return r.returncode == 0


def test_help_lists_the_commands():
    r = skas("--help")
    assert r.returncode == 0
    for command in ("disk", "run", "create", "supervisorctl", "status", "destroy"):
        assert f"\n  {command} " in r.stdout, r.stdout


@pytest.fixture(scope="module")
def default_img(tmp_path_factory):
    img = tmp_path_factory.mktemp("default") / "disk.img"
    r = skas("disk", "create", str(img))
    assert r.returncode == 0, r.stderr
    assert "64M" in r.stdout and "files" in r.stdout
    return img


def test_default_image_is_clean_and_holds_busybox_with_a_link_per_applet(default_img):
    assert e2fsck_clean(default_img)
    busybox = debugfs(default_img, "stat /bin/busybox")
    assert "Type: regular" in busybox
    bin_ls = debugfs(default_img, "ls -l /bin")
    assert " busybox" in bin_ls
    for applet in ("/bin/sh", "/bin/ls", "/usr/bin/env", "/sbin/init"):
        link = debugfs(default_img, f"stat {applet}")
        assert "Type: symlink" in link and 'Fast link dest: "/bin/busybox"' in link, link


def test_default_image_has_a_minimal_etc_and_the_usual_directories(default_img):
    assert debugfs(default_img, "cat /etc/hostname") == "skas\n"
    assert debugfs(default_img, "cat /etc/passwd") == "root:x:0:0:root:/root:/bin/sh\n"
    assert debugfs(default_img, "cat /etc/group").startswith("root:x:0:")
    root = debugfs(default_img, "ls /").split()
    for d in ("bin", "etc", "root", "tmp", "proc", "dev", "sys", "run", "home"):
        assert d in root


def test_from_copies_a_directory_tree(tmp_path):
    src = tmp_path / "src"
    (src / "a/b").mkdir(parents=True)
    (src / "a/b/hello.txt").write_text("hello from the tree\n")
    (src / "top").write_text("top\n")
    img = tmp_path / "from.img"
    r = skas("disk", "create", str(img), "--size", "8M", "--from", str(src))
    assert r.returncode == 0, r.stderr
    assert "4 files" in r.stdout, r.stdout          # a, a/b, a/b/hello.txt, top
    assert debugfs(img, "cat /a/b/hello.txt") == "hello from the tree\n"
    assert debugfs(img, "cat /top") == "top\n"
    assert "busybox" not in debugfs(img, "ls /")
    assert e2fsck_clean(img)


def test_an_existing_path_is_kept_unless_forced(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("new\n")
    img = tmp_path / "disk.img"
    img.write_bytes(b"precious")
    r = skas("disk", "create", str(img), "--size", "4M", "--from", str(src))
    assert r.returncode != 0 and "--force" in r.stderr
    assert img.read_bytes() == b"precious"
    r = skas("disk", "create", str(img), "--size", "4M", "--from", str(src), "--force")
    assert r.returncode == 0, r.stderr
    assert debugfs(img, "cat /f") == "new\n"
    assert e2fsck_clean(img)


def test_a_tree_too_big_for_the_size_fails_and_says_why(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(b"\1" * (3 << 20))
    r = skas("disk", "create", str(tmp_path / "small.img"), "--size", "1M", "--from", str(src))
    assert r.returncode != 0 and "--size" in r.stderr, r.stderr
