/* The satisfaction survey on the request page: shown while the request is completed;
   a press on 1-5 saves the rating (and the comment) without leaving the page. Without
   JavaScript the same form posts and the page reloads. */
"use strict";

(function () {
  var H = window.Helpdesk;
  var key = H.data.key;
  var section = document.getElementById("rating-section");
  var form = document.getElementById("rating-form");
  var statusEl = document.getElementById("rating-status");
  if (!key || !section || !form) return;
  var lang = H.data.lang || "ru";
  var url = "/api/public/requests/" + encodeURIComponent(key) + "/rating/?lang=" + encodeURIComponent(lang);
  var buttons = Array.prototype.slice.call(form.querySelectorAll("button[name=rating]"));
  var busy = false;

  function show(info) {
    if (!info) return;
    var canRate = "can_rate" in info ? info.can_rate : info.status === "completed";
    section.hidden = !canRate;
    if ("rating" in info) {
      buttons.forEach(function (b) {
        b.setAttribute("aria-pressed", String(Number(b.value) === info.rating));
      });
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = event.submitter;
    if (busy || !button || button.name !== "rating") return;
    busy = true;
    var body = new FormData(form);
    body.set("rating", button.value);
    H.request("POST", url, body).then(function (res) {
      busy = false;
      if (res.ok && res.body && res.body.request) {
        show(res.body.request);
        H.setNotice(statusEl, H.t("rating_thanks") + " " +
          H.t("rating_current", { n: res.body.request.rating }), "success");
        return;
      }
      if (res.network) { H.setNotice(statusEl, H.t("err_network"), "error-notice"); return; }
      var message = res.body && res.body.rating ? res.body.rating[0] :
        res.body && res.body.comment ? res.body.comment[0] : H.errorMessage(res.status, res.body, res.headers);
      H.setNotice(statusEl, message, "error-notice");
    });
  });

  document.addEventListener("helpdesk:request", function (event) { show(event.detail); });
  if (H.data.request) show(H.data.request);
})();
