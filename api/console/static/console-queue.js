/* The queue page: when a request is created or changes anywhere (REST, Telegram, the web
   form, another console), fetch this page's results again with the same filters and
   swap them in. New rows are marked and the change is announced to screen readers. */
"use strict";

(function () {
  var timer = null;

  function ids(root) {
    var out = {};
    if (!root) return out;
    root.querySelectorAll("tr[data-id]").forEach(function (row) { out[row.dataset.id] = true; });
    return out;
  }

  function refresh() {
    timer = null;
    var before = ids(document.getElementById("queue-results"));
    ConsoleLive.refetch().then(function (doc) {
      if (!doc) return;
      var results = document.getElementById("queue-results");
      if (results && results.contains(document.activeElement)) {
        /* Keep the keyboard user's place: try again once focus leaves the list. */
        results.addEventListener("focusout", schedule, { once: true });
        return;
      }
      if (!ConsoleLive.swap(doc, "queue-results")) return;
      document.querySelectorAll("#queue-results tr[data-id]").forEach(function (row) {
        if (!before[row.dataset.id]) row.classList.add("is-new");
      });
      ConsoleLive.announce(ConsoleLive.t("queue_updated"));
    });
  }

  function schedule() {
    if (timer) return;
    timer = window.setTimeout(refresh, 250);
  }

  ConsoleLive.listen(function (frame) {
    if (frame.type === "new_request" || frame.type === "request_updated" ||
        frame.type === "reconnected") {
      schedule();
    }
  });
})();
