/* The rule editor: a form per definition type (attribute, metric, bucket, cases,
   condition, preference, composite, manual) built from the rule language the server
   describes (/api/catalog/rules/language/), writing the rule document into the form's
   definition textarea (hidden), checked as it is edited (/api/catalog/rules/check/,
   messages beside the inputs), tried on a sample of the brand's people
   (/api/engine/rules/sample/), and shown as text (the text syntax) on demand.
   Also: the tag's values as a table, and searchable multi-selects (regions).
   Plain JavaScript, no external assets. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) { return; }
      if (key === "text") { node.textContent = value; }
      else if (key.slice(0, 2) === "on") { node.addEventListener(key.slice(2), value); }
      else if (key === "value") { node.value = value; }
      else if (key === "checked" || key === "selected" || key === "multiple") { node[key] = true; }
      else { node.setAttribute(key, value === true ? "" : value); }
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) { return; }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function select(options, current, attrs) {
    var node = h("select", attrs || {});
    var found = false;
    options.forEach(function (opt) {
      var o = h("option", { value: String(opt[0]), text: opt[1] });
      if (String(opt[0]) === String(current)) { o.selected = true; found = true; }
      node.appendChild(o);
    });
    if (!found && current !== undefined && current !== null && current !== "") {
      node.insertBefore(h("option", { value: String(current), text: String(current), selected: true }), node.firstChild);
    }
    if (!found && (current === undefined || current === null || current === "")) { node.selectedIndex = -1; }
    return node;
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) { return input.value; }
    var match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data };
      });
    });
  }

  function fmt(template, values) {
    return String(template).replace(/%\((\w+)\)s/g, function (_m, key) { return values[key]; });
  }

  function join(path, part) {
    if (part.charAt(0) === "[") { return path + part; }
    return path ? path + "." + part : part;
  }

  /* Hide the help text of a field's row (the field is replaced by a widget that explains itself). */
  function hideHelp(field) {
    var row = field.closest(".form-row") || field.parentNode;
    var help = row && row.querySelector(".help");
    if (help) { help.style.display = "none"; }
  }

  function replaceContents(target, source) {
    Object.keys(target).forEach(function (key) { delete target[key]; });
    Object.keys(source).forEach(function (key) { target[key] = source[key]; });
  }

  /* The document as stored: no empty where lists, no null bounds/defaults, no empty maps. */
  function cleaned(node) {
    if (Array.isArray(node)) { return node.map(cleaned); }
    if (!node || typeof node !== "object") { return node; }
    var out = {};
    Object.keys(node).forEach(function (key) {
      var value = node[key];
      if (value === undefined) { return; }
      if (value === null && (key === "min" || key === "max" || key === "default" || key === "map" || key === "window")) { return; }
      if (key === "where" && Array.isArray(value) && value.length === 0) { return; }
      if (key === "description" && !value) { return; }
      out[key] = cleaned(value);
    });
    return out;
  }

  function parseNumber(text) {
    var t = String(text).trim().replace(/，/g, ",");
    if (t === "") { return null; }
    var n = Number(t);
    return isNaN(n) ? t : n;
  }

  // -------------------------------------------------------------------------
  // Values table: the ValuesField textarea ("code | 中文 | English [| min | max]")

  function ValuesTable(textarea, valueType, T, onChange) {
    this.textarea = textarea;
    this.valueType = valueType;
    this.T = T;
    this.onChange = onChange || function () {};
    this.rows = this.parse(textarea.value);
    this.root = h("div", { "class": "tp-values-table", id: "tp-values-table" });
    textarea.hidden = true;
    textarea.parentNode.insertBefore(this.root, textarea.nextSibling);
    hideHelp(textarea);  // it explains the lines the table replaces
    this.render();
  }
  ValuesTable.prototype.parse = function (text) {
    var rows = [];
    String(text || "").split(/\r?\n/).forEach(function (line) {
      if (!line.trim()) { return; }
      var parts = line.split("|").map(function (p) { return p.trim(); });
      rows.push({ code: parts[0] || "", label: parts[1] || "", label_en: parts[2] || "",
        min: parts.length >= 5 ? parts[3] : "", max: parts.length >= 5 ? parts[4] : "", bounded: parts.length >= 5 });
    });
    return rows;
  };
  ValuesTable.prototype.serialize = function () {
    var number = this.valueType === "number";
    return this.rows.filter(function (r) { return r.code || r.label; }).map(function (r) {
      var parts = [r.code, r.label, r.label_en];
      if (number || r.bounded) { parts.push(r.min, r.max); }
      return parts.join(" | ");
    }).join("\n");
  };
  ValuesTable.prototype.values = function () {
    return this.rows.filter(function (r) { return r.code; }).map(function (r) {
      var item = { code: r.code, label: r.label };
      if (r.label_en) { item.label_en = r.label_en; }
      if (r.min !== "" && r.min !== undefined) { item.min = parseNumber(r.min); }
      if (r.max !== "" && r.max !== undefined) { item.max = parseNumber(r.max); }
      return item;
    });
  };
  ValuesTable.prototype.changed = function (rerender) {
    this.textarea.value = this.serialize();
    if (rerender) { this.render(); }
    this.onChange();
  };
  ValuesTable.prototype.render = function () {
    var self = this, T = this.T, number = this.valueType === "number";
    var head = [T.valueCode, T.valueLabel, T.valueLabelEn];
    if (number) { head.push(T.bucketMin, T.bucketMax); }
    head.push(T.order, "");
    var body = h("tbody");
    this.rows.forEach(function (row, i) {
      function cell(key, width, type) {
        return h("td", {}, [h("input", {
          type: type || "text", value: row[key], size: width, "data-col": key, "aria-label": key,
          oninput: function (e) { row[key] = e.target.value; self.changed(false); }
        })]);
      }
      var cells = [cell("code", 14), cell("label", 14), cell("label_en", 14)];
      if (number) { cells.push(cell("min", 6, "number"), cell("max", 6, "number")); }
      cells.push(h("td", { "class": "tp-re-order" }, [
        h("button", { type: "button", "class": "tp-re-small", title: T.moveUp, disabled: i === 0,
          onclick: function () { self.rows.splice(i - 1, 0, self.rows.splice(i, 1)[0]); self.changed(true); } }, ["↑"]),
        h("button", { type: "button", "class": "tp-re-small", title: T.moveDown, disabled: i === self.rows.length - 1,
          onclick: function () { self.rows.splice(i + 1, 0, self.rows.splice(i, 1)[0]); self.changed(true); } }, ["↓"])
      ]));
      cells.push(h("td", {}, [h("button", { type: "button", "class": "tp-re-small tp-re-remove", title: T.remove,
        onclick: function () { self.rows.splice(i, 1); self.changed(true); } }, ["✕"])]));
      body.appendChild(h("tr", { "data-row": i }, cells));
    });
    this.root.innerHTML = "";
    if (!this.rows.length) {
      this.root.appendChild(h("span", { "class": "tp-muted", text: this.valueType === "boolean" ? T.noValuesBoolean : T.noValues }));
    }
    if (this.rows.length) this.root.appendChild(h("table", {}, [
      h("thead", {}, [h("tr", {}, head.map(function (t) { return h("th", { text: t }); }))]), body
    ]));
    this.root.appendChild(h("button", { type: "button", "class": "tp-re-add", id: "tp-values-add",
      onclick: function () { self.rows.push({ code: "", label: "", label_en: "", min: "", max: "" }); self.changed(true); } },
      ["＋ " + T.addValue]));
  };

  // -------------------------------------------------------------------------
  // Searchable multi-select (regions)

  function SearchableSelect(selectNode, T) {
    var wrap = h("div", { "class": "tp-msel" });
    var chips = h("div", { "class": "tp-msel-chips" });
    var search = h("input", { type: "search", "class": "tp-msel-search", placeholder: T.searchRegions,
      "aria-label": T.searchRegions });
    var list = h("div", { "class": "tp-msel-list", role: "listbox" });
    var count = h("span", { "class": "tp-muted tp-msel-count" });
    selectNode.hidden = true;
    selectNode.parentNode.insertBefore(wrap, selectNode.nextSibling);
    wrap.appendChild(chips);
    wrap.appendChild(h("div", { "class": "tp-msel-bar" }, [search, count]));
    wrap.appendChild(list);
    function fire() { selectNode.dispatchEvent(new Event("change", { bubbles: true })); }
    function renderChips() {
      chips.innerHTML = "";
      var n = 0;
      Array.prototype.forEach.call(selectNode.options, function (opt) {
        if (!opt.selected) { return; }
        n += 1;
        chips.appendChild(h("span", { "class": "tp-msel-chip", "data-value": opt.value }, [opt.text, " ",
          h("button", { type: "button", title: T.remove, "aria-label": T.remove + " " + opt.text,
            onclick: function () { opt.selected = false; renderChips(); renderList(); fire(); } }, ["✕"])]));
      });
      if (!n) { chips.appendChild(h("span", { "class": "tp-muted", text: T.noneChosen })); }
      count.textContent = fmt(T.chosen, { n: n });
    }
    function renderList() {
      var q = search.value.trim().toLowerCase();
      list.innerHTML = "";
      Array.prototype.forEach.call(selectNode.options, function (opt) {
        if (q && opt.text.toLowerCase().indexOf(q) === -1 && opt.value.toLowerCase().indexOf(q) === -1) { return; }
        var box = h("input", { type: "checkbox", value: opt.value, checked: opt.selected,
          onchange: function () { opt.selected = box.checked; renderChips(); fire(); } });
        list.appendChild(h("label", { "class": "tp-msel-option" }, [box, " " + opt.text]));
      });
    }
    search.addEventListener("input", renderList);
    renderChips();
    renderList();
  }

  // -------------------------------------------------------------------------
  // The rule editor

  function RuleEditor(root, config) {
    this.root = root;
    this.config = config;
    this.T = config.strings;
    this.textarea = document.getElementById(config.target);
    this.valueType = config.value_type || "";
    this.kind = config.kind || "";
    this.lastText = "";
    this.errors = {};
    this.timer = null;
    this.serial = 0;
  }

  RuleEditor.prototype.start = function (language) {
    var self = this, T = this.T;
    this.lang = language;
    this.tags = language.tags || [];
    this.attrTypes = {};
    language.attributes.forEach(function (a) { self.attrTypes[a.name] = a.type; });
    this.ops = {};
    language.operators.forEach(function (o) { self.ops[o.code] = o; });
    var raw = this.textarea.value.trim();
    this.doc = null;
    if (raw) {
      try { this.doc = JSON.parse(raw); } catch (e) { this.doc = null; }
    } else {
      this.doc = {};
    }
    if (this.doc === null || typeof this.doc !== "object" || Array.isArray(this.doc)) {
      this.root.appendChild(h("p", { "class": "errornote", text: T.notJson }));
      return;
    }
    this.textarea.hidden = true;
    hideHelp(this.textarea);  // it shows the JSON the form replaces
    this.status = h("div", { "class": "tp-re-status", id: "tp-re-status", "aria-live": "polite" });
    this.formBox = h("div", { "class": "tp-re-form", id: "tp-re-form" });
    this.textBox = h("div", { "class": "tp-re-text", id: "tp-re-text", hidden: true });
    this.textInput = h("textarea", { rows: 8, cols: 80, id: "tp-re-text-input", "class": "vLargeTextField",
      spellcheck: "false", "data-path": "text",
      oninput: function () { self.scheduleTextCheck(); } });
    this.textBox.appendChild(h("p", { "class": "help", text: T.textHelp }));
    this.textBox.appendChild(this.textInput);
    this.advanced = h("button", { type: "button", "class": "tp-re-toggle", id: "tp-re-advanced", "aria-pressed": "false",
      onclick: function () { self.toggleText(); } }, [T.advanced]);
    this.sampleButton = h("button", { type: "button", id: "tp-re-sample", "class": "tp-re-sample",
      onclick: function () { self.trySample(); } }, [T.trySample]);
    this.sampleBox = h("div", { "class": "tp-re-sample-result", id: "tp-re-sample-result", "aria-live": "polite" });
    this.root.appendChild(h("div", { "class": "tp-re-bar" }, [this.advanced, this.sampleButton]));
    this.root.appendChild(this.formBox);
    this.root.appendChild(this.textBox);
    this.root.appendChild(this.status);
    this.root.appendChild(this.sampleBox);
    this.mode = this.modeOf(this.doc);
    this.render();
    if (this.doc.type) { this.check(); }
  };

  RuleEditor.prototype.modeOf = function (doc) {
    if (!doc || !doc.type) { return ""; }
    if (this.kind === "composite" && (doc.type === "condition" || doc.type === "cases")) { return "composite"; }
    return doc.type;
  };

  RuleEditor.prototype.codes = function () {
    if (this.valueType === "boolean") { return [[true, this.T.yes], [false, this.T.no]]; }
    var values = this.valuesTable ? this.valuesTable.values() : (this.config.values || []);
    return values.map(function (v) { return [v.code, v.label ? v.label + " (" + v.code + ")" : v.code]; });
  };

  RuleEditor.prototype.typedCode = function (text) {
    if (this.valueType === "boolean") { return text === "true"; }
    return text;
  };

  // -- changes --------------------------------------------------------------

  RuleEditor.prototype.changed = function (rerender) {
    this.textarea.value = JSON.stringify(cleaned(this.doc), null, 2);
    if (rerender) { this.render(); }
    this.scheduleCheck();
  };

  RuleEditor.prototype.scheduleCheck = function () {
    var self = this;
    clearTimeout(this.timer);
    this.root.setAttribute("data-valid", "");
    this.status.className = "tp-re-status tp-re-pending";
    this.status.textContent = this.T.checking;
    this.timer = setTimeout(function () { self.check(); }, 400);
  };

  RuleEditor.prototype.body = function (extra) {
    var body = { brand: this.config.brand, value_type: this.valueType || undefined, kind: this.kind || undefined };
    if (this.config.tag) { body.tag = this.config.tag; }
    if (this.valuesTable) { body.values = this.valuesTable.values(); }
    Object.keys(extra).forEach(function (k) { body[k] = extra[k]; });
    return body;
  };

  RuleEditor.prototype.check = function () {
    var self = this, serial = ++this.serial;
    if (!this.doc.type) { this.showStatus(null, {}); return Promise.resolve(); }
    return postJSON(this.config.check_url, this.body({ definition: cleaned(this.doc) })).then(function (r) {
      if (serial !== self.serial) { return; }
      if (r.status === 200) {
        self.lastText = r.data.text;
        self.showStatus(r.data, {});
      } else if (r.status === 400) {
        self.showStatus(null, r.data);
      } else {
        self.showStatus(null, { definition: [r.data.detail || self.T.failed] });
      }
    }).catch(function () {
      if (serial === self.serial) { self.showStatus(null, { definition: [self.T.network] }); }
    });
  };

  RuleEditor.prototype.showStatus = function (valid, errors) {
    var self = this, T = this.T;
    this.errors = errors;
    this.root.querySelectorAll(".tp-re-error").forEach(function (node) { node.remove(); });
    this.root.querySelectorAll(".tp-re-invalid").forEach(function (node) { node.classList.remove("tp-re-invalid"); });
    var keys = Object.keys(errors);
    this.status.innerHTML = "";
    if (valid) {
      this.status.className = "tp-re-status tp-re-ok";
      this.root.setAttribute("data-valid", "true");
      this.status.appendChild(h("span", { text: "✓ " + T.valid }));
      this.status.appendChild(h("pre", { "class": "tp-re-readable", id: "tp-re-readable", text: valid.text }));
      return;
    }
    if (!keys.length) {
      this.status.className = "tp-re-status";
      this.root.setAttribute("data-valid", "");
      this.status.textContent = T.chooseType;
      return;
    }
    this.root.setAttribute("data-valid", "false");
    this.status.className = "tp-re-status tp-re-bad";
    var count = 0, general = [];
    keys.forEach(function (path) {
      (errors[path] || []).forEach(function (message) {
        count += 1;
        var anchor = self.anchorFor(path);
        if (anchor) {
          anchor.classList.add("tp-re-invalid");
          anchor.insertAdjacentElement("afterend", h("span", { "class": "tp-re-error", "data-for": path, role: "alert", text: message }));
        } else {
          general.push(path === "definition" || path === "text" ? message : path + ": " + message);
        }
      });
    });
    this.status.appendChild(h("span", { text: "✗ " + fmt(T.problems, { n: count }) }));
    if (general.length) {
      this.status.appendChild(h("ul", { "class": "tp-re-general" }, general.map(function (m) { return h("li", { text: m }); })));
    }
  };

  /* The input a path's message goes beside: the node with that path, else its nearest parent's. */
  RuleEditor.prototype.anchorFor = function (path) {
    var scope = this.textBox.hidden ? this.formBox : this.textBox;
    if (path === "text") { return this.textBox.hidden ? null : this.textInput; }
    var p = path;
    while (p) {
      var node = scope.querySelector('[data-path="' + p.replace(/"/g, '\\"') + '"]');
      if (node && node.offsetParent !== null) { return node; }
      var cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      if (cut <= 0) { break; }
      p = p.slice(0, cut);
    }
    if (path === "type" || path === "definition" || path === "") {
      return scope.querySelector('[data-path="type"]');
    }
    return null;
  };

  // -- advanced text ----------------------------------------------------------

  RuleEditor.prototype.toggleText = function () {
    var showing = this.textBox.hidden;
    this.textBox.hidden = !showing;
    this.formBox.hidden = showing;
    this.advanced.setAttribute("aria-pressed", showing ? "true" : "false");
    this.advanced.textContent = showing ? this.T.backToForm : this.T.advanced;
    if (showing) {
      this.textInput.value = this.lastText || "";
      var self = this;
      this.check().then(function () { if (self.lastText) { self.textInput.value = self.lastText; } });
    } else {
      this.mode = this.modeOf(this.doc);
      this.render();
      this.check();
    }
  };

  RuleEditor.prototype.scheduleTextCheck = function () {
    var self = this;
    clearTimeout(this.timer);
    this.root.setAttribute("data-valid", "");
    this.status.className = "tp-re-status tp-re-pending";
    this.status.textContent = this.T.checking;
    this.timer = setTimeout(function () { self.checkText(); }, 500);
  };

  RuleEditor.prototype.checkText = function () {
    var self = this, serial = ++this.serial;
    return postJSON(this.config.check_url, this.body({ text: this.textInput.value })).then(function (r) {
      if (serial !== self.serial) { return; }
      if (r.status === 200) {
        self.doc = r.data.definition;
        self.mapRows = null;
        self.lastText = r.data.text;
        self.textarea.value = JSON.stringify(cleaned(self.doc), null, 2);
        self.showStatus(r.data, {});
      } else if (r.status === 400) {
        self.showStatus(null, r.data);
      } else {
        self.showStatus(null, { definition: [r.data.detail || self.T.failed] });
      }
    });
  };

  // -- sample -----------------------------------------------------------------

  RuleEditor.prototype.trySample = function () {
    var self = this, T = this.T;
    this.sampleBox.innerHTML = "";
    this.sampleBox.appendChild(h("p", { "class": "tp-muted", text: T.sampling }));
    this.sampleButton.disabled = true;
    postJSON(this.config.sample_url, this.body({ definition: cleaned(this.doc) })).then(function (r) {
      self.sampleButton.disabled = false;
      self.sampleBox.innerHTML = "";
      if (r.status !== 200) {
        var messages = [];
        Object.keys(r.data || {}).forEach(function (k) {
          var v = r.data[k];
          (Array.isArray(v) ? v : [v]).forEach(function (m) { messages.push(k === "detail" || k === "definition" ? m : k + ": " + m); });
        });
        self.sampleBox.appendChild(h("p", { "class": "errornote", text: messages.join(" ") || T.failed }));
        if (r.status === 400) { self.showStatus(null, r.data); }
        return;
      }
      self.renderSample(r.data);
    }).catch(function () {
      self.sampleButton.disabled = false;
      self.sampleBox.innerHTML = "";
      self.sampleBox.appendChild(h("p", { "class": "errornote", text: T.network }));
    });
  };

  RuleEditor.prototype.renderSample = function (data) {
    var T = this.T, box = this.sampleBox;
    var pct = function (x) { return (Math.round(x * 1000) / 10) + "%"; };
    box.appendChild(h("p", { id: "tp-re-sample-summary" }, [
      fmt(data.sampled ? T.sampleOf : T.sampleAll, { n: data.population.toLocaleString() }), " · ",
      T.coverage + " ", h("strong", { id: "tp-re-sample-coverage", text: pct(data.coverage) }), " · ",
      fmt(T.seconds, { s: data.seconds })
    ]));
    var total = data.population || 1;
    function table(heading, rows, id) {
      var max = Math.max.apply(null, [1].concat(rows.map(function (r) { return r[1]; })));
      box.appendChild(h("table", { "class": "tp-re-distribution", id: id }, [
        h("thead", {}, [h("tr", {}, [h("th", { text: heading }), h("th", { text: T.people }), h("th", { text: T.share })])]),
        h("tbody", {}, rows.map(function (r) {
          return h("tr", {}, [h("td", { text: r[0] }), h("td", { "class": "tp-num", text: r[1].toLocaleString() }),
            h("td", {}, [h("span", { "class": "tp-re-barline", style: "width:" + Math.round(160 * r[1] / max) + "px" }),
              " " + pct(r[1] / total)])]);
        }))
      ]));
    }
    var byValue = data.values.map(function (v) { return [v.label === v.value ? v.value : v.label + " (" + v.value + ")", v.count]; });
    if (data.value_type === "number") {
      if (data.stats) { box.appendChild(h("p", { "class": "tp-muted", text: fmt(T.stats, data.stats) })); }
      table(T.range, data.histogram.map(function (bar) {
        return [bar.low === bar.high ? String(bar.low) : bar.low + " – " + bar.high, bar.count];
      }), "tp-re-distribution");
      if (byValue.length) { table(T.value, byValue, "tp-re-distribution-values"); }
    } else {
      table(T.value, byValue, "tp-re-distribution");
    }
  };

  // -- rendering ----------------------------------------------------------------

  RuleEditor.prototype.render = function () {
    var self = this, T = this.T;
    this.formBox.innerHTML = "";
    var types = this.lang.types.filter(function (t) { return t.code !== "manual" || self.kind === "manual" || self.mode === "manual"; });
    var typeSelect = select(types.map(function (t) { return [t.code, t.label]; }), this.mode,
      { id: "tp-re-type", "data-path": "type", "aria-label": T.ruleType,
        onchange: function (e) { self.setMode(e.target.value); } });
    if (!this.mode) { typeSelect.insertBefore(h("option", { value: "", text: T.chooseTypeOption, selected: true }), typeSelect.firstChild); }
    this.formBox.appendChild(this.row(T.ruleType, typeSelect));
    var doc = this.doc, mode = this.mode;
    if (!mode) { this.sampleButton.disabled = true; return; }
    this.sampleButton.disabled = mode === "manual" || !this.config.sample_url;
    if (mode === "attribute") {
      this.formBox.appendChild(this.row(T.attribute, this.attributeSelect(doc, "attribute", "attribute", null)));
      this.formBox.appendChild(this.row(T.map, this.mapEditor(doc, "map")));
    } else if (mode === "metric") {
      this.formBox.appendChild(this.metricBlock(doc, "metric", "metric"));
    } else if (mode === "bucket") {
      this.formBox.appendChild(this.metricBlock(doc, "metric", "metric"));
      this.formBox.appendChild(this.row(T.buckets, this.bucketsEditor(doc)));
    } else if (mode === "cases" || (mode === "composite" && doc.type === "cases")) {
      this.formBox.appendChild(this.casesEditor(doc, mode === "composite"));
    } else if (mode === "condition" || mode === "composite") {
      this.formBox.appendChild(this.row(T.condition, this.condEditor(doc, "condition", "condition", mode === "composite")));
    } else if (mode === "preference") {
      this.formBox.appendChild(this.row(T.pick, select(this.lang.picks.map(function (p) { return [p.code, p.label]; }), doc.pick,
        { "data-path": "pick", "class": "tp-re-pick", onchange: function (e) { doc.pick = e.target.value; self.changed(false); } })));
      this.formBox.appendChild(this.row(T.source, this.sourceFieldPicker(doc, "", true)));
      this.formBox.appendChild(this.row(T.where, this.whereEditor(doc, "where", doc.source)));
      this.formBox.appendChild(this.row(T.window, this.windowEditor(doc, "window")));
      this.formBox.appendChild(this.row(T.map, this.mapEditor(doc, "map")));
    } else if (mode === "manual") {
      this.formBox.appendChild(h("p", { "class": "help", text: T.manualHelp }));
    }
    var description = h("input", { type: "text", size: 60, value: doc.description || "", "data-path": "description",
      placeholder: T.descriptionPlaceholder,
      oninput: function (e) { doc.description = e.target.value; self.changed(false); } });
    this.formBox.appendChild(this.row(T.ruleNote, description));
  };

  RuleEditor.prototype.row = function (label, control) {
    return h("div", { "class": "tp-re-row" }, [h("span", { "class": "tp-re-label", text: label }), h("div", { "class": "tp-re-control" }, [control])]);
  };

  RuleEditor.prototype.defaultLeaf = function (tagsOnly) {
    if (tagsOnly || !this.lang.attributes.length) {
      var own = this.config.tag_code;
      var tag = this.tags.filter(function (t) { return t.code !== own; })[0];
      return { tag: tag ? tag.code : "", op: "eq", value: tag && tag.value_type === "boolean" ? true : "" };
    }
    return { attribute: this.lang.attributes[0].name, op: "eq", value: "" };
  };

  RuleEditor.prototype.defaultMetric = function () {
    return { agg: "count", source: "events", where: [{ field: "type", op: "eq", value: "" }], window: { last_days: 90 } };
  };

  RuleEditor.prototype.setMode = function (mode) {
    var codes = this.codes(), first = codes.length ? codes[0][0] : "";
    var doc;
    if (mode === "attribute") { doc = { type: "attribute", attribute: this.lang.attributes[0].name }; }
    else if (mode === "metric") { doc = { type: "metric", metric: this.defaultMetric() }; }
    else if (mode === "bucket") {
      doc = { type: "bucket", metric: this.defaultMetric(), buckets: (codes.length ? codes : [["", ""]]).map(function (c) { return { value: c[0], min: null, max: null }; }) };
    } else if (mode === "cases") { doc = { type: "cases", cases: [{ value: first, when: this.defaultLeaf(false) }] }; }
    else if (mode === "condition") { doc = { type: "condition", condition: { all: [this.defaultLeaf(false)] } }; }
    else if (mode === "composite") {
      doc = this.valueType === "enum"
        ? { type: "cases", cases: [{ value: first, when: this.defaultLeaf(true) }] }
        : { type: "condition", condition: { all: [this.defaultLeaf(true)] } };
    } else if (mode === "preference") {
      doc = { type: "preference", pick: "most_frequent", source: "orders", field: "category", window: { last_days: 365 } };
    } else if (mode === "manual") { doc = { type: "manual" }; }
    else { doc = {}; }
    if (this.doc.description) { doc.description = this.doc.description; }
    this.mapRows = null;
    this.doc = doc;
    this.mode = mode;
    this.changed(true);
  };

  // attribute picker (profile attributes), optionally only of one type
  RuleEditor.prototype.attributeSelect = function (node, key, path, onlyType) {
    var self = this;
    var attrs = this.lang.attributes.filter(function (a) { return !onlyType || a.type === onlyType; });
    return select(attrs.map(function (a) { return [a.name, a.label]; }), node[key],
      { "data-path": path, "class": "tp-re-attribute", onchange: function (e) { node[key] = e.target.value; self.changed(true); } });
  };

  RuleEditor.prototype.tagSelect = function (node, path, onlyType) {
    var self = this;
    var tags = this.tags.filter(function (t) { return (!onlyType || t.value_type === onlyType) && t.code !== self.config.tag_code; });
    return select(tags.map(function (t) { return [t.code, t.name + " (" + t.code + ")"]; }), node.tag,
      { "data-path": join(path, "tag"), "class": "tp-re-tag",
        onchange: function (e) {
          node.tag = e.target.value;
          var tag = self.tagInfo(node.tag);
          if (node.op !== undefined) { node.op = "eq"; node.value = tag && tag.value_type === "boolean" ? true : (tag && tag.value_type === "number" ? 0 : ""); }
          self.changed(true);
        } });
  };

  RuleEditor.prototype.tagInfo = function (code) {
    for (var i = 0; i < this.tags.length; i++) { if (this.tags[i].code === code) { return this.tags[i]; } }
    return null;
  };

  RuleEditor.prototype.fieldsOf = function (source) {
    var found = this.lang.sources.filter(function (s) { return s.name === source; })[0];
    return found ? found.fields : [];
  };

  RuleEditor.prototype.fieldType = function (source, field) {
    if (typeof field === "string" && field.indexOf("properties.") === 0) { return "any"; }
    var f = this.fieldsOf(source).filter(function (x) { return x.name === field; })[0];
    return f ? f.type : "any";
  };

  // source + field (metrics, preferences); key names on node: source, field
  RuleEditor.prototype.sourceFieldPicker = function (node, path, withField, numericOnly) {
    var self = this, T = this.T;
    var wrap = h("span", { "class": "tp-re-inline" });
    wrap.appendChild(select(this.lang.sources.map(function (s) { return [s.name, s.label]; }), node.source,
      { "data-path": join(path, "source"), "class": "tp-re-source", "aria-label": T.source,
        onchange: function (e) {
          node.source = e.target.value;
          if (node.field !== undefined) {
            var fields = self.fieldsOf(node.source).filter(function (f) { return !numericOnly || f.type === "number"; });
            node.field = fields.length ? fields[0].name : "";
          }
          (node.where || []).length = 0;
          self.changed(true);
        } }));
    if (withField) {
      var fields = this.fieldsOf(node.source).filter(function (f) { return !numericOnly || f.type === "number"; });
      var options = fields.map(function (f) { return [f.name, f.label]; });
      options.push(["properties.", T.propertyField]);
      var isProperty = typeof node.field === "string" && node.field.indexOf("properties.") === 0;
      var fieldSelect = select(options, isProperty ? "properties." : node.field,
        { "data-path": join(path, "field"), "class": "tp-re-field", "aria-label": T.field,
          onchange: function (e) { node.field = e.target.value === "properties." ? "properties." : e.target.value; self.changed(true); } });
      wrap.appendChild(document.createTextNode(" · " + T.field + " "));
      wrap.appendChild(fieldSelect);
      if (isProperty) {
        wrap.appendChild(h("input", { type: "text", size: 14, "class": "tp-re-property", value: node.field.slice(11),
          placeholder: T.propertyKey, "aria-label": T.propertyKey,
          oninput: function (e) { node.field = "properties." + e.target.value.trim(); self.changed(false); } }));
      }
    }
    return wrap;
  };

  // METRIC editor: node[key] is the metric
  RuleEditor.prototype.metricBlock = function (parent, key, path) {
    var self = this, T = this.T;
    var metric = parent[key];
    if (!metric || typeof metric !== "object") { metric = parent[key] = this.defaultMetric(); }
    var kind = metric.agg !== undefined ? "agg" : metric.days_since !== undefined ? "days_since"
      : metric.attribute !== undefined ? "attribute" : metric.tag !== undefined ? "tag" : "agg";
    var box = h("div", { "class": "tp-re-metric", "data-path": path });
    var kinds = [["agg", T.metricAgg], ["days_since", T.metricDays], ["attribute", T.metricAttribute]];
    if (this.tags.some(function (t) { return t.value_type === "number"; })) { kinds.push(["tag", T.metricTag]); }
    box.appendChild(this.row(T.metric, select(kinds, kind, { "class": "tp-re-metric-kind", "aria-label": T.metric,
      onchange: function (e) {
        var k = e.target.value, fresh;
        if (k === "agg") { fresh = self.defaultMetric(); }
        else if (k === "days_since") { fresh = { days_since: "last", source: "events", where: [{ field: "type", op: "eq", value: "" }] }; }
        else if (k === "attribute") {
          var numbers = self.lang.attributes.filter(function (a) { return a.type === "number"; });
          fresh = { attribute: numbers.length ? numbers[0].name : "" };
        } else {
          var tags = self.tags.filter(function (t) { return t.value_type === "number"; });
          fresh = { tag: tags.length ? tags[0].code : "" };
        }
        replaceContents(metric, fresh);
        self.changed(true);
      } })));
    if (kind === "agg") {
      var aggs = this.lang.aggregations;
      var agg = aggs.filter(function (a) { return a.code === metric.agg; })[0];
      box.appendChild(this.row(T.aggregation, select(aggs.map(function (a) { return [a.code, a.label]; }), metric.agg,
        { "data-path": join(path, "agg"), "class": "tp-re-agg",
          onchange: function (e) {
            metric.agg = e.target.value;
            var a = aggs.filter(function (x) { return x.code === metric.agg; })[0];
            if (a && a.field === "none") { delete metric.field; }
            else {
              var fields = self.fieldsOf(metric.source).filter(function (f) { return a.field !== "number" || f.type === "number"; });
              if (metric.field === undefined || (a.field === "number" && self.fieldType(metric.source, metric.field) === "string")) {
                metric.field = fields.length ? fields[0].name : "";
              }
            }
            self.changed(true);
          } })));
      var needsField = agg && agg.field !== "none";
      box.appendChild(this.row(needsField ? T.sourceAndField : T.source,
        this.sourceFieldPicker(metric, path, needsField, agg && agg.field === "number")));
      if (!metric.where) { metric.where = []; }
      box.appendChild(this.row(T.where, this.whereEditor(metric, join(path, "where"), metric.source)));
      box.appendChild(this.row(T.window, this.windowEditor(metric, join(path, "window"))));
    } else if (kind === "days_since") {
      box.appendChild(this.row(T.daysSince, select(this.lang.days_since.map(function (d) { return [d.code, d.label]; }), metric.days_since,
        { "data-path": join(path, "days_since"), "class": "tp-re-days",
          onchange: function (e) { metric.days_since = e.target.value; self.changed(false); } })));
      box.appendChild(this.row(T.source, this.sourceFieldPicker(metric, path, false)));
      if (!metric.where) { metric.where = []; }
      box.appendChild(this.row(T.where, this.whereEditor(metric, join(path, "where"), metric.source)));
    } else if (kind === "attribute") {
      box.appendChild(this.row(T.attribute, this.attributeSelect(metric, "attribute", join(path, "attribute"), "number")));
    } else {
      box.appendChild(this.row(T.tag, this.tagSelect(metric, path, "number")));
    }
    return box;
  };

  // where: [PRED]
  RuleEditor.prototype.whereEditor = function (node, path, source) {
    var self = this, T = this.T;
    if (!Array.isArray(node.where)) { node.where = []; }
    var list = node.where;
    var box = h("div", { "class": "tp-re-where", "data-path": path });
    list.forEach(function (pred, i) {
      var ppath = join(path, "[" + i + "]");
      var fields = self.fieldsOf(source);
      var options = fields.map(function (f) { return [f.name, f.label]; });
      options.push(["properties.", T.propertyField]);
      var isProperty = typeof pred.field === "string" && pred.field.indexOf("properties.") === 0;
      var line = h("div", { "class": "tp-re-pred", "data-path": ppath }, [
        select(options, isProperty ? "properties." : pred.field, { "data-path": join(ppath, "field"), "class": "tp-re-pred-field",
          "aria-label": T.field,
          onchange: function (e) { pred.field = e.target.value; pred.op = "eq"; pred.value = ""; self.changed(true); } })
      ]);
      if (isProperty) {
        line.appendChild(h("input", { type: "text", size: 12, value: pred.field.slice(11), placeholder: T.propertyKey,
          "aria-label": T.propertyKey,
          oninput: function (e) { pred.field = "properties." + e.target.value.trim(); self.changed(false); } }));
      }
      var kind = self.fieldType(source, pred.field);
      var choices = null;
      if (pred.field === "type" && source === "events") { choices = self.lang.event_types.map(function (t) { return [t.code, t.label]; }); }
      if (pred.field === "channel") { choices = self.lang.channels.map(function (c) { return [c.code, c.label]; }); }
      self.comparison(line, pred, ppath, kind, choices);
      line.appendChild(h("button", { type: "button", "class": "tp-re-small tp-re-remove", title: T.remove,
        onclick: function () { list.splice(i, 1); self.changed(true); } }, ["✕"]));
      box.appendChild(line);
    });
    box.appendChild(h("button", { type: "button", "class": "tp-re-add tp-re-add-pred",
      onclick: function () { list.push({ field: source === "events" ? "type" : "category", op: "eq", value: "" }); self.changed(true); } },
      ["＋ " + T.addFilter]));
    return box;
  };

  // WINDOW
  RuleEditor.prototype.windowEditor = function (node, path) {
    var self = this, T = this.T;
    var w = node.window;
    var kind = !w ? "" : w.last_days !== undefined ? "last_days" : w.between !== undefined ? "between" : "";
    var box = h("span", { "class": "tp-re-inline tp-re-window", "data-path": path });
    box.appendChild(select([["", T.anyTime], ["last_days", T.lastDays], ["between", T.betweenDates]], kind,
      { "class": "tp-re-window-kind", "aria-label": T.window,
        onchange: function (e) {
          var k = e.target.value;
          if (!k) { delete node.window; }
          else if (k === "last_days") { node.window = { last_days: 90 }; }
          else { node.window = { between: ["", ""] }; }
          self.changed(true);
        } }));
    if (kind === "last_days") {
      var listId = "tp-re-days-presets";
      if (!document.getElementById(listId)) {
        document.body.appendChild(h("datalist", { id: listId }, this.lang.window_presets.map(function (d) { return h("option", { value: String(d) }); })));
      }
      box.appendChild(h("input", { type: "number", min: 1, step: 1, size: 5, "class": "tp-re-days-input", list: listId,
        value: w.last_days, "data-path": join(path, "last_days"), "aria-label": T.days,
        oninput: function (e) { var n = parseNumber(e.target.value); w.last_days = typeof n === "number" ? n : e.target.value; self.changed(false); } }));
      box.appendChild(document.createTextNode(" " + T.daysUnit));
    } else if (kind === "between") {
      [0, 1].forEach(function (i) {
        if (i) { box.appendChild(document.createTextNode(" " + T.to + " ")); }
        box.appendChild(h("input", { type: "date", value: w.between[i] || "", "data-path": join(join(path, "between"), "[" + i + "]"),
          "aria-label": i ? T.end : T.start,
          onchange: function (e) { w.between[i] = e.target.value; self.changed(false); } }));
      });
    }
    return box;
  };

  // op + operand of a comparison node ({op, value}); kind: number, string, any; choices: [[value, label]]
  RuleEditor.prototype.comparison = function (line, node, path, kind, choices) {
    var self = this, T = this.T;
    var codes = kind === "number" ? this.lang.number_ops : kind === "string" ? this.lang.string_ops
      : this.lang.operators.map(function (o) { return o.code; });
    line.appendChild(select(codes.map(function (c) { return [c, self.ops[c].label]; }), node.op,
      { "data-path": join(path, "op"), "class": "tp-re-op", "aria-label": T.operator,
        onchange: function (e) {
          node.op = e.target.value;
          var operand = self.ops[node.op].operand;
          if (operand === "two") { node.value = [0, 0]; }
          else if (operand === "list") { node.value = []; }
          else if (operand === "flag") { node.value = true; }
          else if (operand === "number") { node.value = 0; }
          else { node.value = choices && choices.length ? choices[0][0] : ""; }
          self.changed(true);
        } }));
    var op = this.ops[node.op];
    var operand = op ? op.operand : "one";
    var vpath = join(path, "value");
    function typed(text) {
      if (kind === "number") { return parseNumber(text); }
      return text;
    }
    if (operand === "flag") {
      line.appendChild(select([[true, T.yes], [false, T.no]], node.value === undefined ? true : node.value,
        { "data-path": vpath, "class": "tp-re-value", onchange: function (e) { node.value = e.target.value === "true"; self.changed(false); } }));
    } else if (operand === "two") {
      if (!Array.isArray(node.value)) { node.value = [0, 0]; }
      [0, 1].forEach(function (i) {
        if (i) { line.appendChild(document.createTextNode(" " + T.and + " ")); }
        line.appendChild(h("input", { type: "number", size: 6, value: node.value[i], "data-path": i ? vpath : vpath, "class": "tp-re-value",
          "aria-label": i ? T.high : T.low,
          oninput: function (e) { node.value[i] = parseNumber(e.target.value); self.changed(false); } }));
      });
    } else if (operand === "list") {
      if (!Array.isArray(node.value)) { node.value = []; }
      if (choices && choices.length) {
        var group = h("span", { "class": "tp-re-choices", "data-path": vpath });
        choices.forEach(function (c) {
          var box = h("input", { type: "checkbox", value: String(c[0]),
            checked: node.value.some(function (v) { return String(v) === String(c[0]); }),
            onchange: function () {
              var kept = node.value.filter(function (v) { return String(v) !== String(c[0]); });
              if (box.checked) { kept.push(c[0]); }
              node.value.length = 0;
              kept.forEach(function (v) { node.value.push(v); });
              self.changed(false);
            } });
          group.appendChild(h("label", { "class": "tp-re-choice" }, [box, " " + c[1]]));
        });
        line.appendChild(group);
      } else {
        line.appendChild(h("input", { type: "text", size: 24, value: node.value.join(", "), "data-path": vpath, "class": "tp-re-value",
          placeholder: T.listPlaceholder,
          oninput: function (e) {
            var items = e.target.value.split(/[,，]/).map(function (s) { return s.trim(); }).filter(Boolean);
            node.value = items.map(typed);
            self.changed(false);
          } }));
      }
    } else if (choices && choices.length && operand === "one") {
      line.appendChild(select(choices, node.value, { "data-path": vpath, "class": "tp-re-value", "aria-label": T.value,
        onchange: function (e) {
          var match = choices.filter(function (c) { return String(c[0]) === e.target.value; })[0];
          node.value = match ? match[0] : e.target.value;
          self.changed(false);
        } }));
    } else {
      var numberInput = kind === "number" || operand === "number";
      line.appendChild(h("input", { type: numberInput ? "number" : "text", size: numberInput ? 8 : 16,
        value: node.value === undefined ? "" : node.value, "data-path": vpath, "class": "tp-re-value", "aria-label": T.value,
        oninput: function (e) { node.value = numberInput ? parseNumber(e.target.value) : e.target.value; self.changed(false); } }));
    }
  };

  // COND editor: parent[key] is the condition
  RuleEditor.prototype.condEditor = function (parent, key, path, tagsOnly) {
    var self = this, T = this.T;
    var node = parent[key];
    if (!node || typeof node !== "object") { node = parent[key] = { all: [this.defaultLeaf(tagsOnly)] }; }
    if (node.not !== undefined) {
      var inner = h("div", { "class": "tp-re-not", "data-path": path }, [
        h("label", { "class": "tp-re-not-label" }, [h("input", { type: "checkbox", checked: true,
          onchange: function () { parent[key] = node.not; self.changed(true); } }), " " + T.not])
      ]);
      inner.appendChild(this.condEditor(node, "not", join(path, "not"), tagsOnly));
      return inner;
    }
    var group = node.all !== undefined ? "all" : node.any !== undefined ? "any" : null;
    if (group) {
      var items = node[group];
      var box = h("div", { "class": "tp-re-group", "data-path": path });
      box.appendChild(h("div", { "class": "tp-re-group-head" }, [
        select([["all", T.all], ["any", T.any]], group, { "class": "tp-re-group-kind", "aria-label": T.match,
          onchange: function (e) { var list = node[group]; delete node[group]; node[e.target.value] = list; self.changed(true); } })
      ]));
      var list = h("div", { "class": "tp-re-items", "data-path": join(path, group) });
      (Array.isArray(items) ? items : []).forEach(function (child, i) {
        var cpath = join(join(path, group), "[" + i + "]");
        var item = h("div", { "class": "tp-re-item" });
        var negated = child && child.not !== undefined;
        item.appendChild(h("div", { "class": "tp-re-item-tools" }, [
          h("label", { "class": "tp-re-not-label", title: T.notHelp }, [h("input", { type: "checkbox", checked: negated,
            onchange: function (e) { items[i] = e.target.checked ? { not: child } : child.not; self.changed(true); } }), " " + T.not]),
          h("button", { type: "button", "class": "tp-re-small tp-re-remove", title: T.remove,
            onclick: function () { items.splice(i, 1); self.changed(true); } }, ["✕"])
        ]));
        item.appendChild(negated ? self.condEditor(child, "not", join(cpath, "not"), tagsOnly) : self.condEditor(items, i, cpath, tagsOnly));
        list.appendChild(item);
      });
      box.appendChild(list);
      box.appendChild(h("div", { "class": "tp-re-group-add" }, [
        h("button", { type: "button", "class": "tp-re-add tp-re-add-cond",
          onclick: function () { items.push(self.defaultLeaf(tagsOnly)); self.changed(true); } }, ["＋ " + T.addCondition]),
        h("button", { type: "button", "class": "tp-re-add tp-re-add-group",
          onclick: function () { items.push({ all: [self.defaultLeaf(tagsOnly)] }); self.changed(true); } }, ["＋ " + T.addGroup])
      ]));
      return box;
    }
    var leaf = this.leafEditor(node, path, tagsOnly);
    if (path.split(".").length <= 1 || /when$/.test(path)) {
      // a single condition at the top: offer to make it a group
      return h("div", {}, [leaf, h("button", { type: "button", "class": "tp-re-add tp-re-add-cond",
        onclick: function () { parent[key] = { all: [node, self.defaultLeaf(tagsOnly)] }; self.changed(true); } }, ["＋ " + T.addCondition])]);
    }
    return leaf;
  };

  RuleEditor.prototype.leafEditor = function (node, path, tagsOnly) {
    var self = this, T = this.T;
    var kind = node.attribute !== undefined ? "attribute" : node.metric !== undefined ? "metric" : node.tag !== undefined ? "tag" : "attribute";
    var line = h("div", { "class": "tp-re-leaf", "data-path": path });
    var kinds = tagsOnly ? [["tag", T.leafTag]] : [["attribute", T.leafAttribute], ["metric", T.leafMetric], ["tag", T.leafTag]];
    line.appendChild(select(kinds, kind, { "class": "tp-re-leaf-kind", "aria-label": T.conditionOn,
      onchange: function (e) {
        var k = e.target.value, fresh;
        if (k === "attribute") { fresh = { attribute: self.lang.attributes[0].name, op: "eq", value: "" }; }
        else if (k === "metric") { fresh = { metric: self.defaultMetric(), op: "gte", value: 1 }; }
        else { fresh = self.defaultLeaf(true); }
        replaceContents(node, fresh);
        self.changed(true);
      } }));
    if (kind === "attribute") {
      line.appendChild(this.attributeSelect(node, "attribute", join(path, "attribute"), null));
      this.comparison(line, node, path, this.attrTypes[node.attribute] || "any", null);
    } else if (kind === "tag") {
      line.appendChild(this.tagSelect(node, path, null));
      var tag = this.tagInfo(node.tag);
      var vt = tag ? tag.value_type : "";
      var choices = null;
      if (vt === "boolean") { choices = [[true, T.yes], [false, T.no]]; }
      else if (tag && tag.values && tag.values.length && vt === "enum") {
        choices = tag.values.map(function (v) { return [v.code, (v.label || v.code) + " (" + v.code + ")"]; });
      }
      this.comparison(line, node, path, vt === "number" ? "number" : vt === "enum" ? "string" : "any", choices);
    } else {
      var metricBox = this.metricBlock(node, "metric", join(path, "metric"));
      var compare = h("div", { "class": "tp-re-metric-compare" }, [h("span", { "class": "tp-re-label", text: T.metricIs })]);
      this.comparison(compare, node, path, "number", null);
      line.appendChild(metricBox);
      line.appendChild(compare);
    }
    return line;
  };

  RuleEditor.prototype.bucketsEditor = function (doc) {
    var self = this, T = this.T;
    if (!Array.isArray(doc.buckets)) { doc.buckets = []; }
    var codes = this.codes();
    var body = h("tbody");
    doc.buckets.forEach(function (b, i) {
      var bpath = "buckets[" + i + "]";
      var valueCell = codes.length
        ? select(codes, b.value, { "data-path": join(bpath, "value"), "class": "tp-re-bucket-value", "aria-label": T.value,
          onchange: function (e) { b.value = self.typedCode(e.target.value); self.changed(false); } })
        : h("input", { type: "text", value: b.value || "", "data-path": join(bpath, "value"), size: 12,
          oninput: function (e) { b.value = e.target.value; self.changed(false); } });
      function bound(key) {
        return h("input", { type: "number", size: 7, value: b[key] === null || b[key] === undefined ? "" : b[key],
          "data-path": join(bpath, key), "class": "tp-re-bucket-" + key, "aria-label": key === "min" ? T.bucketMin : T.bucketMax,
          oninput: function (e) { b[key] = parseNumber(e.target.value); self.changed(false); } });
      }
      body.appendChild(h("tr", { "data-path": bpath }, [
        h("td", {}, [valueCell]), h("td", {}, [bound("min")]), h("td", {}, [bound("max")]),
        h("td", {}, [h("button", { type: "button", "class": "tp-re-small tp-re-remove", title: T.remove,
          onclick: function () { doc.buckets.splice(i, 1); self.changed(true); } }, ["✕"])])
      ]));
    });
    var box = h("div", { "class": "tp-re-buckets", "data-path": "buckets" }, [
      h("table", {}, [h("thead", {}, [h("tr", {}, [h("th", { text: T.value }), h("th", { text: T.bucketMin }),
        h("th", { text: T.bucketMax }), h("th")])]), body]),
      h("p", { "class": "help", text: T.bucketHelp }),
      h("button", { type: "button", "class": "tp-re-add", onclick: function () {
        var last = doc.buckets[doc.buckets.length - 1];
        doc.buckets.push({ value: codes.length ? codes[0][0] : "", min: last && last.max !== undefined ? last.max : null, max: null });
        self.changed(true);
      } }, ["＋ " + T.addBucket])
    ]);
    return box;
  };

  RuleEditor.prototype.casesEditor = function (doc, tagsOnly) {
    var self = this, T = this.T;
    if (!Array.isArray(doc.cases)) { doc.cases = []; }
    var codes = this.codes();
    var box = h("div", { "class": "tp-re-cases", "data-path": "cases" });
    doc.cases.forEach(function (c, i) {
      var cpath = "cases[" + i + "]";
      var head = h("div", { "class": "tp-re-case-head" }, [
        h("strong", { text: fmt(T.caseN, { n: i + 1 }) }), " " + T.then + " ",
        codes.length
          ? select(codes, c.value, { "data-path": join(cpath, "value"), "class": "tp-re-case-value", "aria-label": T.value,
            onchange: function (e) { c.value = self.typedCode(e.target.value); self.changed(false); } })
          : h("input", { type: "text", value: c.value || "", "data-path": join(cpath, "value"),
            oninput: function (e) { c.value = e.target.value; self.changed(false); } }),
        h("button", { type: "button", "class": "tp-re-small", title: T.moveUp, disabled: i === 0,
          onclick: function () { doc.cases.splice(i - 1, 0, doc.cases.splice(i, 1)[0]); self.changed(true); } }, ["↑"]),
        h("button", { type: "button", "class": "tp-re-small", title: T.moveDown, disabled: i === doc.cases.length - 1,
          onclick: function () { doc.cases.splice(i + 1, 0, doc.cases.splice(i, 1)[0]); self.changed(true); } }, ["↓"]),
        h("button", { type: "button", "class": "tp-re-small tp-re-remove", title: T.remove,
          onclick: function () { doc.cases.splice(i, 1); self.changed(true); } }, ["✕"])
      ]);
      var block = h("div", { "class": "tp-re-case", "data-path": cpath }, [head, h("div", { "class": "tp-re-when" }, [
        h("span", { "class": "tp-re-label", text: T.when }), self.condEditor(c, "when", join(cpath, "when"), tagsOnly)])]);
      box.appendChild(block);
    });
    box.appendChild(h("button", { type: "button", "class": "tp-re-add tp-re-add-case",
      onclick: function () { doc.cases.push({ value: codes.length ? codes[0][0] : "", when: self.defaultLeaf(tagsOnly) }); self.changed(true); } },
      ["＋ " + T.addCase]));
    var defaults = [["", T.noDefault]].concat(codes);
    box.appendChild(this.row(T.otherwise, select(defaults, doc["default"] === undefined || doc["default"] === null ? "" : doc["default"],
      { "data-path": "default", "class": "tp-re-default",
        onchange: function (e) { doc["default"] = e.target.value === "" ? null : self.typedCode(e.target.value); self.changed(false); } })));
    return box;
  };

  RuleEditor.prototype.mapEditor = function (doc, path) {
    var self = this, T = this.T;
    var codes = this.codes();
    var box = h("div", { "class": "tp-re-map", "data-path": path });
    if (!doc.map || typeof doc.map !== "object") {
      box.appendChild(h("span", { "class": "tp-muted", text: T.noMap + " " }));
      box.appendChild(h("button", { type: "button", "class": "tp-re-add tp-re-add-map",
        onclick: function () { doc.map = {}; self.mapRows = [["", codes.length ? codes[0][0] : ""]]; self.syncMap(doc); self.changed(true); } },
        ["＋ " + T.addMap]));
      return box;
    }
    var rows = Object.keys(doc.map).map(function (k) { return [k, doc.map[k]]; });
    if (this.mapRows && this.mapRows.length >= rows.length) { rows = this.mapRows; }
    this.mapRows = rows;
    var body = h("tbody");
    rows.forEach(function (row, i) {
      body.appendChild(h("tr", { "data-path": join(path, row[0]) }, [
        h("td", {}, [h("input", { type: "text", size: 14, value: row[0], "class": "tp-re-map-raw", "aria-label": T.rawValue,
          oninput: function (e) { row[0] = e.target.value; self.syncMap(doc); self.changed(false); } })]),
        h("td", { text: "→" }),
        h("td", {}, [codes.length
          ? select(codes, row[1], { "class": "tp-re-map-code", "aria-label": T.value, "data-path": join(path, row[0]),
            onchange: function (e) { row[1] = self.typedCode(e.target.value); self.syncMap(doc); self.changed(false); } })
          : h("input", { type: "text", size: 12, value: row[1], "class": "tp-re-map-code",
            oninput: function (e) { row[1] = e.target.value; self.syncMap(doc); self.changed(false); } })]),
        h("td", {}, [h("button", { type: "button", "class": "tp-re-small tp-re-remove", title: T.remove,
          onclick: function () { rows.splice(i, 1); self.syncMap(doc); self.changed(true); } }, ["✕"])])
      ]));
    });
    box.appendChild(h("table", {}, [h("thead", {}, [h("tr", {}, [h("th", { text: T.rawValue }), h("th"), h("th", { text: T.value }), h("th")])]), body]));
    box.appendChild(h("button", { type: "button", "class": "tp-re-add tp-re-add-map-row",
      onclick: function () { rows.push(["", codes.length ? codes[0][0] : ""]); self.syncMap(doc); self.changed(true); } }, ["＋ " + T.addMapRow]));
    box.appendChild(h("button", { type: "button", "class": "tp-re-add",
      onclick: function () { delete doc.map; self.mapRows = null; self.changed(true); } }, [T.removeMap]));
    return box;
  };

  RuleEditor.prototype.syncMap = function (doc) {
    var map = {};
    (this.mapRows || []).forEach(function (row) { if (row[0] !== "") { map[row[0]] = row[1]; } });
    doc.map = map;
  };

  // -------------------------------------------------------------------------

  ready(function () {
    document.querySelectorAll("select[multiple][data-searchable]").forEach(function (node) {
      var strings = JSON.parse(node.getAttribute("data-strings") || "{}");
      new SearchableSelect(node, strings);
    });
    document.querySelectorAll("[data-rule-editor]").forEach(function (root) {
      var config = JSON.parse(document.getElementById(root.getAttribute("data-config")).textContent);
      var target = document.getElementById(config.target);
      if (!target) { return; }
      if (root.hasAttribute("data-beside")) { target.parentNode.insertBefore(root, target.nextSibling); }
      var editor = new RuleEditor(root, config);
      if (config.values_target && document.getElementById(config.values_target)) {
        editor.valuesTable = new ValuesTable(document.getElementById(config.values_target), config.value_type, config.strings,
          function () { if (editor.doc) { editor.render(); editor.scheduleCheck(); } });
      }
      function language(valueType) {
        var url = config.language_url + "?" + new URLSearchParams({ brand: config.brand, value_type: valueType || "" });
        return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
          .then(function (r) { return r.json(); });
      }
      language(config.value_type)
        .then(function (described) { editor.start(described); root.setAttribute("data-ready", "true"); })
        .catch(function () { root.appendChild(h("p", { "class": "errornote", text: config.strings.network })); });
      // the tag form: the value type and the kind may change while the rule is written
      var valueTypeInput = config.value_type_input && document.getElementById(config.value_type_input);
      var kindInput = config.kind_input && document.getElementById(config.kind_input);
      if (valueTypeInput) {
        valueTypeInput.addEventListener("change", function () {
          editor.valueType = valueTypeInput.value;
          if (editor.valuesTable) { editor.valuesTable.valueType = valueTypeInput.value; editor.valuesTable.changed(true); }
          language(valueTypeInput.value).then(function (described) {
            if (!editor.doc) { return; }
            editor.lang.types = described.types;
            editor.render();
            editor.scheduleCheck();
          });
        });
      }
      if (kindInput) {
        kindInput.addEventListener("change", function () {
          editor.kind = kindInput.value;
          if (editor.doc) { editor.mode = editor.modeOf(editor.doc); editor.render(); editor.scheduleCheck(); }
        });
      }
    });
  });
})();
