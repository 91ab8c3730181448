"""Bio-Formats is asked only about files it recognises by content (where the format has a
known signature), never about a file that merely carries one of its name endings."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import wsikit
from tests.backends.tiff.test_multichannel import make_qptiff_pyramid, write_ome_series, write_ome_tiff
from tests.helpers import real_slide
from wsikit.backends.bioformats import signatures
from wsikit.backends.bioformats.signatures import SIGNATURES_BY_SUFFIX, SUFFIXES, claimed_suffixes
from wsikit.errors import UnsupportedFormatError

BioFormatsBackend = wsikit.BioFormatsBackend

# A file name and the first bytes of a file of that format.
SIGNED = {
    "a.czi": b"ZISRAWFILE" + bytes(22),
    "b.ND2": b"\xda\xce\xbe\x0a" + bytes(12),
    "old.nd2": b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(8),  # ND2 before NIS-Elements 3: JPEG 2000
    "c.ome.tiff": b"II*\x00\x08\x00\x00\x00",
    "big.btf": b"II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00",
    "d.lif": b"\x70\x00\x00\x00\x10\x00\x00\x00\x2a\x05\x00\x00\x00<\x00L\x00",
    "e.vsi": b"MM\x00*\x00\x00\x00\x08",
    "f.qptiff": b"II*\x00\x08\x00\x00\x00",
    "slide.svs": b"II*\x00\x08\x00\x00\x00",
    "h.ims": b"\x89HDF\r\n\x1a\n" + bytes(8),
    "user-block.h5": bytes(512) + b"\x89HDF\r\n\x1a\n",
    "i.zvi": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(8),
    "i.oib": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(8),
    "j.dcm": bytes(128) + b"DICM" + bytes(8),
    "k.jp2": b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(8),
    "k.j2k": b"\xff\x4f\xff\x51" + bytes(8),
    "l.png": b"\x89PNG\r\n\x1a\n" + bytes(8),
    "m.jpg": b"\xff\xd8\xff\xe0" + bytes(8),
    "n.bmp": b"BM" + bytes(12),
    "o.gif": b"GIF89a" + bytes(8),
}


def test_endings_with_a_signature_are_recognised_by_content(tmp_path):
    for name, head in SIGNED.items():
        (tmp_path / name).write_bytes(head)
        assert BioFormatsBackend.can_read(str(tmp_path / name)), name
        liar = tmp_path / f"text-{name}"
        liar.write_bytes(b"not really " * 300)
        assert not BioFormatsBackend.can_read(str(liar)), liar.name


def test_endings_without_a_known_signature_go_by_name(tmp_path):
    # Text companions (.oif, .vms) and formats whose headers are not checked here.
    for name in ("g.nii.gz", "p.oif", "q.vms", "r.dv", "s.mrc"):
        assert not any(ending in SIGNATURES_BY_SUFFIX for ending in claimed_suffixes(name)), name
        (tmp_path / name).write_bytes(b"not really")
        assert BioFormatsBackend.can_read(str(tmp_path / name)), name


def test_files_with_no_bioformats_ending_are_not_recognised(tmp_path):
    for name in ("notes.txt", "data.xml", "archive.zip", "noext"):
        (tmp_path / name).write_bytes(b"II*\x00")
        assert not BioFormatsBackend.can_read(str(tmp_path / name)), name
    assert not BioFormatsBackend.can_read(str(tmp_path))  # a folder
    assert not BioFormatsBackend.can_read(str(tmp_path / "missing.czi"))
    assert not BioFormatsBackend.can_read(b"bytes.czi")


def test_claimed_suffixes_longest_first():
    assert claimed_suffixes("/data/A.OME.TIFF") == ["ome.tiff", "tiff"]
    assert claimed_suffixes("x.nii.gz") == ["nii.gz"]
    assert claimed_suffixes("notes.txt") == []
    assert set(SIGNATURES_BY_SUFFIX) <= SUFFIXES


def test_text_file_named_svs_is_unsupported_and_starts_no_jvm(tmp_path):
    """A text file named notes.svs once started a JVM and came back as CorruptSlideError
    ("Invalid TIFF file"): a file no backend recognises by content is unsupported."""
    pytest.importorskip("jpype")
    path = tmp_path / "notes.svs"
    path.write_text("meeting notes: scan the slides on Monday\n")
    code = (
        "import sys, jpype, wsikit\n"
        "from wsikit.errors import UnsupportedFormatError\n"
        "for backend in (None, 'bioformats'):\n"
        "    try:\n"
        "        wsikit.open_slide(sys.argv[1], backend=backend)\n"
        "    except UnsupportedFormatError as exc:\n"
        "        print(backend, type(exc).__name__, exc.path == sys.argv[1])\n"
        "print('jvm', jpype.isJVMStarted())\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["None UnsupportedFormatError True", "bioformats UnsupportedFormatError True",
                                       "jvm False"]
    for backend in (None, "bioformats"):  # the same here, whether or not this process has a JVM
        with pytest.raises(UnsupportedFormatError):
            wsikit.open_slide(path, backend=backend)


@pytest.mark.parametrize("name", ["small_vectra.qptiff", "smalltif.tif"])
def test_real_files_of_the_bioformats_tests_are_recognised(name):
    assert BioFormatsBackend.can_read(real_slide(name))


def test_synthetic_files_of_the_bioformats_tests_are_recognised(tmp_path, sample_svs):
    from PIL import Image

    rng = np.random.default_rng(10)
    paths = [
        write_ome_tiff(tmp_path / "u16.ome.tif", rng.integers(0, 65536, (2, 3, 4, 40, 56), dtype=np.uint16)),
        write_ome_tiff(tmp_path / "f32.ome.tif", rng.uniform(0, 1, (3, 2, 2, 30, 40)).astype(np.float32),
                       levels=2, tile=None, label=False),
        make_qptiff_pyramid(tmp_path)[0],
        write_ome_series(tmp_path / "series.ome.tif", list(rng.integers(0, 65536, (3, 20, 30), dtype=np.uint16))),
        sample_svs,
    ]
    Image.fromarray(rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)).save(tmp_path / "picture.png")
    (tmp_path / "broken.czi").write_bytes(b"ZISRAWFILE" + b"\0" * 200)
    paths += [str(tmp_path / "picture.png"), str(tmp_path / "broken.czi")]
    for path in paths:
        assert BioFormatsBackend.can_read(str(path)), path
    assert signatures.HEAD_BYTES >= 2048 + 8  # far enough for an HDF5 superblock after a user block
