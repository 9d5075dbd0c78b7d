/* The journey editor: draws a journey on a canvas. A palette adds nodes, nodes are
   dragged (mouse or arrow keys), an out-port is connected to a node (drag from the port,
   or click the port then the node), and a side panel edits the selected node's settings
   with pickers built from the brand's audiences, tags, event types and channel accounts.
   The graph is kept in the hidden input #tp-graph and posted with the form; the server
   validates it and answers messages per node (json_script "tp-journey-errors").
   No external assets, no build step. */
(function () {
  "use strict";

  var NODE_W = 176;
  var GRID = 8;
  var S = {};        // translated strings (json_script "tp-journey-strings")
  var CAT = {};      // pickers (json_script "tp-journey-catalog")
  var graph = { nodes: [], edges: [], goal: null };
  var selected = null;   // node id
  var selectedEdge = -1;
  var connecting = null; // {from, port}
  var canvas, svg, layer, panel, hidden, brandSelect;
  var nodeErrors = {};
  var readonly = false;  // the review page shows the drawing and the settings only

  function t(key) { return S[key] || key; }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "className") { node.className = attrs[k]; }
      else if (k.slice(0, 2) === "on") { node.addEventListener(k.slice(2), attrs[k]); }
      else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); } });
    return node;
  }
  function snap(v) { return Math.max(0, Math.round(v / GRID) * GRID); }
  function byId(id) { return graph.nodes.filter(function (n) { return n.id === id; })[0] || null; }
  function brandId() { return brandSelect ? String(brandSelect.value) : String(CAT.brand || ""); }
  function ofBrand(list) {
    var b = brandId();
    var line = (CAT.brand_lines || {})[b];
    return (list || []).filter(function (item) {
      if (item.brand !== null && item.brand !== undefined) { return String(item.brand) === b; }
      return item.business_line !== undefined && String(item.business_line) === String(line);
    });
  }
  function newId() {
    var i = 1;
    while (byId("n" + i)) { i += 1; }
    return "n" + i;
  }

  // ------------------------------------------------------------------ model
  var DEFAULTS = {
    entry: function () { return { trigger: "audience", reentry: "never" }; },
    wait: function () { return { mode: "duration", minutes: 1440 }; },
    branch: function () { return { tag: "", cases: [{ key: "k1", values: [] }] }; },
    split: function () { return { ways: [{ key: "a", percent: 50 }, { key: "b", percent: 50 }] }; },
    holdout: function () { return { holdout_percent: 10 }; },
    send: function () { return { account: null, content: {} }; },
    sync_tag: function () { return { account: null, tag_name: "" }; },
    set_tag: function () { return { tag: "", value: "" }; },
    exit: function () { return {}; }
  };

  function ports(node) {
    var c = node.config || {};
    switch (node.type) {
      case "entry": case "send": case "sync_tag": case "set_tag": return ["next"];
      case "wait": return c.mode === "event" ? ["happened", "timeout"] : ["next"];
      case "branch": return (c.cases || []).map(function (k) { return k.key; }).concat(["else"]);
      case "split": return (c.ways || []).map(function (w) { return w.key; });
      case "holdout": return ["treatment", "holdout"];
      default: return [];
    }
  }
  function portLabel(node, port) {
    var c = node.config || {};
    if (node.type === "branch" && port !== "else") {
      var found = (c.cases || []).filter(function (k) { return k.key === port; })[0];
      var vals = found ? (found.values || []).map(function (v) { return valueLabel(c.tag, v); }) : [];
      return vals.length ? vals.join("/") : port;
    }
    if (node.type === "split") {
      var way = (c.ways || []).filter(function (w) { return w.key === port; })[0];
      return port.toUpperCase() + (way ? " " + way.percent + "%" : "");
    }
    return t("port_" + port);
  }

  function addNode(type, x, y) {
    if (type === "entry" && graph.nodes.some(function (n) { return n.type === "entry"; })) {
      flash(t("one_entry"));
      return null;
    }
    var node = { id: newId(), type: type, label: "", x: snap(x), y: snap(y), config: DEFAULTS[type]() };
    graph.nodes.push(node);
    select(node.id);
    return node;
  }
  function removeNode(id) {
    graph.nodes = graph.nodes.filter(function (n) { return n.id !== id; });
    graph.edges = graph.edges.filter(function (e) { return e.from !== id && e.to !== id; });
    if (selected === id) { selected = null; }
    render();
  }
  function connect(from, port, to) {
    if (from === to) { flash(t("no_self")); return; }
    var target = byId(to);
    if (target && target.type === "entry") { flash(t("no_into_entry")); return; }
    graph.edges = graph.edges.filter(function (e) { return !(e.from === from && e.port === port); });
    graph.edges.push({ from: from, to: to, port: port });
    render();
  }
  function pruneEdges() {
    graph.edges = graph.edges.filter(function (e) {
      var n = byId(e.from);
      return n && byId(e.to) && ports(n).indexOf(e.port) !== -1;
    });
  }

  // ------------------------------------------------------------------ catalog helpers
  function tagOf(code) { return (CAT.tags || []).filter(function (x) { return x.code === code; })[0] || null; }
  function valueLabel(code, value) {
    var tag = tagOf(code);
    var v = tag ? (tag.values || []).filter(function (x) { return String(x.code) === String(value); })[0] : null;
    return v ? v.label : String(value);
  }
  function eventLabel(code) {
    if (code === "order") { return t("order"); }
    var e = (CAT.events || []).filter(function (x) { return x.code === code; })[0];
    return e ? e.label : (code || "");
  }
  function accountOf(id) {
    return (CAT.accounts || []).filter(function (a) { return String(a.id) === String(id); })[0] || null;
  }
  function minutesText(m) {
    m = Number(m) || 0;
    if (m && m % 1440 === 0) { return (m / 1440) + " " + t("days"); }
    if (m && m % 60 === 0) { return (m / 60) + " " + t("hours"); }
    return m + " " + t("minutes");
  }
  function summary(node) {
    var c = node.config || {};
    switch (node.type) {
      case "entry":
        if (c.trigger === "audience") { return t("trigger_audience") + "：" + nameOf(CAT.audiences, c.audience); }
        if (c.trigger === "tag") { return t("trigger_tag") + "：" + ((tagOf(c.tag) || {}).name || "—") + (c.value ? " = " + valueLabel(c.tag, c.value) : ""); }
        if (c.trigger === "event") { return t("trigger_event") + "：" + (eventLabel(c.event) || "—"); }
        return t("trigger_schedule") + "：" + nameOf(CAT.audiences, c.audience);
      case "wait":
        if (c.mode === "until_time") { return t("wait_until") + " " + (c.time || "—"); }
        if (c.mode === "event") { return t("wait_event") + "：" + (eventLabel(c.event) || "—") + " · " + minutesText(c.within_minutes); }
        return t("wait_for") + " " + minutesText(c.minutes);
      case "branch": return t("by_tag") + "：" + ((tagOf(c.tag) || {}).name || "—");
      case "split": return (c.ways || []).map(function (w) { return w.percent + "%"; }).join(" / ");
      case "holdout": return t("holdout") + " " + (c.holdout_percent || 0) + "%";
      case "send":
        var a = accountOf(c.account);
        return (a ? a.name : "—") + ((c.variants || []).length ? " · " + (c.variants.length) + " " + t("variants_short") : "");
      case "sync_tag": return (accountOf(c.account) || {}).name ? accountOf(c.account).name + " · " + (c.tag_name || "—") : "—";
      case "set_tag": return ((tagOf(c.tag) || {}).name || "—") + (c.value ? " = " + valueLabel(c.tag, c.value) : "");
      default: return "";
    }
  }
  function nameOf(list, id) {
    var found = (list || []).filter(function (x) { return String(x.id) === String(id); })[0];
    return found ? found.name : "—";
  }

  // ------------------------------------------------------------------ drawing
  function render() {
    pruneEdges();
    layer.textContent = "";
    graph.nodes.forEach(function (node) { layer.appendChild(drawNode(node)); });
    drawEdges();
    renderPanel();
    save();
  }

  function drawNode(node) {
    var errs = nodeErrors[node.id] || [];
    var box = el("div", {
      className: "tp-node tp-node-" + node.type + (selected === node.id ? " tp-selected" : "") + (errs.length ? " tp-node-invalid" : "") + (connecting && connecting.from !== node.id ? " tp-target" : ""),
      "data-id": node.id,
      "data-type": node.type,
      tabindex: "0",
      role: "button",
      "aria-pressed": selected === node.id ? "true" : "false",
      "aria-label": t("type_" + node.type) + " " + (node.label || node.id)
    });
    box.style.left = node.x + "px";
    box.style.top = node.y + "px";
    box.style.width = NODE_W + "px";
    var head = el("div", { className: "tp-node-head" }, [
      el("span", { className: "tp-node-type", text: t("type_" + node.type) }),
      el("span", { className: "tp-node-id", text: node.id })
    ]);
    box.appendChild(head);
    if (node.label) { box.appendChild(el("div", { className: "tp-node-label", text: node.label })); }
    var sum = summary(node);
    if (sum) { box.appendChild(el("div", { className: "tp-node-summary", text: sum, title: sum })); }
    if (errs.length) {
      box.appendChild(el("ul", { className: "tp-node-errors", role: "alert" }, errs.map(function (m) { return el("li", { text: m }); })));
    }
    var ps = ports(node);
    if (ps.length) {
      var row = el("div", { className: "tp-ports" });
      ps.forEach(function (port) {
        var linked = graph.edges.some(function (e) { return e.from === node.id && e.port === port; });
        var b = el("button", {
          type: "button",
          className: "tp-port" + (linked ? " tp-linked" : "") + (connecting && connecting.from === node.id && connecting.port === port ? " tp-armed" : ""),
          "data-port": port,
          title: t("connect_hint"),
          text: portLabel(node, port)
        });
        if (readonly) { b.disabled = true; row.appendChild(b); return; }
        b.addEventListener("pointerdown", function (ev) { startPortDrag(ev, node, port); });
        b.addEventListener("click", function (ev) {
          ev.stopPropagation();
          if (b.dataset.dragged === "1") { b.dataset.dragged = ""; return; }
          connecting = (connecting && connecting.from === node.id && connecting.port === port) ? null : { from: node.id, port: port };
          setStatus(connecting ? t("pick_target") : "");
          render();
        });
        row.appendChild(b);
      });
      box.appendChild(row);
    }
    if (!readonly) { box.addEventListener("pointerdown", function (ev) { startNodeDrag(ev, node); }); }
    box.addEventListener("click", function () {
      if (connecting) {
        if (connecting.from !== node.id) { var c = connecting; connecting = null; setStatus(""); connect(c.from, c.port, node.id); }
        return;
      }
      if (selected !== node.id) { select(node.id); }
    });
    box.addEventListener("keydown", function (ev) { nodeKey(ev, node); });
    return box;
  }

  function portPoint(id, port) {
    var box = layer.querySelector('.tp-node[data-id="' + id + '"]');
    if (!box) { return null; }
    var b = port === null ? null : box.querySelector('.tp-port[data-port="' + cssEscape(port) + '"]');
    if (!b) {
      return { x: box.offsetLeft + box.offsetWidth / 2, y: box.offsetTop };
    }
    return { x: box.offsetLeft + b.offsetLeft + b.offsetWidth / 2, y: box.offsetTop + b.offsetTop + b.offsetHeight };
  }
  function cssEscape(s) { return window.CSS && CSS.escape ? CSS.escape(s) : String(s).replace(/"/g, '\\"'); }
  function curve(a, b) {
    var dy = Math.max(40, Math.abs(b.y - a.y) / 2);
    return "M" + a.x + "," + a.y + " C" + a.x + "," + (a.y + dy) + " " + b.x + "," + (b.y - dy) + " " + b.x + "," + b.y;
  }
  function drawEdges() {
    while (svg.lastChild && svg.lastChild.tagName !== "defs") { svg.removeChild(svg.lastChild); }
    var NS = "http://www.w3.org/2000/svg";
    graph.edges.forEach(function (edge, i) {
      var a = portPoint(edge.from, edge.port), b = portPoint(edge.to, null);
      if (!a || !b) { return; }
      var g = document.createElementNS(NS, "g");
      g.setAttribute("class", "tp-edge" + (selectedEdge === i ? " tp-edge-selected" : ""));
      g.setAttribute("data-from", edge.from);
      g.setAttribute("data-to", edge.to);
      g.setAttribute("data-port", edge.port);
      var hit = document.createElementNS(NS, "path");
      hit.setAttribute("d", curve(a, b));
      hit.setAttribute("class", "tp-edge-hit");
      var line = document.createElementNS(NS, "path");
      line.setAttribute("d", curve(a, b));
      line.setAttribute("class", "tp-edge-line");
      line.setAttribute("marker-end", "url(#tp-arrow)");
      g.appendChild(hit);
      g.appendChild(line);
      g.addEventListener("click", function (ev) {
        ev.stopPropagation();
        selectedEdge = i; selected = null;
        render();
      });
      svg.appendChild(g);
    });
    var w = 0, h = 0;
    graph.nodes.forEach(function (n) { w = Math.max(w, n.x + NODE_W + 200); h = Math.max(h, n.y + 300); });
    layer.style.minWidth = svg.style.width = Math.max(w, canvas.clientWidth) + "px";
    layer.style.minHeight = svg.style.height = Math.max(h, 560) + "px";
  }

  // ------------------------------------------------------------------ pointer interaction
  function canvasPoint(ev) {
    var r = layer.getBoundingClientRect();
    return { x: ev.clientX - r.left, y: ev.clientY - r.top };
  }
  function startNodeDrag(ev, node) {
    if (ev.button !== 0 || ev.target.closest(".tp-port")) { return; }
    var start = canvasPoint(ev), ox = node.x, oy = node.y, moved = false;
    var box = ev.currentTarget;
    function move(e) {
      var p = canvasPoint(e);
      if (!moved && Math.abs(p.x - start.x) + Math.abs(p.y - start.y) < 4) { return; }
      moved = true;
      node.x = snap(ox + p.x - start.x);
      node.y = snap(oy + p.y - start.y);
      box.style.left = node.x + "px";
      box.style.top = node.y + "px";
      drawEdges();
    }
    function up() {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      if (moved) { save(); }
    }
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  }
  function startPortDrag(ev, node, port) {
    if (ev.button !== 0) { return; }
    ev.stopPropagation();
    var button = ev.currentTarget;
    var a = portPoint(node.id, port), temp = null;
    var NS = "http://www.w3.org/2000/svg";
    function move(e) {
      var p = canvasPoint(e);
      if (!temp) {
        if (Math.abs(p.x - a.x) + Math.abs(p.y - a.y) < 6) { return; }
        temp = document.createElementNS(NS, "path");
        temp.setAttribute("class", "tp-edge-temp");
        svg.appendChild(temp);
      }
      temp.setAttribute("d", curve(a, p));
    }
    function up(e) {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      if (!temp) { return; }
      button.dataset.dragged = "1";
      svg.removeChild(temp);
      var under = document.elementFromPoint(e.clientX, e.clientY);
      var target = under && under.closest(".tp-node");
      if (target) { connect(node.id, port, target.getAttribute("data-id")); }
      setTimeout(function () { button.dataset.dragged = ""; }, 0);
    }
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  }
  function nodeKey(ev, node) {
    if (ev.target !== ev.currentTarget) { return; }
    if (readonly) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(node.id); }
      return;
    }
    var step = ev.shiftKey ? GRID * 5 : GRID;
    var moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[ev.key]) {
      ev.preventDefault();
      node.x = Math.max(0, node.x + moves[ev.key][0]);
      node.y = Math.max(0, node.y + moves[ev.key][1]);
      render();
      focusNode(node.id);
    } else if (ev.key === "Delete" || ev.key === "Backspace") {
      ev.preventDefault();
      removeNode(node.id);
    } else if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      ev.currentTarget.click();
    }
  }
  function focusNode(id) {
    var box = layer.querySelector('.tp-node[data-id="' + id + '"]');
    if (box) { box.focus(); }
  }
  function select(id) {
    selected = id;
    selectedEdge = -1;
    render();
  }
  function flash(text) { setStatus(text, true); }
  function setStatus(text, warn) {
    var s = document.getElementById("tp-editor-status");
    if (s) { s.textContent = text || ""; s.className = warn ? "tp-warning-text" : "tp-muted"; }
  }

  // ------------------------------------------------------------------ side panel
  function field(labelText, control, help) {
    var id = control.id || ("tp-f-" + Math.random().toString(36).slice(2, 9));
    control.id = id;
    return el("div", { className: "tp-field" }, [el("label", { "for": id, text: labelText }), control, help ? el("div", { className: "help", text: help }) : null]);
  }
  function withId(control, id) { control.id = id; return control; }
  function selectOf(options, value, onchange, empty) {
    var s = el("select", {});
    if (empty !== undefined) { s.appendChild(el("option", { value: "", text: empty })); }
    options.forEach(function (o) {
      var opt = el("option", { value: String(o[0]), text: o[1] });
      if (String(o[0]) === String(value === null || value === undefined ? "" : value)) { opt.selected = true; }
      s.appendChild(opt);
    });
    s.addEventListener("change", function () { onchange(s.value); });
    return s;
  }
  function numberInput(value, min, max, onchange) {
    var i = el("input", { type: "number", min: min, max: max, step: "1", value: value === undefined || value === null ? "" : value });
    i.addEventListener("change", function () { onchange(i.value === "" ? null : Number(i.value)); });
    return i;
  }
  function textInput(value, onchange, attrs) {
    var i = el("input", Object.assign({ type: "text", value: value || "" }, attrs || {}));
    i.addEventListener("input", function () { onchange(i.value); soft(); });
    return i;
  }
  // a text edit redraws the canvas but keeps the panel (and the caret)
  function soft() {
    layer.textContent = "";
    graph.nodes.forEach(function (n) { layer.appendChild(drawNode(n)); });
    drawEdges();
    save();
  }
  function durationPicker(minutes, onchange) {
    var m = Number(minutes) || 0, unit = 1;
    if (m && m % 1440 === 0) { unit = 1440; } else if (m && m % 60 === 0) { unit = 60; }
    var wrap = el("span", { className: "tp-inline" });
    var n = el("input", { type: "number", min: "1", step: "1", value: m ? m / unit : "", "aria-label": t("amount") });
    var u = selectOf([[1, t("minutes")], [60, t("hours")], [1440, t("days")]], unit, function () { fire(); });
    u.setAttribute("aria-label", t("unit"));
    function fire() { onchange(n.value === "" ? null : Math.round(Number(n.value) * Number(u.value))); }
    n.addEventListener("change", fire);
    wrap.appendChild(n); wrap.appendChild(u);
    return wrap;
  }
  function tagOptions(onlyManual) {
    return ofBrand(CAT.tags).filter(function (x) { return !onlyManual || x.manual; }).map(function (x) { return [x.code, x.name + " (" + x.code + ")"]; });
  }
  function valueOptions(code) {
    var tag = tagOf(code);
    return tag ? (tag.values || []).map(function (v) { return [v.code, v.label]; }) : [];
  }
  function audienceOptions() { return ofBrand(CAT.audiences).map(function (a) { return [a.id, a.name]; }); }
  function eventOptions(withOrder) {
    var list = (CAT.events || []).map(function (e) { return [e.code, e.label]; });
    return withOrder ? [["order", t("order")]].concat(list) : list;
  }
  function accountOptions(kinds) {
    return ofBrand(CAT.accounts).filter(function (a) { return !kinds || kinds.indexOf(a.kind) !== -1; }).map(function (a) { return [a.id, a.name + " · " + a.kind_label]; });
  }

  function renderPanel() {
    panel.textContent = "";
    if (selectedEdge >= 0 && graph.edges[selectedEdge]) {
      var e = graph.edges[selectedEdge];
      panel.appendChild(el("h2", { text: t("connection") }));
      panel.appendChild(el("p", { text: (byId(e.from).label || e.from) + " · " + portLabel(byId(e.from), e.port) + " → " + (byId(e.to).label || e.to) }));
      if (readonly) { return; }
      panel.appendChild(el("button", { type: "button", className: "button tp-danger", id: "tp-remove-edge", text: t("remove_connection"), onclick: function () { graph.edges.splice(selectedEdge, 1); selectedEdge = -1; render(); } }));
      return;
    }
    var node = byId(selected);
    if (!node) {
      panel.appendChild(el("h2", { text: t("goal") }));
      goalPanel();
      if (readonly) { freezePanel(); return; }
      panel.appendChild(el("p", { className: "help", text: t("panel_hint") }));
      return;
    }
    panel.appendChild(el("h2", { text: t("type_" + node.type) + " · " + node.id }));
    var errs = nodeErrors[node.id] || [];
    if (errs.length) { panel.appendChild(el("ul", { className: "errorlist" }, errs.map(function (m) { return el("li", { text: m }); }))); }
    panel.appendChild(field(t("label"), textInput(node.label, function (v) { node.label = v; }, { id: "tp-node-label", maxlength: "60", placeholder: t("optional") })));
    var c = node.config;
    var builders = { entry: entryPanel, wait: waitPanel, branch: branchPanel, split: splitPanel, holdout: holdoutPanel, send: sendPanel, sync_tag: syncPanel, set_tag: setTagPanel };
    if (builders[node.type]) { builders[node.type](node, c); }
    if (readonly) { freezePanel(); return; }
    panel.appendChild(el("div", { className: "tp-panel-actions" }, [
      el("button", { type: "button", className: "button tp-danger", id: "tp-remove-node", text: t("remove_node"), onclick: function () { removeNode(node.id); } })
    ]));
  }
  function freezePanel() {
    panel.querySelectorAll("button").forEach(function (b) { b.parentNode.removeChild(b); });
    panel.querySelectorAll("input, select, textarea").forEach(function (c) { c.disabled = true; });
  }

  function entryPanel(node, c) {
    panel.appendChild(field(t("trigger"), withId(selectOf([["audience", t("trigger_audience")], ["tag", t("trigger_tag")], ["event", t("trigger_event")], ["schedule", t("trigger_schedule")]], c.trigger, function (v) {
      node.config = { trigger: v, reentry: c.reentry || "never", reentry_days: c.reentry_days };
      if (v === "schedule") { node.config.schedule = { cron: "0 10 * * *" }; }
      render();
    }), "tp-cfg-trigger")));
    if (c.trigger === "audience" || c.trigger === "schedule") {
      panel.appendChild(field(t("audience"), withId(selectOf(audienceOptions(), c.audience, function (v) { c.audience = v ? Number(v) : null; render(); }, t("choose")), "tp-cfg-audience"), c.trigger === "audience" ? t("audience_help") : null));
    }
    if (c.trigger === "tag") {
      panel.appendChild(field(t("tag"), selectOf(tagOptions(false), c.tag, function (v) { c.tag = v; c.value = ""; render(); }, t("choose"))));
      panel.appendChild(field(t("value"), selectOf(valueOptions(c.tag), c.value, function (v) { c.value = v; render(); }, t("choose")), t("tag_help")));
    }
    if (c.trigger === "event") {
      panel.appendChild(field(t("event"), withId(selectOf(eventOptions(false), c.event, function (v) { c.event = v; render(); }, t("choose")), "tp-cfg-event")));
    }
    if (c.trigger === "schedule") { schedulePanel(c); }
    panel.appendChild(field(t("reentry"), selectOf([["never", t("reentry_never")], ["after_days", t("reentry_after")]], c.reentry || "never", function (v) { c.reentry = v; if (v === "after_days" && !c.reentry_days) { c.reentry_days = 30; } if (v === "never") { delete c.reentry_days; } render(); })));
    if (c.reentry === "after_days") {
      panel.appendChild(field(t("reentry_days"), numberInput(c.reentry_days, 1, 3650, function (v) { c.reentry_days = v; render(); })));
    }
  }
  function schedulePanel(c) {
    var s = c.schedule || {};
    var mode = s.once_at ? "once" : (s.cron && /\s\d$/.test(s.cron) ? "weekly" : "daily");
    var parts = (s.cron || "0 10 * * *").split(" ");
    var time = s.once_at ? "" : (("0" + parts[1]).slice(-2) + ":" + ("0" + parts[0]).slice(-2));
    panel.appendChild(field(t("repeat"), selectOf([["once", t("once")], ["daily", t("daily")], ["weekly", t("weekly")]], mode, function (v) {
      if (v === "once") { c.schedule = { once_at: "" }; } else if (v === "daily") { c.schedule = { cron: "0 10 * * *" }; } else { c.schedule = { cron: "0 10 * * 1" }; }
      render();
    })));
    if (mode === "once") {
      var at = el("input", { type: "datetime-local", value: (s.once_at || "").slice(0, 16) });
      at.addEventListener("change", function () { c.schedule = { once_at: at.value ? at.value + ":00+08:00" : "" }; render(); });
      panel.appendChild(field(t("once_at"), at, t("beijing_time")));
      return;
    }
    var tm = el("input", { type: "time", value: time });
    var day = parts[4] && parts[4] !== "*" ? parts[4] : "1";
    function fire(d) {
      var hm = (tm.value || "10:00").split(":");
      c.schedule = { cron: Number(hm[1]) + " " + Number(hm[0]) + " * * " + (mode === "weekly" ? (d || day) : "*") };
      render();
    }
    tm.addEventListener("change", function () { fire(); });
    if (mode === "weekly") {
      panel.appendChild(field(t("weekday"), selectOf([1, 2, 3, 4, 5, 6, 0].map(function (d) { return [d, t("weekday_" + d)]; }), day, function (v) { day = v; fire(v); })));
    }
    panel.appendChild(field(t("at_time"), tm, t("beijing_time")));
  }
  function waitPanel(node, c) {
    panel.appendChild(field(t("wait_mode"), withId(selectOf([["duration", t("wait_for")], ["until_time", t("wait_until")], ["event", t("wait_event")]], c.mode, function (v) {
      if (v === "duration") { node.config = { mode: v, minutes: 1440 }; }
      else if (v === "until_time") { node.config = { mode: v, time: "10:00" }; }
      else { node.config = { mode: v, event: "", within_minutes: 4320 }; }
      render();
    }), "tp-cfg-mode")));
    if (c.mode === "duration") {
      panel.appendChild(field(t("wait_for"), withId(durationPicker(c.minutes, function (v) { c.minutes = v; render(); }), "tp-cfg-minutes")));
    } else if (c.mode === "until_time") {
      var tm = el("input", { type: "time", value: c.time || "" });
      tm.addEventListener("change", function () { c.time = tm.value; render(); });
      panel.appendChild(field(t("at_time"), tm, t("until_help")));
    } else {
      panel.appendChild(field(t("event"), selectOf(eventOptions(true), c.event, function (v) { c.event = v; render(); }, t("choose"))));
      panel.appendChild(field(t("within"), durationPicker(c.within_minutes, function (v) { c.within_minutes = v; render(); }), t("within_help")));
    }
  }
  function branchPanel(node, c) {
    panel.appendChild(field(t("tag"), selectOf(tagOptions(false), c.tag, function (v) {
      c.tag = v; c.cases.forEach(function (k) { k.values = []; }); render();
    }, t("choose"))));
    var values = valueOptions(c.tag);
    c.cases.forEach(function (k, i) {
      var box = el("fieldset", { className: "tp-case" }, [el("legend", { text: t("case") + " " + (i + 1) + " (" + k.key + ")" })]);
      if (!values.length) { box.appendChild(el("p", { className: "help", text: t("pick_tag_first") })); }
      values.forEach(function (v) {
        var cb = el("input", { type: "checkbox", value: v[0] });
        cb.checked = (k.values || []).map(String).indexOf(String(v[0])) !== -1;
        cb.addEventListener("change", function () {
          k.values = (k.values || []).filter(function (x) { return String(x) !== String(v[0]); });
          if (cb.checked) { k.values.push(v[0]); }
          render();
        });
        box.appendChild(el("label", { className: "tp-check" }, [cb, " " + v[1]]));
      });
      if (c.cases.length > 1) {
        box.appendChild(el("button", { type: "button", className: "tp-link-button", text: t("remove_case"), onclick: function () { c.cases.splice(i, 1); render(); } }));
      }
      panel.appendChild(box);
    });
    panel.appendChild(el("button", { type: "button", className: "button", id: "tp-add-case", text: t("add_case"), onclick: function () {
      var n = 1; while (c.cases.some(function (k) { return k.key === "k" + n; })) { n += 1; }
      c.cases.push({ key: "k" + n, values: [] }); render();
    } }));
    panel.appendChild(el("p", { className: "help", text: t("else_help") }));
  }
  function splitPanel(node, c) {
    var sum = 0;
    c.ways.forEach(function (w, i) {
      sum += Number(w.percent) || 0;
      var row = el("div", { className: "tp-way" }, [
        field(t("way") + " " + w.key.toUpperCase() + " (%)", numberInput(w.percent, 1, 99, function (v) { w.percent = v; render(); })),
        c.ways.length > 2 ? el("button", { type: "button", className: "tp-link-button", text: t("remove"), onclick: function () { c.ways.splice(i, 1); render(); } }) : null
      ]);
      panel.appendChild(row);
    });
    panel.appendChild(el("p", { className: sum === 100 ? "help" : "tp-warning-text", id: "tp-split-sum", text: t("sum") + " " + sum + "%" }));
    if (c.ways.length < 10) {
      panel.appendChild(el("button", { type: "button", className: "button", text: t("add_way"), onclick: function () {
        var keys = "abcdefghij", k = 0; while (c.ways.some(function (w) { return w.key === keys[k]; })) { k += 1; }
        c.ways.push({ key: keys[k], percent: 0 }); render();
      } }));
    }
  }
  function holdoutPanel(node, c) {
    panel.appendChild(field(t("holdout_percent"), numberInput(c.holdout_percent, 1, 50, function (v) { c.holdout_percent = v; render(); }), t("holdout_help")));
  }
  function contentFields(kind, content, prefix) {
    var spec = (CAT.content || {})[kind];
    var wrap = el("div", { className: "tp-content" });
    if (!spec) { wrap.appendChild(el("p", { className: "help", text: t("pick_account_first") })); return wrap; }
    spec.required.concat(spec.optional).forEach(function (name) {
      var required = spec.required.indexOf(name) !== -1;
      var control = name === "text"
        ? el("textarea", { rows: "3", maxlength: "2000" })
        : el("input", { type: "text", maxlength: "500" });
      control.value = content[name] || "";
      control.setAttribute("data-content", name);
      control.addEventListener("input", function () { content[name] = control.value; save(); });
      wrap.appendChild(field((CAT.field_labels || {})[name] + (required ? " *" : ""), control, null));
    });
    var key = spec.mapping || spec.list;
    if (key) {
      var box = el("fieldset", { className: "tp-pairs" }, [el("legend", { text: (CAT.field_labels || {})[key] })]);
      if (spec.mapping) {
        var pairs = Object.keys(content[key] || {}).map(function (k) { return [k, content[key][k]]; });
        if (!pairs.length) { pairs.push(["", ""]); }
        var write = function () {
          var out = {};
          pairs.forEach(function (p) { if (p[0].trim()) { out[p[0].trim()] = p[1]; } });
          if (Object.keys(out).length) { content[key] = out; } else { delete content[key]; }
          save();
        };
        pairs.forEach(function (p) {
          var k = el("input", { type: "text", value: p[0], placeholder: t("name"), "aria-label": t("name"), className: "tp-pair-key" });
          var v = el("input", { type: "text", value: p[1], placeholder: t("value"), "aria-label": t("value"), className: "tp-pair-value" });
          k.addEventListener("input", function () { p[0] = k.value; write(); });
          v.addEventListener("input", function () { p[1] = v.value; write(); });
          box.appendChild(el("div", { className: "tp-pair" }, [k, " = ", v]));
        });
        box.appendChild(el("button", { type: "button", className: "tp-link-button", text: t("add_pair"), onclick: function () {
          content[key] = content[key] || {}; content[key]["key" + (pairs.length + 1)] = ""; render();
        } }));
      } else {
        var list = (content[key] || []).slice();
        if (!list.length) { list.push(""); }
        list.forEach(function (value, i) {
          var v = el("input", { type: "text", value: value, "aria-label": t("param") + " " + (i + 1), className: "tp-pair-value" });
          v.addEventListener("input", function () { list[i] = v.value; content[key] = list.slice(); save(); });
          box.appendChild(el("div", { className: "tp-pair" }, [el("span", { className: "tp-muted", text: "{" + (i + 1) + "} " }), v]));
        });
        box.appendChild(el("button", { type: "button", className: "tp-link-button", text: t("add_param"), onclick: function () { content[key] = list.concat([""]); render(); } }));
      }
      wrap.appendChild(box);
    }
    wrap.appendChild(el("p", { className: "help", text: t("variable_help") }));
    return wrap;
  }
  function sendPanel(node, c) {
    panel.appendChild(field(t("account"), withId(selectOf(accountOptions(CAT.send_kinds), c.account, function (v) {
      c.account = v ? Number(v) : null; c.content = {};
      (c.variants || []).forEach(function (x) { x.content = {}; });
      render();
    }, t("choose")), "tp-cfg-account")));
    var account = accountOf(c.account);
    var kind = account ? account.kind : "";
    var variants = c.variants || [];
    if (!variants.length) {
      panel.appendChild(contentFields(kind, c.content = c.content || {}, "c"));
    }
    var use = el("input", { type: "checkbox", id: "tp-use-variants" });
    use.checked = variants.length > 0;
    use.addEventListener("change", function () {
      if (use.checked) {
        c.variants = [{ key: "A", content: c.content || {} }, { key: "B", content: {} }];
        c.learning = c.learning || "significance";
        delete c.content;
      } else {
        c.content = (c.variants && c.variants[0] && c.variants[0].content) || {};
        delete c.variants; delete c.learning;
      }
      render();
    });
    panel.appendChild(el("div", { className: "tp-field" }, [el("label", { className: "tp-check", "for": "tp-use-variants" }, [use, " " + t("use_variants")])]));
    if (variants.length) {
      variants.forEach(function (v, i) {
        var box = el("fieldset", { className: "tp-variant" }, [el("legend", { text: t("variant") + " " + v.key })]);
        box.appendChild(contentFields(kind, v.content = v.content || {}, "v" + i));
        if (variants.length > 2) {
          box.appendChild(el("button", { type: "button", className: "tp-link-button", text: t("remove"), onclick: function () { variants.splice(i, 1); render(); } }));
        }
        panel.appendChild(box);
      });
      if (variants.length < 5) {
        panel.appendChild(el("button", { type: "button", className: "button", text: t("add_variant"), onclick: function () {
          var keys = "ABCDE", k = 0; while (variants.some(function (x) { return x.key === keys[k]; })) { k += 1; }
          variants.push({ key: keys[k], content: {} }); render();
        } }));
      }
      panel.appendChild(field(t("learning"), selectOf([["significance", t("learning_significance")], ["thompson", t("learning_thompson")]], c.learning || "significance", function (v) { c.learning = v; render(); })));
    }
  }
  function syncPanel(node, c) {
    panel.appendChild(field(t("account"), withId(selectOf(accountOptions(CAT.sync_kinds), c.account, function (v) { c.account = v ? Number(v) : null; render(); }, t("choose")), "tp-cfg-sync-account")));
    panel.appendChild(field(t("channel_tag"), textInput(c.tag_name, function (v) { c.tag_name = v; }, { maxlength: "30" }), t("channel_tag_help")));
    // the platform-tag fields the account's kind takes (WeCom: userid, tag group; Weimob: tag id)
    var account = accountOf(c.account);
    var fields = account ? ((CAT.sync_fields || {})[account.kind] || []) : [];
    var required = account ? (account.sync_required || []) : [];
    var helps = { userid: "sync_userid_help", tag_group: "sync_tag_group_help", tag_id: "sync_tag_id_help" };
    ["userid", "tag_group", "tag_id"].forEach(function (name) {
      if (!fields.some(function (f) { return f.name === name; })) { delete c[name]; }
    });
    fields.forEach(function (f) {
      var needed = required.indexOf(f.name) !== -1;
      var help = t(helps[f.name]);
      if (f.name === "userid" && !needed) { help = help + " " + t("sync_userid_default_help"); }
      var attrs = { id: "tp-cfg-sync-" + f.name, maxlength: f.name === "tag_group" ? "30" : "64" };
      if (needed) { attrs["aria-required"] = "true"; }
      panel.appendChild(field(f.label + (needed ? " (" + t("required") + ")" : ""), textInput(c[f.name], function (v) {
        if (v) { c[f.name] = v; } else { delete c[f.name]; }
      }, attrs), help));
    });
  }
  function setTagPanel(node, c) {
    panel.appendChild(field(t("manual_tag"), selectOf(tagOptions(true), c.tag, function (v) { c.tag = v; c.value = ""; render(); }, t("choose"))));
    panel.appendChild(field(t("value"), selectOf(valueOptions(c.tag), c.value, function (v) { c.value = v; render(); }, t("choose"))));
  }
  function goalPanel() {
    var g = graph.goal;
    panel.appendChild(field(t("goal_kind"), selectOf([["", t("no_goal")], ["event", t("goal_event")], ["order", t("goal_order")]], g ? g.kind : "", function (v) {
      graph.goal = v ? { kind: v, event: v === "event" ? ((g && g.event) || "") : undefined, window_days: (g && g.window_days) || 7, from: (g && g.from) || "entry", ends_journey: g ? g.ends_journey !== false : true } : null;
      if (graph.goal && v !== "event") { delete graph.goal.event; }
      render();
    }), null));
    if (!g) { return; }
    if (g.kind === "event") {
      panel.appendChild(field(t("event"), selectOf(eventOptions(false), g.event, function (v) { g.event = v; render(); }, t("choose"))));
    }
    panel.appendChild(field(t("window_days"), numberInput(g.window_days, 1, 90, function (v) { g.window_days = v; render(); })));
    panel.appendChild(field(t("goal_from"), selectOf([["entry", t("from_entry")], ["send", t("from_send")]], g.from || "entry", function (v) { g.from = v; render(); })));
    var ends = el("input", { type: "checkbox", id: "tp-goal-ends" });
    ends.checked = g.ends_journey !== false;
    ends.addEventListener("change", function () { g.ends_journey = ends.checked; render(); });
    panel.appendChild(el("div", { className: "tp-field" }, [el("label", { className: "tp-check", "for": "tp-goal-ends" }, [ends, " " + t("ends_journey")])]));
  }

  // ------------------------------------------------------------------ save / load
  function save() {
    if (hidden) { hidden.value = JSON.stringify(graph); }
  }
  function load(text) {
    try {
      var g = JSON.parse(text || "{}");
      graph = { nodes: g.nodes || [], edges: g.edges || [], goal: g.goal || null };
    } catch (e) { graph = { nodes: [], edges: [], goal: null }; }
    graph.nodes.forEach(function (n) { n.config = n.config || (DEFAULTS[n.type] ? DEFAULTS[n.type]() : {}); n.x = n.x || 0; n.y = n.y || 0; });
  }
  function readJSON(id, fallback) {
    var node = document.getElementById(id);
    if (!node) { return fallback; }
    try { return JSON.parse(node.textContent); } catch (e) { return fallback; }
  }

  function ready() {
    canvas = document.getElementById("tp-canvas");
    if (!canvas) { return; }
    S = readJSON("tp-journey-strings", {});
    CAT = readJSON("tp-journey-catalog", {});
    nodeErrors = readJSON("tp-journey-errors", {}) || {};
    hidden = document.getElementById("tp-graph");
    brandSelect = document.getElementById("id_brand");
    panel = document.getElementById("tp-panel");
    layer = canvas.querySelector(".tp-layer");
    svg = canvas.querySelector("svg");
    readonly = canvas.getAttribute("data-readonly") === "1";
    load(hidden.value);
    // palette: click adds a node below the others, or drag it onto the canvas
    document.querySelectorAll("#tp-palette [data-type]").forEach(function (b) {
      b.addEventListener("click", function () {
        var y = 24;
        graph.nodes.forEach(function (n) { y = Math.max(y, n.y + 120); });
        var x = 40 + (canvas.scrollLeft || 0);
        var node = addNode(b.getAttribute("data-type"), x, y);
        if (node) { focusNode(node.id); }
      });
      b.addEventListener("dragstart", function (ev) { ev.dataTransfer.setData("text/x-tp-node", b.getAttribute("data-type")); });
    });
    canvas.addEventListener("dragover", function (ev) { ev.preventDefault(); });
    canvas.addEventListener("drop", function (ev) {
      var type = ev.dataTransfer.getData("text/x-tp-node");
      if (!type) { return; }
      ev.preventDefault();
      var p = canvasPoint(ev);
      addNode(type, p.x - NODE_W / 2, p.y - 20);
    });
    canvas.addEventListener("click", function (ev) {
      if (ev.target.closest(".tp-node") || ev.target.closest(".tp-edge")) { return; }
      if (connecting) { connecting = null; setStatus(""); }
      selected = null; selectedEdge = -1;
      render();
    });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && connecting) { connecting = null; setStatus(""); render(); }
      if ((ev.key === "Delete") && selectedEdge >= 0 && document.activeElement === document.body) {
        graph.edges.splice(selectedEdge, 1); selectedEdge = -1; render();
      }
    });
    if (brandSelect) { brandSelect.addEventListener("change", function () { render(); }); }
    var form = hidden.form;
    if (form) { form.addEventListener("submit", function () { save(); }); }
    window.addEventListener("resize", drawEdges);
    render();
    var firstBad = Object.keys(nodeErrors)[0];
    if (firstBad && byId(firstBad)) { select(firstBad); }
    canvas.setAttribute("data-ready", "1");
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", ready); } else { ready(); }
})();
