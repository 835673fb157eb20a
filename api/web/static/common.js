/* Shared helpers of the customer pages. Everything a user typed is put into the page with
   textContent (never innerHTML), so it is always shown as text. */
"use strict";

window.Helpdesk = (function () {
  var dataEl = document.getElementById("page-data");
  var data = {};
  try {
    data = JSON.parse(dataEl ? dataEl.textContent : "{}") || {};
  } catch (e) {
    data = {};
  }
  var texts = data.texts || {};

  function t(key, vars) {
    var s = texts[key] || key;
    if (vars) {
      Object.keys(vars).forEach(function (name) {
        s = s.split("{" + name + "}").join(String(vars[name]));
      });
    }
    return s;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === "text") node.textContent = value;
        else if (name === "className") node.className = value;
        else node.setAttribute(name, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function formatSize(bytes) {
    if (bytes >= 1048576) return (bytes / 1048576).toFixed(1) + " " + t("mb");
    if (bytes >= 1024) return Math.round(bytes / 1024) + " " + t("kb");
    return bytes + " " + t("bytes");
  }

  function formatTime(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    try {
      return d.toLocaleString(data.lang === "en" ? "en-GB" : "ru-RU", {
        year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"
      });
    } catch (e) {
      return d.toISOString();
    }
  }

  /* Check the chosen files against the limits; returns an error text or "". */
  function checkFiles(input) {
    var files = input && input.files ? Array.prototype.slice.call(input.files) : [];
    var maxBytes = Number(texts.max_upload_bytes || input.getAttribute("data-max-bytes") || 0);
    var maxFiles = Number(texts.max_files || 10);
    if (files.length > maxFiles) return t("err_too_many", { max_files: maxFiles });
    var total = files.reduce(function (sum, f) { return sum + f.size; }, 0);
    if (maxBytes && total > maxBytes) {
      return t("err_too_big", { size: (total / 1048576).toFixed(1), mb: texts.max_upload_mb });
    }
    return "";
  }

  /* Show field errors next to their inputs (and mark the inputs invalid). */
  function showErrors(form, errors) {
    var first = null;
    form.querySelectorAll("[data-error-for]").forEach(function (p) {
      var name = p.getAttribute("data-error-for");
      var input = form.querySelector("[name='" + name + "']");
      var list = errors[name];
      var message = Array.isArray(list) ? list.join(" ") : (list || "");
      p.textContent = message;
      if (input) {
        if (message) {
          input.setAttribute("aria-invalid", "true");
          if (!first) first = input;
        } else {
          input.removeAttribute("aria-invalid");
        }
      }
    });
    return first;
  }

  /* The message to show for a failed response: 429 with its wait, field errors, detail. */
  function errorMessage(status, body, headers) {
    if (status === 429) {
      var wait = Number(headers && headers.get("Retry-After")) || 60;
      return t("err_rate", { seconds: wait });
    }
    if (body && typeof body === "object") {
      if (typeof body.detail === "string") return body.detail;
      if (typeof body.error === "string") return body.error;
    }
    return t("err_generic");
  }

  /* fetch() that always resolves to {ok, status, body, headers}; network errors too. */
  function request(method, url, body) {
    var options = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) options.body = body;
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (json) {
        return { ok: response.ok, status: response.status, body: json, headers: response.headers };
      });
    }, function () {
      return { ok: false, status: 0, body: null, headers: null, network: true };
    });
  }

  function setNotice(node, message, kind) {
    if (!node) return;
    node.textContent = message || "";
    node.hidden = !message;
    node.classList.remove("success", "error-notice");
    if (message && kind) node.classList.add(kind);
  }

  return {
    data: data, t: t, el: el, formatSize: formatSize, formatTime: formatTime,
    checkFiles: checkFiles, showErrors: showErrors, errorMessage: errorMessage,
    request: request, setNotice: setNotice
  };
})();
