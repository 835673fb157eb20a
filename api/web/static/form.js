/* The new-request form: client-side checks (the server checks again), submit with
   fetch as multipart, then go to the private request page. */
"use strict";

(function () {
  var H = window.Helpdesk;
  var form = document.getElementById("request-form");
  if (!form) return;
  var status = document.getElementById("form-status");
  var button = form.querySelector("button[type=submit]");
  var fileInput = document.getElementById("f-attachments");
  var EMAIL = /^[^@\s<>"']+@[^@\s<>"']+\.[^@\s<>"']+$/;

  function validate() {
    var errors = {};
    ["name", "email", "title", "description"].forEach(function (name) {
      var input = form.elements[name];
      if (!input.value.trim()) errors[name] = [H.t("err_required")];
    });
    var email = form.elements.email.value.trim();
    if (email && !EMAIL.test(email)) errors.email = [H.t("err_email")];
    var fileError = H.checkFiles(fileInput);
    if (fileError) errors.attachments = [fileError];
    return errors;
  }

  // Typing into a field that was marked invalid clears its message and the summary.
  form.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.name || input.getAttribute("aria-invalid") !== "true" || input === fileInput) return;
    input.removeAttribute("aria-invalid");
    var error = form.querySelector("[data-error-for='" + input.name + "']");
    if (error) error.textContent = "";
    if (!form.querySelector("[aria-invalid=true]")) H.setNotice(status, "");
  });

  fileInput.addEventListener("change", function () {
    var message = H.checkFiles(fileInput);
    H.showErrors(form, message ? { attachments: [message] } : {});
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var errors = validate();
    var first = H.showErrors(form, errors);
    if (first) {
      H.setNotice(status, H.t("err_form_summary"), "error-notice");
      first.focus();
      return;
    }
    H.setNotice(status, "");
    button.disabled = true;
    var label = button.textContent;
    button.textContent = H.t("sending");
    H.request("POST", "/api/public/requests/?lang=" + encodeURIComponent(H.data.lang), new FormData(form))
      .then(function (res) {
        if (res.ok && res.body && res.body.url) {
          window.location.assign(res.body.url);
          return;
        }
        button.disabled = false;
        button.textContent = label;
        if (res.network) {
          H.setNotice(status, H.t("err_network"), "error-notice");
          return;
        }
        var fieldErrors = res.status === 400 && res.body && typeof res.body === "object" ? res.body : {};
        if (res.status === 413 && res.body) fieldErrors = { attachments: res.body.attachments || [res.body.detail] };
        var firstInvalid = H.showErrors(form, fieldErrors);
        H.setNotice(status, firstInvalid && res.status !== 429 ? H.t("err_form_summary")
          : H.errorMessage(res.status, res.body, res.headers), "error-notice");
        (firstInvalid || button).focus();
      });
  });
})();
