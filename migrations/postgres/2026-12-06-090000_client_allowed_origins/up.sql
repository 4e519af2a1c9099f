-- Issue 25: the web origins a browser app (SPA) may call /token, /userinfo and /revoke
-- from (CORS). A JSON array of origins (`https://app.example.org`), where "+" stands
-- for the origins of the client's redirect URIs (as Keycloak's "+"). NULL means ["+"]:
-- every client registered before this keeps working from its redirect URIs' origins.
ALTER TABLE oidc_clients ADD COLUMN allowed_origins TEXT;
