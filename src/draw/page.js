// Pan and zoom by the SVG's viewBox, a panel per node, and (when served) fresh live state.
(function () {
  "use strict";
  const view = document.getElementById("view");
  const svg = document.getElementById("graph");
  const full = { x: 0, y: 0, w: svg.viewBox.baseVal.width, h: svg.viewBox.baseVal.height };
  let box = Object.assign({}, full);
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");

  function show() {
    svg.setAttribute("viewBox", [box.x, box.y, box.w, box.h].join(" "));
  }
  function scale() {
    // SVG units per screen pixel, with "meet" scaling.
    return Math.max(box.w / view.clientWidth, box.h / view.clientHeight);
  }
  function zoom(k, cx, cy) {
    const s = scale();
    const px = box.x + (cx - view.clientWidth / 2) * s + box.w / 2;
    const py = box.y + (cy - view.clientHeight / 2) * s + box.h / 2;
    box = { x: px - (px - box.x) * k, y: py - (py - box.y) * k, w: box.w * k, h: box.h * k };
    show();
  }
  view.addEventListener("wheel", function (e) {
    e.preventDefault();
    const r = view.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 0.85 : 1 / 0.85, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  let drag = null;
  view.addEventListener("pointerdown", function (e) {
    drag = { x: e.clientX, y: e.clientY, box: Object.assign({}, box), moved: false };
    view.classList.add("dragging");
  });
  window.addEventListener("pointermove", function (e) {
    if (!drag) return;
    const s = scale();
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    box = { x: drag.box.x - dx * s, y: drag.box.y - dy * s, w: box.w, h: box.h };
    show();
  });
  window.addEventListener("pointerup", function () {
    view.classList.remove("dragging");
    setTimeout(function () { drag = null; }, 0);
  });
  document.getElementById("zoom-in").onclick = function () { zoom(0.8, view.clientWidth / 2, view.clientHeight / 2); };
  document.getElementById("zoom-out").onclick = function () { zoom(1.25, view.clientWidth / 2, view.clientHeight / 2); };
  document.getElementById("fit").onclick = function () { box = Object.assign({}, full); show(); };

  // A click on a node opens its panel.
  svg.addEventListener("click", function (e) {
    if (drag && drag.moved) return;
    const g = e.target.closest(".vertex.node");
    if (!g) return;
    document.querySelectorAll(".vertex.selected").forEach(function (s) { s.classList.remove("selected"); });
    g.classList.add("selected");
    const p = document.getElementById("panel-" + g.dataset.name);
    if (p) { p.open = true; p.scrollIntoView({ block: "nearest" }); }
  });

  // `#NODE` in the address opens that node's panel.
  if (location.hash.length > 1) {
    const p = document.getElementById("panel-" + decodeURIComponent(location.hash.slice(1)));
    if (p) p.open = true;
  }

  function setState(el, base, state) {
    el.setAttribute("class", (base + " " + state).trim());
  }
  function apply(s) {
    Object.keys(s.nodes).forEach(function (name) {
      const n = s.nodes[name];
      const g = document.getElementById("node-" + name);
      if (g) {
        const sel = g.classList.contains("selected") ? " selected" : "";
        setState(g, "vertex node", n.state + sel);
        const t = g.querySelector(".procs");
        if (t && n.procs) t.textContent = n.procs;
      }
      const p = document.getElementById("panel-" + name);
      if (p) {
        p.className = ("panel " + n.state).trim();
        p.querySelector(".st").textContent = n.state;
        p.querySelector(".body").innerHTML = n.panel;
      }
    });
    Object.keys(s.links).forEach(function (id) {
      const l = s.links[id];
      const g = document.getElementById(id);
      // A link between hosts stays drawn as a tunnel whatever its state.
      const vx = g && g.classList.contains("vxlan") ? " vxlan" : "";
      if (g) setState(g, "link", l.state + (l.impairment ? " impaired" : "") + vx);
    });
    document.getElementById("stamp").textContent = "refreshed " + new Date().toLocaleTimeString();
  }
  const url = document.body.dataset.refresh;
  if (url) {
    const refresh = function () {
      fetch(url, { cache: "no-store" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(apply)
        .catch(function (e) { document.getElementById("stamp").textContent = "refresh failed: " + e; });
    };
    refresh();
    setInterval(refresh, Number(document.body.dataset.interval) || 2000);
  }
})();
