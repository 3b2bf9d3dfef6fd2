// The backward-pass explorer: replays the engine's walk (data from explore.py) over Graphviz's SVG.
// Position p (0..n) counts the ops processed; at p >= 1 op walk[p-1] is the one highlighted. A tensor's
// gradient is shown once every op it feeds has sent its part back (arrival < p; the root's arrival is -1).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("explorer-data").textContent);
  document.body.classList.add("js");
  const $ = (id) => document.getElementById(id);
  const WAITING_FILL = "#ffffff";

  function fmt(x) {
    if (x === null || x === undefined) return "not finite";
    if (x === 0) return "0";
    const a = Math.abs(x);
    return a >= 1e4 || a < 1e-3 ? x.toExponential(3) : x.toPrecision(4);
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }
  function shapeOf(t) { return t.shape.length ? t.shape.join("×") : "scalar"; }

  // ------------------------------------------------------------------ one graph (a panel)
  function Panel(section, spec) {
    this.section = section;
    this.spec = spec;
    this.n = spec.walk.length;
    this.pos = 0;
    this.views = {};
    for (const div of section.querySelectorAll(".picture")) {
      const name = div.dataset.variant;
      const picture = spec.pictures[name];
      const nodes = {}, edges = {};
      for (const g of div.querySelectorAll("g.node")) {
        const key = g.querySelector("title").textContent;
        nodes[key] = g;
        const shape = g.querySelector("polygon, ellipse, path");
        if (shape) g.dataset.fill = shape.getAttribute("fill") || "none";
        if (picture.nodes[key]) {
          g.addEventListener("mouseenter", () => explorer.inspect(this, key, false));
          g.addEventListener("click", () => explorer.inspect(this, key, true));
        }
      }
      for (const g of div.querySelectorAll("g.edge")) {
        const key = g.querySelector("title").textContent;
        (edges[key] = edges[key] || []).push(g);
        for (const part of g.querySelectorAll("path, polygon")) part.dataset.stroke = part.getAttribute("stroke") || "";
      }
      this.views[name] = { div, picture, nodes, edges, svg: div.querySelector("svg") };
    }
    this.shown = spec.shown;
    this.chart = spec.chart ? this.buildChart(section.querySelector(".chart")) : null;
  }

  Panel.prototype.view = function () { return this.views[this.shown]; };

  Panel.prototype.buildChart = function (div) {
    const c = this.spec.chart;
    div.innerHTML = `<div class="caption">gradient norm reaching each ${esc(c.word)}'s own inputs (the leaves ` +
      `only it uses; log scale, 1e${c.low} to 1e${c.high}), filled in as the walk reaches them</div>` +
      '<div class="bars"></div><div class="labels"></div>';
    const bars = div.querySelector(".bars"), labels = div.querySelector(".labels");
    return c.bars.map((b) => {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.title = `${c.word} ${b.number} (${b.inputs.join(", ")}): gradient norm ${fmt(b.norm)}`;
      const fill = document.createElement("div");
      const h = b.norm > 0 ? (Math.log10(b.norm) - c.low) / (c.high - c.low) : 0;
      fill.style.height = `${Math.max(2, Math.min(100, 100 * h))}%`;
      bar.appendChild(fill);
      bars.appendChild(bar);
      const label = document.createElement("span");
      label.textContent = b.number;
      labels.appendChild(label);
      return { bar, arrival: b.arrival };
    });
  };

  Panel.prototype.currentKey = function () {
    return this.pos > 0 ? this.view().picture.steps[this.pos - 1].node : null;
  };

  Panel.prototype.render = function (mode) {
    const v = this.view(), pos = this.pos;
    for (const [key, g] of Object.entries(v.nodes)) {
      const node = v.picture.nodes[key];
      g.classList.toggle("current", false);
      if (!node || node.kind === "elided") continue;
      let fill = g.dataset.fill;
      if (mode === "grad" && node.gradColor) fill = node.arrival < pos ? node.gradColor : WAITING_FILL;
      if (mode === "value" && node.valueColor) fill = node.valueColor;
      const shape = g.querySelector("polygon, ellipse, path");
      if (shape) shape.setAttribute("fill", fill);
    }
    for (const parts of Object.values(v.edges)) {
      for (const g of parts) {
        g.classList.remove("lit");
        for (const part of g.querySelectorAll("path, polygon")) part.setAttribute("stroke", part.dataset.stroke);
      }
    }
    for (let s = 0; s < pos; s++) {  // edges that have carried gradient keep its colour
      for (const [edge, tensor] of v.picture.steps[s].edges) {
        const color = this.spec.tensors[tensor].gradColor;
        if (!color || mode !== "grad") continue;
        for (const g of v.edges[edge] || []) {
          for (const part of g.querySelectorAll("path, polygon")) part.setAttribute("stroke", color);
        }
      }
    }
    if (pos > 0) {
      const step = v.picture.steps[pos - 1];
      const g = v.nodes[step.node];
      if (g) g.classList.add("current");
      for (const [edge] of step.edges) for (const e of v.edges[edge] || []) e.classList.add("lit");
    }
    if (this.chart) for (const b of this.chart) b.bar.classList.toggle("pending", !(b.arrival < pos));
  };

  Panel.prototype.status = function () {
    const title = this.spec.title ? `${this.spec.title}: ` : "";
    if (this.pos === 0) {
      return `${title}before the walk (${this.n} ops to go): the root holds its own gradient; press → to start`;
    }
    const op = this.spec.ops[this.spec.walk[this.pos - 1]];
    const edges = this.view().picture.steps[this.pos - 1].edges.length;
    return `${title}step ${this.pos} of ${this.n}: ${op.op}${op.scope ? " in " + op.scope : ""} ` +
      `sends gradient back along ${edges} edge${edges === 1 ? "" : "s"}` +
      (this.pos === this.n ? " (the walk is done)" : "");
  };

  Panel.prototype.scrollToCurrent = function () {
    const key = this.currentKey();
    const g = key && this.view().nodes[key];
    if (!g) return;
    const div = this.view().div, box = g.getBoundingClientRect(), frame = div.getBoundingClientRect();
    if (box.left < frame.left || box.right > frame.right) div.scrollLeft += box.left - frame.left - frame.width / 2;
    if (box.top < frame.top || box.bottom > frame.bottom) div.scrollTop += box.top - frame.top - frame.height / 2;
  };

  Panel.prototype.info = function (key) {
    const node = this.view().picture.nodes[key];
    const spec = this.spec, pos = this.pos;
    let html = `<h3>${esc(node.title)}</h3><table>`;
    html += `<tr><td>kind</td><td>${esc(node.kind)}</td></tr>`;
    html += `<tr><td>scope</td><td>${esc(node.scope || "(none)")}</td></tr>`;
    html += "</table>";
    if (node.kind === "elided") {
      const current = pos > 0 && node.ops.includes(spec.walk[pos - 1]);
      html += `<p>${node.ops.length} ops of the folded steps; unfold to see them.` +
        (current ? " The walk is inside them now." : "") + "</p>";
    }
    if (node.kind === "op" && !node.tensors.length) html += "<p>Its outputs are drawn as nodes of their own.</p>";
    for (const i of node.tensors) {
      const t = spec.tensors[i];
      html += `<div class="tensor" data-tensor="${i}"><b>${esc(t.name || (node.kind === "op" ? "output" : "tensor"))}</b> ` +
        `${shapeOf(t)}<table>`;
      html += `<tr><td>value</td><td>min ${fmt(t.value.min)} · mean ${fmt(t.value.mean)} · max ${fmt(t.value.max)}` +
        `<br>norm ${fmt(t.value.norm)}</td></tr>`;
      if (t.grad === null) {
        html += `<tr><td>gradient</td><td class="pending">none (${t.requiresGrad ? "no gradient reached it" : "does not require grad"})</td></tr>`;
      } else if (t.arrival < pos) {
        html += `<tr><td>gradient</td><td>min ${fmt(t.grad.min)} · mean ${fmt(t.grad.mean)} · max ${fmt(t.grad.max)}` +
          `<br>norm <span class="grad-norm">${fmt(t.grad.norm)}</span></td></tr>`;
      } else {
        html += `<tr><td>gradient</td><td class="pending">not arrived yet (complete after step ${t.arrival + 1})</td></tr>`;
      }
      if (t.saturation) {
        const s = t.saturation;
        html += `<tr><td>saturation</td><td>${(100 * s.near0).toFixed(0)}% of units near 0 (&lt; ${s.threshold}), ` +
          `${(100 * s.near1).toFixed(0)}% near 1 (&gt; ${1 - s.threshold})</td></tr>`;
      }
      html += "</table></div>";
    }
    return html;
  };

  // ------------------------------------------------------------------ the page: all panels, one set of controls
  const panels = Array.from(document.querySelectorAll("section.panel"))
    .map((section) => new Panel(section, data.panels[Number(section.dataset.panel)]));
  const longest = Math.max(...panels.map((p) => p.n));
  if (panels.length > 1) $("panels").classList.add("side-by-side");  // charts side by side, to compare
  const explorer = {
    panels, position: 0, mode: "grad", pinned: null, inspected: null, timer: null, zoom: null,

    go(position) {
      this.position = Math.max(0, Math.min(longest, position));
      for (const p of panels) p.pos = Math.round(this.position * p.n / longest);  // panels keep pace
      $("position").value = this.position;
      this.render();
      for (const p of panels) p.scrollToCurrent();
      if (this.position === longest) this.pause();
    },
    render() {
      for (const p of panels) p.render(this.mode);
      $("status").innerHTML = panels.map((p) => `<div>${esc(p.status())}</div>`).join("");
      const shown = this.pinned || this.inspected;
      if (shown) this.showInfo(shown.panel, shown.key);
      for (const p of panels) {
        for (const g of Object.values(p.view().nodes)) g.classList.remove("pinned");
      }
      if (this.pinned) {
        const g = this.pinned.panel.view().nodes[this.pinned.key];
        if (g) g.classList.add("pinned");
      }
      this.renderLegend();
    },
    inspect(panel, key, pin) {
      if (pin) this.pinned = this.pinned && this.pinned.panel === panel && this.pinned.key === key ? null : { panel, key };
      else this.inspected = { panel, key };
      this.render();
      if (!pin && !this.pinned) this.showInfo(panel, key);
    },
    showInfo(panel, key) {
      if (!panel.view().picture.nodes[key]) return;
      const info = $("info");
      info.dataset.node = key;
      info.innerHTML = panel.info(key);
    },
    renderLegend() {
      const items = this.mode === "grad" ? data.legend.grad : data.legend.value;
      const title = this.mode === "grad" ? "gradient norm (log scale; white: not arrived yet)" : "mean value";
      $("legend").innerHTML = `<b>${title}</b><div class="legend-bar">` +
        items.map((i) => `<span style="background:${i.color}">${esc(i.label)}</span>`).join("") + "</div>" +
        '<div>orange: the op being processed and the edges it sends gradient along</div>';
    },
    play() {
      if (this.position === longest) this.go(0);
      $("btn-play").innerHTML = "&#x2016; pause";
      const speed = Number($("speed").value);
      this.timer = setInterval(() => this.go(this.position + 1), 1000 / speed);
    },
    pause() {
      clearInterval(this.timer);
      this.timer = null;
      $("btn-play").innerHTML = "&#x25B6; play";
    },
    toggle() { if (this.timer) this.pause(); else this.play(); },
    setZoom(zoom) {
      for (const p of panels) {
        for (const v of Object.values(p.views)) {
          const width = v.svg.viewBox.baseVal.width;
          const fit = (v.div.clientWidth || 800) / width;
          const scale = zoom === null ? Math.max(Math.min(1, fit), 0.4) : zoom;
          v.svg.style.width = `${width * scale}px`;
          v.svg.removeAttribute("height");
          v.scale = scale;
        }
      }
      this.zoom = zoom;
    },
    fold(folded) {
      for (const p of panels) {
        const want = folded ? "folded" : "whole";
        if (!p.views[want]) continue;
        p.shown = want;
        for (const [name, v] of Object.entries(p.views)) v.div.hidden = name !== want;
      }
      this.inspected = null;
      this.pinned = null;
      this.setZoom(this.zoom);
      this.render();
    },
  };
  window.explorer = explorer;

  $("position").max = longest;
  $("btn-start").onclick = () => explorer.go(0);
  $("btn-back").onclick = () => explorer.go(explorer.position - 1);
  $("btn-step").onclick = () => explorer.go(explorer.position + 1);
  $("btn-end").onclick = () => explorer.go(longest);
  $("btn-play").onclick = () => explorer.toggle();
  $("position").oninput = (e) => explorer.go(Number(e.target.value));
  $("speed").onchange = () => { if (explorer.timer) { explorer.pause(); explorer.play(); } };
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.onchange = () => { explorer.mode = radio.value; explorer.render(); };
  }
  const foldable = panels.some((p) => Object.keys(p.views).length > 1);
  $("fold").checked = panels.some((p) => p.shown === "folded");
  $("fold").disabled = !foldable;
  if (!foldable) {
    const large = panels.some((p) => p.spec.large);
    $("fold-label").title = large ? "too many ops to lay out the whole graph: time steps stay folded"
      : "nothing to fold: no repeated time steps long enough";
  }
  $("fold").onchange = (e) => explorer.fold(e.target.checked);
  $("zoom-in").onclick = () => explorer.setZoom((panels[0].view().scale || 1) * 1.25);
  $("zoom-out").onclick = () => explorer.setZoom((panels[0].view().scale || 1) / 1.25);
  $("zoom-fit").onclick = () => explorer.setZoom(null);
  document.addEventListener("keydown", (e) => {
    const typing = e.target.tagName === "SELECT" ||
      (e.target.tagName === "INPUT" && e.target.type !== "checkbox" && e.target.type !== "radio");
    if (typing) return;
    const keys = {
      ArrowRight: () => explorer.go(explorer.position + 1), ArrowLeft: () => explorer.go(explorer.position - 1),
      " ": () => explorer.toggle(), Home: () => explorer.go(0), End: () => explorer.go(longest),
    };
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });
  document.addEventListener("click", (e) => {  // a clicked button lets go of the focus, so space plays, not clicks
    const button = e.target.closest && e.target.closest("button");
    if (button) button.blur();
  });
  explorer.setZoom(null);
  explorer.go(0);
})();
