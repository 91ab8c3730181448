// Viewer page of one slide: OpenSeadragon on the slide's DZI, panels, overlays.
// Overlays (tissue mask, tile plan, written tiles) are off when the page opens.
// window.wsikit exposes the viewer and its state to scripts and tests.
"use strict";
(function () {
  const slideId = document.body.dataset.slide;
  const api = "/api/slides/" + encodeURIComponent(slideId);
  const $ = (id) => document.getElementById(id);
  const state = {
    info: null, viewer: null, slideItem: null, tissueItem: null,
    plan: null, results: null, display: null,
    opticalPath: "", focalPlane: "",
    firstView: null, errors: [],
  };
  window.wsikit = state;

  function showError(message) {
    state.errors.push(message);
    $("error").textContent = message;
  }

  async function getJSON(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error((await response.text()) || response.statusText);
    return response.json();
  }

  const num = (x, digits = 4) => (x === null || x === undefined) ? "unknown"
    : Number(x).toPrecision(digits).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");

  // -- the DZI of the current view ---------------------------------------------------------
  // The query string (channels, optical path, focal plane) goes with every tile URL, as
  // OpenSeadragon does for a descriptor URL with a query; the page knows the descriptor's
  // values (GET /api/slides/{id}), so it builds the tile source without fetching the .dzi.
  function viewQuery() {
    const params = new URLSearchParams();
    if (state.display) params.set("channels", state.display.filter((c) => c.shown).map((c) =>
      [c.index, c.colour.replace("#", ""), c.low, c.high].join(":")).join(","));
    if (state.opticalPath) params.set("optical_path", state.opticalPath);
    if (state.focalPlane !== "") params.set("focal_plane", state.focalPlane);
    const query = params.toString();
    return query ? "?" + query : "";
  }

  function tileSource() {
    const info = state.info;
    return new OpenSeadragon.DziTileSource({
      width: info.shape[1], height: info.shape[0], tileSize: info.dzi_tile_size, tileOverlap: info.dzi_overlap,
      tilesUrl: info.dzi_tiles, fileFormat: info.dzi_format, queryParams: viewQuery(),
    });
  }

  // -- panels ----------------------------------------------------------------------------
  function row(table, key, value) {
    const tr = document.createElement("tr");
    const k = document.createElement("td");
    k.textContent = key;
    const v = document.createElement("td");
    v.textContent = value;
    tr.append(k, v);
    table.appendChild(tr);
  }

  function renderMetadata(info) {
    const table = $("meta");
    row(table, "file", info.name);
    row(table, "format", info.format);
    row(table, "reader", info.backend + (info.vendor ? " (" + info.vendor + ")" : ""));
    row(table, "size", info.shape[0] + " \u00d7 " + info.shape[1] + " (h \u00d7 w)");
    row(table, "mpp", info.mpp ? num(info.mpp[0]) + " \u00d7 " + num(info.mpp[1]) + " \u00b5m" : "unknown");
    row(table, "magnification", info.magnification ? num(info.magnification, 3) + "\u00d7" : "unknown");
    row(table, "levels", info.levels.map((l) => l.shape[0] + "\u00d7" + l.shape[1]).join(", "));
    row(table, "pixels", info.is_rgb ? "RGB uint8" : info.dtype + ", z=" + info.sizes.z + " c=" + info.sizes.c
      + " t=" + info.sizes.t);
    if (info.channel_names.length) row(table, "channels", info.channel_names.join(", "));
    if (info.optical_paths.length) row(table, "optical paths", info.optical_paths.join(", "));
    if (info.focal_planes.length > 1) row(table, "focal planes", info.focal_planes.map((z) => num(z)).join(", "));
  }

  function renderAssociated(info) {
    const box = $("assoc");
    if (!info.associated.length) {
      box.textContent = "none";
      return;
    }
    for (const name of info.associated) {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = api + "/associated/" + encodeURIComponent(name) + ".jpg";
      img.alt = name;
      img.loading = "lazy";
      const caption = document.createElement("figcaption");
      caption.textContent = name;
      figure.append(img, caption);
      box.appendChild(figure);
    }
  }

  function renderChannels(info) {
    if (info.is_rgb) return;
    $("channels-panel").hidden = false;
    state.display = info.channels.map((c) => ({ ...c, shown: true }));
    drawChannelRows();
    $("channels-apply").onclick = () => { readChannelRows(); reloadSlide(); };
    $("channels-reset").onclick = () => {
      state.display = info.channels.map((c) => ({ ...c, shown: true }));
      drawChannelRows();
      reloadSlide();
    };
    $("channels-auto").onclick = async () => {
      try {
        const ranges = await getJSON(api + "/channels/auto");
        readChannelRows();
        for (const r of ranges) Object.assign(state.display[r.index], { low: r.low, high: r.high });
        drawChannelRows();
        reloadSlide();
      } catch (err) { showError("auto contrast: " + err.message); }
    };
  }

  function drawChannelRows() {
    const box = $("channels");
    box.textContent = "";
    for (const c of state.display) {
      const line = document.createElement("div");
      line.className = "channel";
      line.dataset.index = c.index;
      line.innerHTML = '<input type="checkbox" class="shown"><span class="cname"></span>'
        + '<input type="color" class="colour"><input type="number" class="low" step="any">'
        + '<input type="number" class="high" step="any">';
      line.querySelector(".shown").checked = c.shown;
      line.querySelector(".cname").textContent = c.name;
      line.querySelector(".cname").title = c.name;
      line.querySelector(".colour").value = c.colour;
      line.querySelector(".low").value = c.low;
      line.querySelector(".high").value = c.high;
      box.appendChild(line);
    }
  }

  function readChannelRows() {
    for (const line of document.querySelectorAll("#channels .channel")) {
      const c = state.display[Number(line.dataset.index)];
      c.shown = line.querySelector(".shown").checked;
      c.colour = line.querySelector(".colour").value;
      c.low = Number(line.querySelector(".low").value);
      c.high = Number(line.querySelector(".high").value);
    }
  }

  function renderDicom(info) {
    if (info.optical_paths.length < 2 && info.focal_planes.length < 2) return;
    $("dicom-panel").hidden = false;
    const paths = $("optical-path");
    for (const p of info.optical_paths) paths.add(new Option(p, p));
    paths.disabled = info.optical_paths.length < 2;
    paths.onchange = () => { state.opticalPath = paths.value; reloadSlide(); };
    const planes = $("focal-plane");
    info.focal_planes.forEach((z, k) => planes.add(new Option(num(z) + " \u00b5m", String(k))));
    planes.disabled = info.focal_planes.length < 2;
    planes.onchange = () => { state.focalPlane = planes.value; reloadSlide(); };
  }

  // -- the slide image ---------------------------------------------------------------------
  function reloadSlide() {
    if (state.display && !state.display.some((c) => c.shown)) {
      showError("choose at least one channel");
      return;
    }
    $("error").textContent = "";
    state.viewer.addTiledImage({
      tileSource: tileSource(), index: 0, replace: true,
      success: (event) => { state.slideItem = event.item; },
      error: (event) => showError("cannot show the slide: " + event.message),
    });
  }

  // -- overlay canvas: plan grid and written tiles ---------------------------------------
  let canvas, context;

  function setupCanvas() {
    canvas = document.createElement("canvas");
    canvas.id = "overlay-canvas";
    state.viewer.canvas.appendChild(canvas);
    context = canvas.getContext("2d");
    for (const name of ["update-viewport", "resize", "animation", "open"]) state.viewer.addHandler(name, redraw);
  }

  // Screen pixels per level-0 pixel and the screen position of the image's origin.
  function transform() {
    const item = state.slideItem;
    const origin = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    const unit = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(1000, 1000));
    return { x: origin.x, y: origin.y, s: (unit.x - origin.x) / 1000 };
  }

  function drawBoxes(t, boxes, stroke, fill) {
    // boxes: a function (k) -> [i0, j0, h0, w0] and a count; drawn culled to the screen.
    const W = canvas.width / devicePixelRatio, H = canvas.height / devicePixelRatio;
    context.strokeStyle = stroke;
    context.fillStyle = fill;
    context.lineWidth = 1;
    context.beginPath();
    let drawn = 0;
    for (let k = 0; k < boxes.count; k++) {
      const [i0, j0, h0, w0] = boxes.at(k);
      const x = t.x + j0 * t.s, y = t.y + i0 * t.s, w = w0 * t.s, h = h0 * t.s;
      if (x > W || y > H || x + w < 0 || y + h < 0) continue;
      context.rect(x + 0.5, y + 0.5, Math.max(w - 1, 0.5), Math.max(h - 1, 0.5));
      drawn++;
    }
    if (fill) context.fill();
    context.stroke();
    return drawn;
  }

  function redraw() {
    if (!canvas || !state.slideItem) return;
    const el = state.viewer.canvas;
    const w = el.clientWidth, h = el.clientHeight;
    if (canvas.width !== Math.round(w * devicePixelRatio) || canvas.height !== Math.round(h * devicePixelRatio)) {
      canvas.width = Math.round(w * devicePixelRatio);
      canvas.height = Math.round(h * devicePixelRatio);
      canvas.style.width = w + "px";
      canvas.style.height = h + "px";
    }
    context.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
    context.clearRect(0, 0, w, h);
    const t = transform();
    const plan = $("plan-toggle").checked ? state.plan : null;
    if (plan) {
      const [h0, w0] = plan.size0;
      state.planDrawn = drawBoxes(t, {
        count: plan.tiles, at: (k) => [plan.corners[2 * k], plan.corners[2 * k + 1], h0, w0],
      }, "rgba(30, 80, 255, 0.9)", "rgba(40, 90, 255, 0.12)");
    }
    const results = $("results-toggle").checked ? state.results : null;
    if (results) {
      const b = results.boxes;
      state.resultsDrawn = drawBoxes(t, {
        count: b.length / 4, at: (k) => [b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]],
      }, "rgba(255, 170, 0, 0.95)", null);
      if (state.selected !== undefined && state.selected !== null) {
        const k = state.selected;
        drawBoxes(t, { count: 1, at: () => [b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]] },
          "rgba(255, 0, 0, 1)", "rgba(255, 0, 0, 0.2)");
      }
    }
    updateScaleBar(t);
  }

  // -- scale bar -------------------------------------------------------------------------
  function updateScaleBar(t) {
    const mpp = state.info.mpp;
    const bar = $("scalebar");
    if (!mpp || !(t.s > 0)) { bar.style.display = "none"; return; }
    const micronsPerScreenPixel = mpp[1] / t.s;
    const target = 150 * micronsPerScreenPixel;  // microns in 150 screen pixels
    const power = Math.pow(10, Math.floor(Math.log10(target)));
    const nice = [5, 2, 1].map((m) => m * power).find((v) => v <= target) || power;
    $("scalebar-bar").style.width = (nice / micronsPerScreenPixel) + "px";
    $("scalebar-label").textContent = nice >= 1000 ? num(nice / 1000, 3) + " mm"
      : nice >= 1 ? num(nice, 3) + " \u00b5m" : num(nice * 1000, 3) + " nm";
    bar.style.display = "block";
  }

  // -- overlay switches ----------------------------------------------------------------------
  function setupOverlays(info) {
    $("tissue-toggle").checked = false;
    $("plan-toggle").checked = false;
    $("results-toggle").checked = false;
    $("tissue-toggle").onchange = (event) => {
      if (event.target.checked) {
        const bounds = state.slideItem.getBounds();
        state.viewer.addTiledImage({
          tileSource: { type: "image", url: api + "/tissue.png" }, x: bounds.x, y: bounds.y, width: bounds.width,
          success: (e) => {
            if ($("tissue-toggle").checked) state.tissueItem = e.item; else state.viewer.world.removeItem(e.item);
          },
          error: (e) => showError("tissue mask: " + e.message),
        });
      } else if (state.tissueItem) {
        state.viewer.world.removeItem(state.tissueItem);
        state.tissueItem = null;
      }
    };
    $("plan-toggle").onchange = (event) => {
      if (event.target.checked && !state.plan) loadPlan(); else redraw();
    };
    $("plan-form").onsubmit = (event) => {
      event.preventDefault();
      $("plan-toggle").checked = true;
      loadPlan();
    };
    if (info.results) {
      $("results-label").hidden = false;
      $("results-toggle").onchange = async (event) => {
        if (event.target.checked && !state.results) {
          try {
            state.results = await getJSON(api + "/results");
            $("results-info").textContent = (state.results.boxes.length / 4) + " tiles written in "
              + state.results.folder + "; click a tile for its row of tiles.csv";
          } catch (err) {
            showError("results: " + err.message);
            event.target.checked = false;
          }
        }
        redraw();
      };
    }
  }

  async function loadPlan() {
    const form = new FormData($("plan-form"));
    const params = new URLSearchParams();
    params.set("shape", form.get("shape"));
    if (form.get("stride")) params.set("stride", form.get("stride"));
    if (form.get("resolution") !== "") params.set(form.get("unit"), form.get("resolution"));
    if (form.get("min_tissue")) params.set("min_tissue", form.get("min_tissue"));
    if (form.get("pad")) params.set("pad", "true");
    $("plan-info").textContent = "planning\u2026";
    try {
      state.plan = await getJSON(api + "/plan?" + params.toString());
      const p = state.plan;
      $("plan-info").textContent = p.tiles + " tiles of " + p.shape[0] + "\u00d7" + p.shape[1] + " read from level "
        + p.level + (p.mpp ? " at " + num(p.mpp[0]) + " mpp" : "");
    } catch (err) {
      state.plan = null;
      $("plan-info").textContent = "";
      showError("plan: " + err.message);
    }
    redraw();
  }

  function onClick(event) {
    if (!event.quick || !$("results-toggle").checked || !state.results) return;
    const p = state.slideItem.viewerElementToImageCoordinates(event.position);
    const b = state.results.boxes;
    let hit = null;
    for (let k = b.length / 4 - 1; k >= 0; k--) {
      if (p.y >= b[4 * k] && p.y < b[4 * k] + b[4 * k + 2] && p.x >= b[4 * k + 1] && p.x < b[4 * k + 1] + b[4 * k + 3]) {
        hit = k;
        break;
      }
    }
    const table = $("tile-row");
    table.textContent = "";
    state.selected = hit;
    const picture = $("tile-image");
    picture.hidden = true;
    if (hit !== null) {
      event.preventDefaultAction = true;  // a click on a tile shows it, without zooming
      state.results.columns.forEach((c, k) => row(table, c, state.results.rows[hit][k]));
      if (state.results.columns.includes("file")) {  // PNG / JPEG results: the image written
        picture.src = api + "/results/" + hit;
        picture.hidden = false;
      }
    }
    redraw();
  }

  // -- start -------------------------------------------------------------------------------
  async function main() {
    try {
      state.info = await getJSON(api);
    } catch (err) {
      showError("cannot open the slide: " + err.message);
      return;
    }
    const info = state.info;
    renderMetadata(info);
    renderAssociated(info);
    renderChannels(info);
    renderDicom(info);
    state.viewer = OpenSeadragon({
      id: "osd", prefixUrl: "/static/openseadragon/images/", tileSources: tileSource(),
      drawer: "canvas", showNavigator: true, navigatorPosition: "TOP_RIGHT",
      maxZoomPixelRatio: 4, visibilityRatio: 0.5, timeout: 120000, immediateRender: true,
    });
    state.viewer.addHandler("open", () => {
      state.slideItem = state.viewer.world.getItemAt(0);
      const markFirstView = () => {
        if (state.firstView === null && state.slideItem.getFullyLoaded()) {
          state.firstView = performance.now();
          redraw();
        }
      };
      state.slideItem.addHandler("fully-loaded-change", markFirstView);
      markFirstView();
    });
    state.viewer.addHandler("open-failed", (event) => showError("cannot open the slide: " + event.message));
    state.viewer.addHandler("canvas-click", onClick);
    setupCanvas();
    setupOverlays(info);
    // The scale bar moves and the overlays are redrawn with every frame of a zoom or pan.
    state.viewer.addHandler("animation-finish", redraw);
  }
  main();
})();
