/* The private request page: shows the thread, stays live (WebSocket, with polling as the
   fallback; messages are de-duplicated by id) and sends the customer's replies. */
"use strict";

(function () {
  var H = window.Helpdesk;
  var key = H.data.key;
  if (!key) return;
  var lang = H.data.lang || "ru";
  var thread = document.getElementById("thread");
  var empty = document.getElementById("thread-empty");
  var threadError = document.getElementById("thread-error");
  var statusEl = document.getElementById("request-status");
  var replySection = document.getElementById("reply-section");
  var closedNotice = document.getElementById("closed-notice");
  var form = document.getElementById("reply-form");
  var replyStatus = document.getElementById("reply-status");
  var fileInput = document.getElementById("r-attachments");
  var seen = {};
  var lastId = 0;
  var loaded = false;
  var socket = null;
  var socketOpen = false;
  var pollTimer = null;
  var polling = false;
  var pollAgain = false;
  var wsDelay = 1000;
  var stopped = false;
  var apiBase = "/api/public/requests/" + encodeURIComponent(key) + "/";

  function senderLabel(m) {
    if (m.message_type === "system") return H.t("system");
    if (m.sender_type === "customer") return H.t("you");
    return m.sender_name ? m.sender_name + " · " + H.t("support") : H.t("support");
  }

  function renderMessage(m) {
    var kind = m.message_type === "system" ? "system" : m.sender_type;
    var files = (m.attachments || []).map(function (a) {
      return H.el("li", null, [
        H.el("a", { href: a.url, download: a.name, text: a.name }),
        H.el("span", { className: "size", text: " (" + H.formatSize(a.size) + ")" })
      ]);
    });
    return H.el("li", { className: "message message-" + kind, "data-id": m.id }, [
      H.el("div", { className: "message-head" }, [
        H.el("span", { className: "sender", text: senderLabel(m) }),
        H.el("time", { datetime: m.created_at, text: H.formatTime(m.created_at) })
      ]),
      H.el("p", { className: "content", text: m.content }),
      files.length ? H.el("ul", { className: "files" }, files) : null,
      editControls(m)
    ]);
  }

  // The customer's own message within the edit window (docs/edits.md): two small forms that
  // post to the public edit/delete routes and work as plain form posts (the server checks
  // the same rules and answers a refusal page in the page's language).
  function editControls(m) {
    var hours = H.data.edit_window_hours;
    if (m.sender_type !== "customer" || m.message_type === "system" || !hours) return null;
    var sent = Date.parse(m.created_at);
    if (!sent || Date.now() - sent > hours * 3600 * 1000) return null;
    var base = apiBase + "messages/" + m.id + "/";
    var query = "?lang=" + encodeURIComponent(lang);
    var fieldId = "edit-" + m.id;
    return H.el("details", { className: "message-edit" }, [
      H.el("summary", { text: H.t("edit_toggle") }),
      H.el("form", { action: base + "edit" + query, method: "post", className: "edit-form" }, [
        H.el("label", { "for": fieldId, text: H.t("edit_label") }),
        H.el("textarea", { id: fieldId, name: "content", rows: "3", maxlength: "10000",
                           text: m.content }),
        H.el("button", { type: "submit", text: H.t("edit_submit") })
      ]),
      H.el("form", { action: base + "delete" + query, method: "post", className: "delete-form" }, [
        H.el("button", { type: "submit", className: "danger", text: H.t("delete_submit") })
      ])
    ]);
  }

  function addMessages(messages) {
    (messages || []).forEach(function (m) {
      if (typeof m.id !== "number" || seen[m.id]) return;
      seen[m.id] = true;
      if (m.id > lastId) lastId = m.id;
      thread.appendChild(renderMessage(m));
    });
    if (loaded || thread.children.length) {
      empty.textContent = H.t("no_messages");
      empty.hidden = thread.children.length > 0;
    }
  }

  function showRequest(info) {
    if (!info) return;
    // Other parts of the page (the satisfaction survey, rating.js) follow the request too.
    document.dispatchEvent(new CustomEvent("helpdesk:request", { detail: info }));
    if (statusEl && info.status) {
      statusEl.textContent = info.status_label || (H.t("status_labels")[info.status] || info.status);
      statusEl.className = "status status-" + info.status;
    }
    var open = info.accepts_messages !== false;
    replySection.hidden = !open;
    closedNotice.hidden = open;
  }

  function schedulePoll(delay) {
    if (stopped) return;
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay);
  }

  function poll() {
    if (stopped) return;
    if (polling) { pollAgain = true; return; }
    polling = true;
    var url = apiBase + "?after=" + lastId + "&lang=" + encodeURIComponent(lang);
    H.request("GET", url).then(function (res) {
      polling = false;
      if (res.ok && res.body) {
        if (!loaded) {
          // Announce messages that arrive from now on, not the whole history at load.
          addMessages(res.body.messages);
          thread.setAttribute("aria-live", "polite");
        }
        loaded = true;
        H.setNotice(threadError, "");
        showRequest(res.body.request);
        addMessages(res.body.messages);
      } else if (res.status === 404) {
        stopped = true;
        H.setNotice(threadError, H.t("not_found_text"), "error-notice");
        return;
      } else {
        H.setNotice(threadError, H.t("load_failed"), "error-notice");
      }
      if (pollAgain) { pollAgain = false; schedulePoll(0); return; }
      // Polling is the fallback: frequent while the WebSocket is down, rare while it is up.
      schedulePoll(socketOpen ? 15000 : 3000);
    });
  }

  function connect() {
    if (stopped || !("WebSocket" in window)) return;
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    try {
      socket = new WebSocket(scheme + "//" + window.location.host + "/ws/public/requests/" +
        encodeURIComponent(key) + "/");
    } catch (e) {
      return;
    }
    socket.onopen = function () {
      socketOpen = true;
      document.body.setAttribute("data-live", "websocket");
      wsDelay = 1000;
      schedulePoll(0); // catch up on anything sent while we were not connected
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (!frame || typeof frame !== "object") return;
      if (frame.type === "request_updated" && frame.data && frame.data.status) {
        showRequest({
          status: frame.data.status,
          accepts_messages: frame.data.status !== "closed"
        });
      }
      if ((frame.type === "message_updated" || frame.type === "message_deleted") && frame.data &&
          typeof frame.data.id === "number") {
        // An edit or deletion (docs/edits.md): change the message in place, as text.
        var item = thread.querySelector('li[data-id="' + frame.data.id + '"]');
        if (item && frame.type === "message_deleted") {
          item.parentNode.removeChild(item);
          empty.hidden = thread.children.length > 0;
        } else if (item && typeof frame.data.content === "string") {
          var body = item.querySelector(".content");
          if (body) body.textContent = frame.data.content;
          var field = item.querySelector(".edit-form textarea");
          if (field) field.value = frame.data.content;
        }
      }
      if (frame.type === "new_message" || frame.type === "request_updated") {
        // The frame is a nudge: the poll brings the message in its public form, with its
        // files, and de-duplicates by id.
        schedulePoll(0);
      }
    };
    socket.onclose = function () {
      socketOpen = false;
      document.body.setAttribute("data-live", "polling");
      socket = null;
      if (stopped) return;
      setTimeout(connect, wsDelay);
      wsDelay = Math.min(wsDelay * 2, 30000);
    };
    socket.onerror = function () { /* onclose follows */ };
  }

  fileInput.addEventListener("change", function () {
    var message = H.checkFiles(fileInput);
    H.showErrors(form, message ? { attachments: [message] } : {});
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var content = form.elements.content.value.trim();
    var errors = {};
    var fileError = H.checkFiles(fileInput);
    if (fileError) errors.attachments = [fileError];
    if (!content && !(fileInput.files && fileInput.files.length)) errors.content = [H.t("err_required")];
    var first = H.showErrors(form, errors);
    if (first) { first.focus(); return; }
    var button = form.querySelector("button[type=submit]");
    var label = button.textContent;
    button.disabled = true;
    button.textContent = H.t("sending");
    H.setNotice(replyStatus, "");
    H.request("POST", apiBase + "messages/?lang=" + encodeURIComponent(lang), new FormData(form))
      .then(function (res) {
        button.disabled = false;
        button.textContent = label;
        if (res.ok) {
          form.reset();
          H.showErrors(form, {});
          addMessages(res.body && res.body.messages);
          H.setNotice(replyStatus, H.t("reply_sent"), "success");
          form.elements.content.focus();
          return;
        }
        if (res.network) { H.setNotice(replyStatus, H.t("err_network"), "error-notice"); return; }
        var fieldErrors = res.status === 400 && res.body && !res.body.error && !res.body.detail ? res.body : {};
        if (res.status === 413 && res.body) fieldErrors = { attachments: res.body.attachments || [res.body.detail] };
        var invalid = H.showErrors(form, fieldErrors);
        H.setNotice(replyStatus, invalid ? H.t("err_form_summary") : H.errorMessage(res.status, res.body, res.headers),
          "error-notice");
        (invalid || form.elements.content).focus();
        if (res.status === 400 && res.body && res.body.error) schedulePoll(0); // e.g. closed meanwhile
      });
  });

  document.querySelectorAll("time[data-local-time]").forEach(function (node) {
    node.textContent = H.formatTime(node.getAttribute("datetime"));
  });
  if (H.data.request) showRequest(H.data.request);
  document.body.setAttribute("data-live", "polling");
  poll();
  connect();
})();
