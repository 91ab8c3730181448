// Index page: one row per slide from GET /api/slides.
"use strict";
(async function () {
  const status = document.getElementById("status");
  const body = document.querySelector("#slides tbody");
  let slides;
  try {
    const response = await fetch("/api/slides");
    if (!response.ok) throw new Error(await response.text());
    slides = await response.json();
  } catch (err) {
    status.textContent = "cannot list the slides: " + err.message;
    status.className = "error";
    return;
  }
  const fmt = (x) => (x === null || x === undefined) ? "" : Number(x).toPrecision(4).replace(/\.?0+$/, "");
  for (const s of slides) {
    const row = document.createElement("tr");
    row.className = "slide-row";
    row.dataset.id = s.id;
    const cells = [];
    const thumb = document.createElement("td");
    if (s.thumbnail) {
      const link = document.createElement("a");
      link.href = s.viewer;
      const img = document.createElement("img");
      img.src = s.thumbnail + "?size=256";
      img.alt = s.name;
      img.loading = "lazy";
      link.appendChild(img);
      thumb.appendChild(link);
    }
    cells.push(thumb);
    const name = document.createElement("td");
    if (s.viewer) {
      const link = document.createElement("a");
      link.href = s.viewer;
      link.textContent = s.name;
      link.className = "slide-link";
      name.appendChild(link);
    } else {
      name.textContent = s.name;
      const err = document.createElement("div");
      err.className = "error";
      err.textContent = s.error;
      name.appendChild(err);
    }
    cells.push(name);
    const text = (t) => { const td = document.createElement("td"); td.textContent = t; return td; };
    cells.push(text(s.format || ""));
    cells.push(text(s.shape ? s.shape[0] + " \u00d7 " + s.shape[1] : ""));
    cells.push(text(s.mpp ? fmt(s.mpp[0]) : "unknown"));
    cells.push(text(s.backend ? s.backend + (s.vendor ? " (" + s.vendor + ")" : "") : ""));
    for (const c of cells) row.appendChild(c);
    body.appendChild(row);
  }
  status.textContent = slides.length + " slide" + (slides.length === 1 ? "" : "s");
})();
