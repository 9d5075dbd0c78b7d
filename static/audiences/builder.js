/* The audience pages' script. Plain JavaScript, no build step, nothing from a CDN.

   - On an audience's page: draws the membership history figure built server-side
     (json_script "tp-figures") with the plotly.js served from static files.
   - On /audiences/new/: the builder. Groups (AND / OR, NOT) of conditions, each a tag
     picked by type-ahead search (Chinese, English, code or pinyin; arrows, Enter,
     Escape), an operator suited to the tag's value type and a value. After each change
     (debounced) the expression is POSTed to the estimate API and the size, the share of
     the brand's people and the text form are shown; errors are shown next to the part
     they name (the API keys them by path, e.g. "all[1].value"). Saving posts the form
     with the expression and goes to the new audience's page. Every text comes translated
     from the page (json_script "tp-builder-config"). */
(function () {
  "use strict";

  // -------------------------------------------------------------------------
  // The history chart

  function drawFigures() {
    var source = document.getElementById("tp-figures");
    if (!source || !window.Plotly) {
      return;
    }
    var figures = JSON.parse(source.textContent);
    document.querySelectorAll("[data-figure]").forEach(function (element) {
      var figure = figures[element.getAttribute("data-figure")];
      if (figure) {
        window.Plotly.newPlot(element, figure.data, figure.layout, { displaylogo: false, responsive: true });
      }
    });
  }

  // -------------------------------------------------------------------------
  // Helpers

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) {
        return;
      }
      if (name === "text") {
        node.textContent = value;
      } else if (name === "className") {
        node.className = value;
      } else {
        node.setAttribute(name, value === true ? "" : value);
      }
    });
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) {
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return node;
  }

  function format(template, values) {
    return String(template).replace(/%\((\w+)\)s/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : match;
    });
  }

  function joinPath(path, part) {
    if (part.charAt(0) === "[") {
      return path + part;
    }
    return path ? path + "." + part : part;
  }

  function formatNumber(value) {
    try {
      return Number(value).toLocaleString(document.documentElement.lang || undefined);
    } catch (e) {
      return String(value);
    }
  }

  function formatShare(share) {
    var percent = Number(share) * 100;
    return percent.toFixed(percent > 0 && percent < 1 ? 2 : 1) + "%";
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  /* Django / DRF error bodies as {path: [messages]}; "" for the whole thing. */
  var GENERAL = { "": true, expression: true, detail: true, non_field_errors: true, __all__: true, text: true };

  function flattenErrors(data) {
    var out = {};
    function push(key, message) {
      key = GENERAL[key] ? "" : key;
      (out[key] = out[key] || []).push(message);
    }
    function add(key, value) {
      if (Array.isArray(value)) {
        value.forEach(function (item) {
          add(key, item);
        });
      } else if (value && typeof value === "object") {
        Object.keys(value).forEach(function (inner) {
          add(GENERAL[inner] ? key : inner, value[inner]);
        });
      } else if (value !== null && value !== undefined) {
        push(key, String(value));
      }
    }
    if (data && typeof data === "object") {
      Object.keys(data).forEach(function (key) {
        add(key, data[key]);
      });
    }
    return out;
  }

  var OPS = {
    boolean: ["eq", "ne", "is_set"],
    enum: ["eq", "ne", "in", "not_in", "is_set"],
    number: ["gte", "gt", "lte", "lt", "eq", "ne", "between", "bucket", "is_set"]
  };

  /* The kind of value input an operator needs. */
  function widgetKind(type, op) {
    if (op === "is_set") {
      return "isset";
    }
    if (type === "boolean") {
      return "bool";
    }
    if (type === "number") {
      if (op === "between") {
        return "range";
      }
      return op === "bucket" ? "many" : "number";
    }
    return op === "in" || op === "not_in" ? "many" : "one";
  }

  // -------------------------------------------------------------------------
  // The builder

  function Builder(config) {
    var S = config.strings;
    var urls = config.urls;
    var tree = document.getElementById("tp-tree");
    var lineSelect = document.getElementById("tp-line");
    var brandSelect = document.getElementById("tp-brand");
    var sizeOut = document.getElementById("tp-size");
    var shareOut = document.getElementById("tp-share");
    var tookOut = document.getElementById("tp-took");
    var statusOut = document.getElementById("tp-estimate-status");
    var estimateBox = document.getElementById("tp-estimate");
    var textOut = document.getElementById("tp-text");
    var generalErrors = document.getElementById("tp-general-errors");
    var form = document.getElementById("tp-save-form");
    var saveErrors = document.getElementById("tp-save-errors");

    var seq = 0;
    var nodes = {};
    var state = { brand: "", root: null };
    var estimateTimer = null;
    var estimateSeq = 0;
    var controller = null;
    var lastBody = null;
    var pathMap = {};

    // -- the model ----------------------------------------------------------

    function makeGroup(op) {
      var node = { id: ++seq, kind: "group", op: op || "all", negate: false, children: [], parent: null, ui: {} };
      nodes[node.id] = node;
      return node;
    }

    function makeCondition() {
      var node = { id: ++seq, kind: "cond", negate: false, tag: null, op: "", value: null, parent: null, ui: {} };
      nodes[node.id] = node;
      return node;
    }

    function adopt(group, child, index) {
      child.parent = group;
      if (index === undefined || index >= group.children.length) {
        group.children.push(child);
      } else {
        group.children.splice(index, 0, child);
      }
    }

    function conditionJson(cond) {
      if (!cond.tag || !cond.op) {
        return null;
      }
      var v = cond.value;
      var code = cond.tag.code;
      switch (widgetKind(cond.tag.value_type, cond.op)) {
        case "isset":
          return { tag: code, op: "is_set", value: v !== false };
        case "bool":
          return { tag: code, op: cond.op, value: v !== false };
        case "one":
          return v ? { tag: code, op: cond.op, value: v } : null;
        case "many":
          return v && v.length ? { tag: code, op: cond.op === "bucket" ? "in" : cond.op, value: v.slice() } : null;
        case "number":
          return typeof v === "number" && isFinite(v) ? { tag: code, op: cond.op, value: v } : null;
        case "range":
          return v && isFinite(v[0]) && isFinite(v[1]) && v[0] !== null && v[1] !== null
            ? { tag: code, op: "between", value: [v[0], v[1]] }
            : null;
      }
      return null;
    }

    /* The JSON expression of a node (null when nothing in it is complete); fills
       ``map`` with path -> node id, the paths the API names in its errors. */
    function serialize(node, path, map) {
      var inner = node.negate ? joinPath(path, "not") : path;
      var body;
      if (node.kind === "group") {
        var items = [];
        node.children.forEach(function (child) {
          var json = serialize(child, joinPath(joinPath(inner, node.op), "[" + items.length + "]"), map);
          if (json) {
            items.push(json);
          }
        });
        if (!items.length) {
          return null;
        }
        body = {};
        body[node.op] = items;
      } else {
        body = conditionJson(node);
        if (!body) {
          return null;
        }
      }
      map[path] = node.id;
      map[inner] = node.id;
      return node.negate ? { not: body } : body;
    }

    function expression(map) {
      return state.root ? serialize(state.root, "", map || {}) : null;
    }

    function fromJson(json, tags) {
      var negate = false;
      while (json && typeof json === "object" && json.not) {
        negate = !negate;
        json = json.not;
      }
      if (!json || typeof json !== "object") {
        return null;
      }
      var node;
      if (Array.isArray(json.all) || Array.isArray(json.any)) {
        node = makeGroup(json.all ? "all" : "any");
        (json.all || json.any).forEach(function (child) {
          var built = fromJson(child, tags);
          if (built) {
            adopt(node, built);
          }
        });
      } else if (typeof json.tag === "string") {
        node = makeCondition();
        var value = json.value;
        var type = typeof value === "boolean" ? "boolean" : typeof value === "number" ? "number" : "enum";
        node.tag = tags[json.tag] || { code: json.tag, name: json.tag, name_en: "", value_type: type, values: [] };
        node.op = json.op || "";
        if (node.tag.value_type === "number" && (node.op === "in" || (node.op === "eq" && typeof value === "string"))) {
          node.op = "bucket";
          value = Array.isArray(value) ? value : [value];
        }
        node.value = value === undefined ? null : value;
      } else {
        return null;
      }
      node.negate = negate;
      return node;
    }

    // -- rendering ----------------------------------------------------------

    function checkbox(id, label, title, checked, onChange) {
      var box = el("input", { type: "checkbox", id: id, checked: checked });
      box.addEventListener("change", function () {
        onChange(box.checked);
      });
      return el("label", { for: id, className: "tp-not", title: title }, [box, " " + label]);
    }

    function button(text, className, onClick, label) {
      var b = el("button", { type: "button", className: className, "aria-label": label || null, title: label || null, text: text });
      b.addEventListener("click", onClick);
      return b;
    }

    function renderNode(node, depth) {
      return node.kind === "group" ? renderGroup(node, depth) : renderCondition(node);
    }

    function joinerText(group) {
      return group.op === "all" ? S.and : S.or;
    }

    function childItem(group, child, depth) {
      var li = el("li", { "data-joiner": joinerText(group) }, [renderNode(child, depth + 1)]);
      child.ui.item = li;
      return li;
    }

    function renderGroup(group, depth) {
      var prefix = "tp-g" + group.id;
      var opSelect = el("select", { id: prefix + "-op", className: "tp-group-op" }, [
        el("option", { value: "all", text: S.all }),
        el("option", { value: "any", text: S.any })
      ]);
      opSelect.value = group.op;
      opSelect.addEventListener("change", function () {
        group.op = opSelect.value;
        box.setAttribute("data-op", group.op);
        group.children.forEach(function (child) {
          child.ui.item.setAttribute("data-joiner", joinerText(group));
        });
        changed();
      });
      var head = el("div", { className: "tp-group-head" }, [
        el("label", { for: prefix + "-op", text: S.match }),
        " ",
        opSelect,
        " ",
        checkbox(prefix + "-not", S.not, S.notGroupHelp, group.negate, function (checked) {
          group.negate = checked;
          box.classList.toggle("tp-negated", checked);
          changed();
        })
      ]);
      if (depth > 0) {
        head.appendChild(button("×", "tp-remove", function () {
          remove(group);
        }, S.removeGroup));
      }
      var list = el("ol", { className: "tp-children" });
      group.children.forEach(function (child) {
        list.appendChild(childItem(group, child, depth));
      });
      var error = el("div", { className: "tp-node-error", id: prefix + "-error" });
      var actions = el("div", { className: "tp-group-actions" }, [
        button("+ " + S.addCondition, "tp-add-condition", function () {
          var cond = makeCondition();
          append(group, cond);
          cond.ui.input.focus();
        }),
        " ",
        button("+ " + S.addGroup, "tp-add-group", function () {
          var sub = makeGroup(group.op === "all" ? "any" : "all");
          adopt(sub, makeCondition());
          append(group, sub);
          sub.children[0].ui.input.focus();
        })
      ]);
      var box = el(
        "fieldset",
        { className: "tp-group" + (depth === 0 ? " tp-group-root" : "") + (group.negate ? " tp-negated" : ""), "data-node": group.id, "data-op": group.op },
        [el("legend", { className: "tp-sr-only", text: depth === 0 ? S.conditions : S.group }), head, list, error, actions]
      );
      group.ui = { box: box, list: list, error: error, first: opSelect, depth: depth, item: group.ui.item };
      return box;
    }

    function append(group, child) {
      adopt(group, child);
      group.ui.list.appendChild(childItem(group, child, group.ui.depth));
      changed();
    }

    function remove(node) {
      var group = node.parent;
      var index = group.children.indexOf(node);
      group.children.splice(index, 1);
      node.ui.item.remove();
      forget(node);
      var next = group.children[index] || group.children[index - 1];
      if (next) {
        (next.kind === "cond" ? next.ui.input : next.ui.first).focus();
      } else {
        group.ui.box.querySelector(".tp-add-condition").focus();
      }
      changed();
    }

    function forget(node) {
      delete nodes[node.id];
      (node.children || []).forEach(forget);
    }

    function renderCondition(cond) {
      var prefix = "tp-c" + cond.id;
      var opSelect = el("select", { id: prefix + "-op", className: "tp-op", disabled: !cond.tag });
      opSelect.addEventListener("change", function () {
        setOp(cond, opSelect.value);
        renderValue(cond);
        changed();
      });
      var valueBox = el("span", { className: "tp-value" });
      var hint = el("div", { className: "tp-hint", id: prefix + "-hint" });
      var error = el("div", { className: "tp-node-error", id: prefix + "-error" });
      var row = el("div", { className: "tp-condition" + (cond.negate ? " tp-negated" : ""), "data-node": cond.id, role: "group", "aria-label": S.condition }, [
        checkbox(prefix + "-not", S.not, S.notConditionHelp, cond.negate, function (checked) {
          cond.negate = checked;
          row.classList.toggle("tp-negated", checked);
          changed();
        })
      ]);
      cond.ui = { row: row, op: opSelect, valueBox: valueBox, hint: hint, error: error, item: cond.ui.item };
      row.appendChild(picker(cond, prefix));
      row.appendChild(el("span", { className: "tp-field-inline" }, [
        el("label", { for: prefix + "-op", className: "tp-small-label", text: S.operator }),
        opSelect
      ]));
      row.appendChild(valueBox);
      row.appendChild(button("×", "tp-remove", function () {
        remove(cond);
      }, S.removeCondition));
      row.appendChild(hint);
      row.appendChild(error);
      fillOps(cond);
      renderValue(cond);
      return row;
    }

    function fillOps(cond) {
      var select = cond.ui.op;
      select.textContent = "";
      if (!cond.tag) {
        select.disabled = true;
        return;
      }
      var ops = OPS[cond.tag.value_type] || OPS.enum;
      ops.forEach(function (op) {
        if (op === "bucket" && !(cond.tag.values || []).length) {
          return;
        }
        select.appendChild(el("option", { value: op, text: S.ops[op] || op }));
      });
      select.disabled = false;
      if (ops.indexOf(cond.op) < 0) {
        setOp(cond, ops[0]);
      }
      select.value = cond.op;
    }

    /* Change the operator, keeping the value where the new one takes the same kind. */
    function setOp(cond, op) {
      var type = cond.tag ? cond.tag.value_type : "enum";
      var before = cond.op ? widgetKind(type, cond.op) : null;
      var after = widgetKind(type, op);
      var v = cond.value;
      cond.op = op;
      if (before === after) {
        return;
      }
      if (after === "isset" || after === "bool") {
        cond.value = true;
      } else if (after === "many") {
        cond.value = before === "one" && v ? [v] : [];
      } else if (after === "one") {
        cond.value = before === "many" && v && v.length ? v[0] : null;
      } else if (after === "range") {
        cond.value = [before === "number" ? v : null, null];
      } else if (after === "number") {
        cond.value = before === "range" && v ? v[0] : null;
      } else {
        cond.value = null;
      }
    }

    function field(label, control) {
      return el("span", { className: "tp-field-inline" }, [label, control]);
    }

    function describe(control, cond) {
      control.setAttribute("aria-describedby", "tp-c" + cond.id + "-hint tp-c" + cond.id + "-error");
      return control;
    }

    function renderValue(cond) {
      var box = cond.ui.valueBox;
      var prefix = "tp-c" + cond.id + "-value";
      box.textContent = "";
      if (!cond.tag) {
        return;
      }
      var values = cond.tag.values || [];
      var kind = widgetKind(cond.tag.value_type, cond.op);
      var label = el("label", { for: prefix, className: "tp-small-label", text: S.value });
      if (kind === "isset" || kind === "bool") {
        var yes = kind === "isset" ? S.hasValue : S.yes;
        var no = kind === "isset" ? S.hasNoValue : S.no;
        var select = describe(el("select", { id: prefix }, [el("option", { value: "true", text: yes }), el("option", { value: "false", text: no })]), cond);
        select.value = cond.value === false ? "false" : "true";
        select.addEventListener("change", function () {
          cond.value = select.value === "true";
          changed();
        });
        box.append(field(label, select));
      } else if (kind === "one") {
        var one = describe(el("select", { id: prefix }, [el("option", { value: "", text: S.chooseValue })]), cond);
        values.forEach(function (item) {
          one.appendChild(el("option", { value: item.code, text: item.label === item.code ? item.code : item.label + " (" + item.code + ")" }));
        });
        one.value = cond.value || "";
        one.addEventListener("change", function () {
          cond.value = one.value || null;
          changed();
        });
        box.append(field(label, one));
      } else if (kind === "many") {
        var chosen = cond.value || [];
        var boxes = values.map(function (item, i) {
          var id = prefix + "-" + i;
          var input = describe(el("input", { type: "checkbox", id: id, value: item.code, checked: chosen.indexOf(item.code) >= 0 }), cond);
          input.addEventListener("change", function () {
            cond.value = Array.prototype.filter
              .call(fieldset.querySelectorAll("input[type=checkbox]"), function (b) {
                return b.checked;
              })
              .map(function (b) {
                return b.value;
              });
            changed();
          });
          return el("label", { for: id, className: "tp-choice" }, [input, " " + (item.label === item.code ? item.code : item.label + " (" + item.code + ")")]);
        });
        var fieldset = el("fieldset", { className: "tp-choices", id: prefix }, [el("legend", { className: "tp-sr-only", text: S.value })].concat(boxes));
        box.append(fieldset);
      } else if (kind === "number") {
        var number = describe(el("input", { type: "number", id: prefix, step: "any", inputmode: "decimal", value: cond.value === null || cond.value === undefined ? "" : String(cond.value) }), cond);
        number.addEventListener("input", function () {
          cond.value = number.value.trim() === "" || !isFinite(Number(number.value)) ? null : Number(number.value);
          changed();
        });
        box.append(field(label, number));
        if (cond.tag.unit) {
          box.append(" ", el("span", { className: "tp-unit", text: cond.tag.unit }));
        }
      } else if (kind === "range") {
        var range = cond.value || [null, null];
        var inputs = [0, 1].map(function (i) {
          var input = describe(el("input", { type: "number", id: prefix + (i ? "-high" : ""), step: "any", inputmode: "decimal", value: range[i] === null || range[i] === undefined ? "" : String(range[i]) }), cond);
          input.addEventListener("input", function () {
            var current = (cond.value || [null, null]).slice();
            current[i] = input.value.trim() === "" || !isFinite(Number(input.value)) ? null : Number(input.value);
            cond.value = current;
            changed();
          });
          return input;
        });
        box.append(
          field(el("label", { for: prefix, className: "tp-small-label", text: S.from }), inputs[0]),
          field(el("label", { for: prefix + "-high", className: "tp-small-label", text: S.to }), inputs[1])
        );
        if (cond.tag.unit) {
          box.append(" ", el("span", { className: "tp-unit", text: cond.tag.unit }));
        }
      }
    }

    // -- the tag picker (a combobox with a list box) --------------------------

    function picker(cond, prefix) {
      var inputId = prefix + "-tag";
      var listId = inputId + "-list";
      var input = el("input", {
        type: "text",
        id: inputId,
        className: "tp-tag-input",
        role: "combobox",
        "aria-autocomplete": "list",
        "aria-expanded": "false",
        "aria-controls": listId,
        autocomplete: "off",
        spellcheck: "false",
        placeholder: S.tagPlaceholder,
        value: cond.tag ? cond.tag.name : ""
      });
      describe(input, cond);
      var list = el("ul", { id: listId, role: "listbox", className: "tp-listbox", hidden: true, "aria-label": S.tag });
      var code = el("span", { className: "tp-tag-code", text: cond.tag ? tagNote(cond.tag) : "" });
      var live = el("span", { className: "tp-sr-only", "aria-live": "polite" });
      var results = [];
      var active = -1;
      var timer = null;
      var searchSeq = 0;
      var open = false;

      function close() {
        open = false;
        list.hidden = true;
        input.setAttribute("aria-expanded", "false");
        input.removeAttribute("aria-activedescendant");
      }

      function restore() {
        if (cond.tag && input.value !== cond.tag.name) {
          input.value = cond.tag.name;
        }
      }

      function setActive(index) {
        var items = list.querySelectorAll("[role=option]");
        if (!items.length) {
          active = -1;
          return;
        }
        active = (index + items.length) % items.length;
        items.forEach(function (item, i) {
          item.setAttribute("aria-selected", i === active ? "true" : "false");
          item.classList.toggle("tp-active", i === active);
        });
        input.setAttribute("aria-activedescendant", items[active].id);
        items[active].scrollIntoView({ block: "nearest" });
      }

      function show(data) {
        results = data.results || [];
        list.textContent = "";
        results.forEach(function (tag, i) {
          var item = el("li", { id: listId + "-" + i, role: "option", "aria-selected": "false", "data-code": tag.code }, [
            el("span", { className: "tp-option-name", text: tag.name }),
            tag.name_en ? el("span", { className: "tp-option-en", text: tag.name_en }) : null,
            el("span", { className: "tp-option-meta", text: tag.code + " · " + (S.types[tag.value_type] || tag.value_type) + (tag.category ? " · " + tag.category : "") })
          ]);
          item.addEventListener("mousedown", function (event) {
            event.preventDefault(); // keep the focus in the input
          });
          item.addEventListener("click", function () {
            pick(tag);
          });
          list.appendChild(item);
        });
        if (!results.length) {
          list.appendChild(el("li", { className: "tp-option-empty", role: "presentation", text: S.noTags }));
        } else if (data.count > results.length) {
          list.appendChild(el("li", { className: "tp-option-more", role: "presentation", text: format(S.moreTags, { shown: results.length, count: data.count }) }));
        }
        open = true;
        list.hidden = false;
        input.setAttribute("aria-expanded", "true");
        active = -1;
        if (results.length) {
          setActive(0);
        }
        live.textContent = results.length ? format(S.options, { count: data.count }) : S.noTags;
      }

      function search() {
        if (!state.brand) {
          live.textContent = S.chooseBrandFirst;
          showError(cond, [S.chooseBrandFirst]);
          return;
        }
        var mine = ++searchSeq;
        var url = urls.tags + "?brand=" + encodeURIComponent(state.brand) + "&q=" + encodeURIComponent(input.value.trim());
        fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (response) {
            return response.ok ? response.json() : { results: [], count: 0 };
          })
          .then(function (data) {
            if (mine === searchSeq && document.activeElement === input) {
              show(data);
            }
          })
          .catch(function () {
            live.textContent = S.network;
          });
      }

      function pick(tag) {
        var changedTag = !cond.tag || cond.tag.code !== tag.code;
        cond.tag = tag;
        input.value = tag.name;
        code.textContent = tagNote(tag);
        close();
        live.textContent = format(S.picked, { name: tag.name });
        if (changedTag) {
          cond.op = "";
          cond.value = null;
          fillOps(cond);
          renderValue(cond);
          changed();
        }
        cond.ui.op.focus();
      }

      input.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(search, 120);
      });
      input.addEventListener("click", function () {
        if (!open) {
          search();
        }
      });
      input.addEventListener("keydown", function (event) {
        if (event.key === "ArrowDown" || event.key === "Down") {
          event.preventDefault();
          if (!open) {
            search();
          } else {
            setActive(active + 1);
          }
        } else if (event.key === "ArrowUp" || event.key === "Up") {
          event.preventDefault();
          if (open) {
            setActive(active - 1);
          }
        } else if (event.key === "Enter") {
          event.preventDefault();
          if (open && active >= 0 && results[active]) {
            pick(results[active]);
          } else if (!open) {
            search();
          }
        } else if (event.key === "Escape" || event.key === "Esc") {
          if (open) {
            event.preventDefault();
            close();
          } else {
            restore();
          }
        } else if (event.key === "Tab") {
          close();
        }
      });
      input.addEventListener("blur", function () {
        setTimeout(function () {
          if (document.activeElement !== input) {
            close();
            restore();
          }
        }, 150);
      });
      cond.ui.input = input;
      return el("span", { className: "tp-picker" }, [
        el("label", { for: inputId, className: "tp-small-label", text: S.tag }),
        input,
        code,
        list,
        live
      ]);
    }

    function tagNote(tag) {
      return tag.code + (tag.name_en ? " · " + tag.name_en : "");
    }

    // -- estimating -----------------------------------------------------------

    function showError(node, messages) {
      var box = node.ui.error;
      if (!box) {
        return;
      }
      box.textContent = messages.join(" ");
      (node.ui.row || node.ui.box).classList.toggle("tp-invalid", messages.length > 0);
    }

    function clearErrors() {
      Object.keys(nodes).forEach(function (id) {
        var node = nodes[id];
        if (node.ui.error) {
          showError(node, []);
        }
        if (node.ui.row) {
          node.ui.row.querySelectorAll("[aria-invalid]").forEach(function (control) {
            control.removeAttribute("aria-invalid");
          });
        }
      });
      generalErrors.textContent = "";
    }

    function showGeneral(target, messages) {
      target.textContent = "";
      if (messages.length) {
        target.appendChild(el("ul", { className: "errorlist" }, messages.map(function (m) {
          return el("li", { text: m });
        })));
      }
    }

    /* Put each error next to the part of the expression it names; answers the
       messages that belong to no part. */
    function placeErrors(errors, map) {
      var general = [];
      Object.keys(errors).forEach(function (key) {
        var messages = errors[key];
        if (!key) {
          general = general.concat(messages);
          return;
        }
        var path = key;
        var part = "";
        while (!Object.prototype.hasOwnProperty.call(map, path)) {
          var m = /^(.*?)(\.([a-z_]+)|\[\d+\])$/.exec(path);
          if (!m) {
            break;
          }
          part = m[3] || part;
          path = m[1];
        }
        var node = Object.prototype.hasOwnProperty.call(map, path) ? nodes[map[path]] : null;
        if (!node) {
          general = general.concat(messages.map(function (message) {
            return key + ": " + message;
          }));
          return;
        }
        showError(node, [node.ui.error.textContent].concat(messages).filter(Boolean));
        if (node.kind === "cond") {
          var control = part === "tag" ? node.ui.input : part === "op" ? node.ui.op : node.ui.valueBox.querySelector("input, select");
          (control || node.ui.input).setAttribute("aria-invalid", "true");
        }
      });
      return general;
    }

    function markIncomplete() {
      Object.keys(nodes).forEach(function (id) {
        var node = nodes[id];
        if (node.kind === "cond") {
          node.ui.hint.textContent = node.tag && !conditionJson(node) ? S.incomplete : "";
        }
      });
    }

    function showSize(data) {
      sizeOut.textContent = format(data.size === 1 ? S.sizeOne : S.size, { size: formatNumber(data.size) });
      sizeOut.setAttribute("data-size", String(data.size));
      shareOut.textContent = format(S.share, { share: formatShare(data.share), population: formatNumber(data.population) });
      tookOut.textContent = format(S.took, { ms: Number(data.took_ms).toFixed(1) });
      textOut.value = data.text || "";
    }

    function resetSize(message) {
      sizeOut.textContent = "—";
      sizeOut.setAttribute("data-size", "");
      shareOut.textContent = "";
      tookOut.textContent = "";
      textOut.value = "";
      statusOut.textContent = message || "";
    }

    function setBusy(busy) {
      estimateBox.setAttribute("aria-busy", busy ? "true" : "false");
      estimateBox.classList.toggle("tp-busy", busy);
      if (busy) {
        statusOut.textContent = S.estimating;
      }
    }

    function changed() {
      markIncomplete();
      clearTimeout(estimateTimer);
      estimateTimer = setTimeout(estimate, 250);
    }

    function estimate() {
      var map = {};
      var json = state.brand ? expression(map) : null;
      if (!state.brand) {
        lastBody = null;
        clearErrors();
        resetSize(S.chooseBrandFirst);
        return;
      }
      if (!json) {
        lastBody = null;
        clearErrors();
        resetSize(S.empty);
        return;
      }
      var body = JSON.stringify({ brand: state.brand, expression: json });
      if (body === lastBody) {
        return;
      }
      lastBody = body;
      pathMap = map;
      var mine = ++estimateSeq;
      if (controller) {
        controller.abort();
      }
      controller = window.AbortController ? new AbortController() : null;
      setBusy(true);
      fetch(urls.estimate, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: body,
        signal: controller ? controller.signal : undefined
      })
        .then(function (response) {
          return response
            .json()
            .catch(function () {
              return {};
            })
            .then(function (data) {
              return { ok: response.ok, status: response.status, data: data };
            });
        })
        .then(function (result) {
          if (mine !== estimateSeq) {
            return;
          }
          setBusy(false);
          clearErrors();
          if (result.ok) {
            statusOut.textContent = "";
            showSize(result.data);
            return;
          }
          lastBody = null; // try again after the next change
          var general = placeErrors(flattenErrors(result.data), map);
          resetSize(format(S.failed, { error: general.length ? general.join(" ") : S.seeConditions }));
          showGeneral(generalErrors, general);
        })
        .catch(function (error) {
          if (error && error.name === "AbortError") {
            return;
          }
          if (mine === estimateSeq) {
            setBusy(false);
            lastBody = null;
            resetSize(S.network);
          }
        });
    }

    // -- brand ---------------------------------------------------------------

    function fillBrands(lineCode, brandCode) {
      brandSelect.textContent = "";
      config.brands
        .filter(function (brand) {
          return brand.line === lineCode;
        })
        .forEach(function (brand) {
          brandSelect.appendChild(el("option", { value: brand.code, text: brand.name }));
        });
      if (brandCode) {
        brandSelect.value = brandCode;
      }
      state.brand = brandSelect.value || "";
    }

    function setupBrands(initialBrand) {
      config.lines.forEach(function (line) {
        lineSelect.appendChild(el("option", { value: line.code, text: line.name }));
      });
      var initial = config.brands.filter(function (brand) {
        return brand.code === initialBrand;
      })[0];
      if (initial) {
        lineSelect.value = initial.line;
      }
      fillBrands(lineSelect.value, initial ? initial.code : "");
      lineSelect.disabled = !config.lines.length;
      brandSelect.disabled = !config.brands.length;
      lineSelect.addEventListener("change", function () {
        fillBrands(lineSelect.value, "");
        brandChanged();
      });
      brandSelect.addEventListener("change", function () {
        state.brand = brandSelect.value;
        brandChanged();
      });
    }

    function brandChanged() {
      lastBody = null;
      if (expression({})) {
        statusOut.textContent = S.brandChanged;
      }
      changed();
    }

    // -- saving --------------------------------------------------------------

    function setupSave() {
      if (!form) {
        return;
      }
      var name = form.querySelector("[name=name]");
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var map = {};
        var json = expression(map);
        var problems = [];
        if (!state.brand) {
          problems.push(S.chooseBrandFirst);
        }
        if (!json) {
          problems.push(S.nothingToSave);
        }
        if (!name.value.trim()) {
          problems.push(S.nameRequired);
          name.setAttribute("aria-invalid", "true");
        } else {
          name.removeAttribute("aria-invalid");
        }
        if (problems.length) {
          showGeneral(saveErrors, problems);
          (!name.value.trim() ? name : state.root.ui.box.querySelector("input, select")).focus();
          return;
        }
        form.querySelector("[name=brand]").value = state.brand;
        form.querySelector("[name=expression]").value = JSON.stringify(json);
        var submit = form.querySelector("[type=submit]");
        submit.disabled = true;
        showGeneral(saveErrors, [S.saving]);
        fetch(form.action, {
          method: "POST",
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
          body: new FormData(form)
        })
          .then(function (response) {
            return response
              .json()
              .catch(function () {
                return {};
              })
              .then(function (data) {
                return { ok: response.ok, data: data };
              });
          })
          .then(function (result) {
            if (result.ok && result.data.url) {
              window.location.assign(result.data.url);
              return;
            }
            submit.disabled = false;
            var errors = flattenErrors(result.data.errors || result.data);
            var fields = [];
            ["name", "description", "refresh_every_hours", "refresh_on_recompute", "brand"].forEach(function (field) {
              if (errors[field]) {
                var label = form.querySelector("label[for=id_" + field + "]");
                fields = fields.concat(errors[field].map(function (m) {
                  return (label ? label.textContent.trim() + ": " : "") + m;
                }));
                delete errors[field];
              }
            });
            clearErrors();
            var general = fields.concat(placeErrors(errors, map));
            showGeneral(saveErrors, general.length ? general : [S.seeConditions]);
          })
          .catch(function () {
            submit.disabled = false;
            showGeneral(saveErrors, [S.network]);
          });
      });
    }

    // -- start ---------------------------------------------------------------

    var initial = config.initial || {};
    setupBrands(initial.brand || "");
    var built = initial.expression ? fromJson(initial.expression, initial.tags || {}) : null;
    if (built && built.kind === "cond") {
      var wrapper = makeGroup("all");
      adopt(wrapper, built);
      built = wrapper;
    }
    if (!built) {
      built = makeGroup("all");
      adopt(built, makeCondition());
    }
    state.root = built;
    tree.appendChild(renderGroup(state.root, 0));
    setupSave();
    if (initial.errors && Object.keys(initial.errors).length) {
      var map = {};
      expression(map);
      placeErrors(initial.errors, map);
    }
    changed();
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawFigures();
    var source = document.getElementById("tp-builder-config");
    if (source && document.getElementById("tp-tree")) {
      new Builder(JSON.parse(source.textContent));
    }
  });
})();
