"""Reading annotation files: GeoJSON (QuPath), ASAP XML, label images, and broken or
hostile files, each refused with an AnnotationError naming the file and the feature."""
from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import numpy as np
import pytest
import shapely

from wsikit import AnnotationError, read_annotations
from wsikit.annotations import TileFrames
from wsikit.samples.annotations import random_polygons, write_asap, write_geojson


def feature(geometry: dict, **properties: object) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def square(x: float, y: float, size: float) -> list[list[float]]:
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_geojson_and_asap_give_identical_masks(tmp_path: Path) -> None:
    polygons = random_polygons((2000, 3000), ("tumour", "stroma", "necrosis"), count=18, seed=9, holes=False)
    from_json = read_annotations(write_geojson(tmp_path / "a.geojson", polygons))
    from_xml = read_annotations(write_asap(tmp_path / "a.xml", polygons))
    assert from_json.classes == from_xml.classes == ("tumour", "stroma", "necrosis")
    for name in from_json.classes:
        assert shapely.equals_exact(from_json.geometry(name), from_xml.geometry(name), tolerance=0)
    rng = np.random.default_rng(2)
    read = np.stack([rng.integers(0, 1900, 60), rng.integers(0, 2900, 60), np.full(60, 96), np.full(60, 96)], 1)
    for scale in [(1.0, 1.0), (2.5, 2.5)]:
        frames = TileFrames(read.astype(float) / scale[0], (64, 64), scale)
        a, b = from_json.tile_masks(frames), from_xml.tile_masks(frames)
        assert any(m.any() for tile in a for m in tile.values())
        for ma, mb in zip(a, b):
            assert ma.keys() == mb.keys() and all(np.array_equal(ma[k], mb[k]) for k in ma)
        assert np.array_equal(from_json.fractions(frames.boxes()), from_xml.fractions(frames.boxes()))


def test_qupath_classes_colours_and_defaults(tmp_path: Path) -> None:
    data = [
        feature({"type": "Polygon", "coordinates": [square(0, 0, 10)]},
                classification={"name": "Tumor", "color": [200, 0, 0]}, objectType="annotation"),
        feature({"type": "MultiPolygon", "coordinates": [[square(20, 0, 5)], [square(40, 0, 5), square(41, 1, 2)]]},
                classification={"name": "Stroma", "colorRGB": -16744448}),
        feature({"type": "Polygon", "coordinates": [square(0, 50, 4)]}, name="region 7"),
        feature({"type": "Polygon", "coordinates": [square(0, 80, 4)]}),
        feature({"type": "Point", "coordinates": [5, 5]}, classification={"name": "Tumor"}),
        feature({"type": "LineString", "coordinates": [[0, 0], [5, 5]]}),
    ]
    with pytest.warns(UserWarning, match="1 LineString, 1 Point"):
        a = read_annotations(write_json(tmp_path / "qupath.json", data))
    assert a.classes == ("Tumor", "Stroma", "region 7", "unclassified")
    assert a.colors["Tumor"] == (200, 0, 0) and a.colors["Stroma"] == (0, 128, 0)
    assert a.geometry("Stroma").area == pytest.approx(25 + 25 - 4)  # the hole of the second part
    collection = {"type": "FeatureCollection", "features": data[:1]}
    assert read_annotations(write_json(tmp_path / "fc.geojson", collection)).classes == ("Tumor",)
    assert read_annotations(write_json(tmp_path / "x.geojson", data[:1]), format="geojson").classes == ("Tumor",)


def test_asap_rectangles_groups_and_decimal_commas(tmp_path: Path) -> None:
    xml = """<?xml version="1.0"?>
<ASAP_Annotations><Annotations>
<Annotation Name="r" Type="Rectangle" PartOfGroup="_0" Color="#F4FA58"><Coordinates>
<Coordinate Order="0" X="10" Y="20"/><Coordinate Order="1" X="30" Y="20"/>
<Coordinate Order="2" X="30" Y="60"/><Coordinate Order="3" X="10" Y="60"/></Coordinates></Annotation>
<Annotation Name="p" Type="Polygon" PartOfGroup="None" Color="#00FF00"><Coordinates>
<Coordinate Order="2" X="100,5" Y="150"/><Coordinate Order="0" X="100,5" Y="100"/>
<Coordinate Order="1" X="150" Y="125"/></Coordinates></Annotation>
<Annotation Name="d" Type="Dot" PartOfGroup="_0"><Coordinates><Coordinate Order="0" X="1" Y="1"/></Coordinates>
</Annotation>
</Annotations><AnnotationGroups><Group Name="_0" PartOfGroup="None" Color="#FF0000"><Attributes/></Group>
</AnnotationGroups></ASAP_Annotations>"""
    path = tmp_path / "camelyon.xml"
    path.write_text(xml)
    with pytest.warns(UserWarning, match="1 Dot"):
        a = read_annotations(path)
    assert a.classes == ("_0", "unclassified")
    assert a.geometry("_0").area == 800 and a.colors["_0"] == (255, 0, 0)
    assert a.geometry("unclassified").area == pytest.approx(0.5 * 50 * 49.5)


def test_label_image_classes_and_formats(tmp_path: Path) -> None:
    labels = np.zeros((20, 30), np.uint16)
    labels[2:5, 3:9] = 1
    labels[10:, 20:] = 300
    np.save(tmp_path / "l.npy", labels)
    a = read_annotations(tmp_path / "l.npy", downsample=(2, 3))
    assert a.classes == ("1", "300")
    fractions = a.fractions(np.array([[0.0, 0.0, 90.0, 40.0], [9.0, 4.0, 27.0, 10.0]]))  # x0, y0, x1, y1
    assert fractions[0].tolist() == pytest.approx([6 * 18 / 3600, 20 * 30 / 3600])
    assert fractions[1, 0] == pytest.approx(1.0)
    import tifffile

    tifffile.imwrite(tmp_path / "l.tif", labels)
    b = read_annotations(tmp_path / "l.tif", classes={300: "tumour"})
    assert b.classes == ("tumour",)
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(AnnotationError, match="rgb.png.*one channel of integers"):
        read_annotations(tmp_path / "rgb.png")


# -- broken and hostile files -----------------------------------------------------------
def polygon_file(tmp_path: Path, coordinates: object, kind: str = "Polygon") -> Path:
    return write_json(tmp_path / "bad.geojson", [feature({"type": kind, "coordinates": coordinates},
                                                        classification={"name": "t"})])


@pytest.mark.parametrize("case, text, message", [
    ("truncated", '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Pol',
     "not valid JSON"),
    ("truncated ring", '[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1,',
     "not valid JSON"),
    ("not geojson", '{"hello": 1}', "expected a FeatureCollection"),
    ("binary", b"\xff\xfe\x00\x01garbage", "not UTF-8"),
])
def test_broken_json(tmp_path: Path, case: str, text: str | bytes, message: str) -> None:
    path = tmp_path / "broken.geojson"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(AnnotationError, match=message) as info:
        read_annotations(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("coordinates, kind, message", [
    ([[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]], "Polygon", r"feature 0 .*class 't'.*Self-intersection"),
    ([], "Polygon", "empty polygon"),
    ([[]], "Polygon", "ring 0 is empty"),
    ([[[0, 0], [1, 1], [0, 0]]], "Polygon", "fewer than 3 distinct points"),
    ([[[0, 0], [1, 1], [2, 2], [0, 0]]], "Polygon", "zero area"),
    ([[[0, 0], [float("nan"), 1], [2, 0], [0, 0]]], "Polygon", "not a finite number"),
    ([[[0, 0], [1e400, 1], [2, 0], [0, 0]]], "Polygon", "not a finite number"),
    ([[[0, 0], ["a", 1], [2, 0], [0, 0]]], "Polygon", "coordinates are not numbers"),
    ([[[0, 0], [5, 0], [5, 5], [0, 0]]], "Hexagon", "unknown geometry type 'Hexagon'"),
    ([[[[0, 0], [5, 0], [5, 5], [0, 0]]], [[[0, 0], [0, 0]]]], "MultiPolygon", "polygon 1.*fewer than 3"),
])
def test_bad_polygons(tmp_path: Path, coordinates: object, kind: str, message: str) -> None:
    path = polygon_file(tmp_path, coordinates, kind)
    with pytest.raises(AnnotationError, match=message) as info:
        read_annotations(path)
    assert str(path) in str(info.value)


def test_self_intersection_repaired_on_request(tmp_path: Path) -> None:
    path = polygon_file(tmp_path, [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]])
    a = read_annotations(path, repair=True)
    assert a.geometry("t").area == pytest.approx(50.0)


@pytest.mark.parametrize("xml, message", [
    ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
     "<ASAP_Annotations><Annotations>&lol2;</Annotations></ASAP_Annotations>", "document type"),
    ('<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><ASAP_Annotations/>', "document type"),
    ("<ASAP_Annotations><Annotations><Annotation", "not valid XML"),
    ('<ASAP_Annotations><Annotations><Annotation Type="Ellipse" PartOfGroup="t"><Coordinates>'
     '<Coordinate Order="0" X="1" Y="1"/></Coordinates></Annotation></Annotations></ASAP_Annotations>',
     "annotation 0 of class 't': unknown annotation type 'Ellipse'"),
    ('<ASAP_Annotations><Annotations><Annotation Name="a1" Type="Polygon"><Coordinates>'
     '<Coordinate Order="0" X="one" Y="1"/></Coordinates></Annotation></Annotations></ASAP_Annotations>',
     "annotation 0 'a1': a Coordinate whose X, Y or Order is not a number"),
    ('<ASAP_Annotations><Annotations><Annotation Type="Polygon"><Coordinates>'
     '<Coordinate Order="0" X="NaN" Y="1"/><Coordinate Order="1" X="3" Y="1"/><Coordinate Order="2" X="3" Y="4"/>'
     "</Coordinates></Annotation></Annotations></ASAP_Annotations>", "not a finite number"),
])
def test_broken_and_hostile_xml(tmp_path: Path, xml: str, message: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(xml)
    with pytest.raises(AnnotationError, match=message) as info:
        read_annotations(path)
    assert str(path) in str(info.value)


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="no such annotation file"):
        read_annotations(tmp_path / "nope.geojson")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(AnnotationError, match="not an annotation file"):
        read_annotations(tmp_path / "notes.txt")


def test_vertex_limit(tmp_path: Path) -> None:
    ring = [[float(np.cos(t)) * 100, float(np.sin(t)) * 100] for t in np.linspace(0, 6.28, 2000)]
    path = polygon_file(tmp_path, [ring + [ring[0]]])
    with pytest.raises(AnnotationError, match="more than 1,000 vertices"):
        read_annotations(path, max_vertices=1000)
    assert read_annotations(path).geometry("t").area > 30000


def test_ten_million_vertex_polygon(tmp_path: Path) -> None:
    """A 10-million-vertex polygon (a 200 MB file) is read in bounded time and memory, and
    tiles of it are labelled exactly."""
    n = 10_000_000
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 100_000 + 500 * np.sin(t * 997)
    x, y = np.round(r * np.cos(t) + 200_000, 2), np.round(r * np.sin(t) + 200_000, 2)
    path = tmp_path / "huge.geojson"
    with open(path, "w") as f:
        f.write('{"type": "Feature", "properties": {"name": "huge"}, "geometry": {"type": "Polygon", '
                '"coordinates": [[')
        for s in range(0, n, 500_000):
            f.write(",".join(map("[{},{}]".format, x[s:s + 500_000].tolist(), y[s:s + 500_000].tolist())) + ",")
        f.write(f"[{x[0]},{y[0]}]]]}}}}")
    del t, r
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    a = read_annotations(path)
    seconds = time.perf_counter() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # MiB
    assert seconds < 300 and grown < 3000, (seconds, grown)
    reference = shapely.Polygon(np.stack([x, y], 1))
    frames = TileFrames(np.array([[99_400.0, 200_000.0, 1200, 1200], [150_000.0, 150_000.0, 1200, 1200]]),
                        (32, 32), (1.0, 1.0))
    masks = a.tile_masks(frames)
    for k, (ri, rj, rh, rw) in enumerate(frames.read):
        ys, xs = ri + (np.arange(32) + 0.5) * rh / 32, rj + (np.arange(32) + 0.5) * rw / 32
        assert np.array_equal(masks[k]["huge"], shapely.contains_xy(reference, xs[None, :], ys[:, None]))
    assert masks[0]["huge"].any() and not masks[0]["huge"].all() and masks[1]["huge"].all()
