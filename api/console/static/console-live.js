/* Live updates of the staff console: one WebSocket to /ws/admin/notifications/, signed in
   by the session cookie (the server checks the Origin too). Pages register a handler with
   ConsoleLive.listen(fn); each event frame ({type, data}) is passed to it. After a
   reconnect the handler gets {type: "reconnected"} so the page can catch up. When the
   session ends (close 4401) the page says so, with a link to sign in again. */
"use strict";

window.ConsoleLive = (function () {
  var dataEl = document.getElementById("console-data");
  var data = {};
  try { data = JSON.parse(dataEl ? dataEl.textContent : "{}") || {}; } catch (e) { data = {}; }
  var texts = data.texts || {};
  var listeners = [];
  var socket = null;
  var attempts = 0;
  var ended = false;
  var pinger = null;
  var opened = false;
  var liveText = null;

  function t(key) { return texts[key] || key; }

  function setState(state) {
    document.body.setAttribute("data-live", state);
    var note = document.getElementById("live-note");
    if (!note) return;
    if (liveText === null) liveText = note.textContent;
    note.textContent = state === "websocket" ? liveText : t("live_off");
  }

  function announce(message) {
    var region = document.getElementById("live-announce");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = message; }, 50);
  }

  function sessionEnded() {
    ended = true;
    setState("ended");
    var box = document.getElementById("live-status");
    if (!box) return;
    box.textContent = t("session_expired_live") + " ";
    var link = document.createElement("a");
    link.href = "/console/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
    link.textContent = t("sign_in_again");
    box.appendChild(link);
    box.hidden = false;
  }

  function emit(frame) {
    listeners.forEach(function (fn) {
      try { fn(frame); } catch (e) { /* one page's error must not stop the socket */ }
    });
  }

  function connect() {
    if (ended) return;
    var url = (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host +
      "/ws/admin/notifications/";
    try {
      socket = new WebSocket(url);
    } catch (e) {
      retry();
      return;
    }
    socket.onopen = function () {
      var again = opened;
      opened = true;
      attempts = 0;
      setState("websocket");
      if (again) emit({ type: "reconnected" });
      pinger = window.setInterval(function () {
        if (socket && socket.readyState === 1) socket.send('{"type":"ping"}');
      }, 25000);
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame && frame.type && frame.type !== "pong") emit(frame);
    };
    socket.onclose = function (event) {
      if (pinger) window.clearInterval(pinger);
      pinger = null;
      socket = null;
      if (event.code === 4401 || event.code === 4403) {
        sessionEnded();
        return;
      }
      setState("off");
      retry();
    };
  }

  function retry() {
    attempts += 1;
    var delay = Math.min(30000, 1000 * Math.pow(2, Math.min(attempts, 5)));
    window.setTimeout(connect, delay);
  }

  /* Fetch this page again (as the live view: no effect on the session's idle clock) and
     return its parsed document; null if signed out (401) or on a network error. */
  function refetch() {
    return fetch(location.href, { headers: { "X-Console-Live": "1" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) { sessionEnded(); return null; }
        if (!response.ok) return null;
        return response.text().then(function (html) {
          return new DOMParser().parseFromString(html, "text/html");
        });
      })
      .catch(function () { return null; });
  }

  /* Replace the element with `id` by its copy in `doc` (server-rendered, escaped HTML of
     our own origin). */
  function swap(doc, id) {
    var fresh = doc.getElementById(id);
    var current = document.getElementById(id);
    if (!fresh || !current) return false;
    current.replaceWith(document.importNode(fresh, true));
    return true;
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (document.body.hasAttribute("data-live") && "WebSocket" in window) connect();
  });

  return {
    listen: function (fn) { listeners.push(fn); },
    refetch: refetch,
    swap: swap,
    announce: announce,
    t: t,
  };
})();
