"""Pixels read over DICOMweb (Orthanc) equal the local DICOM backend's reads of the same files, bit for bit."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import wsikit
from wsikit.backends.dicom import DICOMBackend
from wsikit.backends.dicomweb import DICOMwebBackend

from .conftest import SERIES, Served, served_or_skip

NAMES = list(SERIES) + ["small_dicom"]


@pytest.fixture(params=NAMES)
def pair(request: pytest.FixtureRequest, served: dict[str, Served]):
    item = served_or_skip(served, request.param)
    remote = wsikit.open_slide(item.url)
    local = DICOMBackend(item.folder)
    yield remote, local
    remote.close()
    local.close()


def test_opens_as_dicomweb_with_the_local_structure(pair) -> None:
    remote, local = pair
    assert isinstance(remote, DICOMwebBackend)
    assert remote.level_shapes == local.level_shapes
    assert remote.is_rgb == local.is_rgb and remote.dtype == local.dtype and remote.sizes == local.sizes
    assert remote.mpp == local.mpp and remote.objective_power == local.objective_power
    assert remote.optical_paths == local.optical_paths and remote.focal_planes == local.focal_planes
    assert sorted(remote.associated_images) == sorted(local.associated_images)
    for key, value in local.properties.items():
        if key.startswith("dicom.") and key not in ("dicom.frame-index", "dicom.instances") and "unreadable" not in key:
            assert _values(remote.properties.get(key)) == _values(value), key


def _values(text: str | None) -> object:
    """A property as compared: decimal strings (DS) come as JSON numbers over DICOMweb ("0" -> 0.0)."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split("\\")]
    except ValueError:
        return text


def test_every_level_whole_and_in_tiles(pair) -> None:
    remote, local = pair
    for level in range(local.level_count):
        shape = local.level_shapes[level]
        assert np.array_equal(remote.extract_region((0, 0), shape, level=level, normalize=False),
                              local.extract_region((0, 0), shape, level=level, normalize=False)), level
        remote_tiles = list(remote.generate_tiles(200, pad=True, level=level))
        local_tiles = list(local.generate_tiles(200, pad=True, level=level))
        assert len(remote_tiles) == len(local_tiles) > 0
        for a, b in zip(remote_tiles, local_tiles):
            assert a.coords == b.coords and np.array_equal(a.image, b.image), (level, a.coords)


def test_unaligned_regions_and_thumbnails(pair) -> None:
    remote, local = pair
    h, w = local.shape
    for location, size in (((h // 3, w // 5), (301, 257)), ((-20, w - 100), (150, 200)), ((7, 9), (1, 1))):
        assert np.array_equal(remote.extract_region(location, size), local.extract_region(location, size))
    for size in (64, (300, 200)):
        assert np.array_equal(remote.get_thumbnail(size), local.get_thumbnail(size))


def test_associated_images(pair) -> None:
    remote, local = pair
    for name, image in local.associated_images.items():
        assert np.array_equal(remote.associated_images[name], image), name


def test_read_regions_in_parallel(pair) -> None:
    remote, local = pair
    locations = [(i, j) for i in range(0, local.shape[0], 97) for j in range(0, local.shape[1], 151)]
    for a, b in zip(remote.read_regions(locations, 120, workers=3), local.read_regions(locations, 120, workers=3)):
        assert np.array_equal(a, b)


def test_focal_planes_as_local(served: dict[str, Served]) -> None:
    item = served["planes"]
    with wsikit.open_slide(item.url) as remote, DICOMBackend(item.folder) as local:
        assert len(remote.focal_planes) == 3
        for plane in range(3):
            for level in range(local.level_count):
                shape = local.level_shapes[level]
                assert np.array_equal(remote.extract_region((0, 0), shape, level=level, focal_plane=plane),
                                      local.extract_region((0, 0), shape, level=level, focal_plane=plane))
        with wsikit.open_slide(item.url, focal_plane=2) as chosen:
            assert np.array_equal(chosen.extract_region((0, 0), chosen.shape),
                                  local.extract_region((0, 0), local.shape, focal_plane=2))
        with pytest.raises(ValueError, match="focal_plane"):
            remote.extract_region((0, 0), 10, focal_plane=3)


def test_small_dicom_colours_match_the_local_reader(served: dict[str, Served]) -> None:
    """small_dicom.dcm says RGB but holds YCbCr JPEG: the stored bytes are decoded here, as locally."""
    item = served_or_skip(served, "small_dicom")
    with wsikit.open_slide(item.url) as remote, DICOMBackend(item.folder) as local:
        assert remote.shape == (2638, 3236)
        region = remote.extract_region((1000, 1000), (500, 500))
        assert np.array_equal(region, local.extract_region((1000, 1000), (500, 500)))
        assert region.mean(axis=(0, 1))[0] > region.mean(axis=(0, 1))[1]  # H&E: pink, not green


def test_tiling_batches_frames(served: dict[str, Served]) -> None:
    """Frames come in batches: far fewer requests than frames."""
    item = served["concatenated-fragments"]
    with wsikit.open_slide(item.url) as remote:
        before = remote.requests_made
        tiles = list(remote.generate_tiles(256, level=0))
        frames = len(tiles)
        assert frames == 12
        assert remote.requests_made - before <= 4  # at most one per instance and read-ahead step
    with wsikit.open_slide(item.url, storage_options={"wsikit_request_bytes": 4096}) as small_batches:
        list(small_batches.generate_tiles(256, level=0))
        assert small_batches.requests_made > remote.requests_made  # batches bounded by bytes


def test_pickled_slide_reopens_with_its_options(served: dict[str, Served]) -> None:
    item = served["sparse-jpeg"]
    with wsikit.open_slide(item.url, headers={"X-Trace": "abc"}, cache_bytes=1 << 20) as remote:
        clone = pickle.loads(pickle.dumps(remote))
        try:
            assert isinstance(clone, DICOMwebBackend) and clone.path == remote.path
            assert np.array_equal(clone.extract_region((100, 200), (300, 300)),
                                  remote.extract_region((100, 200), (300, 300)))
        finally:
            clone.close()


def test_backend_name_and_url_forms(served: dict[str, Served]) -> None:
    item = served["full-rle"]
    with wsikit.open_slide(item.url + "/", backend="dicomweb") as remote:
        assert remote.path == item.url
        assert remote.properties["dicomweb.url"] == item.url
    assert wsikit.open_slide.__module__  # the opener chose the backend by URL form above
    with pytest.raises(wsikit.errors.UnsupportedFormatError, match="studies"):
        wsikit.open_slide(item.url.rsplit("/series/", 1)[0], backend="dicomweb")


def test_announced_reads_come_in_few_requests(served: dict[str, Served]) -> None:
    """Scattered regions (read_regions' look-ahead) and a large region announce their frames:
    a few batched requests, not one per frame."""
    item = served["many-frames"]  # 16 x 32 frames of 64 pixels
    rng = np.random.default_rng(5)
    locations = [tuple(v) for v in rng.integers(0, 900, size=(60, 2)).tolist()]
    with wsikit.open_slide(item.url) as remote, DICOMBackend(item.folder) as local:
        before = remote.requests_made
        for a, b in zip(remote.read_regions(locations, 100), local.read_regions(locations, 100)):
            assert np.array_equal(a, b)
        assert remote.requests_made - before <= 4  # 60 regions of up to 9 frames each
        before = remote.requests_made
        assert np.array_equal(remote.extract_region((300, 1000), (700, 1000)),
                              local.extract_region((300, 1000), (700, 1000)))
        assert remote.requests_made - before <= 2


@pytest.fixture(scope="module")
def with_icc(orthanc, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """A series whose optical path carries an ICC profile (served as bulk data by Orthanc)."""
    import pydicom
    from PIL import ImageCms

    from .conftest import write_series

    folder = tmp_path_factory.mktemp("icc")
    files = write_series(folder, "full-explicit", seed=71)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    for path in files:
        ds = pydicom.dcmread(path)
        ds.OpticalPathSequence[0].ICCProfile = profile
        ds.save_as(path)
    [(study, series)] = orthanc.upload(files)
    return Served(orthanc.series_url(study, series), str(folder), study, series, files)


def test_icc_profiles_as_local(with_icc: Served, orthanc) -> None:
    from .fault_proxy import FaultProxy

    with DICOMBackend(with_icc.folder) as local:
        assert local.icc_profile
        with FaultProxy(orthanc.url) as proxy:  # bulk data URIs name the server, not the proxy
            proxied = with_icc.url.replace(orthanc.url, proxy.url)
            for url in (with_icc.url, proxied):
                with wsikit.open_slide(url) as remote:
                    assert remote.icc_profile == local.icc_profile
                    assert remote.associated_icc_profiles == local.associated_icc_profiles
        with wsikit.open_slide(with_icc.url, color="srgb") as remote, \
                DICOMBackend(with_icc.folder, color="srgb") as converted:
            assert np.array_equal(remote.extract_region((0, 0), remote.shape),
                                  converted.extract_region((0, 0), converted.shape))


def test_colour_converted_thumbnails_as_local(orthanc, tmp_path) -> None:
    """With color="srgb" the thumbnail is read from a level, converted (the THUMBNAIL
    instance would be large enough, but it is not converted), as for a local series."""
    import imagecodecs
    import pydicom

    from .conftest import write_series

    files = write_series(tmp_path, "full-explicit", seed=72)
    wide_gamut = bytes(imagecodecs.cms_profile("rgb", whitepoint=[0.3127, 0.329],
                                               primaries=[0.64, 0.33, 0.21, 0.71, 0.15, 0.06], gamma=2.2))
    for path in files:
        ds = pydicom.dcmread(path)
        ds.OpticalPathSequence[0].ICCProfile = wide_gamut
        ds.save_as(path)
    [(study, series)] = orthanc.upload(files)
    with wsikit.open_slide(orthanc.series_url(study, series), color="srgb") as remote, \
            DICOMBackend(str(tmp_path), color="srgb") as converted, DICOMBackend(str(tmp_path)) as raw:
        size = (50, 75)  # the THUMBNAIL instance (171 x 256) covers it
        assert not np.array_equal(converted.get_thumbnail(size), raw.get_thumbnail(size))  # conversion changes pixels
        assert np.array_equal(remote.get_thumbnail(size), converted.get_thumbnail(size))


def _child_read(slide, queue) -> None:  # runs in a forked process
    try:
        queue.put(slide.extract_region((500, 700), (300, 600)).tobytes())
    except BaseException as exc:  # reported to the parent
        queue.put(repr(exc))


def test_a_forked_child_reads_on_its_own_connections(served: dict[str, Served]) -> None:
    import multiprocessing

    item = served["many-frames"]
    context = multiprocessing.get_context("fork")
    with wsikit.open_slide(item.url) as remote, DICOMBackend(item.folder) as local:
        remote.extract_region((0, 0), (200, 200))  # threads and connections in use before the fork
        queue = context.Queue()
        child = context.Process(target=_child_read, args=(remote, queue))
        child.start()
        got = queue.get(timeout=60)
        child.join(60)
        assert got == local.extract_region((500, 700), (300, 600)).tobytes()
        assert np.array_equal(remote.extract_region((500, 700), (300, 600)),
                              local.extract_region((500, 700), (300, 600)))
