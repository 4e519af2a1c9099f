// The app after its redirect: fhirclient exchanges the code (PKCE, fetch with CORS),
// then reads the patient in context from the FHIR server with the access token, and
// refreshes when asked.
"use strict";

function show(id, text) {
  document.getElementById(id).textContent = text == null ? "" : String(text);
}

function fail(step, err) {
  show("failure", step + " failed: " + String(err));
  document.body.dataset.state = step + "-failed";
}

function nameOf(patient) {
  var name = patient.name[0];
  return name.given.join(" ") + " " + name.family;
}

FHIR.oauth2.ready().then(async function (client) {
  var context = client.state.tokenResponse;
  show("patient-id", client.getPatientId());
  show("fhir-user", client.getFhirUser());
  show("encounter", context.encounter);
  show("banner", context.need_patient_banner);
  show("intent", context.intent);
  var patient = await client.patient.read();
  show("patient-name", nameOf(patient));
  document.body.dataset.state = "ready";
  document.getElementById("refresh").addEventListener("click", function () {
    client.refresh()
      .then(function () { return client.patient.read(); })
      .then(function (again) {
        show("refreshed", again.id);
        document.body.dataset.state = "refreshed";
      })
      .catch(function (err) { fail("refresh", err); });
  });
}).catch(function (err) { fail("ready", err); });
