"""The viewer's HTTP API and Deep Zoom tiles, against wsikit's own reads.

Tiles are compared with ``extract_region`` of the same box: PNG exactly, JPEG within a
PSNR of 32 dB. Plans are compared with ``slide.tile_plan`` for the options ``wsikit tile``
takes, results with the ``tiles.csv`` a real tiling run wrote.
"""
from __future__ import annotations

import csv
import io
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from tests.viewer.conftest import Served, start
from wsikit import open_slide
from wsikit.sinks import TileOptions, tile_slide
from wsikit.viewer.encoding import BytesCache


def decode(data: bytes) -> np.ndarray:
    if data[:3] == b"\xff\xd8\xff":
        return np.asarray(imagecodecs.jpeg8_decode(data))
    return np.asarray(imagecodecs.png_decode(data))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def descriptor(served: Served, slide_id: str, query: str = "") -> dict[str, int | str]:
    response = served.client.get(f"/dzi/{slide_id}.dzi{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    size = root.find("{http://schemas.microsoft.com/deepzoom/2008}Size")
    assert size is not None
    return {"format": root.attrib["Format"], "tile": int(root.attrib["TileSize"]),
            "overlap": int(root.attrib["Overlap"]), "width": int(size.attrib["Width"]),
            "height": int(size.attrib["Height"])}


def tile(served: Served, slide_id: str, level: int, column: int, row: int, fmt: str, query: str = "") -> np.ndarray:
    response = served.client.get(f"/dzi/{slide_id}_files/{level}/{column}_{row}.{fmt}{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"image/{fmt}"
    return decode(response.content)


def max_level(shape: tuple[int, int]) -> int:
    return math.ceil(math.log2(max(shape)))


# -- listing and descriptors ---------------------------------------------------------------
def test_api_slides_lists_every_slide_with_its_descriptor(synthetic: Served, synthetic_slides: Path) -> None:
    slides = synthetic.client.get("/api/slides").json()
    names = sorted(s["name"] for s in slides)
    assert names == ["fluo.ome.tif", "he/sample.svs", "zstack"]
    assert len({s["id"] for s in slides}) == 3
    for s in slides:
        assert s["error"] is None
        assert s["dzi"] == f"/dzi/{s['id']}.dzi"
        path = synthetic_slides / s["name"]
        with open_slide(str(path)) as slide:
            assert s["shape"] == list(slide.shape)
            assert s["backend"] == slide.name
            assert s["mpp"] == (None if slide.mpp is None else list(slide.mpp))
            info = descriptor(synthetic, s["id"])
            assert (info["height"], info["width"]) == slide.shape
            assert info["tile"] == 256 and info["overlap"] == 0
            assert info["format"] == ("jpeg" if slide.is_rgb else "png")
    he = next(s for s in slides if s["name"].endswith(".svs"))
    assert he["format"] == "SVS" and he["magnification"] == 40.0 and he["levels"] == 3


def test_descriptor_format_on_request(synthetic: Served) -> None:
    he = synthetic.slide_id("sample")
    assert descriptor(synthetic, he, "?format=png")["format"] == "png"
    response = synthetic.client.get(f"/dzi/{he}.dzi?format=gif")
    assert response.status_code == 400 and "format" in response.text


def test_slide_details(synthetic: Served) -> None:
    info = synthetic.client.get(f"/api/slides/{synthetic.slide_id('sample')}").json()
    assert info["backend"] == "tiff" and [lv["shape"] for lv in info["levels"]] == [[1024, 1536], [256, 384], [64, 96]]
    assert sorted(info["associated"]) == ["label", "macro", "thumbnail"]
    assert info["optical_paths"] == [] and info["focal_planes"] == [] and info["results"] is False
    fluo = synthetic.client.get(f"/api/slides/{synthetic.slide_id('fluo')}").json()
    assert [c["name"] for c in fluo["channels"]] == ["DAPI", "CD3", "CD8"]
    assert fluo["value_range"] == [0, 65535] and fluo["dtype"] == "uint16"
    zstack = synthetic.client.get(f"/api/slides/{synthetic.slide_id('zstack')}").json()
    assert zstack["focal_planes"] == [0.0, 1.0]


# -- tiles against extract_region ----------------------------------------------------------
def test_png_tiles_equal_extract_region_at_every_pyramid_level(synthetic: Served, synthetic_slides: Path) -> None:
    slide_id = synthetic.slide_id("sample")
    with open_slide(str(synthetic_slides / "he" / "sample.svs")) as slide:
        top = max_level(slide.shape)
        # DZI levels top, top-2, top-4 are pyramid levels 0, 1, 2 (downsamples 1, 4, 16).
        for dzi_level, level in ((top, 0), (top - 2, 1), (top - 4, 2)):
            h, w = slide.level_shapes[level]
            for row in range(-(-h // 256)):
                for column in range(-(-w // 256)):
                    got = tile(synthetic, slide_id, dzi_level, column, row, "png")
                    th, tw = min(256, h - row * 256), min(256, w - column * 256)
                    expected = slide.extract_region((row * 256, column * 256), (th, tw), level=level)
                    assert got.shape == expected.shape
                    np.testing.assert_array_equal(got, expected)


def test_levels_between_pyramid_levels_are_area_means(synthetic: Served, synthetic_slides: Path) -> None:
    slide_id = synthetic.slide_id("sample")
    with open_slide(str(synthetic_slides / "he" / "sample.svs")) as slide:
        top = max_level(slide.shape)
        region = slide.extract_region((0, 512), (512, 512), level=0).astype(np.float64)
    got = tile(synthetic, slide_id, top - 1, 1, 0, "png")  # DZI pixels 256..511 of the half-size level
    expected = np.rint(region.reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))).astype(np.uint8)
    np.testing.assert_array_equal(got, expected)


def jpeg_tiles_within_psnr(served: Served, slide_id: str, path: str) -> list[float]:
    values = []
    with open_slide(path) as slide:
        top = max_level(slide.shape)
        h, w = slide.shape
        rows, cols = -(-h // 256), -(-w // 256)
        picks = {(0, 0), (rows // 2, cols // 2), (rows // 3, cols // 2 + 1), (rows - 1, cols - 1)}
        for row, column in sorted(picks):
            got = tile(served, slide_id, top, column, row, "jpeg")
            th, tw = min(256, h - row * 256), min(256, w - column * 256)
            expected = slide.extract_region((row * 256, column * 256), (th, tw))
            assert got.shape == expected.shape
            values.append(psnr(got, expected))
    return values


def test_jpeg_tiles_within_32_db_of_extract_region(synthetic: Served, synthetic_slides: Path) -> None:
    path = str(synthetic_slides / "he" / "sample.svs")
    values = jpeg_tiles_within_psnr(synthetic, synthetic.slide_id("sample"), path)
    assert min(values) >= 32, values


def test_jpeg_tiles_of_real_he_within_32_db(real: Served, real_slides: Path) -> None:
    values = jpeg_tiles_within_psnr(real, real.slide_id("small_HE.svs"), str(real_slides / "small_HE.svs"))
    assert min(values) >= 32, values


# -- channels ------------------------------------------------------------------------------
def test_channel_composites(synthetic: Served, synthetic_slides: Path) -> None:
    slide_id = synthetic.slide_id("fluo")
    with open_slide(str(synthetic_slides / "fluo.ome.tif")) as slide:
        native = slide.extract_region((0, 256), (256, 144), normalize=False)[:, :, 0, :, 0].astype(np.float64)
    # One channel in white over the full range: the channel scaled to 8 bits, in R, G and B.
    got = tile(synthetic, slide_id, 9, 1, 0, "png", "?channels=1:ffffff:0:65535")
    grey = np.rint(native[:, :, 1] / 65535 * 255)
    for k in range(3):
        np.testing.assert_array_equal(got[:, :, k], grey)
    # Blue DAPI with a narrow range plus red CD8: each in its colour, clipped, added.
    got = tile(synthetic, slide_id, 9, 0, 0, "png", "?channels=0:0000ff:20000:30000,2:ff0000:0:4000")
    with open_slide(str(synthetic_slides / "fluo.ome.tif")) as slide:
        native = slide.extract_region((0, 0), (256, 256), normalize=False)[:, :, 0, :, 0].astype(np.float64)
    blue = np.rint(np.clip((native[:, :, 0] - 20000) / 10000, 0, 1) * 255)
    red = np.rint(np.clip(native[:, :, 2] / 4000, 0, 1) * 255)
    assert np.abs(got[:, :, 2] - blue).max() <= 1 and np.abs(got[:, :, 0] - red).max() <= 1
    assert not got[:, :, 1].any()
    assert got[150, 150, 2] == 255 and got[10, 10, 2] == 0  # the bright block is DAPI, the rest below the range
    # The default: R, G, B over the full range, the picture wsikit's thumbnails show.
    default = tile(synthetic, slide_id, 9, 0, 0, "png")
    assert np.abs(default.astype(int) - np.rint(native / 65535 * 255)).max() <= 1


def test_bad_channel_requests_are_refused(synthetic: Served) -> None:
    fluo, he = synthetic.slide_id("fluo"), synthetic.slide_id("sample")
    for query in ("?channels=3:ffffff:0:1", "?channels=0:fff:0:1", "?channels=0:ffffff:5:5", "?channels=x",
                  "?channels=0:ffffff:0:nan", "?channels=0:ffffff:0:1,0:ff0000:0:1"):
        response = synthetic.client.get(f"/dzi/{fluo}_files/9/0_0.png{query}")
        assert response.status_code == 400, query
        assert "Traceback" not in response.text
    assert synthetic.client.get(f"/dzi/{he}_files/11/0_0.jpeg?channels=0:ffffff:0:255").status_code == 400


def test_auto_contrast_ranges(synthetic: Served) -> None:
    ranges = synthetic.client.get(f"/api/slides/{synthetic.slide_id('fluo')}/channels/auto").json()
    assert [r["index"] for r in ranges] == [0, 1, 2]
    assert all(0 <= r["low"] < r["high"] <= 65535 for r in ranges)
    assert ranges[1]["high"] < 4100  # channel 1 holds values below 4000
    assert synthetic.client.get(f"/api/slides/{synthetic.slide_id('sample')}/channels/auto").status_code == 400


# -- DICOM focal planes ----------------------------------------------------------------------
def test_dicom_focal_plane_and_optical_path(synthetic: Served, synthetic_slides: Path) -> None:
    slide_id = synthetic.slide_id("zstack")
    with open_slide(str(synthetic_slides / "zstack")) as slide:
        top = max_level(slide.shape)
        plane0 = slide.extract_region((0, 256), (256, 256), focal_plane=0)
        plane1 = slide.extract_region((0, 256), (256, 256), focal_plane=1)
    assert not np.array_equal(plane0, plane1)
    np.testing.assert_array_equal(tile(synthetic, slide_id, top, 1, 0, "png", "?focal_plane=1"), plane1)
    np.testing.assert_array_equal(tile(synthetic, slide_id, top, 1, 0, "png", "?focal_plane=0&optical_path=1"),
                                  plane0)
    np.testing.assert_array_equal(tile(synthetic, slide_id, top, 1, 0, "png"), plane0)
    for query in ("?focal_plane=2", "?focal_plane=-1", "?optical_path=nope"):
        assert synthetic.client.get(f"/dzi/{slide_id}_files/{top}/1_0.png{query}").status_code == 400
    he = synthetic.slide_id("sample")
    assert synthetic.client.get(f"/dzi/{he}_files/11/0_0.png?focal_plane=0").status_code == 400


# -- overlays ----------------------------------------------------------------------------------
@pytest.mark.parametrize("query, options", [
    ("shape=200", {"shape": 200}),
    ("shape=128,160&stride=100&pad=true", {"shape": (128, 160), "stride": 100, "pad": True}),
    ("shape=64&mpp=1.0&min_tissue=0.3", {"shape": 64, "mpp": 1.0, "min_tissue": 0.3}),
    ("shape=100&magnification=10", {"shape": 100, "magnification": 10}),
    ("shape=64&level=1", {"shape": 64, "level": 1}),
])
def test_plan_is_the_plan_wsikit_tile_uses(synthetic: Served, synthetic_slides: Path, query: str,
                                           options: dict) -> None:
    plan = synthetic.client.get(f"/api/slides/{synthetic.slide_id('sample')}/plan?{query}").json()
    with open_slide(str(synthetic_slides / "he" / "sample.svs")) as slide:
        expected = slide.tile_plan(**TileOptions(**options).plan_kwargs())
        specs = list(expected)
        assert plan["tiles"] == len(specs) > 0
        assert plan["corners"] == [v for spec in specs for v in spec.coords0]
        assert plan["level"] == expected.level and plan["shape"] == list(expected.shape)
        scale = (slide.level_scale(expected.level) if "level" in options
                 else (4.0, 4.0) if "mpp" in options else (4.0, 4.0) if "magnification" in options else (1.0, 1.0))
        assert plan["size0"] == pytest.approx([expected.shape[0] * scale[0], expected.shape[1] * scale[1]])
        if "min_tissue" in options:
            assert plan["tissue"] == pytest.approx([spec.tissue for spec in specs])
            assert min(plan["tissue"]) >= 0.3


def test_bad_plan_requests_are_refused(synthetic: Served) -> None:
    slide_id = synthetic.slide_id("sample")
    for query in ("shape=0", "shape=abc", "shape=64&mpp=-1", "shape=64&level=9", "shape=64&level=1&mpp=1",
                  "shape=64&min_tissue=2", "shape=64&mpp=0.01"):
        response = synthetic.client.get(f"/api/slides/{slide_id}/plan?{query}")
        assert response.status_code == 400, query
        assert "Traceback" not in response.text
    zstack = synthetic.slide_id("zstack")
    assert synthetic.client.get(f"/api/slides/{zstack}/plan?shape=1").status_code == 400  # too many tiles to draw


def test_tissue_overlay_is_the_tissue_mask(synthetic: Served, synthetic_slides: Path) -> None:
    from wsikit.tissue import tissue_mask

    response = synthetic.client.get(f"/api/slides/{synthetic.slide_id('sample')}/tissue.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    picture = decode(response.content)
    with open_slide(str(synthetic_slides / "he" / "sample.svs")) as slide:
        mask = tissue_mask(slide).mask
    assert picture.shape == mask.shape + (4,)
    np.testing.assert_array_equal(picture[:, :, 3] > 0, mask)
    assert 0 < mask.mean() < 1


def test_thumbnails_and_associated_images(synthetic: Served, synthetic_slides: Path) -> None:
    slide_id = synthetic.slide_id("sample")
    thumb = decode(synthetic.client.get(f"/api/slides/{slide_id}/thumbnail.jpg?size=128").content)
    assert max(thumb.shape[:2]) == 128
    for size in ("0", "5000", "x"):
        assert synthetic.client.get(f"/api/slides/{slide_id}/thumbnail.jpg?size={size}").status_code == 400
    with open_slide(str(synthetic_slides / "he" / "sample.svs")) as slide:
        label = slide.associated_images["label"]
    got = decode(synthetic.client.get(f"/api/slides/{slide_id}/associated/label.jpg").content)
    assert got.shape == label.shape and psnr(got, label) > 30
    assert synthetic.client.get(f"/api/slides/{slide_id}/associated/nothing.jpg").status_code == 404


# -- results of wsikit tile ----------------------------------------------------------------------
def test_results_overlay_shows_the_written_tiles(tmp_path: Path, synthetic_slides: Path) -> None:
    out = tmp_path / "out"
    slide_path = str(synthetic_slides / "he" / "sample.svs")
    result = tile_slide(slide_path, out, TileOptions(shape=128, mpp=0.5, min_tissue=0.2, format="png"))
    assert result.status == "written" and result.tiles > 0
    for served in start(synthetic_slides, results=out):
        slide_id = served.slide_id("sample")
        assert served.client.get(f"/api/slides/{slide_id}").json()["results"] is True
        data = served.client.get(f"/api/slides/{slide_id}/results").json()
        with open(Path(result.folder) / "tiles.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert data["columns"] == rows[0] and data["rows"] == rows[1:]
        boxes = np.asarray(data["boxes"]).reshape(-1, 4)
        i0 = [float(r[rows[0].index("i0")]) for r in rows[1:]]
        np.testing.assert_allclose(boxes[:, 0], i0)
        np.testing.assert_allclose(boxes[:, 2:], 256.0)  # 128 pixels at 0.5 mpp of a 0.25 mpp slide
        assert served.client.get(f"/api/slides/{served.slide_id('fluo')}/results").status_code == 404
        # The image written for a row, as written.
        file_column = rows[0].index("file")
        for k in (0, len(rows) - 2):
            response = served.client.get(f"/api/slides/{slide_id}/results/{k}")
            assert response.status_code == 200 and response.headers["content-type"] == "image/png"
            assert response.content == (Path(result.folder) / rows[k + 1][file_column]).read_bytes()
        assert served.client.get(f"/api/slides/{slide_id}/results/{len(rows)}").status_code == 404
        assert served.client.get(f"/api/slides/{slide_id}/results/x").status_code == 400
    # An unfinished run (no tiles.csv yet) says so.
    (Path(result.folder) / "tiles.csv").unlink()
    for served in start(synthetic_slides, results=out):
        response = served.client.get(f"/api/slides/{served.slide_id('sample')}/results")
        assert response.status_code == 404 and "unfinished" in response.text


# -- the cache ----------------------------------------------------------------------------------
def test_tile_cache_stays_within_its_bytes() -> None:
    cache = BytesCache(1000)
    for k in range(50):
        cache.put(k, bytes(100))
        assert cache.nbytes <= 1000
    assert len(cache) == 10 and cache.get(49) is not None and cache.get(0) is None
    cache.get(40)
    cache.put("new", bytes(100))
    assert cache.get(40) is not None and cache.get(41) is None  # least recently used went first
    cache.put("huge", bytes(2000))
    assert cache.get("huge") is None and cache.nbytes <= 1000


def test_served_tiles_are_cached_within_the_bound(synthetic_slides: Path) -> None:
    from wsikit.viewer import ViewerServer, ViewerService, create_app

    service = ViewerService(synthetic_slides / "he", cache_bytes=200_000)
    with ViewerServer(create_app(service), port=0) as server:
        import httpx

        with httpx.Client(base_url=server.url) as client:
            slide_id = service.catalog.entries()[0].id
            first = client.get(f"/dzi/{slide_id}_files/11/2_1.jpeg").content
            for column in range(6):
                for row in range(4):
                    assert client.get(f"/dzi/{slide_id}_files/11/{column}_{row}.jpeg").status_code == 200
                    assert service.cache.nbytes <= 200_000
            assert client.get(f"/dzi/{slide_id}_files/11/2_1.jpeg").content == first
    service.close()


def test_text_of_descriptor_is_xml(synthetic: Served) -> None:
    text = synthetic.client.get(f"/dzi/{synthetic.slide_id('sample')}.dzi").text
    assert ET.parse(io.StringIO(text)).getroot().tag.endswith("Image")


# -- stored JPEG tiles served as they are ------------------------------------------------------
def test_stored_jpeg_tiles_pass_through_and_decode_to_extract_region(synthetic: Served, synthetic_slides: Path) -> None:
    slide_id = synthetic.slide_id("sample")
    with open_slide(str(synthetic_slides / "he" / "sample.svs")) as slide:
        for row, column in ((0, 0), (2, 3), (3, 5)):
            data = synthetic.client.get(f"/dzi/{slide_id}_files/11/{column}_{row}.jpeg").content
            assert data == slide.native_tile_jpeg(0, row, column)  # the stored tile, not re-encoded
            np.testing.assert_array_equal(decode(data), slide.extract_region((row * 256, column * 256), 256))
        # Level 1 (256 x 384): its second column of tiles is cut by the edge, so it is encoded here.
        whole = synthetic.client.get(f"/dzi/{slide_id}_files/9/0_0.jpeg").content
        cut = synthetic.client.get(f"/dzi/{slide_id}_files/9/1_0.jpeg").content
        assert whole == slide.native_tile_jpeg(1, 0, 0) and cut != slide.native_tile_jpeg(1, 0, 1)
        assert psnr(decode(cut), slide.extract_region((0, 256), (256, 128), level=1)) >= 32


def test_without_passthrough_every_tile_is_encoded_here(synthetic_slides: Path) -> None:
    from wsikit.viewer.service import TileView, ViewerService

    service = ViewerService(synthetic_slides / "he", passthrough=False)
    try:
        entry = service.catalog.entries()[0]
        with open_slide(entry.path) as slide:
            data = service.tile(entry, 11, 3, 2, "jpeg", TileView({}, None))
            assert data != slide.native_tile_jpeg(0, 2, 3)
            assert psnr(decode(data), slide.extract_region((512, 768), 256)) >= 32
    finally:
        service.close()
