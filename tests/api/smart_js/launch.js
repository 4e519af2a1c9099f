// The app's launch page: the SMART JavaScript client (fhirclient from npm) discovers the
// FHIR server's authorization server (.well-known/smart-configuration) and sends the
// browser to Gatehouse. In an EHR launch the URL carries iss and launch; in a standalone
// launch config.js names the FHIR server.
"use strict";

FHIR.oauth2.authorize({
  clientId: window.SMART_CONFIG.client_id,
  scope: window.SMART_CONFIG.scope,
  iss: window.SMART_CONFIG.iss,
  redirectUri: "index.html",
}).catch(function (err) {
  document.getElementById("failure").textContent = String(err);
  document.body.dataset.state = "launch-failed";
});
